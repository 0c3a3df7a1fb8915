"""gSDE's module: noise held for its window, the distribution the learner trains, the mean at inference."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ACTOR, ENCODER_OUT
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from sagemaker_rl.job.gsde import DEFAULT_LOG_STD, RESAMPLE_KEY, GsdePPOTorchRLModule

OBS_DIM, ACTION_DIM, COPIES = 5, 2, 4


def _module(resample_steps: int, log_std: float | None = -1.0) -> GsdePPOTorchRLModule:
    module = RLModuleSpec(
        module_class=GsdePPOTorchRLModule,
        observation_space=gym.spaces.Box(-10.0, 10.0, (OBS_DIM,), np.float32),
        action_space=gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32),
        model_config={"fcnet_hiddens": [16, 16], "fcnet_activation": "tanh", RESAMPLE_KEY: resample_steps},
    ).build()
    if log_std is not None:
        with torch.no_grad():
            module.sde_log_std.fill_(log_std)
    return module


def _explore(module: GsdePPOTorchRLModule, obs: torch.Tensor) -> dict:
    with torch.no_grad():
        return module.forward_exploration({Columns.OBS: obs})


def test_the_noise_scale_starts_at_its_default():
    module = _module(resample_steps=1, log_std=None)
    assert module.sde_log_std.shape == (16, ACTION_DIM)
    assert torch.all(module.sde_log_std == DEFAULT_LOG_STD)


def test_noise_is_held_for_its_window_then_drawn_anew():
    torch.manual_seed(0)
    module = _module(resample_steps=3)
    obs = torch.randn(COPIES, OBS_DIM)
    actions = [_explore(module, obs)[Columns.ACTIONS] for _ in range(7)]
    for step in (1, 2, 4, 5):  # the same observation under the same noise matrix: the same action
        torch.testing.assert_close(actions[step], actions[step - 1])
    for step in (3, 6):  # a new window, new matrices
        assert (actions[step] - actions[step - 1]).abs().min() > 1e-4
    per_copy = _explore(_module(resample_steps=1), obs.new_ones(COPIES, OBS_DIM))[Columns.ACTIONS]
    assert (per_copy - per_copy[0]).abs().max() > 1e-4  # one observation, four copies: four noise matrices


def test_one_steps_action_has_the_gaussian_the_learner_trains():
    torch.manual_seed(1)
    module = _module(resample_steps=1, log_std=-0.5)
    obs = torch.randn(1, OBS_DIM).repeat(20_000, 1)  # one state, 20,000 copies: 20,000 noise draws
    out = _explore(module, obs)
    dist = module.get_exploration_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    torch.testing.assert_close(out[Columns.ACTION_LOGP], dist.logp(out[Columns.ACTIONS]))
    with torch.no_grad():
        latent = module.encoder({Columns.OBS: obs[:1]})[ENCODER_OUT][ACTOR]
        expected_std = torch.sqrt(latent ** 2 @ torch.exp(module.sde_log_std) ** 2)[0]
        expected_mean = module.pi(latent)[0]
    actions = out[Columns.ACTIONS]
    torch.testing.assert_close(actions.mean(0), expected_mean, atol=0.02, rtol=0)
    torch.testing.assert_close(actions.std(0), expected_std, rtol=0.03, atol=0)
    # The training forward gives the same distribution, with a gradient into the noise scale.
    train_inputs = module.forward_train({Columns.OBS: obs[:1]})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(train_inputs.detach(), out[Columns.ACTION_DIST_INPUTS][:1])
    dist = module.get_train_action_dist_cls().from_logits(train_inputs)
    dist.logp(actions[:1]).sum().backward()
    assert module.sde_log_std.grad is not None and module.sde_log_std.grad.abs().sum() > 0


@pytest.mark.parametrize("log_std", [-3.0, 0.0])
def test_inference_is_the_mean_action_whatever_the_noise_scale(log_std):
    torch.manual_seed(2)
    module = _module(resample_steps=4, log_std=log_std)
    obs = torch.randn(COPIES, OBS_DIM)
    with torch.no_grad():
        inputs = module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        latent = module.encoder({Columns.OBS: obs})[ENCODER_OUT][ACTOR]
        mean = module.pi(latent)
    action = module.get_inference_action_dist_cls().from_logits(inputs).to_deterministic().sample()
    torch.testing.assert_close(action, mean)
