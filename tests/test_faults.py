"""Real jobs under faults: kill -9 anywhere, a diverging return, a crashing or hanging env runner.

Faults are injected into the real job's envs by tests/faults/sitecustomize.py (first on PYTHONPATH,
chosen by SAGEMAKER_RL_TEST_FAULT), in the job and in its Ray workers; the job itself is unchanged.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_PPO, job_env, write_hyperparameters

pytestmark = pytest.mark.slow

FAULTS = Path(__file__).with_name("faults")
ENTRYPOINT = [sys.executable, str(REPO / "entrypoints" / "train-reacher.py")]


def fault_env(base: Path, home: Path, fault: str, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")]))
    return job_env(base, home, SAGEMAKER_RL_TEST_FAULT=fault, PYTHONPATH=path, **extra)


def _run(base: Path, env: dict[str, str], timeout: float = 400) -> tuple[int, str, float]:
    """(exit code, stdout, seconds) of the reacher entrypoint; its process group is killed on a timeout."""
    started = time.monotonic()
    process = subprocess.Popen(ENTRYPOINT, env=env, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the job hung: still running after {timeout} s")
    return process.returncode, out, time.monotonic() - started


def _first_failure_line(base: Path) -> str:
    return (base / "output" / "failure").read_text().splitlines()[0]


def _session(base: Path) -> Path:
    match = re.search(r"Ray session directory: (\S+)", (base / "output" / "job.log").read_text())
    assert match, "the job logs its Ray session directory"
    return Path(match.group(1))


def _processes_with(base: Path) -> list[int]:
    """Live processes whose environment names this job's base directory (the job's Ray processes)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"SAGEMAKER_BASE_DIR={base}\0".encode() in environ.read_bytes():
                if Path(environ.parent, "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_an_env_runners_crash_reaches_output_failure_with_its_real_cause(tmp_path, home):
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 2})
    code, _, _ = _run(tmp_path, fault_env(tmp_path, home, "raise", SM_NUM_CPUS="2"))  # two remote env runners
    assert code == 1
    first = _first_failure_line(tmp_path)
    assert first.startswith("an env runner failed: RuntimeError: injected env fault"), first
    assert not _session(tmp_path).exists()  # the job started Ray, so it removed Ray's session directory
    assert _processes_with(tmp_path) == []


def test_a_job_that_makes_no_progress_fails_with_its_last_log_lines_and_leaves_nothing_running(tmp_path, home):
    timeout_s = 40
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 2,
                                     "rl.training.stall_timeout_s": timeout_s})
    code, _, seconds = _run(tmp_path, fault_env(tmp_path, home, "hang", SM_NUM_CPUS="2"))
    assert code == 1
    first = _first_failure_line(tmp_path)
    assert first.startswith(f"the job made no progress for {timeout_s} s") and "last log lines: " in first, first
    assert len(first) <= 1024
    assert seconds < timeout_s + 60  # start-up is inside the timeout; the grace is 10 s
    assert not _session(tmp_path).exists()
    assert _processes_with(tmp_path) == []


def test_kill_9_after_an_iteration_and_during_the_final_export_is_recovered_each_iteration_logged_once(
        tmp_path, home):
    write_hyperparameters(tmp_path, {**TINY_PPO, "rl.training.stop.training_iteration": 4,
                                     "rl.training.checkpoint_freq": 2})
    env = job_env(tmp_path, home)
    progress = tmp_path / "output" / "intermediate" / "progress.csv"

    def iterations() -> list[int]:
        rows = list(csv.DictReader(progress.open())) if progress.exists() else []
        return [int(row["training_iteration"]) for row in rows if (row["training_iteration"] or "").isdigit()]

    def kill_when(condition) -> None:
        process = subprocess.Popen(ENTRYPOINT, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while not condition():
            assert process.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    # 1. Killed after iteration 3 was logged, with the newest checkpoint at iteration 2.
    kill_when(lambda: 3 in iterations())
    assert not (tmp_path / "checkpoints" / "checkpoint_000004").exists()
    # 2. The rerun replays iteration 3; killed once the final checkpoint is complete, while model/ is written.
    final = tmp_path / "checkpoints" / "checkpoint_000004" / "job_state.json"
    kill_when(final.exists)
    assert not (tmp_path / "model" / "result.json").exists(), "killed too late: the export had finished"
    # 3. The next rerun trains no more: it writes the model from the final checkpoint.
    code, out, _ = _run(tmp_path, env)
    assert code == 0, (tmp_path / "output" / "failure").read_text()[:3000]
    assert "training_iteration: " not in out and "writing the model" in out
    model = tmp_path / "model"
    for name in ("policy.onnx", "params.json", "result.json", "checkpoint"):
        assert (model / name).exists(), name
    assert json.loads((model / "result.json").read_text())["training_iteration"] == 4
    assert (tmp_path / "output" / "success").exists()
    assert iterations() == [1, 2, 3, 4]  # iteration 3 was trained twice and is logged once
    assert not list(model.glob(".partial-*")) and not list(model.glob(".*.partial"))  # export_onnx, write_atomically
    # A fourth run is a finished job: refused with the reason, the model untouched.
    code, _, _ = _run(tmp_path, env)
    assert code == 2 and "already meets the stop criteria" in _first_failure_line(tmp_path)
