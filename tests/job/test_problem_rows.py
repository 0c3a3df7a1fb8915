"""Every row of the problem table, on every simulator it names: its env steps and PPO trains on it.

A smoke test of the table itself (a wrong class, module or gymnasium id, an env whose spaces RLlib cannot
use), not of learning: each (problem, simulator) gets a real env and two real RLlib PPO iterations of
tiny batches in this process, with one Ray instance for the whole module.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import gymnasium
import numpy as np
import pytest

from sagemaker_rl.job import learner, ray_session
from sagemaker_rl.job.envs import make_env
from sagemaker_rl.job.hyperparameters import parse_hyperparameters
from sagemaker_rl.job.ppo_config import build_algorithm, build_ppo_config
from sagemaker_rl.job.problems import PROBLEMS

ROWS = [(problem, simulator) for problem, row in PROBLEMS.items() for simulator in row.envs]
ROW_IDS = [f"{problem}-{simulator}" for problem, simulator in ROWS]

# The problem's default (`fast`) preset with tiny batches: two iterations take a few seconds.
TINY = {
    "rl.training.config.train_batch_size_per_learner": 256,
    "rl.training.config.minibatch_size": 128,
    "rl.training.config.num_epochs": 1,
    "rl.training.config.num_env_runners": 0,
    "rl.training.num_envs": 2,
    "rl.training.seed": 0,
}


@pytest.fixture(scope="module", autouse=True)
def _in_a_scratch_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """MuJoCo writes its warnings (HalfCheetah-v5's deprecated settotalmass) to MUJOCO_LOG.TXT in the cwd."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield


@pytest.mark.parametrize(("problem", "simulator"), ROWS, ids=ROW_IDS)
def test_the_rows_env_resets_and_steps_with_float_box_observations(problem: str, simulator: str) -> None:
    env = make_env(problem, simulator, seed=0)
    space = env.observation_space
    assert isinstance(space, gymnasium.spaces.Box) and space.dtype in (np.float32, np.float64)
    assert isinstance(env.action_space, gymnasium.spaces.Box)
    assert env.spec is not None and env.spec.max_episode_steps == PROBLEMS[problem].envs[simulator].max_episode_steps
    obs, _ = env.reset(seed=0)
    assert obs.shape == space.shape and obs.dtype == space.dtype
    for _ in range(10):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.shape == space.shape and obs.dtype == space.dtype
        assert isinstance(reward, float) and math.isfinite(reward)
        if terminated or truncated:
            env.reset()
    env.close()


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    ray_session.start_ray(1)
    yield
    ray_session.stop_ray()


@pytest.mark.slow
@pytest.mark.parametrize(("problem", "simulator"), ROWS, ids=ROW_IDS)
def test_ppo_trains_two_iterations_on_the_row(ray_instance: None, problem: str, simulator: str) -> None:
    job = parse_hyperparameters({**TINY, "rl.env.simulator": simulator}, problem)
    algo = build_algorithm(build_ppo_config(job, cpus=1), job)
    try:
        if job.initial_log_std is not None:  # as a new job starts its policy (training._start)
            learner.set_initial_log_std(algo, job.initial_log_std, gsde=False)
        results = [algo.train() for _ in range(2)]
    finally:
        algo.stop()
    steps = [result["num_env_steps_sampled_lifetime"] for result in results]
    assert 0 < steps[0] < steps[1]
    assert all(math.isfinite(result["learners"]["default_policy"]["total_loss"]) for result in results)
