"""Objective direction: better, best, ranking and the running best, for both directions."""

from __future__ import annotations

from optuna.study import StudyDirection

from sagemaker_rl.tuning import direction

MAX, MIN = StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE


def test_better_best_and_ranked_follow_the_direction():
    assert direction.better(2.0, 1.0, MAX) and direction.better(1.0, 2.0, MIN)
    assert not direction.better(1.0, 1.0, MAX)
    assert direction.gain(3.0, 1.0, MAX) == 2.0 and direction.gain(3.0, 1.0, MIN) == -2.0
    items = [("a", 1.0), ("b", 3.0), ("c", 3.0), ("d", -2.0)]
    assert direction.best(items, MAX, lambda item: item[1]) == ("b", 3.0)  # the first of equals
    assert direction.best(items, MIN, lambda item: item[1]) == ("d", -2.0)
    assert direction.best([], MAX, lambda item: item) is None
    assert [name for name, _ in direction.ranked(items, MAX, lambda item: item[1])] == ["b", "c", "a", "d"]
    assert [name for name, _ in direction.ranked(items, MIN, lambda item: item[1])] == ["d", "a", "b", "c"]


def test_the_running_best_and_sagemakers_objective_types():
    assert direction.running_best([1.0, 3.0, 2.0, 4.0], MAX) == [1.0, 3.0, 3.0, 4.0]
    assert direction.running_best([1.0, 3.0, 0.5, 4.0], MIN) == [1.0, 1.0, 0.5, 0.5]
    assert (direction.of_objective_type("Maximize"), direction.of_objective_type("Minimize")) == (
        "maximize", "minimize")
