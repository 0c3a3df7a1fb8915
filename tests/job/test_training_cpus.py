"""How a job sizes its env runners from its CPUs: Ray of its own (or a run's shared instance), or a Ray
Job whose driver already holds a CPU of its share on a cluster."""

import pytest

from sagemaker_rl.contract import DRIVER_CPUS_ENV
from sagemaker_rl.job.hyperparameters import parse_hyperparameters
from sagemaker_rl.job.ppo_config import build_ppo_config


@pytest.mark.parametrize(("cpus", "alone", "as_ray_job"), [(1, 0, 0), (2, 2, 1), (4, 4, 3)])
def test_a_ray_job_and_its_runners_hold_exactly_the_jobs_cpus(monkeypatch, cpus, alone, as_ray_job):
    job = parse_hyperparameters({}, "reacher")
    monkeypatch.delenv(DRIVER_CPUS_ENV, raising=False)
    assert build_ppo_config(job, cpus=cpus).num_env_runners == alone  # sampling and learning take turns
    monkeypatch.setenv(DRIVER_CPUS_ENV, "1")  # what RayJobRunner sets: the driver holds one CPU in Ray
    config = build_ppo_config(job, cpus=cpus)
    assert config.num_env_runners == as_ray_job and config.num_cpus_per_env_runner == 1
    assert 1 + config.num_env_runners * config.num_cpus_per_env_runner == cpus


def test_an_explicit_runner_count_is_kept(monkeypatch):
    monkeypatch.setenv(DRIVER_CPUS_ENV, "1")
    job = parse_hyperparameters({"rl.training.config.num_env_runners": 3}, "reacher")
    assert build_ppo_config(job, cpus=2).num_env_runners == 3


@pytest.mark.parametrize(("cpus", "per_runner", "fragment"), [(1, 16, 512), (2, 8, 512), (3, 6, 456)])
def test_the_fast_presets_env_copies_are_split_over_the_runners(monkeypatch, cpus, per_runner, fragment):
    monkeypatch.delenv(DRIVER_CPUS_ENV, raising=False)
    config = build_ppo_config(parse_hyperparameters({}, "reacher"), cpus=cpus)
    assert config.num_envs_per_env_runner == per_runner  # 16 copies in all, rounded up to whole runners
    assert config.get_rollout_fragment_length() == fragment  # of the 8192-step batch: 1 and 2 CPUs alike


def test_an_explicit_per_runner_env_count_wins_over_the_presets_total(monkeypatch):
    monkeypatch.delenv(DRIVER_CPUS_ENV, raising=False)
    job = parse_hyperparameters({"rl.training.config.num_envs_per_env_runner": 4}, "reacher")
    assert build_ppo_config(job, cpus=2).num_envs_per_env_runner == 4
    seed = parse_hyperparameters({"rl.training.preset": "seed"}, "reacher")  # no job-wide count: 16 a runner
    assert build_ppo_config(seed, cpus=2).num_envs_per_env_runner == 16
