"""Hyperparameter names: every `rl.*` key a job reads, spelled once.

A job takes SageMaker's flat hyperparameters: `rl.training.config.<PPO field>` (RLlib 2.60 names),
`rl.training.stop.<criterion>`, the job's own `rl.training.<setting>` and the env's `rl.env.<setting>`. The
parser, the problem table, the job's messages and the tuner (through the job's face) read the names
from here. Importing this module loads nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

KEY_ROOT = "rl."  # every key of ours starts with it
TRAINING_PREFIX = KEY_ROOT + "training."  # the job's own settings: rl.training.<JobConfig attribute>
PPO_PREFIX = TRAINING_PREFIX + "config."  # rl.training.config.<PPOConfig field>
STOP_PREFIX = TRAINING_PREFIX + "stop."  # rl.training.stop.<StopCriteria field>
ENV_PREFIX = KEY_ROOT + "env."
PLATFORM_PREFIXES = ("sagemaker_", "_tuning_")  # SageMaker's own keys: not ours to judge

SIMULATOR_KEY = ENV_PREFIX + "simulator"  # a problem's env on this simulator
# The env itself, for a job without a problem (`train-env.py`): a Gymnasium id or module:Class ...
ENV_ID_KEY = ENV_PREFIX + "id"
ENV_PACKAGE_KEY = ENV_PREFIX + "package"  # ... after importing this module (it registers the id) ...
ENV_KWARGS_KEY = ENV_PREFIX + "kwargs"  # ... built with these keyword arguments (any job) ...
MAX_EPISODE_STEPS_KEY = ENV_PREFIX + "max_episode_steps"  # ... and this time limit (any job)
ENV_KEYS = (SIMULATOR_KEY, ENV_ID_KEY, ENV_PACKAGE_KEY, ENV_KWARGS_KEY, MAX_EPISODE_STEPS_KEY)  # and kwargs.<name>
PRESET_KEY = TRAINING_PREFIX + "preset"
RUN_KEY = TRAINING_PREFIX + "run"  # the seed's algorithm name: PPO is the only one accepted
SEED_KEY = TRAINING_PREFIX + "seed"
CHECKPOINT_FREQ_KEY = TRAINING_PREFIX + "checkpoint_freq"
KEEP_CHECKPOINTS_KEY = TRAINING_PREFIX + "keep_checkpoints"
INITIAL_LOG_STD_KEY = TRAINING_PREFIX + "initial_log_std"
NUM_ENVS_KEY = TRAINING_PREFIX + "num_envs"
GSDE_KEY = TRAINING_PREFIX + "gsde_resample_steps"
STALL_TIMEOUT_KEY = TRAINING_PREFIX + "stall_timeout_s"
CLUSTER_TIMEOUT_KEY = TRAINING_PREFIX + "cluster_timeout_s"
STOP_GRACE_KEY = TRAINING_PREFIX + "stop_grace_s"
SAMPLER_KEY = TRAINING_PREFIX + "sampler"
LEARNER_KEY = TRAINING_PREFIX + "learner"
EVALUATION_INTERVAL_KEY = TRAINING_PREFIX + "evaluation_interval"
EVALUATION_EPISODES_KEY = TRAINING_PREFIX + "evaluation_episodes"
PER_RUNNER_ENVS_KEY = PPO_PREFIX + "num_envs_per_env_runner"

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


def ppo_key(name: str) -> str:
    """The hyperparameter that sets PPO field `name`: `lr` -> `rl.training.config.lr`."""
    return PPO_PREFIX + name


def training_key(name: str) -> str:
    """The hyperparameter that sets the job's own setting `name`: `seed` -> `rl.training.seed`."""
    return TRAINING_PREFIX + name


def training_attribute(key: str) -> str:
    """The JobConfig attribute a `rl.training.<setting>` key sets: `rl.training.seed` -> `seed`."""
    assert key.startswith(TRAINING_PREFIX), key
    return key[len(TRAINING_PREFIX):]


def canonical_key(key: str) -> str:
    """`key` with an old RLlib PPO name replaced by its RLlib 2.60 name; other keys as they are."""
    if not key.startswith(PPO_PREFIX):
        return key
    name, _, rest = key[len(PPO_PREFIX):].partition(".")
    if name not in LEGACY_NAMES:
        return key
    return PPO_PREFIX + ".".join(part for part in (LEGACY_NAMES[name], rest) if part)


def target_label(problem: str | None, hyperparameters: Mapping[str, Any]) -> str:
    """What a job or run trains, for file and job names: the problem, or its env's id without the module."""
    name = problem or str(hyperparameters.get(ENV_ID_KEY, "env")).rpartition(":")[2]
    return re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-").lower()[:40] or "env"


# What each of our own keys does, in one line, written once: the hyperparameter reference (reference.py, the docs'
# Hyperparameters page) shows it beside the key's type, bounds and default. PPO fields are RLlib's (reference.py).
MEANINGS: dict[str, str] = {
    PRESET_KEY: "the preset the values start from: `fast` (tuned here for a small machine; a problem's default), "
                "`seed` (the original scripts' values) or `generic` (where an env without a tuned preset starts)",
    RUN_KEY: "the original scripts' algorithm name: PPO is the only one accepted",
    SEED_KEY: "seeds RLlib and the environments: every env copy of every env runner gets its own seed",
    CHECKPOINT_FREQ_KEY: "iterations between checkpoints (one is always written at the end)",
    KEEP_CHECKPOINTS_KEY: "newest checkpoints kept in `checkpoints/` (0 keeps all)",
    INITIAL_LOG_STD_KEY: "the policy's free log std at a fresh start (RLlib starts at 0, a std of 1 on actions in "
                         "[-1, 1]); a resume keeps the learned one; with gSDE, the noise matrices' log std "
                         "(default -2)",
    NUM_ENVS_KEY: "vector env copies of the whole job, split evenly over its env runners (rounded up; all in the "
                  "driver on one CPU), so a batch has the same shape on any core count; "
                  f"`{PER_RUNNER_ENVS_KEY}` replaces it (setting both is refused)",
    GSDE_KEY: "turns on gSDE (generalized state-dependent exploration, SB3's `use_sde`), its noise matrices drawn "
              "anew every N env steps (SB3's `sde_sample_freq`); off by default",
    STALL_TIMEOUT_KEY: "seconds without progress (start-up, one iteration) after which the job fails with its last "
                       "log lines",
    CLUSTER_TIMEOUT_KEY: "a multi-host job: seconds a host waits for the Ray head, and the head for every host, "
                         "before it fails with the reason",
    STOP_GRACE_KEY: "seconds after SIGTERM (a stop, a spot interruption) that the iteration in progress may take "
                    "to finish before the job checkpoints and ends; one that takes longer is cut short and the "
                    "last completed iteration is checkpointed instead",
    SAMPLER_KEY: "how env runners step their env copies: `lean` (the job's loop, one array operation per vector "
                 "step where RLlib's runs its connectors per copy; it falls back to RLlib's for what it does not "
                 "serve, and says so) or `rllib` (RLlib's own loop)",
    LEARNER_KEY: "how the learner loops over minibatches: `lean` (RLlib's update with less bookkeeping per minibatch, "
                 "the same weights to the bit; it falls back to RLlib's for what it does not serve, and says so) or "
                 "`rllib` (RLlib's own learner)",
    EVALUATION_INTERVAL_KEY: "env steps between deterministic evaluations of the policy (its mean action, on "
                             "episodes of fixed seeds, apart from training): each prints an `evaluation_reward_mean` "
                             "line; 0 (the default) evaluates at the job's end only",
    EVALUATION_EPISODES_KEY: "episodes of each evaluation, the one of the policy the job ends with included (it "
                             "prints the final `evaluation_reward_mean` and model/result.json keeps it); 0 evaluates "
                             "never",
    STOP_PREFIX + "episode_reward_mean": "stop when the mean return over the last 100 episodes reaches this",
    STOP_PREFIX + "time_total_s": "stop after this many training seconds, summed across restarts",
    STOP_PREFIX + "timesteps_total": "stop after this many env steps, summed across restarts",
    STOP_PREFIX + "training_iteration": "stop after this many iterations, counted across restarts",
    SIMULATOR_KEY: "a problem's env: `roboschool` (the PyBullet ports) or `mujoco` (Gymnasium's MuJoCo v5)",
    ENV_ID_KEY: "the env of a job without a problem (`train-env.py`, `scripts/train.py --env`): a Gymnasium id "
                "(`Pendulum-v1`), an id a package registers, or `module:Class` of your code",
    ENV_PACKAGE_KEY: "a module imported before the env is made (it registers the id)",
    ENV_KWARGS_KEY: "the env's constructor arguments, a JSON object",
    ENV_KWARGS_KEY + ".<name>": "one constructor argument of the env (a tuner may search it)",
    MAX_EPISODE_STEPS_KEY: "the env's time limit (an env registered without one gets 1000, with a notice)",
}
