"""`--backend container`: tuning trials and a training job in the built image, with no container left behind."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sagemaker_rl.engine import JOB_LABEL, RUN_LABEL
from tests.conftest import REPO, TINY_PPO
from tests.image.test_image import DOCKER, IMAGE


def _env() -> dict[str, str]:
    return {**os.environ, "DOCKER": DOCKER}


def containers_of(run_name: str, *, running: bool = False) -> list[str]:
    command = [DOCKER, "ps", "--format", "{{.Names}}", "--filter", f"label={RUN_LABEL}={run_name}"]
    listed = subprocess.run(command if running else [*command, "-a"], capture_output=True, text=True, check=True)
    return listed.stdout.split()


def networks_left(directory: Path) -> list[str]:
    listed = subprocess.run([DOCKER, "network", "ls", "-q", "--filter", f"label={JOB_LABEL}={directory}"],
                            capture_output=True, text=True, check=True)
    return listed.stdout.split()


def _wait_for_containers(run_name: str, tuner: subprocess.Popen[str], count: int, *,
                         besides: frozenset[str] = frozenset()) -> frozenset[str]:
    """The names of `count` running containers of the run that are not in `besides` (the trials' jobs)."""
    deadline = time.monotonic() + 300
    while len(names := frozenset(containers_of(run_name, running=True)) - besides) < count:
        assert tuner.poll() is None, tuner.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the trials' containers did not start"
        time.sleep(1)
    time.sleep(3)
    return names


def test_tune_runs_trials_in_containers_through_kill_9_and_ctrl_c_with_none_left(tmp_path):
    run_dir = tmp_path / "tune-containers"
    statics = [f"--static={key}={value}" for key, value in
               {**TINY_PPO, "rl.training.stop.training_iteration": 3}.items()]
    command = [sys.executable, "scripts/tune.py", "--problem", "reacher", "--backend", "container",
               "--image", f"{IMAGE}-cpu", "--run-dir", str(run_dir), "--max-jobs", "2", "--max-parallel-jobs", "2",
               "--reevaluate-top", "0", "--param", "rl.training.config.lr=Continuous:1e-4:1e-3:Logarithmic",
               *statics]
    resume = [sys.executable, "scripts/tune.py", "--resume", str(run_dir)]
    tuner = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        first = _wait_for_containers(run_dir.name, tuner, 2)
        os.killpg(tuner.pid, signal.SIGKILL)
        tuner.wait()
        assert len(containers_of(run_dir.name, running=True)) == 2  # kill -9 left the jobs running: resume ends them
        tuner = subprocess.Popen(resume, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True)
        _wait_for_containers(run_dir.name, tuner, 2, besides=first)  # the reruns' (the first were removed)
        os.kill(tuner.pid, signal.SIGINT)  # Ctrl-C
        output, _ = tuner.communicate(timeout=120)
        assert tuner.returncode == 130, output[-3000:]
        assert containers_of(run_dir.name) == []
    finally:
        if tuner.poll() is None:
            os.killpg(tuner.pid, signal.SIGKILL)
        for name in containers_of(run_dir.name):  # after a failure: what the tuners left
            subprocess.run([DOCKER, "kill", name], capture_output=True)
            subprocess.run([DOCKER, "rm", "-f", name], capture_output=True)
    resumed = subprocess.run(resume, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    with (run_dir / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # The killed and the interrupted tuners' trials ran again with the same parameters, and completed.
    lr = "rl.training.config.lr"
    complete = [row for row in rows if row["status"] == "complete"]
    assert len(complete) == 2 and all(row["status"] == "interrupted" for row in rows if row not in complete), rows
    assert {row[lr] for row in complete} == {row[lr] for row in rows[:2]}, rows
    for row in complete:
        trial = run_dir / "trials" / f"{int(row['trial']):04d}"
        assert (trial / "output" / "success").exists() and (trial / "model" / "policy.onnx").is_file()
        assert json.loads((trial / "model" / "result.json").read_text())["training_iteration"] == 3
    assert containers_of(run_dir.name) == []
    assert json.loads((run_dir / "container.json").read_text())["image"] == f"{IMAGE}-cpu"


def test_train_runs_a_job_in_a_container_and_removes_it(tmp_path):
    run_dir = tmp_path / "train-container"
    hps = [f"--hp={key}={value}" for key, value in {**TINY_PPO, "rl.training.stop.training_iteration": 1}.items()]
    done = subprocess.run([sys.executable, "scripts/train.py", "--problem", "reacher", "--backend", "container",
                           "--image", f"{IMAGE}-cpu", "--run-dir", str(run_dir), *hps], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "training_iteration: 1" in done.stdout
    assert "sagemaker-training-toolkit INFO" not in done.stdout  # quiet: the toolkit's own lines are off
    assert (run_dir / "model" / "policy.onnx").is_file()
    resource = json.loads((run_dir / "input" / "config" / "resourceconfig.json").read_text())
    assert resource["hosts"] == ["algo-1"] == [resource["current_host"]]
    assert containers_of(run_dir.name) == [] and networks_left(run_dir) == []


def test_train_with_an_image_the_engine_lacks_says_how_to_build_it(tmp_path):
    done = subprocess.run([sys.executable, "scripts/train.py", "--problem", "reacher", "--backend", "container",
                           "--image", "sagemaker-rl:no-such-tag", "--run-dir", str(tmp_path / "run")], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "has no image sagemaker-rl:no-such-tag: build it with `make build VARIANT=cpu" in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()
