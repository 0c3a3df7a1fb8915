"""The job's env runners: no two env copies share a seed, within a job or across job seeds."""

from __future__ import annotations

import numpy as np
import pytest
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.tune.registry import register_env

from sagemaker_rl.job import ppo_config
from sagemaker_rl.job.envs import env_creator
from sagemaker_rl.job.hyperparameters import parse_hyperparameters

ENVS = 4


def first_observations(seed: int, worker_index: int, runner_cls: type | None = None) -> np.ndarray:
    """The raw first observation of every env copy of runner `worker_index` of a reacher job seeded `seed`."""
    job = parse_hyperparameters({"rl.training.seed": seed, "rl.training.config.observation_filter": "NoFilter",
                                 "rl.training.config.num_envs_per_env_runner": ENVS}, "reacher")
    config = ppo_config.build_ppo_config(job, cpus=3)  # 2 remote runners
    register_env(ppo_config.env_name(job), env_creator)
    runner = (runner_cls or config.env_runner_cls)(config=config, worker_index=worker_index)
    try:
        episodes = runner.sample(num_timesteps=ENVS, random_actions=True)
        return np.array([episode.get_observations(0) for episode in episodes[:ENVS]])
    finally:
        runner.stop()


def shared(a: np.ndarray, b: np.ndarray) -> int:
    """How many rows of `a` are also rows of `b`."""
    return sum(any(np.allclose(row, other) for other in b) for row in a)


@pytest.fixture(scope="module")
def observations() -> dict[tuple[int, int], np.ndarray]:
    return {(seed, worker): first_observations(seed, worker) for seed in (0, 1) for worker in (1, 2)}


def test_runners_of_a_job_share_no_env_copy(observations: dict[tuple[int, int], np.ndarray]) -> None:
    assert len({tuple(row) for row in observations[0, 1]}) == ENVS
    assert shared(observations[0, 1], observations[0, 2]) == 0


def test_jobs_of_neighbouring_seeds_share_no_env_copy(observations: dict[tuple[int, int], np.ndarray]) -> None:
    assert shared(observations[0, 1], observations[1, 1]) == 0
    assert shared(observations[0, 2], observations[1, 1]) == 0


def test_rllibs_own_runner_repeats_env_copies() -> None:
    """Why the job has its own runner: RLlib 2.60's runner 2 repeats all but one of runner 1's copies."""
    rllib = [first_observations(0, worker, SingleAgentEnvRunner) for worker in (1, 2)]
    assert shared(*rllib) == ENVS - 1


def test_a_seed_reproduces_its_env_copies(observations: dict[tuple[int, int], np.ndarray]) -> None:
    np.testing.assert_array_equal(first_observations(0, 2), observations[0, 2])
