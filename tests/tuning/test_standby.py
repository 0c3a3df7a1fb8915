"""Jobs started from standby processes (sagemaker_rl/job/standby.py, tuning/standby_pool.py).

The runner tests use the job contract's TEST DOUBLE (tests/tuning/fake_job.py); the last test runs the
real job from a prepared standby process and cold, with the same seed, and compares what they did.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sagemaker_rl import contract
from sagemaker_rl.job import STANDBY_SCRIPT, standby_assignment
from sagemaker_rl.tuning import JobSpec
from sagemaker_rl.tuning.runners import LocalProcessRunner
from sagemaker_rl.tuning.standby_pool import StandbyPool
from tests.conftest import REPO, TINY_PPO
from tests.tuning.conftest import FAKE_JOB


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _finish(job, timeout: float = 60.0):
    _wait_for(lambda: job.poll().done, timeout)
    return job.poll()


def _standby_children(parent: int | None = None) -> list[int]:
    """Live standby processes whose parent is `parent` (this process by default)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == parent and STANDBY_SCRIPT.encode() in cmdline:
            found.append(int(stat.parent.name))
    return found


def _started_at(pid: int) -> float:
    """When a live process started, in seconds since boot."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _spec(base: Path, **hyperparameters) -> JobSpec:
    return JobSpec(base, "reacher", {"rl.training.stop.training_iteration": 2, **hyperparameters}, num_cpus=3)


def test_a_job_runs_in_a_process_that_was_ready_before_it_with_its_own_inputs_and_output(tmp_path):
    runner = LocalProcessRunner([sys.executable, str(FAKE_JOB)], standby=2)
    try:
        first = runner.start(_spec(tmp_path / "a", **{"rl.training.seed": 1}))
        assert _finish(first).failure is None
        _wait_for(lambda: len(_standby_children()) == 2)  # the spares, on standby
        spares = set(_standby_children())  # running before the job was asked for
        second = runner.start(_spec(tmp_path / "b", **{"rl.training.seed": 2, "rl.training.config.kl_coeff": 3.0}))
        status = _finish(second)
        assert int((tmp_path / "b/starts.log").read_text().split()[0]) in spares  # a spare took it
    finally:
        runner.close()
    assert status.failure is None and [record.value for record in status.values] == [5.0, 8.0]  # its own seed, slope
    assert (tmp_path / "b/env.log").read_text().strip() == "3"  # its SM_NUM_CPUS
    assert "iteration 2: reward 8" in (tmp_path / "b/stdout.log").read_text()
    assert "reward 8" not in (tmp_path / "a/stdout.log").read_text()
    assert (tmp_path / "b/model/seed.txt").read_text().strip() == "2"
    assert _standby_children() == []  # close ended the spares


def test_spares_killed_on_standby_are_replaced_and_the_next_job_still_runs(tmp_path):
    runner = LocalProcessRunner([sys.executable, str(FAKE_JOB)], standby=2)
    try:
        assert _finish(runner.start(_spec(tmp_path / "a"))).failure is None
        _wait_for(lambda: len(_standby_children()) == 2)
        killed = _standby_children()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not set(_standby_children()) & set(killed))  # dead (an OOM kill, say), not yet reaped
        status = _finish(runner.start(_spec(tmp_path / "b")))
        assert status.failure is None and len(status.values) == 2
        _wait_for(lambda: len(_standby_children()) == 2 and not set(_standby_children()) & set(killed))
    finally:
        runner.close()


def test_the_spares_of_a_tuner_killed_with_sigkill_end_by_themselves(tmp_path):
    driver = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from sagemaker_rl.tuning import JobSpec
        from sagemaker_rl.tuning.runners import LocalProcessRunner
        runner = LocalProcessRunner([sys.executable, {str(FAKE_JOB)!r}], standby=2)
        runner.start(JobSpec(Path({str(tmp_path)!r}), "reacher", {{"rl.training.stop.training_iteration": 1}}))
        print("started", flush=True)
        time.sleep(600)
    """)
    tuner = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert tuner.stdout.readline().strip() == "started"
        _wait_for(lambda: len(_standby_children(tuner.pid)) == 2)
        spares = _standby_children(tuner.pid)
        tuner.kill()
        tuner.wait()
        # Their input ends with the tuner: each ends without a job (reparented, so looked up by pid).
        _wait_for(lambda: not [pid for pid in spares if Path(f"/proc/{pid}").exists()
                               and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]])
    finally:
        tuner.kill()


def test_the_pool_lets_one_process_prepare_at_a_time_and_keeps_its_size(tmp_path):
    gate = tmp_path / "gate"
    code = ("import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)\n"
            "os.write(int(os.environ['SAGEMAKER_RL_STANDBY_READY_FD']), b'ready')\ntime.sleep(600)\n")

    def spawn(ready_env, ready_fd):
        return subprocess.Popen([sys.executable, "-c", code, str(gate)], env={**os.environ, **ready_env},
                                pass_fds=(ready_fd,), start_new_session=True)

    pool = StandbyPool(spawn, 2)
    try:
        time.sleep(1.0)
        assert len(pool._spares) == 1  # the first still prepares: the second waits for it
        gate.touch()
        _wait_for(lambda: len(pool._spares) == 2 and not pool._preparing)
        time.sleep(0.5)
        assert len(pool._spares) == 2
        taken = pool.take()
        assert taken.poll() is None
        _wait_for(lambda: len(pool._spares) == 2)
        taken.kill()
        taken.wait()
    finally:
        for spare in pool.close():
            spare.kill()
            spare.wait()


@pytest.mark.parametrize(("target", "exit_code", "said"), [
    (["-c", "print('hello', flush=True)"], 0, "hello"),
    (["-c", "import sys; sys.exit(3)"], 3, ""),
    (["-c", "import sys; sys.exit('no good')"], 1, "no good"),
    (["-c", "raise ValueError('bad value')"], 1, "ValueError: bad value"),
    (["-m", "this"], 0, "Beautiful is better than ugly"),
    (["SCRIPT"], 0, "__main__ ['SCRIPT', '--given'] True"),
])
def test_a_standby_process_runs_its_target_as_python_would(tmp_path, target, exit_code, said):
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint(__name__, sys.argv, sys.path[0] == sys.argv[0].rsplit('/', 1)[0])\n")
    target = [str(script) if part == "SCRIPT" else part for part in target]
    log = tmp_path / "out.log"
    process = subprocess.Popen([sys.executable, STANDBY_SCRIPT, *target], cwd=REPO, stdin=subprocess.PIPE)
    process.communicate(standby_assignment(["--given"], {"SOME_VARIABLE": "x"}, str(tmp_path), str(log)), timeout=60)
    assert process.returncode == exit_code
    assert said.replace("SCRIPT", str(script)) in log.read_text()


def test_a_standby_process_whose_input_ends_before_a_job_exits_quietly():
    done = subprocess.run([sys.executable, STANDBY_SCRIPT, "-c", "raise SystemExit(5)"], cwd=REPO, input=b"",
                          capture_output=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_a_preparing_process_whose_input_ends_exits_at_once_not_after_its_ray_connection():
    """A tuner killed with -9 ends its spares' input while they prepare; the Ray head they connect to may have gone
    with it (a chaos run left one waiting for minutes). Here the head's address has nothing behind it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nothing_there = f"127.0.0.1:{probe.getsockname()[1]}"
    spare = subprocess.Popen([sys.executable, STANDBY_SCRIPT, "-m", "sagemaker_rl.job"], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, contract.RAY_ADDRESS_ENV: nothing_there})
    time.sleep(1)  # importing what the job imports
    spare.stdin.close()  # type: ignore[union-attr]
    assert spare.wait(timeout=5) == 0


@pytest.mark.slow
def test_the_real_job_from_a_prepared_standby_process_does_what_a_cold_job_does(tmp_path):
    hyperparameters = {**TINY_PPO, "rl.training.seed": 7, "rl.training.stop.training_iteration": 2}
    cold = tmp_path / "cold"
    contract.write_inputs(contract.JobPaths(cold), hyperparameters)
    subprocess.run([sys.executable, "-m", "sagemaker_rl.job", "--problem", "reacher"], cwd=cold, check=True,
                   env={**os.environ, "SAGEMAKER_BASE_DIR": str(cold), "SM_NUM_CPUS": "1"}, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runner = LocalProcessRunner(standby=1)
    try:
        warm = tmp_path / "warm"
        assert _finish(runner.start(JobSpec(tmp_path / "first", "reacher", hyperparameters)), 600).failure is None
        _wait_for(lambda: len(_standby_children()) == 1 and not runner._pool._preparing, 300)
        asked = _uptime()
        job = runner.start(JobSpec(warm, "reacher", hyperparameters))
        assert _started_at(job._process.pid) < asked  # the prepared spare took it
        assert _finish(job, 600).failure is None
    finally:
        runner.close()
    assert _progress(warm) == _progress(cold)  # the same episodes: rewards, lengths, env steps
    assert _model(warm) == _model(cold)
    observations = np.random.default_rng(0).normal(size=(8, 9)).astype(np.float32)
    from sagemaker_rl.job.export import OnnxPolicy

    np.testing.assert_allclose(OnnxPolicy(warm / "model/policy.onnx")(observations),
                               OnnxPolicy(cold / "model/policy.onnx")(observations), rtol=1e-6, atol=1e-6)


def _progress(base: Path) -> list[dict[str, str]]:
    rows = csv.DictReader(open(base / "output/intermediate/progress.csv"))
    return [{key: value for key, value in row.items() if not key.startswith("time")}
            for row in rows]


def _model(base: Path) -> tuple[list[str], dict, dict]:
    params = json.loads((base / "model/params.json").read_text())  # its command line too
    result = {key: value for key, value in json.loads((base / "model/result.json").read_text()).items()
              if not key.startswith("time")}
    files = sorted(path.relative_to(base / "model").as_posix() for path in (base / "model").rglob("*"))
    return files, params, result


@pytest.mark.slow
def test_a_real_job_from_standby_killed_with_sigkill_continues_from_its_checkpoint_when_started_again(tmp_path):
    hyperparameters = {**TINY_PPO, "rl.training.seed": 7, "rl.training.stop.training_iteration": 5,
                       "rl.training.checkpoint_freq": 1}
    spec = JobSpec(tmp_path / "job", "reacher", hyperparameters)
    runner = LocalProcessRunner(standby=1)
    try:
        job = runner.start(spec)
        _wait_for(lambda: len(job.poll().values) >= 2, 600)
        _wait_for(lambda: len(list((spec.base_dir / "checkpoints").glob("checkpoint_*"))) >= 2, 120)
        os.killpg(job._process.pid, signal.SIGKILL)  # the job and everything it started
        killed = _finish(job)
        assert killed.failure is not None and "SIGKILL" in killed.failure
        _wait_for(lambda: len(_standby_children()) == 1 and not runner._pool._preparing, 300)
        again = runner.start(spec)  # from the prepared spare, as a rerun of the trial is
        status = _finish(again, 600)
    finally:
        runner.close()
    assert status.failure is None
    log = (spec.base_dir / "stdout.log").read_text()
    assert re.search(r"Resumed from checkpoint_0+([2-9]): iteration \1", log), log[-2000:]
    iterations = [int(row["training_iteration"]) for row in csv.DictReader(
        open(spec.base_dir / "output/intermediate/progress.csv"))]
    assert iterations == [1, 2, 3, 4, 5]  # each once: what the killed job did is kept, not trained again
    assert json.loads((spec.base_dir / "model/params.json").read_text())["seed"] == 7
