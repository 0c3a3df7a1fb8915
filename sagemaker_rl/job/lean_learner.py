"""PPO's update with less Python per minibatch: RLlib's own learner, loss and optimizer, with a shorter loop.

On the `fast` presets' small networks, RLlib's update spends about as long on bookkeeping per minibatch
as on the forward and backward passes (docs/benchmarks.md, "The learner: a shorter minibatch loop"):
each minibatch is sliced and concatenated as a SampleBatch, runs through the module's wrappers, builds
the previous policy's distribution whether the loss needs it or not, and logs a dozen metrics that are
reported for the last minibatch only (their window is 1). This learner runs the same update with less:

- the batch is RLlib's, made by its learner connectors (advantages, value targets, the loss mask);
- the minibatches are the rows RLlib's cyclic iterator gives, drawn from numpy's global stream as it
  draws them, gathered by index from the batch's tensors instead of sliced and concatenated;
- each minibatch but the last takes PPO's loss term for term as RLlib computes it, and RLlib's
  gradient clip and optimizer step, without the metrics and with one check for NaN and infinity;
- the last minibatch goes through RLlib's own `_update`, which logs the loss, gradient and
  off-policyness metrics that the iteration reports; the step counts are logged for every minibatch.

The same batch and numpy state give the same weights, optimizer state and metrics as RLlib's update
to the bit (tests/job/test_lean_learner.py). It serves the default PPO module (a separate or shared
MLP encoder, any action distribution) on one local learner; anything else is updated by RLlib's
loop, with the reason in `lean_refusal`; `rl.training.learner=rllib` builds RLlib's own learner instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics.ray_metrics import TimerAndPrometheusLogger

from sagemaker_rl.job.learner import MODULE_ID

# What PPO's learner group passes to a learner's update; with anything else (several learners) RLlib's loop runs.
_LEAN_ARGS = {"training_data", "timesteps", "num_epochs", "minibatch_size", "shuffle_batch_per_epoch"}
# The columns `_loss` and the default module read (and the previous policy's inputs with a KL loss).
_LOSS_COLUMNS = (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.LOSS_MASK, Postprocessing.ADVANTAGES,
                 Postprocessing.VALUE_TARGETS)


def minibatch_rows(count: int, *, num_epochs: int, minibatch_size: int | None,
                   shuffle: bool) -> Iterator[np.ndarray]:
    """The rows of each minibatch RLlib 2.60's learner takes from a batch of `count` rows, in its order.

    RLlib's MiniBatchCyclicIterator walks the batch in minibatch-size steps, wrapping around (a minibatch
    may end one pass and begin the next), and shuffles the whole batch with `np.random.permutation` at
    each wrap; it stops at the wrap that completes `num_epochs` passes. Without a minibatch size, each
    pass is one minibatch (shuffled between passes all the same), or a single pass the whole batch once.
    """
    if not minibatch_size:
        if num_epochs == 1:
            yield np.arange(count)
            return
        minibatch_size = count
    order, start, passes = np.arange(count), 0, 0
    while passes < num_epochs:
        parts, needed = [], minibatch_size
        while start + needed >= count:  # RLlib's condition: a minibatch ending at the batch's end wraps too
            parts.append(order[start:])
            needed -= count - start
            start, passes = 0, passes + 1
            if shuffle:
                order = order[np.random.permutation(count)]
        if needed > 0:
            parts.append(order[start:start + needed])
            start += needed
        yield np.concatenate(parts)


class LeanPPOLearner(PPOTorchLearner):
    """RLlib's PPO torch learner with the minibatch loop described in this module's docstring."""

    def build(self) -> None:
        super().build()
        self.lean_refusal = self._lean_refusal()

    def _lean_refusal(self) -> str | None:
        """Why this learner updates with RLlib's loop, in a few words (None: it updates with the lean one)."""
        module = self.module[MODULE_ID] if MODULE_ID in self.module.keys() else None
        if set(self.module.keys()) != {MODULE_ID} or type(module) is not DefaultPPOTorchRLModule:
            return "a module other than RLlib's default PPO module"
        if module.is_stateful():
            return "a stateful (recurrent) module"
        if any(parameter.device.type != "cpu" for parameter in module.parameters()):
            return "a learner on a GPU (the lean loop is measured on the CPU only)"
        if self.config.num_learners > 1 or self._grad_scalers is not None or self.config.torch_compile_learner:
            return "several learners, mixed precision or a compiled learner"
        if len(self.get_optimizers_for_module(MODULE_ID)) != 1 or self._lr_scheduler_classes is not None:
            return "an optimizer other than PPO's one, or torch lr schedulers"
        return None

    def update(self, *args: Any, **kwargs: Any) -> Any:
        training_data = kwargs.get("training_data")
        if self.lean_refusal is not None or args or set(kwargs) - _LEAN_ARGS or training_data is None \
                or training_data.data_iterators:
            return super().update(*args, **kwargs)
        return self._lean_update(**kwargs)

    def _lean_update(self, *, training_data: TrainingData, timesteps: dict[str, Any] | None = None,
                     num_epochs: int = 1, minibatch_size: int | None = None,
                     shuffle_batch_per_epoch: bool = False) -> Any:
        # Learner.update's steps around its loop, in its order.
        self._check_is_built()
        self.before_gradient_based_update(timesteps=timesteps or {})
        training_data.validate()
        training_data.solve_refs()
        self._weights_seq_no += 1
        batch = self._make_batch_if_necessary(training_data=training_data)
        if not self.should_module_be_updated(MODULE_ID, batch):
            return {}
        columns = dict(batch.policy_batches[MODULE_ID])
        config: Any = self.config.get_config_for_module(MODULE_ID)  # a PPOConfig
        needed = _LOSS_COLUMNS + ((Columns.ACTION_DIST_INPUTS,) if config.use_kl_loss else ())
        read = {key: columns[key] for key in needed if key in columns}  # all a lean minibatch gathers
        env_steps = batch.env_steps()
        rows = list(minibatch_rows(len(batch.policy_batches[MODULE_ID]), num_epochs=num_epochs,
                                   minibatch_size=minibatch_size, shuffle=shuffle_batch_per_epoch and num_epochs > 1))
        module: Any = self.module[MODULE_ID]
        module.train()
        (_, optimizer), = self.get_optimizers_for_module(MODULE_ID)
        loss_per_module: dict[str, Any] = {}
        for number, picked in enumerate(rows):
            index = torch.from_numpy(picked)
            last = number == len(rows) - 1
            minibatch = MultiAgentBatch(
                {MODULE_ID: SampleBatch({key: column[index] for key, column in (columns if last else read).items()})},
                env_steps)
            with TimerAndPrometheusLogger(self._metrics_learner_inner_update):
                if last:  # RLlib's own step: it logs the metrics the iteration reports
                    _, loss_per_module, _ = self._update(minibatch.policy_batches)
                else:
                    self._lean_step(module, minibatch.policy_batches[MODULE_ID], config, optimizer)
            self._log_metrics(batch=minibatch)
            self._log_steps_trained_metrics(minibatch)
        for module_id, loss in loss_per_module.items():
            self.metrics.log_value(key=(module_id, self.TOTAL_LOSS_KEY), value=loss, window=1)
        self.after_gradient_based_update(timesteps=timesteps or {})
        return self.metrics.reduce()

    def _lean_step(self, module: Any, batch: SampleBatch, config: Any, optimizer: Any) -> None:
        """One minibatch's update: `_loss`, then what RLlib's `_update` does with a loss, without its metrics.

        RLlib's gradient clip runs on the gradients in the optimizer's order, as RLlib's postprocessing
        calls it; its apply step checks each gradient for NaN and infinity twice, one op each. Here one
        check covers all of them; a step with any is RLlib's own (it zeroes them, with a warning).
        """
        gradients = self.filter_param_dict_for_optimizer(
            self.compute_gradients({MODULE_ID: self._loss(module, batch, config)}), optimizer)
        if config.grad_clip:
            self._get_clip_function()(gradients, grad_clip=config.grad_clip, grad_clip_by=config.grad_clip_by)
        if torch.isfinite(torch.cat([gradient.reshape(-1) for gradient in gradients.values()])).all():
            optimizer.step()  # the gradients are the parameters' own .grad tensors, clipped in place
        else:
            self.apply_gradients(gradients)

    def _loss(self, module: Any, batch: Any, config: Any) -> torch.Tensor:
        """PPO's total loss on `batch`, term for term as RLlib 2.60's compute_loss_for_module, without its metrics."""
        fwd_out = module._forward_train(batch)
        mask = batch.get(Columns.LOSS_MASK)
        num_valid: Any = None if mask is None else torch.sum(mask)

        def possibly_masked_mean(data: torch.Tensor) -> torch.Tensor:
            return torch.mean(data) if mask is None else torch.sum(data[mask]) / num_valid

        # In RLlib's order: autograd sums the gradients reaching a tensor in the order its uses were made.
        current = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        logp_ratio = torch.exp(current.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP])
        if config.use_kl_loss:
            previous = module.get_exploration_action_dist_cls().from_logits(batch[Columns.ACTION_DIST_INPUTS])
            mean_kl_loss = possibly_masked_mean(previous.kl(current))
        entropy = current.entropy()
        advantages = batch[Postprocessing.ADVANTAGES]
        surrogate_loss = torch.min(advantages * logp_ratio,
                                   advantages * torch.clamp(logp_ratio, 1 - config.clip_param, 1 + config.clip_param))
        if config.use_critic:
            values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
            vf_loss_clipped = torch.clamp(torch.pow(values - batch[Postprocessing.VALUE_TARGETS], 2.0), 0,
                                          config.vf_clip_param)
        else:
            vf_loss_clipped = torch.tensor(0.0)
        entropy_coeff = self.entropy_coeff_schedulers_per_module[MODULE_ID].get_current_value()
        total_loss = possibly_masked_mean(-surrogate_loss + config.vf_loss_coeff * vf_loss_clipped
                                          - entropy_coeff * entropy)
        if config.use_kl_loss:
            kl_coeff: Any = self.curr_kl_coeffs_per_module[MODULE_ID]
            total_loss += kl_coeff * mean_kl_loss
        return total_loss
