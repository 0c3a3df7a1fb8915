"""NumpyPolicy against the torch module it stands in for: the same distribution, its own draws.

The learner's PPO ratio starts from the log-probs the runner recorded, and its KL term from the
distribution inputs: both must be what the module and RLlib's distribution give for the same
observations and actions. The draws are numpy's, so they are checked as draws: their moments and
frequencies, their seeding, and that the episodes the lean loop builds from them hold consistent
actions, log-probs and distribution inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.tune.registry import register_env

from sagemaker_rl.job import ppo_config
from sagemaker_rl.job.env_runner import LeanEnvRunner
from sagemaker_rl.job.envs import env_creator
from sagemaker_rl.job.hyperparameters import JobConfig
from sagemaker_rl.job.numpy_policy import NumpyPolicy
from tests.job.test_lean_sampler import cartpole_job, described, reacher_job, sampled


def module_of(job: JobConfig) -> Any:
    config = ppo_config.build_ppo_config(job, cpus=3)
    register_env(ppo_config.env_name(job), env_creator)
    runner = LeanEnvRunner(config=config, worker_index=1)
    runner.stop()
    return runner.module


def torch_outputs(module: Any, observations: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The module's distribution inputs for `observations` and RLlib's log-probs of `actions` under them."""
    with torch.no_grad():
        inputs = module._forward_exploration({Columns.OBS: torch.from_numpy(observations)})[Columns.ACTION_DIST_INPUTS]
        distribution = module.get_exploration_action_dist_cls().from_logits(inputs)
        return inputs.numpy(), distribution.logp(torch.from_numpy(actions)).numpy()


def perturbed(module: Any, seed: int) -> None:
    """New weights, as a sync from the learner would load them."""
    generator = torch.Generator().manual_seed(seed)
    state = {name: value + 0.3 * torch.randn(value.shape, generator=generator)
             for name, value in module.state_dict().items()}
    module.load_state_dict(state)


def ready(job: JobConfig, weights_seed: int, policy_seed: int) -> tuple[Any, NumpyPolicy]:
    """`job`'s module with new weights (away from the initial near-zero output layer) and its NumpyPolicy, synced."""
    module = module_of(job)
    perturbed(module, weights_seed)
    policy = NumpyPolicy.of(module, seed=policy_seed)
    assert policy is not None
    policy.refresh()
    return module, policy


DRAWS = 20_000


def drawn_at_one_observation(module: Any, policy: NumpyPolicy, seed: int) -> dict[str, np.ndarray]:
    """DRAWS outputs of `policy` for one random observation."""
    observation = np.random.default_rng(seed).normal(size=(1, module.observation_space.shape[0])).astype(np.float32)
    return policy.outputs(np.repeat(observation, DRAWS, axis=0))


@pytest.mark.parametrize("job", [reacher_job(), cartpole_job()], ids=["box", "discrete"])
def test_distribution_inputs_and_log_probs_are_the_modules_and_torchs(job: JobConfig) -> None:
    module, policy = ready(job, weights_seed=0, policy_seed=1)
    observations = np.random.default_rng(2).normal(0, 2, (64, module.observation_space.shape[0])).astype(np.float32)
    outputs = policy.outputs(observations)
    inputs, logp = torch_outputs(module, observations, outputs[Columns.ACTIONS])
    assert outputs[Columns.ACTION_DIST_INPUTS].dtype == np.float32 and outputs[Columns.ACTION_LOGP].dtype == np.float32
    np.testing.assert_allclose(outputs[Columns.ACTION_DIST_INPUTS], inputs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[Columns.ACTION_LOGP], logp, rtol=1e-5, atol=1e-5)


def test_gaussian_draws_have_the_modules_mean_and_std() -> None:
    outputs = drawn_at_one_observation(*ready(reacher_job(), weights_seed=3, policy_seed=4), seed=5)
    mean, log_std = np.split(outputs[Columns.ACTION_DIST_INPUTS], 2, axis=-1)
    noise = (outputs[Columns.ACTIONS] - mean) / np.exp(log_std)
    assert np.all(np.abs(noise.mean(axis=0)) < 5 / np.sqrt(DRAWS))
    assert np.all(np.abs(noise.std(axis=0) - 1) < 0.03)
    assert abs(np.corrcoef(noise.T)[0, 1]) < 5 / np.sqrt(DRAWS)  # independent per dimension


def test_categorical_draws_follow_the_modules_probabilities() -> None:
    outputs = drawn_at_one_observation(*ready(cartpole_job(), weights_seed=6, policy_seed=7), seed=8)
    logits = outputs[Columns.ACTION_DIST_INPUTS][0]
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert 0.05 < probabilities.min()  # both actions are drawn often enough to test
    frequencies = np.bincount(outputs[Columns.ACTIONS], minlength=2) / DRAWS
    assert np.all(np.abs(frequencies - probabilities) < 5 * np.sqrt(probabilities * (1 - probabilities) / DRAWS))
    assert outputs[Columns.ACTIONS].dtype == np.int64


def test_it_reads_the_weights_again_at_each_refresh() -> None:
    module = module_of(reacher_job())
    policy = NumpyPolicy.of(module, seed=1)
    assert policy is not None
    observations = np.random.default_rng(9).normal(size=(8, 9)).astype(np.float32)
    policy.refresh()
    before = policy.outputs(observations)[Columns.ACTION_DIST_INPUTS]
    perturbed(module, 10)
    policy.refresh()
    after = policy.outputs(observations)[Columns.ACTION_DIST_INPUTS]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, torch_outputs(module, observations, np.zeros((8, 2), np.float32))[0],
                               rtol=1e-5, atol=1e-6)


def test_a_module_it_does_not_serve_samples_with_torch() -> None:
    assert NumpyPolicy.of(module_of(reacher_job(**{"rl.training.gsde_resample_steps": 4})), seed=1) is None
    off_the_cpu = module_of(reacher_job()).to("meta")  # no GPU here: a device numpy cannot read stands in for one
    assert NumpyPolicy.of(off_the_cpu, seed=1) is None


def test_the_lean_loops_episodes_hold_their_actions_log_probs_and_are_seeded() -> None:
    job = reacher_job()
    first, again = sampled(LeanEnvRunner, job, calls=2), sampled(LeanEnvRunner, job, calls=2)
    for sample, sample_again in zip(first["samples"], again["samples"], strict=True):
        for episode, episode_again in zip(sample, sample_again, strict=True):
            np.testing.assert_equal(described(episode), described(episode_again))  # the same seed: the same episodes
    module = module_of(job)
    for episode in first["samples"][1]:
        inputs = episode.get_extra_model_outputs(Columns.ACTION_DIST_INPUTS)
        distribution = module.get_exploration_action_dist_cls().from_logits(torch.from_numpy(inputs))
        logp = distribution.logp(torch.from_numpy(episode.get_actions())).numpy()
        np.testing.assert_allclose(episode.get_extra_model_outputs(Columns.ACTION_LOGP), logp, rtol=1e-5, atol=1e-5)
    other = sampled(LeanEnvRunner, reacher_job(**{"rl.training.seed": 4}), calls=1)
    assert not np.array_equal(other["samples"][0][0].get_actions(), first["samples"][0][0].get_actions())
