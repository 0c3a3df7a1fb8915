"""The job: what every entrypoint runs — read the contract's inputs, train, write the outputs.

`python -m sagemaker_rl.job --problem reacher` is the same job as `entrypoints/train-reacher.py`;
runners (local tuner, containers, Ray, SageMaker) start one of the two.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from sagemaker_rl import contract
from sagemaker_rl.contract import JobPaths
from sagemaker_rl.problems import PROBLEMS

logger = logging.getLogger(__name__)


def run(problem: str, paths: JobPaths | None = None) -> int:
    """Run the training job for `problem` under the job contract; returns the exit code."""
    paths = paths or JobPaths.from_env()
    return contract.run_job(paths, lambda job_paths: _train(problem, job_paths))


def _train(problem: str, paths: JobPaths) -> None:
    from sagemaker_rl.hyperparameters import parse_hyperparameters
    from sagemaker_rl.training import train

    _configure_logging(paths)  # output/ exists: run_job made it
    raw = contract.read_hyperparameters(paths)
    job = parse_hyperparameters(raw, problem)
    resources = contract.read_resource_config(paths)
    cpus = contract.num_cpus()
    logger.info("job %s on %s (%d CPUs): %s", problem, resources.get("current_host"), cpus, job)
    train(job, paths, cpus=cpus)
    print(f"Model written to {paths.model}", flush=True)


def _configure_logging(paths: JobPaths) -> None:
    """Console: our own notices only. File (output/job.log): everything, including RLlib and Ray."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file_handler = logging.FileHandler(paths.log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    console.addFilter(logging.Filter("sagemaker_rl"))
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    logging.captureWarnings(True)  # library DeprecationWarnings go to the file, not the console
    warnings.simplefilter("default")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one training job under the SageMaker job layout "
                                     "($SAGEMAKER_BASE_DIR, default /opt/ml).")
    # No argparse `choices`: an unknown problem must fail under the contract (output/failure).
    parser.add_argument("--problem", required=True, help=f"one of {', '.join(PROBLEMS)}")
    args = parser.parse_args(argv)
    return run(args.problem)


if __name__ == "__main__":
    sys.exit(main())
