"""Runners: how a tuner starts one job under the job contract and watches its reward lines.

A runner starts a job in a base directory (inputs written as SageMaker writes them), then the tuner
polls it for the values of the objective metric (`metrics.RecordReader`, SageMaker's own regex) and may stop it.
`LocalProcessRunner` runs the job as a local process in its own process group; `ray_jobs.RayJobRunner`
runs it as a Ray Job on a cluster; container and SageMaker runners implement the same two classes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sagemaker_rl import contract, job, metrics, user_code
from sagemaker_rl.job import STANDBY_SCRIPT, STOP_PREFIX, standby_assignment
from sagemaker_rl.tuning.rundir import TRIALS_DIR
from sagemaker_rl.tuning.standby_pool import StandbyPool

logger = logging.getLogger(__name__)

PID_FILE = "job.pid"  # pid, process start time and host of a running local job
FOLLOW_INTERVAL_S = 0.1  # how often a local job's output file is read for new lines


@dataclass(frozen=True)
class JobSpec:
    """One job: its base directory, problem, hyperparameters, CPU share and the user's code."""

    base_dir: Path  # $SAGEMAKER_BASE_DIR of the job
    problem: str | None  # key of problems.PROBLEMS (None: the env the rl.env.* hyperparameters name)
    hyperparameters: Mapping[str, Any]  # flat dotted keys -> values
    num_cpus: int = 1  # SM_NUM_CPUS: the job sizes its env runners from it
    metric: str = metrics.EPISODE_REWARD_MEAN  # the objective metric read from the reward lines
    code_dir: Path | None = None  # the user's code directory as given (their env's modules); None: none

    def problem_args(self) -> list[str]:
        """The job's `--problem P` arguments (none for a job of the env its hyperparameters name)."""
        return [] if self.problem is None else ["--problem", self.problem]


def run_dir_of(base_dir: Path) -> Path:
    """The run directory a job's base directory belongs to (RUN/trials/NNNN[/…] -> RUN; a lone job: itself),
    where a run keeps what its jobs share, such as the bundle of the user's code."""
    parts = Path(base_dir).absolute().parts
    if TRIALS_DIR in parts[1:]:
        index = len(parts) - 1 - parts[::-1].index(TRIALS_DIR)
        return Path(*parts[:index])
    return Path(base_dir).absolute()


@dataclass
class JobStatus:
    """What a job has reported so far."""

    values: list[metrics.Record] = field(default_factory=list)  # one per iteration with a finite objective
    done: bool = False  # the job has ended
    failure: str | None = None  # why it failed, once done; None for a success
    output_dir: str | None = None  # its base directory where the tuner cannot see it (a Ray cluster's storage)
    lost: bool = False  # it failed because the Ray instance or node it ran on ended under it: its trial runs again


class Job(Protocol):
    """A started job."""

    spec: JobSpec

    def poll(self) -> JobStatus:
        """The values so far and whether the job has ended (never blocks)."""

    def stop(self) -> None:
        """Ask the job to stop (never blocks); `wait` then ends it for good."""

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the job to end, then kill it; True if it ended by itself."""


class SharedRayInstance(Protocol):
    """A running Ray instance jobs may connect to (`shared_ray.SharedRay`)."""

    def job_env(self) -> dict[str, str]:
        """The variables that join a job to the instance ($RAY_ADDRESS and its token), the instance started on
        first use; {} when there is none to join."""

    def ended_since(self, moment: float) -> bool:
        """The instance ended (killed, out of memory) at or after `moment` (time.monotonic)."""


class Runner(Protocol):
    """Starts jobs under the job contract."""

    def start(self, spec: JobSpec) -> Job:
        """Write the job's inputs and start it."""

    def stop_orphan(self, base_dir: Path) -> bool:
        """Stop a job left running in `base_dir` by an earlier tuner process; True if one was stopped."""

    def reattach(self, spec: JobSpec) -> Job | None:
        """Follow again the job an earlier tuner process started for `spec` (running, or ended and read from
        its output); None when this runner cannot, and the trial runs again."""

    def job_dir(self, base_dir: Path) -> Path:
        """Where the job of `base_dir` keeps its checkpoints/ and model/, as this machine sees them (PBT
        puts a member's starting checkpoint there)."""


class LocalProcessRunner:
    """Runs each job as `python -m sagemaker_rl.job [--problem P]` in its own process group.

    A Python command's jobs run in standby processes (`job.standby`) from a pool (`standby_pool`) that keeps
    `standby` of them ready ahead, their imports done, so a job starts without that cost; each runs one job
    and ends. With `shared_ray` the jobs connect to that Ray instance ($RAY_ADDRESS, with its token) instead
    of each starting one. A job with a code directory runs from it, as the toolkit runs a job from
    /opt/ml/code: the directory is on its PYTHONPATH (after this package), which the Ray it starts passes to
    its workers, and it is the job's working directory, which Ray puts on the path of a shared instance's
    workers for the job. Its requirements.txt is not installed: a local job runs in the user's own
    environment. `on_job_end` is called when a job has ended and its output is read (a tuner waits on it).
    `close` ends the processes on standby.
    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        extra_env: Mapping[str, str] | None = None,
        shared_ray: SharedRayInstance | None = None,
        standby: int = 0,
        on_job_end: Callable[[], None] | None = None,
    ) -> None:
        self._command = list(command) if command else [sys.executable, "-m", job.MODULE]
        self._on_job_end = on_job_end
        self._extra_env = dict(extra_env or {})
        self._shared_ray = shared_ray
        self._standby = standby
        self._pool: StandbyPool | None = None
        self._pool_key: tuple[Path | None, dict[str, str]] | None = None  # what the spares were made for

    def start(self, spec: JobSpec) -> LocalJob:
        paths = contract.JobPaths(spec.base_dir)
        contract.write_inputs(paths, spec.hyperparameters)
        for stale in (paths.failure_file, paths.success_file):
            stale.unlink(missing_ok=True)
        code_dir = user_code.check_code_dir(spec.code_dir) if spec.code_dir is not None else None
        job_env = {contract.BASE_DIR_ENV: str(spec.base_dir.absolute()), contract.NUM_CPUS_ENV: str(spec.num_cpus)}
        cwd = Path(code_dir or spec.base_dir).absolute()
        log_path = spec.base_dir / contract.STDOUT_LOG
        offset = log_path.stat().st_size if log_path.exists() else 0
        # The job writes its output to the file itself: a tuner that dies loses none of it (nothing of the job
        # goes through this process), and the job's leftovers cannot hold a pipe open.
        with open(log_path, "ab") as log:
            if self._command[0] != sys.executable:  # not Python: no standby, the command runs as it is
                process = subprocess.Popen([*self._command, *spec.problem_args()], cwd=cwd,
                                           env=self._env(code_dir, job_env), stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)  # stopped as a group
            else:
                line = standby_assignment(spec.problem_args(), job_env, str(cwd), str(log_path.absolute()))
                process = self._assign(line, code_dir, run_dir_of(spec.base_dir))
        write_pid_file(spec.base_dir / PID_FILE, process.pid)
        logger.debug("started job in %s (pid %d)", spec.base_dir, process.pid)
        started, shared_ray = time.monotonic(), self._shared_ray
        return LocalJob(spec, process, log_path, offset, on_end=self._on_job_end,
                        ray_ended=(lambda: shared_ray.ended_since(started)) if shared_ray else None)

    def close(self) -> None:
        """End the processes on standby (they hold no job)."""
        if self._pool is not None:
            for spare in self._pool.close():
                signal_group(spare.pid, signal.SIGKILL)  # its own process group
                spare.wait()
            self._pool = None

    def _assign(self, line: bytes, code_dir: Path | None, run_dir: Path) -> subprocess.Popen[bytes]:
        """A standby process for `code_dir` (from the pool), given its job's `line`."""
        # A run has one code directory; its Ray instance changes only when it had ended and started again (the
        # spares made for the old one would wait to connect to it).
        key = (code_dir, self._shared_ray.job_env() if self._shared_ray else {})
        if self._pool is None or self._pool_key != key:
            self.close()
            self._pool = StandbyPool(self._standby_spawner(code_dir, run_dir), self._standby)
            self._pool_key = key
        for _ in range(2):
            process = self._pool.take()
            try:
                process.stdin.write(line)  # type: ignore[union-attr]  # stdin is a pipe
                process.stdin.close()  # type: ignore[union-attr]
                return process
            except BrokenPipeError:  # it ended on standby (killed?): another takes the job
                process.wait()
        raise RuntimeError("two standby processes ended before they could take the job")

    def _standby_spawner(self, code_dir: Path | None, run_dir: Path) -> Callable[..., subprocess.Popen[bytes]]:
        command = [sys.executable, STANDBY_SCRIPT, *self._command[1:]]
        env = self._env(code_dir, {})  # here, not in the pool's thread: it may start the shared Ray instance

        def spawn(ready_env: dict[str, str], ready_fd: int) -> subprocess.Popen[bytes]:
            # Before its job, a standby process says nothing worth keeping: what its imports print, and an import
            # that fails, happen again in the job, whose output is kept.
            return subprocess.Popen(command, cwd=code_dir or run_dir, env={**env, **ready_env}, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, pass_fds=(ready_fd,),
                                    start_new_session=True)

        return spawn

    def _env(self, code_dir: Path | None, job_env: Mapping[str, str]) -> dict[str, str]:
        env = job.child_env(code_dir, **{
            **self._extra_env,
            **(self._shared_ray.job_env() if self._shared_ray else {}),
            **job_env,
            "PYTHONUNBUFFERED": "1",
        })
        env.pop(contract.RAY_AUTH_TOKEN_ENV, None)  # a user's, for their clusters: it would win over the run's file
        return env

    def stop_orphan(self, base_dir: Path) -> bool:
        return stop_recorded_process(base_dir / PID_FILE, what="job left running by an earlier tuner")

    def reattach(self, spec: JobSpec) -> None:
        return None  # the dead tuner's child cannot be waited for here: it is stopped and runs again

    def job_dir(self, base_dir: Path) -> Path:
        return base_dir


class LocalJob:
    """A job running as a local process; a thread follows the output the job writes to stdout.log and parses it."""

    def __init__(self, spec: JobSpec, process: subprocess.Popen[bytes], log_path: Path, offset: int, *,
                 on_end: Callable[[], None] | None = None, ray_ended: Callable[[], bool] | None = None) -> None:
        self.spec = spec
        self._on_end = on_end
        self._ray_ended = ray_ended  # the Ray instance the job joined has ended since it started
        self._process = process
        self._lock = threading.Lock()
        self._values: list[metrics.Record] = []
        self._records = metrics.RecordReader(spec.metric)
        self._tail: list[str] = []  # last lines, for a failure reason
        self._ended = False
        self._reader = threading.Thread(target=self._read, args=(log_path, offset), daemon=True)
        self._reader.start()

    def poll(self) -> JobStatus:
        returncode = self._process.poll()
        if returncode is not None and not self._ended:
            signal_group(self._process.pid, signal.SIGKILL)  # leftovers of the job (e.g. Ray workers) end with it
            self._reader.join(timeout=5)
            self._ended = True
        with self._lock:
            status = JobStatus(values=list(self._values))
        if returncode is not None:
            status.done = True
            status.lost = returncode != 0 and self._ray_ended is not None and self._ray_ended()
            status.failure = self._failure(returncode, status)
        return status

    def stop(self) -> None:
        if self._process.poll() is None:
            signal_group(self._process.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> bool:
        try:
            self._process.wait(timeout)
            ended = True
        except subprocess.TimeoutExpired:
            ended = False
        signal_group(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._reader.join(timeout=5)
        self._ended = True
        return ended

    def _read(self, log_path: Path, offset: int) -> None:
        """Parse the job's lines as it writes them, until it has ended and every line is read."""
        with open(log_path, "rb") as log:
            log.seek(offset)
            partial = b""
            while True:
                ended = self._process.poll() is not None  # before the read: what it wrote before ending is read
                partial += log.read()
                *lines, partial = partial.split(b"\n")
                for raw in lines:
                    self._line(raw.decode("utf-8", errors="replace").rstrip("\r"))
                if ended:
                    break
                time.sleep(FOLLOW_INTERVAL_S)
            if partial:
                self._line(partial.decode("utf-8", errors="replace").rstrip("\r"))
            with self._lock:
                self._add(self._records.close())
        if self._on_end is not None:
            self._on_end()

    def _line(self, line: str) -> None:
        with self._lock:
            self._tail = (self._tail + [line])[-20:]
            self._add(self._records.feed(line))

    def _add(self, record: metrics.Record | None) -> None:
        if record is not None and record.value is not None:
            self._values.append(record)

    def _failure(self, returncode: int, status: JobStatus) -> str | None:
        failure_file = contract.JobPaths(self.spec.base_dir).failure_file
        reason = _first_line(failure_file)
        if returncode != 0:
            if reason:
                return reason
            if status.lost:  # Ray ends the drivers of an instance that ends, unannounced
                return (f"the job ended ({contract.exit_hint(returncode)}): the run's Ray instance it had joined "
                        "ended while it ran; the trial runs again")
            with self._lock:
                tail = list(self._tail)
            return f"the job ended ({contract.exit_hint(returncode)}){last_output(tail)}"
        with self._lock:
            diverged = self._records.diverged
        return reward_failure(self.spec.metric, diverged=diverged, values=status.values)


def last_output(lines: Sequence[str]) -> str:
    """`; last output: <line>`, the last non-empty one of a job that gave no reason of its own; '' without one."""
    said = [line.strip() for line in lines if line.strip()]
    return f"; last output: {said[-1][:300]}" if said else ""


def reward_failure(metric: str, *, diverged: bool, values: Sequence[metrics.Record]) -> str | None:
    """Why a job that ended well fails its trial anyway (its metric diverged, or it printed none); None if fine."""
    if diverged:
        return f"the job reported {metric} as NaN or infinity (diverged)"
    if not values:
        return (
            f"the job printed no {metric} line (no episode finished? raise "
            f"{STOP_PREFIX}time_total_s or the batch size)"
        )
    return None


def _first_line(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as error:
        logger.warning("could not read %s: %s", path, error)
        return None
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip() if lines else None


def _start_time(pid: int) -> str | None:
    """The start time of a live process in clock ticks since boot (with the pid, it names one process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie has ended; only its exit status is left


def write_pid_file(path: Path, pid: int) -> None:
    """Record a process group leader started here: pid, start time (with the pid, it names one process), host."""
    path.write_text(json.dumps({"pid": pid, "start_time": _start_time(pid), "host": os.uname().nodename}) + "\n")


def stop_recorded_process(pid_file: Path, *, what: str) -> bool:
    """Stop the process group recorded in `pid_file` if that very process still runs; True if it did."""
    if not pid_file.is_file():
        return False
    try:
        recorded = json.loads(pid_file.read_text())
        pid, started = int(recorded["pid"]), recorded["start_time"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable %s: %s", pid_file, error)
        return False
    if _start_time(pid) != started:  # gone, or the pid now belongs to another process
        return False
    logger.warning("stopping the %s (pid %d, %s)", what, pid, pid_file)
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _start_time(pid) == started:
        time.sleep(0.2)
    signal_group(pid, signal.SIGKILL)
    return True


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to a process group; one that has ended already is no error."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        logger.debug("process group %d already gone (signal %d not sent)", pgid, signum)
    except PermissionError as error:
        logger.warning("could not signal process group %d: %s", pgid, error)
