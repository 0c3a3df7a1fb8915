"""The env runner every job samples with: RLlib's, with seeds that no two env copies share.

RLlib 2.60 seeds runner w of a job with seed s as `s + w` (numpy, torch and its vector env), and
gymnasium's vector env seeds copy i with `s + w + i`: with 16 copies a runner, runner 2 repeats 15 of
runner 1's copies (initial states and, as reacher's episodes all have the same length, every later
goal) — a 2-runner job samples 17 distinct env streams, not 32 (ray-project/ray#46986). Jobs with
seeds s and s + 1 share 15 of their 16 copies on one runner too, so "fresh seeds" were not fresh.
This runner draws its seed from (s, w, evaluation) through numpy's SeedSequence, whose outputs are
independent for different inputs; its copies take that seed + i as before.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.env_runner import ENV_STEP_FAILURE
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.debug import update_global_seed_if_necessary
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.torch_utils import convert_to_torch_tensor


def runner_seed(seed: int, worker_index: int, *, evaluation: bool = False) -> int:
    """The seed of runner `worker_index` of a job seeded `seed`; its env copy i gets this + i."""
    return int(np.random.SeedSequence([seed, worker_index, int(evaluation)]).generate_state(1)[0])


class SeededEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner, seeded by `runner_seed` (numpy, torch, random and its envs)."""

    def __init__(self, *, config: Any, **kwargs: Any) -> None:
        super().__init__(config=config, **kwargs)
        if config.seed is not None:
            self._seed = runner_seed(config.seed, self.worker_index or 0, evaluation=config.in_evaluation)
            update_global_seed_if_necessary(framework=config.framework_str, seed=self._seed)


# RLlib 2.60's env-to-module and module-to-env pipelines when the job adds only its own connectors: the lean
# sampler does their work itself, so it serves a runner only when these are all its pipelines do.
_RLLIB_TO_MODULE = ("AddObservationsFromEpisodesToBatch", "AddTimeDimToBatchAndZeroPad",
                    "AddStatesFromEpisodesToBatch", "BatchIndividualItems", "NumpyToTensor")
_RLLIB_TO_ENV = ("GetActions", "TensorToNumpy", "UnBatchToIndividualItems", "RemoveSingleTsTimeRankFromBatch",
                 "UnsquashClipActions", "NormalizeAndClipActions", "ListifyDataForVectorEnv")


class LeanEnvRunner(SeededEnvRunner):
    """SeededEnvRunner that samples timesteps without RLlib's per-step connector pipelines and callbacks.

    RLlib's loop runs two connector pipelines, a metrics timer and three callbacks per env copy at
    every vector step; on reacher they cost more than the simulator (docs/benchmarks.md, "Sampling").
    This loop does the same work once per vector step on arrays: the observation filter on all copies
    (connectors.MeanStdFilter.filtered), the policy, the env's actions unsquashed and clipped
    (connectors.UnsquashClipActions.env_actions). The policy is NumpyPolicy when exploring with a
    module it serves (RLlib's default PPO MLP: its own draws, torch's distribution), else the module's
    forward pass and RLlib's action distribution sampled as its GetActions connector samples it (same
    calls, same torch random stream). Episodes are RLlib's own objects, built by its own calls, so the
    learner, the metrics, checkpoints and the filter's merge see what RLlib's loop gives them
    (tests/job/test_lean_sampler.py compares the two to the bit with the torch policy).
    It serves Box observations with Box or Discrete actions, a module without state and no user
    callbacks; anything else, episode sampling (evaluation) and random actions use RLlib's loop.
    """

    numpy_policy = True  # explore with NumpyPolicy where it serves the module (False: torch, as RLlib does)

    def __init__(self, *, config: Any, **kwargs: Any) -> None:
        from sagemaker_rl.job.numpy_policy import NumpyPolicy

        super().__init__(config=config, **kwargs)
        self.lean_refusal = self._lean_refusal()
        self._numpy_policy = NumpyPolicy.of(self.module, self._seed) \
            if self.lean_refusal is None and self.module is not None and self.numpy_policy else None

    def _lean_refusal(self) -> str | None:
        """Why this runner samples with RLlib's loop, in a few words (None: it samples with the lean loop)."""
        from ray.rllib.callbacks.callbacks import RLlibCallback

        from sagemaker_rl.job.connectors import MeanStdFilter

        if self.env is None:
            return None  # it samples nothing (the driver's runner when remote runners sample)
        if self.module is None:
            return "an env runner without a module"
        observations, actions = self.env.single_observation_space, self.env.single_action_space
        if not isinstance(observations, gym.spaces.Box):
            return f"observations of {observations}"
        if not (isinstance(actions, gym.spaces.Discrete)
                or isinstance(actions, gym.spaces.Box) and np.issubdtype(actions.dtype, np.floating)):
            return f"actions of {actions}"
        if self.module.is_stateful():
            return "a module with state (use_lstm)"
        to_module = [type(connector) for connector in _connectors(self._env_to_module)]
        if to_module and to_module[0] is MeanStdFilter:
            to_module = to_module[1:]
        to_env = _connectors(self._module_to_env)
        if tuple(kind.__name__ for kind in to_module) != _RLLIB_TO_MODULE \
                or tuple(type(connector).__name__ for connector in to_env) != _RLLIB_TO_ENV \
                or any(getattr(connector, "normalize_actions", False) or getattr(connector, "clip_actions", False)
                       for connector in to_env if type(connector).__name__ == "NormalizeAndClipActions"):
            return "connectors of its own"
        if any(type(callback) is not RLlibCallback for callback in self._callbacks) or any(
                getattr(self.config, name) for name in dir(self.config) if name.startswith("callbacks_on_")):
            return "RLlib callbacks"
        return None

    def _sample(self, *, num_timesteps: int | None = None, num_episodes: int | None = None, explore: bool,
                random_actions: bool = False, force_reset: bool = False) -> list[Any]:
        if self.lean_refusal is not None or num_timesteps is None or random_actions:
            return super()._sample(num_timesteps=num_timesteps, num_episodes=num_episodes, explore=explore,
                                   random_actions=random_actions, force_reset=force_reset)
        return self._lean_sample(num_timesteps, explore=explore, force_reset=force_reset)

    def _lean_sample(self, num_timesteps: int, *, explore: bool, force_reset: bool) -> list[Any]:
        """RLlib's `_sample` of `num_timesteps` (the same episodes, chunks and metrics), its per-step work batched."""
        if force_reset or self._needs_initial_reset:
            self._reset_envs_and_episodes(explore)  # RLlib's: the filter sees the first observations
        connectors = self._lean_connectors()
        policy = self._numpy_policy if explore else None
        if policy is not None:
            policy.refresh()
        # RLlib's forward passes switch the module to eval mode and back at every step (a walk over its
        # submodules); a runner's module never trains, so it stays in eval mode here.
        module: Any = self.module
        module.eval()
        steps, done = 0, cast(list[Any], [])
        with torch.no_grad():
            while steps < num_timesteps:
                added = self._lean_step(explore, steps, connectors, policy, done)
                if added is None:  # as RLlib's loop: the envs and their episodes start again
                    steps = 0
                    self._reset_envs_and_episodes(explore)
                else:
                    steps += added
        return self._hand_over(done, steps)

    def _lean_step(self, explore: bool, steps: int, connectors: tuple[Any, Any], policy: Any,
                   done: list[Any]) -> int | None:
        """One step of every env copy, added to its episode; the timesteps added (None: the env step failed)."""
        observation_filter, to_env = connectors
        if policy is not None:
            outputs = policy.outputs(cast(Any, self._cached_to_module)[Columns.OBS].numpy())
        else:
            outputs = self._module_outputs(explore, steps)
        actions = outputs.pop(Columns.ACTIONS)
        results = self._try_env_step(actions if to_env is None else to_env.env_actions(actions))
        if results == ENV_STEP_FAILURE:
            return None
        observations, rewards, terminateds, truncateds, infos = results
        if observation_filter is not None:
            observations = observation_filter.filtered(observations)
        added, episodes = 0, cast(list[Any], self._ongoing_episodes)
        for index, episode in enumerate(episodes):
            if not episode.is_reset:  # its copy was reset by this step (the vector env resets on the next)
                episode.add_env_reset(observation=observations[index], infos=infos[index])
                if observation_filter is not None:
                    episode.observation_space = observation_filter.observation_space
                continue
            added += 1
            extra = {key: value[index] for key, value in outputs.items()}
            extra[WEIGHTS_SEQ_NO] = self._weights_seq_no
            episode.add_env_step(observation=observations[index], action=actions[index], reward=rewards[index],
                                 infos=infos[index], terminated=terminateds[index], truncated=truncateds[index],
                                 extra_model_outputs=extra)
        # RLlib's NumpyToTensor conversion (float64 observations, such as MuJoCo's, become float32).
        self._cached_to_module = cast(Any, {Columns.OBS: convert_to_torch_tensor(observations, device=self._device)})
        for index, episode in enumerate(episodes):
            if episode.is_done:
                done.append(episode.to_numpy() if self.episodes_to_numpy else episode)
                self._new_episode(index, episodes)
        return added

    def _lean_connectors(self) -> tuple[Any, Any]:
        """The job's observation filter and env-actions connector (None: the job has none, or it changes nothing)."""
        from sagemaker_rl.job.connectors import MeanStdFilter, UnsquashClipActions

        observation_filter = next((c for c in _connectors(self._env_to_module) if isinstance(c, MeanStdFilter)), None)
        to_env = next((c for c in _connectors(self._module_to_env) if isinstance(c, UnsquashClipActions)), None)
        return observation_filter, to_env if to_env is not None and to_env.changes_actions() else None

    def _module_outputs(self, explore: bool, steps: int) -> dict[str, Any]:
        """The module's outputs for the cached observations with the actions, as numpy: RLlib's GetActions' sampling."""
        module: Any = self.module
        if explore:  # the global env step RLlib's loop passes (its lifetime count times the runners)
            runners = self.config.num_env_runners or 1
            timestep = (self.num_env_steps_sampled_lifetime // runners + steps) * runners
            outputs = module._forward_exploration(self._cached_to_module, t=timestep)
            distribution_class = module.get_exploration_action_dist_cls()
        else:
            outputs = module._forward_inference(self._cached_to_module)
            distribution_class = module.get_inference_action_dist_cls()
        if Columns.ACTIONS not in outputs:
            distribution = distribution_class.from_logits(outputs[Columns.ACTION_DIST_INPUTS])
            if not explore:
                distribution = distribution.to_deterministic()
            outputs[Columns.ACTIONS] = distribution.sample()
            if Columns.ACTION_LOGP not in outputs:
                outputs[Columns.ACTION_LOGP] = distribution.logp(outputs[Columns.ACTIONS])
        # One tensor per output here (RLlib's convert_to_numpy walks any nesting, at several times the cost).
        return {key: value.cpu().numpy() if isinstance(value, torch.Tensor) else convert_to_numpy(value)
                for key, value in outputs.items()}

    def _hand_over(self, done: list[Any], steps: int) -> list[Any]:
        """RLlib's end of `_sample`: the done episodes and a chunk of each ongoing one, continued in the next call."""
        self._done_episodes_for_metrics.extend(done)
        ongoing = cast(list[Any], self._ongoing_episodes)
        continuations = [episode.cut(len_lookback_buffer=self.config.episode_lookback_horizon) for episode in ongoing]
        chunks = []
        for episode in ongoing:
            if episode.t == 0:  # just started: nothing in it yet
                continue
            episode.validate()
            self._ongoing_episodes_for_metrics[episode.id_].append(episode)
            chunks.append(episode.to_numpy() if self.episodes_to_numpy else episode)
        self._ongoing_episodes = continuations
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=steps)
        self._increase_sampled_metrics(steps, len(done))
        return done + chunks


def _connectors(pipeline: Any) -> list[Any]:
    """The connectors of an env runner's pipeline, in order."""
    return list(pipeline.connectors)
