"""Warm start: a new local run begins with the finished trials of earlier runs (SageMaker's two types).

`IdenticalDataAndAlgorithm`: the parents tuned the same problem with the same job, so their results
are comparable with the new run's; their trials inform the sampler and may be the answer (SageMaker's
"overall best" is over the parents' jobs too). `TransferLearning`: the problem or the static
hyperparameters may differ; the parents' trials only inform the sampler. With either, the space may
change: the tuned values that still fit it carry over (`trials.Trials.warm_start`). As in SageMaker,
at most 5 parents, each finished (no tuner holding it) and with the same objective. The SageMaker
backend sends the parents as the request's `WarmStartConfig` instead (`sagemaker/requests.py`).
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from sagemaker_rl.tuning.rundir import LOCK_FILE, load_run_config
from sagemaker_rl.tuning.space import TuningError
from sagemaker_rl.tuning.trials import IDENTICAL

if TYPE_CHECKING:
    from sagemaker_rl.tuning.config import TuningConfig


def load_parents(config: TuningConfig) -> list[tuple[str, list[optuna.trial.FrozenTrial]]]:
    """Each parent run directory of `config.warm_start` with its trials, checked; raises TuningError."""
    parents = []
    for name in config.warm_start:
        run_dir = Path(name).absolute()
        parent = load_run_config(run_dir)  # says so when it is not a run directory
        _check_finished(run_dir)
        if (parent.objective_metric, parent.objective_type) != (config.objective_metric, config.objective_type):
            raise TuningError(
                f"warm start parent {run_dir} optimised {parent.objective_type} {parent.objective_metric}, "
                f"this run {config.objective_type} {config.objective_metric}: a warm start needs the same objective"
            )
        if config.warm_start_type == IDENTICAL and parent.problem != config.problem:
            raise TuningError(
                f"warm start parent {run_dir} tuned {parent.problem}, this run {config.problem}: "
                "IdenticalDataAndAlgorithm needs the same problem; use --warm-start-type TransferLearning"
            )
        try:
            assert parent.storage is not None  # load_run_config fills it in
            study = optuna.load_study(study_name=parent.study_name, storage=parent.storage)
        except Exception as error:  # a moved or deleted study file, an unreachable database
            raise TuningError(f"could not read the study of warm start parent {run_dir}: {error}") from None
        parents.append((str(run_dir), study.get_trials(deepcopy=False)))
    return parents


def _check_finished(run_dir: Path) -> None:
    lock = run_dir / LOCK_FILE
    if not lock.exists():
        return
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TuningError(
                f"warm start parent {run_dir} is still running: wait for it to end (SageMaker, too, "
                "takes finished parents only)"
            ) from None
        fcntl.flock(handle, fcntl.LOCK_UN)
