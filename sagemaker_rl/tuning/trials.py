"""Trials: the record a tuning run keeps for each trial in its Optuna study, and what is read from it.

One owner for the trial user attributes (written by the tuner and the SageMaker conversion, read by
the report), the study's default storage, where a trial's jobs run, which trials were run again
(replaced), each trial's status, the counts, the best trial and the progress line. `Trials` is the
one writer: it asks, tells and reruns trials of a study.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.tuning.strategies import make_pruner, make_sampler

if TYPE_CHECKING:
    from sagemaker_rl.tuning.config import TuningConfig
    from sagemaker_rl.tuning.space import SearchSpace

logger = logging.getLogger(__name__)

# Trial user attributes.
ATTR_RUN_DIR = "run_dir"  # the run directory that started the trial (a shared storage holds several)
ATTR_TRIAL_DIR = "trial_dir"  # where its jobs run
ATTR_TUNED = "tuned"  # real values of the tuned hyperparameters
ATTR_HYPERPARAMETERS = "hyperparameters"  # every hyperparameter the job got (static + tuned)
ATTR_FAILURE = "failure"  # why it failed (first 1,024 characters)
ATTR_INTERRUPTED = "interrupted"  # the tuner was stopped while it ran; a rerun replaces it
ATTR_RERUN_OF = "rerun_of"  # the number of the trial this one runs again
ATTR_DURATION = "duration_s"  # wall time of its jobs
ATTR_SEED_OBJECTIVES = "seed_objectives"  # objective of each seed's job (seeds > 1)
ATTR_TRAINING_JOB = "training_job"  # its SageMaker training job (SageMaker backend only)
ATTR_OUTPUTS = "outputs"  # its jobs' base directories on a cluster's storage (model/, checkpoints/; Ray backend)

STUDY_FILE = "study.db"  # the default storage: SQLite in the run directory
TRIALS_DIR = "trials"  # trials/NNNN of the run directory
FAILURE_LIMIT = 1024  # characters of a failure reason kept (SageMaker's limit too)
INTERRUPTED_REASON = "interrupted: the tuner was stopped; it reruns on --resume"

STATUSES = ("complete", "pruned", "failed", "running", "waiting", "interrupted")
_STATE_STATUS = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def default_storage(run_dir: Path) -> str:
    """The study's storage when none is given: SQLite in the run directory."""
    return f"sqlite:///{Path(run_dir) / STUDY_FILE}"


def trial_dir(run_dir: Path, number: int) -> Path:
    """Where trial `number` of a run keeps its jobs."""
    return Path(run_dir) / TRIALS_DIR / f"{number:04d}"


def job_dirs(directory: Path, seeds: int) -> list[Path]:
    """The base directory of each seed's job in a trial directory."""
    return [directory] if seeds == 1 else [directory / f"seed-{index}" for index in range(seeds)]


def replaced(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials a later trial runs again."""
    return {number for trial in trials if (number := trial.user_attrs.get(ATTR_RERUN_OF)) is not None}


def status(trial: FrozenTrial, replaced_trials: set[int]) -> str:
    """complete, pruned, failed, running, waiting, or interrupted (stopped with the tuner, or run again)."""
    if trial.state == TrialState.FAIL and (trial.user_attrs.get(ATTR_INTERRUPTED) or trial.number in replaced_trials):
        return "interrupted"
    return _STATE_STATUS[trial.state]


def counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """How many trials have each status (every status present)."""
    rerun = replaced(trials)
    found = dict.fromkeys(STATUSES, 0)
    for trial in trials:
        found[status(trial, rerun)] += 1
    return found


def counted(trials: Sequence[FrozenTrial]) -> int:
    """Trials that use the budget: all but interrupted ones (their reruns count instead)."""
    return len(trials) - counts(trials)["interrupted"]


def best(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """The complete trial with the best finite objective, or None."""
    complete = [
        trial
        for trial in trials
        if trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)
    ]
    if not complete:
        return None
    pick = max if direction == StudyDirection.MAXIMIZE else min
    return pick(complete, key=lambda trial: trial.value)  # type: ignore[arg-type, return-value]


def tuned(trial: FrozenTrial) -> dict[str, Any]:
    """The real values of a trial's tuned hyperparameters."""
    return dict(trial.user_attrs.get(ATTR_TUNED) or trial.params)


def hyperparameters(trial: FrozenTrial) -> dict[str, Any]:
    """The flat dotted hyperparameters (static + tuned) a trial ran with."""
    return dict(trial.user_attrs.get(ATTR_HYPERPARAMETERS) or tuned(trial))


def progress_line(
    *, done: int, budget: int | str, failed: int, pruned: int, running: int, best: float | None, best_name: str
) -> str:
    """A tuning run in one line: `3/8 done (1 failed, 0 stopped early), 2 running, best 4.5 (trial 2)`."""
    best_text = f"best {best:.4g} ({best_name})" if best is not None else "best -"
    return f"{done}/{budget} done ({failed} failed, {pruned} stopped early), {running} running, {best_text}"


def trials_progress(trials: Sequence[FrozenTrial], direction: StudyDirection, *, budget: int, running: int) -> str:
    """`progress_line` for the trials of a local study."""
    found = counts(trials)
    top = best(trials, direction)
    return progress_line(
        done=found["complete"] + found["pruned"] + found["failed"],
        budget=budget,
        failed=found["failed"],
        pruned=found["pruned"],
        running=running,
        best=top.value if top else None,
        best_name=f"trial {top.number}" if top else "",
    )


class Trials:
    """The trials of one run directory in its study: asks for them, records their outcome, reruns them."""

    def __init__(self, study: optuna.Study, run_dir: Path, *, private: bool) -> None:
        self.study = study
        self.run_dir = run_dir
        self._private = private  # no other run directory uses the storage

    @classmethod
    def open(cls, config: TuningConfig) -> Trials:
        """The study of a resolved config, created or loaded, with the config's sampler and pruner."""
        assert config.run_dir is not None and config.storage is not None
        existing = _count_existing(config.storage, config.study_name)
        # A resumed run must not replay the sampler's first draws: offset its seed by the trials so far.
        seed = None if config.sampler_seed is None else (config.sampler_seed + 7919 * existing) % 2**31
        study = optuna.create_study(
            storage=config.storage,
            study_name=config.study_name,
            load_if_exists=True,
            direction=config.direction,
            sampler=make_sampler(config.strategy, config.space, seed=seed, max_jobs=config.budget),
            pruner=make_pruner(
                config.strategy,
                config.early_stopping,
                min_resource=config.hyperband_min_resource,
                max_resource=config.hyperband_max_resource,
            ),
        )
        return cls(study, config.run_dir, private=config.storage == default_storage(config.run_dir))

    def all(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def can_start(self, budget: int) -> bool:
        """A rerun is waiting, or the budget has room for a new trial."""
        trials = self.all()
        return any(trial.state == TrialState.WAITING for trial in trials) or counted(trials) < budget

    def best(self) -> FrozenTrial | None:
        return best(self.all(), self.study.direction)

    def progress(self, *, budget: int, running: int) -> str:
        return trials_progress(self.all(), self.study.direction, budget=budget, running=running)

    def ask(self, space: SearchSpace) -> tuple[optuna.Trial, Path, dict[str, Any]]:
        """A new trial (or a waiting rerun) sampled from `space`: the trial, its directory, its hyperparameters."""
        trial = self.study.ask()
        values = space.suggest(trial)
        directory = trial_dir(self.run_dir, trial.number)
        flat = space.hyperparameters(values)
        trial.set_user_attr(ATTR_RUN_DIR, str(self.run_dir))
        trial.set_user_attr(ATTR_TRIAL_DIR, str(directory))
        trial.set_user_attr(ATTR_TUNED, values)
        trial.set_user_attr(ATTR_HYPERPARAMETERS, flat)
        logger.info("trial %d started in %s: %s", trial.number, directory, values)
        return trial, directory, flat

    def complete(self, trial: optuna.Trial, value: float, *, duration_s: float, seed_objectives: list[float]) -> None:
        trial.set_user_attr(ATTR_DURATION, duration_s)
        if len(seed_objectives) > 1:
            trial.set_user_attr(ATTR_SEED_OBJECTIVES, seed_objectives)
        self.study.tell(trial, value)

    def prune(self, trial: optuna.Trial, *, duration_s: float) -> None:
        trial.set_user_attr(ATTR_DURATION, duration_s)
        self.study.tell(trial, state=TrialState.PRUNED)

    def fail(self, trial: optuna.Trial, reason: str, *, duration_s: float | None = None) -> None:
        if duration_s is not None:
            trial.set_user_attr(ATTR_DURATION, duration_s)
        trial.set_user_attr(ATTR_FAILURE, reason[:FAILURE_LIMIT])
        self.study.tell(trial, state=TrialState.FAIL)

    def record_outputs(self, trial: optuna.Trial, outputs: list[str]) -> None:
        """Where the trial's jobs left their model and checkpoints, when not in its trial directory."""
        trial.set_user_attr(ATTR_OUTPUTS, outputs)

    def resume(self, trial: FrozenTrial) -> optuna.Trial:
        """A trial an earlier tuner left running, to report to and tell again (its jobs were reattached)."""
        return optuna.Trial(self.study, trial._trial_id)  # Optuna has no public way from a FrozenTrial back

    def interrupt(self, trial: optuna.Trial) -> None:
        """Record a trial stopped with the tuner; `to_rerun` returns it on the next start."""
        trial.set_user_attr(ATTR_INTERRUPTED, True)
        self.fail(trial, INTERRUPTED_REASON)

    def to_rerun(self) -> list[FrozenTrial]:
        """This run directory's trials that were running or interrupted when a tuner stopped, not yet rerun."""
        trials = self.all()
        rerun = replaced(trials)
        mine = str(self.run_dir)
        return [
            trial
            for trial in trials
            if trial.user_attrs.get(ATTR_RUN_DIR, mine if self._private else None) == mine
            and (trial.state == TrialState.RUNNING or trial.user_attrs.get(ATTR_INTERRUPTED))
            and trial.number not in rerun
        ]

    def rerun(self, trial: FrozenTrial) -> None:
        """Fail a trial left running, and queue a new trial with the same parameters in its place."""
        if trial.state == TrialState.RUNNING:
            self.study.tell(trial.number, state=TrialState.FAIL)
        self.study.enqueue_trial(trial.params, user_attrs={ATTR_RERUN_OF: trial.number})


def from_record(
    name: str,
    *,
    state: TrialState,
    value: float | None,
    params: Mapping[str, Any],
    distributions: Mapping[str, Any],
    attrs: Mapping[str, Any],
) -> FrozenTrial:
    """A trial made from a record kept elsewhere, e.g. the SageMaker training job `name`."""
    try:
        return optuna.trial.create_trial(
            state=state, value=value, params=dict(params), user_attrs=dict(attrs),
            distributions={key: distributions[key] for key in params},
        )
    except ValueError as error:  # a value outside its range: keep the trial, without Optuna's params
        logger.warning("%s: tuned values %s do not fit the ranges (%s)", name, dict(params), error)
        return optuna.trial.create_trial(state=state, value=value, user_attrs=dict(attrs))


def _count_existing(storage: str, study_name: str | None) -> int:
    try:
        summaries = optuna.get_all_study_summaries(storage)
    except Exception as error:  # a new or unreachable storage: create_study reports the real problem
        logger.debug("no study summaries in %s: %s", storage, error)
        return 0
    return sum(summary.n_trials for summary in summaries if summary.study_name == study_name)
