"""Re-evaluation on fresh seeds and warm start, on the job contract's TEST DOUBLE (fake_job.py).

The fake job's reward is slope * iteration + seed, and `fake.lucky` adds 100 on the search's seeds
(< 10000) only: a configuration that looks best in the search and is not. The real job's run with
re-evaluation is in test_cli.py.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sagemaker_rl.tuning import TuningError, config_from_mapping, run_tuning
from sagemaker_rl.tuning.config import REEVALUATION_SEED_BASE
from sagemaker_rl.tuning.record import read
from sagemaker_rl.tuning.runners import PID_FILE

from .test_tuner import DRIVER, _start_driver, _study, _wait_for


def _config(tmp_path: Path, **settings):
    return config_from_mapping({
        "run_dir": str(tmp_path / "run"),
        "num_cpus": 2,
        "check_hyperparameters": False,
        "sampler_seed": 0,
        "strategy": "Grid",
        "parameters": {"fake.slope": {"type": "Categorical", "values": [0.5, 2.0]}},
        "static": {"rl.training.stop.training_iteration": 3},
        **settings,
    })


def test_re_evaluation_trains_the_top_configurations_and_the_default_on_the_same_fresh_seeds(tmp_path, fake_runner):
    config = _config(tmp_path, reevaluate_top=2, reevaluate_seeds=2, max_parallel_jobs=2)
    out = io.StringIO()
    result = run_tuning(config, runner=fake_runner, out=out)
    trials = _study(result.run_dir).trials
    search = {t.number: t for t in trials if "reevaluation_of" not in t.user_attrs}
    reevaluations = {t.user_attrs["reevaluation_of"]: t for t in trials if "reevaluation_of" in t.user_attrs}
    assert len(search) == 2 and set(reevaluations) == set(search) | {"default"}
    seeds = [REEVALUATION_SEED_BASE, REEVALUATION_SEED_BASE + 1]
    for key, trial in reevaluations.items():
        assert trial.state == TrialState.COMPLETE and trial.user_attrs["seeds"] == seeds
        slope = 1.0 if key == "default" else search[key].params["fake.slope"]
        assert trial.user_attrs["seed_objectives"] == pytest.approx([3 * slope + seed for seed in seeds])
        for index, seed in enumerate(seeds):  # each job got its fresh seed; the default got no tuned value
            sent = json.loads((Path(trial.user_attrs["trial_dir"]) / f"seed-{index}/input/config/"
                               "hyperparameters.json").read_text())
            assert json.loads(sent["rl.training.seed"]) == seed
            assert ("fake.slope" in sent) == (key != "default")
    steep = next(t for t in search.values() if t.params["fake.slope"] == 2.0)
    best = json.loads((result.run_dir / "best_hyperparameters.json").read_text())
    assert best == {"fake.slope": 2.0, "rl.training.stop.training_iteration": 3, "rl.training.stop.time_total_s": 60}
    assert result.best_hyperparameters == best
    assert result.reevaluated[steep.number] == pytest.approx(6 + 10000.5)
    text = out.getvalue()
    assert f"best by re-evaluation: trial {steep.number}" in text
    assert "re-evaluated on seeds 10000, 10001 (no search trial used them)" in text
    rows = list(csv.DictReader(open(result.run_dir / "trials.csv")))
    assert sorted(row["role"] for row in rows) == sorted(
        ["search", "search", "re-evaluation of default", *(f"re-evaluation of trial {n}" for n in search)]
    )
    page = (result.run_dir / "report.html").read_text()
    assert "Re-evaluation on fresh seeds" in page and "Learning curves against wall time" in page


def test_at_a_training_budget_the_answer_is_judged_and_trained_there_and_its_best_policy_is_the_runs(
        tmp_path, fake_runner):
    config = _config(tmp_path, reevaluate_top=1, reevaluate_seeds=2, max_parallel_jobs=2, train_budget="5k", static={
        "rl.training.stop.training_iteration": 3,
        "fake.evaluation": {"0.5": 20000}})  # a search trial's policy, trained shorter than the budget: not the run's
    out = io.StringIO()
    result = run_tuning(config, runner=fake_runner, out=out)
    trials = _study(result.run_dir).trials
    reevaluations = [t for t in trials if "reevaluation_of" in t.user_attrs]
    assert len(reevaluations) == 2
    for trial in reevaluations:  # 5 iterations of 1,000 env steps, whatever the search's trials ran
        assert trial.user_attrs["seed_objectives"] == pytest.approx(
            [5 * (2.0 if trial.user_attrs["reevaluation_of"] != "default" else 1.0) + seed for seed in (10000, 10001)])
    best = json.loads((result.run_dir / "best_hyperparameters.json").read_text())
    assert best == {"fake.slope": 2.0, "rl.training.stop.timesteps_total": 5000,  # what "train with them" trains
                    "fake.evaluation": {"0.5": 20000}}
    assert (result.run_dir / "model/seed.txt").read_text() == "10001\n"  # the answer's best job's policy
    assert result.files["model"] == result.run_dir / "model"
    for trial in trials:  # the search's jobs, shorter than the budget, skip the evaluation nobody reads
        sent = json.loads((read(trial).job_dirs(1)[0] / "input/config/hyperparameters.json").read_text())
        assert ("rl.training.evaluation_episodes" in sent) == ("reevaluation_of" not in trial.user_attrs)
    text = out.getvalue()
    assert "fresh seeds at 5,000 env steps (4 jobs)" in text and f"model: {result.run_dir / 'model'}" in text


@pytest.mark.parametrize("episodes", [5, 0])
def test_the_runs_policy_is_the_best_evaluated_of_the_jobs_trained_as_long_as_the_answer(tmp_path, fake_runner,
                                                                                        episodes):
    """A search trial that ran in full may hold the best policy of the run though its configuration is not the
    answer; without evaluations the answer's best re-evaluation job's policy is the run's, as before."""
    config = _config(tmp_path, reevaluate_top=1, reevaluate_seeds=2, max_parallel_jobs=2, static={
        "rl.training.stop.training_iteration": 3, "rl.training.evaluation_episodes": episodes,
        "fake.evaluation": {"0.5": 20000}})  # slope 0.5 learns slower but its policy evaluates best
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    assert json.loads((result.run_dir / "best_hyperparameters.json").read_text())["fake.slope"] == 2.0
    policy = json.loads((result.run_dir / "model/params.json").read_text())
    assert policy["hyperparameters"]["fake.slope"] == (0.5 if episodes else 2.0)
    assert policy["seed"] == (None if episodes else 10001)  # the search trial's job, or the answer's best
    if episodes:
        assert json.loads((result.run_dir / "model/result.json").read_text())["evaluation_reward_mean"] == 20000


def test_a_lucky_search_trial_loses_to_the_default_and_the_default_is_the_answer(tmp_path, fake_runner):
    config = _config(
        tmp_path,
        parameters={"fake.slope": {"type": "Categorical", "values": [0.5]}, "fake.lucky": {"type": "Categorical",
                                                                                         "values": [1]}},
        reevaluate_top=1,
        reevaluate_seeds=2,
    )
    out = io.StringIO()
    result = run_tuning(config, runner=fake_runner, out=out)
    assert result.best_value == pytest.approx(101.5)  # the search believed in it
    assert result.reevaluated["default"] == pytest.approx(3 + 10000.5)
    assert json.loads((result.run_dir / "best_hyperparameters.json").read_text()) == {
        "rl.training.stop.training_iteration": 3, "rl.training.stop.time_total_s": 60  # the static values alone
    }
    assert "best by re-evaluation: default" in out.getvalue()
    assert "-1.5" in out.getvalue()  # its gain over the default: 1.5 - 3 per seed


def test_resume_after_kill_9_during_re_evaluation_finishes_it_without_rerunning_the_search(tmp_path):
    run_dir = tmp_path / "run"
    settings = {
        "strategy": "Grid", "max_parallel_jobs": 2, "num_cpus": 2, "check_hyperparameters": False,
        "sampler_seed": 1, "reevaluate_top": 1, "reevaluate_seeds": 2,
        "parameters": {"fake.slope": {"type": "Categorical", "values": [1.0, 2.0]}},
        "static": {"rl.training.stop.training_iteration": 6, "fake.sleep": 0.4},
    }  # fmt: skip
    tuner = _start_driver(run_dir, settings)

    def reevaluating() -> bool:  # a re-evaluation's first job has started (its pid file exists)
        try:
            trials = _study(run_dir).trials
        except Exception:  # the run directory or its study does not exist yet
            return False
        return any("reevaluation_of" in t.user_attrs and t.state == TrialState.RUNNING
                   and (Path(t.user_attrs["trial_dir"]) / "seed-0" / PID_FILE).exists() for t in trials)

    try:
        _wait_for(reevaluating, timeout=120)
    except AssertionError:  # it timed out once in a full test-fast run: say what the tuner was doing
        tuner.kill()
        printed = tuner.communicate()[0][-4000:]
        raise AssertionError(f"no re-evaluation job seen running within 120 s; the tuner printed:\n{printed}") from None
    tuner.kill()
    tuner.wait()
    before = _study(run_dir).trials
    interrupted = [t for t in before if "reevaluation_of" in t.user_attrs and t.state == TrialState.RUNNING]
    search_starts = {t.number: _job_starts(t) for t in before if "reevaluation_of" not in t.user_attrs}
    resumed = subprocess.run([sys.executable, str(DRIVER), "resume", str(run_dir)], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = _study(run_dir).trials
    for trial in after:
        if trial.number in search_starts:  # finished search trials are neither rerun nor changed
            assert trial.state == TrialState.COMPLETE and _job_starts(trial) == search_starts[trial.number]
    for trial in interrupted:
        assert after[trial.number].user_attrs.get("interrupted") and after[trial.number].state == TrialState.FAIL
    done = [t for t in after if "reevaluation_of" in t.user_attrs and t.state == TrialState.COMPLETE]
    assert sorted(map(str, (t.user_attrs["reevaluation_of"] for t in done))) == sorted(
        ["default", str(max(search_starts, key=lambda n: after[n].value))]
    )  # each candidate re-evaluated once, to the end
    assert "best by re-evaluation: trial" in resumed.stdout


def _job_starts(trial: optuna.trial.FrozenTrial) -> int:
    directory = Path(trial.user_attrs["trial_dir"])
    return sum(len(log.read_text().splitlines()) for log in directory.rglob("starts.log"))


def test_warm_start_copies_the_parents_trials_that_fit_a_changed_space(tmp_path, fake_runner):
    parent = _config(tmp_path / "p", strategy="Random", max_jobs=4, reevaluate_top=0,
                     parameters={"fake.slope": {"type": "Continuous", "min_value": -1.0, "max_value": 1.0}},
                     static={"rl.training.stop.training_iteration": 3, "rl.training.seed": 5})  # +5 a reward
    parent_result = run_tuning(parent, runner=fake_runner, out=io.StringIO())
    parent_trials = _study(parent_result.run_dir).trials
    fits = [t for t in parent_trials if t.params["fake.slope"] >= 0]
    child = _config(
        tmp_path / "c", strategy="Random", max_jobs=2, reevaluate_top=0, warm_start=[str(parent_result.run_dir)],
        parameters={"fake.slope": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
                    "fake.sleep": {"type": "Continuous", "min_value": 0.01, "max_value": 0.02}},
    )  # fmt: skip
    out = io.StringIO()
    result = run_tuning(child, runner=fake_runner, out=out)
    trials = _study(result.run_dir).trials
    copied = [t for t in trials if "warm_start_from" in t.user_attrs]
    assert sorted(t.params["fake.slope"] for t in copied) == sorted(t.params["fake.slope"] for t in fits)
    assert all(set(t.params) == {"fake.slope"} for t in copied)  # fake.sleep is new: not invented
    assert all(t.user_attrs["warm_start_from"]["run"] == str(parent_result.run_dir) for t in copied)
    assert len([t for t in trials if "warm_start_from" not in t.user_attrs]) == 2  # the budget is this run's
    assert f"warm start (IdenticalDataAndAlgorithm): {len(copied)} trials of 1 parent run(s)" in out.getvalue()
    # IdenticalDataAndAlgorithm: the parents' trials compete for the answer (SageMaker's overall best)
    assert result.best_value == max(t.value for t in trials)
    assert max(copied, key=lambda t: t.value).value == result.best_value  # a parent's trial (its +5) is the answer


def test_warm_start_transfer_learning_informs_the_sampler_only(tmp_path, fake_runner):
    parent = _config(tmp_path / "p", strategy="Random", max_jobs=2, reevaluate_top=0,
                     parameters={"fake.slope": {"type": "Continuous", "min_value": 50.0, "max_value": 60.0}})
    parent_result = run_tuning(parent, runner=fake_runner, out=io.StringIO())
    child = _config(tmp_path / "c", strategy="Random", max_jobs=1, reevaluate_top=0,
                    warm_start=[str(parent_result.run_dir)], warm_start_type="TransferLearning",
                    parameters={"fake.slope": {"type": "Continuous", "min_value": 0.0, "max_value": 60.0}})
    result = run_tuning(child, runner=fake_runner, out=io.StringIO())
    own = [t for t in _study(result.run_dir).trials if "warm_start_from" not in t.user_attrs]
    assert result.best_value == own[0].value  # the parents' better values are not this run's answer


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"warm_start": ["nowhere"]}, "is not a tuning run directory"),
        ({"warm_start": ["p"], "problem": "hopper"}, "IdenticalDataAndAlgorithm needs the same problem"),
        ({"warm_start": ["p"], "static": {"rl.env.max_episode_steps": 50}}, r"tuned reacher, this run reacher \(or "
                                                                            r"another env of it\)"),
        ({"warm_start": ["p"], "objective_type": "Minimize"}, "a warm start needs the same objective"),
        ({"warm_start": ["p"] * 6}, "at most 5"),
        ({"warm_start_type": "Identical"}, "is not one of IdenticalDataAndAlgorithm, TransferLearning"),
    ],
)
def test_bad_warm_starts_fail_before_the_run_directory_exists(tmp_path, fake_runner, settings, message):
    parent = _config(tmp_path / "p", max_jobs=1, reevaluate_top=0)
    run_tuning(parent, runner=fake_runner, out=io.StringIO())
    if "warm_start" in settings:
        settings = {**settings, "warm_start": [str(tmp_path / name / "run") if name == "p" else name
                                               for name in settings["warm_start"]]}
    with pytest.raises(TuningError, match=message):
        run_tuning(_config(tmp_path / "c", **settings), runner=fake_runner, out=io.StringIO())
    assert not (tmp_path / "c" / "run").exists()


def test_a_running_parent_is_refused(tmp_path, fake_runner):
    from sagemaker_rl.tuning.rundir import locked

    parent = _config(tmp_path / "p", max_jobs=1, reevaluate_top=0)
    parent_run = run_tuning(parent, runner=fake_runner, out=io.StringIO()).run_dir
    with locked(parent_run), pytest.raises(TuningError, match="is still running"):
        run_tuning(_config(tmp_path / "c", warm_start=[str(parent_run)]), runner=fake_runner, out=io.StringIO())
