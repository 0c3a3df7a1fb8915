"""sagemaker_rl: tune RLlib PPO hyperparameters for robot-control problems, locally, on Ray or on SageMaker.

Importing the package does nothing heavy: Ray, torch and the simulators load when a job needs them.
"""

from sagemaker_rl.contract import JobPaths
from sagemaker_rl.errors import UserError
from sagemaker_rl.job import PROBLEMS, SIMULATORS

__all__ = ["JobPaths", "PROBLEMS", "SIMULATORS", "UserError"]
