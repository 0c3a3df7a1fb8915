"""The learner's live state in a built algorithm: read and set on each learner of its learner group.

RLlib 2.60 has no public call for these (the policy's parameter shapes, the adaptive KL coefficient,
the optimizer's learning rate, the free log std), so this module is the one place that reaches into
its learners for them.
"""

from __future__ import annotations

from typing import Any

MODULE_ID = "default_policy"  # RLlib's id of the one policy module a job trains
LOG_STD_PARAMETER = "pi.log_std"  # the free log std of RLlib's default PPO module


def network(algo: Any) -> dict[str, list[int]]:
    """The shape of every parameter of the learner's policy module, by name."""
    def shapes(learner: Any) -> dict[str, list[int]]:
        return {name: list(value.shape) for name, value in learner.module[MODULE_ID].named_parameters()}

    return next(iter(algo.learner_group.foreach_learner(shapes))).get()


def live_kl_coeff(algo: Any) -> float:
    """The KL coefficient the learner's next update uses (the reported one is the last update's)."""
    def read(learner: Any) -> float:
        return float(learner.curr_kl_coeffs_per_module[MODULE_ID])

    return next(iter(algo.learner_group.foreach_learner(read))).get()


def make_values_live(algo: Any, *, timestep: int, kl_coeff: float | None) -> None:
    """Set each optimizer's learning rate from the config's schedule at `timestep`, and the KL coefficient.

    A restore puts back the learning rate the optimizer was saved with, and RLlib re-applies the
    config's only after the next update. `kl_coeff` None leaves the coefficient as the config set it.
    """
    def make_live(learner: Any) -> None:
        for optimizer, schedule in learner._optimizer_lr_schedules.items():
            learner._set_optimizer_lr(optimizer, lr=schedule.update(timestep=timestep))
        if kl_coeff is not None:
            learner.curr_kl_coeffs_per_module[MODULE_ID].data.fill_(kl_coeff)

    algo.learner_group.foreach_learner(make_live)


def set_initial_log_std(algo: Any, log_std: float, *, gsde: bool) -> None:
    """Start the policy's free log std at `log_std` (RLlib starts it at 0: a std of 1 on [-1, 1]).

    With gSDE it is the log std of every entry of the noise matrices (SB3's `log_std_init`).
    """
    from sagemaker_rl.job import gsde as gsde_module

    name = gsde_module.LOG_STD_PARAMETER if gsde else LOG_STD_PARAMETER

    def set_log_std(learner: Any) -> None:
        parameters = dict(learner.module[MODULE_ID].named_parameters())
        assert name in parameters, "the parser allows initial_log_std with free_log_std or gSDE only"
        parameters[name].data.fill_(log_std)

    algo.learner_group.foreach_learner(set_log_std)
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)
