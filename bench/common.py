"""Shared helpers of the benchmarks: child processes, the machine's state, number formatting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
RESULT_PREFIX = "BENCH_RESULT "  # a child benchmark prints its result as one JSON line after this


def cores() -> int:
    return len(os.sched_getaffinity(0))


def load_average() -> float:
    """The 1-minute load average: the machine is shared, so every figure is reported with it."""
    return round(os.getloadavg()[0], 2)


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a benchmark child: this repository importable (its jobs start Ray with a token of their own)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(BENCH), os.environ.get("PYTHONPATH")]))}
    env.update(extra)
    return env


def run_child(script: str, args: list[str], *, timeout: float) -> dict[str, Any]:
    """Run `bench/<script>` in a fresh process (its own Ray, its own torch threads); its result dict."""
    started = time.perf_counter()
    process = subprocess.run([sys.executable, str(BENCH / script), *args], env=child_env(), text=True,
                             capture_output=True, timeout=timeout, check=False)
    for line in process.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            result["wall_s"] = round(time.perf_counter() - started, 1)
            return result
    tail = "\n".join((process.stderr or process.stdout).strip().splitlines()[-15:])
    raise RuntimeError(f"bench/{script} {' '.join(args)} ended with code {process.returncode} and no result:\n{tail}")


@dataclass(frozen=True)
class Target:
    """Where a config trains: a problem row on a simulator, or any env by id (a job without a problem)."""

    label: str  # as given on the command line
    problem: str | None  # key of PROBLEMS; None: the env `env` names
    env: dict[str, Any]  # rl.env.simulator of a problem, rl.env.id of an env


def target(label: str) -> Target:
    """`problem/simulator` of the problem table, else an env id (a job without a problem)."""
    from sagemaker_rl.job import ENV_ID_KEY, PROBLEMS, SIMULATOR_KEY

    name, _, simulator = label.partition("/")
    if name in PROBLEMS:
        return Target(label, name, {SIMULATOR_KEY: simulator or "roboschool"})
    return Target(label, None, {ENV_ID_KEY: label})


@dataclass
class JobRun:
    """A job run as a user starts it: its directory (while the `job` context lasts), output and exit code."""

    paths: Any  # sagemaker_rl.contract.JobPaths
    stdout: str
    stderr: str
    exit_code: int
    wall_s: float

    @property
    def failure(self) -> str | None:
        """Its failure line (output/failure, else the end of stderr), None when it succeeded."""
        if self.paths.failure_file.is_file():
            return self.paths.failure_file.read_text().splitlines()[0]
        return None if self.exit_code == 0 else " | ".join(self.stderr.strip().splitlines()[-5:])


@contextmanager
def job(problem: str | None, hyperparameters: dict[str, Any], *, cpus: int, timeout_s: float,
        prefix: str = "bench-job-") -> Iterator[JobRun]:
    """`python -m sagemaker_rl.job [--problem P]` in a fresh base dir (HOME too: Ray's token and scratch files stay
    there), its inputs written as SageMaker writes them; the directory is removed when the context ends."""
    from sagemaker_rl.contract import JobPaths, write_inputs
    from sagemaker_rl.job import job_command

    with tempfile.TemporaryDirectory(prefix=prefix) as base:
        paths = JobPaths(Path(base))
        write_inputs(paths, hyperparameters)
        env = child_env(SAGEMAKER_BASE_DIR=base, HOME=base, SM_NUM_CPUS=str(cpus))
        started = time.monotonic()
        stdout, stderr, code = run_process([sys.executable, *job_command(problem)], env, base, timeout_s)
        yield JobRun(paths, stdout, stderr, code, round(time.monotonic() - started, 1))


def run_process(command: list[str], env: dict[str, str], cwd: str, timeout_s: float) -> tuple[str, str, int]:
    """stdout, stderr and exit code of `command`; its process group (a job's Ray too) killed at timeout_s."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr += f"\nkilled after {timeout_s:.0f} s"
    return stdout, stderr, process.returncode


def tune(args: list[str], run_dir: Path) -> tuple[float, int, Any]:
    """Run `scripts/tune.py ARGS --run-dir RUN_DIR` to its end (its output in RUN_DIR/bench-stdout.log);
    the wall seconds, the exit code and the run's Optuna study."""
    import optuna

    from sagemaker_rl.tuning import load_run_config

    started = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "tune.py"), *args, "--run-dir", str(run_dir)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    wall_s = time.monotonic() - started
    (run_dir / "bench-stdout.log").write_text(done.stdout + done.stderr)
    config = load_run_config(run_dir)
    return wall_s, done.returncode, optuna.load_study(study_name=config.study_name, storage=config.storage)


def emit(result: dict[str, Any]) -> None:
    """Hand a child's result to the parent (see run_child)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def ours_on_its_env(items: list[dict[str, Any]], item: dict[str, Any]) -> dict[str, Any]:
    """The throughput row `item` is compared with: the first on its problem and simulator (ours, unchanged)."""
    return next(row for row in items if (row["problem"], row["simulator"]) == (item["problem"], item["simulator"]))


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
