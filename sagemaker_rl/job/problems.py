"""The problem table: each robot-control problem as a row of data.

A problem names an environment per simulator, the episode limit and stop target that go with that
environment, and its presets: named sets of hyperparameters (`seed`: the original SageMaker RL
Roboschool scripts' values; `fast`: tuned here for a small machine, the default), each with a note
of its source. Everything else (construction, training) reads this table; nothing is copied per
problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sagemaker_rl.errors import UserError, did_you_mean
from sagemaker_rl.job.keys import ppo_key, training_key

SIMULATORS = ("roboschool", "mujoco")
DEFAULT_SIMULATOR = "roboschool"


@dataclass(frozen=True)
class SimulatorEnv:
    """One problem on one simulator."""

    env_id: str  # gymnasium id (mujoco) or "module:Class" of a pybullet_envs port (roboschool)
    max_episode_steps: int  # the limit the environment was registered with
    stop_reward: float  # mean episode return at which a job stops by default


@dataclass(frozen=True)
class Preset:
    """A named set of hyperparameters for one problem: PPO fields and the job's own settings."""

    ppo: dict[str, Any]  # PPO fields (RLlib 2.60 names): rl.training.config.<name>
    note: str  # where the values come from
    training: dict[str, Any] = field(default_factory=dict)  # the job's own settings: rl.training.<name>

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The preset in the flat `rl.*` keys a user writes (applied over SHARED_PPO, before any other value)."""
        return {**{training_key(name): value for name, value in self.training.items()},
                **{ppo_key(name): value for name, value in self.ppo.items()}}


@dataclass(frozen=True)
class Problem:
    """A robot-control problem: its environments and its presets per simulator."""

    name: str
    envs: dict[str, SimulatorEnv]
    presets: dict[str, dict[str, Preset]]  # preset name -> simulator -> preset
    note: str = ""  # where the values come from

    def env(self, simulator: str) -> SimulatorEnv:
        """The problem's env on `simulator`; a UserError names the simulators it has otherwise."""
        if check_simulator(simulator) not in self.envs:
            raise UserError(f"problem {self.name} has no {simulator} env: choose the simulator "
                            f"{' or '.join(self.envs)}")
        return self.envs[simulator]


PRESETS = ("fast", "seed")
DEFAULT_PRESET = "fast"
SEED_PRESET = "seed"
GENERIC_PRESET = "generic"  # for any env: problems without a tuned preset, and envs without a problem

# PPO settings every job starts from, in RLlib 2.60 names: the original SageMaker RL Roboschool
# scripts' values (the `seed` preset adds nothing to them but humanoid's batch), adapted to the new
# API stack. Every value a job relies on is set here, so RLlib's defaults never decide. Ours, for speed:
# 16 vector envs per runner (RLlib's per-step overhead is paid per vector step) and a [64, 64] tanh network
# (the PPO paper's MuJoCo network; the scripts' implicit [256, 256] made the learner most of an iteration).
# The measurements: docs/problems.md, "Adaptations for speed".
SHARED_PPO: dict[str, Any] = {
    "gamma": 0.995,
    "lambda_": 1.0,
    "kl_coeff": 1.0,
    "use_kl_loss": True,
    "lr": 1e-4,
    "clip_param": 0.3,
    "vf_clip_param": 10_000.0,  # returns here reach thousands; RLlib's default 10 would clip all
    "vf_loss_coeff": 1.0,
    "entropy_coeff": 0.0,
    "grad_clip": None,
    "num_epochs": 20,
    "minibatch_size": 1000,
    "train_batch_size_per_learner": 25_000,
    "batch_mode": "complete_episodes",
    "num_envs_per_env_runner": 16,
    "observation_filter": "NoFilter",
    "model_config": {"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "free_log_std": True},
}

_SEED_NOTE = "the original SageMaker RL Roboschool train-{name}.py: SHARED_PPO{extra}, stop at {stop:g}"
_SEED_NOTE_NO_SCRIPT = ("the original SageMaker RL Roboschool scripts' shared values (SHARED_PPO; {name} had "
                        "no script of its own), stop at {stop:g}")
_HUMANOID_SEED = {"num_epochs": 10, "minibatch_size": 32_768, "train_batch_size_per_learner": 320_000}

# The `fast` presets: what learns fastest per wall-second on a small machine. Shared by every
# problem: observation normalization (the first lever measured), truncated episodes (complete episodes make
# an iteration at least runners x envs x an episode long), no KL loss (the clipped objective alone, as most
# PPO implementations), value-loss weight and gradient clip 0.5 (rl-zoo3's pybullet rows), and 16 env copies
# in the whole job, split over its runners: 16 copies x 512 steps a batch on any core count, so values tuned
# on one-CPU trials hold on two. The measurements behind each: docs/problems.md.
_FAST_SHARED = {
    "observation_filter": "MeanStdFilter",
    "batch_mode": "truncate_episodes",
    "use_kl_loss": False,
    "vf_loss_coeff": 0.5,
    "grad_clip": 0.5,
    "minibatch_size": 1024,
    "train_batch_size_per_learner": 8192,
}
_FAST_ENVS = 16  # rl.training.num_envs of every `fast` preset
# Reacher: the best trial of `sagemaker_rl/tuning/spaces/ppo-fast.yaml` on reacher/roboschool, re-evaluated on
# fresh seeds; its lr annealed to a tenth over 1M env steps afterwards (a study's short trials cannot tell a
# schedule). How it was found and what it reaches: docs/problems.md and docs/benchmarks.md.
_FAST_REACHER = {
    **_FAST_SHARED,
    "lr": [[0, 1.6e-3], [1_000_000, 1.6e-4]],
    "gamma": 0.9945,
    "lambda_": 0.989,
    "clip_param": 0.355,
    "num_epochs": 12,
}
_FAST_REACHER_LOG_STD = -0.41
# Hopper and humanoid (chosen over rl-zoo3's row by bench/humanoid.py): the common PPO-on-MuJoCo values over the
# shared block, with a gradient clip, an initial log std of 0 (it explores longer) and lr annealed to a tenth over
# 4M steps: without the three, hopper/roboschool's policy collapsed after its std shrank (measured, not a study:
# docs/problems.md).
_FAST_LOCOMOTION = {
    **_FAST_SHARED,
    "lr": [[0, 3e-4], [4_000_000, 3e-5]],
    "gamma": 0.99,
    "lambda_": 0.95,
    "clip_param": 0.2,
    "num_epochs": 10,
    "minibatch_size": 512,
}
_FAST_LOCOMOTION_LOG_STD = 0.0
_HOPPER_FAST_NOTE = ("measured here on hopper/roboschool with 2 CPUs: common PPO-on-MuJoCo values (gamma 0.99, lambda "
                     "0.95, clip 0.2, 10 epochs of minibatch 512 from 8192), lr 3e-4 annealed to 3e-5 over 4M steps, "
                     "initial log std 0, gradient clip 0.5, observation filter; not a study")
_HUMANOID_FAST_NOTE = ("chosen here by bench/humanoid.py on humanoid/roboschool with 2 CPUs: hopper/roboschool's fast "
                       "values against rl-zoo3's HumanoidBulletEnv-v0 row (lr 2.5e-4, batch 16384, minibatch 256), "
                       "10 minutes each, one seed; not a study")
_FAST_NOTE_UNTUNED = ("not tuned for this problem: the generic preset (hopper/roboschool's fast values, chosen by "
                      "bench/generic_default.py on other problems)")
# The generic preset: where a job on an env without a tuned preset starts (every row's `fast` but reacher's,
# hopper/roboschool's and humanoid/roboschool's). Chosen by bench/generic_default.py among three candidates on two
# problems no preset was tuned on, and reported against RLlib's defaults and the seed values on three others:
# hopper's fast values (common PPO-on-MuJoCo values) won. The figures: docs/benchmarks.md, "Generic default".
GENERIC = Preset(_FAST_LOCOMOTION, _FAST_NOTE_UNTUNED,
                 {"num_envs": _FAST_ENVS, "initial_log_std": _FAST_LOCOMOTION_LOG_STD})
_SEED_ANY = Preset({}, "the original SageMaker RL Roboschool scripts' shared PPO values (SHARED_PPO)")


def _fast(ppo: dict[str, Any], initial_log_std: float, note: str) -> Preset:
    return Preset(ppo, note, {"num_envs": _FAST_ENVS, "initial_log_std": initial_log_std})


def _presets(name: str, envs: dict[str, SimulatorEnv], seed: dict[str, Any] | None,
             fast: dict[str, Preset]) -> dict[str, dict[str, Preset]]:
    template = _SEED_NOTE if seed is not None else _SEED_NOTE_NO_SCRIPT
    extra = "".join(f", {field_name} {value}" for field_name, value in (seed or {}).items())
    return {
        "seed": {sim: Preset(seed or {}, template.format(name=name, extra=extra, stop=env.stop_reward))
                 for sim, env in envs.items()},
        "fast": {sim: fast[sim] for sim in envs},
    }


def _problem(name: str, envs: dict[str, SimulatorEnv], note: str, *, seed: dict[str, Any] | None = None,
             fast: dict[str, Preset] | None = None) -> Problem:
    """A row of PROBLEMS. `seed`: what the problem's original script set beyond SHARED_PPO (None: it had no
    script); `fast`: the fast preset per simulator (None: GENERIC on each)."""
    return Problem(name, envs, _presets(name, envs, seed, fast or dict.fromkeys(envs, GENERIC)), note)


_NO_SCRIPT_NOTE = "No original script: shared PPO values; registered limits and stop rewards."
_REACHER_FAST_NOTE = ("tuned here on 2 cores: sagemaker_rl/tuning/spaces/ppo-fast.yaml on reacher/roboschool, "
                      "best trial re-evaluated on 3 fresh seeds")

# The Roboschool family as PyBullet ports it, with Gymnasium's MuJoCo v5 counterpart where there is one. Episode
# limits and stop rewards are the registered ones (pybullet_envs/__init__.py's *BulletEnv-v0, which repeat
# Roboschool's *-v1; gymnasium.spec(id) for v5) unless a comment says otherwise. The first three rows are the
# original SageMaker RL Roboschool scripts' problems; the others had no script.
PROBLEMS: dict[str, Problem] = {problem.name: problem for problem in (
    _problem("reacher", {
        "roboschool": SimulatorEnv("pybullet_envs.gym_manipulator_envs:ReacherBulletEnv", 150, 18.0),
        "mujoco": SimulatorEnv("Reacher-v5", 50, -3.75),
    }, "Original train-reacher.py: stop at 18 (RoboschoolReacher-v1), shared PPO values.", seed={}, fast={
        "roboschool": _fast(_FAST_REACHER, _FAST_REACHER_LOG_STD, _REACHER_FAST_NOTE),
        "mujoco": _fast(_FAST_REACHER, _FAST_REACHER_LOG_STD, "not tuned on mujoco: reacher/roboschool's fast values"),
    }),
    _problem("hopper", {
        "roboschool": SimulatorEnv("pybullet_envs.gym_locomotion_envs:HopperBulletEnv", 1000, 2500.0),
        "mujoco": SimulatorEnv("Hopper-v5", 1000, 3800.0),
    }, "Original train-hopper.py: stop at 2500 (RoboschoolHopper-v1), shared PPO values.", seed={}, fast={
        "roboschool": _fast(_FAST_LOCOMOTION, _FAST_LOCOMOTION_LOG_STD, _HOPPER_FAST_NOTE),
        "mujoco": GENERIC,
    }),
    _problem("humanoid", {
        # pybullet_envs registers no threshold: 3500 is RoboschoolHumanoid-v1's and the original script's
        "roboschool": SimulatorEnv("pybullet_envs.gym_locomotion_envs:HumanoidBulletEnv", 1000, 3500.0),
        # gymnasium registers no threshold for Humanoid; 6000 is a commonly quoted "solved" return
        "mujoco": SimulatorEnv("Humanoid-v5", 1000, 6000.0),
    }, "Original train-humanoid.py: stop at 3500, 10 epochs, minibatch 32768, batch 320000.", seed=_HUMANOID_SEED,
        fast={"roboschool": _fast(_FAST_LOCOMOTION, _FAST_LOCOMOTION_LOG_STD, _HUMANOID_FAST_NOTE), "mujoco": GENERIC}),
    _problem("inverted_pendulum", {
        "roboschool": SimulatorEnv("pybullet_envs.gym_pendulum_envs:InvertedPendulumBulletEnv", 1000, 950.0),
        "mujoco": SimulatorEnv("InvertedPendulum-v5", 1000, 950.0),
    }, _NO_SCRIPT_NOTE),
    _problem("inverted_pendulum_swingup", {  # no MuJoCo counterpart
        "roboschool": SimulatorEnv("pybullet_envs.gym_pendulum_envs:InvertedPendulumSwingupBulletEnv", 1000, 800.0),
    }, _NO_SCRIPT_NOTE),
    _problem("inverted_double_pendulum", {
        "roboschool": SimulatorEnv("pybullet_envs.gym_pendulum_envs:InvertedDoublePendulumBulletEnv", 1000, 9100.0),
        "mujoco": SimulatorEnv("InvertedDoublePendulum-v5", 1000, 9100.0),
    }, _NO_SCRIPT_NOTE),
    _problem("walker2d", {
        "roboschool": SimulatorEnv("pybullet_envs.gym_locomotion_envs:Walker2DBulletEnv", 1000, 2500.0),
        # gymnasium registers no threshold for Walker2d; 3000 is a commonly quoted "solved" return
        "mujoco": SimulatorEnv("Walker2d-v5", 1000, 3000.0),
    }, _NO_SCRIPT_NOTE + " Mujoco's stop reward: see the comment."),
    _problem("half_cheetah", {
        "roboschool": SimulatorEnv("pybullet_envs.gym_locomotion_envs:HalfCheetahBulletEnv", 1000, 3000.0),
        "mujoco": SimulatorEnv("HalfCheetah-v5", 1000, 4800.0),
    }, _NO_SCRIPT_NOTE),
    _problem("ant", {
        "roboschool": SimulatorEnv("pybullet_envs.gym_locomotion_envs:AntBulletEnv", 1000, 2500.0),
        "mujoco": SimulatorEnv("Ant-v5", 1000, 6000.0),
    }, _NO_SCRIPT_NOTE),
    _problem("humanoid_flagrun", {  # no MuJoCo counterpart
        "roboschool": SimulatorEnv("pybullet_envs.gym_locomotion_envs:HumanoidFlagrunBulletEnv", 1000, 2000.0),
    }, _NO_SCRIPT_NOTE),
    _problem("humanoid_flagrun_harder", {  # no MuJoCo counterpart
        # neither pybullet_envs nor Roboschool registers a threshold, and none is commonly quoted: humanoid_flagrun's
        "roboschool": SimulatorEnv("pybullet_envs.gym_locomotion_envs:HumanoidFlagrunHarderBulletEnv", 1000, 2000.0),
    }, _NO_SCRIPT_NOTE + " The stop reward: see the comment."),
)}


def get_problem(name: str) -> Problem:
    """The problem called `name`; a UserError names the choices otherwise."""
    try:
        return PROBLEMS[name]
    except KeyError:
        raise UserError(f"unknown problem {name!r}: choose one of {', '.join(PROBLEMS)}"
                        f"{did_you_mean(name, PROBLEMS)}") from None


def get_preset(problem: str | None, simulator: str, name: str) -> Preset:
    """The preset `name` of `problem` on `simulator` (None: of an env without a problem); a UserError names the
    choices otherwise. Every job may start from the generic preset."""
    if name == GENERIC_PRESET:
        return GENERIC
    presets = get_problem(problem).presets if problem is not None else {SEED_PRESET: {simulator: _SEED_ANY}}
    if name not in presets:
        choices = [*presets, GENERIC_PRESET]
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join(choices)}{did_you_mean(name, choices)}")
    if problem is not None:
        get_problem(problem).env(simulator)  # a UserError for a simulator it lacks
    return presets[name][check_simulator(simulator)]


def default_preset(problem: str | None) -> str:
    """The preset a job starts from unless rl.training.preset says otherwise: a problem's `fast`, else generic."""
    return DEFAULT_PRESET if problem is not None else GENERIC_PRESET


def check_simulator(name: str) -> str:
    """`name` if it is a simulator we support; a UserError names the choices otherwise."""
    if name not in SIMULATORS:
        raise UserError(f"unknown simulator {name!r}: choose one of {', '.join(SIMULATORS)}"
                        f"{did_you_mean(name, SIMULATORS)}")
    return name

