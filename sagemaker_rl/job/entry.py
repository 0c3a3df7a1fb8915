"""The job's entry: what every entrypoint runs — read the contract's inputs, train, write the outputs.

`python -m sagemaker_rl.job --problem reacher` is the same job as `entrypoints/train-reacher.py`;
runners (local tuner, containers, Ray, SageMaker) start one of the two. With `--check` the job only
parses hyperparameters (a JSON list of sets on stdin): `check_hyperparameters` runs the job's own
parser that way, so RLlib (which the parser asks for PPO's fields) loads in that process only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sagemaker_rl import contract
from sagemaker_rl.contract import JobPaths
from sagemaker_rl.errors import USER_ERROR_EXIT, UserError
from sagemaker_rl.job import cluster
from sagemaker_rl.job.problems import PROBLEMS

logger = logging.getLogger(__name__)

MODULE = "sagemaker_rl.job"  # `python -m MODULE --problem P` runs a job
_RELAYED = "sagemaker_rl-warning: "  # marks the check's own warnings on the child's stderr


def run(problem: str, paths: JobPaths | None = None) -> int:
    """Run the training job for `problem` under the job contract; returns the exit code."""
    paths = paths or JobPaths.from_env()
    return contract.run_job(paths, lambda job_paths: _train(problem, job_paths))


def _train(problem: str, paths: JobPaths) -> None:
    from sagemaker_rl.job.hyperparameters import parse_hyperparameters
    from sagemaker_rl.job.training import train

    _configure_logging(paths)  # output/ exists: run_job made it
    raw = contract.read_hyperparameters(paths)
    job = parse_hyperparameters(raw, problem)
    hosts = cluster.hosts_of(contract.read_resource_config(paths))
    cpus = contract.num_cpus()
    logger.info("job %s on %s of %s (%d CPUs): %s", problem, hosts.current, ", ".join(hosts.hosts), cpus, job)
    if not hosts.multi:
        train(job, paths, cpus=cpus)
    elif not hosts.is_head:  # its CPUs join the head's cluster; the head trains and writes the model
        cluster.join(hosts, cpus, timeout_s=job.cluster_timeout_s, log=paths.log_file, token=paths.ray_token_file)
        return
    else:
        with cluster.head(hosts, cpus, timeout_s=job.cluster_timeout_s, log=paths.log_file,
                          token=paths.ray_token_file) as cluster_cpus:
            train(job, paths, cpus=cluster_cpus, on_built=cluster.report_env_runners(hosts))
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


def package_root() -> str:
    """The directory holding the sagemaker_rl package, so that a child process runs this very code."""
    return str(Path(__file__).resolve().parents[2])


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a job process started from here: this package first on PYTHONPATH."""
    path = os.pathsep.join(filter(None, [package_root(), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **extra, "PYTHONPATH": path}


def check_hyperparameters(problem: str, hyperparameter_sets: Sequence[Mapping[str, Any]]) -> tuple[int, str] | None:
    """(index, reason) of the first set the job for `problem` would refuse, or None; parsed in a child process.

    The parser's warnings (e.g. an old RLlib name) are logged here, once each.
    """
    done = subprocess.run(
        [sys.executable, "-m", MODULE, "--problem", problem, "--check"],
        input=json.dumps(list(hyperparameter_sets), default=str),
        capture_output=True,
        text=True,
        env=child_env(),  # it parses only: no Ray starts there, so no Ray setting is needed
        check=False,
    )
    relayed = (line[len(_RELAYED):] for line in done.stderr.splitlines() if line.startswith(_RELAYED))
    for warning in dict.fromkeys(relayed):
        logger.warning("%s", warning)
    if done.returncode == 0:
        return None
    if done.returncode == USER_ERROR_EXIT and done.stdout.strip():
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        return int(answer["index"]), str(answer["error"])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"checking hyperparameters failed ({contract.exit_hint(done.returncode)}): {tail}")


def _check(problem: str) -> int:
    """The child's side of `check_hyperparameters`: parse each set read from stdin; the first refusal on stdout."""
    from sagemaker_rl.job.hyperparameters import parse_hyperparameters

    relay = logging.StreamHandler(sys.stderr)
    relay.addFilter(logging.Filter("sagemaker_rl"))  # our warnings, not RLlib's
    relay.setFormatter(logging.Formatter(_RELAYED + "%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[relay])
    for index, hyperparameters in enumerate(json.load(sys.stdin)):
        try:
            parse_hyperparameters(hyperparameters, problem)
        except UserError as error:
            print(json.dumps({"index": index, "error": str(error)}), flush=True)
            return USER_ERROR_EXIT
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one training job under the SageMaker job layout "
                                     "($SAGEMAKER_BASE_DIR, default /opt/ml).")
    # No argparse `choices`: an unknown problem must fail under the contract (output/failure).
    parser.add_argument("--problem", required=True, help=f"one of {', '.join(PROBLEMS)}")
    parser.add_argument("--check", action="store_true",
                        help="only parse the JSON list of hyperparameter sets on stdin (see check_hyperparameters)")
    args = parser.parse_args(argv)
    return _check(args.problem) if args.check else run(args.problem)
