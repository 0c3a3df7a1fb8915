"""Policy export: the trained RLModule as an ONNX file that maps observations to env actions.

The exported graph is the job's observation filter (when it has one: the running mean and std it
had at the end, with its clipping), RLlib's deterministic inference path (distribution inputs ->
mean action, or the most likely of Discrete actions), and for a Box the same unsquash-and-clip to
the action space that RLlib applies before `env.step`. So the ONNX file takes the env's observations
(flattened as model/observation.json says, for Dict and Tuple spaces) and its output can be fed to
the env as it is.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

INPUT_NAME = "obs"
_FILTER_EPSILON = 1e-6
OUTPUT_NAME = "action"


def export_onnx(module: Any, path: Path, *, observation_filter: tuple[Any, Any, float] | None = None) -> Path:
    """Write `module`'s deterministic policy to `path` (opset 17, dynamic batch size).

    `observation_filter` is (mean, std, clip) of a MeanStdFilter the module was trained behind.
    """
    graph = PolicyGraph(module, observation_filter).eval()
    obs_dim = int(np.prod(module.observation_space.shape))
    example = torch.zeros(1, obs_dim, dtype=torch.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial-{path.name}")  # a kill mid-export leaves no half-written policy
    with _traceable_free_log_std(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(graph, (example,), str(partial), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=17, dynamo=False)
    partial.replace(path)
    return path


class OnnxPolicy:
    """An exported policy, run with onnxruntime (no Ray, no torch needed)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        self._session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        batch = np.asarray(obs, dtype=np.float32)
        single = batch.ndim == 1
        if single:
            batch = batch[None]
        (action,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return action[0] if single else action


class PolicyGraph(torch.nn.Module):
    """obs -> filter -> RLModule inference forward -> deterministic action -> unsquash/clip to the space."""

    def __init__(self, module: Any, observation_filter: tuple[Any, Any, float] | None = None) -> None:
        super().__init__()
        self.module = module
        obs_dim = int(np.prod(module.observation_space.shape))
        mean, scale, self.clip = np.zeros(obs_dim), np.ones(obs_dim), math.inf
        if observation_filter is not None:
            mean, std, self.clip = observation_filter
            # RLlib's MeanStdFilter divides by std + 1e-6 (ray.rllib.utils.filter.SMALL_NUMBER)
            scale = 1.0 / (np.asarray(std) + _FILTER_EPSILON)
        self.obs_mean: torch.Tensor
        self.obs_scale: torch.Tensor
        self.register_buffer("obs_mean", torch.tensor(np.asarray(mean).reshape(-1), dtype=torch.float32))
        self.register_buffer("obs_scale", torch.tensor(np.asarray(scale).reshape(-1), dtype=torch.float32))
        self.dist_cls = module.get_inference_action_dist_cls()
        space = module.action_space
        self.discrete = not hasattr(space, "low")  # Discrete(n): the most likely action's index
        self.low: torch.Tensor
        self.high: torch.Tensor
        bounds = (np.zeros(1), np.zeros(1)) if self.discrete else (np.array(space.low), np.array(space.high))
        self.register_buffer("low", torch.tensor(bounds[0], dtype=torch.float32))
        self.register_buffer("high", torch.tensor(bounds[1], dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = (obs - self.obs_mean) * self.obs_scale
        if math.isfinite(self.clip):  # a Python constant when traced: no clip node without a filter
            obs = torch.clamp(obs, -self.clip, self.clip)
        dist_inputs = self.module.forward_inference({"obs": obs})["action_dist_inputs"]
        action = self.dist_cls.from_logits(dist_inputs).to_deterministic().sample()
        if self.discrete:  # a Python constant when traced
            return action
        # RLlib's normalize_actions: the policy acts in [-1, 1]; unsquash to the bounds, then clip.
        action = self.low + (action + 1.0) * (self.high - self.low) / 2.0
        return torch.maximum(torch.minimum(action, self.high), self.low)


@contextlib.contextmanager
def _traceable_free_log_std() -> Iterator[None]:
    """Let the tracer keep the batch size dynamic in RLlib's free-log-std head.

    RLlib tiles log_std with `repeat([len(mean), 1])`; the tracer records `len()` as the constant 1,
    so the exported graph would accept batches of one only. The same computation with
    `expand(mean.shape[0], -1)` traces the batch size as a shape op (the ONNX test checks batches).
    """
    from ray.rllib.core.models.torch.heads import TorchFreeLogStdMLPHead

    original = TorchFreeLogStdMLPHead._forward

    def forward(self: Any, inputs: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        mean = self.net(inputs)
        log_std = self.log_std
        if self.clip_log_std:
            log_std = torch.clamp(log_std, -self.log_std_clip_param_const, self.log_std_clip_param_const)
        return torch.cat([mean, log_std.unsqueeze(0).expand(mean.shape[0], -1)], dim=1)

    TorchFreeLogStdMLPHead._forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        TorchFreeLogStdMLPHead._forward = original  # type: ignore[method-assign]
