"""The tuning loop: an Optuna study whose trials are jobs, run in parallel within a budget.

The study lives in SQLite inside the run directory (or any SQLAlchemy URL). Each trial is one job per
seed under the job contract, in `trials/NNNN` of the run directory. Every trial ends complete, pruned or
failed (with its reason). A run has two phases: the search (the budget's trials, sampled by the
strategy; a warm start first copies in its parents' results), then the re-evaluation: the search's
`reevaluate_top` best configurations and the default, each trained again on the same fresh seeds
(`reevaluate_seeds`, or what fits in a share of the max runtime), so that the answer written to
best_hyperparameters.json is the best by re-evaluation, not the luckiest trial. Strategy PBT replaces
both phases with a population's generations of job segments (`pbt.py` plans them; each starts from its
parent's checkpoint). A run stopped by Ctrl-C, SIGTERM or kill -9 resumes from its storage: finished
trials are kept, trials that were running are run again as new trials with the same parameters, and only
the reruns count against the budget. This module is the tuner's face: it claims a run directory, then
runs the plan's work (`plan.py`: what to start next) through the scheduler (`scheduler.py`: jobs in
slots, the pruner, each trial's end) after the start-up recovery (`recovery.py`), and says how the run
goes. The trial record is `record.py`'s, the study's writer `trials.py`, the run directory's layout
`rundir.py`'s. Local jobs share one Ray instance per run (`shared_ray.py`).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import optuna
from optuna.trial import FrozenTrial

from sagemaker_rl.console import Console
from sagemaker_rl.job import SEED_KEY
from sagemaker_rl.tuning import pbt, report
from sagemaker_rl.tuning.config import (
    TuningConfig,
    check_hyperparameters,
    load_run_config,
    paused_at_once,
    record_run,
    unread_evaluation,
)
from sagemaker_rl.tuning.plan import Plan, Promote, Retrain, Sample, StartSegment, View, Work, make_plan
from sagemaker_rl.tuning.ranking import reevaluations
from sagemaker_rl.tuning.record import (
    DEFAULT_CANDIDATE,
    Status,
    TrialRecord,
    counts,
    hyperparameters,
    trial_job_dirs,
    tuned,
)
from sagemaker_rl.tuning.recovery import recover
from sagemaker_rl.tuning.rundir import is_run_dir, job_dirs, locked
from sagemaker_rl.tuning.runners import LocalProcessRunner, Runner
from sagemaker_rl.tuning.scheduler import Scheduler
from sagemaker_rl.tuning.shared_ray import SharedRay
from sagemaker_rl.tuning.space import TuningError
from sagemaker_rl.tuning.trials import Trials, check_storage
from sagemaker_rl.tuning.warm_start import copy_parents, load_parents

logger = logging.getLogger(__name__)

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

    def __init__(self, config: TuningConfig, parents: list[tuple[str, list[Any]]] | None = None, *,
                 runner: Runner | None = None) -> None:
        assert config.run_dir is not None and config.storage is not None
        self.config = config
        self.runner = runner  # where its jobs run (None: local processes sharing one Ray instance)
        self._parents = parents or []  # a new run's warm-start parents and their trials

    @property
    def run_dir(self) -> Path:
        assert self.config.run_dir is not None
        return self.config.run_dir

    def run(self, *, runner: Runner | None = None, out: IO[str] | None = None) -> TuningResult:
        """Run trials until the budget is used (or Ctrl-C / SIGTERM), then write the report.

        Without a `runner` (given here or when the run was opened), jobs run as local processes that share one
        Ray instance, stopped at the end, each slot with a process on standby.
        """
        runner = runner or self.runner
        shared_ray, local = None, None
        job_ended = threading.Event()  # set by the local runner's jobs: the loop goes on at once, not at its next poll
        if runner is None:  # a job slot each keeps a job process on standby, its imports done
            shared_ray = SharedRay(self.run_dir, num_cpus=self.config.total_cpus)
            runner = local = LocalProcessRunner(shared_ray=shared_ray, standby=self.config.max_parallel_jobs,
                                                on_job_end=job_ended.set)
        try:
            return _Tuner(self.config, runner, out or sys.stdout, self._parents, job_ended=job_ended).run()
        finally:
            if local is not None:
                local.close()
            if shared_ray is not None:
                shared_ray.close()


@contextmanager
def open_run(config: TuningConfig, *, command: list[str] | None = None, envs_here: bool = True,
             runner: Runner | None = None) -> Iterator[TuningRun]:
    """Check `config`, then claim a new run directory for it: tuning.json written, the lock held.

    Everything a user can get wrong fails here, before the run directory is made. `envs_here` False: the jobs
    run in an image or on a cluster, so an env whose code this machine lacks is left to the job's own check.
    `runner` runs the jobs (None: local processes).
    """
    given, config = config, _within_cpus(config.resolved())
    assert config.run_dir is not None
    _check_new_run(config.run_dir)
    check_storage(config)
    parents = load_parents(config)  # cheap: before the hyperparameter check, which starts a process
    if config.check_hyperparameters:
        check_hyperparameters(config, envs_here=envs_here)
    existed, before, lock = config.run_dir.is_dir(), set(), ExitStack()
    try:
        before = set(config.run_dir.iterdir()) if existed else set()
        config.run_dir.mkdir(parents=True, exist_ok=True)
        lock.enter_context(locked(config.run_dir))
        record_run(given, config, command or sys.argv)
    except OSError as error:  # a file on the way, no permission, a read-only or full disk: nothing of it is left
        lock.close()
        _remove_new(config.run_dir, before if existed else None)
        fix = "free space there or choose" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "choose"
        raise TuningError(f"cannot start the run in {config.run_dir} ({error.strerror or error}): {fix} another "
                          "--run-dir") from None
    with lock:
        yield TuningRun(config, parents, runner=runner)


def _remove_new(run_dir: Path, before: set[Path] | None) -> None:
    """Remove `run_dir` (None `before`: it did not exist), or what was made in it since `before`."""
    if before is None:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    try:
        for path in set(run_dir.iterdir()) - before:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    except OSError:  # unreadable: nothing of ours could be made there either
        pass


def _check_new_run(run_dir: Path) -> None:
    """A new run's directory: not another run's, not a file."""
    if is_run_dir(run_dir):
        raise TuningError(f"{run_dir} already holds a tuning run: continue it with --resume {run_dir}, "
                          "or choose another --run-dir")
    if run_dir.exists() and not run_dir.is_dir():
        raise TuningError(f"--run-dir {run_dir} is a file: name a directory (new or empty)")


def _within_cpus(config: TuningConfig) -> TuningConfig:
    """`config` with at most one parallel job per CPU: more would wait in Ray, each a process of its own."""
    if config.max_parallel_jobs <= config.total_cpus:
        return config
    logger.warning("max_parallel_jobs %d is more than the %d CPUs the jobs share: running %d at a time (give "
                   "num_cpus, --num-cpus, if more are there)", config.max_parallel_jobs, config.total_cpus,
                   config.total_cpus)
    return dataclasses.replace(config, max_parallel_jobs=config.total_cpus)


@contextmanager
def reopen_run(
    run_dir: str | Path, *, max_jobs: int | None = None, max_parallel_jobs: int | None = None,
    runner: Runner | None = None,
) -> Iterator[TuningRun]:
    """Claim the run in `run_dir` again (after Ctrl-C, a crash or kill -9), optionally with a new budget."""
    config = load_run_config(run_dir)
    changes: dict[str, Any] = {
        key: value
        for key, value in (("max_jobs", max_jobs), ("max_parallel_jobs", max_parallel_jobs))
        if value is not None
    }
    resized = _within_cpus(dataclasses.replace(config, **changes))
    if config.strategy.population_based and resized.generation_env_steps != config.generation_env_steps:
        raise TuningError(f"max_jobs {max_jobs} would change the length of this run's generations (its train_budget "
                          f"{config.train_budget} over {config.generations} of {config.generation_env_steps:,} env "
                          "steps), which its members' checkpoints end at: resume without --max-jobs")
    config = resized
    assert config.run_dir is not None
    with locked(config.run_dir):
        if changes:
            record_run(config, config, None)
        yield TuningRun(config, runner=runner)


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


class _Tuner:
    """Runs a run's plan: recovery first, then the plan's work in the scheduler's slots, then the report."""

    def __init__(
        self, config: TuningConfig, runner: Runner, out: IO[str], parents: list[tuple[str, list[Any]]], *,
        job_ended: threading.Event | None = None,
    ) -> None:
        self._job_ended = job_ended or threading.Event()
        assert config.run_dir is not None
        self._config = config
        self._runner = runner
        self._out = out
        self._console = Console(out)
        self._trials = Trials.open(config)
        self._parents = parents if not self._trials.all() else []  # a new run: its parents' results come first
        self._plan: Plan = make_plan(config, self._trials.study.direction)
        self._scheduler = Scheduler(config, runner, self._trials)
        self._started = time.monotonic()

    def run(self) -> TuningResult:
        interrupted = False
        with _stop_signals() as stop:
            try:
                self._start()
                while True:
                    self._job_ended.clear()
                    if stop.requested:
                        raise KeyboardInterrupt
                    if self._out_of_time():
                        break
                    self._fill_slots()
                    if self._scheduler.poll():
                        self._write_outputs(final=False)
                    self._progress()
                    if not self._scheduler.active and self._plan.next(self._view()) is None:
                        break
                    self._job_ended.wait(POLL_INTERVAL_S)
                if stopped := self._plan.stopped():
                    self._console.say(stopped)
            except KeyboardInterrupt:
                interrupted = True
                self._console.say("stopping: ending running jobs ...")
                self._scheduler.interrupt()
        self._trials.changed()  # the last intermediate values went to the study past Trials
        files = self._write_outputs(final=True)
        result = self._result(interrupted, files)
        self._summary(result)
        return result

    def _start(self) -> None:
        """Recover what an earlier tuner left, copy in the warm start's parents, and say what the run does."""
        config = self._config
        self._scheduler.note = recover(config, self._trials, self._runner, self._scheduler)
        if self._parents:
            copied = copy_parents(self._trials.study, self._parents, config.warm_start_type, config.space)
            self._trials.changed()
            self._console.say(f"warm start ({config.warm_start_type}): {copied} trials of "
                              f"{len(self._parents)} parent run(s) copied in")
        self._console.say(
            f"{self._plan.describe()}, {config.max_parallel_jobs} at a time, {config.cpus_per_job} CPU(s) each, "
            f"strategy {config.strategy}; details in {config.run_dir}"
        )

    def _view(self) -> View:
        return View(self._trials.all(), self._trials.study.direction, searching=self._scheduler.searching,
                    elapsed_s=time.monotonic() - self._started)

    def _out_of_time(self) -> bool:
        """At the run's max runtime: its running trials stopped and failed with the reason; True if so."""
        limit = self._config.max_runtime_s
        if limit is None or time.monotonic() - self._started < limit:
            return False
        stopped = self._scheduler.end(f"stopped: the run reached its max runtime ({limit} s)")
        self._console.say(f"the run reached its max runtime ({limit} s): {stopped} running trial(s) stopped")
        return True

    def _fill_slots(self) -> None:
        """Start queued jobs; when none is queued and a slot is free, start the plan's next work."""
        while True:
            self._scheduler.start_jobs()
            if self._scheduler.free() <= 0:
                return
            work = self._plan.next(self._view())
            if work is None or not self._begin(work):
                return

    def _begin(self, work: Work) -> bool:
        """Ask the study for the trial(s) of `work` and queue their jobs; False when nothing could start."""
        if isinstance(work, Sample):
            self._queue_search(*self._trials.ask(self._config.space))
        elif isinstance(work, Promote):
            return self._promote(work.trial)
        elif isinstance(work, StartSegment):
            return self._start_segment(work.segment)
        elif isinstance(work, Retrain):
            self._retrain(work)
        return True

    def _queue_search(self, trial: optuna.Trial, directory: Path, flat: dict[str, Any]) -> None:
        """Queue a search trial's jobs: one per seed from its seed on."""
        config = self._config
        # Not recorded: a re-evaluation of it evaluates, and trains with the user's stop grace.
        flat = {**flat, **unread_evaluation(config, flat), **paused_at_once(config)}
        seeds = [int(flat.get(SEED_KEY, 0)) + index for index in range(config.seeds)] if config.seeds > 1 else None
        if seeds:
            self._trials.record_seeds(trial, seeds)
        self._scheduler.queue(trial, directory, flat, seeds)

    def _promote(self, paused: FrozenTrial) -> bool:
        """ASHA's promotion: a new trial with a paused trial's values, each job from its job's last checkpoint."""
        trial, directory, flat = self._trials.ask(self._config.space, planned=tuned(paused),
                                                  record=TrialRecord(parent=paused.number))
        error = _start_from(paused, [self._runner.job_dir(job) for job in job_dirs(directory, self._config.seeds)])
        if error:  # recorded: the paused trial is not promoted again
            self._scheduler.fail(trial, f"could not continue trial {paused.number} from its checkpoint: {error}", 0.0)
            return False
        self._queue_search(trial, directory, flat)
        self._scheduler.note = f"trial {paused.number} promoted: trial {trial.number} continues it"
        return True

    def _start_segment(self, segment: pbt.Segment) -> bool:
        """A PBT segment, started from its parent's final checkpoint."""
        config = self._config
        extra = pbt.segment_hyperparameters(config.space, segment, interval=config.generation_env_steps)
        trial, directory, flat = self._trials.ask(config.space, planned=segment.tuned, record=segment.record,
                                                  extra=extra)
        if segment.parent is not None:
            parent = next(item for item in self._trials.all() if item.number == segment.parent)
            if error := _start_from(parent, [self._runner.job_dir(directory)]):  # its member takes a checkpoint next
                self._scheduler.fail(trial, f"could not start from trial {parent.number}'s checkpoint: {error}", 0.0)
                return False
        unread = unread_evaluation(config, flat, generation=segment.generation)
        self._scheduler.queue(trial, directory, {**flat, **unread}, None)
        if segment.exploited is not None:
            self._scheduler.note = f"member {segment.member} takes member {segment.exploited}'s checkpoint"
        return True

    def _retrain(self, work: Retrain) -> None:
        keys = []
        for candidate in work.candidates:
            trial, directory = self._trials.ask_reevaluation(candidate, work.seeds)
            self._scheduler.queue(trial, directory, candidate.hyperparameters, work.seeds, reevaluation=True)
            keys.append("the default" if candidate.key == DEFAULT_CANDIDATE else f"trial {candidate.key}")
        self._scheduler.note = f"re-evaluating {', '.join(keys)} on seeds {', '.join(map(str, work.seeds))}"

    # --- output ---

    def _write_outputs(self, *, final: bool) -> dict[str, Path]:
        assert self._config.run_dir is not None
        try:
            files = report.write_outputs(
                self._trials.study, self._config.run_dir, objective=self._config.objective_metric, html=final
            )
            if final:
                files.update(self._plan.outputs(self._trials.all(), self._trials.study.direction,
                                                self._config.run_dir))
            return files
        except Exception as error:  # a report problem must not lose the run: the study is safe in storage
            logger.exception("could not write the report: %s", error)
            self._console.say(f"warning: could not write the report ({type(error).__name__}: {error}); see tuner.log")
            return {}

    def _progress(self) -> None:
        line = self._trials.progress(budget=self._config.budget, running=self._scheduler.running())
        line += self._plan.progress(self._view())
        self._console.progress(line, note=self._scheduler.note, detail=self._scheduler.detail())
        self._scheduler.note = ""

    def _result(self, interrupted: bool, files: dict[str, Path]) -> TuningResult:
        assert self._config.run_dir is not None
        trials = self._trials.all()
        found = counts(trials)
        best, answer = self._trials.best(), self._trials.answer()
        return TuningResult(
            self._config.run_dir,
            found[Status.COMPLETE],
            found[Status.PRUNED],
            found[Status.FAILED],
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
            code_dir=self._config.code_dir,
            objective=self._config.objective_metric,
            stopped_hint=stopped,
        )
        print(text, file=self._out, flush=True)


class _StopRequest:
    """Ctrl-C or SIGTERM asked the run to stop (the loop stops at its next safe point)."""

    requested = False


def _start_from(parent: FrozenTrial, job_dirs: list[Path]) -> str | None:
    """Put the last checkpoint of each of the parent trial's jobs into its counterpart in `job_dirs` (a PBT segment,
    an ASHA promotion: their jobs resume from it); why not, when one cannot be."""
    try:
        for source, target in zip(trial_job_dirs(parent), job_dirs, strict=True):
            pbt.start_from(source, target)
    except (TuningError, OSError, ValueError) as error:
        return str(error)
    return None


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
