"""Scheduler: runs the jobs of a run's trials in its slots, feeds the pruner and finishes each trial.

A trial queued here is one job per seed; `start_jobs` starts queued jobs while slots are free,
`poll` reads every running job, reports the trial's new intermediate values (the mean over seeds,
at its env step) to the pruner, stops a pruned trial's jobs and tells the study how each trial
ended: complete (the mean of its seeds' objectives), pruned, or failed with the reason. What to
queue is the plan's decision (`plan.py`); the scheduler does not know phases.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from sagemaker_rl.job import SEED_KEY, STOP_PREFIX
from sagemaker_rl.metrics import Record
from sagemaker_rl.tuning.config import TuningConfig
from sagemaker_rl.tuning.rundir import job_dirs
from sagemaker_rl.tuning.runners import Job, JobSpec, JobStatus, Runner
from sagemaker_rl.tuning.trials import Trials

logger = logging.getLogger(__name__)

STOP_GRACE_S = 15.0  # seconds a stopped job gets to end before it is killed (ASHA continues a paused one from the
# checkpoint it saves as it ends: config.paused_at_once)


@dataclass
class ActiveTrial:
    """A trial this tuner runs: its jobs, started and still queued, and what it reported."""

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


def job_specs(config: TuningConfig, directory: Path, flat: dict[str, Any], seeds: list[int] | None) -> list[JobSpec]:
    """A trial's jobs, one per seed (`seeds` None: one job with the seed `flat` has, if any)."""
    specs = []
    for index, job_dir in enumerate(job_dirs(directory, len(seeds) if seeds else 1)):
        job_hyperparameters = dict(flat) if seeds is None else {**flat, SEED_KEY: seeds[index]}
        specs.append(JobSpec(job_dir, config.problem, job_hyperparameters, num_cpus=config.cpus_per_job,
                             metric=config.objective_metric, code_dir=config.code_dir))
    return specs


def objective(values: list[Record], last_k: int) -> float:
    """The mean of the last `last_k` values a job reported (NaN when it reported none)."""
    if not values:
        return math.nan
    return statistics.fmean(record.value for record in values[-last_k:])  # type: ignore[misc]  # finite by JobStatus


def seed_curve(per_seed: Sequence[Sequence[Record]]) -> list[tuple[int, int, float]]:
    """(iteration, env steps, mean value over the seeds) of each iteration every seed's job reported, in order.

    Env steps, not iterations, are the comparable resource (batch sizes differ between trials).
    """
    by_iteration = [{record.iteration: record for record in records if record.value is not None}
                    for records in per_seed]
    common = sorted(set.intersection(*(set(records) for records in by_iteration))) if by_iteration else []
    curve = []
    for iteration in common:
        records = [records[iteration] for records in by_iteration]
        value = statistics.fmean(record.value for record in records)  # type: ignore[misc]
        curve.append((iteration, min(record.env_steps or iteration for record in records), value))
    return curve


def _at_its_stop(active: ActiveTrial, iteration: int, step: int) -> bool:
    """The report is the trial's last: its jobs trained to their env-step or iteration stop. A rung can fall
    there (ASHA's last rung at a training budget of env steps); a trial that trained in full completes."""
    if not active.jobs:
        return False
    hyperparameters = active.jobs[0].spec.hyperparameters
    steps = hyperparameters.get(STOP_PREFIX + "timesteps_total")
    iterations = hyperparameters.get(STOP_PREFIX + "training_iteration")
    return (steps is not None and step >= float(steps)) or (iterations is not None and iteration >= float(iterations))


class Scheduler:
    """The trials this tuner runs, in `max_parallel_jobs` slots."""

    def __init__(self, config: TuningConfig, runner: Runner, trials: Trials) -> None:
        self._config = config
        self._runner = runner
        self._trials = trials
        self.active: list[ActiveTrial] = []
        self.note = ""  # what just happened, for the next progress line

    def queue(self, trial: optuna.Trial, directory: Path, flat: dict[str, Any], seeds: list[int] | None, *,
              reevaluation: bool = False) -> None:
        """Queue a trial's jobs, one per seed."""
        specs = job_specs(self._config, directory, flat, seeds)
        self.active.append(ActiveTrial(trial, directory, specs, reevaluation=reevaluation))

    def follow(self, active: ActiveTrial) -> None:
        """Follow a trial whose jobs already run (reattached after a restart)."""
        self.active.append(active)

    def running(self) -> int:
        return sum(len(active.jobs) - sum(status.done for status in active.statuses) for active in self.active)

    def free(self) -> int:
        return self._config.max_parallel_jobs - self.running()

    @property
    def searching(self) -> bool:
        """A trial of the search (not a re-evaluation) is still here."""
        return any(not active.reevaluation for active in self.active)

    def _next_waiting(self) -> ActiveTrial | None:
        """The trial whose job starts next: search trials in order; re-evaluations in turn, seed by seed,
        so that a machine that slows down mid-run slows every candidate alike."""
        waiting = [active for active in self.active if active.pending and active.pruned_at is None]
        if not waiting:
            return None
        return max(waiting, key=lambda active: (not active.reevaluation, len(active.pending)))

    def start_jobs(self) -> None:
        """Start queued jobs while a slot is free."""
        while self.free() > 0 and (waiting := self._next_waiting()) is not None:
            spec = waiting.pending.pop(0)
            try:
                spec.base_dir.mkdir(parents=True, exist_ok=True)
                job: Job = self._runner.start(spec)
            except Exception as error:  # recorded as the trial's failure; the run goes on
                logger.exception("could not start the job in %s", spec.base_dir)
                job = _Unstarted(spec, f"could not start the job: {type(error).__name__}: {error}")
            waiting.jobs.append(job)
            waiting.statuses.append(JobStatus())

    def poll(self) -> bool:
        """Read every job, feed the pruner, finish trials whose jobs all ended; True when one finished."""
        finished = False
        for active in list(self.active):
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
                finished = True
        return finished

    def _report(self, active: ActiveTrial) -> None:
        """Feed new intermediate values (mean over seeds, per iteration, at its env step) to the pruner."""
        if active.pending or not active.statuses:
            return
        for iteration, step, value in seed_curve([status.values for status in active.statuses]):
            if iteration in active.reported:
                continue
            active.reported.add(iteration)
            if step in active.curve_s:
                continue  # a job that printed a repeated count: keep the first value
            active.trial.report(value, step)
            active.curve_s[step] = round(time.monotonic() - active.started, 1)
            if not active.reevaluation and not _at_its_stop(active, iteration, step) and active.trial.should_prune():
                self._prune(active, step, value)
                return

    def _prune(self, active: ActiveTrial, step: int, value: float) -> None:
        active.pruned_at = step
        active.stop_deadline = time.monotonic() + STOP_GRACE_S
        active.pending.clear()
        for job in active.jobs:
            job.stop()
        logger.info("trial %d pruned at %d env steps (objective %.4g)", active.trial.number, step, value)

    def _finish(self, active: ActiveTrial) -> None:
        self.active.remove(active)
        trial, number = active.trial, active.trial.number
        duration = round(time.monotonic() - active.started, 1)
        outputs = [status.output_dir for status in active.statuses if status.output_dir]
        if outputs:  # the jobs' model and checkpoints stay on a cluster's storage: the report says where
            self._trials.record_outputs(trial, outputs)
        if active.pruned_at is not None:
            for job in active.jobs:
                job.wait(STOP_GRACE_S)
            self._trials.prune(trial, duration_s=duration, curve_s=active.curve_s)
            self.note = f"trial {number} stopped early at {active.pruned_at:,} env steps"
            return
        failures = [status.failure for status in active.statuses if status.failure]
        if any(status.lost for status in active.statuses):
            self._trials.lost(trial, failures[0], duration_s=duration)
            logger.info("trial %d lost: %s", number, failures[0])
            self.note = f"trial {number} lost its job to Ray (its node or the run's instance ended): it runs again"
            return
        objectives = [objective(status.values, self._config.objective_last_k) for status in active.statuses]
        if failures:
            self.fail(trial, failures[0], duration)
        elif not all(math.isfinite(value) for value in objectives):
            self.fail(trial, f"the objective is not a finite number: {objectives}", duration)
        else:
            value = statistics.fmean(objectives)
            self._trials.complete(trial, value, duration_s=duration, seed_objectives=objectives,
                                  curve_s=active.curve_s)
            logger.info("trial %d complete: %s = %.6g", number, self._config.objective_metric, value)
            self.note = f"trial {number}: {value:.4g}"

    def fail(self, trial: optuna.Trial, reason: str, duration: float) -> None:
        self._trials.fail(trial, reason, duration_s=duration)
        logger.info("trial %d failed: %s (params %s)", trial.number, reason, trial.params)
        self.note = f"trial {trial.number} failed: {reason[:120]}"

    def interrupt(self) -> None:
        """Stop every job and record its trial as interrupted (it runs again on resume)."""
        for active in self._stop_all():
            self._trials.interrupt(active.trial)

    def end(self, reason: str) -> int:
        """Stop every job and record its trial as failed with `reason` (the run is over); how many there were."""
        stopped = self._stop_all()
        for active in stopped:
            self.fail(active.trial, reason, round(time.monotonic() - active.started, 1))
        return len(stopped)

    def _stop_all(self) -> list[ActiveTrial]:
        """Stop every job (killed after STOP_GRACE_S); the trials they belonged to, no longer active."""
        stopped, self.active = self.active, []
        for active in stopped:
            active.pending.clear()
            for job in active.jobs:
                job.stop()
        for active in stopped:
            for job in active.jobs:
                job.wait(STOP_GRACE_S)
        return stopped

    def detail(self) -> str:
        """Latest iteration and objective of each running trial, e.g. `#3 it 2: -12.4`."""
        parts = []
        for active in self.active:
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
