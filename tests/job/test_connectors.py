"""The vectorized env-runner connectors against RLlib's own, on the same episodes and batches."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
from ray.rllib.connectors.env_to_module import MeanStdFilter as RLlibMeanStdFilter
from ray.rllib.connectors.module_to_env import NormalizeAndClipActions
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.filter import RunningStat

from sagemaker_rl.job.connectors import MeanStdFilter, UnsquashClipActions, push_rows
from sagemaker_rl.job.hyperparameters import parse_hyperparameters
from sagemaker_rl.job.ppo_config import build_ppo_config

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)


RUNNING_FIELDS = ("num_pushes", "mean_array", "sum_sq_diff_array")
DELTA_FIELDS = ("num_pushes_delta", "mean_delta_array", "sum_sq_diff_delta_array")


def _assert_same_fields(ours: RunningStat, theirs: RunningStat, ours_fields: tuple[str, ...],
                        theirs_fields: tuple[str, ...] | None = None) -> None:
    for mine, other in zip(ours_fields, theirs_fields or ours_fields, strict=True):
        np.testing.assert_allclose(getattr(ours, mine), getattr(theirs, other), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("already", [0, 1, 37])
def test_push_rows_equals_one_push_per_row_and_keeps_the_rows_as_the_delta(already):
    """Running fields as RLlib's push leaves them; delta fields: the statistics of the rows since the last merge."""
    rng = np.random.default_rng(already)
    ours, theirs, since_merge = RunningStat((5,)), RunningStat((5,)), RunningStat((5,))
    for row in rng.normal(3.0, 2.0, (already, 5)):
        ours.push(row)
        theirs.push(row)
    MeanStdFilter._start_deltas(ours)  # as after a merge
    for size in (16, 1, 7):
        rows = rng.normal(-1.0, 0.5, (size, 5))
        push_rows(ours, rows)
        for row in rows:
            theirs.push(row)
            since_merge.push(row)
        _assert_same_fields(ours, theirs, RUNNING_FIELDS)
        _assert_same_fields(ours, since_merge, DELTA_FIELDS, RUNNING_FIELDS)


def _episodes(observations: np.ndarray) -> list[SingleAgentEpisode]:
    return [SingleAgentEpisode(observations=[row], observation_space=OBS_SPACE, len_lookback_buffer=0)
            for row in observations]


def _filter(cls: type = MeanStdFilter) -> RLlibMeanStdFilter:
    connector = cls()
    connector.input_observation_space = OBS_SPACE
    return connector


def _running(connector: RLlibMeanStdFilter) -> RunningStat:
    (observation_filter,) = connector._filters.values()
    return observation_filter.running_stats


def test_mean_std_filter_normalizes_as_rllibs_with_its_state_layout():
    rng = np.random.default_rng(0)
    ours, theirs = _filter(), _filter(RLlibMeanStdFilter)
    for _ in range(5):
        observations = rng.normal(10.0, 4.0, (16, 5)).astype(np.float32)
        ours_episodes, theirs_episodes = _episodes(observations), _episodes(observations)
        ours(rl_module=None, batch={}, episodes=ours_episodes)
        theirs(rl_module=None, batch={}, episodes=theirs_episodes)
    _assert_same_fields(_running(ours), _running(theirs), RUNNING_FIELDS)
    # The state a checkpoint holds: RLlib's keys and layout, under RLlib's class name.
    state, their_state = ours.get_state(), theirs.get_state()
    assert state.keys() == their_state.keys() and state[None].keys() == their_state[None].keys()
    assert state[None]["running_stats"][0].keys() == their_state[None]["running_stats"][0].keys()
    assert type(ours).__name__ == "MeanStdFilter"  # the pipeline keys the checkpointed state by it
    # The normalized observations: with the step's statistics, float32, clipped as RLlib does.
    last = ours_episodes[-1].get_observations(-1)
    running = _running(ours)
    expected = np.clip((observations[-1] - running.mean) / (running.std + 1e-8), -10, 10)
    assert last.dtype == np.float32
    np.testing.assert_allclose(last, expected, rtol=1e-5)
    # RLlib's last copy sees the same statistics (all 16 pushed before it is normalized).
    np.testing.assert_allclose(last, theirs_episodes[-1].get_observations(-1), rtol=1e-5)


def test_statistics_merged_across_runners_are_those_of_every_observation():
    """RLlib's sync each iteration: the driver's filter merges the runners' states, then all get the result."""
    rng = np.random.default_rng(3)
    driver, runners = _filter(), [_filter(), _filter()]
    seen = []
    for _ in range(5):
        for runner in runners:
            for _ in range(10):  # vector steps of 16 copies, mean 5 and std 2 per dimension
                observations = rng.normal(5.0, 2.0, (16, 5)).astype(np.float32)
                seen.append(observations)
                runner(rl_module=None, batch={}, episodes=_episodes(observations))
        merged = driver.merge_states([runner.get_state() for runner in runners])
        for connector in (driver, *runners):
            connector.set_state(merged)
        every = np.concatenate(seen).astype(np.float64)
        for connector in (driver, *runners):
            running = _running(connector)
            assert running.num_pushes == len(every) and running.num_pushes_delta == 0
            np.testing.assert_allclose(running.mean, every.mean(axis=0), rtol=1e-9)
            np.testing.assert_allclose(running.std, every.std(axis=0, ddof=1), rtol=1e-6)


def test_mean_std_filter_without_update_leaves_the_statistics():
    ours = _filter()
    ours(rl_module=None, batch={}, episodes=_episodes(np.arange(20, dtype=np.float32).reshape(4, 5)))
    frozen = MeanStdFilter(update_stats=False)
    frozen.input_observation_space = OBS_SPACE
    frozen.set_state(ours.get_state())
    episodes = _episodes(np.full((3, 5), 12.5, np.float32))
    frozen(rl_module=None, batch={}, episodes=episodes)
    running = next(iter(frozen._filters.values())).running_stats
    assert running.num_pushes == 4
    np.testing.assert_allclose(running.mean, np.arange(7.5, 12.5))
    np.testing.assert_allclose(episodes[0].get_observations(-1), (12.5 - running.mean) / running.std, rtol=1e-6)


@pytest.mark.parametrize("normalize, clip", [(True, False), (False, True), (True, True), (False, False)])
@pytest.mark.parametrize("space", [gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
                                   gym.spaces.Box(np.array([-0.4, 0.0, -2.0], np.float32),
                                                  np.array([0.4, 1.0, 2.0], np.float32))])
def test_actions_for_the_env_equal_rllibs(normalize, clip, space):
    rng = np.random.default_rng(1)
    sampled = {(f"episode-{i}",): [rng.normal(0.0, 1.5, 3).astype(np.float32)] for i in range(16)}
    batch = {Columns.ACTIONS: sampled}
    theirs = NormalizeAndClipActions(OBS_SPACE, space, normalize_actions=normalize, clip_actions=clip)
    expected = theirs(rl_module=None, batch=copy.deepcopy(batch), episodes=[])
    ours = UnsquashClipActions(OBS_SPACE, space, normalize_actions=normalize, clip_actions=clip)
    result = ours(rl_module=None, batch=copy.deepcopy(batch), episodes=[])
    assert result.keys() == expected.keys()
    for key in sampled:
        np.testing.assert_array_equal(result[Columns.ACTIONS][key], sampled[key])  # the learner's, untouched
        if Columns.ACTIONS_FOR_ENV in expected:
            np.testing.assert_allclose(result[Columns.ACTIONS_FOR_ENV][key], expected[Columns.ACTIONS_FOR_ENV][key],
                                       rtol=1e-6)


def test_the_job_passes_rllibs_action_settings_to_the_connector():
    job = parse_hyperparameters({"rl.training.config.normalize_actions": False,
                                 "rl.training.config.clip_actions": True}, "reacher")
    config = build_ppo_config(job, cpus=1)
    connector = config._module_to_env_connector(None, None)
    assert isinstance(connector, UnsquashClipActions)
    assert (connector.normalize_actions, connector.clip_actions) == (False, True)
    assert (config.normalize_actions, config.clip_actions) == (False, False)  # RLlib's own does nothing
    default = build_ppo_config(parse_hyperparameters({}, "reacher"), cpus=1)._module_to_env_connector(None, None)
    assert (default.normalize_actions, default.clip_actions) == (True, False)
