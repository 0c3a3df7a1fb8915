"""The job's entry: what every entrypoint runs — read the contract's inputs, train, write the outputs.

`python -m sagemaker_rl.job --problem reacher` is the same job as `entrypoints/train-reacher.py`, and
`python -m sagemaker_rl.job` (no problem) as `entrypoints/train-env.py`: the env `rl.env.id` names;
runners (local tuner, containers, Ray, SageMaker) start one of them. With `--check` the job only
parses hyperparameters (a JSON list of sets on stdin) and builds their envs: `check_hyperparameters`
runs the job's own parser and env check that way, so RLlib (which the parser asks for PPO's fields),
the simulators and the user's code load in that process only.
"""

from __future__ import annotations

import argparse
import contextlib
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

MODULE = "sagemaker_rl.job"  # `python -m MODULE [--problem P]` runs a job
_RELAYED = "sagemaker_rl-warning: "  # marks the check's own warnings on the child's stderr
# How long the check may take: parsing, and building and stepping each env (one that hangs fails the check).
CHECK_TIMEOUT_S = 300.0


def run(problem: str | None, paths: JobPaths | None = None) -> int:
    """Run the training job for `problem` (None: the env `rl.env.id` names) under the job contract; returns
    the exit code."""
    paths = paths or JobPaths.from_env()
    return contract.run_job(paths, lambda job_paths: _train(problem, job_paths))


def _train(problem: str | None, paths: JobPaths) -> None:
    from sagemaker_rl.job.training import train

    _configure_logging(paths)  # output/ exists: run_job made it
    raw = contract.read_hyperparameters(paths)
    job = job_config(raw, problem, paths)
    hosts = cluster.hosts_of(contract.read_resource_config(paths))
    cpus = contract.num_cpus()
    logger.info("job %s on %s of %s (%d CPUs): %s", job.env.label, hosts.current, ", ".join(hosts.hosts), cpus, job)
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


def job_config(raw: Mapping[str, Any], problem: str | None, paths: JobPaths | None = None) -> Any:
    """The JobConfig of `raw`, settled by what its env is (built and stepped once, under the stall watchdog)."""
    from sagemaker_rl.job import envs, ray_session
    from sagemaker_rl.job.hyperparameters import parse_hyperparameters

    job = parse_hyperparameters(raw, problem)
    with contextlib.nullcontext() if paths is None else ray_session.Watchdog(job.stall_timeout_s, paths):
        facts = envs.probe(job.env)
    return parse_hyperparameters(raw, problem, facts)


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


def child_env(code_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a job process started from here: this package, then the user's code, first on PYTHONPATH."""
    path = os.pathsep.join(filter(None, [package_root(), str(code_dir or ""), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **extra, "PYTHONPATH": path}


def job_command(problem: str | None) -> list[str]:
    """The arguments after `python` that run the job of `problem` (None: of the env its hyperparameters name)."""
    return ["-m", MODULE, *(["--problem", problem] if problem is not None else [])]


def check_hyperparameters(problem: str | None, hyperparameter_sets: Sequence[Mapping[str, Any]], *,
                          code_dir: Path | None = None, envs_here: bool = True) -> tuple[int, str] | None:
    """(index, reason) of the first set the job for `problem` would refuse, or None; checked in a child process.

    The child parses every set and builds and steps each distinct env of a job without a problem (or with
    env arguments) once, with `code_dir` importable. With `envs_here` False (the job runs in an image or
    on a cluster that may have packages this machine lacks), an env whose module is missing here is not
    checked, with a notice. The child's warnings (e.g. an old RLlib name) are logged here, once each.
    """
    try:
        done = subprocess.run(
            [sys.executable, *job_command(problem), "--check", *([] if envs_here else ["--missing-envs-ok"])],
            input=json.dumps(list(hyperparameter_sets), default=str), capture_output=True, text=True,
            env=child_env(code_dir),  # no Ray starts there, so no Ray setting is needed
            check=False, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(f"checking the hyperparameters and their envs did not finish in {CHECK_TIMEOUT_S:.0f} s: "
                        "an env's constructor, reset or step may never return") from None
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


def _check(problem: str | None, *, missing_envs_ok: bool) -> int:
    """The child's side of `check_hyperparameters`: check each set read from stdin; the first refusal on stdout."""
    from sagemaker_rl.job.hyperparameters import ENV_KWARGS_KEY, parse_hyperparameters

    relay = logging.StreamHandler(sys.stderr)
    relay.addFilter(logging.Filter("sagemaker_rl"))  # our warnings, not RLlib's
    relay.setFormatter(logging.Formatter(_RELAYED + "%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[relay])
    checked: set[str] = set()
    for index, hyperparameters in enumerate(json.load(sys.stdin)):
        try:
            job = parse_hyperparameters(hyperparameters, problem)
            settings = repr(job.env)
            if (problem is None or ENV_KWARGS_KEY in hyperparameters) and settings not in checked:
                checked.add(settings)
                _check_env(hyperparameters, problem, missing_envs_ok=missing_envs_ok)
        except UserError as error:
            print(json.dumps({"index": index, "error": str(error)}), flush=True)
            return USER_ERROR_EXIT
    return 0


def _check_env(hyperparameters: Mapping[str, Any], problem: str | None, *, missing_envs_ok: bool) -> None:
    from sagemaker_rl.job import envs

    try:
        job_config(hyperparameters, problem, None)
    except UserError as error:
        if not (missing_envs_ok and isinstance(error, envs.EnvCodeMissing)):
            raise
        logger.warning("notice: the env is not checked before the run, as its code is not on this machine: %s",
                       error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one training job under the SageMaker job layout "
                                     "($SAGEMAKER_BASE_DIR, default /opt/ml).")
    # No argparse `choices`: an unknown problem must fail under the contract (output/failure).
    parser.add_argument("--problem", help=f"one of {', '.join(PROBLEMS)} (default: the env rl.env.id names)")
    parser.add_argument("--check", action="store_true",
                        help="only check the JSON list of hyperparameter sets on stdin (see check_hyperparameters)")
    parser.add_argument("--missing-envs-ok", action="store_true", help="with --check: skip an env whose code is "
                        "missing here, with a notice")
    args = parser.parse_args(argv)
    return _check(args.problem, missing_envs_ok=args.missing_envs_ok) if args.check else run(args.problem)
