"""Values verified live after a restore: what population-based training relies on.

A checkpoint trained with one set of values is restored into a job built with other values, as a
resumed or exploited job does (`checkpoints.restore`). The test then reads what the learner uses on
its first update (the optimizer's learning rate, the loss coefficients, the KL coefficient and
target, the gradient clip, GAE's gamma and lambda, the minibatches and the sampled batch), not what
the config or a metric says. Ray's PBT users hit the opposite (ray-project/ray #62173: a perturbed
lr, clip_param or lambda ignored after a restore).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sagemaker_rl.contract import JobPaths
from sagemaker_rl.errors import UserError
from sagemaker_rl.job import checkpoints, ray_session, training
from sagemaker_rl.job.hyperparameters import LIVE_AFTER_RESTORE, not_live_reason, parse_hyperparameters
from sagemaker_rl.job.keys import PPO_PREFIX
from sagemaker_rl.job.learner import MODULE_ID
from sagemaker_rl.job.ppo_config import build_algorithm, build_ppo_config

pytestmark = pytest.mark.slow

SMALL = {
    "rl.training.config.lr": 1.6e-3,  # a constant (the preset anneals it)
    "rl.training.config.train_batch_size_per_learner": 512,
    "rl.training.config.minibatch_size": 128,
    "rl.training.config.num_epochs": 2,
    "rl.training.config.num_envs_per_env_runner": 2,
    "rl.training.config.use_kl_loss": True,
    "rl.training.config.kl_coeff": 0.3,
    "rl.training.config.kl_target": 1e-9,  # any KL is above it: the coefficient adapts up (x1.5)
    "rl.training.seed": 3,
}
# A different value of every setting PBT may change.
CHANGED = {
    "lr": 7e-3,
    "gamma": 0.9,
    "lambda_": 0.8,
    "clip_param": 0.11,
    "vf_clip_param": 33.0,
    "vf_loss_coeff": 0.25,
    "entropy_coeff": 0.01,
    "kl_coeff": 0.05,
    "kl_target": 0.02,
    "grad_clip": 0.7,
    "num_epochs": 3,
    "minibatch_size": 64,
    "train_batch_size_per_learner": 768,
}


class FirstUpdate:
    """Records what a local learner uses in its updates (wraps the methods RLlib calls on it)."""

    def __init__(self, algo: Any) -> None:
        self.losses: list[dict[str, Any]] = []
        self.grad_clips: list[Any] = []
        self.kl_targets: list[float] = []
        learner = self.learner = algo.learner_group._learner  # num_learners 0: the learner is in this process
        compute_loss, lean_step_loss, postprocess, update_kl = (learner.compute_loss_for_module, learner._loss,
                                                                learner.postprocess_gradients_for_module,
                                                                learner._update_module_kl_coeff)

        def live(module_id: str, config: Any, batch: Any) -> dict[str, Any]:
            return {
                "lr": [group["lr"] for optimizer in learner._named_optimizers.values()
                       for group in optimizer.param_groups],
                "clip_param": config.clip_param,
                "vf_clip_param": config.vf_clip_param,
                "vf_loss_coeff": config.vf_loss_coeff,
                "entropy_coeff": float(learner.entropy_coeff_schedulers_per_module[module_id].get_current_value()),
                "kl_coeff": float(learner.curr_kl_coeffs_per_module[module_id]),
                "minibatch": len(batch["obs"]),
            }

        def loss(*, module_id: str, config: Any, batch: Any, fwd_out: Any) -> Any:
            self.losses.append(live(module_id, config, batch))
            return compute_loss(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)

        def lean_loss(module: Any, batch: Any, config: Any) -> Any:  # the lean learner: all minibatches but the last
            self.losses.append(live(MODULE_ID, config, batch))
            return lean_step_loss(module, batch, config)

        def gradients(*, module_id: str, config: Any = None, module_gradients_dict: Any) -> Any:
            self.grad_clips.append(config.grad_clip)
            return postprocess(module_id=module_id, config=config, module_gradients_dict=module_gradients_dict)

        def kl(*, module_id: str, config: Any, kl_loss: float) -> None:
            self.kl_targets.append(config.kl_target)
            update_kl(module_id=module_id, config=config, kl_loss=kl_loss)

        learner.compute_loss_for_module = loss
        learner._loss = lean_loss
        learner.postprocess_gradients_for_module = gradients
        learner._update_module_kl_coeff = kl

    def advantage_estimation(self) -> Any:
        (gae,) = [piece for piece in self.learner._learner_connector.connectors
                  if type(piece).__name__ == "GeneralAdvantageEstimation"]
        return gae


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, checkpoints.JobState]:
    """A real job's checkpoint after one iteration of the SMALL values."""
    paths = JobPaths(tmp_path_factory.mktemp("job"))
    job = parse_hyperparameters({**SMALL, "rl.training.stop.training_iteration": 1}, "reacher")
    training.train(job, paths, cpus=1)
    (directory,) = paths.checkpoints.glob(f"{checkpoints.CHECKPOINT_PREFIX}*")
    return directory, checkpoints.JobState(**json.loads((directory / checkpoints.JOB_STATE_FILE).read_text()))


def restored(values: dict[str, Any], checkpoint: tuple[Path, checkpoints.JobState]) -> tuple[Any, FirstUpdate, dict]:
    """An algorithm of `values` restored from `checkpoint`, trained one iteration while recorded."""
    directory, state = checkpoint
    job = parse_hyperparameters(values, "reacher")
    ray_session.start_ray(1)
    algo = build_algorithm(build_ppo_config(job, cpus=1), job)
    checkpoints.restore(algo, directory, state, job)
    recorded = FirstUpdate(algo)
    result = algo.train()
    return algo, recorded, result


def test_every_setting_pbt_may_change_is_used_on_the_first_update_after_a_restore(checkpoint):
    assert sorted(PPO_PREFIX + name for name in CHANGED) == sorted(LIVE_AFTER_RESTORE)
    _, state = checkpoint
    assert state.kl_coeff == pytest.approx(0.45) and state.kl_coeff_setting == 0.3  # adapted once, x1.5
    algo, recorded, result = restored({**SMALL, **{PPO_PREFIX + k: v for k, v in CHANGED.items()}}, checkpoint)
    try:
        first = recorded.losses[0]
        assert first["lr"] == [CHANGED["lr"]]  # RLlib's optimizer state alone brings back the saved 1.6e-3
        for name in ("clip_param", "vf_clip_param", "vf_loss_coeff"):
            assert first[name] == CHANGED[name], name
        assert first["entropy_coeff"] == pytest.approx(CHANGED["entropy_coeff"])
        # kl_coeff was changed: the member starts from the new value, not from the adapted 0.45.
        assert first["kl_coeff"] == pytest.approx(CHANGED["kl_coeff"])
        assert recorded.kl_targets[0] == CHANGED["kl_target"]
        assert recorded.grad_clips[0] == CHANGED["grad_clip"]
        gae = recorded.advantage_estimation()
        assert (gae.gamma, gae.lambda_) == (CHANGED["gamma"], CHANGED["lambda_"])
        # The iteration sampled the new batch and cut it into the new minibatches for the new epochs
        # (RLlib's batch holds a few bootstrap steps more than it sampled: at most one minibatch an epoch).
        batch, minibatch, epochs = (CHANGED[name] for name in ("train_batch_size_per_learner", "minibatch_size",
                                                                 "num_epochs"))
        assert result["env_runners"]["num_env_steps_sampled"] == batch
        assert {loss["minibatch"] for loss in recorded.losses} == {minibatch}
        assert epochs * batch // minibatch <= len(recorded.losses) <= epochs * (batch // minibatch + 1)
    finally:
        algo.stop()
        ray_session.stop_ray()


def test_a_resume_with_the_same_kl_coeff_continues_the_adapted_coefficient(checkpoint):
    _, state = checkpoint
    algo, recorded, _ = restored(SMALL, checkpoint)
    try:
        assert recorded.losses[0]["kl_coeff"] == pytest.approx(state.kl_coeff)  # 0.45, not the configured 0.3
        assert recorded.losses[0]["lr"] == [parse_hyperparameters(SMALL, "reacher").ppo["lr"]]
    finally:
        algo.stop()
        ray_session.stop_ray()


@pytest.mark.parametrize("change", [{"rl.training.gsde_resample_steps": 4},
                                    {"rl.training.config.model_config.fcnet_hiddens": [32, 32]}])
def test_a_resume_into_another_network_is_refused_before_rllib_restores_it(checkpoint, change):
    directory, state = checkpoint
    assert state.network["pi.log_std"] == [2]  # the saved policy's shapes, by parameter
    job = parse_hyperparameters({**SMALL, **change}, "reacher")
    ray_session.start_ray(1)
    algo = build_algorithm(build_ppo_config(job, cpus=1), job)
    try:
        # RLlib restores the gSDE change without a word (its first update then fails on a tensor size).
        with pytest.raises(UserError, match=f"the checkpoint in {directory} holds another network than this job "
                                            r"builds \(parameters .* differ\): resume with the"):
            checkpoints.restore(algo, directory, state, job)
    finally:
        algo.stop()
        ray_session.stop_ray()


def test_settings_fixed_once_a_job_started_say_why():
    assert not_live_reason("rl.training.config.num_sgd_iter") is None  # the old name of num_epochs
    assert "weights" in not_live_reason("rl.training.config.model_config.fcnet_hiddens")
    assert "statistics" in not_live_reason("rl.training.config.observation_filter")
    assert "log std" in not_live_reason("rl.training.initial_log_std")
    assert "weights" in not_live_reason("rl.training.gsde_resample_steps")
    assert "lr" in not_live_reason("rl.training.config.use_kl_loss")


# The parts of a checkpoint that make a resume continue: the policy's weights, the optimizer's state, the filter.
RESUMED_FROM = ("learner_group/learner/rl_module/default_policy/module_state.pkl", "learner_group/learner/state.pkl",
                "env_runner/env_to_module_connector/MeanStdFilter/state.pkl")


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray | np.generic):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def test_a_snapshot_saved_an_iteration_later_holds_the_iteration_it_was_taken_at(tmp_path):
    """What a stop that cuts an iteration short saves: the state after the last completed one, as RLlib itself
    saved it then (RLlib's state shares the live tensors' memory, which the next update changes)."""
    import pickle

    job = parse_hyperparameters(SMALL, "reacher")
    ray_session.start_ray(1)
    algo = build_algorithm(build_ppo_config(job, cpus=1), job)
    try:
        algo.train()
        taken = checkpoints.snapshot(algo, checkpoints.JobState(training_iteration=1, timesteps_total=512))
        algo.save_to_path(str(tmp_path / "then"))  # RLlib's own save, at iteration 1
        algo.train()
        algo.save_to_path(str(tmp_path / "now"))
        saved = checkpoints.save_checkpoint(algo, tmp_path / "checkpoints", taken, keep=0)
    finally:
        algo.stop()
    assert saved.name == "checkpoint_000001"
    assert json.loads((saved / checkpoints.JOB_STATE_FILE).read_text())["timesteps_total"] == 512
    roots = {"then": tmp_path / "then", "now": tmp_path / "now", "saved": saved / "algorithm"}
    for part in RESUMED_FROM:
        loaded = {name: pickle.loads((root / part).read_bytes()) for name, root in roots.items()}
        assert _same(loaded["saved"], loaded["then"]), part
        assert not _same(loaded["saved"], loaded["now"]), part  # iteration 2 changed it: the copy kept iteration 1's
