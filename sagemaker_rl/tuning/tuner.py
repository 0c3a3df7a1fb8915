"""The tuning loop: an Optuna study whose trials are jobs, run in parallel within a budget.

The study lives in SQLite inside the run directory (or any SQLAlchemy URL). Each trial is one job
per seed under the job contract, in `trials/NNNN` of the run directory. Every trial ends complete,
pruned or failed (with its reason). A run stopped by Ctrl-C, SIGTERM or kill -9 resumes from its
storage: finished trials are kept, trials that were running are run again as new trials with the
same parameters, and only the reruns count against the budget.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import math
import os
import shlex
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl.tuning import report
from sagemaker_rl.tuning.config import TuningConfig, config_from_mapping
from sagemaker_rl.tuning.runners import Job, JobSpec, JobStatus, LocalProcessRunner, Runner
from sagemaker_rl.tuning.space import TuningError
from sagemaker_rl.tuning.strategies import make_pruner, make_sampler

logger = logging.getLogger(__name__)

CONFIG_FILE = "tuning.json"  # the resolved config; `--config` and `--resume` read it
LOCK_FILE = ".lock"
TRIALS_DIR = "trials"
STOP_GRACE_S = 5.0  # seconds a stopped job gets to end before it is killed (its checkpoint is not reused)
POLL_INTERVAL_S = 0.5
PROGRESS_INTERVAL_S = 60.0  # a progress line at least this often, even when nothing changed

# Trial user attributes.
ATTR_RUN_DIR = "run_dir"
ATTR_TRIAL_DIR = "trial_dir"
ATTR_TUNED = "tuned"  # real values of the tuned hyperparameters
ATTR_HYPERPARAMETERS = "hyperparameters"  # every hyperparameter the job got (static + tuned)
ATTR_FAILURE = "failure"
ATTR_INTERRUPTED = "interrupted"
ATTR_RERUN_OF = "rerun_of"
ATTR_DURATION = "duration_s"
ATTR_SEED_OBJECTIVES = "seed_objectives"


@dataclass(frozen=True)
class TuningResult:
    """How a tuning run ended."""

    run_dir: Path
    complete: int  # trials with an objective
    pruned: int
    failed: int
    interrupted: bool  # stopped by Ctrl-C / SIGTERM before the budget was used
    best_value: float | None
    best_hyperparameters: dict[str, Any] | None  # static + tuned, flat dotted keys
    files: dict[str, Path] = field(default_factory=dict)  # report, trials.csv, best hyperparameters


def run_tuning(
    config: TuningConfig,
    *,
    runner: Runner | None = None,
    out: IO[str] | None = None,
    command: list[str] | None = None,
) -> TuningResult:
    """Start a new tuning run in `config.run_dir` and run it to the end of its budget."""
    given, config = config, config.resolved()
    assert config.run_dir is not None
    if (config.run_dir / CONFIG_FILE).exists():
        raise TuningError(
            f"{config.run_dir} already holds a tuning run: continue it with --resume "
            f"{config.run_dir}, or choose another --run-dir"
        )
    if config.check_hyperparameters:
        check_hyperparameters(config)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(config.run_dir):
        _record(given, config, command or sys.argv)
        return _Tuner(config, runner or LocalProcessRunner(), out or sys.stdout).run()


def resume_tuning(
    run_dir: str | Path,
    *,
    max_jobs: int | None = None,
    max_parallel_jobs: int | None = None,
    runner: Runner | None = None,
    out: IO[str] | None = None,
) -> TuningResult:
    """Continue the run in `run_dir` (after Ctrl-C, a crash or kill -9), optionally with a new budget."""
    config = load_run_config(run_dir)
    changes: dict[str, Any] = {
        key: value
        for key, value in (("max_jobs", max_jobs), ("max_parallel_jobs", max_parallel_jobs))
        if value is not None
    }
    config = dataclasses.replace(config, **changes)
    assert config.run_dir is not None
    with _locked(config.run_dir):
        if changes:
            _record(config, config, None)
        return _Tuner(config, runner or LocalProcessRunner(), out or sys.stdout).run()


def load_run_config(run_dir: str | Path) -> TuningConfig:
    """The config a run directory was started with (resolved: storage, study name, sampler seed)."""
    run_dir = Path(run_dir).absolute()
    file = run_dir / CONFIG_FILE
    if not file.is_file():
        raise TuningError(
            f"{run_dir} is not a tuning run directory (no {CONFIG_FILE}): give the directory "
            "a run printed when it started"
        )
    data = json.loads(file.read_text())
    run = data.get("run", {})
    data["run_dir"] = str(run_dir)  # the directory may have been moved since
    data["study_name"] = run.get("study_name", data.get("study_name"))
    data["storage"] = data.get("storage") or f"sqlite:///{run_dir / 'study.db'}"
    return config_from_mapping(data)


def check_hyperparameters(config: TuningConfig) -> None:
    """Check the static values and both ends of every range with the job's own parser, before any job.

    Also rejects two keys that set the same field (e.g. num_sgd_iter and num_epochs).
    """
    from sagemaker_rl.errors import UserError
    from sagemaker_rl.hyperparameters import canonical_key, parse_hyperparameters

    fields: dict[str, str] = {}
    for key in [*config.space.static, *config.space.names]:
        target = canonical_key(key)
        if target in fields:
            raise TuningError(f"{fields[target]} and {key} set the same hyperparameter ({target}): keep one")
        fields[target] = key
    corners: list[dict[str, Any]] = [{}]
    for parameter in config.space.parameters:
        values = list(getattr(parameter, "values", ())) or [parameter.min_value, parameter.max_value]  # type: ignore[union-attr]
        corners += [{parameter.name: value} for value in values]
    for corner in corners:
        hyperparameters = config.space.hyperparameters(corner)
        try:
            parse_hyperparameters(hyperparameters, config.problem)
        except UserError as error:
            where = f" (with {', '.join(f'{k}={v!r}' for k, v in corner.items())})" if corner else ""
            raise TuningError(f"{error}{where}") from None


@dataclass
class _ActiveTrial:
    trial: optuna.Trial
    directory: Path
    pending: list[JobSpec]  # jobs not started yet (seeds wait for a free slot)
    jobs: list[Job] = field(default_factory=list)
    statuses: list[JobStatus] = field(default_factory=list)
    reported: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    pruned_at: int | None = None
    stop_deadline: float | None = None  # when a stopped job is killed


class _Tuner:
    def __init__(self, config: TuningConfig, runner: Runner, out: IO[str]) -> None:
        assert config.run_dir is not None and config.storage is not None
        self._config = config
        self._runner = runner
        self._out = out
        self._run_dir = config.run_dir
        self._active: list[_ActiveTrial] = []
        self._started = time.monotonic()
        self._last_line = ""
        self._last_print = 0.0
        self._note = ""
        self._study = self._open_study()

    def run(self) -> TuningResult:
        interrupted = False
        with _sigterm_as_interrupt():
            try:
                self._recover()
                self._say(
                    f"tuning {self._config.problem}: {self._config.budget} trials, "
                    f"{self._config.max_parallel_jobs} at a time, {self._config.cpus_per_job} CPU(s) each, "
                    f"strategy {self._config.strategy}; details in {self._run_dir}"
                )
                while True:
                    self._fill_slots()
                    self._poll()
                    self._progress()
                    if not self._active and not self._can_start():
                        break
                    time.sleep(POLL_INTERVAL_S)
            except KeyboardInterrupt:
                interrupted = True
                self._say("stopping: ending running jobs ...")
                self._interrupt()
        files = self._write_outputs(final=True)
        result = self._result(interrupted, files)
        self._summary(result)
        return result

    # --- study and budget ---

    def _open_study(self) -> optuna.Study:
        config = self._config
        existing = self._count_existing()
        # A resumed run must not replay the sampler's first draws: offset its seed by the trials so far.
        seed = None if config.sampler_seed is None else (config.sampler_seed + 7919 * existing) % 2**31
        return optuna.create_study(
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

    def _count_existing(self) -> int:
        assert self._config.storage is not None
        try:
            summaries = optuna.get_all_study_summaries(self._config.storage)
        except Exception as error:  # a new or unreachable storage: create_study reports the real problem
            logger.debug("no study summaries in %s: %s", self._config.storage, error)
            return 0
        return sum(summary.n_trials for summary in summaries if summary.study_name == self._config.study_name)

    def _trials(self) -> list[FrozenTrial]:
        return self._study.get_trials(deepcopy=False)

    def _counted(self) -> int:
        """Trials that use the budget: all but interrupted ones (their reruns count instead)."""
        trials = self._trials()
        replaced = {trial.user_attrs.get(ATTR_RERUN_OF) for trial in trials}
        return sum(1 for trial in trials if trial.number not in replaced and not trial.user_attrs.get(ATTR_INTERRUPTED))

    def _waiting(self) -> bool:
        return any(trial.state == TrialState.WAITING for trial in self._trials())

    def _can_start(self) -> bool:
        return self._waiting() or self._counted() < self._config.budget

    # --- recovery ---

    def _recover(self) -> None:
        """Rerun trials of this run directory that were running when an earlier tuner stopped."""
        trials = self._trials()
        rerun = {trial.user_attrs.get(ATTR_RERUN_OF) for trial in trials}
        private = self._config.storage == f"sqlite:///{self._run_dir / 'study.db'}"  # no other tuner uses it
        mine = [
            trial
            for trial in trials
            if trial.user_attrs.get(ATTR_RUN_DIR, str(self._run_dir) if private else None) == str(self._run_dir)
        ]
        reran: list[str] = []
        for trial in mine:
            stale = trial.state == TrialState.RUNNING
            if not (stale or trial.user_attrs.get(ATTR_INTERRUPTED)) or trial.number in rerun:
                continue
            if stale:  # the tuner died (kill -9, crash): its job may still be running
                trial_dir = trial.user_attrs.get(ATTR_TRIAL_DIR)  # absent: killed before the job started
                for directory in _job_dirs(Path(trial_dir), self._config.seeds) if trial_dir else []:
                    self._runner.stop_orphan(directory)
                self._study.tell(trial.number, state=TrialState.FAIL)
            self._study.enqueue_trial(trial.params, user_attrs={ATTR_RERUN_OF: trial.number})
            logger.info("trial %d was running when the tuner stopped: it runs again", trial.number)
            reran.append(str(trial.number))
        if reran:
            self._note = f"interrupted trial(s) {', '.join(reran)} run again with the same parameters"

    # --- trials ---

    def _slots_free(self) -> int:
        running = sum(len(active.jobs) - sum(s.done for s in active.statuses) for active in self._active)
        return self._config.max_parallel_jobs - running

    def _fill_slots(self) -> None:
        while self._slots_free() > 0:
            waiting = next((active for active in self._active if active.pending and active.pruned_at is None), None)
            if waiting is None:
                if not self._can_start():
                    return
                waiting = self._ask()
            spec = waiting.pending.pop(0)
            try:
                spec.base_dir.mkdir(parents=True, exist_ok=True)
                job: Job = self._runner.start(spec)
            except Exception as error:  # recorded as the trial's failure; the run goes on
                logger.exception("could not start the job in %s", spec.base_dir)
                job = _Unstarted(spec, f"could not start the job: {type(error).__name__}: {error}")
            waiting.jobs.append(job)
            waiting.statuses.append(JobStatus())

    def _ask(self) -> _ActiveTrial:
        config = self._config
        trial = self._study.ask()
        tuned = config.space.suggest(trial)
        directory = self._run_dir / TRIALS_DIR / f"{trial.number:04d}"
        hyperparameters = config.space.hyperparameters(tuned)
        trial.set_user_attr(ATTR_RUN_DIR, str(self._run_dir))
        trial.set_user_attr(ATTR_TRIAL_DIR, str(directory))
        trial.set_user_attr(ATTR_TUNED, tuned)
        trial.set_user_attr(ATTR_HYPERPARAMETERS, hyperparameters)
        specs = []
        base_seed = int(hyperparameters.get("rl.training.seed", 0))
        for index, job_dir in enumerate(_job_dirs(directory, config.seeds)):
            job_hyperparameters = dict(hyperparameters)
            if config.seeds > 1:
                job_hyperparameters["rl.training.seed"] = base_seed + index
            specs.append(
                JobSpec(
                    job_dir,
                    config.problem,
                    job_hyperparameters,
                    num_cpus=config.cpus_per_job,
                    metric=config.objective_metric,
                )
            )
        active = _ActiveTrial(trial, directory, specs)
        self._active.append(active)
        logger.info("trial %d started in %s: %s", trial.number, directory, tuned)
        return active

    def _poll(self) -> None:
        for active in list(self._active):
            active.statuses = [job.poll() for job in active.jobs]
            if active.pruned_at is None:
                self._report(active)
            elif active.stop_deadline is not None and time.monotonic() > active.stop_deadline:
                for job in active.jobs:
                    job.wait(0)  # kills what did not end after its stop signal
                active.stop_deadline = None
            if active.pending and active.pruned_at is None:
                continue
            if all(status.done for status in active.statuses):
                self._finish(active)

    def _report(self, active: _ActiveTrial) -> None:
        """Feed new intermediate values (mean over seeds, per iteration) to the pruner."""
        if len(active.statuses) < self._config.seeds:
            return
        per_seed = [dict(status.values) for status in active.statuses]
        steps = sorted(set.intersection(*(set(values) for values in per_seed)) - active.reported)
        for step in steps:
            value = statistics.fmean(values[step] for values in per_seed)
            active.trial.report(value, step)
            active.reported.add(step)
            if active.trial.should_prune():
                active.pruned_at = step
                active.stop_deadline = time.monotonic() + STOP_GRACE_S
                active.pending.clear()
                for job in active.jobs:
                    job.stop()
                logger.info("trial %d pruned at iteration %d (objective %.4g)", active.trial.number, step, value)
                return

    def _finish(self, active: _ActiveTrial) -> None:
        self._active.remove(active)
        trial, number = active.trial, active.trial.number
        trial.set_user_attr(ATTR_DURATION, round(time.monotonic() - active.started, 1))
        if active.pruned_at is not None:
            for job in active.jobs:
                job.wait(STOP_GRACE_S)
            self._study.tell(trial, state=TrialState.PRUNED)
            self._note = f"trial {number} stopped early at iteration {active.pruned_at}"
        else:
            failures = [status.failure for status in active.statuses if status.failure]
            objectives = [_objective(status.values, self._config.objective_last_k) for status in active.statuses]
            if failures:
                self._fail(trial, failures[0])
            elif not all(math.isfinite(value) for value in objectives):
                self._fail(trial, f"the objective is not a finite number: {objectives}")
            else:
                if self._config.seeds > 1:
                    trial.set_user_attr(ATTR_SEED_OBJECTIVES, objectives)
                value = statistics.fmean(objectives)
                self._study.tell(trial, value)
                logger.info("trial %d complete: %s = %.6g", number, self._config.objective_metric, value)
                self._note = f"trial {number}: {value:.4g}"
        self._write_outputs(final=False)

    def _fail(self, trial: optuna.Trial, reason: str) -> None:
        trial.set_user_attr(ATTR_FAILURE, reason[:1024])
        self._study.tell(trial, state=TrialState.FAIL)
        logger.info("trial %d failed: %s (params %s)", trial.number, reason, trial.params)
        self._note = f"trial {trial.number} failed: {reason[:120]}"

    def _interrupt(self) -> None:
        for active in self._active:
            active.pending.clear()
            for job in active.jobs:
                job.stop()
        for active in self._active:
            for job in active.jobs:
                job.wait(STOP_GRACE_S)
            active.trial.set_user_attr(ATTR_INTERRUPTED, True)
            active.trial.set_user_attr(ATTR_FAILURE, "interrupted: the tuner was stopped; it reruns on --resume")
            self._study.tell(active.trial, state=TrialState.FAIL)
        self._active.clear()

    # --- output ---

    def _write_outputs(self, *, final: bool) -> dict[str, Path]:
        try:
            return report.write_outputs(self._study, self._run_dir, objective=self._config.objective_metric, html=final)
        except Exception as error:  # a report problem must not lose the run: the study is safe in storage
            logger.exception("could not write the report: %s", error)
            self._say(f"warning: could not write the report ({type(error).__name__}: {error}); see tuner.log")
            return {}

    def _counts(self, trials: list[FrozenTrial]) -> dict[str, int]:
        replaced = {trial.user_attrs.get(ATTR_RERUN_OF) for trial in trials}
        counts = {"complete": 0, "pruned": 0, "failed": 0}
        for trial in trials:
            if trial.state == TrialState.COMPLETE:
                counts["complete"] += 1
            elif trial.state == TrialState.PRUNED:
                counts["pruned"] += 1
            elif (
                trial.state == TrialState.FAIL
                and not trial.user_attrs.get(ATTR_INTERRUPTED)
                and trial.number not in replaced
            ):
                counts["failed"] += 1
        return counts

    def _best(self, trials: list[FrozenTrial]) -> FrozenTrial | None:
        complete = [trial for trial in trials if trial.state == TrialState.COMPLETE and trial.value is not None]
        if not complete:
            return None
        pick = max if self._config.direction == "maximize" else min
        return pick(complete, key=lambda trial: trial.value)  # type: ignore[arg-type, return-value]

    def _progress(self) -> None:
        trials = self._trials()
        counts = self._counts(trials)
        done = sum(counts.values())
        best = self._best(trials)
        best_text = f"best {best.value:.4g} (trial {best.number})" if best and best.value is not None else "best -"
        line = (
            f"{done}/{self._config.budget} done "
            f"({counts['failed']} failed, {counts['pruned']} stopped early), "
            f"{len(self._active)} running, {best_text}"
        )
        now = time.monotonic()
        if line != self._last_line or self._note or now - self._last_print >= PROGRESS_INTERVAL_S:
            note = f" | {self._note}" if self._note else f" | {self._running_text()}" if self._active else ""
            self._say(f"{line}{note}")
            self._last_line, self._last_print, self._note = line, now, ""

    def _running_text(self) -> str:
        """Latest iteration and objective of each running trial, e.g. `#3 it 2: -12.4`."""
        parts = []
        for active in self._active:
            latest = [status.values[-1] for status in active.statuses if status.values]
            if latest:
                step = min(step for step, _ in latest)
                parts.append(f"#{active.trial.number} it {step}: {statistics.fmean(v for _, v in latest):.4g}")
            else:
                parts.append(f"#{active.trial.number} starting")
        return ", ".join(parts)

    def _say(self, text: str) -> None:
        elapsed = int(time.monotonic() - self._started)
        print(
            f"[{elapsed // 3600:d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {text}",
            file=self._out,
            flush=True,
        )

    def _result(self, interrupted: bool, files: dict[str, Path]) -> TuningResult:
        trials = self._trials()
        counts = self._counts(trials)
        best = self._best(trials)
        return TuningResult(
            self._run_dir,
            counts["complete"],
            counts["pruned"],
            counts["failed"],
            interrupted,
            best.value if best else None,
            report.best_hyperparameters(best) if best else None,
            files,
        )

    def _summary(self, result: TuningResult) -> None:
        stopped = f"continue with: python scripts/tune.py --resume {self._run_dir}" if result.interrupted else None
        text = report.summary(
            self._study,
            result.files,
            problem=self._config.problem,
            objective=self._config.objective_metric,
            stopped_hint=stopped,
        )
        print(text, file=self._out, flush=True)


class _Unstarted:
    """A job whose start failed: it has ended, with the reason."""

    def __init__(self, spec: JobSpec, reason: str) -> None:
        self.spec = spec
        self._reason = reason

    def poll(self) -> JobStatus:
        return JobStatus(done=True, failure=self._reason)

    def stop(self) -> None:
        return None

    def wait(self, timeout: float) -> bool:
        return True


def _objective(values: list[tuple[int, float]], last_k: int) -> float:
    if not values:
        return math.nan
    return statistics.fmean(value for _, value in values[-last_k:])


def _job_dirs(trial_dir: Path, seeds: int) -> list[Path]:
    return [trial_dir] if seeds == 1 else [trial_dir / f"seed-{index}" for index in range(seeds)]


def _record(given: TuningConfig, config: TuningConfig, command: list[str] | None) -> None:
    """Write tuning.json: the config as given (a valid --config file for a new run, with the sampler
    seed drawn), where this run keeps its study, and how to reproduce it."""
    assert config.run_dir is not None
    file = config.run_dir / CONFIG_FILE
    previous = json.loads(file.read_text()) if file.exists() else {}
    reproduce = previous.get("reproduce", {})
    if command is not None:
        reproduce = {
            "command": shlex.join(command),
            "cwd": os.getcwd(),
            "rerun": f"python scripts/tune.py --config {file}",
            "python": sys.version.split()[0],
            "optuna": optuna.__version__,
            "image": os.environ.get("SAGEMAKER_RL_IMAGE", "local (no image)"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    default_storage = f"sqlite:///{config.run_dir / 'study.db'}"
    data = dataclasses.replace(
        given,
        run_dir=None,
        sampler_seed=config.sampler_seed,
        max_jobs=config.max_jobs,
        max_parallel_jobs=config.max_parallel_jobs,
        storage=None if given.storage in (None, default_storage) else given.storage,
        study_name=None if given.study_name in (None, config.run_dir.name) else given.study_name,
    ).to_dict()
    data["run"] = previous.get("run") or {
        "run_dir": str(config.run_dir),
        "storage": config.storage,
        "study_name": config.study_name,
    }
    data["reproduce"] = reproduce
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(file)


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock: one tuner per run directory (released even by kill -9)."""
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise TuningError(
                f"another tuner is running in {run_dir} ({handle.read().strip() or 'unknown pid'}): "
                "wait for it or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does (jobs ended, trials marked for rerun)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
