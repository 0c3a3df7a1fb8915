"""The lean sampler against RLlib's own loop: the same seeds give the same episodes, filter and metrics.

Both runners are built from one job config and sample with the same seeds, so every random draw
(the env copies' seeds, the torch stream the actions are sampled from) is the same: the episodes
must agree to the bit, on a Box env with the observation filter and unsquashed actions (reacher)
and on a Discrete one whose episodes end at every length (CartPole). Where the lean loop explores
with NumpyPolicy (its own draws; tests/job/test_numpy_policy.py), these tests sample with the torch
module as RLlib does, so the loop's own work is compared to the bit.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from ray.rllib.core import COMPONENT_ENV_TO_MODULE_CONNECTOR
from ray.rllib.core.columns import Columns
from ray.tune.registry import register_env

from sagemaker_rl.job import ppo_config, ray_session, training
from sagemaker_rl.job.env_runner import LeanEnvRunner, SeededEnvRunner
from sagemaker_rl.job.envs import EnvSettings, env_creator, probe
from sagemaker_rl.job.hyperparameters import JobConfig, parse_hyperparameters


class TorchPolicyLeanEnvRunner(LeanEnvRunner):
    """The lean loop sampling with the torch module and RLlib's distribution (modules NumpyPolicy does not serve)."""

    numpy_policy = False


REACHER = {"rl.training.seed": 3, "rl.training.num_envs": 8, "rl.env.max_episode_steps": 40}
CARTPOLE = {"rl.env.id": "CartPole-v1", "rl.training.seed": 5, "rl.training.num_envs": 6}


def reacher_job(**extra: Any) -> JobConfig:
    return parse_hyperparameters({**REACHER, **extra}, "reacher")


def cartpole_job() -> JobConfig:
    return parse_hyperparameters(CARTPOLE, None, probe(EnvSettings("CartPole-v1")))


def sampled(runner_cls: type, job: JobConfig, *, calls: int = 3, steps: int = 200, explore: bool = True,
            config_change: Any = None) -> dict[str, Any]:
    """What env runner 1 of `job` (its class `runner_cls`) returns from `calls` samples, then its metrics and filter."""
    config = ppo_config.build_ppo_config(job, cpus=3)  # remote runners: runner 1 samples its share of the copies
    if config_change is not None:
        config_change(config)
    register_env(ppo_config.env_name(job), env_creator)
    runner = runner_cls(config=config, worker_index=1)
    try:
        samples = [runner.sample(num_timesteps=steps, explore=explore) for _ in range(calls)]
        return {"samples": samples, "metrics": runner.get_metrics(),
                "filter": runner.get_state().get(COMPONENT_ENV_TO_MODULE_CONNECTOR),
                "refusal": getattr(runner, "lean_refusal", None)}
    finally:
        runner.stop()


def described(episode: Any) -> dict[str, Any]:
    """Everything an episode chunk holds that the learner and the metrics read (not its random id)."""
    return {
        "t_started": episode.t_started, "length": len(episode), "terminated": episode.is_terminated,
        "truncated": episode.is_truncated, "observations": episode.get_observations(),
        "actions": episode.get_actions(), "rewards": episode.get_rewards(),
        "logp": episode.get_extra_model_outputs(Columns.ACTION_LOGP),
        "dist_inputs": episode.get_extra_model_outputs(Columns.ACTION_DIST_INPUTS),
        "infos": len(episode.get_infos()), "lookback": len(episode.observations.data) - len(episode) - 1,
        "observation_space": episode.observation_space,
    }


def assert_same_sampling(rllib: dict[str, Any], lean: dict[str, Any]) -> None:
    assert [len(sample) for sample in lean["samples"]] == [len(sample) for sample in rllib["samples"]]
    for rllib_sample, lean_sample in zip(rllib["samples"], lean["samples"], strict=True):
        for rllib_episode, lean_episode in zip(rllib_sample, lean_sample, strict=True):
            np.testing.assert_equal(described(lean_episode), described(rllib_episode))
    np.testing.assert_equal(lean["filter"], rllib["filter"])
    for key in ("episode_return_mean", "episode_len_mean", "num_episodes_lifetime", "num_env_steps_sampled_lifetime"):
        assert lean["metrics"][key] == rllib["metrics"][key], key


@pytest.mark.parametrize("simulator", ["roboschool", "mujoco"])  # float32 and float64 observations
def test_reacher_episodes_filter_and_metrics_are_rllibs_to_the_bit(simulator: str) -> None:
    job = reacher_job(**{"rl.env.simulator": simulator})
    lean, rllib = sampled(TorchPolicyLeanEnvRunner, job), sampled(SeededEnvRunner, job)
    assert lean["refusal"] is None
    assert sum(episode.is_done for sample in lean["samples"] for episode in sample) >= 8  # resets were crossed
    assert any(episode.t_started > 0 for episode in lean["samples"][1])  # episodes continued from a chunk
    assert lean["filter"]  # the observation filter ran and its statistics are compared
    assert_same_sampling(rllib, lean)


def test_cartpoles_discrete_episodes_of_every_length_are_rllibs_to_the_bit() -> None:
    job = cartpole_job()
    lean, rllib = sampled(TorchPolicyLeanEnvRunner, job), sampled(SeededEnvRunner, job)
    lengths = {len(episode) for sample in lean["samples"] for episode in sample if episode.is_done}
    assert len(lengths) > 3
    assert lean["samples"][0][0].get_actions().dtype.kind == "i"
    assert_same_sampling(rllib, lean)


def test_the_deterministic_policy_samples_as_rllibs() -> None:
    job = reacher_job()
    lean = sampled(LeanEnvRunner, job, calls=2, explore=False)
    assert_same_sampling(sampled(SeededEnvRunner, job, calls=2, explore=False), lean)
    first = lean["samples"][0][0]
    np.testing.assert_array_equal(first.get_actions(), first.get_extra_model_outputs(Columns.ACTION_DIST_INPUTS)
                                  [:, :first.get_actions().shape[1]])  # the mean, no noise


def test_gsde_samples_as_rllibs() -> None:
    job = reacher_job(**{"rl.training.gsde_resample_steps": 4})
    assert_same_sampling(sampled(SeededEnvRunner, job, calls=2), sampled(LeanEnvRunner, job, calls=2))


def _with_callback(config: Any) -> None:
    config.callbacks(on_episode_start=lambda **kwargs: None)


def test_a_runner_the_lean_sampler_does_not_serve_samples_with_rllibs_loop_and_says_why() -> None:
    job = reacher_job()
    lean = sampled(LeanEnvRunner, job, calls=2, config_change=_with_callback)
    assert lean["refusal"] == "RLlib callbacks"
    assert_same_sampling(sampled(SeededEnvRunner, job, calls=2, config_change=_with_callback), lean)


@pytest.mark.slow
def test_the_job_says_when_its_runners_or_its_learner_run_rllibs_loop(caplog: pytest.LogCaptureFixture) -> None:
    job = reacher_job(**{"rl.training.gsde_resample_steps": 4})  # gSDE's module: the lean learner does not serve it
    config = ppo_config.build_ppo_config(job, cpus=1)
    _with_callback(config)
    ray_session.start_ray(1)
    algo = ppo_config.build_algorithm(config, job)
    try:
        with caplog.at_level(logging.WARNING):
            training._say_lean_refusals(algo)
    finally:
        algo.stop()
        ray_session.stop_ray()
    assert "notice: sampling with RLlib's loop: the lean sampler (rl.training.sampler) does not serve RLlib " \
           "callbacks" in caplog.text
    assert "notice: updating with RLlib's loop: the lean learner (rl.training.learner) does not serve a module other " \
           "than RLlib's default PPO module" in caplog.text
