"""sagemaker_rl: tune RLlib PPO hyperparameters for robot-control problems, locally, on Ray or on SageMaker.

Importing the package does nothing heavy: Ray, torch and the simulators load when a job needs them, and
the Python API (`sagemaker_rl.api`: tune, resume, train, evaluate) with the tuner when it is first used.
"""

from typing import TYPE_CHECKING, Any

from sagemaker_rl.contract import JobPaths
from sagemaker_rl.errors import UserError
from sagemaker_rl.job import PROBLEMS, SIMULATORS

if TYPE_CHECKING:
    from sagemaker_rl.api import Training, Tuning, evaluate, resume, train, tune

__all__ = ["JobPaths", "PROBLEMS", "SIMULATORS", "Training", "Tuning", "UserError", "evaluate", "resume", "train",
           "tune"]
_API = ("Training", "Tuning", "evaluate", "resume", "train", "tune")  # from sagemaker_rl.api, loaded when used


def __getattr__(name: str) -> Any:
    if name in _API:  # the API loads the tuner (Optuna) and boto3, which a job does not need
        from sagemaker_rl import api

        return getattr(api, name)
    raise AttributeError(f"module 'sagemaker_rl' has no attribute {name!r}")
