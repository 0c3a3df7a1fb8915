"""The env runners' observation filter and action unsquashing, on all vector-env copies at once.

RLlib 2.60's `MeanStdFilter` and `NormalizeAndClipActions` connectors work one copy at a time
(`tree` maps, a Welford push and a deepcopy per copy and step): with 16 copies a runner they took
about a quarter of a reacher runner's sampling time (`make bench`). These do the same arithmetic
on one stacked array. The filter keeps RLlib's class, name and state (checkpoints, the merge across
runners and the ONNX export read it unchanged); the actions connector replaces RLlib's, which the
job turns off (`normalize_actions` and `clip_actions` False in RLlib's config, their values here).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.env_to_module import MeanStdFilter as _RLlibMeanStdFilter
from ray.rllib.core.columns import Columns
from ray.rllib.utils.filter import SMALL_NUMBER, RunningStat


def push_rows(stat: RunningStat, rows: np.ndarray) -> None:
    """`stat.push(row)` for every row of `rows`, in one step (Chan et al.'s merge of a batch's mean and squares).

    RLlib's delta fields (what a runner sends to the merge across runners) grow by what the
    running fields grow by, as they do over sequential pushes.
    """
    rows = np.asarray(rows, dtype=np.float64)  # as push does: float32 observations, float64 statistics
    count, before = len(rows), stat.num_pushes
    if count == 0:
        return
    total = before + count
    batch_mean = rows.mean(axis=0)
    to_batch = batch_mean - stat.mean_array
    mean_step = to_batch * (count / total)
    squares_step = ((rows - batch_mean) ** 2).sum(axis=0) + to_batch ** 2 * (before * count / total)
    stat.mean_array += mean_step
    stat.mean_delta_array += mean_step
    stat.sum_sq_diff_array += squares_step
    stat.sum_sq_diff_delta_array += squares_step
    stat.num_pushes = total
    stat.num_pushes_delta += count


class MeanStdFilter(_RLlibMeanStdFilter):
    """RLlib's observation MeanStdFilter for a Box observation space, one update per vector step.

    The same name as RLlib's: the connector pipeline keys its state by class name. Every copy's
    observation is normalized with the statistics after the step's update (RLlib's, one copy at a
    time, uses the statistics up to that copy: the two differ by that step's share of the counts).
    """

    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], explore: bool | None = None,
                 persistent_data: dict | None = None, **kwargs: Any) -> Any:
        if self._filters is None:
            self._init_new_filters()
        assert self._filters is not None
        (observation_filter,) = self._filters.values()  # one agent
        if observation_filter.no_preprocessor:  # a nested space: RLlib's own path
            return super().__call__(rl_module=rl_module, batch=batch, episodes=episodes, explore=explore,
                                    persistent_data=persistent_data, **kwargs)
        copies = list(self.single_agent_episode_iterator(episodes))
        if not copies:
            return batch
        observations = np.stack([copy.get_observations(indices=-1) for copy in copies])
        stats = observation_filter.running_stats
        if self._update_stats:
            push_rows(stats, observations)
            push_rows(observation_filter.buffer, observations)
        normalized = observations
        if observation_filter.demean:
            normalized = normalized - stats.mean
        if observation_filter.destd:
            normalized = normalized / (stats.std + SMALL_NUMBER)
        if observation_filter.clip:
            normalized = np.clip(normalized, -observation_filter.clip, observation_filter.clip)
        normalized = normalized.astype(observations.dtype)
        for copy, row in zip(copies, normalized, strict=True):
            copy.set_observations(at_indices=-1, new_data=row)
            copy.observation_space = self.observation_space
        return batch


class UnsquashClipActions(ConnectorV2):
    """RLlib's NormalizeAndClipActions for a Box action space: the env's actions, from the sampled ones.

    `normalize_actions`: the policy acts in [-1, 1], unsquashed to the space's bounds and clipped
    to them; `clip_actions` alone: clipped to the bounds. The sampled actions stay as they are
    (the learner trains on them).
    """

    def __init__(self, input_observation_space: gym.Space | None = None,
                 input_action_space: gym.Space | None = None, *, normalize_actions: bool, clip_actions: bool,
                 **kwargs: Any) -> None:
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.normalize_actions, self.clip_actions = normalize_actions, clip_actions

    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], explore: bool | None = None,
                 shared_data: dict | None = None, **kwargs: Any) -> Any:
        space = self.action_space
        if not (self.normalize_actions or self.clip_actions):
            return batch
        if not (isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)):
            raise TypeError(f"UnsquashClipActions handles a float Box action space, not {space}")
        # After UnBatchToIndividualItems: {(episode id,): [action, ...]} for one agent.
        per_copy = batch[Columns.ACTIONS]
        actions = np.stack([action for items in per_copy.values() for action in items])
        bounded = np.all(space.bounded_below) and np.all(space.bounded_above)
        if self.normalize_actions and bounded:
            actions = space.low + (actions + 1.0) * (space.high - space.low) / 2.0
        actions = np.clip(actions, space.low, space.high)
        rows = iter(actions)
        batch[Columns.ACTIONS_FOR_ENV] = {key: [next(rows) for _ in items] for key, items in per_copy.items()}
        return batch
