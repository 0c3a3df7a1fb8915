"""The env runners' observation filter and action unsquashing, on all vector-env copies at once.

RLlib 2.60's `MeanStdFilter` and `NormalizeAndClipActions` connectors work one copy at a time
(`tree` maps, a Welford push and a deepcopy per copy and step): with 16 copies a runner they took
about a quarter of a reacher runner's sampling time (`make bench`). These do the same arithmetic
on one stacked array. The filter also fixes RLlib's merge across env runners (see push_rows) and
keeps RLlib's class name and state layout (checkpoints, the merge and the ONNX export read it);
the actions connector replaces RLlib's, which the job turns off (`normalize_actions` and
`clip_actions` False in RLlib's config, their values here).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import tree
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.env_to_module import MeanStdFilter as _RLlibMeanStdFilter
from ray.rllib.core.columns import Columns
from ray.rllib.utils.filter import SMALL_NUMBER, RunningStat


def push_rows(stat: RunningStat, rows: np.ndarray) -> None:
    """`stat.push(row)` for every row of `rows` at once, its delta fields kept as the rows' own statistics.

    RLlib's delta fields are what a runner contributes to the merge across runners (`RunningStat.update`
    reads them as the count, mean and sum of squares of the observations since the last merge); its
    own `push` adds the running mean's change to the delta mean instead, so the merged mean drifts to
    0 and the std grows (data of mean 5, std 2 on two runners: mean 1.25, std 3.46 after 5 merges).
    """
    rows = np.asarray(rows, dtype=np.float64)  # as push does: float32 observations, float64 statistics
    if len(rows) == 0:
        return
    count, mean = len(rows), rows.mean(axis=0)
    squares = ((rows - mean) ** 2).sum(axis=0)
    stat.num_pushes, stat.mean_array, stat.sum_sq_diff_array = _merged(
        (stat.num_pushes, stat.mean_array, stat.sum_sq_diff_array), (count, mean, squares))
    stat.num_pushes_delta, stat.mean_delta_array, stat.sum_sq_diff_delta_array = _merged(
        (stat.num_pushes_delta, stat.mean_delta_array, stat.sum_sq_diff_delta_array), (count, mean, squares))


Moments = tuple[int, np.ndarray, np.ndarray]  # count, mean, sum of squared deviations from the mean


def _merged(first: Moments, second: Moments) -> Moments:
    """The moments of two sets of observations together (Chan et al.; RunningStat.update's formula)."""
    (count_a, mean_a, squares_a), (count_b, mean_b, squares_b) = first, second
    total = count_a + count_b
    to_b = mean_b - mean_a
    return total, mean_a + to_b * (count_b / total), squares_a + squares_b + to_b ** 2 * (count_a * count_b / total)


class MeanStdFilter(_RLlibMeanStdFilter):
    """RLlib's observation MeanStdFilter for a Box observation space: one update per vector step, a correct merge.

    The same name and state as RLlib's (the connector pipeline keys its checkpointed state by class
    name). Every copy's observation is normalized with the statistics after the step's update
    (RLlib's, one copy at a time, uses those up to that copy). The delta fields hold the observations
    since the last merge (see push_rows); a state set on the filter (the merged one every iteration,
    a checkpoint's on resume) is already merged, so its delta fields start from zero.
    """

    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], explore: bool | None = None,
                 persistent_data: dict | None = None, **kwargs: Any) -> Any:
        copies = list(self.single_agent_episode_iterator(episodes))
        if not copies:
            return batch
        observations = np.stack([copy.get_observations(indices=-1) for copy in copies])
        normalized = self.filtered(observations)
        for copy, row in zip(copies, normalized, strict=True):
            copy.set_observations(at_indices=-1, new_data=row)
            copy.observation_space = self.observation_space
        return batch

    def filtered(self, observations: np.ndarray) -> np.ndarray:
        """`observations` (a row per env copy) normalized, after the statistics are updated with them (if updating)."""
        if self._filters is None:
            self._init_new_filters()
        assert self._filters is not None
        (observation_filter,) = self._filters.values()  # one agent
        if observation_filter.no_preprocessor:
            raise TypeError(f"MeanStdFilter normalizes a Box observation space, not {self.input_observation_space}")
        stats = observation_filter.running_stats
        if self._update_stats:
            push_rows(stats, observations)
        normalized = observations
        if observation_filter.demean:
            normalized = normalized - stats.mean
        if observation_filter.destd:
            normalized = normalized / (stats.std + SMALL_NUMBER)
        if observation_filter.clip:
            normalized = np.clip(normalized, -observation_filter.clip, observation_filter.clip)
        return normalized.astype(observations.dtype)

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        assert self._filters is not None
        for observation_filter in self._filters.values():
            for stat in tree.flatten(observation_filter.running_stats):
                self._start_deltas(stat)

    @staticmethod
    def _start_deltas(stat: RunningStat) -> None:
        """No observations since the last merge."""
        stat.num_pushes_delta = 0
        stat.mean_delta_array = np.zeros_like(stat.mean_array)
        stat.sum_sq_diff_delta_array = np.zeros_like(stat.sum_sq_diff_array)


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
        self._unsquash: bool | None = None  # decided on the first call: the pipeline sets the space after __init__

    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], explore: bool | None = None,
                 shared_data: dict | None = None, **kwargs: Any) -> Any:
        if not self.changes_actions():
            return batch  # the sampled actions go to the env as they are
        # After UnBatchToIndividualItems: {(episode id,): [action, ...]} for one agent.
        per_copy = batch[Columns.ACTIONS]
        rows = iter(self.env_actions(np.stack([action for items in per_copy.values() for action in items])))
        batch[Columns.ACTIONS_FOR_ENV] = {key: [next(rows) for _ in items] for key, items in per_copy.items()}
        return batch

    def changes_actions(self) -> bool:
        """Whether the env's actions differ from the sampled ones (a Box space, unsquashed or clipped)."""
        return (self.normalize_actions or self.clip_actions) and not isinstance(self.action_space, gym.spaces.Discrete)

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """The env's actions for `actions`, the sampled ones of every copy (one row each)."""
        space = self.action_space
        if self._unsquash is None:
            if not (isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)):
                raise TypeError(f"UnsquashClipActions handles a float Box action space, not {space}")
            bounded = bool(np.all(space.bounded_below) and np.all(space.bounded_above))
            self._unsquash = self.normalize_actions and bounded
        if self._unsquash:
            actions = space.low + (actions + 1.0) * (space.high - space.low) / 2.0
        return np.clip(actions, space.low, space.high)
