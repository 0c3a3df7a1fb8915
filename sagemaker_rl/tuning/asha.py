"""ASHA: asynchronous successive halving with promotions (Li et al. 2020, algorithm 2), on env steps.

Rung k is at min_resource x 3^k env steps. A trial that reaches a rung trains on only while it is in the top
third of the values the trials reported there, counted as the paper counts: the best floor(n / 3) of n. Otherwise
it stops there, paused with the checkpoint its job saves when stopped. Before the plan samples a new trial, a
paused trial that has since entered its rung's top floor(n / 3) (later trials did worse) is promoted: a new
trial continues it from its checkpoint. So a rung's first trials wait for others to be compared with, where
Optuna's SuccessiveHalvingPruner and Ray Tune's ASHA promote a rung's first trial with nobody to compare (a
search's random first trials then train the whole budget; docs/benchmarks.md, "ASHA's first trials"). Once no
new trial will start (the plan decides: plan.Search), a rung's best paused trial is promoted too, however few
reached the rung, so that the best configurations train to the end.

A trial's value at a rung is its objective at its first report at or past the rung; a promoted trial's own
reports start after its parent's, so each rung holds one value per configuration and stretch of training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.tuning.record import Role, Status, read, replaced, status

REDUCTION_FACTOR = 3  # a third of the trials at a rung go on to the next, three times as long


def rung_step(min_resource: int, rung: int) -> int:
    return min_resource * REDUCTION_FACTOR**rung


def _ladder(trial: FrozenTrial) -> bool:
    """It competes at the rungs: a search trial or a promotion, not failed (a rerun reports again)."""
    return read(trial).role in (Role.SEARCH, Role.PROMOTION) and trial.state != TrialState.FAIL


def _start(trial: FrozenTrial, by_number: dict[int, FrozenTrial]) -> int:
    """The env step its training started after: its parent's last report for a promotion, else -1."""
    number = read(trial).parent
    parent = by_number.get(number) if number is not None else None
    return max(parent.intermediate_values, default=-1) if parent is not None else -1


def _rungs_crossed(min_resource: int, after: int, upto: int) -> list[int]:
    """The rungs k with after < rung_step(k) <= upto."""
    found, rung = [], 0
    while (step := rung_step(min_resource, rung)) <= upto:
        if step > after:
            found.append(rung)
        rung += 1
    return found


def _value_at(trial: FrozenTrial, step: int) -> float | None:
    """Its objective at its first report at or past `step` (None: it has not reached it)."""
    reached = [at for at in trial.intermediate_values if at >= step]
    return trial.intermediate_values[min(reached)] if reached else None


def rung_values(trials: Sequence[FrozenTrial], min_resource: int, rung: int) -> list[float]:
    """Every value reported at `rung`: one per trial whose own training crossed it."""
    by_number = {trial.number: trial for trial in trials}
    step = rung_step(min_resource, rung)
    return [value for trial in trials if _ladder(trial) and _start(trial, by_number) < step
            and (value := _value_at(trial, step)) is not None]


def promotable(value: float, competing: Sequence[float], direction: StudyDirection, *, closing: bool = False) -> bool:
    """`value` is among the best floor(n / 3) of the n `competing` values (so not while fewer than 3 are there);
    `closing` (no new trial will come to the rung): among the best max(1, floor(n / 3))."""
    places = len(competing) // REDUCTION_FACTOR or int(closing)
    if places == 0 or not math.isfinite(value):
        return False
    ranked = sorted((item for item in competing if math.isfinite(item)),
                    reverse=direction == StudyDirection.MAXIMIZE)
    return len(ranked) >= places and (value >= ranked[places - 1] if direction == StudyDirection.MAXIMIZE
                                      else value <= ranked[places - 1])


class AshaPruner(optuna.pruners.BasePruner):
    """Stops (pauses) a trial at a rung it crossed with its last report unless it is promotable there."""

    def __init__(self, min_resource: int) -> None:
        self.min_resource = min_resource

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        steps = sorted(trial.intermediate_values)
        if not steps:
            return False
        trials = [trial if other.number == trial.number else other for other in study.get_trials(deepcopy=False)]
        after = steps[-2] if len(steps) > 1 else _start(trial, {other.number: other for other in trials})
        crossed = _rungs_crossed(self.min_resource, after, steps[-1])
        if not crossed:
            return False
        value = trial.intermediate_values[steps[-1]]
        return not promotable(value, rung_values(trials, self.min_resource, crossed[-1]), study.direction)


def promotion(trials: Sequence[FrozenTrial], direction: StudyDirection, min_resource: int, *,
              closing: bool = False) -> FrozenTrial | None:
    """The paused trial to continue next (None: none is promotable): from the highest rung down, the best paused
    trial now promotable at its rung (`closing`: see `promotable`) that no trial continues yet (an interrupted
    continuation does not count; a failed one does: a trial is not run twice)."""
    rerun = replaced(trials)
    continued = {read(trial).parent for trial in trials if read(trial).role is Role.PROMOTION
                 and status(trial, rerun) is not Status.INTERRUPTED}
    by_number = {trial.number: trial for trial in trials}
    competing: dict[int, list[float]] = {}  # each rung's values, read once
    found: list[tuple[int, float, FrozenTrial]] = []
    for trial in trials:
        if trial.state != TrialState.PRUNED or not _ladder(trial) or trial.number in continued:
            continue
        crossed = _rungs_crossed(min_resource, _start(trial, by_number), max(trial.intermediate_values, default=-1))
        if not crossed:
            continue
        rung = crossed[-1]
        value = _value_at(trial, rung_step(min_resource, rung))
        if rung not in competing:
            competing[rung] = rung_values(trials, min_resource, rung)
        if value is not None and promotable(value, competing[rung], direction, closing=closing):
            sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
            found.append((rung, sign * value, trial))
    return max(found, key=lambda item: (item[0], item[1], -item[2].number))[2] if found else None
