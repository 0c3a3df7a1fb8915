"""Trials: the one writer of a run's Optuna study — asks for trials, records their outcome, reruns them.

`Trials` opens the study (SQLite in the run directory, or a shared SQLAlchemy storage whose tuners
keep heartbeats), asks for search trials and re-evaluations, tells their outcome and marks trials
stopped with the tuner for a rerun. What it stores on a trial is `record.py`'s schema; what the
trials say about the run (best, answer, progress) is `ranking.py`'s. A private storage is read again
only after this tuner wrote to it.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.errors import shorten
from sagemaker_rl.tuning import ranking
from sagemaker_rl.tuning.record import INTERRUPTED_REASON, TrialRecord, read, replaced, write
from sagemaker_rl.tuning.rundir import default_storage, trial_dir
from sagemaker_rl.tuning.space import TuningError
from sagemaker_rl.tuning.strategies import make_pruner, make_sampler

if TYPE_CHECKING:
    from sagemaker_rl.tuning.config import TuningConfig
    from sagemaker_rl.tuning.ranking import Candidate
    from sagemaker_rl.tuning.space import SearchSpace

logger = logging.getLogger(__name__)

# A shared storage's tuners record a heartbeat for each running trial; a trial whose tuner died
# (kill -9, a lost machine) is failed by another tuner after the grace period and run again.
HEARTBEAT_INTERVAL_S = 5
HEARTBEAT_GRACE_S = 20
# A trial whose job Ray lost this many times in a row fails instead of running again: its job may be what
# ends its node (memory), and a run must not retry it for ever.
LOSSES_IN_A_ROW = 3


class Trials:
    """The trials of one run directory in its study: asks for them, records their outcome, reruns them."""

    def __init__(self, study: optuna.Study, run_dir: Path, *, private: bool) -> None:
        self.study = study
        self.run_dir = run_dir
        self._private = private  # no other run directory uses the storage
        self.running: set[int] = set()  # trial ids this tuner has asked for and not told yet
        self._cache: list[FrozenTrial] | None = None  # the study's trials as last read (private storage only)

    @classmethod
    def open(cls, config: TuningConfig) -> Trials:
        """The study of a resolved config, created or loaded, with the config's sampler and pruner."""
        assert config.run_dir is not None and config.storage is not None
        private = config.storage == default_storage(config.run_dir)
        trials = cls(_create_study(config, private=private), config.run_dir, private=private)
        if not private:  # other tuners may share it: heartbeats tell them which trials are still alive
            threading.Thread(target=_heartbeat, args=(weakref.ref(trials),), daemon=True, name="heartbeat").start()
        return trials

    def _beat(self, trial_id: int) -> None:
        # Optuna's heartbeat API lives on the storage (an RDBStorage behind Optuna's cache)
        storage = self.study._storage
        if getattr(storage, "get_heartbeat_interval", lambda: None)():
            storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]

    def all(self) -> list[FrozenTrial]:
        """The study's trials; a private storage is read again only after a write (no other tuner writes it)."""
        if self._cache is None or not self._private:
            self._cache = self.study.get_trials(deepcopy=False)
        return self._cache

    def changed(self) -> None:
        """The study was written past this object (a trial's report, a warm start): read it again."""
        self._cache = None

    def best(self) -> FrozenTrial | None:
        return ranking.best(self.all(), self.study.direction)

    def answer(self) -> FrozenTrial | None:
        return ranking.answer(self.all(), self.study.direction)

    def progress(self, *, budget: int, running: int) -> str:
        return ranking.trials_progress(self.all(), self.study.direction, budget=budget, running=running)

    def ask(
        self,
        space: SearchSpace,
        *,
        planned: Mapping[str, Any] | None = None,
        record: TrialRecord | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[optuna.Trial, Path, dict[str, Any]]:
        """A new trial (or a waiting rerun) sampled from `space`: the trial, its directory, its hyperparameters.

        `planned` real values are taken instead of sampled (a PBT segment's), with its `record`;
        `extra` hyperparameters are added to its job's.
        """
        if planned is not None:
            self.study.enqueue_trial(space.stored_values(planned), user_attrs=(record or TrialRecord()).attrs())
        with warnings.catch_warnings():  # Optuna expects heartbeats with optimize(); ours are _heartbeat's
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = self.study.ask()
        self.running.add(trial._trial_id)
        self._beat(trial._trial_id)  # at once: a tuner killed before the first beat still has its trial rerun
        values = space.suggest(trial)
        directory = trial_dir(self.run_dir, trial.number)
        flat = {**space.hyperparameters(values), **(extra or {})}
        write(trial, run_dir=str(self.run_dir), trial_dir=str(directory), tuned=values, hyperparameters=flat)
        self.changed()
        logger.info("trial %d started in %s: %s", trial.number, directory, values)
        return trial, directory, flat

    def ask_reevaluation(self, candidate: Candidate, seeds: list[int]) -> tuple[optuna.Trial, Path]:
        """A new trial that trains `candidate` again, one job per seed; the trial and its directory."""
        # Asked past the strategy's sampler: nothing is sampled (Grid would count it as a grid point),
        # and with no parameters the sampler learns nothing from it.
        strategy, self.study.sampler = self.study.sampler, optuna.samplers.RandomSampler()
        try:
            trial = self.study.ask()
        finally:
            self.study.sampler = strategy
        directory = trial_dir(self.run_dir, trial.number)
        write(trial, run_dir=str(self.run_dir), trial_dir=str(directory), reevaluation_of=candidate.key,
              tuned=candidate.tuned, hyperparameters=candidate.hyperparameters, seeds=seeds)
        self.changed()
        logger.info("trial %d re-evaluates %s on seeds %s in %s", trial.number, candidate.key, seeds, directory)
        return trial, directory

    def record_seeds(self, trial: optuna.Trial, seeds: list[int]) -> None:
        """The rl.training.seed of each of a trial's jobs."""
        write(trial, seeds=seeds)
        self.changed()

    def record_outputs(self, trial: optuna.Trial, outputs: list[str]) -> None:
        """Where the trial's jobs left their model and checkpoints, when not in its trial directory."""
        write(trial, outputs=outputs)
        self.changed()

    def complete(
        self,
        trial: optuna.Trial,
        value: float,
        *,
        duration_s: float,
        seed_objectives: list[float],
        curve_s: Mapping[int, float] | None = None,
    ) -> None:
        self._record_run(trial, duration_s, curve_s, seed_objectives=seed_objectives if len(seed_objectives) > 1
                         else None)
        self._tell(trial, value)

    def prune(self, trial: optuna.Trial, *, duration_s: float, curve_s: Mapping[int, float] | None = None) -> None:
        self._record_run(trial, duration_s, curve_s)
        self._tell(trial, state=TrialState.PRUNED)

    def fail(self, trial: optuna.Trial, reason: str, *, duration_s: float | None = None) -> None:
        write(trial, duration_s=duration_s, failure=reason)
        self._tell(trial, state=TrialState.FAIL)

    def _record_run(
        self, trial: optuna.Trial, duration_s: float, curve_s: Mapping[int, float] | None, **fields: Any
    ) -> None:
        curve = {str(step): seconds for step, seconds in curve_s.items()} if curve_s else None
        write(trial, duration_s=duration_s, curve_s=curve, **fields)

    def _tell(self, trial: optuna.Trial, value: float | None = None, *, state: TrialState | None = None) -> None:
        self.study.tell(trial, value, state=state)
        self.running.discard(trial._trial_id)
        self.changed()

    def resume(self, trial: FrozenTrial) -> optuna.Trial:
        """A trial an earlier tuner left running, to write to again (report, tell)."""
        return optuna.Trial(self.study, trial._trial_id)  # Optuna has no public way from a FrozenTrial back

    def interrupt(self, trial: optuna.Trial) -> None:
        """Record a trial stopped with the tuner; `to_rerun` returns it on the next start."""
        write(trial, interrupted=True)
        self.fail(trial, INTERRUPTED_REASON)

    def lost(self, trial: optuna.Trial, reason: str, *, duration_s: float) -> None:
        """Record a trial whose job Ray lost (the run's Ray instance or the job's node ended under it) as
        interrupted, and queue it again as `rerun` does: it is not the trial's doing, and its rerun counts against
        the budget instead. The LOSSES_IN_A_ROW-th loss in a row fails it."""
        record = read(trial)
        losses = 1 + self._losses_before(record)
        if losses >= LOSSES_IN_A_ROW:
            self.fail(trial, f"{reason} (its job was lost {losses} times in a row: the trial is not run again)",
                      duration_s=duration_s)
            return
        write(trial, interrupted=True, duration_s=duration_s, failure=reason)
        self._tell(trial, state=TrialState.FAIL)
        if not record.replanned:  # a re-evaluation or PBT segment: the plan runs it again
            _enqueue_rerun(self.study, trial)

    def _losses_before(self, record: TrialRecord) -> int:
        """How many of the trials this one reruns, back in a row, were lost (interrupted with a reason of Ray's)."""
        by_number = {trial.number: trial for trial in self.all()}
        losses, number = 0, record.rerun_of
        while number is not None and number in by_number:
            earlier = read(by_number[number])
            if not earlier.interrupted or earlier.failure in (None, INTERRUPTED_REASON):
                break
            losses, number = losses + 1, earlier.rerun_of
        return losses

    def to_rerun(self) -> list[FrozenTrial]:
        """This run directory's trials that were running or interrupted when a tuner stopped, not yet rerun.

        An interrupted re-evaluation or PBT segment is not queued again: the run's plan starts a new one.
        """
        trials = self.all()
        rerun = replaced(trials)
        mine = str(self.run_dir)
        found = []
        for trial in trials:
            record = read(trial)
            owner = record.run_dir if record.run_dir is not None else (mine if self._private else None)
            if owner == mine and trial.number not in rerun and (
                    trial.state == TrialState.RUNNING or (record.interrupted and not record.replanned)):
                found.append(trial)
        return found

    def rerun(self, trial: FrozenTrial) -> None:
        """Fail a trial left running, and queue a new trial with the same parameters in its place
        (a re-evaluation or a PBT segment is only marked interrupted: the plan runs it again)."""
        if trial.state == TrialState.RUNNING:
            if read(trial).replanned:
                self.interrupt(self.resume(trial))
                return
            self.study.tell(trial.number, state=TrialState.FAIL)
        _enqueue_rerun(self.study, trial)
        self.changed()


def _enqueue_rerun(study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> None:
    study.enqueue_trial(trial.params, user_attrs=TrialRecord(rerun_of=trial.number).attrs())


def check_storage(config: TuningConfig) -> None:
    """TuningError now, before a run directory is made, when a storage given to a new run cannot be opened."""
    assert config.run_dir is not None and config.storage is not None
    if config.storage != default_storage(config.run_dir):  # the default is made with the run directory
        with _storage_errors(config.storage):
            _shared_storage(config.storage).engine.dispose()


def _create_study(config: TuningConfig, *, private: bool) -> optuna.Study:
    assert config.run_dir is not None and config.storage is not None
    existing = _count_existing(config.storage, config.study_name)
    # A resumed run must not replay the sampler's first draws: offset its seed by the trials so far.
    seed = None if config.sampler_seed is None else (config.sampler_seed + 7919 * existing) % 2**31
    with _storage_errors(config.storage):
        return optuna.create_study(
            storage=config.storage if private else _shared_storage(config.storage),
            study_name=config.study_name,
            load_if_exists=True,
            direction=config.direction,
            sampler=make_sampler(config.strategy, config.space, seed=seed, max_jobs=config.budget),
            pruner=make_pruner(config.strategy, config.early_stopping, min_resource=config.hyperband_min_env_steps,
                               max_resource=config.hyperband_max_resource),
        )


@contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    """SQLAlchemy's and the database drivers' errors as one sentence with the URL (without its password)."""
    try:
        yield
    except Exception as error:
        reason = _without_password((str(error).strip().splitlines() or [""])[0][:300], url)
        raise TuningError(
            f"cannot open the study storage {_redacted(url)} ({type(error).__name__}: {reason}): "
            "check the --storage URL, that the database server runs and that its driver is installed"
        ) from None


def _shared_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage other tuners may use too: with heartbeats, and a rerun for each trial that went stale."""
    with warnings.catch_warnings():  # "experimental" in Optuna 5.0; tests/tuning/test_postgres.py checks it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=HEARTBEAT_GRACE_S,
            heartbeat_stale_trial_callback=_rerun_stale,
        )


def _rerun_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """A trial failed for want of heartbeats (its tuner died): queue it again with the same parameters."""
    logger.warning("trial %d lost its tuner (no heartbeat for %d s): it runs again", trial.number, HEARTBEAT_GRACE_S)
    _enqueue_rerun(study, trial)


def _heartbeat(trials_ref: weakref.ref[Trials]) -> None:
    """Beat for a Trials' running trials and fail stale ones, until the Trials is gone."""
    while (trials := trials_ref()) is not None:
        try:
            for trial_id in list(trials.running):
                trials._beat(trial_id)
            optuna.storages.fail_stale_trials(trials.study)
        except Exception as error:  # a lost connection: the next beat tries again
            logger.warning("heartbeat of the shared study failed: %s", error)
        del trials
        time.sleep(HEARTBEAT_INTERVAL_S)


def _without_password(text: str, url: str) -> str:
    """`text` (a driver's message) with the URL's password masked, should the driver have quoted it."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # not a URL: nothing in it is a password we know of
        return text
    return text.replace(str(password), "***") if password else text


def _redacted(url: str) -> str:
    """`url` without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: the message says so through SQLAlchemy's own error
        return shorten(url)


def _count_existing(storage: str, study_name: str | None) -> int:
    try:
        summaries = optuna.get_all_study_summaries(storage)
    except Exception as error:  # a new or unreachable storage: create_study reports the real problem
        logger.debug("no study summaries in %s: %s", storage, error)
        return 0
    return sum(summary.n_trials for summary in summaries if summary.study_name == study_name)
