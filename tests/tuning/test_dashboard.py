"""Live views of a run: optuna-dashboard serves a real run's study (its SQLite storage) on 127.0.0.1, and one
TensorBoard log directory holds every job's events."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sagemaker_rl import api
from sagemaker_rl.tuning.ray_jobs import RayCluster

KL = "rl.training.config.kl_coeff"


def _finished_run(tmp_path: Path, runner) -> api.Tuning:
    space = api.SearchSpace((api.ContinuousParameter(KL, 0.5, 2.0),), {"rl.training.stop.training_iteration": 3})
    return api.tune(problem="reacher", space=space, max_jobs=3, run_dir=tmp_path / "run", num_cpus=2, sampler_seed=0,
                    reevaluate_top=0, check_hyperparameters=False, runner=runner, out=io.StringIO())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, *, timeout_s: float = 60) -> dict:
    """The JSON at `url`, waiting for the server to come up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_optuna_dashboard_serves_a_finished_runs_study_on_localhost(tmp_path, fake_runner):
    tuning = _finished_run(tmp_path, fake_runner)
    port = _free_port()
    command = tuning.dashboard_command(port=port)
    assert command[2:4] == ["--host", "127.0.0.1"]
    command[0] = str(Path(sys.executable).with_name("optuna-dashboard"))  # the venv's
    server = subprocess.Popen([*command, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        assert [study["study_name"] for study in studies] == ["run"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = {row["trial"]: row for row in tuning.trials()}
    assert {trial["number"]: trial["values"][0] for trial in detail["trials"]} == {
        number: row["objective"] for number, row in rows.items()}
    assert [trial["state"] for trial in detail["trials"]] == ["Complete"] * 3
    assert detail["best_trials"][0]["values"][0] == max(row["objective"] for row in rows.values())


def test_one_tensorboard_logdir_holds_every_jobs_events(tmp_path, fake_runner):
    tuning = _finished_run(tmp_path, fake_runner)
    assert tuning.tensorboard_logdir == tuning.run_dir  # local jobs write under trials/NNNN/output/intermediate
    RayCluster("http://head:8265", "/shared/runs").write(tuning.run_dir)
    assert tuning.tensorboard_logdir == Path("/shared/runs/run")  # a Ray run's jobs write on the cluster's storage

