"""The tuning loop: an Optuna study whose trials are jobs, run in parallel within a budget.

The study lives in SQLite inside the run directory (or any SQLAlchemy URL). Each trial is one job
per seed under the job contract, in `trials/NNNN` of the run directory. Every trial ends complete,
pruned or failed (with its reason). A run has two phases: the search (the budget's trials, sampled
by the strategy; a warm start first copies in its parents' results), then the re-evaluation: the
search's `reevaluate_top` best configurations and the default, each trained again on the same
`reevaluate_seeds` fresh seeds, so that the answer written to best_hyperparameters.json is the best
by re-evaluation, not the luckiest trial. Strategy PBT replaces both phases with a population's
generations of job segments (`pbt.py` plans them; each starts from its parent's checkpoint). A run
stopped by Ctrl-C, SIGTERM or kill -9 resumes from its storage: finished trials are kept, trials
that were running are run again as new trials with the same parameters, and only the reruns count
against the budget. The trial record is `trials.py`'s, the run directory's files `rundir.py`'s;
this module schedules jobs and says how the run goes. Local jobs share one Ray instance per run
(`shared_ray.py`).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
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

from sagemaker_rl import contract, metrics
from sagemaker_rl.console import Console
from sagemaker_rl.metrics import Record
from sagemaker_rl.tuning import pbt, report
from sagemaker_rl.tuning.config import TuningConfig, check_hyperparameters
from sagemaker_rl.tuning.rundir import is_run_dir, load_run_config, locked, record
from sagemaker_rl.tuning.runners import STDOUT_LOG, Job, JobSpec, JobStatus, LocalProcessRunner, Runner
from sagemaker_rl.tuning.shared_ray import SharedRay
from sagemaker_rl.tuning.space import TuningError
from sagemaker_rl.tuning.strategies import Strategy
from sagemaker_rl.tuning.trials import (
    ATTR_GENERATION,
    ATTR_SEEDS,
    ATTR_TRIAL_DIR,
    DEFAULT_CANDIDATE,
    SEED_KEY,
    Candidate,
    Trials,
    candidates,
    counts,
    files_dir,
    fresh_seeds,
    hyperparameters,
    is_reevaluation,
    job_dirs,
    reevaluations,
    trial_job_dirs,
)
from sagemaker_rl.tuning.warm_start import load_parents

logger = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # seconds a stopped job gets to end before it is killed (its checkpoint is not reused)
POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class TuningResult:
    """How a tuning run ended."""

    run_dir: Path
    complete: int  # trials with an objective
    pruned: int
    failed: int
    interrupted: bool  # stopped by Ctrl-C / SIGTERM before the budget was used
    best_value: float | None  # the search's best objective
    best_hyperparameters: dict[str, Any] | None  # the answer (best by re-evaluation), flat dotted keys
    files: dict[str, Path] = field(default_factory=dict)  # report, trials.csv, best hyperparameters
    reevaluated: dict[int | str, float | None] = field(default_factory=dict)  # candidate -> mean on fresh seeds


class TuningRun:
    """A run directory this process holds (its lock), ready to run; from `open_run` or `reopen_run`."""

    def __init__(self, config: TuningConfig, parents: list[tuple[str, list[Any]]] | None = None) -> None:
        assert config.run_dir is not None and config.storage is not None
        self.config = config
        self._parents = parents or []  # a new run's warm-start parents and their trials

    @property
    def run_dir(self) -> Path:
        assert self.config.run_dir is not None
        return self.config.run_dir

    def run(self, *, runner: Runner | None = None, out: IO[str] | None = None) -> TuningResult:
        """Run trials until the budget is used (or Ctrl-C / SIGTERM), then write the report.

        Without a `runner`, jobs run as local processes that share one Ray instance, stopped at the end.
        """
        shared_ray = None
        if runner is None:
            shared_ray = SharedRay(self.run_dir, num_cpus=self.config.total_cpus)
            runner = LocalProcessRunner(shared_ray=shared_ray)
        try:
            return _Tuner(self.config, runner, out or sys.stdout, self._parents).run()
        finally:
            if shared_ray is not None:
                shared_ray.close()


@contextmanager
def open_run(config: TuningConfig, *, command: list[str] | None = None) -> Iterator[TuningRun]:
    """Check `config`, then claim a new run directory for it: tuning.json written, the lock held.

    Everything a user can get wrong fails here, before the run directory is made.
    """
    given, config = config, config.resolved()
    assert config.run_dir is not None
    if is_run_dir(config.run_dir):
        raise TuningError(
            f"{config.run_dir} already holds a tuning run: continue it with --resume "
            f"{config.run_dir}, or choose another --run-dir"
        )
    parents = load_parents(config)  # cheap: before the hyperparameter check, which starts a process
    if config.check_hyperparameters:
        check_hyperparameters(config)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with locked(config.run_dir):
        record(given, config, command or sys.argv)
        yield TuningRun(config, parents)


@contextmanager
def reopen_run(
    run_dir: str | Path, *, max_jobs: int | None = None, max_parallel_jobs: int | None = None
) -> Iterator[TuningRun]:
    """Claim the run in `run_dir` again (after Ctrl-C, a crash or kill -9), optionally with a new budget."""
    config = load_run_config(run_dir)
    changes: dict[str, Any] = {
        key: value
        for key, value in (("max_jobs", max_jobs), ("max_parallel_jobs", max_parallel_jobs))
        if value is not None
    }
    config = dataclasses.replace(config, **changes)
    assert config.run_dir is not None
    with locked(config.run_dir):
        if changes:
            record(config, config, None)
        yield TuningRun(config)


def run_tuning(
    config: TuningConfig,
    *,
    runner: Runner | None = None,
    out: IO[str] | None = None,
    command: list[str] | None = None,
) -> TuningResult:
    """Start a new tuning run in `config.run_dir` and run it to the end of its budget."""
    with open_run(config, command=command) as run:
        return run.run(runner=runner, out=out)


def resume_tuning(
    run_dir: str | Path,
    *,
    max_jobs: int | None = None,
    max_parallel_jobs: int | None = None,
    runner: Runner | None = None,
    out: IO[str] | None = None,
) -> TuningResult:
    """Continue the run in `run_dir` (after Ctrl-C, a crash or kill -9), optionally with a new budget."""
    with reopen_run(run_dir, max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs) as run:
        return run.run(runner=runner, out=out)


@dataclass
class _ActiveTrial:
    trial: optuna.Trial
    directory: Path
    pending: list[JobSpec]  # jobs not started yet (seeds wait for a free slot)
    jobs: list[Job] = field(default_factory=list)
    statuses: list[JobStatus] = field(default_factory=list)
    reported: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    pruned_at: int | None = None  # the env step it was stopped early at
    stop_deadline: float | None = None  # when a stopped job is killed
    reevaluation: bool = False  # trains a candidate again (never pruned)
    curve_s: dict[int, float] = field(default_factory=dict)  # reported env step -> seconds since the start


class _Tuner:
    """Schedules the jobs of a run's trials in its CPU slots, feeds the pruner and says how it goes."""

    def __init__(
        self, config: TuningConfig, runner: Runner, out: IO[str], parents: list[tuple[str, list[Any]]]
    ) -> None:
        assert config.run_dir is not None
        self._config = config
        self._runner = runner
        self._out = out
        self._console = Console(out)
        self._active: list[_ActiveTrial] = []
        self._note = ""  # what just happened, for the next progress line
        self._trials = Trials.open(config)
        self._parents = parents if not self._trials.all() else []  # a new run: its parents' results come first
        self._population = pbt.Population(
            config.space, population=config.population_size, generations=config.generations,
            direction=self._trials.study.direction, seed=config.sampler_seed or 0,
        ) if config.strategy is Strategy.PBT else None

    def run(self) -> TuningResult:
        config = self._config
        interrupted = False
        with _stop_signals() as stop:
            try:
                self._recover()
                if self._parents:
                    copied = self._trials.warm_start(self._parents, config.warm_start_type, config.space)
                    self._console.say(f"warm start ({config.warm_start_type}): {copied} trials of "
                                      f"{len(self._parents)} parent run(s) copied in")
                reevaluation = (
                    f", then the best {config.reevaluate_top} and the default on {config.reevaluate_seeds} fresh "
                    f"seeds ({config.reevaluation_jobs} jobs)" if config.reevaluate_top else ""
                )
                what = (f"population-based training of {config.problem}: {config.population_size} members, "
                        f"{config.generations} generations of {config.perturbation_interval:,} env steps "
                        f"({config.budget} jobs)" if self._population else
                        f"tuning {config.problem}: {config.budget} trials{reevaluation}")
                self._console.say(
                    f"{what}, {config.max_parallel_jobs} at a time, {config.cpus_per_job} CPU(s) each, strategy "
                    f"{config.strategy}; details in {config.run_dir}"
                )
                while True:
                    if stop.requested:
                        raise KeyboardInterrupt
                    self._fill_slots()
                    self._poll()
                    self._progress()
                    if not self._active and not self._can_start():
                        break
                    time.sleep(POLL_INTERVAL_S)
                if self._population is not None and self._population.stopped:
                    self._console.say(f"population-based training stopped: {self._population.stopped}")
            except KeyboardInterrupt:
                interrupted = True
                self._console.say("stopping: ending running jobs ...")
                self._interrupt()
        files = self._write_outputs(final=True)
        result = self._result(interrupted, files)
        self._summary(result)
        return result

    def _recover(self) -> None:
        """Rerun trials of this run directory that were running when an earlier tuner stopped (or follow
        their jobs again, when the runner can)."""
        reran: list[str] = []
        followed: list[str] = []
        for trial in self._trials.to_rerun():
            if trial.state == optuna.trial.TrialState.RUNNING:  # the tuner died (kill -9, crash): its job may run
                if self._reattach(trial):
                    followed.append(str(trial.number))
                    continue
                for directory in trial_job_dirs(trial, self._config.seeds):
                    self._runner.stop_orphan(directory)
                if self._record_finished(trial):
                    continue
            self._trials.rerun(trial)
            logger.info("trial %d was running when the tuner stopped: it runs again", trial.number)
            reran.append(str(trial.number))
        notes = [f"reattached to the jobs of trial(s) {', '.join(followed)}"] if followed else []
        if reran:
            notes.append(f"interrupted trial(s) {', '.join(reran)} run again with the same parameters")
        self._note = "; ".join(notes)

    def _reattach(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Follow again every job of a trial the dead tuner left running; False (nothing kept) if one cannot be."""
        directory = trial.user_attrs.get(ATTR_TRIAL_DIR)
        if not directory:  # asked, but stopped before its jobs were placed
            return False
        specs = self._specs(Path(directory), hyperparameters(trial), trial.user_attrs.get(ATTR_SEEDS))
        jobs = [self._runner.reattach(spec) for spec in specs]
        if not all(jobs):
            for job in jobs:
                if job is not None:
                    job.wait(0)  # the trial runs again: end what did reattach
            return False
        age = (datetime.datetime.now() - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0
        active = _ActiveTrial(self._trials.resume(trial), Path(directory), [], [job for job in jobs if job],
                              started=time.monotonic() - age, reevaluation=is_reevaluation(trial))
        active.statuses = [JobStatus() for _ in active.jobs]
        # Steps the dead tuner reported are not reported again (their time: at the latest now).
        active.curve_s = {step: round(age, 1) for step in trial.intermediate_values}
        self._active.append(active)
        logger.info("trial %d: reattached to its running job(s)", trial.number)
        return True

    def _record_finished(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Record a trial whose jobs all succeeded before the tuner died, from their outputs; False if not."""
        dirs = trial_job_dirs(trial, self._config.seeds)
        if not dirs or not all(contract.JobPaths(job_dir).success_file.exists() for job_dir in dirs):
            return False
        objectives = []
        for job_dir in dirs:
            lines = (job_dir / STDOUT_LOG).read_text(errors="replace").splitlines()
            records = metrics.read_records(lines, self._config.objective_metric)
            objectives.append(_objective([record for record in records if record.value is not None],
                                         self._config.objective_last_k))
        if not all(math.isfinite(value) for value in objectives):
            return False
        paths = contract.JobPaths(dirs[-1])
        duration = round(paths.success_file.stat().st_mtime - paths.hyperparameters_file.stat().st_mtime, 1)
        live = optuna.trial.Trial(self._trials.study, trial._trial_id)
        self._trials.complete(live, statistics.fmean(objectives), duration_s=duration, seed_objectives=objectives)
        logger.info("trial %d had finished when the tuner stopped: recorded from its outputs", trial.number)
        return True

    # --- jobs in slots ---

    def _jobs_running(self) -> int:
        return sum(len(active.jobs) - sum(s.done for s in active.statuses) for active in self._active)

    def _slots_free(self) -> int:
        return self._config.max_parallel_jobs - self._jobs_running()

    def _can_start(self) -> bool:
        """A trial can start now or later: one is planned, the budget has room, or the re-evaluation is due."""
        if self._population is not None:
            return self._population.next_segment(self._trials.all()) is not None
        return self._trials.can_start(self._config.budget) or bool(self._to_reevaluate())

    def _fill_slots(self) -> None:
        while self._slots_free() > 0:
            waiting = self._next_waiting()
            if waiting is None and self._population is not None:
                waiting = self._start_segment()
                if waiting is None:
                    return  # the generation's last segments still run, or the run is done
            if waiting is None:
                if self._trials.can_start(self._config.budget):
                    waiting = self._start_trial()
                elif self._to_reevaluate():
                    self._start_reevaluations()
                    continue
                else:
                    return
            spec = waiting.pending.pop(0)
            try:
                spec.base_dir.mkdir(parents=True, exist_ok=True)
                job: Job = self._runner.start(spec)
            except Exception as error:  # recorded as the trial's failure; the run goes on
                logger.exception("could not start the job in %s", spec.base_dir)
                job = _Unstarted(spec, f"could not start the job: {type(error).__name__}: {error}")
            waiting.jobs.append(job)
            waiting.statuses.append(JobStatus())

    def _next_waiting(self) -> _ActiveTrial | None:
        """The trial whose job starts next: search trials in order; re-evaluations in turn, seed by seed,
        so that a machine that slows down mid-run slows every candidate alike."""
        waiting = [active for active in self._active if active.pending and active.pruned_at is None]
        if not waiting:
            return None
        return max(waiting, key=lambda active: (not active.reevaluation, len(active.pending)))

    def _start_trial(self) -> _ActiveTrial:
        config = self._config
        trial, directory, flat = self._trials.ask(config.space)
        seeds = None
        if config.seeds > 1:
            base_seed = int(flat.get(SEED_KEY, 0))
            seeds = [base_seed + index for index in range(config.seeds)]
            trial.set_user_attr(ATTR_SEEDS, seeds)
        return self._activate(trial, directory, flat, seeds)

    def _start_segment(self) -> _ActiveTrial | None:
        """The next PBT segment, started from its parent's final checkpoint (None: none can start now)."""
        config = self._config
        trials = self._trials.all()
        assert self._population is not None
        segment = self._population.next_segment(trials)
        if segment is None:
            return None
        extra = pbt.segment_hyperparameters(config.space, segment, interval=config.perturbation_interval)
        trial, directory, flat = self._trials.ask(config.space, planned=segment.tuned, attrs=segment.attrs,
                                                  extra=extra)
        if segment.parent is not None:
            parent = next(item for item in trials if item.number == segment.parent)
            try:
                pbt.start_from(files_dir(parent), self._runner.job_dir(directory))
            except (TuningError, OSError) as error:  # the segment fails; its member takes a checkpoint next
                self._fail(trial, f"could not start from trial {parent.number}'s checkpoint: {error}", 0.0)
                return None
        active = self._activate(trial, directory, flat, None)
        if segment.exploited is not None:
            self._note = f"member {segment.member} takes member {segment.exploited}'s checkpoint"
        return active

    def _activate(
        self,
        trial: optuna.Trial,
        directory: Path,
        flat: dict[str, Any],
        seeds: list[int] | None,
        *,
        reevaluation: bool = False,
    ) -> _ActiveTrial:
        """Queue a trial's jobs, one per seed (`seeds` None: one job with the seed `flat` has, if any)."""
        active = _ActiveTrial(trial, directory, self._specs(directory, flat, seeds), reevaluation=reevaluation)
        self._active.append(active)
        return active

    def _specs(self, directory: Path, flat: dict[str, Any], seeds: list[int] | None) -> list[JobSpec]:
        """A trial's jobs, one per seed."""
        specs = []
        for index, job_dir in enumerate(job_dirs(directory, len(seeds) if seeds else 1)):
            job_hyperparameters = dict(flat) if seeds is None else {**flat, SEED_KEY: seeds[index]}
            specs.append(
                JobSpec(
                    job_dir,
                    self._config.problem,
                    job_hyperparameters,
                    num_cpus=self._config.cpus_per_job,
                    metric=self._config.objective_metric,
                )
            )
        return specs

    # --- re-evaluation ---

    def _to_reevaluate(self) -> list[Candidate]:
        """Candidates still to re-evaluate once the search has started its last trial: the default at
        once (it depends on no result; a slot the last search trials leave free trains it), the best
        trials when every search trial has ended."""
        config = self._config
        if not config.reevaluate_top or self._trials.can_start(config.budget):
            return []
        searching = any(not active.reevaluation for active in self._active)
        trials = self._trials.all()
        started = reevaluations(trials)
        plan = candidates(trials, self._trials.study.direction, top=config.reevaluate_top, default=config.space.static)
        if len(plan) == 1 and not searching:  # no search trial completed: nothing to compare the default with
            return []
        return [candidate for candidate in plan
                if candidate.key not in started and (not searching or candidate.key == DEFAULT_CANDIDATE)]

    def _start_reevaluations(self) -> None:
        seeds = fresh_seeds(self._trials.all(), self._config.reevaluate_seeds)  # every search trial is asked by now
        keys = []
        for candidate in self._to_reevaluate():
            trial, directory = self._trials.ask_reevaluation(candidate, seeds)
            self._activate(trial, directory, candidate.hyperparameters, seeds, reevaluation=True)
            keys.append("the default" if candidate.key == DEFAULT_CANDIDATE else f"trial {candidate.key}")
        self._note = f"re-evaluating {', '.join(keys)} on seeds {', '.join(map(str, seeds))}"

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
        """Feed new intermediate values (mean over seeds, per iteration, at its env step) to the pruner."""
        if active.pending or not active.statuses:
            return
        per_seed = [{record.iteration: record for record in status.values} for status in active.statuses]
        iterations = sorted(set.intersection(*(set(records) for records in per_seed)) - active.reported)
        for iteration in iterations:
            records = [records[iteration] for records in per_seed]
            value = statistics.fmean(record.value for record in records)  # type: ignore[misc]
            # Env steps, not iterations, are the comparable resource (batch sizes differ between trials).
            step = min(record.env_steps or iteration for record in records)
            active.reported.add(iteration)
            if step in active.curve_s:
                continue  # a job that printed a repeated count: keep the first value
            active.trial.report(value, step)
            active.curve_s[step] = round(time.monotonic() - active.started, 1)
            if not active.reevaluation and active.trial.should_prune():
                active.pruned_at = step
                active.stop_deadline = time.monotonic() + STOP_GRACE_S
                active.pending.clear()
                for job in active.jobs:
                    job.stop()
                logger.info("trial %d pruned at %d env steps (objective %.4g)", active.trial.number, step, value)
                return

    def _finish(self, active: _ActiveTrial) -> None:
        self._active.remove(active)
        trial, number = active.trial, active.trial.number
        duration = round(time.monotonic() - active.started, 1)
        outputs = [status.output_dir for status in active.statuses if status.output_dir]
        if outputs:  # the jobs' model and checkpoints stay on a cluster's storage: the report says where
            self._trials.record_outputs(trial, outputs)
        if active.pruned_at is not None:
            for job in active.jobs:
                job.wait(STOP_GRACE_S)
            self._trials.prune(trial, duration_s=duration, curve_s=active.curve_s)
            self._note = f"trial {number} stopped early at {active.pruned_at:,} env steps"
        else:
            failures = [status.failure for status in active.statuses if status.failure]
            objectives = [_objective(status.values, self._config.objective_last_k) for status in active.statuses]
            if failures:
                self._fail(trial, failures[0], duration)
            elif not all(math.isfinite(value) for value in objectives):
                self._fail(trial, f"the objective is not a finite number: {objectives}", duration)
            else:
                value = statistics.fmean(objectives)
                self._trials.complete(
                    trial, value, duration_s=duration, seed_objectives=objectives, curve_s=active.curve_s
                )
                logger.info("trial %d complete: %s = %.6g", number, self._config.objective_metric, value)
                self._note = f"trial {number}: {value:.4g}"
        self._write_outputs(final=False)

    def _fail(self, trial: optuna.Trial, reason: str, duration: float) -> None:
        self._trials.fail(trial, reason, duration_s=duration)
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
            self._trials.interrupt(active.trial)
        self._active.clear()

    # --- output ---

    def _write_outputs(self, *, final: bool) -> dict[str, Path]:
        assert self._config.run_dir is not None
        try:
            files = report.write_outputs(
                self._trials.study, self._config.run_dir, objective=self._config.objective_metric, html=final
            )
            if self._population is not None and final:
                files.update(pbt.write_outputs(self._trials.all(), self._trials.study.direction, self._config.run_dir))
            return files
        except Exception as error:  # a report problem must not lose the run: the study is safe in storage
            logger.exception("could not write the report: %s", error)
            self._console.say(f"warning: could not write the report ({type(error).__name__}: {error}); see tuner.log")
            return {}

    def _progress(self) -> None:
        line = self._trials.progress(budget=self._config.budget, running=self._jobs_running())
        if self._population is not None:
            planned = [trial.user_attrs[ATTR_GENERATION] for trial in pbt.segments(self._trials.all()).values()]
            line += f"; generation {max(planned, default=0) + 1} of {self._config.generations}"
        if self._config.reevaluate_top and not self._trials.can_start(self._config.budget):
            done = sum(item.trial.state.is_finished() for item in reevaluations(self._trials.all()).values())
            line += f"; re-evaluated {done} of {self._config.reevaluate_top + 1} configurations"
        self._console.progress(line, note=self._note, detail=self._running_text())
        self._note = ""

    def _running_text(self) -> str:
        """Latest iteration and objective of each running trial, e.g. `#3 it 2: -12.4`."""
        parts = []
        for active in self._active:
            if not active.jobs:
                continue  # its jobs wait for a slot (a re-evaluation queues all of its seeds)
            latest = [status.values[-1] for status in active.statuses if status.values]
            if latest:
                step = min(record.iteration for record in latest)
                mean = statistics.fmean(record.value for record in latest)  # type: ignore[misc]
                parts.append(f"#{active.trial.number} it {step}: {mean:.4g}")
            else:
                parts.append(f"#{active.trial.number} starting")
        return ", ".join(parts)

    def _result(self, interrupted: bool, files: dict[str, Path]) -> TuningResult:
        assert self._config.run_dir is not None
        trials = self._trials.all()
        found = counts(trials)
        best, answer = self._trials.best(), self._trials.answer()
        return TuningResult(
            self._config.run_dir,
            found["complete"],
            found["pruned"],
            found["failed"],
            interrupted,
            best.value if best else None,
            hyperparameters(answer) if answer else None,
            files,
            {key: item.mean for key, item in reevaluations(trials).items()},
        )

    def _summary(self, result: TuningResult) -> None:
        resume = shlex.join(["python", "scripts/tune.py", "--resume", str(result.run_dir)])
        stopped = f"continue with: {resume}" if result.interrupted else None
        text = report.summary(
            self._trials.study,
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


def _objective(values: list[Record], last_k: int) -> float:
    """The mean of the last `last_k` values a job reported (NaN when it reported none)."""
    if not values:
        return math.nan
    return statistics.fmean(record.value for record in values[-last_k:])  # type: ignore[misc]  # finite by JobStatus


class _StopRequest:
    """Ctrl-C or SIGTERM asked the run to stop (the loop stops at its next safe point)."""

    requested = False


@contextmanager
def _stop_signals() -> Iterator[_StopRequest]:
    """Ctrl-C and SIGTERM stop the run (jobs ended, trials marked for rerun) between two steps of the loop,
    never inside one: a KeyboardInterrupt raised in the middle of a study write leaves SQLite's write lock
    held by the cut transaction, and the interrupted trials' record then fails with "database is locked"."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum: int, frame: Any) -> None:
        stop.requested = True

    previous = {signum: signal.signal(signum, request) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
