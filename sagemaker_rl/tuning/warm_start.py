"""Warm start: a new local run begins with the finished trials of earlier runs (SageMaker's two types).

`IdenticalDataAndAlgorithm`: the parents tuned the same problem with the same job, so their results
are comparable with the new run's; their trials inform the sampler and may be the answer (SageMaker's
"overall best" is over the parents' jobs too). `TransferLearning`: the problem or the static
hyperparameters may differ; the parents' trials only inform the sampler. With either, the space may
change: the tuned values that still fit it carry over (`copy_parents`). As in SageMaker,
at most 5 parents, each finished (no tuner holding it) and with the same objective. The SageMaker
backend sends the parents as the request's `WarmStartConfig` instead (`sagemaker/requests.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.job import ENV_KEYS
from sagemaker_rl.tuning.config import TuningConfig, load_run_config
from sagemaker_rl.tuning.record import IDENTICAL, TrialRecord, read, tuned
from sagemaker_rl.tuning.rundir import is_held
from sagemaker_rl.tuning.space import SearchSpace, TuningError

logger = logging.getLogger(__name__)


def load_parents(config: TuningConfig) -> list[tuple[str, list[optuna.trial.FrozenTrial]]]:
    """Each parent run directory of `config.warm_start` with its trials, checked; raises TuningError."""
    parents = []
    for name in config.warm_start:
        run_dir = Path(name).absolute()
        parent = load_run_config(run_dir)  # says so when it is not a run directory
        if is_held(run_dir):
            raise TuningError(
                f"warm start parent {run_dir} is still running: wait for it to end (SageMaker, too, "
                "takes finished parents only)"
            )
        if (parent.objective_metric, parent.objective_type) != (config.objective_metric, config.objective_type):
            raise TuningError(
                f"warm start parent {run_dir} optimised {parent.objective_type} {parent.objective_metric}, "
                f"this run {config.objective_type} {config.objective_metric}: a warm start needs the same objective"
            )
        if config.warm_start_type == IDENTICAL and _target(parent) != _target(config):
            raise TuningError(
                f"warm start parent {run_dir} tuned {parent.label}, this run {config.label} (or another env of "
                "it): IdenticalDataAndAlgorithm needs the same problem; use --warm-start-type TransferLearning"
            )
        try:
            assert parent.storage is not None  # load_run_config fills it in
            study = optuna.load_study(study_name=parent.study_name, storage=parent.storage)
        except Exception as error:  # a moved or deleted study file, an unreachable database
            raise TuningError(f"could not read the study of warm start parent {run_dir}: {error}") from None
        parents.append((str(run_dir), study.get_trials(deepcopy=False)))
    return parents


def copy_parents(
    study: optuna.Study, parents: Sequence[tuple[str, Sequence[FrozenTrial]]], kind: str, space: SearchSpace
) -> int:
    """Copy the parents' finished search trials into a new study; returns how many were copied.

    Each keeps the tuned values that fit `space` (parameters the space no longer has, or values
    outside the new ranges, are dropped); a trial left with none is skipped.
    """
    distributions = space.distributions()
    copied = 0
    for parent, parent_trials in parents:
        for trial in parent_trials:
            record = read(trial)
            if not record.is_search or trial.state != TrialState.COMPLETE or trial.value is None:
                continue
            stored = space.stored_values(tuned(trial))  # the real values, in this space's terms
            params = {name: value for name, value in stored.items() if _fits(distributions[name], value)}
            if not params:
                continue
            copy = TrialRecord(tuned=record.tuned, hyperparameters=record.hyperparameters, seeds=record.seeds,
                               duration_s=record.duration_s, seed_objectives=record.seed_objectives,
                               warm_start={"run": parent, "trial": trial.number, "type": kind})
            study.add_trial(optuna.trial.create_trial(
                state=TrialState.COMPLETE, value=trial.value, params=params,
                distributions={name: distributions[name] for name in params}, user_attrs=copy.attrs()))
            copied += 1
    logger.info("warm start (%s): %d trials copied from %s", kind, copied, [parent for parent, _ in parents])
    return copied


def _fits(distribution: optuna.distributions.BaseDistribution, value: Any) -> bool:
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):  # e.g. a Categorical value the new choices do not have
        return False


def _target(config: TuningConfig) -> tuple[str | None, dict[str, Any]]:
    """What a run trains: its problem and the env its static values name (rl.env.*)."""
    return config.problem, {key: config.space.static.get(key) for key in ENV_KEYS}
