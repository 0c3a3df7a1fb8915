"""Hyperparameters: SageMaker's flat, string-encoded `rl.*` keys turned into a typed job config.

Values arrive the ways SageMaker writes them (JSON-encoded strings, the tuner's bare strings, or
native JSON); each is decoded on its own and coerced to the type of the field it sets. Every
problem is found here, before any Ray process starts, and reported in one sentence.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sagemaker_rl.contract import decode_value
from sagemaker_rl.errors import UserError, did_you_mean
from sagemaker_rl.problems import (
    DEFAULT_PRESET,
    DEFAULT_SIMULATOR,
    SHARED_PPO,
    check_simulator,
    get_preset,
    get_problem,
)

logger = logging.getLogger(__name__)

PPO_PREFIX = "rl.training.config."
STOP_PREFIX = "rl.training.stop."
PLATFORM_PREFIXES = ("sagemaker_", "_tuning_")  # SageMaker's own keys: not ours to judge
PRESET_KEY = "rl.training.preset"
INITIAL_LOG_STD_KEY = "rl.training.initial_log_std"
SIMULATOR_KEY = "rl.env.simulator"
# Observation filters (the old API stack's names): RLlib 2.60 has MeanStdFilter as a connector.
OBSERVATION_FILTERS = ("NoFilter", "MeanStdFilter")

# Old RLlib (and the seed's) names -> RLlib 2.60 names (a dotted target sets a nested key).
LEGACY_NAMES = {
    "num_sgd_iter": "num_epochs",
    "sgd_minibatch_size": "minibatch_size",
    "train_batch_size": "train_batch_size_per_learner",
    "num_workers": "num_env_runners",
    "num_rollout_workers": "num_env_runners",
    "num_envs_per_worker": "num_envs_per_env_runner",
    "num_cpus_per_worker": "num_cpus_per_env_runner",
    "num_gpus_per_worker": "num_gpus_per_env_runner",
    "num_gpus": "num_gpus_per_learner",
    "sample_batch_size": "rollout_fragment_length",
    "lambda": "lambda_",
    "model": "model_config",
    "vf_share_layers": "model_config.vf_share_layers",
}
# Old settings with no effect on the new API stack: accepted (the seed's scripts set them) and dropped.
IGNORED_LEGACY = {
    "monitor": "videos are recorded by entrypoints/evaluate.py --video",
    "use_pytorch": "the new API stack always uses torch",
}
# Fields the job itself sets; a hyperparameter may not change them.
JOB_OWNED = {
    "env": "the environment follows from the problem and rl.env.simulator",
    "env_config": "the environment follows from the problem and rl.env.simulator",
    "framework_str": "the new API stack runs torch only",
    "framework": "the new API stack runs torch only",
    "enable_rl_module_and_learner": "jobs always use RLlib's new API stack",
    "enable_env_runner_and_connector_v2": "jobs always use RLlib's new API stack",
    "callbacks_class": "the job installs its own callbacks",
    "log_level": "the job keeps RLlib quiet; details go to output/job.log",
    "logger_config": "the job writes its own progress.csv and TensorBoard files",
    "seed": "set rl.training.seed instead",
}
# Values outside these bounds are rejected before training: (low, high, low_inclusive).
BOUNDS: dict[str, tuple[float | None, float | None, bool]] = {
    "lr": (0.0, None, False),
    "gamma": (0.0, 1.0, False),
    "lambda_": (0.0, 1.0, True),
    "kl_coeff": (0.0, None, True),
    "kl_target": (0.0, None, False),
    "clip_param": (0.0, None, False),
    "vf_clip_param": (0.0, None, False),
    "vf_loss_coeff": (0.0, None, True),
    "entropy_coeff": (0.0, None, True),
    "num_epochs": (1, None, True),
    "minibatch_size": (1, None, True),
    "train_batch_size_per_learner": (1, None, True),
    "num_env_runners": (0, None, True),
    "num_envs_per_env_runner": (1, None, True),
    "grad_clip": (0.0, None, False),
}
# Fields whose RLlib default is None or str but which take numbers (or a schedule).
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "grad_clip": (float,),
    "kl_target": (float,),
    "rollout_fragment_length": (int, str),
    "lr": (float, list),  # a float or a schedule [[timestep, value], ...]
    "entropy_coeff": (float, list),
}


@dataclass
class StopCriteria:
    """When a job stops: the first criterion met (None = not used)."""

    episode_reward_mean: float | None = None  # mean episode return reaches this
    time_total_s: float | None = None  # training seconds, summed across restarts
    timesteps_total: int | None = None  # env steps sampled, summed across restarts
    training_iteration: int | None = None  # iterations, counted across restarts


@dataclass
class JobConfig:
    """Everything a training job needs, resolved and validated."""

    problem: str  # key of problems.PROBLEMS
    simulator: str = DEFAULT_SIMULATOR  # "roboschool" (PyBullet) or "mujoco"
    preset: str = DEFAULT_PRESET  # the problem's preset the values started from
    ppo: dict[str, Any] = field(default_factory=dict)  # PPO fields (RLlib 2.60 names), defaults applied
    stop: StopCriteria = field(default_factory=StopCriteria)
    checkpoint_freq: int = 5  # iterations between checkpoints (one is always written at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept in checkpoints/ (0 keeps all)
    seed: int | None = None  # seeds RLlib and the environments
    initial_log_std: float | None = None  # the policy's free log std at the start (None: RLlib's 0)


def parse_hyperparameters(raw: Mapping[str, Any], problem: str) -> JobConfig:
    """The job config for `problem`, in one order: shared PPO values, the preset, every key in `raw`.

    `raw` holds the job's hyperparameters as SageMaker writes them (a tuning trial's values and the
    explicit ones, already merged by the runner); `rl.training.preset` and `rl.env.simulator` in it
    select the preset. Raises UserError naming the first bad key, its value, what is allowed and the fix.
    """
    problem_row = get_problem(problem)
    job = JobConfig(problem=problem, ppo=copy.deepcopy(SHARED_PPO))
    job.simulator = _choice(SIMULATOR_KEY, decode_value(raw.get(SIMULATOR_KEY, DEFAULT_SIMULATOR)), check_simulator)
    job.preset = str(decode_value(raw.get(PRESET_KEY, DEFAULT_PRESET)))
    preset = _choice(PRESET_KEY, job.preset, lambda name: get_preset(problem, job.simulator, name))
    for key in sorted(preset.hyperparameters):
        _set(job, key, preset.hyperparameters[key])
    stop_given = False
    for key in sorted(raw):
        if not key.startswith(PLATFORM_PREFIXES):
            _set(job, key, decode_value(raw[key]))
            stop_given = stop_given or key.startswith(STOP_PREFIX)
    if not stop_given:
        job.stop.episode_reward_mean = problem_row.envs[job.simulator].stop_reward
    _check_consistency(job.ppo)
    if not job.ppo["model_config"].get("free_log_std"):
        if INITIAL_LOG_STD_KEY in raw:
            raise UserError(f"{INITIAL_LOG_STD_KEY} needs a free log std, but model_config.free_log_std is false: "
                            f"set {PPO_PREFIX}model_config.free_log_std=true or drop {INITIAL_LOG_STD_KEY}")
        job.initial_log_std = None  # a preset's: the std is an output of the network then
    return job


def _set(job: JobConfig, key: str, value: Any) -> None:
    """Set one decoded hyperparameter on `job`."""
    if key.startswith(PPO_PREFIX):
        _set_ppo(job.ppo, key, key[len(PPO_PREFIX):], value)
    elif key.startswith(STOP_PREFIX):
        _set_stop(job.stop, key, key[len(STOP_PREFIX):], value)
    elif key in _JOB_KEYS:
        name, kind, low, high = _JOB_KEYS[key]
        setattr(job, name, _check_bounds(key, _coerce(key, value, (kind,)), low, high, True))
    elif key in (SIMULATOR_KEY, PRESET_KEY):
        return  # read first: they select the preset
    elif key == "rl.training.run":
        if value != "PPO":
            raise UserError(f"{key} is {value!r}, but this image trains PPO only: drop the key or set it to PPO")
    else:
        raise UserError(f"unknown hyperparameter {key!r}{did_you_mean(key, _known_keys())}: "
                        f"use {PPO_PREFIX}<PPO field>, {STOP_PREFIX}<criterion> or one of "
                        f"{', '.join(sorted([*_JOB_KEYS, SIMULATOR_KEY, PRESET_KEY]))}")


def _choice(key: str, value: Any, check: Any) -> Any:
    try:
        return check(str(value))
    except UserError as error:
        raise UserError(f"{key}: {error}") from None


def canonical_key(key: str) -> str:
    """`key` with an old RLlib PPO name replaced by its RLlib 2.60 name; other keys as they are."""
    if not key.startswith(PPO_PREFIX):
        return key
    name, _, rest = key[len(PPO_PREFIX):].partition(".")
    if name not in LEGACY_NAMES:
        return key
    return PPO_PREFIX + ".".join(part for part in (LEGACY_NAMES[name], rest) if part)


def to_hyperparameters(job: JobConfig) -> dict[str, Any]:
    """The flat `rl.*` hyperparameters that reproduce `job` (e.g. for params.json or a rerun)."""
    flat: dict[str, Any] = {SIMULATOR_KEY: job.simulator, PRESET_KEY: job.preset}
    flat.update({f"{PPO_PREFIX}{name}": value for name, value in job.ppo.items()})
    flat.update({f"{STOP_PREFIX}{name}": value for name, value in dataclasses.asdict(job.stop).items()
                 if value is not None})
    flat.update({key: getattr(job, name) for key, (name, *_) in _JOB_KEYS.items()
                 if getattr(job, name) is not None})
    return flat


# key -> (JobConfig attribute, type, lowest and highest allowed value)
_JOB_KEYS: dict[str, tuple[str, type, float | None, float | None]] = {
    "rl.training.checkpoint_freq": ("checkpoint_freq", int, 1, None),
    "rl.training.keep_checkpoints": ("keep_checkpoints", int, 0, None),
    "rl.training.seed": ("seed", int, 0, 2**32 - 1),  # RLlib seeds numpy, which takes 32 bits
    # e^-5 .. e^2: a std of 0.007 .. 7.4 on actions in [-1, 1]
    INITIAL_LOG_STD_KEY: ("initial_log_std", float, -5.0, 2.0),
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
    if name == "observation_filter":
        if value not in OBSERVATION_FILTERS:
            raise UserError(f"{key} is {value!r}: choose one of {', '.join(OBSERVATION_FILTERS)}"
                            f"{did_you_mean(str(value), OBSERVATION_FILTERS)}")
        ppo[name] = value
        return
    defaults = _ppo_defaults()
    if name not in defaults:
        raise UserError(f"unknown PPO setting {key!r}{did_you_mean(name, list(defaults) + list(LEGACY_NAMES))}: "
                        f"{PPO_PREFIX}<field> takes RLlib 2.60 PPOConfig fields such as lr, gamma, "
                        "num_epochs, minibatch_size, train_batch_size_per_learner")
    if not rest:
        kinds = FIELD_TYPES.get(name) or _kinds_of(defaults[name])
        coerced = _coerce(key, value, kinds)
        if isinstance(coerced, dict) and isinstance(ppo.get(name), dict):
            merged = copy.deepcopy(ppo[name])
            _deep_update(merged, coerced)
            coerced = merged
        low, high, inclusive = BOUNDS.get(name, (None, None, True))
        ppo[name] = _check_bounds(key, coerced, low, high, inclusive)
        return
    # A nested key, e.g. model_config.fcnet_hiddens: the field must hold a dict.
    if not isinstance(defaults[name], dict):
        raise UserError(f"{key} sets a sub-key, but PPO field {name!r} is a "
                        f"{type(defaults[name]).__name__}, not a dict: use {PPO_PREFIX}{name}=<value>")
    target = ppo.setdefault(name, copy.deepcopy(defaults[name]))
    parts = rest.split(".")
    nested_defaults: Any = defaults[name]
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise UserError(f"{key}: {part!r} holds a {type(target).__name__}, not a dict")
        nested_defaults = nested_defaults.get(part, {}) if isinstance(nested_defaults, dict) else {}
    leaf_default = nested_defaults.get(parts[-1]) if isinstance(nested_defaults, dict) else None
    if name == "model_config" and parts[0] not in _model_config_defaults():
        raise UserError(f"unknown model setting {key!r}{did_you_mean(parts[0], _model_config_defaults())}: "
                        "see RLlib's DefaultModelConfig for the valid names")
    target[parts[-1]] = _coerce(key, value, _kinds_of(leaf_default))


def _set_stop(stop: StopCriteria, key: str, name: str, value: Any) -> None:
    fields = {f.name: f for f in dataclasses.fields(StopCriteria)}
    if name not in fields:
        raise UserError(f"unknown stop criterion {key!r}{did_you_mean(name, fields)}: "
                        f"choose one of {', '.join(STOP_PREFIX + n for n in fields)}")
    kind = float if name in ("episode_reward_mean", "time_total_s") else int
    coerced = _coerce(key, value, (kind,))
    if name != "episode_reward_mean":
        _check_bounds(key, coerced, 0, None, False)
    setattr(stop, name, coerced)


def _coerce(key: str, value: Any, kinds: tuple[type, ...]) -> Any:
    """`value` as one of `kinds` (tried in order); an empty tuple accepts any decoded JSON value."""
    if not kinds:
        return value
    for kind in kinds:
        try:
            return _as(kind, value)
        except (TypeError, ValueError):
            continue
    names = " or ".join(_KIND_NAMES.get(kind, kind.__name__) for kind in kinds)
    raise UserError(f"{key} must be {names}, got {value!r}") from None


_KIND_NAMES = {float: "a number", int: "a whole number", bool: "true or false", str: "a string",
               list: "a JSON list", dict: "a JSON object"}


def _as(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(value)
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float | str):  # never read True as 1
            raise TypeError(value)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        if kind is float:
            return number
        if isinstance(value, int):
            return value
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    if isinstance(value, kind):
        return value
    if kind in (list, dict) and isinstance(value, str):
        # SageMaker SDK v2 and the tuner encode a categorical list twice: "\"[64, 64]\"" -> "[64, 64]"
        decoded = decode_value(value)
        if isinstance(decoded, kind):
            return decoded
    raise TypeError(value)


def _kinds_of(default: Any) -> tuple[type, ...]:
    if default is None:
        return ()
    for kind in (bool, int, float, str, list, dict):
        if isinstance(default, kind):
            # An int default still takes floats where RLlib means a number; ints stay ints.
            return (kind,)
    return ()


def _check_bounds(key: str, value: Any, low: float | None, high: float | None, inclusive: bool) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    too_low = low is not None and (value < low or (value == low and not inclusive))
    too_high = high is not None and value > high
    if too_low or too_high:
        low_text = "" if low is None else f"{'>=' if inclusive else '>'} {low:g}"
        high_text = "" if high is None else f"<= {high:g}"
        allowed = " and ".join(text for text in (low_text, high_text) if text)
        raise UserError(f"{key} must be {allowed}, got {value!r}")
    return value


def _check_consistency(ppo: dict[str, Any]) -> None:
    batch, minibatch = ppo.get("train_batch_size_per_learner"), ppo.get("minibatch_size")
    if isinstance(batch, int) and isinstance(minibatch, int) and minibatch > batch:
        raise UserError(f"minibatch_size ({minibatch}) must be <= train_batch_size_per_learner ({batch}): "
                        f"lower {PPO_PREFIX}minibatch_size or raise {PPO_PREFIX}train_batch_size_per_learner")


def _deep_update(target: dict[str, Any], updates: Mapping[str, Any]) -> None:
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@functools.cache
def _ppo_defaults() -> dict[str, Any]:
    """PPOConfig's public fields and their RLlib defaults (the types hyperparameters are coerced to)."""
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


def _known_keys() -> list[str]:
    return [*_JOB_KEYS, SIMULATOR_KEY, PRESET_KEY, "rl.training.run",
            *(PPO_PREFIX + name for name in _ppo_defaults()),
            *(STOP_PREFIX + f.name for f in dataclasses.fields(StopCriteria))]
