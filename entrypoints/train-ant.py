"""SageMaker entry point: train the ant problem under the job contract ($SAGEMAKER_BASE_DIR)."""

import sys

from sagemaker_rl.job import run

if __name__ == "__main__":
    sys.exit(run("ant"))
