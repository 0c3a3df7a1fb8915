"""Strategies: SageMaker's tuning strategies and early stopping, as Optuna samplers and pruners.

Bayesian -> TPE (with a constant liar, so parallel trials do not all pick the same point); Random ->
random sampling; Grid -> every combination of the Categorical values (SageMaker allows Categorical
parameters only and sets the number of jobs to the number of combinations); Hyperband -> TPE plus
Optuna's HyperbandPruner; ASHA (not a SageMaker strategy: local and Ray runs) -> TPE plus asynchronous
successive halving with promotions (`asha.py`): at each rung of min_resource x 3^k env steps a trial goes on
only while it is in the best third of the trials that reached that rung, and a paused one is continued from
its checkpoint when later trials put it there. The resource, and every step a trial reports, is env steps, not training
iterations: trials with different batch sizes do different work per iteration. Early stopping Auto
follows SageMaker's documented rule: stop a trial whose objective at a step is worse than the median
of the running averages of earlier trials up to that step. Hyperband has its own early stopping,
so, as in SageMaker, it requires early stopping Off.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.tuning.asha import AshaPruner
from sagemaker_rl.tuning.direction import better
from sagemaker_rl.tuning.space import SearchSpace, TuningError, parse_choice


class Strategy(StrEnum):
    """SageMaker's HyperParameterTuningJobConfig.Strategy values."""

    BAYESIAN = "Bayesian"
    RANDOM = "Random"
    GRID = "Grid"
    HYPERBAND = "Hyperband"
    PBT = "PBT"  # population-based training (pbt.py); not a SageMaker strategy: local and Ray runs
    PB2 = "PB2"  # PBT whose explore is a bandit (bandit.py); local and Ray runs
    ASHA = "ASHA"  # TPE with asynchronous successive halving on env steps; not a SageMaker strategy either

    @property
    def population_based(self) -> bool:
        """A population trained in generations (pbt.py) rather than a search of separate trials."""
        return self in (Strategy.PBT, Strategy.PB2)


LOCAL_STRATEGIES = (Strategy.PBT, Strategy.PB2, Strategy.ASHA)  # strategies SageMaker AMT does not have


class EarlyStopping(StrEnum):
    """SageMaker's TrainingJobEarlyStoppingType values."""

    OFF = "Off"
    AUTO = "Auto"


def parse_strategy(value: Any) -> Strategy:
    return parse_choice(Strategy, value, what="strategy")


def parse_early_stopping(value: Any) -> EarlyStopping:
    if isinstance(value, bool):  # YAML 1.1 reads a bare Off as false
        return EarlyStopping.AUTO if value else EarlyStopping.OFF
    return parse_choice(EarlyStopping, value, what="early_stopping")


def check_strategy(strategy: Strategy, early_stopping: EarlyStopping, space: SearchSpace) -> None:
    """Raise TuningError for a combination SageMaker would reject."""
    stops_by_itself = strategy in (Strategy.HYPERBAND, Strategy.ASHA) or strategy.population_based
    if stops_by_itself and early_stopping is EarlyStopping.AUTO:
        raise TuningError(
            f"strategy {strategy} stops poor trials by itself, so early_stopping must be Off "
            "(as in SageMaker): drop early_stopping Auto or use strategy Bayesian"
        )
    if strategy is Strategy.GRID:
        space.grid()  # raises for non-categorical parameters
    elif not space.parameters:
        raise TuningError(f"strategy {strategy} needs at least one parameter to tune: add one under 'parameters'")


def startup_trials(max_jobs: int) -> int:
    """Random trials before TPE models the results: a third of a small budget, 10 at most."""
    return min(10, max(2, max_jobs // 3))


def make_sampler(
    strategy: Strategy, space: SearchSpace, *, seed: int | None, max_jobs: int
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler that implements `strategy` on `space`."""
    if strategy is Strategy.RANDOM or strategy.population_based:  # PBT's values are planned (pbt.py) and enqueued
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy is Strategy.GRID:
        return _GridSampler(space.grid(), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(max_jobs), constant_liar=True)


def make_pruner(
    strategy: Strategy,
    early_stopping: EarlyStopping,
    *,
    min_resource: int = 1,
    max_resource: int | None = None,
) -> optuna.pruners.BasePruner:
    """The Optuna pruner for `strategy` and `early_stopping` (steps and resources are env steps)."""
    if strategy is Strategy.HYPERBAND:
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=max_resource if max_resource else "auto"
        )
    if strategy is Strategy.ASHA:
        return AshaPruner(min_resource)
    if early_stopping is EarlyStopping.AUTO:
        return MedianRunningAveragePruner()
    return optuna.pruners.NopPruner()


class MedianRunningAveragePruner(optuna.pruners.BasePruner):
    """SageMaker's Auto early stopping: prune below the median of earlier trials' running averages.

    At env step t a trial is stopped when its objective is worse than the median, over earlier
    finished trials, of each one's mean objective over its values up to t.
    """

    def __init__(self, n_startup_trials: int = 3, n_warmup_reports: int = 2) -> None:
        self._n_startup_trials = n_startup_trials  # finished trials needed before any trial is stopped
        self._n_warmup_reports = n_warmup_reports  # values (iterations) a trial always reports

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or len(trial.intermediate_values) <= self._n_warmup_reports:
            return False
        current = trial.intermediate_values[step]
        if not math.isfinite(current):
            return True
        averages = []
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            values = [value for at, value in other.intermediate_values.items() if at <= step and math.isfinite(value)]
            if values:
                averages.append(statistics.fmean(values))
        if len(averages) < self._n_startup_trials:
            return False
        return better(statistics.median(averages), current, study.direction)


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler for an ask-and-tell loop: the tuner's budget ends the run.

    Optuna's own `after_trial` calls `study.stop()`, which raises outside `study.optimize`.
    """

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        return None
