"""Evaluation: deterministic episodes of an exported policy (model/policy.onnx), without Ray; and of the policy a
job is training, from its iterations (`PolicyEvaluation`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sagemaker_rl.errors import UserError

if TYPE_CHECKING:
    from sagemaker_rl.job.hyperparameters import EnvSettings

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Returns of the evaluated episodes."""

    returns: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def max(self) -> float:
        return float(np.max(self.returns))

    @property
    def min(self) -> float:
        return float(np.min(self.returns))


def evaluate(model_dir: Path, *, episodes: int = 10, seed: int = 0, video: Path | None = None) -> EvaluationResult:
    """Run `episodes` deterministic episodes of the policy in `model_dir`; optionally save a GIF of the first."""
    from sagemaker_rl.job.envs import make, problem_env
    from sagemaker_rl.job.export import OnnxPolicy
    from sagemaker_rl.job.hyperparameters import EnvSettings

    params_file, policy_file = model_dir / "params.json", model_dir / "policy.onnx"
    for required in (params_file, policy_file):
        if not required.is_file():
            raise UserError(f"{required} does not exist: --model-dir must be a job's model/ directory "
                            "(it holds params.json and policy.onnx)")
    if episodes < 1:
        raise UserError(f"episodes must be >= 1, got {episodes}")
    params = json.loads(params_file.read_text())
    # a model written before jobs took any env holds only its problem and simulator
    settings = EnvSettings(**params["env"]) if "env" in params else problem_env(params["problem"], params["simulator"])
    env = make(settings, render_mode="rgb_array" if video else None)
    frames: list[Any] = []
    try:
        result = run_episodes(env, OnnxPolicy(policy_file), episodes=episodes, seed=seed,
                              frames=frames if video else None)
    finally:
        env.close()
    if video:
        _save_gif(frames, video)
    return result


class PolicyEvaluation:
    """Deterministic evaluations of the policy a job trains, in its driver: the policy the ONNX export would write
    at that iteration (the current observation filter, the mean action, unsquashed and clipped), on `episodes`
    episodes of one env whose seeds are the same at every evaluation, so that evaluations differ by the policy only.
    """

    def __init__(self, settings: EnvSettings, *, episodes: int, seed: int | None) -> None:
        self._settings = settings
        self._env: Any = None  # made at the first evaluation: a job cut short before its end makes none
        self._episodes = episodes
        self._seed = evaluation_seed(seed)

    def __call__(self, algo: Any) -> float:
        """The mean return of the evaluation's episodes under `algo`'s current policy."""
        import torch

        from sagemaker_rl.job.export import PolicyGraph
        from sagemaker_rl.job.learner import MODULE_ID
        from sagemaker_rl.job.model import observation_filter_stats

        if self._env is None:
            from sagemaker_rl.job.envs import make

            self._env = make(self._settings)
        graph = PolicyGraph(algo.get_module(MODULE_ID), observation_filter_stats(algo)).eval()

        def policy(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return graph(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()

        return run_episodes(self._env, policy, episodes=self._episodes, seed=self._seed).mean

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


def evaluation_seed(seed: int | None) -> int:
    """The seed of the first episode of every evaluation of a job seeded `seed` (the next ones: + 1, + 2, ...).

    A stream of its own: the job's env runners seed their copies from (seed, runner) (env_runner.runner_seed).
    """
    return int(np.random.SeedSequence([seed or 0, _EVALUATION_STREAM]).generate_state(1)[0] % 2**31)


_EVALUATION_STREAM = 0x6576616C  # "eval" in ASCII


def run_episodes(env: Any, policy: Callable[[np.ndarray], np.ndarray], *, episodes: int, seed: int,
                 frames: list[Any] | None = None) -> EvaluationResult:
    """`episodes` episodes of `policy` (observation -> action) in `env`, seeded seed, seed + 1, ...;
    the first episode's rendered frames are appended to `frames` when it is given."""
    returns: list[float] = []
    lengths: list[int] = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, steps, done = 0.0, 0, False
        while not done:
            if frames is not None and episode == 0:
                frames.append(env.render())
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total, steps, done = total + float(reward), steps + 1, terminated or truncated
        returns.append(total)
        lengths.append(steps)
        logger.info("episode %d: return %.2f over %d steps", episode, total, steps)
    return EvaluationResult(returns, lengths)


def _save_gif(frames: list[Any], path: Path) -> None:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(str(path), frames[::2], duration=1 / 30, loop=0)  # every 2nd frame keeps files small
