"""Hyperparameters: SageMaker's flat, string-encoded `rl.*` keys turned into a typed job config.

Values arrive the ways SageMaker writes them (JSON-encoded strings, the tuner's bare strings, or
native JSON); each is decoded on its own and coerced (values.py) to the type of the field it sets. Every
problem is found here, before any Ray process starts, and reported in one sentence.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sagemaker_rl.contract import decode_value
from sagemaker_rl.errors import UserError, did_you_mean, shorten
from sagemaker_rl.job.keys import (
    CHECKPOINT_FREQ_KEY,
    CLUSTER_TIMEOUT_KEY,
    ENV_ID_KEY,
    ENV_KEYS,
    ENV_KWARGS_KEY,
    ENV_PACKAGE_KEY,
    ENV_PREFIX,
    EVALUATION_EPISODES_KEY,
    EVALUATION_INTERVAL_KEY,
    GSDE_KEY,
    INITIAL_LOG_STD_KEY,
    KEEP_CHECKPOINTS_KEY,
    KEY_ROOT,
    LEARNER_KEY,
    LEGACY_NAMES,
    MAX_EPISODE_STEPS_KEY,
    NUM_ENVS_KEY,
    PER_RUNNER_ENVS_KEY,
    PLATFORM_PREFIXES,
    PPO_PREFIX,
    PRESET_KEY,
    RUN_KEY,
    SAMPLER_KEY,
    SEED_KEY,
    SIMULATOR_KEY,
    STALL_TIMEOUT_KEY,
    STOP_GRACE_KEY,
    STOP_PREFIX,
    canonical_key,
    ppo_key,
    training_attribute,
)
from sagemaker_rl.job.problems import (
    DEFAULT_SIMULATOR,
    SHARED_PPO,
    check_simulator,
    default_preset,
    get_preset,
    get_problem,
)
from sagemaker_rl.job.values import FieldSpec, check_value

logger = logging.getLogger(__name__)

DEFAULT_CLUSTER_TIMEOUT_S = 300.0
# Observation filters (the old API stack's names): RLlib 2.60 has MeanStdFilter as a connector.
OBSERVATION_FILTERS = ("NoFilter", "MeanStdFilter")

# Old settings with no effect on the new API stack: accepted (the seed's scripts set them) and dropped.
IGNORED_LEGACY = {
    "monitor": "videos are recorded by entrypoints/evaluate.py --video",
    "use_pytorch": "the new API stack always uses torch",
}
# Fields the job itself sets; a hyperparameter may not change them.
JOB_OWNED = {
    "env": f"the environment follows from the problem and {SIMULATOR_KEY}, or from {ENV_ID_KEY}",
    "env_config": f"give the env's arguments as {ENV_KWARGS_KEY}",
    "framework_str": "the new API stack runs torch only",
    "framework": "the new API stack runs torch only",
    "enable_rl_module_and_learner": "jobs always use RLlib's new API stack",
    "enable_env_runner_and_connector_v2": "jobs always use RLlib's new API stack",
    "callbacks_class": "the job installs its own callbacks",
    "log_level": "the job keeps RLlib quiet; details go to output/job.log",
    "logger_config": "the job writes its own progress.csv and TensorBoard files",
    "seed": f"set {SEED_KEY} instead",
}
_MAX_COUNT = 10_000_000  # an upper bound for sizes and counts: a typo of 1e12 fails here, not in RLlib
_FRACTION = FieldSpec((float,), 0.0, 1.0, False)
_NON_NEGATIVE = FieldSpec((float,), 0.0, 1e9)
_POSITIVE = FieldSpec((float,), 0.0, 1e9, False)
_BOOL = FieldSpec((bool,))
_ACTIVATIONS = ("tanh", "relu", "elu", "swish", "silu", "linear")  # torch names RLlib's get_activation_fn knows
_LAYERS = FieldSpec((list,), item=FieldSpec((int,), 1, 4096), max_items=16)

# The PPOConfig fields (RLlib 2.60 names) a job takes as hyperparameters, each typed and bounded here:
# RLlib's defaults are None, classes or placeholders for many fields and say nothing of the range.
# Every other PPOConfig field is refused with the reason (JOB_OWNED, REFUSED) or this list.
PPO_FIELDS: dict[str, FieldSpec] = {
    "lr": FieldSpec((float,), 0.0, 1.0, False, schedule=True),
    "gamma": FieldSpec((float,), 0.0, 1.0, False),
    "lambda_": FieldSpec((float,), 0.0, 1.0),
    "kl_coeff": _NON_NEGATIVE,
    "kl_target": _POSITIVE,
    "use_kl_loss": _BOOL,
    "clip_param": _POSITIVE,
    "vf_clip_param": _POSITIVE,
    "vf_loss_coeff": _NON_NEGATIVE,
    "entropy_coeff": FieldSpec((float,), 0.0, 1e9, schedule=True),
    "grad_clip": FieldSpec((float,), 0.0, 1e9, False, nullable=True),
    "grad_clip_by": FieldSpec((str,), choices=("global_norm", "norm", "value")),
    "num_epochs": FieldSpec((int,), 1, 10_000),
    "minibatch_size": FieldSpec((int,), 1, _MAX_COUNT),
    "train_batch_size_per_learner": FieldSpec((int,), 1, _MAX_COUNT),
    "shuffle_batch_per_epoch": _BOOL,
    "use_gae": _BOOL,
    "use_critic": _BOOL,
    "batch_mode": FieldSpec((str,), choices=("truncate_episodes", "complete_episodes")),
    # 0 or less makes RLlib loop forever before Ray starts
    "rollout_fragment_length": FieldSpec((int, str), 1, _MAX_COUNT, choices=("auto",)),
    "num_env_runners": FieldSpec((int,), 0, 1024),
    "num_envs_per_env_runner": FieldSpec((int,), 1, 1024),
    "num_cpus_per_env_runner": FieldSpec((float,), 0.0, 1024, False),
    "num_gpus_per_env_runner": FieldSpec((float,), 0.0, 64),
    "num_learners": FieldSpec((int,), 0, 1024),
    "num_cpus_per_learner": FieldSpec((str, float), 0.0, 1024, False, choices=("auto",)),
    "num_gpus_per_learner": FieldSpec((float,), 0.0, 64),
    "gym_env_vectorize_mode": FieldSpec((str,), choices=("sync", "async")),
    "sample_timeout_s": FieldSpec((float,), 0.0, 86_400, False),
    "normalize_actions": _BOOL,
    "clip_actions": _BOOL,
    "explore": _BOOL,
    "min_time_s_per_iteration": FieldSpec((float,), 0.0, 86_400, nullable=True),
    "min_sample_timesteps_per_iteration": FieldSpec((int,), 0, _MAX_COUNT),
    "min_train_timesteps_per_iteration": FieldSpec((int,), 0, _MAX_COUNT),
    "torch_skip_nan_gradients": _BOOL,
    # The old stack's name; RLlib 2.60 has MeanStdFilter as a connector (ppo_config.build_ppo_config).
    "observation_filter": FieldSpec((str,), choices=OBSERVATION_FILTERS),
    "model_config": FieldSpec((dict,)),  # its keys: MODEL_FIELDS
}
# The keys of model_config a job takes (RLlib's DefaultModelConfig names; the envs' observations are vectors).
MODEL_FIELDS: dict[str, FieldSpec] = {
    "fcnet_hiddens": FieldSpec(_LAYERS.kinds, item=_LAYERS.item, min_items=1, max_items=16),
    "fcnet_activation": FieldSpec((str,), choices=_ACTIVATIONS),
    "fcnet_use_layernorm": _BOOL,
    "head_fcnet_hiddens": _LAYERS,
    "head_fcnet_activation": FieldSpec((str,), choices=_ACTIVATIONS),
    "head_fcnet_use_layernorm": _BOOL,
    "free_log_std": _BOOL,
    "log_std_clip_param": _POSITIVE,
    "vf_share_layers": _BOOL,
}
# PPOConfig fields refused for a reason more useful than "not supported".
REFUSED = {
    "lr_schedule": f"give the schedule as {ppo_key('lr')}=[[0, 1e-3], [1000000, 1e-4]]",
    "entropy_coeff_schedule": f"give the schedule as {ppo_key('entropy_coeff')}=[[0, 0.01], [1000000, 0]]",
    "algo_class": "this image trains PPO only",
    "restart_failed_env_runners": "a broken env fails the job with its own error instead of being retried",
    "metrics_num_episodes_for_smoothing": "the reward lines are over the last 100 episodes (progress.py)",
}


@dataclass
class StopCriteria:
    """When a job stops: the first criterion met (None = not used)."""

    episode_reward_mean: float | None = None  # mean episode return reaches this
    time_total_s: float | None = None  # training seconds, summed across restarts
    timesteps_total: int | None = None  # env steps sampled, summed across restarts
    training_iteration: int | None = None  # iterations, counted across restarts


# A job without a problem and without a stop criterion trains this many env steps (rl-zoo3's budget for
# MuJoCo), and stops sooner at the env's registered reward threshold, if it has one.
DEFAULT_ENV_TIMESTEPS = 1_000_000


@dataclass(frozen=True)
class EnvSettings:
    """The env a job trains on: what `envs.make` builds, and the env_config RLlib hands each env copy."""

    id: str  # a Gymnasium id, "module:Class" (the user's code, or a pybullet_envs port)
    package: str | None = None  # imported before the env is made (it registers the id)
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the env's constructor
    max_episode_steps: int | None = None  # the time limit (None: the registered one, else envs.DEFAULT_TIME_LIMIT)

    @property
    def label(self) -> str:
        """A short name for messages and progress lines: the id without its module."""
        return self.id.rpartition(":")[2]


@dataclass(frozen=True)
class EnvFacts:
    """What building the env once told (`envs.probe`): what the job's settings depend on."""

    discrete_actions: bool  # Discrete(n) actions: no Gaussian std to set, no gSDE
    reward_threshold: float | None  # the return its registration calls solved
    observation_layout: list[dict[str, Any]]  # the flat observation's parts (written to model/)


@dataclass
class JobConfig:
    """Everything a training job needs, resolved and validated."""

    problem: str | None  # key of problems.PROBLEMS; None: the env of rl.env.id
    env: EnvSettings = field(default_factory=lambda: EnvSettings(""))  # the env itself, resolved
    simulator: str = DEFAULT_SIMULATOR  # "roboschool" (PyBullet) or "mujoco": a problem's env
    preset: str = ""  # the preset the values started from
    ppo: dict[str, Any] = field(default_factory=dict)  # PPO fields (RLlib 2.60 names), defaults applied
    stop: StopCriteria = field(default_factory=StopCriteria)
    checkpoint_freq: int = 5  # iterations between checkpoints (one is always written at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept in checkpoints/ (0 keeps all)
    seed: int | None = None  # seeds RLlib and the environments
    initial_log_std: float | None = None  # the policy's free log std at the start (None: RLlib's 0)
    # gSDE (sagemaker_rl/gsde.py) with its noise drawn anew every this many env steps (None: RLlib's Gaussian)
    gsde_resample_steps: int | None = None
    # Vector env copies of the whole job, split evenly over its env runners (None: num_envs_per_env_runner
    # each): the batch then holds the same copies and fragment length whatever the core count.
    num_envs: int | None = None
    # A job that makes no progress (start-up, one iteration) for this long fails with its last log lines.
    stall_timeout_s: float = 1800.0
    # A multi-host job's hosts wait this long for each other (a host for the head, the head for every host).
    cluster_timeout_s: float = DEFAULT_CLUSTER_TIMEOUT_S
    # After SIGTERM, the iteration in progress may take this long; then the last completed one is checkpointed
    # instead, leaving the job time to end within the 30 s that a stop gives (docs/training-job.md).
    stop_grace_s: float = 20.0
    sampler: str = "lean"  # env_runner.LeanEnvRunner, or "rllib": RLlib's own sampling loop
    learner: str = "lean"  # lean_learner.LeanPPOLearner, or "rllib": RLlib's own PPO learner
    evaluation_interval: int = 0  # env steps between deterministic evaluations (0: at the job's end only)
    evaluation_episodes: int = 5  # episodes of each (rl-zoo3's optimizer evaluates 5; 0: no evaluation)
    env_facts: EnvFacts | None = None  # what building the env told, when the job was parsed with it

    @property
    def label(self) -> str:
        """The job's name in messages and progress lines: its problem, else its env."""
        return self.problem or self.env.label


def parse_hyperparameters(raw: Mapping[str, Any], problem: str | None, env: EnvFacts | None = None) -> JobConfig:
    """The job config for `problem`, in one order: shared PPO values, the preset, every key in `raw`.

    `raw` holds the job's hyperparameters as SageMaker writes them (a tuning trial's values and the
    explicit ones, already merged by the runner); `rl.training.preset` and `rl.env.simulator` in it
    select the preset. A job without a problem trains the env `rl.env.id` names; `env`, what building
    that env told (envs.probe), settles what depends on it (None: parsed without it). Raises UserError
    naming the first bad key, its value, what is allowed and the fix.
    """
    if not isinstance(raw, Mapping):
        raise UserError(f"the hyperparameters must be a JSON object of names to values, got {shorten(raw)}")
    ours = _our_keys(raw)
    job = JobConfig(problem=problem, ppo=copy.deepcopy(SHARED_PPO), env_facts=env)
    if problem is not None:
        job.simulator = _choice(SIMULATOR_KEY, decode_value(raw.get(SIMULATOR_KEY, DEFAULT_SIMULATOR)), check_simulator)
    job.env = _env_settings(raw, problem, job.simulator)
    job.preset = _choice(PRESET_KEY, decode_value(raw.get(PRESET_KEY, default_preset(problem))), str)
    preset = _choice(PRESET_KEY, job.preset, lambda name: get_preset(problem, job.simulator, name))
    for key in sorted(preset.hyperparameters):
        _set(job, key, preset.hyperparameters[key])
    for key in ours:
        _set(job, key, decode_value(raw[key]))
    if not any(key.startswith(STOP_PREFIX) for key in ours):
        if problem is None:
            job.stop.timesteps_total = DEFAULT_ENV_TIMESTEPS
            job.stop.episode_reward_mean = None if env is None else env.reward_threshold
        else:
            job.stop.episode_reward_mean = get_problem(problem).env(job.simulator).stop_reward
    _check_consistency(job.ppo, ours)
    if env is not None and env.discrete_actions:
        _resolve_discrete(job, given={canonical_key(key) for key in ours})
    else:
        _resolve_initial_log_std(job, given=INITIAL_LOG_STD_KEY in raw)
    _resolve_env_copies(job, {canonical_key(key) for key in ours})
    if job.evaluation_interval and not job.evaluation_episodes:
        raise UserError(f"{EVALUATION_INTERVAL_KEY} evaluates on {EVALUATION_EPISODES_KEY} episodes, which is 0: "
                        f"set it to 1 or more, or drop {EVALUATION_INTERVAL_KEY}")
    return job


def _our_keys(raw: Mapping[str, Any]) -> list[str]:
    """The keys of `raw` that are ours to judge (not the platform's), sorted; each a well-formed name, once a field."""
    ours = sorted(key for key in raw if not (isinstance(key, str) and key.startswith(PLATFORM_PREFIXES)))
    for key in ours:
        _check_name(key)
    _check_one_name_per_field(ours)
    return ours


_ENV_ID = FieldSpec((str,))
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _env_settings(raw: Mapping[str, Any], problem: str | None, simulator: str) -> EnvSettings:
    """The env of `rl.env.*`: a problem's row on its simulator, or the env `rl.env.id` names (no problem)."""
    for key in raw:
        if isinstance(key, str) and key.startswith(ENV_PREFIX) and key not in ENV_KEYS \
                and not key.startswith(ENV_KWARGS_KEY + "."):
            raise UserError(f"unknown env setting {shorten(key)}{did_you_mean(key, ENV_KEYS)}: "
                            f"choose one of {', '.join(ENV_KEYS)}, or {ENV_KWARGS_KEY}.<argument>")
    steps = raw.get(MAX_EPISODE_STEPS_KEY)
    max_steps = None if steps is None else check_value(MAX_EPISODE_STEPS_KEY, decode_value(steps), _EPISODE_STEPS)
    kwargs = _env_kwargs(raw)
    if problem is not None:
        for key in (ENV_ID_KEY, ENV_PACKAGE_KEY):
            if key in raw:
                raise UserError(f"{key} names the env of a job without a problem, but this job trains {problem}: "
                                f"drop {key}, or run the env's job (train-env.py, scripts/train.py --env)")
        row = get_problem(problem).env(simulator)
        return EnvSettings(row.env_id, None, kwargs, max_steps or row.max_episode_steps)
    if SIMULATOR_KEY in raw:
        raise UserError(f"{SIMULATOR_KEY} picks a problem's env, but this job trains the env {ENV_ID_KEY} names: "
                        f"drop {SIMULATOR_KEY}")
    if ENV_ID_KEY not in raw:
        raise UserError(f"no environment: set {ENV_ID_KEY} to a Gymnasium id (Pendulum-v1) or module:Class of "
                        f"your code, or run a problem's entry point (train-<problem>.py)")
    env_id = check_value(ENV_ID_KEY, decode_value(raw[ENV_ID_KEY]), _ENV_ID).strip()
    package = raw.get(ENV_PACKAGE_KEY)
    if package is not None:
        package = decode_value(package)
        if not isinstance(package, str) or not _MODULE.fullmatch(package) or len(package) > 200:
            raise UserError(f"{ENV_PACKAGE_KEY} must be an importable module name such as my_robots.envs, "
                            f"got {shorten(package)}")
    if not env_id or len(env_id) > 300:
        raise UserError(f"{ENV_ID_KEY} must be a Gymnasium id or module:Class, got {shorten(env_id)}")
    return EnvSettings(env_id, package, kwargs, max_steps)


def _env_kwargs(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`rl.env.kwargs` (a JSON object) with any `rl.env.kwargs.<argument>` over it (a tuner may search one)."""
    kwargs = dict(check_value(ENV_KWARGS_KEY, raw[ENV_KWARGS_KEY], _KWARGS)) if ENV_KWARGS_KEY in raw else {}
    for key in sorted(key for key in raw if isinstance(key, str) and key.startswith(ENV_KWARGS_KEY + ".")):
        name = key[len(ENV_KWARGS_KEY) + 1:]
        if not name.isidentifier():
            raise UserError(f"{shorten(key)} must name one keyword argument, such as {ENV_KWARGS_KEY}.reward_scale")
        kwargs[name] = decode_value(raw[key])
    return kwargs


_EPISODE_STEPS = FieldSpec((int,), 1, 10_000_000)
_KWARGS = FieldSpec((dict,))


def _resolve_discrete(job: JobConfig, given: set[str]) -> None:
    """Discrete actions have no Gaussian std: its settings are dropped, explicit ones with a notice (the default
    search space holds the initial log std, and `tune.py --env CartPole-v1` must run)."""
    for key in (INITIAL_LOG_STD_KEY, GSDE_KEY, ppo_key("model_config.free_log_std")):
        if key in given:
            logger.warning("notice: %s shapes a Gaussian policy's noise; %s has Discrete actions, so it has no "
                           "effect", key, job.env.label)
    job.initial_log_std = job.gsde_resample_steps = None
    job.ppo["model_config"]["free_log_std"] = False


def _resolve_initial_log_std(job: JobConfig, *, given: bool) -> None:
    """A preset's initial log std applies to a free log std only; an explicit one needs a free std or gSDE."""
    if job.gsde_resample_steps is not None:
        if job.ppo["model_config"].get("head_fcnet_hiddens"):
            raise UserError(f"{GSDE_KEY} draws its noise from the actor network's last layer, so the policy head "
                            f"must be linear: set {PPO_PREFIX}model_config.head_fcnet_hiddens=[] or drop {GSDE_KEY}")
        if not given:
            job.initial_log_std = None  # a preset's is a free std's: gSDE starts its noise scale at its own default
    elif not job.ppo["model_config"].get("free_log_std"):
        if given:
            raise UserError(f"{INITIAL_LOG_STD_KEY} needs a free log std, but model_config.free_log_std is false: "
                            f"set {PPO_PREFIX}model_config.free_log_std=true or drop {INITIAL_LOG_STD_KEY}")
        job.initial_log_std = None  # a preset's: the std is an output of the network then


def _resolve_env_copies(job: JobConfig, given: set[str]) -> None:
    """An explicit per-runner env count wins over a preset's job-wide one; both at once are refused."""
    if PER_RUNNER_ENVS_KEY not in given:
        return
    if NUM_ENVS_KEY in given:
        raise UserError(f"{NUM_ENVS_KEY} (env copies of the whole job) and {PER_RUNNER_ENVS_KEY} (copies per env "
                        f"runner) both set the env count: keep one of them")
    job.num_envs = None


# A dotted name of identifiers: "rl.training.config.lr." or "rl..x" would otherwise read as another key.
_NAME = re.compile(re.escape(KEY_ROOT.rstrip(".")) + r"(\.[A-Za-z_][A-Za-z0-9_]*)+")


def _check_name(key: Any) -> None:
    if not isinstance(key, str) or not key.startswith(KEY_ROOT):
        raise _unknown_key(key)
    if not _NAME.fullmatch(key):
        raise UserError(f"hyperparameter name {shorten(key)} is malformed: write dotted names of letters, digits "
                        f"and underscores, such as {PPO_PREFIX}lr (no empty part, space or trailing dot)")


def _check_one_name_per_field(keys: list[str]) -> None:
    """An old and a new name for one field (num_sgd_iter and num_epochs) would be resolved by sort order."""
    seen: dict[str, str] = {}
    for key in keys:
        target = canonical_key(key)
        if target in seen:
            raise UserError(f"{seen[target]} and {key} both set {target}: keep one of them "
                            f"(RLlib 2.60's name is {target})")
        seen[target] = key


def _set(job: JobConfig, key: str, value: Any) -> None:
    """Set one decoded hyperparameter on `job`."""
    if key.startswith(PPO_PREFIX):
        _set_ppo(job.ppo, key, key[len(PPO_PREFIX):], value)
    elif key.startswith(STOP_PREFIX):
        _set_stop(job.stop, key, key[len(STOP_PREFIX):], value)
    elif key in _JOB_KEYS:
        setattr(job, training_attribute(key), check_value(key, value, _JOB_KEYS[key]))
    elif key in (SIMULATOR_KEY, PRESET_KEY) or key.startswith(ENV_PREFIX):
        return  # read first: they select the env and the preset
    elif key == RUN_KEY:
        if value != "PPO":
            raise UserError(f"{key} is {shorten(value)}, but this image trains PPO only: drop the key or set it to PPO")
    else:
        raise _unknown_key(key)


def _unknown_key(key: Any) -> UserError:
    return UserError(f"unknown hyperparameter {shorten(key)}{did_you_mean(str(key)[:200], _known_keys())}: "
                     f"use {PPO_PREFIX}<PPO field>, {STOP_PREFIX}<criterion> or one of "
                     f"{', '.join(sorted([*_JOB_KEYS, PRESET_KEY, *ENV_KEYS]))}")


def _choice(key: str, value: Any, check: Any) -> Any:
    if not isinstance(value, str) or len(value) > 100:
        raise UserError(f"{key} must be a name (a short string), got {shorten(value)}")
    try:
        return check(value)
    except UserError as error:
        raise UserError(f"{key}: {error}") from None


# The PPO settings a job restored from a checkpoint uses from its first update (checkpoints.restore;
# tests/job/test_restore.py reads each one from the learner): what population-based training may
# change between a member's segments. Any other setting is fixed once a job has started.
LIVE_AFTER_RESTORE = tuple(ppo_key(name) for name in (
    "lr", "gamma", "lambda_", "clip_param", "vf_clip_param", "vf_loss_coeff", "entropy_coeff", "kl_coeff",
    "kl_target", "grad_clip", "num_epochs", "minibatch_size", "train_batch_size_per_learner"))


def not_live_reason(key: str) -> str | None:
    """Why a job restored from another job's checkpoint would not use a new value of `key` (None: it would)."""
    key = canonical_key(key)
    if key in LIVE_AFTER_RESTORE:
        return None
    if key.startswith(ppo_key("model_config")):
        return "the network's shape is part of the weights a member inherits"
    if key == ppo_key("observation_filter"):
        return "the filter's running statistics are part of the state a member inherits"
    if key == INITIAL_LOG_STD_KEY:
        return "it sets a new policy's log std; a member inherits its log std with its weights"
    if key == GSDE_KEY:
        return "gSDE's noise scale per feature is part of the weights a member inherits"
    if key.startswith(STOP_PREFIX):
        return "a member's jobs end at the perturbation boundaries"
    live = ", ".join(name[len(PPO_PREFIX):] for name in LIVE_AFTER_RESTORE)
    return f"only these are shown to be used live after a restore: {live}"


def to_hyperparameters(job: JobConfig) -> dict[str, Any]:
    """The flat `rl.*` hyperparameters that reproduce `job` (e.g. for params.json or a rerun)."""
    flat: dict[str, Any] = {PRESET_KEY: job.preset, ENV_KWARGS_KEY: job.env.kwargs}
    if job.problem is None:
        flat.update({ENV_ID_KEY: job.env.id, ENV_PACKAGE_KEY: job.env.package})
    else:
        flat[SIMULATOR_KEY] = job.simulator
    if job.env.max_episode_steps is not None:
        flat[MAX_EPISODE_STEPS_KEY] = job.env.max_episode_steps
    flat.update({f"{PPO_PREFIX}{name}": value for name, value in job.ppo.items()
                 if not (job.num_envs and name == "num_envs_per_env_runner")})  # derived from num_envs
    flat.update({f"{STOP_PREFIX}{name}": value for name, value in dataclasses.asdict(job.stop).items()
                 if value is not None})
    flat.update({key: getattr(job, training_attribute(key)) for key in _JOB_KEYS
                 if getattr(job, training_attribute(key)) is not None})
    return flat


# rl.training.<JobConfig attribute> -> what it takes
_JOB_KEYS: dict[str, FieldSpec] = {
    CHECKPOINT_FREQ_KEY: FieldSpec((int,), 1, _MAX_COUNT),
    KEEP_CHECKPOINTS_KEY: FieldSpec((int,), 0, _MAX_COUNT),
    SEED_KEY: FieldSpec((int,), 0, 2**31 - 1),  # RLlib seeds numpy (32 bits) with the seed plus the env runner's index
    INITIAL_LOG_STD_KEY: FieldSpec((float,), -5.0, 2.0),  # e^-5 .. e^2: a std of 0.007 .. 7.4 on actions in [-1, 1]
    NUM_ENVS_KEY: FieldSpec((int,), 1, 1024),
    GSDE_KEY: FieldSpec((int,), 1, 100_000),
    STALL_TIMEOUT_KEY: FieldSpec((float,), 1.0, 7 * 86_400),
    CLUSTER_TIMEOUT_KEY: FieldSpec((float,), 1.0, 86_400),
    STOP_GRACE_KEY: FieldSpec((float,), 0.0, 3600),
    SAMPLER_KEY: FieldSpec((str,), choices=("lean", "rllib")),
    LEARNER_KEY: FieldSpec((str,), choices=("lean", "rllib")),
    EVALUATION_INTERVAL_KEY: FieldSpec((int,), 0, 10**9),
    EVALUATION_EPISODES_KEY: FieldSpec((int,), 0, 1000),
}
_STOP_FIELDS: dict[str, FieldSpec] = {
    "episode_reward_mean": FieldSpec((float,)),
    "time_total_s": FieldSpec((float,), 0.0, 1e9, False),
    "timesteps_total": FieldSpec((int,), 1, 10**15),
    "training_iteration": FieldSpec((int,), 1, 10**9),
}


def _set_ppo(ppo: dict[str, Any], key: str, path: str, value: Any) -> None:
    name, _, rest = path.partition(".")
    if name in IGNORED_LEGACY:
        logger.warning("notice: %s is ignored on RLlib's new API stack (%s)", key, IGNORED_LEGACY[name])
        return
    if name in LEGACY_NAMES:
        logger.warning("notice: %s is an old RLlib name; read as %s%s", key, PPO_PREFIX, LEGACY_NAMES[name])
        name, _, rest = canonical_key(key)[len(PPO_PREFIX):].partition(".")
    if name in JOB_OWNED:
        raise UserError(f"{key} cannot be set as a hyperparameter: {JOB_OWNED[name]}")
    if name in REFUSED:
        raise UserError(f"{key} cannot be set as a hyperparameter: {REFUSED[name]}")
    if name not in PPO_FIELDS:
        if name in _ppo_defaults():
            raise UserError(f"{key} is an RLlib PPOConfig field this job does not take: it accepts "
                            f"{', '.join(PPO_FIELDS)} (see docs/hyperparameters.md)")
        raise UserError(f"unknown PPO setting {shorten(key)}{did_you_mean(name, [*PPO_FIELDS, *LEGACY_NAMES])}: "
                        f"{PPO_PREFIX}<field> takes RLlib 2.60 PPOConfig fields such as lr, gamma, "
                        "num_epochs, minibatch_size, train_batch_size_per_learner")
    if name == "model_config":
        _set_model(ppo.setdefault(name, {}), key, rest, value)
        return
    if rest:
        raise UserError(f"{key} sets a sub-key, but PPO field {name!r} is not a dict: use {PPO_PREFIX}{name}=<value>")
    ppo[name] = check_value(key, value, PPO_FIELDS[name])


def _set_model(model: dict[str, Any], key: str, rest: str, value: Any) -> None:
    """model_config as a whole (merged into the current one, key by key) or one of its keys."""
    if not rest:
        updates = check_value(key, value, PPO_FIELDS["model_config"])
        for sub in sorted(updates):
            _set_model(model, f"{key}.{sub}", str(sub), updates[sub])
        return
    if rest not in MODEL_FIELDS:
        head = rest.partition(".")[0]
        if head in MODEL_FIELDS:
            raise UserError(f"{key}: model_config.{head} is not a dict: use {PPO_PREFIX}model_config.{head}=<value>")
        why = "is not supported by this job" if head in _model_config_defaults() else "is unknown"
        raise UserError(f"model setting {shorten(key)} {why}{did_you_mean(head, MODEL_FIELDS)}: "
                        f"choose one of {', '.join(MODEL_FIELDS)}")
    model[rest] = check_value(key, value, MODEL_FIELDS[rest])


def _set_stop(stop: StopCriteria, key: str, name: str, value: Any) -> None:
    if name not in _STOP_FIELDS:
        raise UserError(f"unknown stop criterion {shorten(key)}{did_you_mean(name, _STOP_FIELDS)}: "
                        f"choose one of {', '.join(STOP_PREFIX + n for n in _STOP_FIELDS)}")
    setattr(stop, name, check_value(key, value, _STOP_FIELDS[name]))


def _check_consistency(ppo: dict[str, Any], given: list[str]) -> None:
    """The minibatch fits in the batch; the error names each setting as the hyperparameters `given` it (an old
    RLlib name too), else by its own name."""
    batch, minibatch = ppo.get("train_batch_size_per_learner"), ppo.get("minibatch_size")
    if isinstance(batch, int) and isinstance(minibatch, int) and minibatch > batch:
        named = {canonical_key(key): key for key in given}
        minibatch_key, batch_key = (named.get(PPO_PREFIX + name, PPO_PREFIX + name)
                                    for name in ("minibatch_size", "train_batch_size_per_learner"))
        raise UserError(f"{minibatch_key} ({minibatch}) must be <= {batch_key} ({batch}): lower {minibatch_key} or "
                        f"raise {batch_key}")


@functools.cache
def _ppo_defaults() -> dict[str, Any]:
    """PPOConfig's public fields and their RLlib defaults (to tell an unsupported field from a typo)."""
    from ray.rllib.algorithms.ppo import PPOConfig

    config = PPOConfig()
    defaults = {name: value for name, value in vars(config).items() if not name.startswith("_")}
    defaults["train_batch_size_per_learner"] = config.train_batch_size
    defaults["model_config"] = dict(_model_config_defaults())
    defaults.pop("model", None)  # old API stack; "model" is read as model_config
    return defaults


@functools.cache
def _model_config_defaults() -> dict[str, Any]:
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return dataclasses.asdict(DefaultModelConfig())


@functools.cache
def _known_keys() -> list[str]:
    return [*_JOB_KEYS, PRESET_KEY, RUN_KEY, *ENV_KEYS,
            *(ppo_key(name) for name in PPO_FIELDS),
            *(STOP_PREFIX + name for name in _STOP_FIELDS)]
