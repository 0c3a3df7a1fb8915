"""SageMaker entry point: train the environment the hyperparameters name (rl.env.id) under the job contract."""

import sys

from sagemaker_rl.job import run

if __name__ == "__main__":
    sys.exit(run(None))
