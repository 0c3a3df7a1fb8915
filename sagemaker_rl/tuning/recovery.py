"""Recovery: what a tuner does at start-up with the trials an earlier tuner of its run directory left behind.

One path, in order, for each trial that was running or interrupted when a tuner stopped (Ctrl-C,
SIGTERM, kill -9, a crash): follow its jobs again when the runner can reattach to all of them;
else, once its jobs are stopped, record it from their outputs if every job had succeeded; else
run it again (a search trial as a new trial with the same parameters, a re-evaluation or PBT
segment by the plan). Only the reruns count against the budget.
"""

from __future__ import annotations

import datetime
import logging
import math
import statistics
import time
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from sagemaker_rl import contract, metrics
from sagemaker_rl.tuning.config import TuningConfig
from sagemaker_rl.tuning.record import Role, hyperparameters, read
from sagemaker_rl.tuning.runners import JobStatus, Runner
from sagemaker_rl.tuning.scheduler import ActiveTrial, Scheduler, job_specs, objective, seed_curve
from sagemaker_rl.tuning.trials import Trials

logger = logging.getLogger(__name__)


def recover(config: TuningConfig, trials: Trials, runner: Runner, scheduler: Scheduler) -> str:
    """Reattach, record or rerun each trial an earlier tuner left; returns the note for the progress line."""
    reran: list[str] = []
    followed: list[str] = []
    for trial in trials.to_rerun():
        if trial.state == TrialState.RUNNING:  # the tuner died (kill -9, crash): its jobs may run
            active = _reattach(config, trials, runner, trial)
            if active is not None:
                scheduler.follow(active)
                followed.append(str(trial.number))
                continue
            for directory in read(trial).job_dirs(config.seeds):
                runner.stop_orphan(directory)
            if _record_finished(config, trials, trial):
                continue
        trials.rerun(trial)
        logger.info("trial %d was running when the tuner stopped: it runs again", trial.number)
        reran.append(str(trial.number))
    notes = [f"reattached to the jobs of trial(s) {', '.join(followed)}"] if followed else []
    if reran:
        notes.append(f"interrupted trial(s) {', '.join(reran)} run again with the same parameters")
    return "; ".join(notes)


def _reattach(config: TuningConfig, trials: Trials, runner: Runner, trial: FrozenTrial) -> ActiveTrial | None:
    """Follow again every job of a trial the dead tuner left running; None (nothing kept) if one cannot be."""
    record = read(trial)
    if not record.trial_dir:  # asked, but stopped before its jobs were placed
        return None
    directory = record.trial_dir
    specs = job_specs(config, Path(directory), hyperparameters(trial), record.seeds)
    jobs = [runner.reattach(spec) for spec in specs]
    if not all(jobs):
        for job in jobs:
            if job is not None:
                job.wait(0)  # the trial runs again: end what did reattach
        return None
    age = (datetime.datetime.now() - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0
    active = ActiveTrial(trials.resume(trial), Path(directory), [],
                         [job for job in jobs if job], started=time.monotonic() - age,
                         reevaluation=record.role is Role.REEVALUATION)
    active.statuses = [JobStatus() for _ in active.jobs]
    # Steps the dead tuner reported are not reported again (their time: at the latest now).
    active.curve_s = {step: round(age, 1) for step in trial.intermediate_values}
    logger.info("trial %d: reattached to its running job(s)", trial.number)
    return active


def _record_finished(config: TuningConfig, trials: Trials, trial: FrozenTrial) -> bool:
    """Record a trial whose jobs all succeeded before the tuner died, from their outputs; False if not."""
    dirs = read(trial).job_dirs(config.seeds)
    if not dirs or not all(contract.JobPaths(job_dir).success_file.exists() for job_dir in dirs):
        return False
    per_job = []
    for job_dir in dirs:
        lines = (job_dir / contract.STDOUT_LOG).read_text(errors="replace").splitlines()
        records = metrics.read_records(lines, config.objective_metric)
        per_job.append([item for item in records if item.value is not None])
    objectives = [objective(records, config.objective_last_k) for records in per_job]
    if not all(math.isfinite(value) for value in objectives):
        return False
    paths = contract.JobPaths(dirs[-1])
    duration = round(paths.success_file.stat().st_mtime - paths.hyperparameters_file.stat().st_mtime, 1)
    live = trials.resume(trial)
    for _, step, value in seed_curve(per_job):  # what the jobs reported after the tuner died completes the curve
        if step not in trial.intermediate_values:
            live.report(value, step)
    trials.complete(live, statistics.fmean(objectives), duration_s=duration, seed_objectives=objectives)
    logger.info("trial %d had finished when the tuner stopped: recorded from its outputs", trial.number)
    return True
