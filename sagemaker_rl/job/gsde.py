"""Generalized state-dependent exploration (gSDE, Raffin et al. 2021) for RLlib 2.60's PPO module.

RLlib's continuous-action policy adds fresh, independent Gaussian noise to every action at every step,
with a free std that does not depend on the state. gSDE makes the noise a function of the policy's
latent features: `action = mean(s) + latent(s) @ E`, where the noise matrix E (one per env copy,
entries ~ N(0, exp(sde_log_std)^2)) is drawn anew only every `gsde_resample_steps` env steps, so the
exploration is smooth in time and shrinks where the features do. One step's action is then Gaussian
with std sqrt(latent^2 @ exp(sde_log_std)^2): that is the distribution the learner trains (log
probability, entropy, KL), as Stable-Baselines3's `use_sde` does, with the latent detached from the
std (its `learn_features=False`). The deterministic policy (evaluation, ONNX) is the mean, as before.

The noise matrices live on the env runners' modules, outside the weights: they are exploration state,
not policy, and a resumed job draws new ones (as SB3 draws new ones each rollout).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ACTOR, CRITIC, ENCODER_OUT
from ray.rllib.models.torch.torch_distributions import TorchDiagGaussian

RESAMPLE_KEY = "gsde_resample_steps"  # the model_config key the job passes its setting in
LOG_STD_PARAMETER = "sde_log_std"
# The noise scale's start when the job gives none: on reacher's [64, 64] tanh features an action std of ~0.3
# (entropy 0.4); -1.2, the free std's 0.66 of the `fast` preset, learned less (docs/benchmarks.md, "Reacher: gSDE").
DEFAULT_LOG_STD = -2.0
_VARIANCE_EPSILON = 1e-6  # SB3's: a floor under the variance where every feature is near zero


class GsdePPOTorchRLModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO module with gSDE: a linear mean head on the actor features and a noise scale per feature."""

    def setup(self) -> None:
        super().setup()
        assert self.catalog is not None and isinstance(self.model_config, dict) and self.action_space is not None
        (latent_dim,) = self.catalog.latent_dims
        (action_dim,) = self.action_space.shape or ()
        self.pi = torch.nn.Linear(latent_dim, action_dim)  # the catalog's head, its free log std dropped
        self.sde_log_std = torch.nn.Parameter(torch.full((latent_dim, action_dim), DEFAULT_LOG_STD))
        self.resample_steps = int(self.model_config[RESAMPLE_KEY])
        self._noise: torch.Tensor | None = None  # (env copies, latent, action): one matrix per copy
        self._steps_with_noise = 0

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(self.encoder(batch)[ENCODER_OUT][ACTOR])}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        encoded = self.encoder(batch)[ENCODER_OUT]
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(encoded[ACTOR]), Columns.EMBEDDINGS: encoded[CRITIC]}

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        latent = self.encoder(batch)[ENCODER_OUT][ACTOR]
        dist_inputs = self._dist_inputs(latent)
        copies = latent.shape[0]
        if self._noise is None or self._noise.shape[0] != copies or self._steps_with_noise >= self.resample_steps:
            scale = torch.exp(self.sde_log_std)
            self._noise = torch.randn(copies, *scale.shape, device=scale.device) * scale
            self._steps_with_noise = 0
        self._steps_with_noise += 1
        mean = dist_inputs[:, : self._noise.shape[2]]
        actions = mean + torch.einsum("bl,bla->ba", latent, self._noise)
        return {
            Columns.ACTION_DIST_INPUTS: dist_inputs,
            Columns.ACTIONS: actions,
            Columns.ACTION_LOGP: TorchDiagGaussian.from_logits(dist_inputs).logp(actions),
        }

    def _dist_inputs(self, latent: torch.Tensor) -> torch.Tensor:
        """[mean, log std]: the inputs of RLlib's diagonal Gaussian for one step's action, from the actor features."""
        variance = (latent.detach() ** 2) @ torch.exp(2.0 * self.sde_log_std) + _VARIANCE_EPSILON
        return torch.cat([self.pi(latent), 0.5 * torch.log(variance)], dim=-1)
