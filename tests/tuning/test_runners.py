"""LocalProcessRunner against the job contract's test double (tests/tuning/fake_job.py, not the real job)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from sagemaker_rl.contract import STDOUT_LOG
from sagemaker_rl.tuning import JobSpec, JobStatus
from sagemaker_rl.tuning.runners import PID_FILE, LocalProcessRunner
from tests.conftest import CORRIDOR_ENV


def _run(runner, tmp_path: Path, timeout: float = 30, **hyperparameters) -> JobStatus:
    job = runner.start(JobSpec(tmp_path, "reacher", hyperparameters, num_cpus=3))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.poll()
        if status.done:
            return status
        time.sleep(0.05)
    raise AssertionError("job did not end")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_rewards_are_read_per_iteration_and_output_kept_in_the_trial_dir(fake_runner, tmp_path):
    status = _run(
        fake_runner,
        tmp_path,
        **{"rl.training.config.kl_coeff": 0.5, "rl.training.stop.training_iteration": 4},
    )
    assert status.done and status.failure is None
    assert [(record.iteration, record.value) for record in status.values] == [(1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0)]
    log = (tmp_path / STDOUT_LOG).read_text()
    assert "episode_reward_mean: 2" in log and "iteration 4: reward 2" in log
    assert (tmp_path / "env.log").read_text().strip() == "3"  # SM_NUM_CPUS
    assert (tmp_path / "input/config/hyperparameters.json").is_file()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("crash", "the job failed: RuntimeError: boom"),  # first line of output/failure
        ("sigkill", "killed with SIGKILL"),
        ("nan", "NaN or infinity"),
        ("late_nan", "NaN or infinity"),
        ("silent", "printed no episode_reward_mean line"),
    ],
)
def test_a_failed_job_reports_its_reason(fake_runner, tmp_path, mode, reason):
    status = _run(fake_runner, tmp_path, **{"fake.mode": mode})
    assert status.done and status.failure is not None
    assert reason in status.failure


def test_stop_ends_the_whole_process_group(fake_runner, tmp_path):
    job = fake_runner.start(
        JobSpec(
            tmp_path,
            "reacher",
            {"fake.child": 1, "fake.sleep": 5, "rl.training.stop.training_iteration": 100},
        )
    )
    deadline = time.monotonic() + 20
    while not (tmp_path / "child.started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pgid = int((tmp_path / PID_FILE).read_text().split('"pid": ')[1].split(",")[0])
    members = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(int(p.name)) == pgid]
    assert len(members) >= 2  # the job and its child
    job.stop()
    job.wait(5)
    assert job.poll().done
    deadline = time.monotonic() + 3  # SIGKILL is delivered when the process next runs
    while any(_alive(pid) for pid in members) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in members if _alive(pid)]


def test_stop_orphan_ends_a_job_left_by_a_dead_tuner(fake_runner, tmp_path):
    fake_runner.start(JobSpec(tmp_path, "reacher", {"fake.sleep": 5, "rl.training.stop.training_iteration": 100}))
    pid = int((tmp_path / PID_FILE).read_text().split('"pid": ')[1].split(",")[0])
    assert _alive(pid)
    assert fake_runner.stop_orphan(tmp_path)
    time.sleep(0.2)
    assert not _alive(pid)
    assert not fake_runner.stop_orphan(tmp_path)  # nothing left to stop


def _cmdline(process: Path) -> bytes:
    try:
        return (process / "cmdline").read_bytes()
    except OSError:  # ended meanwhile
        return b""


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


class _Instance:
    def __init__(self, address: str | None) -> None:
        self._address = address

    def job_env(self) -> dict[str, str]:
        if self._address is None:
            return {}
        return {"RAY_ADDRESS": self._address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/run/token"}

    def ended_since(self, moment: float) -> bool:
        return False


@pytest.mark.parametrize("address", ["127.0.0.1:6390", None])
def test_jobs_get_the_shared_ray_address_and_token_and_none_when_the_instance_could_not_start(
        tmp_path, address, monkeypatch):
    from tests.tuning.conftest import FAKE_JOB

    monkeypatch.setenv("RAY_AUTH_TOKEN", "a-users-token-for-their-cluster")  # would win over the run's file
    runner = LocalProcessRunner([sys.executable, str(FAKE_JOB)], shared_ray=_Instance(address))
    status = _run(runner, tmp_path, **{"rl.training.stop.training_iteration": 1})
    assert status.failure is None
    given = tmp_path / "ray_address.log"
    if address is None:
        assert not given.exists()
    else:
        assert given.read_text().splitlines() == [
            address, "RAY_AUTH_MODE=token", "RAY_AUTH_TOKEN_PATH=/run/token", "RAY_AUTH_TOKEN=None"]


def test_a_shared_ray_instance_that_cannot_start_says_so_once_and_leaves_no_process(tmp_path, caplog):
    """A real `ray start --head` that fails (a negative CPU count): one warning, then None for every job."""
    from sagemaker_rl.tuning.shared_ray import PID_FILE as HEAD_PID_FILE
    from sagemaker_rl.tuning.shared_ray import SharedRay

    instance = SharedRay(tmp_path, num_cpus=-1)
    assert instance.address() is None and instance.address() is None
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "could not start the run's Ray instance" in warnings[0]
    assert "Resource quantities must be nonnegative" in warnings[0] and "each job starts its own Ray" in warnings[0]
    instance.close()
    assert not (tmp_path / HEAD_PID_FILE).exists()


def test_the_shared_ray_instance_requires_the_runs_own_token_which_goes_nowhere_else(tmp_path):
    """A real head: its jobs' variables join it, a driver without them is refused; the token is in a 0600 file
    only (not in the run directory's files nor on a command line), removed with the instance."""
    import subprocess

    from sagemaker_rl.tuning.shared_ray import SharedRay

    instance = SharedRay(tmp_path, num_cpus=1)
    try:
        env = instance.job_env()
        token_file = Path(env["RAY_AUTH_TOKEN_PATH"])
        assert env["RAY_AUTH_MODE"] == "token" and token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text()
        join = "import logging, ray; ray.init(logging_level=logging.ERROR); print(ray.cluster_resources()['CPU'])"
        outside = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
        joined = subprocess.run([sys.executable, "-c", join], env={**outside, **env}, capture_output=True,
                                text=True, timeout=120)
        assert joined.stdout.strip() == "1.0", joined.stderr
        refused = subprocess.run([sys.executable, "-c", join], capture_output=True, text=True, timeout=300,
                                 env={**outside, "RAY_ADDRESS": env["RAY_ADDRESS"], "HOME": str(tmp_path)})
        assert refused.returncode != 0 and "InvalidAuthToken" in refused.stderr
        assert all(token not in path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file())
        assert not [pid for pid in Path("/proc").glob("[0-9]*") if token.encode() in _cmdline(pid)]
    finally:
        instance.close()
    assert not token_file.exists()


def test_a_shared_ray_head_that_ends_mid_run_is_started_again_and_said_once(tmp_path, caplog):
    """A real head killed with its processes (as the OOM killer or a chaos run would): the next job's address is a
    new live head, the jobs of before learn that it ended, and a dead tuner's session files are removed."""
    from sagemaker_rl.tuning.shared_ray import PID_FILE as HEAD_PID_FILE
    from sagemaker_rl.tuning.shared_ray import SharedRay

    dead_tuners = SharedRay(tmp_path, num_cpus=1)._temp_dir.parent / "ray-999999999"  # no such process
    (dead_tuners / "session_2026-01-01_00-00-00_000000_1").mkdir(parents=True)
    instance = SharedRay(tmp_path, num_cpus=1)
    try:
        first = instance.address()
        assert first is not None and not dead_tuners.exists()
        before = time.monotonic()
        assert not instance.ended_since(before)
        head = json.loads((tmp_path / HEAD_PID_FILE).read_text())["pid"]
        os.killpg(head, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not instance.ended_since(before):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = instance.address()
        assert second is not None and second != first and not instance.ended_since(time.monotonic())
        assert json.loads((tmp_path / HEAD_PID_FILE).read_text())["pid"] != head
        assert _pgid(head) is None  # nothing of the old head is left
        said = [record.getMessage() for record in caplog.records if "ended with code -9" in record.getMessage()]
        assert len(said) == 1 and "the next job starts it again" in said[0]
    finally:
        instance.close()


# --- the user's code directory ---

_USER_ENV = CORRIDOR_ENV.format(imports='\nVALUE = 7.5', reward='float(action)')


def _user_code(tmp_path: Path) -> Path:
    code = tmp_path / "my_code"
    code.mkdir()
    (code / "user_envs.py").write_text(_USER_ENV)
    return code


def test_a_job_with_a_code_dir_imports_the_users_modules_and_runs_from_that_directory(tmp_path):
    probe = ("import os, sys, user_envs; print(f'episode_reward_mean: {user_envs.VALUE}'); "
             "print('cwd', os.getcwd()); print('args', sys.argv[1:])")
    runner = LocalProcessRunner([sys.executable, "-c", probe])
    code = _user_code(tmp_path)
    job = runner.start(JobSpec(tmp_path / "job", None, {}, code_dir=code))
    deadline = time.monotonic() + 30
    while not (status := job.poll()).done and time.monotonic() < deadline:
        time.sleep(0.05)
    log = (tmp_path / "job" / STDOUT_LOG).read_text()
    assert status.done and status.failure is None, log
    assert [record.value for record in status.values] == [7.5]
    assert f"cwd {code}" in log and "args []" in log  # no --problem: the env its hyperparameters name


def test_a_missing_code_dir_fails_the_start_in_one_sentence(tmp_path):
    from sagemaker_rl.errors import UserError

    with pytest.raises(UserError, match=f"the code directory {tmp_path / 'gone'} does not exist"):
        LocalProcessRunner().start(JobSpec(tmp_path, None, {}, code_dir=tmp_path / "gone"))


@pytest.mark.slow
def test_the_real_job_trains_an_env_from_the_code_dir_in_its_env_runner_processes(tmp_path):
    from tests.conftest import TINY_PPO

    hyperparameters = {"rl.env.id": "user_envs:Corridor", "rl.training.stop.training_iteration": 1, **TINY_PPO,
                       "rl.training.config.train_batch_size_per_learner": 200, "rl.training.config.minibatch_size": 100}
    runner = LocalProcessRunner()
    job = runner.start(JobSpec(tmp_path / "job", None, hyperparameters, num_cpus=2, code_dir=_user_code(tmp_path)))
    deadline = time.monotonic() + 300
    while not (status := job.poll()).done and time.monotonic() < deadline:
        time.sleep(0.5)
    log = (tmp_path / "job" / STDOUT_LOG).read_text()
    assert status.done and status.failure is None, log[-3000:]
    assert status.values and status.values[-1].value == pytest.approx(20.0, abs=20.0), log[-3000:]


def test_a_job_that_ends_wakes_the_tuner_once_its_output_is_read(tmp_path):
    from tests.tuning.conftest import FAKE_JOB

    ended = threading.Event()
    runner = LocalProcessRunner([sys.executable, str(FAKE_JOB)], on_job_end=ended.set)
    job = runner.start(JobSpec(tmp_path, "reacher", {"rl.training.stop.training_iteration": 3}))
    assert ended.wait(30)
    status = job.poll()  # at once: the job has ended and every line it wrote is read
    assert status.done and status.failure is None and [record.iteration for record in status.values] == [1, 2, 3]
