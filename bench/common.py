"""Shared helpers of the benchmarks: child processes, the machine's state, number formatting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
