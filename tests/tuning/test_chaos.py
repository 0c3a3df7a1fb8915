"""Short chaos runs in CI (tests/tuning/chaos.py): a real tuning run of reacher whose tuner, jobs and shared Ray
head (or, with the Ray backend, its cluster's worker node) are killed at random moments, resumed after each kill
of the tuner, with every invariant holding at the end. The long runs (`python tests/tuning/chaos.py --kills 30
[--backend ray]`) are on demand; docs/tuning.md has their figures."""

from __future__ import annotations

import pytest

from tests.tuning.chaos import run

pytestmark = pytest.mark.slow


def test_a_run_killed_at_random_moments_ends_with_its_answer_its_budget_and_nothing_left(tmp_path):
    summary = run(6, max_jobs=6, seed=1, run_dir=tmp_path / "run", gap_s=(2.0, 8.0), timeout_s=900)
    assert summary["kills"] == 6 and all(summary["by_target"].values()), summary
    assert summary["invariants"] == {name: [] for name in summary["invariants"]}, summary


@pytest.mark.timeout(1800)  # a loaded machine starts a cluster and its jobs slowly
def test_a_run_on_a_ray_cluster_whose_worker_node_dies_ends_with_its_answer_its_budget_and_nothing_left(tmp_path):
    summary = run(6, max_jobs=6, seed=1, run_dir=tmp_path / "run", gap_s=(2.0, 8.0), timeout_s=1200, backend="ray")
    assert summary["kills"] == 6 and summary["by_target"] == {"tuner": 2, "job": 2, "worker node": 2}, summary
    assert summary["invariants"] == {name: [] for name in summary["invariants"]}, summary
