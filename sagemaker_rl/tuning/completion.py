"""Completion criteria: when a search may end before its budget — SageMaker AMT's three, applied the same way here.

`TargetObjectiveMetricValue` (a trial reached the target), `BestObjectiveNotImproving` (the last N
finished search trials did not improve the best by 1% or more, as SageMaker counts an improvement) and
`ConvergenceDetected`. SageMaker does not publish its convergence rule; here a search has converged when
the last quarter of its budget (at least five trials) improved nothing by 1%. A pure function of the
trial records, so a resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.tuning import direction as objective
from sagemaker_rl.tuning.record import read

IMPROVEMENT = 0.01  # an improvement is 1% of the best so far or more (SageMaker's BestObjectiveNotImproving)
MIN_CONVERGENCE_WINDOW = 5  # finished search trials a convergence is judged over, at the least


@dataclass(frozen=True)
class Criteria:
    """A search's completion criteria (None / False: not used)."""

    target: float | None = None  # TargetObjectiveMetricValue
    not_improving: int | None = None  # BestObjectiveNotImproving.MaxNumberOfTrainingJobsNotImproving
    convergence: bool = False  # ConvergenceDetected.CompleteOnConvergence

    @property
    def any(self) -> bool:
        return self.target is not None or self.not_improving is not None or self.convergence


def completion_reason(trials: Sequence[FrozenTrial], direction: StudyDirection, criteria: Criteria, *,
                      budget: int) -> str | None:
    """Why the search is complete before its budget (None: it is not)."""
    if not criteria.any:
        return None
    finished = _finished_search(trials)
    values = [trial.value for trial in finished if trial.state == TrialState.COMPLETE]
    if criteria.target is not None:
        reached = next((trial for trial in finished if _reached(trial, criteria.target, direction)), None)
        if reached is not None:
            return f"trial {reached.number} reached the target objective {criteria.target:g}"
    stale = _not_improving(finished, direction)
    if criteria.not_improving is not None and values and stale >= criteria.not_improving:
        return f"the last {stale} finished trials did not improve the best by {IMPROVEMENT:.0%}"
    window = max(MIN_CONVERGENCE_WINDOW, math.ceil(budget / 4))
    if criteria.convergence and values and stale >= window:
        return f"converged: the last {stale} finished trials did not improve the best by {IMPROVEMENT:.0%}"
    return None


def _finished_search(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """This run's finished search trials, in the order they finished."""
    found = [trial for trial in trials if read(trial).is_search and trial.state.is_finished()
             and trial.datetime_complete is not None]
    return sorted(found, key=lambda trial: (trial.datetime_complete, trial.number))


def _reached(trial: FrozenTrial, target: float, direction: StudyDirection) -> bool:
    value = trial.value
    if trial.state != TrialState.COMPLETE or value is None or not math.isfinite(value):
        return False
    return value == target or objective.better(value, target, direction)


def _improves(value: float, best: float, direction: StudyDirection) -> bool:
    gain = objective.gain(value, best, direction)
    return gain > 0 and gain >= IMPROVEMENT * abs(best)


def _not_improving(finished: Sequence[FrozenTrial], direction: StudyDirection) -> int:
    """Finished trials since the last one that improved the best by IMPROVEMENT or more (a pruned or failed trial
    improves nothing)."""
    best: float | None = None
    since = 0
    for trial in finished:
        value = trial.value if trial.state == TrialState.COMPLETE else None
        if value is not None and math.isfinite(value) and (best is None or _improves(value, best, direction)):
            best, since = value, 0
        else:
            since += 1
    return since
