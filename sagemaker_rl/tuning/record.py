"""Trial record: the declared schema of what a study keeps on each trial, with its one reader and writer.

Every user attribute the tuner stores on a trial is a field of `TrialRecord`, under a key that never
changes (studies in SQLite and PostgreSQL written by earlier versions hold them, and trials.csv and
the report read them). `read` turns a trial's attributes into a record; `write` and
`TrialRecord.attrs` are the only ways one is stored; `external_trial` makes a trial from a record
kept elsewhere (a SageMaker training job).

A trial has one `Role`: a search trial (sampled from the space; it uses the budget), a re-evaluation
(a finished search's top configuration or the default, trained again on seeds no trial used), a
warm-start trial (a parent run's result, copied in as the sampler's prior knowledge; never run
here), a PBT segment (one member's job in one generation; it uses the budget like a search trial) or an ASHA
promotion (a paused search trial continued from its checkpoint; the trial it continues used the budget).
Its `Status` follows from Optuna's state and the record: a failed trial that was stopped with the
tuner, or run again, is interrupted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.contract import FAILURE_LINE_LIMIT
from sagemaker_rl.tuning.rundir import job_dirs

logger = logging.getLogger(__name__)

DEFAULT_CANDIDATE = "default"  # the re-evaluated configuration that tunes nothing: the static values alone
IDENTICAL = "IdenticalDataAndAlgorithm"  # SageMaker's warm-start types
TRANSFER = "TransferLearning"
WARM_START_TYPES = (IDENTICAL, TRANSFER)
INTERRUPTED_REASON = "interrupted: the tuner was stopped; it reruns on --resume"


class Role(StrEnum):
    """Why a trial is in the study."""

    SEARCH = "search"
    REEVALUATION = "re-evaluation"
    WARM_START = "warm start"
    SEGMENT = "PBT segment"
    PROMOTION = "promotion"  # ASHA: a paused search trial continued from its checkpoint (asha.py)


class Status(StrEnum):
    """How a trial stands; the values are what trials.csv and the report print."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    RUNNING = "running"
    WAITING = "waiting"
    INTERRUPTED = "interrupted"


_STATE_STATUS = {
    TrialState.COMPLETE: Status.COMPLETE,
    TrialState.PRUNED: Status.PRUNED,
    TrialState.FAIL: Status.FAILED,
    TrialState.RUNNING: Status.RUNNING,
    TrialState.WAITING: Status.WAITING,
}


def _key(stored: str) -> Any:
    return field(default=None, metadata={"key": stored})


@dataclass(frozen=True)
class TrialRecord:
    """A trial's user attributes, typed; each field's metadata names the key it is stored under."""

    run_dir: str | None = _key("run_dir")  # the run directory that started it (a shared storage holds several)
    trial_dir: str | None = _key("trial_dir")  # where its jobs run
    tuned: dict[str, Any] | None = _key("tuned")  # real values of the tuned hyperparameters
    hyperparameters: dict[str, Any] | None = _key("hyperparameters")  # every one its jobs got (static + tuned)
    failure: str | None = _key("failure")  # why it failed (first FAILURE_LINE_LIMIT characters)
    interrupted: bool | None = _key("interrupted")  # the tuner was stopped while it ran; a rerun replaces it
    rerun_of: int | None = _key("rerun_of")  # the number of the trial it runs again
    duration_s: float | None = _key("duration_s")  # wall time of its jobs
    seed_objectives: list[float] | None = _key("seed_objectives")  # objective of each seed's job (seeds > 1)
    training_job: str | None = _key("training_job")  # its SageMaker training job (SageMaker backend only)
    outputs: list[str] | None = _key("outputs")  # its jobs' base directories on a cluster's storage (Ray)
    seeds: list[int] | None = _key("seeds")  # the rl.training.seed of each of its jobs, when the tuner set them
    reevaluation_of: int | str | None = _key("reevaluation_of")  # the trial it trains again, or "default"
    warm_start: dict[str, Any] | None = _key("warm_start_from")  # {"run": parent, "trial": number, "type": ...}
    curve_s: dict[str, float] | None = _key("curve_wall_s")  # seconds from its start to each reported step
    member: int | None = _key("pbt_member")  # a PBT segment: the member it trains
    generation: int | None = _key("pbt_generation")  # 0, 1, ...: it trains to (generation + 1) x the interval
    parent: int | None = _key("pbt_parent")  # the trial whose last checkpoint it starts from (None: fresh)
    exploited: int | None = _key("pbt_exploited_from")  # the member whose checkpoint it took (None: its own)

    def __post_init__(self) -> None:
        if self.failure is not None and len(self.failure) > FAILURE_LINE_LIMIT:
            object.__setattr__(self, "failure", self.failure[:FAILURE_LINE_LIMIT])

    def attrs(self) -> dict[str, Any]:
        """The stored form: each set field under its key (a segment stores its parent and exploit even when None)."""
        found = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is not None or (self.member is not None and item.name in _SEGMENT_FIELDS):
                found[item.metadata["key"]] = value
        return found

    @property
    def role(self) -> Role:
        if self.reevaluation_of is not None:
            return Role.REEVALUATION
        if self.warm_start is not None:
            return Role.WARM_START
        if self.member is not None:
            return Role.SEGMENT
        if self.parent is not None:
            return Role.PROMOTION
        return Role.SEARCH

    @property
    def is_search(self) -> bool:
        """Part of this run's search: a search trial, a PBT segment or an ASHA promotion."""
        return self.role in (Role.SEARCH, Role.SEGMENT, Role.PROMOTION)

    @property
    def uses_budget(self) -> bool:
        """It counts against the run's budget of trials (a promotion continues one that did)."""
        return self.role in (Role.SEARCH, Role.SEGMENT)

    @property
    def replanned(self) -> bool:
        """An interrupted trial of this role is not queued again: its run's plan starts a new one."""
        return self.role in (Role.REEVALUATION, Role.SEGMENT, Role.PROMOTION)

    @property
    def comparable(self) -> bool:
        """Its objective was measured as this run's search trials are: a search trial, or a warm-start
        trial of a parent with identical data and algorithm (SageMaker's overall best is over those)."""
        warm = self.warm_start
        return self.is_search or (self.role is Role.WARM_START and warm is not None and warm.get("type") == IDENTICAL)

    def job_dirs(self, seeds: int) -> list[Path]:
        """The base directories of its jobs (`seeds` per trial unless it recorded its own)."""
        if not self.trial_dir:  # asked, but stopped before its jobs were placed
            return []
        return job_dirs(Path(self.trial_dir), len(self.seeds or ()) or seeds)

    @property
    def files_dir(self) -> Path:
        """Where a one-job trial's job keeps checkpoints/ and model/: its trial directory, or where its runner
        put them (a cluster's storage)."""
        return Path((self.outputs or [str(self.trial_dir)])[0])

    def describe(self) -> str:
        """`search`, `re-evaluation of trial 7` / `... of default`, `warm start (PARENT trial 3)`, a segment's
        `member 1, generation 2, from member 0's checkpoint`, or a promotion's `continues trial 4`."""
        role = self.role
        if role is Role.REEVALUATION:
            key = self.reevaluation_of
            return f"re-evaluation of {key}" if key == DEFAULT_CANDIDATE else f"re-evaluation of trial {key}"
        if role is Role.WARM_START:
            warm = self.warm_start or {}
            return f"warm start ({Path(str(warm.get('run'))).name} trial {warm.get('trial')})"
        if role is Role.SEGMENT:
            exploit = f", from member {self.exploited}'s checkpoint" if self.exploited is not None else ""
            return f"member {self.member}, generation {self.generation}{exploit}"
        if role is Role.PROMOTION:
            return f"continues trial {self.parent}"  # from its checkpoint
        return str(Role.SEARCH)


_SEGMENT_FIELDS = ("parent", "exploited")
_FIELDS = {item.name: item.metadata["key"] for item in dataclasses.fields(TrialRecord)}


def read(trial: FrozenTrial | optuna.Trial) -> TrialRecord:
    """A trial's record (attributes it does not have are None)."""
    attrs = trial.user_attrs
    return TrialRecord(**{name: attrs.get(key) for name, key in _FIELDS.items()})


def write(trial: optuna.Trial, **fields: Any) -> None:
    """Store fields of a live trial's record (each by its TrialRecord name)."""
    for name, value in TrialRecord(**fields).attrs().items():
        trial.set_user_attr(name, value)


def trial_job_dirs(trial: FrozenTrial) -> list[Path]:
    """The base directories of a trial's jobs, wherever its runner put them."""
    record = read(trial)
    return [Path(output) for output in record.outputs or ()] or record.job_dirs(len(record.seeds or ()) or 1)


def tuned(trial: FrozenTrial) -> dict[str, Any]:
    """The real values of a trial's tuned hyperparameters."""
    return dict(read(trial).tuned or trial.params)


def hyperparameters(trial: FrozenTrial) -> dict[str, Any]:
    """The flat dotted hyperparameters (static + tuned) a trial ran with."""
    return dict(read(trial).hyperparameters or tuned(trial))


def replaced(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials a later trial runs again."""
    return {number for trial in trials if (number := read(trial).rerun_of) is not None}


def status(trial: FrozenTrial, replaced_trials: set[int]) -> Status:
    """Its Optuna state, or interrupted: a failed trial stopped with the tuner, or run again."""
    if trial.state == TrialState.FAIL and (read(trial).interrupted or trial.number in replaced_trials):
        return Status.INTERRUPTED
    return _STATE_STATUS[trial.state]


def counts(trials: Sequence[FrozenTrial]) -> dict[Status, int]:
    """How many trials have each status (every status present)."""
    rerun = replaced(trials)
    found = dict.fromkeys(Status, 0)
    for trial in trials:
        found[status(trial, rerun)] += 1
    return found


def counted(trials: Sequence[FrozenTrial]) -> int:
    """Search trials that use the budget: all but interrupted ones (their reruns count instead)."""
    rerun = replaced(trials)
    return sum(1 for trial in trials if read(trial).uses_budget and status(trial, rerun) is not Status.INTERRUPTED)


def external_trial(
    name: str,
    *,
    state: TrialState,
    value: float | None,
    params: Mapping[str, Any],
    distributions: Mapping[str, Any],
    record: TrialRecord,
) -> FrozenTrial:
    """A trial made from a record kept elsewhere, e.g. the SageMaker training job `name`."""
    attrs = record.attrs()
    try:
        return optuna.trial.create_trial(
            state=state, value=value, params=dict(params), user_attrs=attrs,
            distributions={key: distributions[key] for key in params},
        )
    except ValueError as error:  # a value outside its range: keep the trial, without Optuna's params
        logger.warning("%s: tuned values %s do not fit the ranges (%s)", name, dict(params), error)
        return optuna.trial.create_trial(state=state, value=value, user_attrs=attrs)
