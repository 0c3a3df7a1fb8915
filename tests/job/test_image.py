"""The image's entry point prepares a job directory for sagemaker-training's `train` (no image needed)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from sagemaker_rl.contract import JobPaths
from sagemaker_rl.errors import JobError, UserError
from sagemaker_rl.job.image import move_toolkit_outcome, prepare, supervise, wait_for_hosts
from tests.conftest import REPO

ENTRYPOINTS = REPO / "entrypoints"


def _job(tmp_path, hyperparameters):
    paths = JobPaths(tmp_path / "ml")
    paths.config_dir.mkdir(parents=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    return paths


def test_a_mounted_job_directory_gets_the_entrypoints_and_a_resource_config(tmp_path):
    paths = _job(tmp_path, {"rl.training.config.lr": "0.001"})
    prepare(paths, ENTRYPOINTS, {"SAGEMAKER_PROGRAM": "train-hopper.py"})
    assert sorted(p.name for p in (paths.base / "code").iterdir()) == sorted(p.name for p in ENTRYPOINTS.iterdir())
    resource = json.loads(paths.resource_config_file.read_text())
    assert resource["hosts"] == [socket.gethostname()] == [resource["current_host"]]
    assert json.loads((paths.config_dir / "inputdataconfig.json").read_text()) == {}


def test_a_restarted_container_names_itself_in_the_resource_config_it_wrote(tmp_path, monkeypatch):
    paths = _job(tmp_path, {})
    for host in ("first-container", "restarted-container"):  # a restart (a spot job's, a rerun) gets a new name
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        prepare(paths, ENTRYPOINTS, {"SAGEMAKER_PROGRAM": "train-reacher.py"})
        resource = json.loads(paths.resource_config_file.read_text())
        assert resource["hosts"] == [host] == [resource["current_host"]]


def test_what_sagemaker_wrote_is_left_alone(tmp_path):
    paths = _job(tmp_path, {"sagemaker_program": json.dumps("train-reacher.py")})
    (paths.base / "code").mkdir()
    (paths.base / "code" / "train-reacher.py").write_text("# the user's own program\n")
    resource = {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}
    paths.resource_config_file.write_text(json.dumps(resource))
    prepare(paths, ENTRYPOINTS, {})
    assert [p.name for p in (paths.base / "code").iterdir()] == ["train-reacher.py"]
    assert (paths.base / "code" / "train-reacher.py").read_text() == "# the user's own program\n"
    assert json.loads(paths.resource_config_file.read_text()) == resource


def test_a_submit_directory_is_left_for_the_toolkit_to_download(tmp_path):
    paths = _job(tmp_path, {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://b/src.tar.gz"'})
    prepare(paths, ENTRYPOINTS, {})
    assert not (paths.base / "code").exists()


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "no training program is named: set $SAGEMAKER_PROGRAM to one of train-ant.py, train-env.py"),
    ({"SAGEMAKER_PROGRAM": "train-cheetah.py"}, "the training program 'train-cheetah.py' is not in"),
])
def test_a_missing_or_unknown_program_is_a_user_error_naming_the_programs(tmp_path, environ, expected):
    paths = _job(tmp_path, {})
    with pytest.raises(UserError, match="train-reacher.py") as error:
        prepare(paths, ENTRYPOINTS, environ)
    assert expected in str(error.value)


def test_the_entry_point_writes_the_failure_and_runs_any_other_command(tmp_path):
    paths = _job(tmp_path, {})
    env = {"SAGEMAKER_BASE_DIR": str(paths.base), "SAGEMAKER_RL_ENTRYPOINTS": str(ENTRYPOINTS), "PATH": "/usr/bin:/bin"}
    failed = subprocess.run([sys.executable, "-m", "sagemaker_rl.job.image", "train"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=REPO)
    assert failed.returncode == 2
    assert paths.failure_file.read_text().startswith("no training program is named")
    other = subprocess.run([sys.executable, "-m", "sagemaker_rl.job.image", "echo", "hello"], env=env,
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert other.returncode == 0 and other.stdout == "hello\n"


def test_a_multi_host_job_whose_other_host_never_resolves_fails_within_its_cluster_timeout(tmp_path):
    paths = _job(tmp_path, {"rl.training.cluster_timeout_s": "1"})
    resource = {"current_host": "localhost", "hosts": ["localhost", "algo-2.invalid"]}
    paths.resource_config_file.write_text(json.dumps(resource))
    with pytest.raises(JobError) as error:
        wait_for_hosts(paths)
    assert str(error.value).startswith("the Ray head on localhost saw 1 of 2 hosts within 1 s "
                                       "(missing: algo-2.invalid, which does not resolve)")
    assert "rl.training.cluster_timeout_s" in str(error.value)


@pytest.mark.parametrize(("current", "hosts", "own_output"), [
    ("b", ["algo-1.invalid", "b"], "output/b"),  # another host than the head: a directory of its own
    ("localhost", ["localhost", "algo-2.invalid"], "output"),  # the head: the contract's names
])
def test_only_the_head_writes_the_outcome_under_the_contracts_names(tmp_path, current, hosts, own_output):
    """SageMaker's local mode merges every host's output/ into one output.tar.gz: the head's outcome must win it."""
    paths = _job(tmp_path, {"rl.training.cluster_timeout_s": "1"})
    paths.resource_config_file.write_text(json.dumps({"current_host": current, "hosts": hosts}))
    env = {"SAGEMAKER_BASE_DIR": str(paths.base), "SAGEMAKER_RL_ENTRYPOINTS": str(ENTRYPOINTS), "PATH": "/usr/bin:/bin",
           "SAGEMAKER_PROGRAM": "train-reacher.py"}
    failed = subprocess.run([sys.executable, "-m", "sagemaker_rl.job.image", "train"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=REPO)
    assert failed.returncode == 1, failed.stderr[-2000:]
    written = sorted(str(path.relative_to(paths.base)) for path in (paths.base / "output").rglob("*") if path.is_file())
    assert written == [f"{own_output}/failure"]
    assert "within 1 s" in (paths.base / own_output / "failure").read_text().splitlines()[0]


@pytest.mark.parametrize(("host", "job_wrote", "toolkit_wrote", "expected"), [
    ("algo-2", "success", "success", ["output/algo-2/success"]),  # the job's own outcome stays, the toolkit's goes
    ("algo-2", "failure", "failure", ["output/algo-2/failure"]),
    ("algo-2", None, "failure", ["output/algo-2/failure"]),  # the job never wrote one: the toolkit's, moved
    ("algo-1", "success", "success", ["output/success"]),  # the head: the contract's names stay
])
def test_the_toolkits_outcome_on_another_host_than_the_head_goes_under_its_own_names(tmp_path, host, job_wrote,
                                                                                     toolkit_wrote, expected):
    """sagemaker-training writes output/success (or a failure when the job wrote none there) on every host."""
    paths = _job(tmp_path, {})
    paths.resource_config_file.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
    own = paths.of_this_host()
    if job_wrote:
        own.own_output.mkdir(parents=True, exist_ok=True)
        (own.own_output / job_wrote).write_text("the job's\n")
    paths.output.mkdir(exist_ok=True)
    (paths.output / toolkit_wrote).write_text("the toolkit's\n")  # on the head, over the job's own file
    move_toolkit_outcome(own)
    written = sorted(str(path.relative_to(paths.base)) for path in paths.output.rglob("*") if path.is_file())
    assert written == expected
    if own.host_outputs:
        assert (paths.base / expected[0]).read_text() == ("the job's\n" if job_wrote else "the toolkit's\n")


def test_a_host_whose_head_never_resolves_fails_and_one_that_resolves_waits_for_nothing(tmp_path):
    paths = _job(tmp_path, {"rl.training.cluster_timeout_s": "1"})
    paths.resource_config_file.write_text(json.dumps({"current_host": "b", "hosts": ["algo-1.invalid", "b"]}))
    with pytest.raises(JobError, match=r"^host b could not reach the Ray head algo-1.invalid:6379 within 1 s "
                                       r"\(algo-1.invalid does not resolve\)"):
        wait_for_hosts(paths)
    paths.resource_config_file.write_text(json.dumps({"current_host": "b", "hosts": ["localhost", "b"]}))
    wait_for_hosts(paths)  # the head resolves; another host's name is the head's concern


# A stand-in for sagemaker-training's `train`: it runs the job as its child and reports the job's exit code;
# SIGTERM would kill it at once (it has no handler), so it must not be the one that gets the stop.
_TOOLKIT = """
import subprocess, sys
code = subprocess.call([sys.executable, sys.argv[1], *sys.argv[2:]])
open(sys.argv[2] + "/toolkit", "w").write(str(code))
sys.exit(code)
"""
# A job that checkpoints on SIGTERM, and leaves a process of its own running (as a job's Ray may).
_JOB = """
import signal, subprocess, sys, time
out = sys.argv[1]
left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
open(out + "/leftover", "w").write(str(left.pid))
def stop(signum, frame):
    open(out + "/job", "w").write(signal.Signals(signum).name)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
open(out + "/started", "w").write("")
time.sleep(600)
"""


def _supervised(tmp_path, *, job_is_grandchild):
    (tmp_path / "toolkit.py").write_text(_TOOLKIT)
    (tmp_path / "job.py").write_text(_JOB)
    command = [sys.executable, str(tmp_path / ("toolkit.py" if job_is_grandchild else "job.py"))]
    command += [str(tmp_path / "job.py")] if job_is_grandchild else []
    script = (f"import sys; from sagemaker_rl.job.image import supervise; "
              f"sys.exit(supervise({[*command, str(tmp_path)]!r}, job_is_grandchild={job_is_grandchild}))")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_image_init_forwards_a_stop_to_the_job_under_the_toolkit_and_exits_with_its_code(tmp_path, signum):
    process = _supervised(tmp_path, job_is_grandchild=True)
    process.send_signal(signum)
    assert process.wait(timeout=30) == 3
    assert (tmp_path / "job").read_text() == signum.name  # the job got the stop and could checkpoint
    assert (tmp_path / "toolkit").read_text() == "3"  # the toolkit lived to see the job's exit code
    leftover = int((tmp_path / "leftover").read_text())
    assert not psutil.pid_exists(leftover) or psutil.Process(leftover).status() == psutil.STATUS_ZOMBIE


def test_the_image_init_forwards_a_stop_to_any_other_command_itself(tmp_path):
    process = _supervised(tmp_path, job_is_grandchild=False)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 3
    assert (tmp_path / "job").read_text() == "SIGTERM"


def test_the_image_init_reports_a_command_killed_by_a_signal_as_128_plus_it(tmp_path):
    assert supervise([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
                     job_is_grandchild=False) == 128 + signal.SIGKILL
