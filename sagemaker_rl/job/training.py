"""Training: one RLlib PPO run from a JobConfig, read top to bottom — start or resume, iterate, stop, write the model.

The loop prints the reward lines (metrics.py) and one progress line per iteration; everything
else RLlib and Ray say goes to the job's log file. Checkpoints carry the job's own counters, so
a job killed at any point continues from its last checkpoint with the same budget. A job fails
with its reason, never hangs: resources are checked before Ray starts, a non-finite return or loss
is a divergence, a watchdog ends a job without progress, and an env runner's crash is reported by
the exception that ended it.
"""

from __future__ import annotations

import _thread
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sagemaker_rl import metrics
from sagemaker_rl.contract import JobPaths
from sagemaker_rl.errors import JobError, UserError
from sagemaker_rl.job import learner, progress, ray_session
from sagemaker_rl.job.checkpoints import JobState, Snapshot, latest_checkpoint, restore, save_checkpoint, snapshot
from sagemaker_rl.job.evaluation import PolicyEvaluation
from sagemaker_rl.job.hyperparameters import JobConfig, StopCriteria
from sagemaker_rl.job.keys import LEARNER_KEY, SAMPLER_KEY, STOP_GRACE_KEY, STOP_PREFIX
from sagemaker_rl.job.model import model_written, write_model
from sagemaker_rl.job.ppo_config import build_algorithm, build_ppo_config, check_resources
from sagemaker_rl.job.progress import Progress

logger = logging.getLogger(__name__)


def train(
    job: JobConfig, paths: JobPaths, *, cpus: int, on_built: Callable[[Any], None] | None = None
) -> Progress | None:
    """Run PPO until a stop criterion is met; returns the last iteration's progress.

    A job whose final checkpoint already meets the stop criteria (killed while it wrote model/)
    writes the model from that checkpoint without training. `on_built` is called with the
    algorithm once it is built (a multi-host job reports where its env runners run).
    """
    paths.make_dirs()
    check_resources(job, cpus=cpus)
    config = build_ppo_config(job, cpus=cpus)
    state, checkpoint = latest_checkpoint(paths.checkpoints)
    finished = _stop_reason(job.stop, state, state.last_reward)
    if finished and model_written(paths, state):
        raise UserError(f"the checkpoint in {checkpoint} already meets the stop criteria "
                        f"({finished}) and model/ holds its model: raise a {STOP_PREFIX}* value "
                        "or empty the checkpoints directory to train again")
    with (ray_session.started(cpus, paths, stall_timeout_s=job.stall_timeout_s) as watchdog,
          _algorithm(config, job) as algo):
        logger.info("algorithm built")  # with the log's times: the job's start-up (bench/trial_start.py)
        _say_lean_refusals(algo)
        if on_built is not None:
            on_built(algo)
        _start(algo, job, state, checkpoint)
        if finished:
            print(f"Stopped: {finished} (at the last checkpoint; writing the model).", flush=True)
            write_model(algo, job, paths, state, None)
            return None
        return _loop(algo, job, paths, state, watchdog)


@contextmanager
def _algorithm(config: Any, job: JobConfig) -> Iterator[Any]:
    """The algorithm built from `config`, stopped at the end."""
    algo = build_algorithm(config, job)
    try:
        yield algo
    finally:
        algo.stop()


def _say_lean_refusals(algo: Any) -> None:
    """A notice for each reason an env runner or the learner runs RLlib's loop though the job asked for the lean one."""
    def refusals(results: Any) -> list[str]:
        return sorted({refusal for refusal in results if refusal})

    for refusal in refusals(algo.env_runner_group.foreach_env_runner(lambda runner: getattr(runner, "lean_refusal",
                                                                                            None))):
        logger.warning("notice: sampling with RLlib's loop: the lean sampler (%s) does not serve %s", SAMPLER_KEY,
                       refusal)
    for refusal in refusals(result.get() for result in algo.learner_group.foreach_learner(
            lambda learner: getattr(learner, "lean_refusal", None))):
        logger.warning("notice: updating with RLlib's loop: the lean learner (%s) does not serve %s", LEARNER_KEY,
                       refusal)


def _start(algo: Any, job: JobConfig, state: JobState, checkpoint: Path | None) -> None:
    """Continue from `checkpoint`, or start a new policy at the job's initial log std."""
    if checkpoint is not None:
        restore(algo, checkpoint, state, job)
        print(f"Resumed from {checkpoint.name}: iteration {state.training_iteration}, "
              f"{state.timesteps_total:,} env steps, {state.time_total_s:.0f} s", flush=True)
    elif job.initial_log_std is not None:
        learner.set_initial_log_std(algo, job.initial_log_std, gsde=job.gsde_resample_steps is not None)


def _loop(
    algo: Any, job: JobConfig, paths: JobPaths, state: JobState, watchdog: ray_session.Watchdog
) -> Progress | None:
    time_offset = state.time_total_s
    stop = _StopOnSigterm(job.stop_grace_s)
    completed: Snapshot | None = None  # the last iteration's, while no checkpoint holds it
    with (progress.ProgressLog(paths.intermediate, after_iteration=state.training_iteration) as progress_log,
          closing(PolicyEvaluation(job.env, episodes=job.evaluation_episodes, seed=job.seed))
          if job.evaluation_episodes else nullcontext() as evaluate):
        while True:
            result = _train(algo, stop, completed, job, paths, state)
            watchdog.kick()
            last = _iteration(result, time_offset, state, job)
            steps_before = state.timesteps_total
            record_iteration(state, last, job)
            reason = _stop_reason(job.stop, state, last.episode_reward_mean)
            if evaluate is not None and not stop.requested and (
                    reason or _crossed(job.evaluation_interval, steps_before, state.timesteps_total)):
                last.evaluation_reward_mean = evaluate(algo)
            progress.report(job.label, last, best_reward=state.best_reward)
            progress_log.write(last)
            completed = snapshot(algo, state)
            if reason or stop.requested:
                save_checkpoint(algo, paths.checkpoints, completed, keep=job.keep_checkpoints)
                if stop.requested:
                    raise JobError("the job received SIGTERM; a checkpoint was saved, rerun it to resume")
                print(f"Stopped: {reason}.", flush=True)
                write_model(algo, job, paths, state, last)
                return last
            if state.training_iteration % job.checkpoint_freq == 0:
                save_checkpoint(algo, paths.checkpoints, completed, keep=job.keep_checkpoints)
                completed = None


def _train(
    algo: Any, stop: _StopOnSigterm, completed: Snapshot | None, job: JobConfig, paths: JobPaths, state: JobState
) -> dict[str, Any]:
    """One training iteration; a SIGTERM that cuts it short saves the last completed one and ends the job."""
    try:
        with stop.cuts_short():
            return algo.train()
    except BaseException as error:
        if not ray_session.ended_by(error, _CutShort):
            raise
        if completed is not None:
            save_checkpoint(algo, paths.checkpoints, completed, keep=job.keep_checkpoints)
        raise JobError(_cut_short_reason((completed.job if completed else state).training_iteration,
                                         job.stop_grace_s)) from None


def _iteration(result: dict[str, Any], time_offset: float, state: JobState, job: JobConfig) -> Progress:
    """The iteration's progress; a JobError (after the reward line SageMaker reads as no number) if it diverged."""
    diverged = progress.divergence(result)
    last = progress.over_recent_episodes(progress.read_progress(result, time_offset), state)
    if diverged:
        print(metrics.diverged_line(), flush=True)
        raise JobError(f"diverged: {diverged} at iteration {last.training_iteration} "
                       f"({last.timesteps_total:,} env steps): {progress.divergence_hint(diverged, job.ppo)}")
    return last


def _crossed(interval: int, before: int, now: int) -> bool:
    """The iteration from env step `before` to `now` passed a multiple of `interval` (0: never; a resumed job keeps
    the schedule: it follows from the env-step count its checkpoint holds)."""
    return bool(interval) and now // interval > before // interval


def _cut_short_reason(kept: int, grace_s: float) -> str:
    if not kept:
        return "the job received SIGTERM before its first iteration completed; rerun it to start again"
    return (f"the job received SIGTERM; it kept the checkpoint of iteration {kept}, the last it completed (an "
            f"iteration still running {grace_s:g} s after the signal is cut short: {STOP_GRACE_KEY}); rerun it "
            "to resume")


def record_iteration(state: JobState, last: Progress, job: JobConfig) -> None:
    """Carry the iteration's counters and rewards into the state the next checkpoint saves."""
    state.training_iteration = last.training_iteration
    state.timesteps_total = last.timesteps_total
    state.time_total_s = last.time_total_s
    state.kl_coeff_setting = job.ppo.get("kl_coeff")
    state.last_reward = last.episode_reward_mean
    if last.episode_reward_mean is not None:
        best = -math.inf if state.best_reward is None else state.best_reward
        state.best_reward = max(last.episode_reward_mean, best)


def _stop_reason(stop: StopCriteria, state: JobState, reward: float | None) -> str:
    if stop.episode_reward_mean is not None and reward is not None and reward >= stop.episode_reward_mean:
        return f"episode_reward_mean {reward:.2f} >= {stop.episode_reward_mean:g}"
    if stop.time_total_s is not None and state.time_total_s >= stop.time_total_s:
        return f"time_total_s {state.time_total_s:.0f} >= {stop.time_total_s:g}"
    if stop.timesteps_total is not None and state.timesteps_total >= stop.timesteps_total:
        return f"timesteps_total {state.timesteps_total} >= {stop.timesteps_total}"
    if stop.training_iteration is not None and state.training_iteration >= stop.training_iteration:
        return f"training_iteration {state.training_iteration} >= {stop.training_iteration}"
    return ""


class _CutShort(BaseException):
    """Raised in the iteration in progress when it has not ended `stop_grace_s` after SIGTERM (a BaseException:
    RLlib's and Ray's handlers of Exception must not take it)."""


class _StopOnSigterm:
    """SIGTERM (SageMaker's stop, a spot interruption) ends the job after the iteration in progress, which
    checkpoints; an iteration still running `grace_s` after it is cut short (`cuts_short`), and the job keeps
    the last completed iteration instead of losing the time to the stop's kill."""

    def __init__(self, grace_s: float) -> None:
        self.requested = False
        self._grace_s = grace_s
        self._overdue = False
        self._in_iteration = False
        if sys.platform != "win32" and _is_main_thread():
            signal.signal(signal.SIGTERM, self._handle)

    @contextmanager
    def cuts_short(self) -> Iterator[None]:
        """An iteration that the stop may cut short."""
        if self.requested:  # the stop came after the last iteration's check: it is the last completed one
            raise _CutShort
        self._in_iteration = True
        try:
            yield
        finally:
            self._in_iteration = False

    def _handle(self, signum: int, frame: object) -> None:
        if self._overdue:
            if self._in_iteration:
                raise _CutShort
            return
        if self.requested:  # a second stop changes nothing: the first one's time runs
            return
        self.requested = True
        logger.warning("SIGTERM received: checkpointing after this iteration, or after the last completed one if "
                       "this one does not end within %g s", self._grace_s)
        timer = threading.Timer(self._grace_s, self._time_is_up)
        timer.daemon = True
        timer.start()

    def _time_is_up(self) -> None:
        self._overdue = True
        _thread.interrupt_main(signal.SIGTERM)  # the handler runs in the main thread, inside the iteration


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
