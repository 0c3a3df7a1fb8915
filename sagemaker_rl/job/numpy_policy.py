"""The default PPO module's exploration step in numpy: the lean sampler's actions for a vector of env copies.

On the handful of rows a runner steps at a time, torch's per-op overhead, not arithmetic, is the
cost: the module's forward pass and its action distribution were the largest part of a reacher
sampling step after the simulator's own work (docs/benchmarks.md, "Sampling"). The same layers as
numpy products, and the same distributions drawn with numpy, do it at a fraction of that. The module stays the one
owner of the weights: they are read again at the start of each sample call, after any weight sync.

It serves RLlib's default PPO module with an MLP encoder and head of Linear, Tanh and ReLU layers
(a free log std or not) and a diagonal Gaussian or categorical action distribution, on the CPU; for
any other module (gSDE's, a stateful one, one on a GPU) the runner samples with torch as RLlib does.

Draws come from the runner's own numpy generator (seeded from the runner's seed), not torch's global
stream, so the episodes differ from RLlib's loop with the same seed but come from the same
distributions, with log-probs equal to torch's to float rounding (tests/job/test_numpy_policy.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_POLICY_STREAM = 1  # keeps the policy's draws apart from the env copies', which are seeded from the same seed
_ACTIVATIONS: dict[type, Callable[[np.ndarray], np.ndarray] | None] = {
    torch.nn.Tanh: np.tanh, torch.nn.ReLU: lambda x: np.maximum(x, 0.0), torch.nn.Identity: None}


class NumpyPolicy:
    """`outputs(observations)`: what RLlib's module and GetActions give the episodes when exploring, in numpy."""

    def __init__(self, layers: list[torch.nn.Module], free_log_std: Any, log_std_clip: float | None,
                 gaussian: bool, seed: int | None) -> None:
        self._modules = layers
        self._free_log_std = free_log_std  # the head holding the free log std parameter
        self._log_std_clip = log_std_clip
        self._gaussian = gaussian
        self._rng = np.random.default_rng(None if seed is None else [seed, _POLICY_STREAM])
        self._steps: list[Callable[[np.ndarray], np.ndarray]] = []
        self._log_std = np.zeros(0, dtype=np.float32)

    @classmethod
    def of(cls, module: Any, seed: int | None) -> NumpyPolicy | None:
        """The numpy policy of `module`, or None for a module it does not serve."""
        from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
        from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDiagGaussian
        from ray.rllib.core.models.torch.encoder import TorchMLPEncoder
        from ray.rllib.core.models.torch.heads import TorchFreeLogStdMLPHead, TorchMLPHead

        if type(module) is not DefaultPPOTorchRLModule or module.is_stateful():
            return None
        if any(parameter.device.type != "cpu" for parameter in module.parameters()):
            return None  # a runner given a GPU (num_gpus_per_env_runner) samples there, with torch
        distribution = module.get_exploration_action_dist_cls()
        if distribution not in (TorchDiagGaussian, TorchCategorical):
            return None
        encoder = getattr(module.encoder, "encoder", None) or getattr(module.encoder, "actor_encoder", None)
        head = module.pi
        if type(encoder) is not TorchMLPEncoder or type(head) not in (TorchMLPHead, TorchFreeLogStdMLPHead):
            return None
        layers = [*encoder.net.mlp, *head.net.mlp]
        if not all(isinstance(layer, torch.nn.Linear) or type(layer) in _ACTIVATIONS for layer in layers):
            return None
        clip = float(head.log_std_clip_param_const) if head.clip_log_std else None
        if clip is not None and distribution is not TorchDiagGaussian:
            return None
        free = head if type(head) is TorchFreeLogStdMLPHead else None
        return cls(layers, free, clip, distribution is TorchDiagGaussian, seed)

    def refresh(self) -> None:
        """Read the module's current weights (a sync loads them into the same parameters, or new ones)."""
        def linear(layer: torch.nn.Linear) -> Callable[[np.ndarray], np.ndarray]:
            weight = layer.weight.detach().numpy().T.copy()  # contiguous for the product
            bias = None if layer.bias is None else layer.bias.detach().numpy().copy()
            return (lambda x: x @ weight) if bias is None else (lambda x: x @ weight + bias)

        self._steps = []
        for layer in self._modules:
            if isinstance(layer, torch.nn.Linear):
                self._steps.append(linear(layer))
            elif (activation := _ACTIVATIONS[type(layer)]) is not None:
                self._steps.append(activation)
        if self._free_log_std is not None:
            self._log_std = self._free_log_std.log_std.detach().numpy().copy()

    def outputs(self, observations: np.ndarray) -> dict[str, np.ndarray]:
        """Action distribution inputs, sampled actions and their log-probs for a batch of float32 observations."""
        x = observations
        for step in self._steps:
            x = step(x)
        if self._gaussian:
            return self._gaussian_outputs(x)
        return self._categorical_outputs(x)

    def _gaussian_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self._free_log_std is not None:
            mean, log_std = x, self._log_std
            if self._log_std_clip is not None:
                log_std = np.clip(log_std, -self._log_std_clip, self._log_std_clip)
            log_std = np.broadcast_to(log_std, mean.shape)
        else:
            mean, log_std = np.split(x, 2, axis=-1)
            if self._log_std_clip is not None:
                log_std = np.clip(log_std, -self._log_std_clip, self._log_std_clip)
        noise = self._rng.standard_normal(mean.shape, dtype=np.float32)
        actions = mean + np.exp(log_std) * noise
        logp = (-0.5 * noise * noise - log_std - np.float32(_HALF_LOG_2PI)).sum(axis=-1)
        return {Columns.ACTION_DIST_INPUTS: np.concatenate([mean, log_std], axis=-1), Columns.ACTIONS: actions,
                Columns.ACTION_LOGP: logp}

    def _categorical_outputs(self, logits: np.ndarray) -> dict[str, np.ndarray]:
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        cumulative = np.cumsum(np.exp(log_probs), axis=-1)
        draws = self._rng.random((len(logits), 1), dtype=np.float32) * cumulative[:, -1:]
        actions = np.minimum((cumulative <= draws).sum(axis=-1), logits.shape[-1] - 1).astype(np.int64)
        logp = np.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0]
        return {Columns.ACTION_DIST_INPUTS: logits, Columns.ACTIONS: actions, Columns.ACTION_LOGP: logp}
