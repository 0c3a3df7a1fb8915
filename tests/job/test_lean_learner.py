"""The lean learner against RLlib's: the same episodes and numpy state give the same update to the bit.

Two learners are built from one job config, one the lean learner and one RLlib's PPOTorchLearner,
with the same module weights. Each updates from its own copy of the same sampled episodes, from the
same numpy state (RLlib shuffles the batch with numpy's global stream). Their weights, optimizer
state and reported metrics must then be equal, not close: the lean loop computes the same tensors.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pytest
import tree
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator
from ray.tune.registry import register_env

from sagemaker_rl.job import ppo_config
from sagemaker_rl.job.env_runner import SeededEnvRunner
from sagemaker_rl.job.envs import EnvSettings, env_creator, probe
from sagemaker_rl.job.hyperparameters import JobConfig, parse_hyperparameters
from sagemaker_rl.job.lean_learner import LeanPPOLearner, minibatch_rows
from sagemaker_rl.job.learner import MODULE_ID

# Small batches with minibatches that do not divide them: minibatches wrap around passes, as the batch
# the learner connectors make is the env steps plus one step per episode chunk.
SMALL = {"rl.training.config.train_batch_size_per_learner": 600, "rl.training.config.minibatch_size": 128,
         "rl.training.config.num_epochs": 3}
REACHER = {**SMALL, "rl.training.seed": 3, "rl.training.num_envs": 4, "rl.env.max_episode_steps": 50}
CARTPOLE_KL = {**SMALL, "rl.env.id": "CartPole-v1", "rl.training.seed": 5, "rl.training.num_envs": 4,
               "rl.training.config.use_kl_loss": True, "rl.training.config.kl_coeff": 0.3,
               "rl.training.config.entropy_coeff": 0.01}


def reacher_job(**extra: Any) -> JobConfig:
    return parse_hyperparameters({**REACHER, **extra}, "reacher")


def cartpole_job() -> JobConfig:
    return parse_hyperparameters(CARTPOLE_KL, None, probe(EnvSettings("CartPole-v1")))


def learners_and_episodes(job: JobConfig) -> tuple[Any, Any, list[Any], Any]:
    """A lean learner, RLlib's learner with the same weights, a batch of sampled episodes, and the config."""
    config = ppo_config.build_ppo_config(job, cpus=1)
    register_env(ppo_config.env_name(job), env_creator)
    runner = SeededEnvRunner(config=config, worker_index=0)
    try:
        episodes = runner.sample(num_timesteps=config.train_batch_size_per_learner, explore=True)
        spaces = runner.get_spaces()
    finally:
        runner.stop()
    lean = config.build_learner(spaces=spaces)
    rllib = ppo_config.build_ppo_config(dataclasses.replace(job, learner="rllib"), cpus=1).build_learner(spaces=spaces)
    state = lean.get_state()
    for learner in (lean, rllib):  # both from one state: a built learner's lr is a tensor, a restored one's a float
        learner.set_state(state)
    return lean, rllib, episodes, config


def update(learner: Any, episodes: list[Any], config: Any, numpy_seed: int) -> dict[str, Any]:
    """The learner's weights, optimizer state and reported metrics after one PPO update on a copy of `episodes`."""
    np.random.seed(numpy_seed)
    results = learner.update(training_data=TrainingData(episodes=copy.deepcopy(episodes)), timesteps={},
                             num_epochs=config.num_epochs, minibatch_size=config.minibatch_size,
                             shuffle_batch_per_epoch=config.shuffle_batch_per_epoch)
    metrics = tree.map_structure(lambda stats: np.asarray(stats.peek() if hasattr(stats, "peek") else stats), results)
    state = learner.get_state()
    return {"metrics": without_timers(metrics), "module": state["rl_module"], "optimizer": state["optimizer"]}


def without_timers(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics but the wall times, which no two runs share."""
    return {key: without_timers(value) if isinstance(value, dict) else value
            for key, value in metrics.items() if "timer" not in key}


@pytest.mark.parametrize("job", [reacher_job(), cartpole_job()], ids=["reacher-box", "cartpole-discrete-kl"])
def test_an_update_is_rllibs_to_the_bit(job: JobConfig) -> None:
    lean, rllib, episodes, config = learners_and_episodes(job)
    assert isinstance(lean, LeanPPOLearner) and lean.lean_refusal is None
    assert type(rllib) is PPOTorchLearner
    before = copy.deepcopy(lean.get_state()["rl_module"])
    lean_result, rllib_result = update(lean, episodes, config, 11), update(rllib, episodes, config, 11)
    np.testing.assert_equal(lean_result, rllib_result)
    changed = tree.flatten(tree.map_structure(lambda a, b: not np.array_equal(a, b), before, lean_result["module"]))
    assert any(changed)  # the update moved the weights
    metrics = lean_result["metrics"][MODULE_ID]
    assert int(metrics["num_module_steps_trained"]) >= config.num_epochs * config.train_batch_size_per_learner
    # A second update from the learners' new state (the KL coefficient has adapted) stays equal too.
    np.testing.assert_equal(update(lean, episodes, config, 12), update(rllib, episodes, config, 12))


def test_a_step_with_nan_gradients_is_rllibs_which_zeroes_them() -> None:
    lean, rllib, episodes, config = learners_and_episodes(reacher_job())
    episodes[0].rewards.data[:] = np.nan  # the first chunk's advantages, and every minibatch's loss, become NaN
    rllibs_apply_step, calls = lean.apply_gradients, []
    lean.apply_gradients = lambda gradients: calls.append(1) or rllibs_apply_step(gradients)
    lean_result = update(lean, episodes, config, 4)
    assert calls  # RLlib's apply step ran, as the lean step found NaN gradients
    np.testing.assert_equal(lean_result, update(rllib, episodes, config, 4))
    assert np.isnan(lean_result["metrics"][MODULE_ID]["total_loss"])
    assert all(np.isfinite(value).all() for value in tree.flatten(lean_result["module"]))  # zeroed, not applied


def test_a_module_it_does_not_serve_is_updated_by_rllibs_loop_which_says_why() -> None:
    lean, rllib, episodes, config = learners_and_episodes(reacher_job(**{"rl.training.gsde_resample_steps": 4}))
    assert lean.lean_refusal == "a module other than RLlib's default PPO module"
    np.testing.assert_equal(update(lean, episodes, config, 3), update(rllib, episodes, config, 3))


@pytest.mark.parametrize(("count", "size", "epochs"),
                         [(600, 128, 3), (512, 128, 2), (100, 100, 3), (90, 128, 2), (612, 128, 1), (50, None, 3)])
def test_minibatch_rows_are_the_rows_rllibs_cyclic_iterator_gives(count: int, size: int | None, epochs: int) -> None:
    """RLlib's learner iterates with MiniBatchCyclicIterator, over the whole batch when no minibatch size is set."""
    def rllib_rows() -> list[np.ndarray]:
        batch = MultiAgentBatch({MODULE_ID: SampleBatch({"row": np.arange(count)})}, count)
        iterator = MiniBatchCyclicIterator(batch, num_epochs=epochs, minibatch_size=size or count,
                                           shuffle_batch_per_epoch=epochs > 1)
        return [minibatch.policy_batches[MODULE_ID]["row"] for minibatch in iterator]

    np.random.seed(7)
    rllib = rllib_rows()
    after_rllib = np.random.rand()
    np.random.seed(7)
    ours = list(minibatch_rows(count, num_epochs=epochs, minibatch_size=size, shuffle=epochs > 1))
    assert np.random.rand() == after_rllib  # as many draws as RLlib's: later draws are unchanged
    assert len(ours) == len(rllib)
    for rllib_minibatch, our_minibatch in zip(rllib, ours, strict=True):
        np.testing.assert_array_equal(our_minibatch, rllib_minibatch)


def test_one_pass_without_a_minibatch_size_is_the_whole_batch_in_order_without_a_draw() -> None:
    np.random.seed(7)
    after_seed = np.random.rand()
    np.random.seed(7)
    assert [list(rows) for rows in minibatch_rows(5, num_epochs=1, minibatch_size=None, shuffle=True)] == [
        [0, 1, 2, 3, 4]]
    assert np.random.rand() == after_seed

