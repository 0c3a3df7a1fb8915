"""Objective direction: which of two objective values is better, for a study that maximizes or minimizes.

Every comparison of objectives in the tuner (the best trial, the re-evaluation's ranking and gains,
PBT's ranking, the pruner's median, the report's best-so-far line) goes through here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypeVar

from optuna.study import StudyDirection

T = TypeVar("T")


def of_objective_type(objective_type: str) -> Literal["maximize", "minimize"]:
    """Optuna's direction for SageMaker's objective type (`Maximize` or `Minimize`)."""
    return "maximize" if objective_type == "Maximize" else "minimize"


def sign(direction: StudyDirection) -> float:
    """+1 when larger is better, -1 when smaller is: `sign * value` is larger for a better value."""
    return 1.0 if direction == StudyDirection.MAXIMIZE else -1.0


def better(value: float, other: float, direction: StudyDirection) -> bool:
    """`value` is strictly better than `other`."""
    return sign(direction) * value > sign(direction) * other


def gain(value: float, over: float, direction: StudyDirection) -> float:
    """How much better `value` is than `over` (negative: worse)."""
    return sign(direction) * (value - over)


def best(items: Iterable[T], direction: StudyDirection, value: Callable[[T], float]) -> T | None:
    """The item with the best value (the first of equals), or None for none."""
    chosen = list(items)
    if not chosen:
        return None
    return max(chosen, key=lambda item: sign(direction) * value(item))


def ranked(items: Iterable[T], direction: StudyDirection, value: Callable[[T], float]) -> list[T]:
    """The items best first (equals keep their order)."""
    return sorted(items, key=lambda item: -sign(direction) * value(item))


def running_best(values: Sequence[float], direction: StudyDirection) -> list[float]:
    """The best value so far after each of `values`."""
    found: list[float] = []
    for value in values:
        found.append(value if not found or better(value, found[-1], direction) else found[-1])
    return found
