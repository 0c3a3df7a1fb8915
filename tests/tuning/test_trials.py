"""Trials, the study's writer: what it records on ask, tell and rerun, read back by status, counts, best and the
progress line (in-memory studies)."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from sagemaker_rl.contract import FAILURE_LINE_LIMIT
from sagemaker_rl.tuning import ContinuousParameter, SearchSpace, rundir
from sagemaker_rl.tuning.plan import search_has_room
from sagemaker_rl.tuning.ranking import best, progress_line
from sagemaker_rl.tuning.record import (
    INTERRUPTED_REASON,
    TrialRecord,
    counted,
    counts,
    external_trial,
    read,
    replaced,
    status,
)
from sagemaker_rl.tuning.record import hyperparameters as trial_hyperparameters
from sagemaker_rl.tuning.record import tuned as trial_tuned
from sagemaker_rl.tuning.trials import Trials

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = SearchSpace((ContinuousParameter("rl.training.config.kl_coeff", 0.5, 1.0),),
                    {"rl.training.stop.time_total_s": 60})
RUN_DIR = Path("/runs/tune-a")


def _trials(study: optuna.Study, run_dir: Path = RUN_DIR, *, private: bool = True) -> Trials:
    return Trials(study, run_dir, private=private)


def _run(study: optuna.Study, outcomes: list[str]) -> Trials:
    """Ask one trial per outcome and record it: a number completes with that value, else fail/prune/interrupt/run."""
    book = _trials(study)
    for outcome in outcomes:
        trial, _, _ = book.ask(SPACE)
        if outcome == "fail":
            book.fail(trial, "the job failed: boom " + "x" * 2000, duration_s=3.0)
        elif outcome == "prune":
            book.prune(trial, duration_s=2.0)
        elif outcome == "interrupt":
            book.interrupt(trial)
        elif outcome != "run":
            book.complete(trial, float(outcome), duration_s=1.0, seed_objectives=[float(outcome)])
    return book


def test_ask_records_where_the_trial_runs_and_what_it_runs_with():
    book = _trials(optuna.create_study(direction="maximize"))
    trial, directory, flat = book.ask(SPACE)
    assert directory == RUN_DIR / "trials" / "0000" == rundir.trial_dir(RUN_DIR, 0)
    kl = flat["rl.training.config.kl_coeff"]
    assert flat == {"rl.training.stop.time_total_s": 60, "rl.training.config.kl_coeff": kl} and 0.5 <= kl <= 1.0
    book.complete(trial, 4.0, duration_s=1.5, seed_objectives=[3.0, 5.0])
    (frozen,) = book.all()
    assert frozen.user_attrs == {  # the keys every earlier study holds
        "run_dir": str(RUN_DIR),
        "trial_dir": str(directory),
        "tuned": {"rl.training.config.kl_coeff": kl},
        "hyperparameters": flat,
        "duration_s": 1.5,
        "seed_objectives": [3.0, 5.0],
    }
    assert read(frozen) == TrialRecord(run_dir=str(RUN_DIR), trial_dir=str(directory), tuned={
        "rl.training.config.kl_coeff": kl}, hyperparameters=flat, duration_s=1.5, seed_objectives=[3.0, 5.0])
    assert trial_hyperparameters(frozen) == flat and trial_tuned(frozen) == {"rl.training.config.kl_coeff": kl}


def test_status_and_counts_tell_interrupted_and_rerun_trials_from_failures():
    book = _run(optuna.create_study(direction="maximize"), ["1.0", "fail", "prune", "interrupt", "run"])
    assert [trial.number for trial in book.to_rerun()] == [3, 4]  # interrupted, and left running
    for trial in book.to_rerun():
        book.rerun(trial)
    found = book.all()
    assert [status(trial, replaced(found)) for trial in found] == [
        "complete", "failed", "pruned", "interrupted", "interrupted", "waiting", "waiting"]
    assert found[5].user_attrs == {"rerun_of": 3}
    assert counts(found) == {"complete": 1, "pruned": 1, "failed": 1, "running": 0, "waiting": 2,
                                    "interrupted": 2}
    assert counted(found) == 5  # the reruns count, not what they replace
    assert book.to_rerun() == []  # each is rerun once
    assert len(found[1].user_attrs["failure"]) == FAILURE_LINE_LIMIT
    assert found[3].user_attrs["failure"] == INTERRUPTED_REASON
    rerun, _, _ = book.ask(SPACE)  # the rerun starts with the parameters of the trial it replaces
    assert rerun.number == 5 and rerun.params == found[3].params


def test_the_budget_counts_waiting_reruns_as_startable():
    book = _run(optuna.create_study(direction="maximize"), ["1.0", "interrupt"])
    assert not search_has_room(book.all(), 1)
    book.rerun(book.to_rerun()[0])
    assert search_has_room(book.all(), 1)  # the waiting rerun may start although the budget is used


def test_a_shared_storage_reruns_only_its_own_run_directorys_trials():
    study = optuna.create_study(direction="maximize")
    _run(study, ["interrupt"])  # started by RUN_DIR
    study.ask()  # a trial asked by a tuner killed before it wrote any attribute
    other = _trials(study, Path("/runs/tune-b"), private=False)
    assert other.to_rerun() == []
    assert [trial.number for trial in _trials(study, private=False).to_rerun()] == [0]
    assert [trial.number for trial in _trials(study, private=True).to_rerun()] == [0, 1]


def test_best_is_the_best_finite_complete_trial_in_the_studys_direction():
    maximize = _run(optuna.create_study(direction="maximize"), ["1.0", "3.0", "fail", "2.0"])
    assert maximize.best().number == 1
    minimize = _run(optuna.create_study(direction="minimize"), ["1.0", "3.0", "-2.0"])
    assert minimize.best().number == 2
    distributions = {"x": FloatDistribution(0, 1)}
    infinite = create_trial(state=TrialState.COMPLETE, value=math.inf, params={"x": 0.5}, distributions=distributions)
    fine = create_trial(state=TrialState.COMPLETE, value=-5.0, params={"x": 0.5}, distributions=distributions)
    assert best([infinite, fine], StudyDirection.MAXIMIZE) is fine
    assert _trials(optuna.create_study()).best() is None


def test_progress_line_of_a_local_study_and_of_sagemakers_counters():
    book = _run(optuna.create_study(direction="maximize"), ["1.0", "4.5", "fail", "prune", "run"])
    assert book.progress(budget=8, running=1) == "4/8 done (1 failed, 1 stopped early), 1 running, best 4.5 (trial 1)"
    assert _trials(optuna.create_study()).progress(budget=8, running=0) == (
        "0/8 done (0 failed, 0 stopped early), 0 running, best -")
    assert progress_line(done=2, budget="?", failed=0, pruned=1, running=3, best=-1.25, best_name="job-7") == (
        "2/? done (0 failed, 1 stopped early), 3 running, best -1.25 (job-7)")


def test_a_record_that_does_not_fit_the_ranges_is_kept_without_params():
    distributions = {"x": FloatDistribution(0, 1)}
    kept = external_trial("job-1", state=TrialState.COMPLETE, value=1.0, params={"x": 2.0},
                          distributions=distributions, record=TrialRecord(training_job="job-1"))
    assert kept.params == {} and kept.user_attrs == {"training_job": "job-1"} and kept.value == 1.0
