"""A job's own Ray session (`ray_session.start_ray` without $RAY_ADDRESS): real Ray, started in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sagemaker_rl.job import ray_session


def test_a_jobs_own_ray_requires_a_token_of_its_own_kept_out_of_home_and_removed_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "a-users-token-for-their-cluster")  # not the job's: it would win
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    ray_session.start_ray(1)
    try:
        token_file = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
        assert os.environ["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" not in os.environ
        assert token_file.stat().st_mode & 0o777 == 0o600 and token_file.parent.stat().st_mode & 0o777 == 0o700
        assert ray_session.session_dir(started_here=True) is not None
        address = _gcs_address()
        outside = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
        join = "import logging, ray; ray.init(logging_level=logging.ERROR); print(ray.cluster_resources()['CPU'])"
        refused = subprocess.run([sys.executable, "-c", join], env={**outside, "RAY_ADDRESS": address},
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode != 0 and "InvalidAuthToken" in refused.stderr
    finally:
        ray_session.stop_ray()
    assert not token_file.parent.exists()
    assert "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN_PATH" not in os.environ
    assert not (tmp_path / "home").exists()  # no ~/.ray/auth_token, nothing else
    output = capfd.readouterr()
    assert "Token authentication" not in output.out + output.err and "auth" not in output.err.lower()


def _gcs_address() -> str:
    import ray

    return str(ray.get_runtime_context().gcs_address)



def test_a_stall_is_reported_as_the_stall_whatever_ray_wraps_it_in(tmp_path: Path) -> None:
    """The watchdog's alarm inside a Cython call of Ray (CoreWorker.wait, seen in a multi-host job) comes back as
    "SystemError: <cyfunction ...> returned a result with an exception set", the alarm as its cause: the job still
    ends with the watchdog's reason. (A real Ray call cannot be made to do it on demand: a wait that never returns
    to Python ends by the watchdog's hard exit instead, tested in test_own_env.py.)"""
    from sagemaker_rl.contract import JobPaths
    from sagemaker_rl.errors import JobError

    paths = JobPaths(tmp_path / "job")
    paths.make_dirs()
    with pytest.raises(JobError, match="the job made no progress for 60 s"), ray_session.Watchdog(60, paths):
        try:
            raise ray_session._Stalled
        except ray_session._Stalled as stalled:  # as CPython wraps an error a C function left set
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from stalled
    with pytest.raises(SystemError), ray_session.Watchdog(60, paths):
        raise SystemError("not the watchdog's")
