"""The Python API (sagemaker_rl.api): new runs, resume and backend selection, on the job contract's TEST DOUBLE
(tests/tuning/fake_job.py), Ray's and the image's checks, and a SageMaker tuning job on the moto server."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

import sagemaker_rl
from sagemaker_rl import api, sagemaker
from sagemaker_rl.errors import UserError
from sagemaker_rl.tuning import LocalProcessRunner, Strategy, TuningError
from sagemaker_rl.tuning.container_runner import ContainerRunner
from tests.sagemaker.helpers import sm_config

FAKE_JOB = Path(__file__).resolve().parent / "tuning" / "fake_job.py"
KL = "rl.training.config.kl_coeff"  # the fake job's reward slope: a larger value is a better trial


@pytest.fixture
def fake_runner() -> LocalProcessRunner:
    return LocalProcessRunner([sys.executable, str(FAKE_JOB)])


def _config(tmp_path: Path, **changes) -> api.TuningConfig:
    space = api.SearchSpace((api.ContinuousParameter(KL, 0.5, 2.0),), {"rl.training.stop.training_iteration": 3})
    settings = {"problem": "reacher", "space": space, "max_jobs": 3, "run_dir": tmp_path / "run", "num_cpus": 2,
                "sampler_seed": 0, "reevaluate_top": 0, "check_hyperparameters": False, **changes}
    return api.TuningConfig(**settings)


def test_tune_runs_a_study_and_gives_its_answer_trials_and_report(tmp_path, fake_runner):
    out = io.StringIO()
    tuning = api.tune(_config(tmp_path), max_parallel_jobs=2, runner=fake_runner, out=out)
    assert tuning.result is not None and (tuning.result.complete, tuning.result.failed) == (3, 0)
    rows = tuning.trials()
    assert [row["status"] for row in rows] == ["complete"] * 3
    best = max(rows, key=lambda row: row["objective"])
    assert tuning.best_hyperparameters == {KL: best[KL], "rl.training.stop.training_iteration": 3}
    assert tuning.report == tuning.run_dir / "report.html" and tuning.report.is_file()
    assert "3/3 done" in out.getvalue()
    assert (tuning.run_dir / "tuner.log").is_file()
    recorded = json.loads((tuning.run_dir / "tuning.json").read_text())
    assert recorded["max_parallel_jobs"] == 2 and recorded["reproduce"]["command"].startswith("python")


def test_the_model_dir_is_the_answers_model(tmp_path, fake_runner):
    tuning = api.tune(_config(tmp_path, max_jobs=2), runner=fake_runner, out=io.StringIO())
    best = max(tuning.trials(), key=lambda row: row["objective"])
    model = tuning.run_dir / "trials" / f"{best['trial']:04d}" / "model"
    assert api.Tuning(tuning.run_dir).model_dir == model and (model / "seed.txt").is_file()
    reevaluated = api.tune(_config(tmp_path, max_jobs=2, reevaluate_top=1, reevaluate_seeds=1,
                                   run_dir=tmp_path / "again"), runner=fake_runner, out=io.StringIO())
    assert reevaluated.model_dir == reevaluated.run_dir / "model"  # the answer's policy, trained again


def test_resume_continues_a_run_with_a_larger_budget_and_tuning_opens_it_from_its_directory(tmp_path, fake_runner):
    first = api.tune(_config(tmp_path, max_jobs=2), runner=fake_runner, out=io.StringIO())
    again = api.resume(first.run_dir, max_jobs=4, runner=fake_runner, out=io.StringIO())
    assert again.result is not None and again.result.complete == 4
    assert len(api.Tuning(first.run_dir).trials()) == 4
    assert first.resume(max_jobs=4, runner=fake_runner, out=io.StringIO()).result.complete == 4  # nothing left


def test_a_new_run_refuses_an_existing_run_directory_and_names_resume(tmp_path, fake_runner):
    api.tune(_config(tmp_path, max_jobs=1), runner=fake_runner, out=io.StringIO())
    with pytest.raises(TuningError, match="already holds a tuning run: continue it with --resume"):
        api.tune(_config(tmp_path, max_jobs=1), runner=fake_runner, out=io.StringIO())


def test_the_package_exports_the_api_without_loading_it_on_import():
    assert sagemaker_rl.tune is api.tune and sagemaker_rl.Tuning is api.Tuning
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sagemaker_rl.nothing  # noqa: B018


# --- backend selection ---


def test_a_local_run_records_no_runner_and_resumes_locally(tmp_path):
    with api.open_tuning(_config(tmp_path), api.LOCAL) as run:
        assert run.runner is None
    with api.reopen_tuning(tmp_path / "run") as run:
        assert run.runner is None


def test_a_container_run_records_its_image_and_resumes_in_it(tmp_path, monkeypatch):
    monkeypatch.setattr(api.engine, "find_engine", lambda: "podman")  # no engine on a test machine
    checked = []
    monkeypatch.setattr(api.engine, "check_image", checked.append)
    backend = api.Container(image="sagemaker-rl:test-cpu", instance_count=2)
    with api.open_tuning(_config(tmp_path), backend) as run:
        assert isinstance(run.runner, ContainerRunner)
        settings = run.runner.settings
    assert (settings.image, settings.engine, settings.instance_count, settings.run_name) == (
        "sagemaker-rl:test-cpu", "podman", 2, "run")
    assert checked == [settings]
    with api.reopen_tuning(tmp_path / "run") as run:
        assert isinstance(run.runner, ContainerRunner) and run.runner.settings == settings


def test_a_container_run_without_an_engine_fails_before_the_run_directory_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither podman nor docker on it
    with pytest.raises(UserError, match="podman|docker"):
        api.tune(_config(tmp_path), backend=api.Container())
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("backend", "message"), [
    (api.Ray(), "needs --storage-path"),
    (api.Ray(storage_path="/tmp", address="http://127.0.0.1:9"), "127.0.0.1:9"),
])
def test_a_ray_run_checks_its_cluster_before_the_run_directory_exists(tmp_path, backend, message):
    with pytest.raises(TuningError, match=message):
        api.tune(_config(tmp_path), backend=backend)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("strategy", ["PBT", "PB2", "ASHA"])
def test_strategies_sagemaker_lacks_are_refused_before_any_aws_call(tmp_path, strategy):
    backend = api.SageMaker(sm_config(), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(TuningError, match=f"strategy {strategy} runs locally or on a Ray cluster .* SageMaker AMT "
                                          "does not have it"):
        api.tune(_config(tmp_path, strategy=strategy, space=api.SearchSpace((api.ContinuousParameter(KL, 0.5, 2.0),)),
                         max_jobs=None), backend=backend)


def test_a_sagemaker_run_with_a_training_budget_is_refused_for_the_budget_not_for_a_strategy_it_never_named(
        tmp_path, endpoint):
    backend = api.SageMaker(sm_config(), endpoint_url=endpoint)
    config = _config(tmp_path, reevaluate_top=1, train_budget="1M")  # the default strategy with it: ASHA
    assert config.strategy is Strategy.ASHA
    with pytest.raises(UserError, match="train_budget is 1M, but a SageMaker tuning job has no re-evaluation"):
        api.tune(config, backend=backend)


def test_a_sagemaker_run_is_one_tuning_job_started_from_the_same_config(tmp_path, endpoint):
    backend = api.SageMaker(sm_config(job_name="rl-api-tune-1"), endpoint_url=endpoint, wait=False)
    tuning = api.tune(_config(tmp_path, max_jobs=4, max_parallel_jobs=2), backend=backend, out=io.StringIO())
    assert tuning.job_name == "rl-api-tune-1" and (tuning.run_dir / "sagemaker.json").is_file()
    described = sagemaker.connect(endpoint_url=endpoint).sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="rl-api-tune-1")
    limits = described["HyperParameterTuningJobConfig"]["ResourceLimits"]
    assert limits == {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}
    with pytest.raises(TuningError, match="is not a SageMaker tuning job this session started"):
        api.Tuning(tuning.run_dir).wait()


def test_settings_are_a_tuning_files_keys_and_a_misspelt_one_gets_the_closest(tmp_path, fake_runner):
    with pytest.raises(TuningError, match="unknown tuning setting 'max_job'.*did you mean 'max_jobs'"):
        api.tune(_config(tmp_path), max_job=3)
    parameters = {KL: {"type": "Continuous", "min_value": 3, "max_value": 4}}
    tuning = api.tune(_config(tmp_path), max_jobs=1, parameters=parameters, runner=fake_runner, out=io.StringIO())
    assert 3 <= tuning.best_hyperparameters[KL] <= 4


# --- training ---


def test_train_runs_one_job_under_the_contract_and_an_existing_run_dir_keeps_its_inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(api.job, "job_command", lambda problem: [str(FAKE_JOB), "--problem", problem])
    out = io.StringIO()
    trained = api.train("reacher", {"rl.training.stop.training_iteration": 2}, run_dir=tmp_path / "job", out=out)
    assert trained.exit_code == 0 and trained.run_dir == tmp_path / "job"
    assert out.getvalue().startswith(f"Run directory: {tmp_path / 'job'}\n")
    assert "episode_reward_mean: 2" in out.getvalue()
    assert (tmp_path / "job" / "output" / "success").is_file()
    assert trained.model_dir == tmp_path / "job" / "model"
    again = api.train("reacher", run_dir=tmp_path / "job", out=io.StringIO())  # resumes: the same inputs
    assert again.exit_code == 0
    assert json.loads((tmp_path / "job/input/config/hyperparameters.json").read_text()) == {
        "rl.training.stop.training_iteration": "2"}


def test_a_failed_job_returns_its_exit_code(tmp_path, monkeypatch):
    monkeypatch.setattr(api.job, "job_command", lambda problem: [str(FAKE_JOB), "--problem", problem])
    trained = api.train("reacher", {"fake.mode": "crash"}, run_dir=tmp_path / "job", out=io.StringIO())
    assert trained.exit_code == 1
    assert (tmp_path / "job/output/failure").read_text().startswith("the job failed: RuntimeError: boom")


def test_sigterm_to_this_process_reaches_the_job_it_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(api.job, "job_command", lambda problem: [str(FAKE_JOB), "--problem", problem])
    before = signal.getsignal(signal.SIGTERM)  # an earlier test's Ray may have set one
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))  # the job then sleeps in its 1st iteration
    timer.start()
    trained = api.train("reacher", {"fake.sleep": 5}, run_dir=tmp_path / "job", out=io.StringIO())
    timer.join()
    assert trained.exit_code == -signal.SIGTERM  # the test double has no handler: SIGTERM ends it
    assert signal.getsignal(signal.SIGTERM) is before  # this process's own handling is back
