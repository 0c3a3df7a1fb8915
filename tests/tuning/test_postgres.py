"""Shared study storage for real: two tuner processes on one PostgreSQL study, one killed with -9.

The test starts its own PostgreSQL server (Debian's `postgresql` package: initdb into a temporary
directory, a unix socket there, no TCP), as the `postgres` user when it runs as root (PostgreSQL
refuses to run as root). The tuners run the contract's test double (fake_job.py), as machines would.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sagemaker_rl.tuning.runners import PID_FILE
from sagemaker_rl.tuning.trials import HEARTBEAT_GRACE_S
from tests.tuning.test_tuner import DRIVER

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.slow  # a database server and ~90 s of tuning (no training)
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))  # Debian's layout, one directory per version


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of this test's own; yields the SQLAlchemy URL of an empty database."""
    if not PG_BIN:
        pytest.fail("PostgreSQL is not installed: apt-get install -y postgresql (.ci/run does)")
    bin_dir = PG_BIN[-1]
    # Directly in /tmp: the server user must reach it, and pytest's base directory is root's alone.
    root = Path(tempfile.mkdtemp(prefix="sagemaker_rl-postgres-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "tuner", "--auth=trust",
                                    "-E", "UTF8"]), check=True, capture_output=True)
    server = ["-D", str(data), "-o", f"-k {sockets} -c listen_addresses='' -p 5432", "-l", str(root / "server.log")]
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), *server, "-w", "start"]), check=True,
                   capture_output=True)
    try:
        subprocess.run(_as_server_user([str(bin_dir / "createdb"), "-h", str(sockets), "-U", "tuner", "study"]),
                       check=True, capture_output=True)
        yield f"postgresql+psycopg2://tuner@/study?host={sockets}"
    finally:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="shared", storage=url).trials
    except KeyError:  # the first tuner has not created the study yet
        return []


def _running_jobs(url: str, run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of `run_dir` that are running with their job started."""
    return [t for t in _trials(url) if t.state == TrialState.RUNNING and t.user_attrs.get("run_dir") == str(run_dir)
            and (Path(t.user_attrs.get("trial_dir", "/nonexistent")) / PID_FILE).exists()]


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_tuners_share_a_postgresql_study_and_a_killed_ones_trials_are_rerun_by_the_other(tmp_path, postgres):
    settings = {
        "strategy": "Random", "max_jobs": 10, "max_parallel_jobs": 2, "num_cpus": 2, "sampler_seed": 3,
        "check_hyperparameters": False, "storage": postgres, "study_name": "shared", "reevaluate_top": 0,
        "parameters": {"rl.training.config.kl_coeff": {"type": "Continuous", "min_value": 0.5, "max_value": 1.0}},
        # ~9 s a trial: the survivor still has trials of its own to run when the grace period ends
        "static": {"rl.training.stop.training_iteration": 6, "fake.sleep": 1.5},
    }
    first_dir, second_dir = tmp_path / "machine-a", tmp_path / "machine-b"
    first = subprocess.Popen([sys.executable, str(DRIVER), "start", str(first_dir), json.dumps(settings)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(_running_jobs(postgres, first_dir)) == 2, timeout=60)
    second = subprocess.Popen([sys.executable, str(DRIVER), "start", str(second_dir), json.dumps(settings)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: len(_running_jobs(postgres, second_dir)) == 2 and len(_running_jobs(postgres, first_dir)) == 2,
              timeout=60)
    lost = {t.number: t for t in _running_jobs(postgres, first_dir)}
    first.kill()  # kill -9, and its machine's jobs with it
    first.wait()
    for trial in lost.values():
        pid = json.loads((Path(trial.user_attrs["trial_dir"]) / PID_FILE).read_text())["pid"]
        os.killpg(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    trials = _trials(postgres)
    by_number = {t.number: t for t in trials}
    reruns = {t.user_attrs["rerun_of"]: t for t in trials if "rerun_of" in t.user_attrs}
    assert set(reruns) == set(lost)  # each lost trial run again, once
    for number, rerun in reruns.items():
        assert by_number[number].state == TrialState.FAIL  # failed by the survivor's heartbeat check
        assert rerun.state == TrialState.COMPLETE and rerun.params == lost[number].params
        assert rerun.user_attrs["run_dir"] == str(second_dir)
    counted = [t for t in trials if t.number not in reruns]
    assert len(counted) == 10 and all(t.state == TrialState.COMPLETE for t in counted)  # none lost, none extra
    assert len({t.user_attrs["trial_dir"] for t in trials}) == len(trials)  # no trial ran twice in one place
    # The survivor waited for the grace period before it gave the lost trials up.
    assert time.monotonic() - killed_at >= HEARTBEAT_GRACE_S
