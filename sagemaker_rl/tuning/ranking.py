"""Ranking: what a study's trial records say about the run — the best trial, the re-evaluation, the answer, progress.

Pure functions of the trials (no storage, no processes): the search's best comparable trial, the
candidates the re-evaluation trains again and the fresh seeds it uses, each candidate's result, a
PBT run's segments and final member, the run's answer, and the one-line progress report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.job import SEED_KEY
from sagemaker_rl.tuning import direction as objective
from sagemaker_rl.tuning.record import (
    DEFAULT_CANDIDATE,
    Role,
    Status,
    counts,
    hyperparameters,
    read,
    replaced,
    status,
    tuned,
)


def _finished(trial: FrozenTrial) -> bool:
    """Complete with a finite objective."""
    return trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)


def _value(trial: FrozenTrial) -> float:
    assert trial.value is not None
    return trial.value


def best(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """The comparable complete trial with the best finite objective (by the search), or None."""
    return objective.best((trial for trial in trials if read(trial).comparable and _finished(trial)), direction,
                          _value)


@dataclass(frozen=True)
class Candidate:
    """A configuration the re-evaluation trains again: a trial's, or the default (the static values alone)."""

    key: int | str  # the trial's number, or DEFAULT_CANDIDATE
    hyperparameters: dict[str, Any]  # flat dotted keys, without the seed
    tuned: dict[str, Any]  # its tuned values (none for the default)
    search_value: float | None  # its objective in the search


@dataclass(frozen=True)
class Reevaluation:
    """A candidate's re-evaluation: its objective on each fresh seed."""

    candidate: int | str
    trial: FrozenTrial
    seeds: list[int]
    values: list[float]  # objective per seed, in the order of `seeds` (empty unless complete)

    @property
    def complete(self) -> bool:
        return self.trial.state == TrialState.COMPLETE and bool(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.complete else None

    @property
    def spread(self) -> float | None:
        """The sample standard deviation over seeds (None for fewer than two)."""
        return statistics.stdev(self.values) if self.complete and len(self.values) > 1 else None


def candidates(
    trials: Sequence[FrozenTrial], direction: StudyDirection, *, top: int, default: Mapping[str, Any]
) -> list[Candidate]:
    """The `top` best comparable trials (distinct tuned values), then the default, for re-evaluation."""
    pool = objective.ranked((trial for trial in trials if read(trial).comparable and _finished(trial)), direction,
                            _value)
    chosen: list[Candidate] = []
    seen: list[dict[str, Any]] = []
    for trial in pool:
        if len(chosen) == top:
            break
        values = tuned(trial)
        if values in seen:
            continue
        seen.append(values)
        flat = {key: value for key, value in hyperparameters(trial).items() if key != SEED_KEY}
        chosen.append(Candidate(trial.number, flat, values, trial.value))
    if top > 0:
        chosen.append(Candidate(DEFAULT_CANDIDATE, {k: v for k, v in default.items() if k != SEED_KEY}, {}, None))
    return chosen


def fresh_seeds(trials: Sequence[FrozenTrial], count: int, *, base: int) -> list[int]:
    """The first `count` seeds from `base` that no search or warm-start trial used."""
    used: set[int] = set()
    for trial in trials:
        record = read(trial)
        if record.role is Role.REEVALUATION:
            continue
        used.update(int(seed) for seed in record.seeds or ())
        seed = hyperparameters(trial).get(SEED_KEY)
        if isinstance(seed, int | float) and not isinstance(seed, bool):
            used.add(int(seed))
    seeds: list[int] = []
    seed = base
    while len(seeds) < count:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return seeds


def reevaluations(trials: Sequence[FrozenTrial]) -> dict[int | str, Reevaluation]:
    """The latest re-evaluation of each candidate that was not interrupted (complete, failed or running)."""
    rerun = replaced(trials)
    found: dict[int | str, Reevaluation] = {}
    for trial in trials:
        record = read(trial)
        if record.reevaluation_of is None or status(trial, rerun) is Status.INTERRUPTED:
            continue
        seeds = [int(seed) for seed in record.seeds or ()]
        values: list[float] = []
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            values = [float(value) for value in record.seed_objectives or [trial.value]]
        found[record.reevaluation_of] = Reevaluation(record.reevaluation_of, trial, seeds, values)
    return found


def segments(trials: Sequence[FrozenTrial]) -> dict[tuple[int, int], FrozenTrial]:
    """A PBT run's latest trial of each (member, generation) that was not interrupted."""
    rerun = replaced(trials)
    found: dict[tuple[int, int], FrozenTrial] = {}
    for trial in trials:
        record = read(trial)
        if record.member is not None and status(trial, rerun) is not Status.INTERRUPTED:
            assert record.generation is not None
            found[(record.member, record.generation)] = trial
    return found


def final_member(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """A PBT run's best complete segment of the latest generation any completed in (None: none did)."""
    complete = [trial for key, trial in segments(trials).items() if _finished(trial)]
    if not complete:
        return None
    latest = max(_generation(trial) for trial in complete)
    return objective.best((trial for trial in complete if _generation(trial) == latest), direction, _value)


def _generation(trial: FrozenTrial) -> int:
    return read(trial).generation or 0


def answer(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """The run's answer: the best complete re-evaluation by its mean over fresh seeds, else the search's
    best; in a PBT run, the best member of the last generation (its policy holds the run's training)."""
    if any(read(trial).role is Role.SEGMENT for trial in trials):
        return final_member(trials, direction)
    done = [item for item in reevaluations(trials).values() if item.complete]
    if done:
        sign = objective.sign(direction)
        # A tie goes to the default: a candidate must beat it to be the answer.
        return max(done, key=lambda item: (sign * item.mean, item.candidate == DEFAULT_CANDIDATE)).trial  # type: ignore[operator]
    return best(trials, direction)


def progress_line(
    *, done: int, budget: int | str, failed: int, pruned: int, running: int, best: float | None, best_name: str
) -> str:
    """A tuning run in one line: `3/8 done (1 failed, 0 stopped early), 2 running, best 4.5 (trial 2)`."""
    best_text = f"best {best:.4g} ({best_name})" if best is not None else "best -"
    return f"{done}/{budget} done ({failed} failed, {pruned} stopped early), {running} running, {best_text}"


def trials_progress(trials: Sequence[FrozenTrial], direction: StudyDirection, *, budget: int, running: int) -> str:
    """`progress_line` for the search trials of a local study."""
    found = counts([trial for trial in trials if read(trial).uses_budget])
    top = best(trials, direction)
    return progress_line(
        done=found[Status.COMPLETE] + found[Status.PRUNED] + found[Status.FAILED],
        budget=budget,
        failed=found[Status.FAILED],
        pruned=found[Status.PRUNED],
        running=running,
        best=top.value if top else None,
        best_name=f"trial {top.number}" if top else "",
    )
