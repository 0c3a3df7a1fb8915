"""Strategies: SageMaker's strategy names as Optuna samplers and pruners."""

from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from sagemaker_rl.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    EarlyStopping,
    MedianRunningAveragePruner,
    SearchSpace,
    Strategy,
    TuningError,
)
from sagemaker_rl.tuning.asha import AshaPruner
from sagemaker_rl.tuning.strategies import check_strategy, make_pruner, make_sampler, parse_early_stopping

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = SearchSpace((ContinuousParameter("x", 0.0, 1.0),))


def test_each_strategy_maps_to_its_sampler_and_pruner():
    assert isinstance(make_sampler(Strategy.BAYESIAN, SPACE, seed=1, max_jobs=8), optuna.samplers.TPESampler)
    assert isinstance(make_sampler(Strategy.RANDOM, SPACE, seed=1, max_jobs=8), optuna.samplers.RandomSampler)
    assert isinstance(make_pruner(Strategy.HYPERBAND, EarlyStopping.OFF), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner(Strategy.BAYESIAN, EarlyStopping.AUTO), MedianRunningAveragePruner)
    assert isinstance(make_pruner(Strategy.RANDOM, EarlyStopping.OFF), optuna.pruners.NopPruner)
    assert isinstance(make_sampler(Strategy.ASHA, SPACE, seed=1, max_jobs=8), optuna.samplers.TPESampler)
    asha = make_pruner(Strategy.ASHA, EarlyStopping.OFF, min_resource=1000)
    assert isinstance(asha, AshaPruner) and asha.min_resource == 1000


@pytest.mark.parametrize("strategy", [Strategy.HYPERBAND, Strategy.ASHA])
def test_hyperband_or_asha_with_early_stopping_auto_is_rejected_as_in_sagemaker(strategy):
    with pytest.raises(TuningError, match="early_stopping must be Off"):
        check_strategy(strategy, EarlyStopping.AUTO, SPACE)


def test_grid_visits_every_combination_once():
    space = SearchSpace((CategoricalParameter("a", [1, 2, 3]), CategoricalParameter("b", ["x", "y"])))
    study = optuna.create_study(sampler=make_sampler(Strategy.GRID, space, seed=0, max_jobs=6))
    seen = []
    for _ in range(6):
        trial = study.ask()
        seen.append(tuple(space.suggest(trial).values()))
        study.tell(trial, 0.0)
    assert sorted(seen) == sorted(itertools.product([1, 2, 3], ["x", "y"]))


def test_yaml_off_read_as_false_means_early_stopping_off():
    assert parse_early_stopping(False) is EarlyStopping.OFF
    with pytest.raises(TuningError, match="did you mean 'Auto'"):
        parse_early_stopping("auto")


def _finished(values: list[float]) -> optuna.trial.FrozenTrial:
    return create_trial(
        value=values[-1],
        intermediate_values=dict(enumerate(values, start=1)),
        params={"x": 0.5},
        distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
    )


def test_auto_early_stopping_stops_a_trial_below_the_median_of_running_averages():
    study = optuna.create_study(
        direction="maximize", pruner=MedianRunningAveragePruner(n_startup_trials=3, n_warmup_reports=2)
    )
    for values in ([1, 2, 3, 4], [2, 4, 6, 8], [0, 1, 2, 3]):
        study.add_trial(_finished(values))
    # running averages up to iteration 3: 2, 4, 1 -> median 2
    low, high = study.ask(), study.ask()
    for step, (a, b) in enumerate([(0.0, 5.0), (1.0, 5.0), (1.5, 2.5)], start=1):
        low.report(a, step)
        high.report(b, step)
    assert low.should_prune()  # 1.5 < 2
    assert not high.should_prune()  # 2.5 >= 2


def test_auto_early_stopping_waits_for_warmup_and_startup_trials():
    study = optuna.create_study(
        direction="maximize", pruner=MedianRunningAveragePruner(n_startup_trials=3, n_warmup_reports=2)
    )
    study.add_trial(_finished([5, 5, 5]))
    trial = study.ask()
    trial.report(-100.0, 1)
    assert not trial.should_prune()  # warm-up
    trial.report(-100.0, 2)
    assert not trial.should_prune()  # warm-up: two reports
    trial.report(-100.0, 3)
    assert not trial.should_prune()  # only one finished trial so far
    for _ in range(2):
        study.add_trial(_finished([5, 5, 5]))
    assert trial.should_prune()
    assert [t.state for t in study.trials[:1]] == [TrialState.COMPLETE]
