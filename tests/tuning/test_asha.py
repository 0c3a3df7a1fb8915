"""ASHA's rungs and promotions (asha.py), on studies of made-up trials: rungs at 1,000, 3,000 and 9,000 env steps."""

from __future__ import annotations

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from sagemaker_rl.tuning.asha import AshaPruner, promotable, promotion, rung_values
from sagemaker_rl.tuning.record import TrialRecord

MIN_RESOURCE = 1000
MAX, MIN = StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE


def _study(*trials: tuple[TrialState, dict[int, float], TrialRecord]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=AshaPruner(MIN_RESOURCE))
    for state, values, record in trials:
        study.add_trial(create_trial(state=state, intermediate_values=values, user_attrs=record.attrs(),
                                     value=values[max(values)] if state == TrialState.COMPLETE else None))
    return study


def _paused(value: float, step: int = 1000) -> tuple[TrialState, dict[int, float], TrialRecord]:
    return TrialState.PRUNED, {step: value}, TrialRecord()


def _promoted(parent: int, values: dict[int, float], state: TrialState = TrialState.RUNNING,
              **record: object) -> tuple[TrialState, dict[int, float], TrialRecord]:
    return state, values, TrialRecord(parent=parent, **record)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "competing", "direction", "closing", "expected"), [
    (5.0, [5.0], MAX, False, False),  # alone: nobody to compare with
    (5.0, [5.0, 1.0], MAX, False, False),  # floor(2 / 3) = 0 places
    (5.0, [5.0, 1.0, 3.0], MAX, False, True),
    (3.0, [5.0, 1.0, 3.0], MAX, False, False),
    (3.0, [5.0, 1.0, 3.0, 0.0, 0.0, 0.0], MAX, False, True),  # two places of six
    (1.0, [5.0, 1.0, 3.0], MIN, False, True),
    (5.0, [5.0], MAX, True, True),  # closing: a rung's best goes on
    (1.0, [5.0, 1.0], MAX, True, False),
    (float("nan"), [float("nan"), 1.0, 0.0], MAX, False, False),
])
def test_a_rung_promotes_the_best_third_of_the_values_there_and_none_of_fewer_than_three(
        value, competing, direction, closing, expected):
    assert promotable(value, competing, direction, closing=closing) is expected


def test_a_paused_trial_is_promoted_once_later_trials_did_worse_and_only_once():
    study = _study(_paused(5.0), _paused(3.0))
    assert promotion(study.trials, MAX, MIN_RESOURCE) is None
    assert promotion(study.trials, MAX, MIN_RESOURCE, closing=True).number == 0  # the search has ended
    study = _study(_paused(5.0), _paused(3.0), _paused(1.0))
    assert promotion(study.trials, MAX, MIN_RESOURCE).number == 0
    study = _study(_paused(5.0), _paused(3.0), _paused(1.0), _promoted(0, {3000: 7.0}))
    assert promotion(study.trials, MAX, MIN_RESOURCE) is None  # trial 3 continues it; trial 1 is not in the top third
    study = _study(_paused(5.0), _paused(3.0), _paused(1.0), _promoted(0, {3000: 7.0}), *[_paused(0.0)] * 3)
    assert promotion(study.trials, MAX, MIN_RESOURCE).number == 1  # six at the rung: two places


def test_the_highest_rung_promotes_first():
    # 12 values at 1,000 (four places: trials 4, 0, 5 and 1), 3 at 3,000 (one place: trial 3)
    rungs = [_paused(5.0), _paused(3.0), _paused(1.0), _promoted(0, {3000: 7.0}, TrialState.PRUNED),
             _paused(6.0, 3000), _paused(4.0, 3000), *[_paused(0.0)] * 7]
    assert promotion(_study(*rungs).trials, MAX, MIN_RESOURCE).number == 3
    assert promotion(_study(*rungs, _promoted(3, {})).trials, MAX, MIN_RESOURCE).number == 1


def test_an_interrupted_promotion_is_planned_again_and_a_failed_one_is_not():
    interrupted = _promoted(0, {}, TrialState.FAIL, interrupted=True)
    study = _study(_paused(5.0), _paused(3.0), _paused(1.0), interrupted)
    assert promotion(study.trials, MAX, MIN_RESOURCE).number == 0
    failed = _promoted(0, {}, TrialState.FAIL, failure="could not continue trial 0 from its checkpoint")
    study = _study(_paused(5.0), _paused(3.0), _paused(1.0), failed)
    assert promotion(study.trials, MAX, MIN_RESOURCE) is None


def test_a_promotion_competes_only_at_the_rungs_it_trained_through():
    study = _study(_paused(5.0), _paused(3.0), _paused(1.0), _promoted(0, {2000: 6.0, 3000: 7.0}))
    assert sorted(rung_values(study.trials, MIN_RESOURCE, 0)) == [1.0, 3.0, 5.0]  # its parent's 5 only
    assert rung_values(study.trials, MIN_RESOURCE, 1) == [7.0]


def test_the_pruner_judges_a_trial_at_the_first_report_past_each_rung():
    study = _study(_paused(5.0), _paused(3.0))
    trial = study.ask()
    trial.report(0.5, 500)
    assert not trial.should_prune()  # below the first rung
    trial.report(4.0, 1500)  # past it: the second best of three
    assert trial.should_prune()
    study = _study(_paused(5.0), _paused(3.0))
    trial = study.ask()
    trial.report(6.0, 1000)
    assert not trial.should_prune()  # the best of three
    trial.report(7.0, 3000)
    assert trial.should_prune()  # alone at the next rung: paused there


def test_a_promotion_is_judged_at_the_rungs_after_its_parents():
    study = _study(_paused(5.0), _paused(3.0), _paused(1.0), _paused(4.0, 3000), _paused(2.0, 3000))
    trial = study.ask()
    trial.set_user_attr("pbt_parent", 0)  # continues trial 0 from its checkpoint at 1,000 env steps
    trial.report(6.0, 2000)
    assert not trial.should_prune()  # no rung between its parent's last report and this one
    trial.report(3.0, 3000)
    assert trial.should_prune()  # the worst of three at 3,000
