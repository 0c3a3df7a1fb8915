"""Completion criteria: a search ends before its budget on SageMaker's three criteria, judged from the records."""

from __future__ import annotations

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from sagemaker_rl.errors import UserError
from sagemaker_rl.tuning import TuningConfig, TuningError
from sagemaker_rl.tuning.completion import Criteria, completion_reason

MAX, MIN = StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE


def _trials(*values, direction=MAX):
    """Search trials finished in this order (None: failed)."""
    study = optuna.create_study(direction=direction)
    for value in values:
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        study.add_trial(optuna.trial.create_trial(state=state, value=value))
    return study.get_trials()


def test_no_criterion_never_ends_a_search():
    assert completion_reason(_trials(1.0, 1.0, 1.0, 1.0), MAX, Criteria(), budget=4) is None


def test_a_trial_reaching_the_target_ends_it_in_either_direction():
    assert completion_reason(_trials(1.0, 5.0, 3.0), MAX, Criteria(target=5.0), budget=20) == (
        "trial 1 reached the target objective 5")
    assert completion_reason(_trials(1.0, 4.9), MAX, Criteria(target=5.0), budget=20) is None
    assert completion_reason(_trials(9.0, 2.0, direction=MIN), MIN, Criteria(target=3.0), budget=20) == (
        "trial 1 reached the target objective 3")


def test_n_finished_trials_without_a_one_percent_improvement_end_it():
    # 10 -> 10.05 is 0.5% (not an improvement), a failure improves nothing, 11 is 10%
    trials = _trials(10.0, 10.05, None, 11.0, 11.0, 10.0)
    assert completion_reason(trials, MAX, Criteria(not_improving=3), budget=20) is None  # 2 since 11
    trials = _trials(10.0, 10.05, None, 11.0, 11.0, 10.0, None)
    assert completion_reason(trials, MAX, Criteria(not_improving=3), budget=20) == (
        "the last 3 finished trials did not improve the best by 1%")
    assert completion_reason(_trials(None, None, None), MAX, Criteria(not_improving=3), budget=20) is None


def test_convergence_is_a_quarter_of_the_budget_without_improvement_and_at_least_five_trials():
    flat = _trials(5.0, 5.0, 5.0, 5.0, 5.0, 5.0)
    assert completion_reason(flat, MAX, Criteria(convergence=True), budget=20) == (
        "converged: the last 5 finished trials did not improve the best by 1%")
    assert completion_reason(flat, MAX, Criteria(convergence=True), budget=40) is None  # needs 10
    rising = _trials(*[float(value) for value in range(1, 12)])
    assert completion_reason(rising, MAX, Criteria(convergence=True), budget=20) is None


def test_the_criteria_are_checked_when_the_config_is_built():
    assert TuningConfig(target_objective=15, max_jobs_not_improving=3).completion == Criteria(15, 3, False)
    with pytest.raises(UserError, match="max_jobs_not_improving must be a whole number >= 3, got 2"):
        TuningConfig(max_jobs_not_improving=2)
    with pytest.raises(TuningError, match="target_objective must be a finite number"):
        TuningConfig(target_objective=float("nan"))
    with pytest.raises(TuningError, match="completion criteria"):
        TuningConfig(strategy="PBT", complete_on_convergence=True)
