"""How a job sizes its env runners from its CPUs: alone with its own Ray, and on a shared Ray cluster."""

import pytest

from sagemaker_rl.hyperparameters import parse_hyperparameters
from sagemaker_rl.training import DRIVER_CPUS, build_ppo_config


@pytest.mark.parametrize(("cpus", "alone", "on_cluster"), [(1, 0, 0), (2, 2, 1), (4, 4, 3)])
def test_on_a_cluster_the_driver_and_its_runners_hold_exactly_the_jobs_cpus(monkeypatch, cpus, alone, on_cluster):
    job = parse_hyperparameters({}, "reacher")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert build_ppo_config(job, cpus=cpus).num_env_runners == alone  # sampling and learning take turns
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a Ray Job always has it
    config = build_ppo_config(job, cpus=cpus)
    assert config.num_env_runners == on_cluster and config.num_cpus_per_env_runner == 1
    assert DRIVER_CPUS + config.num_env_runners * config.num_cpus_per_env_runner == cpus


def test_an_explicit_runner_count_is_kept_on_a_cluster(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    job = parse_hyperparameters({"rl.training.config.num_env_runners": 3}, "reacher")
    assert build_ppo_config(job, cpus=2).num_env_runners == 3
