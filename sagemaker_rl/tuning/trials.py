"""Trials: the record a tuning run keeps for each trial in its Optuna study, and what is read from it.

One owner for the trial user attributes (written by the tuner and the SageMaker conversion, read by
the report), the study's default storage, where a trial's jobs run, which trials were run again
(replaced), each trial's status and role, the counts, the best trial, the re-evaluation's plan and
answer, and the progress line. `Trials` is the one writer: it asks, tells and reruns trials of a study.

A study holds three roles of trial: search trials (sampled from the space; they use the budget),
re-evaluations (a finished run's top configurations and the default, each trained again on seeds no
trial used, all on the same seeds so that they compare pairwise) and warm-start trials (a parent
run's results, copied in as the sampler's prior knowledge; never run here). A PBT run's search
trials are segments: one member's job in one generation (pbt.py plans them); its answer is the best
member of the last generation, whose policy holds the whole run's training.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.errors import shorten
from sagemaker_rl.tuning.space import TuningError
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
ATTR_SEEDS = "seeds"  # the rl.training.seed of each of its jobs, when the tuner set them
ATTR_REEVALUATION = "reevaluation_of"  # a re-evaluation: the number of the trial it trains again, or "default"
ATTR_WARM_START = "warm_start_from"  # a warm-start trial: {"run": parent, "trial": number, "type": warm-start type}
ATTR_CURVE_S = "curve_wall_s"  # seconds from the trial's start to each reported step, for the report
# A PBT segment (pbt.py): one member's job in one generation.
ATTR_MEMBER = "pbt_member"  # the member it trains
ATTR_GENERATION = "pbt_generation"  # 0, 1, ...: it trains to (generation + 1) x the perturbation interval
ATTR_PARENT = "pbt_parent"  # the trial whose final checkpoint it starts from (None: a fresh policy)
ATTR_EXPLOITED = "pbt_exploited_from"  # the member whose checkpoint it took (None: it continued its own)

DEFAULT_CANDIDATE = "default"  # the re-evaluated configuration that tunes nothing: the static values alone
IDENTICAL = "IdenticalDataAndAlgorithm"  # SageMaker's warm-start types
TRANSFER = "TransferLearning"
WARM_START_TYPES = (IDENTICAL, TRANSFER)
DEFAULT_HYPERBAND_MIN_ENV_STEPS = 25_000  # about 3 iterations of the fast preset's 8,192-step batch
REEVALUATION_SEED_BASE = 10_000  # re-evaluations use the first seeds from here that no trial used

SEED_KEY = "rl.training.seed"
STUDY_FILE = "study.db"  # the default storage: SQLite in the run directory
TRIALS_DIR = "trials"  # trials/NNNN of the run directory
FAILURE_LIMIT = 1024  # characters of a failure reason kept (SageMaker's limit too)
INTERRUPTED_REASON = "interrupted: the tuner was stopped; it reruns on --resume"

# A shared storage's tuners record a heartbeat for each running trial; a trial whose tuner died
# (kill -9, a lost machine) is failed by another tuner after the grace period and run again.
HEARTBEAT_INTERVAL_S = 5
HEARTBEAT_GRACE_S = 20
STATUSES = ("complete", "pruned", "failed", "running", "waiting", "interrupted")
_STATE_STATUS = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def default_storage(run_dir: Path) -> str:
    """The study's storage when none is given: SQLite in the run directory.

    The path is escaped as a URL part: a run directory named `a?b` or `%41` would otherwise put the
    study elsewhere or fail in SQLAlchemy's URL parser.
    """
    from sqlalchemy.engine import URL

    database = str(Path(run_dir) / STUDY_FILE)
    return URL.create("sqlite", database=database).render_as_string(hide_password=False)


def trial_dir(run_dir: Path, number: int) -> Path:
    """Where trial `number` of a run keeps its jobs."""
    return Path(run_dir) / TRIALS_DIR / f"{number:04d}"


def job_dirs(directory: Path, seeds: int) -> list[Path]:
    """The base directory of each seed's job in a trial directory."""
    return [directory] if seeds == 1 else [directory / f"seed-{index}" for index in range(seeds)]


def trial_job_dirs(trial: FrozenTrial, seeds: int) -> list[Path]:
    """The base directories of a recorded trial's jobs (`seeds` per trial unless it recorded its own)."""
    directory = trial.user_attrs.get(ATTR_TRIAL_DIR)
    if not directory:  # asked, but stopped before its jobs were placed
        return []
    return job_dirs(Path(directory), len(trial.user_attrs.get(ATTR_SEEDS) or ()) or seeds)


def files_dir(trial: FrozenTrial) -> Path:
    """Where a one-job trial's job keeps checkpoints/ and model/: its trial directory, or where its runner put
    them (a cluster's storage)."""
    return Path((trial.user_attrs.get(ATTR_OUTPUTS) or [trial.user_attrs[ATTR_TRIAL_DIR]])[0])


def is_search(trial: FrozenTrial) -> bool:
    """A trial sampled by this run's study (not a re-evaluation, not copied in from a parent run)."""
    return ATTR_REEVALUATION not in trial.user_attrs and ATTR_WARM_START not in trial.user_attrs


def is_reevaluation(trial: FrozenTrial) -> bool:
    return ATTR_REEVALUATION in trial.user_attrs


def is_segment(trial: FrozenTrial) -> bool:
    """A PBT run's trial: one member's job in one generation."""
    return ATTR_MEMBER in trial.user_attrs


def replanned(trial: FrozenTrial) -> bool:
    """An interrupted trial of this kind is not queued again: its run's plan starts a new one."""
    return is_reevaluation(trial) or is_segment(trial)


def comparable(trial: FrozenTrial) -> bool:
    """Its objective was measured as this run's search trials are: a search trial, or a warm-start
    trial of a parent with identical data and algorithm (SageMaker's overall best is over those)."""
    warm = trial.user_attrs.get(ATTR_WARM_START)
    return (is_search(trial) or (warm is not None and warm.get("type") == IDENTICAL)) and not is_reevaluation(trial)


def replaced(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials a later trial runs again."""
    return {number for trial in trials if (number := trial.user_attrs.get(ATTR_RERUN_OF)) is not None}


def status(trial: FrozenTrial, replaced_trials: set[int]) -> str:
    """complete, pruned, failed, running, waiting, or interrupted (stopped with the tuner, or run again)."""
    if trial.state == TrialState.FAIL and (trial.user_attrs.get(ATTR_INTERRUPTED) or trial.number in replaced_trials):
        return "interrupted"
    return _STATE_STATUS[trial.state]


def role(trial: FrozenTrial) -> str:
    """`search`, `re-evaluation of 7` / `re-evaluation of default`, or `warm start (PARENT trial 3)`."""
    if is_reevaluation(trial):
        key = trial.user_attrs[ATTR_REEVALUATION]
        return f"re-evaluation of {key}" if key == DEFAULT_CANDIDATE else f"re-evaluation of trial {key}"
    warm = trial.user_attrs.get(ATTR_WARM_START)
    if warm is not None:
        return f"warm start ({Path(str(warm.get('run'))).name} trial {warm.get('trial')})"
    if is_segment(trial):
        took = trial.user_attrs.get(ATTR_EXPLOITED)
        exploit = f", from member {took}'s checkpoint" if took is not None else ""
        return f"member {trial.user_attrs[ATTR_MEMBER]}, generation {trial.user_attrs[ATTR_GENERATION]}{exploit}"
    return "search"


def counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """How many trials have each status (every status present)."""
    rerun = replaced(trials)
    found = dict.fromkeys(STATUSES, 0)
    for trial in trials:
        found[status(trial, rerun)] += 1
    return found


def counted(trials: Sequence[FrozenTrial]) -> int:
    """Search trials that use the budget: all but interrupted ones (their reruns count instead)."""
    rerun = replaced(trials)
    return sum(1 for trial in trials if is_search(trial) and status(trial, rerun) != "interrupted")


def best(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """The comparable complete trial with the best finite objective (by the search), or None."""
    complete = [
        trial
        for trial in trials
        if comparable(trial)
        and trial.state == TrialState.COMPLETE
        and trial.value is not None
        and math.isfinite(trial.value)
    ]
    if not complete:
        return None
    pick = max if direction == StudyDirection.MAXIMIZE else min
    return pick(complete, key=lambda trial: trial.value)  # type: ignore[arg-type, return-value]


@dataclass(frozen=True)
class Candidate:
    """A configuration the re-evaluation trains again: a trial's, or the default (the static values alone)."""

    key: int | str  # the trial's number, or DEFAULT_CANDIDATE
    hyperparameters: dict[str, Any]  # flat dotted keys, without the seed
    tuned: dict[str, Any]  # its tuned values (none for the default)
    search_value: float | None  # its objective in the search


@dataclass(frozen=True)
class Reevaluation:
    """A candidate's re-evaluation: its objective on each fresh seed."""

    candidate: int | str
    trial: FrozenTrial
    seeds: list[int]
    values: list[float]  # objective per seed, in the order of `seeds` (empty unless complete)

    @property
    def complete(self) -> bool:
        return self.trial.state == TrialState.COMPLETE and bool(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.complete else None

    @property
    def spread(self) -> float | None:
        """The sample standard deviation over seeds (None for fewer than two)."""
        return statistics.stdev(self.values) if self.complete and len(self.values) > 1 else None


def candidates(
    trials: Sequence[FrozenTrial], direction: StudyDirection, *, top: int, default: Mapping[str, Any]
) -> list[Candidate]:
    """The `top` best comparable trials (distinct tuned values), then the default, for re-evaluation."""
    pool = [trial for trial in trials if comparable(trial) and trial.state == TrialState.COMPLETE
            and trial.value is not None and math.isfinite(trial.value)]
    pool.sort(key=lambda trial: trial.value, reverse=direction == StudyDirection.MAXIMIZE)  # type: ignore[arg-type, return-value]
    chosen: list[Candidate] = []
    seen: list[dict[str, Any]] = []
    for trial in pool:
        if len(chosen) == top:
            break
        values = tuned(trial)
        if values in seen:
            continue
        seen.append(values)
        flat = {key: value for key, value in hyperparameters(trial).items() if key != SEED_KEY}
        chosen.append(Candidate(trial.number, flat, values, trial.value))
    if top > 0:
        chosen.append(Candidate(DEFAULT_CANDIDATE, {k: v for k, v in default.items() if k != SEED_KEY}, {}, None))
    return chosen


def fresh_seeds(trials: Sequence[FrozenTrial], count: int) -> list[int]:
    """The first `count` seeds from REEVALUATION_SEED_BASE that no search or warm-start trial used."""
    used: set[int] = set()
    for trial in trials:
        if is_reevaluation(trial):
            continue
        used.update(int(seed) for seed in trial.user_attrs.get(ATTR_SEEDS) or ())
        seed = hyperparameters(trial).get(SEED_KEY)
        if isinstance(seed, int | float) and not isinstance(seed, bool):
            used.add(int(seed))
    seeds: list[int] = []
    seed = REEVALUATION_SEED_BASE
    while len(seeds) < count:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return seeds


def reevaluations(trials: Sequence[FrozenTrial]) -> dict[int | str, Reevaluation]:
    """The latest re-evaluation of each candidate that was not interrupted (complete, failed or running)."""
    rerun = replaced(trials)
    found: dict[int | str, Reevaluation] = {}
    for trial in trials:
        if not is_reevaluation(trial) or status(trial, rerun) == "interrupted":
            continue
        seeds = [int(seed) for seed in trial.user_attrs.get(ATTR_SEEDS) or ()]
        values: list[float] = []
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            values = [float(value) for value in trial.user_attrs.get(ATTR_SEED_OBJECTIVES) or [trial.value]]
        key = trial.user_attrs[ATTR_REEVALUATION]
        found[key] = Reevaluation(key, trial, seeds, values)
    return found


def segments(trials: Sequence[FrozenTrial]) -> dict[tuple[int, int], FrozenTrial]:
    """A PBT run's latest trial of each (member, generation) that was not interrupted."""
    rerun = replaced(trials)
    found: dict[tuple[int, int], FrozenTrial] = {}
    for trial in trials:
        if is_segment(trial) and status(trial, rerun) != "interrupted":
            found[(trial.user_attrs[ATTR_MEMBER], trial.user_attrs[ATTR_GENERATION])] = trial
    return found


def final_member(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """A PBT run's best complete segment of the latest generation any completed in (None: none did)."""
    complete = [trial for trial in segments(trials).values()
                if trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)]
    if not complete:
        return None
    latest = max(trial.user_attrs[ATTR_GENERATION] for trial in complete)
    pool = [trial for trial in complete if trial.user_attrs[ATTR_GENERATION] == latest]
    pick = max if direction == StudyDirection.MAXIMIZE else min
    return pick(pool, key=lambda trial: trial.value)  # type: ignore[arg-type, return-value]


def answer(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """The run's answer: the best complete re-evaluation by its mean over fresh seeds, else the search's
    best; in a PBT run, the best member of the last generation (its policy holds the run's training)."""
    if any(is_segment(trial) for trial in trials):
        return final_member(trials, direction)
    done = [item for item in reevaluations(trials).values() if item.complete]
    if done:
        sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
        # A tie goes to the default: a candidate must beat it to be the answer.
        return max(done, key=lambda item: (sign * item.mean, item.candidate == DEFAULT_CANDIDATE)).trial  # type: ignore[operator]
    return best(trials, direction)


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
    """`progress_line` for the search trials of a local study."""
    found = counts([trial for trial in trials if is_search(trial)])
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
        self.running: set[int] = set()  # trial ids this tuner has asked for and not told yet

    @classmethod
    def open(cls, config: TuningConfig) -> Trials:
        """The study of a resolved config, created or loaded, with the config's sampler and pruner."""
        assert config.run_dir is not None and config.storage is not None
        existing = _count_existing(config.storage, config.study_name)
        # A resumed run must not replay the sampler's first draws: offset its seed by the trials so far.
        seed = None if config.sampler_seed is None else (config.sampler_seed + 7919 * existing) % 2**31
        private = config.storage == default_storage(config.run_dir)
        try:
            study = optuna.create_study(
                storage=config.storage if private else _shared_storage(config.storage),
                study_name=config.study_name,
                load_if_exists=True,
                direction=config.direction,
                sampler=make_sampler(config.strategy, config.space, seed=seed, max_jobs=config.budget),
                pruner=make_pruner(
                    config.strategy,
                    config.early_stopping,
                    min_resource=config.hyperband_min_resource or DEFAULT_HYPERBAND_MIN_ENV_STEPS,
                    max_resource=config.hyperband_max_resource,
                ),
            )
        except Exception as error:  # SQLAlchemy's and the database drivers' errors: one sentence with the URL
            reason = (str(error).strip().splitlines() or [""])[0][:300]
            raise TuningError(
                f"cannot open the study storage {_redacted(config.storage)} ({type(error).__name__}: {reason}): "
                "check the --storage URL, that the database server runs and that its driver is installed"
            ) from None
        trials = cls(study, config.run_dir, private=private)
        if not private:  # other tuners may share it: heartbeats tell them which trials are still alive
            threading.Thread(target=_heartbeat, args=(weakref.ref(trials),), daemon=True, name="heartbeat").start()
        return trials

    def _beat(self, trial_id: int) -> None:
        # Optuna's heartbeat API lives on the storage (an RDBStorage behind Optuna's cache)
        storage = self.study._storage
        if getattr(storage, "get_heartbeat_interval", lambda: None)():
            storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]

    def all(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def can_start(self, budget: int) -> bool:
        """A rerun is waiting, or the budget has room for a new trial."""
        trials = self.all()
        return any(trial.state == TrialState.WAITING for trial in trials) or counted(trials) < budget

    def best(self) -> FrozenTrial | None:
        return best(self.all(), self.study.direction)

    def answer(self) -> FrozenTrial | None:
        return answer(self.all(), self.study.direction)

    def progress(self, *, budget: int, running: int) -> str:
        return trials_progress(self.all(), self.study.direction, budget=budget, running=running)

    def ask(
        self,
        space: SearchSpace,
        *,
        planned: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[optuna.Trial, Path, dict[str, Any]]:
        """A new trial (or a waiting rerun) sampled from `space`: the trial, its directory, its hyperparameters.

        `planned` real values are taken instead of sampled (a PBT segment's), with its `attrs`; `extra`
        hyperparameters are added to its job's.
        """
        if planned is not None:
            self.study.enqueue_trial(space.stored_values(planned), user_attrs=dict(attrs or {}))
        with warnings.catch_warnings():  # Optuna expects heartbeats with optimize(); ours are _heartbeat's
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = self.study.ask()
        self.running.add(trial._trial_id)
        self._beat(trial._trial_id)  # at once: a tuner killed before the first beat still has its trial rerun
        values = space.suggest(trial)
        directory = trial_dir(self.run_dir, trial.number)
        flat = {**space.hyperparameters(values), **(extra or {})}
        trial.set_user_attr(ATTR_RUN_DIR, str(self.run_dir))
        trial.set_user_attr(ATTR_TRIAL_DIR, str(directory))
        trial.set_user_attr(ATTR_TUNED, values)
        trial.set_user_attr(ATTR_HYPERPARAMETERS, flat)
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
        trial.set_user_attr(ATTR_RUN_DIR, str(self.run_dir))
        trial.set_user_attr(ATTR_TRIAL_DIR, str(directory))
        trial.set_user_attr(ATTR_REEVALUATION, candidate.key)
        trial.set_user_attr(ATTR_TUNED, candidate.tuned)
        trial.set_user_attr(ATTR_HYPERPARAMETERS, candidate.hyperparameters)
        trial.set_user_attr(ATTR_SEEDS, seeds)
        logger.info("trial %d re-evaluates %s on seeds %s in %s", trial.number, candidate.key, seeds, directory)
        return trial, directory

    def warm_start(self, parents: Sequence[tuple[str, Sequence[FrozenTrial]]], kind: str, space: SearchSpace) -> int:
        """Copy the parents' finished search trials into this new study; returns how many were copied.

        Each keeps the tuned values that fit `space` (parameters the space no longer has, or values
        outside the new ranges, are dropped); a trial left with none is skipped.
        """
        distributions = space.distributions()
        copied = 0
        for parent, parent_trials in parents:
            for trial in parent_trials:
                if not is_search(trial) or trial.state != TrialState.COMPLETE or trial.value is None:
                    continue
                stored = space.stored_values(tuned(trial))  # the real values, in this space's terms
                params = {name: value for name, value in stored.items() if _fits(distributions[name], value)}
                if not params:
                    continue
                attrs = {key: trial.user_attrs[key] for key in (ATTR_TUNED, ATTR_HYPERPARAMETERS, ATTR_SEEDS,
                                                                ATTR_DURATION, ATTR_SEED_OBJECTIVES)
                         if key in trial.user_attrs}
                attrs[ATTR_WARM_START] = {"run": parent, "trial": trial.number, "type": kind}
                self.study.add_trial(optuna.trial.create_trial(
                    state=TrialState.COMPLETE, value=trial.value, params=params,
                    distributions={name: distributions[name] for name in params}, user_attrs=attrs))
                copied += 1
        logger.info("warm start (%s): %d trials copied from %s", kind, copied, [parent for parent, _ in parents])
        return copied

    def complete(
        self,
        trial: optuna.Trial,
        value: float,
        *,
        duration_s: float,
        seed_objectives: list[float],
        curve_s: Mapping[int, float] | None = None,
    ) -> None:
        trial.set_user_attr(ATTR_DURATION, duration_s)
        if curve_s:
            trial.set_user_attr(ATTR_CURVE_S, {str(step): seconds for step, seconds in curve_s.items()})
        if len(seed_objectives) > 1:
            trial.set_user_attr(ATTR_SEED_OBJECTIVES, seed_objectives)
        self.study.tell(trial, value)
        self.running.discard(trial._trial_id)

    def prune(self, trial: optuna.Trial, *, duration_s: float, curve_s: Mapping[int, float] | None = None) -> None:
        trial.set_user_attr(ATTR_DURATION, duration_s)
        if curve_s:
            trial.set_user_attr(ATTR_CURVE_S, {str(step): seconds for step, seconds in curve_s.items()})
        self.study.tell(trial, state=TrialState.PRUNED)
        self.running.discard(trial._trial_id)

    def fail(self, trial: optuna.Trial, reason: str, *, duration_s: float | None = None) -> None:
        if duration_s is not None:
            trial.set_user_attr(ATTR_DURATION, duration_s)
        trial.set_user_attr(ATTR_FAILURE, reason[:FAILURE_LIMIT])
        self.study.tell(trial, state=TrialState.FAIL)
        self.running.discard(trial._trial_id)

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
        """This run directory's trials that were running or interrupted when a tuner stopped, not yet rerun.

        An interrupted re-evaluation or PBT segment is not queued again: the run's plan starts a new one.
        """
        trials = self.all()
        rerun = replaced(trials)
        mine = str(self.run_dir)
        return [
            trial
            for trial in trials
            if trial.user_attrs.get(ATTR_RUN_DIR, mine if self._private else None) == mine
            and (trial.state == TrialState.RUNNING or (trial.user_attrs.get(ATTR_INTERRUPTED)
                                                       and not replanned(trial)))
            and trial.number not in rerun
        ]

    def rerun(self, trial: FrozenTrial) -> None:
        """Fail a trial left running, and queue a new trial with the same parameters in its place
        (a re-evaluation or a PBT segment is only marked interrupted: the plan runs it again)."""
        if trial.state == TrialState.RUNNING:
            if replanned(trial):
                self.interrupt(optuna.Trial(self.study, trial._trial_id))
                return
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
    study.enqueue_trial(trial.params, user_attrs={ATTR_RERUN_OF: trial.number})


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


def _redacted(url: str) -> str:
    """`url` without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: the message says so through SQLAlchemy's own error
        return shorten(url)


def _fits(distribution: optuna.distributions.BaseDistribution, value: Any) -> bool:
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):  # e.g. a Categorical value the new choices do not have
        return False


def _count_existing(storage: str, study_name: str | None) -> int:
    try:
        summaries = optuna.get_all_study_summaries(storage)
    except Exception as error:  # a new or unreachable storage: create_study reports the real problem
        logger.debug("no study summaries in %s: %s", storage, error)
        return 0
    return sum(summary.n_trials for summary in summaries if summary.study_name == study_name)
