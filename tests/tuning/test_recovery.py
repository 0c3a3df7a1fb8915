"""Nothing lost: a trial that finished before its tuner died, run directories with hostile names,
formulas in trials.csv, unusable storages, and a real job that diverges under the real tuner."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sagemaker_rl.tuning import TuningError, config_from_mapping, run_tuning
from sagemaker_rl.tuning.runners import LocalProcessRunner
from tests.conftest import TINY_PPO
from tests.tuning.test_tuner import DRIVER, _start_driver, _states, _study, _wait_for

optuna.logging.set_verbosity(optuna.logging.WARNING)
FAULTS = Path(__file__).parents[1] / "faults"


def test_a_trial_whose_job_succeeded_before_the_tuner_died_is_recorded_from_its_outputs_not_rerun(tmp_path):
    run_dir = tmp_path / "run"
    settings = {"strategy": "Random", "max_jobs": 1, "max_parallel_jobs": 1, "num_cpus": 1, "sampler_seed": 1,
                "check_hyperparameters": False, "reevaluate_top": 0,
                "parameters": {"rl.training.config.kl_coeff": {"type": "Continuous", "min_value": 0.5,
                                                               "max_value": 1.0}},
                # the job writes output/success, then stays alive: the tuner has not recorded it yet
                "static": {"rl.training.stop.training_iteration": 3, "fake.linger": 600}}
    tuner = _start_driver(run_dir, settings)
    success = run_dir / "trials" / "0000" / "output" / "success"
    _wait_for(success.exists)
    tuner.kill()  # kill -9 between the job's success and the tuner's record of it
    tuner.wait()
    assert _states(run_dir) == [TrialState.RUNNING]

    resumed = subprocess.run([sys.executable, str(DRIVER), "resume", str(run_dir)], capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (trial,) = _study(run_dir).trials  # recorded, and no rerun
    assert trial.state == TrialState.COMPLETE
    assert trial.value == pytest.approx(3 * trial.params["rl.training.config.kl_coeff"], rel=1e-5)
    assert len((run_dir / "trials" / "0000" / "starts.log").read_text().splitlines()) == 1


def test_run_directory_names_with_url_and_shell_characters_stay_inside_and_print_quoted(tmp_path, fake_runner):
    run_dir = tmp_path / "run $(touch PWNED) ?mode=ro&x=%41 #frag"
    config = config_from_mapping({
        "run_dir": str(run_dir), "num_cpus": 1, "max_jobs": 1, "check_hyperparameters": False, "reevaluate_top": 0,
        "parameters": {"fake.note": {"type": "Categorical", "values": ['=HYPERLINK("http://x", "y")']}},
        "static": {"rl.training.stop.training_iteration": 1},
    })
    out = io.StringIO()
    result = run_tuning(config, runner=fake_runner, out=out)
    assert result.complete == 1
    assert (run_dir / "study.db").is_file()  # not cut at "?" or "#", and "%41" not decoded
    assert sorted(path.name for path in tmp_path.iterdir()) == [run_dir.name]
    row = next(csv.DictReader(open(run_dir / "trials.csv")))
    assert row["fake.note"] == "'=HYPERLINK(\"http://x\", \"y\")"  # a spreadsheet shows it as text, never runs it
    hint = next(line for line in out.getvalue().splitlines() if line.startswith("train with them: "))
    command = hint.removeprefix("train with them: ")
    assert shlex.split(command)[-1] == str(run_dir / "best_hyperparameters.json")
    # Pasted into a shell (with `true` for python), the printed command runs nothing from the name.
    subprocess.run(["bash", "-c", "true " + command.removeprefix("python ")], cwd=tmp_path, check=True)
    assert not (tmp_path / "PWNED").exists()
    recorded = json.loads((run_dir / "tuning.json").read_text())
    assert "$(touch PWNED)" not in recorded["reproduce"]["command"] or "'" in recorded["reproduce"]["command"]


@pytest.mark.parametrize("url, message", [
    ("postgresql+psycopg2://user:secret@127.0.0.1:1/nowhere", "cannot open the study storage"),
    ("notadialect://x", "cannot open the study storage"),
    ("sqlite:////nonexistent-dir/sub/study.db", "cannot open the study storage"),
])
def test_an_unusable_storage_is_one_sentence_without_the_password(tmp_path, fake_runner, url, message):
    config = config_from_mapping({"run_dir": str(tmp_path / "run"), "num_cpus": 1, "max_jobs": 1, "storage": url,
                                  "check_hyperparameters": False})
    with pytest.raises(TuningError) as error:
        run_tuning(config, runner=fake_runner)
    assert message in str(error.value) and "\n" not in str(error.value) and "secret" not in str(error.value)


@pytest.mark.slow
def test_a_real_job_whose_return_turns_nan_fails_its_trial_as_diverged(tmp_path, monkeypatch):
    """The real tuner runs the real job; tests/faults makes every reward NaN inside the job's envs."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("SAGEMAKER_RL_TEST_FAULT", "nan_reward")
    config = config_from_mapping({
        "run_dir": str(tmp_path / "run"), "num_cpus": 1, "max_jobs": 1, "check_hyperparameters": False,
        "reevaluate_top": 0,
        "parameters": {"rl.training.config.kl_coeff": {"type": "Continuous", "min_value": 0.5, "max_value": 1.0}},
        "static": {**TINY_PPO, "rl.training.stop.training_iteration": 3},
    })
    result = run_tuning(config, runner=LocalProcessRunner())
    assert (result.complete, result.failed) == (0, 1)
    (trial,) = _study(result.run_dir).trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["failure"].startswith("diverged: episode_reward_mean")
    job_dir = Path(trial.user_attrs["trial_dir"])
    assert (job_dir / "output" / "failure").read_text().startswith("diverged: ")
    assert not (job_dir / "output" / "success").exists()
    assert "episode_reward_mean: nan" in (job_dir / "stdout.log").read_text()
    row = next(csv.DictReader(open(result.run_dir / "trials.csv")))
    assert row["status"] == "failed" and "diverged" in row["failure"]
