"""The job: everything that runs inside one training job (and may load RLlib, torch and the simulators).

This module is the job package's public face, the only part the tuner (`sagemaker_rl.tuning`) and the
SageMaker client (`sagemaker_rl.sagemaker`) may import; importing it loads neither RLlib nor torch
(tests/test_structure.py). The job itself runs as `python -m sagemaker_rl.job --problem P` (or an
entrypoint, or the image's `train`); `check_hyperparameters` runs its parser in a child process.

Inside: `entry` (the job's main: contract in, training, contract out), `keys` (the `rl.*` names),
`hyperparameters` (those keys into a typed JobConfig), `problems` (the problem table and presets),
`envs` (the simulators' environments), `training` (the loop), `ppo_config` (JobConfig -> PPOConfig
and the algorithm), `learner` (the learner's live state), `checkpoints` (the resumable state),
`progress` (reward lines, progress.csv, TensorBoard), `model` (model/), `export` (ONNX), `connectors`,
`gsde`, `env_runner`, `evaluation`, `ray_session` (Ray's lifecycle in a job), `cluster` (multi-host),
`image` (the image's entry point), `standby` (a job process whose imports are done before its job).
"""

from sagemaker_rl.job.checkpoints import latest_checkpoint
from sagemaker_rl.job.entry import MODULE, check_hyperparameters, child_env, job_command, package_root, run
from sagemaker_rl.job.hyperparameters import not_live_reason
from sagemaker_rl.job.keys import (
    ENV_ID_KEY,
    ENV_KEYS,
    ENV_KWARGS_KEY,
    ENV_PACKAGE_KEY,
    EVALUATION_EPISODES_KEY,
    EVALUATION_INTERVAL_KEY,
    INITIAL_LOG_STD_KEY,
    MAX_EPISODE_STEPS_KEY,
    PLATFORM_PREFIXES,
    PPO_PREFIX,
    SEED_KEY,
    SIMULATOR_KEY,
    STOP_GRACE_KEY,
    STOP_PREFIX,
    canonical_key,
    ppo_key,
    target_label,
)
from sagemaker_rl.job.model import final_evaluation, trained_stop
from sagemaker_rl.job.problems import DEFAULT_SIMULATOR, PROBLEMS, SIMULATORS, get_problem
from sagemaker_rl.job.standby import READY_FD_ENV as STANDBY_READY_FD_ENV
from sagemaker_rl.job.standby import SCRIPT as STANDBY_SCRIPT
from sagemaker_rl.job.standby import assignment as standby_assignment

__all__ = [
    "DEFAULT_SIMULATOR",
    "ENV_ID_KEY",
    "ENV_KEYS",
    "ENV_KWARGS_KEY",
    "ENV_PACKAGE_KEY",
    "EVALUATION_EPISODES_KEY",
    "EVALUATION_INTERVAL_KEY",
    "MAX_EPISODE_STEPS_KEY",
    "INITIAL_LOG_STD_KEY",
    "MODULE",
    "PLATFORM_PREFIXES",
    "PPO_PREFIX",
    "PROBLEMS",
    "SEED_KEY",
    "SIMULATORS",
    "SIMULATOR_KEY",
    "STOP_GRACE_KEY",
    "STANDBY_SCRIPT",
    "STANDBY_READY_FD_ENV",
    "STOP_PREFIX",
    "canonical_key",
    "check_hyperparameters",
    "job_command",
    "child_env",
    "final_evaluation",
    "get_problem",
    "latest_checkpoint",
    "not_live_reason",
    "package_root",
    "ppo_key",
    "run",
    "standby_assignment",
    "target_label",
    "trained_stop",
]
