"""SageMaker entry point: train the humanoid_flagrun_harder problem under the job contract ($SAGEMAKER_BASE_DIR)."""

import sys

from sagemaker_rl.job import run

if __name__ == "__main__":
    sys.exit(run("humanoid_flagrun_harder"))
