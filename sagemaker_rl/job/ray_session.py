"""A job's Ray session: its start and end, its directory, the causes in its logs, and the watchdog that ends it.

The job starts Ray itself or joins a running instance (`RAY_ADDRESS`, whose token comes in Ray's own
variables); only a session it started is its own to end and remove. Ray a job starts requires a token
of the job's own, in a 0600 file of a private temporary directory removed with the session (not Ray's
default `~/.ray/auth_token`). Ray has no public name for the session directory: this module is the
one place that reads it from Ray's worker module.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sagemaker_rl import contract
from sagemaker_rl.contract import RAY_ADDRESS_ENV, JobPaths, write_failure
from sagemaker_rl.errors import JobError
from sagemaker_rl.job.keys import STALL_TIMEOUT_KEY

logger = logging.getLogger(__name__)

STALL_GRACE_S = 10  # after a stall, seconds the job gets to fail cleanly before it is ended hard
LOG_TAIL_LINES = 5  # lines of output/job.log quoted when a job stalls
_TOKEN_DIR_PREFIX = "sagemaker_rl-ray-token-"  # the private directory of the token of a Ray the job started


@contextmanager
def started(cpus: int, paths: JobPaths, *, stall_timeout_s: float) -> Iterator[Watchdog]:
    """Ray for one job, under its watchdog (yielded); an env runner's crash raised as a JobError with its cause.

    Ray is stopped at the end, and this job's session directory removed.
    """
    with Watchdog(stall_timeout_s, paths) as watchdog:
        start_ray(cpus)
        logger.info("Ray session directory: %s", session_dir())
        try:
            yield watchdog
        except Exception as error:
            cause = env_runner_cause(error)
            if cause is None:
                raise
            raise JobError(f"an env runner failed: {cause}") from error
        finally:
            stop_ray()


def start_ray(cpus: int) -> None:
    """Start Ray for a job with `cpus` CPUs, or connect to the cluster at $RAY_ADDRESS; Ray's loggers quiet."""
    import ray

    address = os.environ.get(RAY_ADDRESS_ENV)
    if address:  # a cluster is already running (a tuning run's shared instance, Ray runner, multi-host job)
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        logger.info("connected to the Ray instance at %s", address)
    else:
        use_ray_token(Path(tempfile.mkdtemp(prefix=_TOKEN_DIR_PREFIX)) / contract.RAY_TOKEN_FILE)
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    quiet_ray_loggers()


def use_ray_token(path: Path) -> None:
    """Token authentication for the Ray this process starts or joins next, with the token in `path` (a new one
    written there unless the file exists); the processes Ray starts inherit it."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # Cython, no stubs

    if not path.is_file():
        contract.write_ray_token(path)
    os.environ.pop(contract.RAY_AUTH_TOKEN_ENV, None)  # Ray would read it before the file
    os.environ.update(contract.ray_token_env(path))
    # Ray reads the mode into its config and caches the token when first imported (the job's parser imports
    # it): read both again, as Ray itself does when it turns token authentication on.
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _remove_own_token() -> None:
    """The token of a Ray this job started goes with it (a joined instance's token is not the job's)."""
    token = Path(os.environ.get(contract.RAY_AUTH_TOKEN_PATH_ENV, "/"))
    if token.parent.name.startswith(_TOKEN_DIR_PREFIX):
        shutil.rmtree(token.parent, onerror=_report_not_removed)
        for name in contract.ray_token_env(token):
            os.environ.pop(name, None)


def quiet_ray_loggers() -> None:
    """Ray configures its loggers on import; RLlib then warns at config time (e.g. "new API stack")."""
    for name in ("ray", "ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def stop_ray() -> None:
    """Shut Ray down; a session this job started (not a shared instance's) has its directory removed."""
    import ray

    session = session_dir(started_here=True)
    ray.shutdown()
    if session is not None:
        remove_session(Path(session))
        _remove_own_token()


class _Stalled(BaseException):
    """Raised in the main thread by the watchdog's alarm; a BaseException, so no `except Exception` in RLlib eats it."""


class Watchdog:
    """Fails a job that makes no progress (Ray start, building, one iteration) for `timeout_s` seconds.

    SIGALRM raises `_Stalled` in the main thread, which gets the job out of a wait in Python code; a
    driver blocked inside Ray (measured: an env runner whose step never returns) does not see it, so
    STALL_GRACE_S later a timer thread writes output/failure, ends the Ray processes the job started
    and exits.
    """

    def __init__(self, timeout_s: float, paths: JobPaths) -> None:
        self._timeout_s = timeout_s
        self._paths = paths
        self._active = sys.platform != "win32" and threading.current_thread() is threading.main_thread()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Watchdog:
        if self._active:
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            self.kick()
        return self

    def kick(self) -> None:
        """Progress was made: the time starts again."""
        if not self._active:
            return
        signal.setitimer(signal.ITIMER_REAL, self._timeout_s)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self._timeout_s + STALL_GRACE_S, self._end_hard)
        self._timer.daemon = True
        self._timer.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if not self._active:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)
        if self._timer is not None:
            self._timer.cancel()
        if ended_by(error, _Stalled):
            raise JobError(self.reason()) from None

    def reason(self) -> str:
        tail = _log_tail(self._paths.log_file, LOG_TAIL_LINES)
        return (f"the job made no progress for {self._timeout_s:g} s ({STALL_TIMEOUT_KEY}; Ray waiting "
                f"for resources or an env that does not return?); last log lines: {tail or 'none'}")

    def _alarm(self, signum: int, frame: object) -> None:
        raise _Stalled

    def _end_hard(self) -> None:
        logger.error("the job did not end %d s after it stalled: ending it", STALL_GRACE_S)
        write_failure(self._paths, self.reason())
        kill_started_here()
        os._exit(1)


def ended_by(error: BaseException | None, kind: type[BaseException]) -> bool:
    """An exception of `kind` that a signal handler raised ended `error`, itself or as its cause: one raised inside
    a Ray call that is not Python (CoreWorker.wait) comes back as "SystemError: ... returned a result with an
    exception set"."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _log_tail(path: Path, lines: int) -> str:
    """The last `lines` non-empty lines of a log file, joined with ' | ' (each cut to 200 characters)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 20_000))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError as error:
        return f"(could not read {path}: {error})"
    kept = [line.strip()[:200] for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)


# Ray's own wrappers: the cause is the innermost exception line that is not one of them.
_RAY_WRAPPERS = ("RayActorError", "ActorDiedError", "RayTaskError", "ActorUnavailableError", "RaySystemError",
                 "ActorUnschedulableError", "WorkerCrashedError", "RayError")
_EXCEPTION_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Interrupt)(?:\([\w.]+\))?): (.+)$")


def env_runner_cause(error: BaseException) -> str | None:
    """The real cause of an error raised in a Ray worker (an env runner), or None for other errors.

    Ray reports a crashed actor as ActorDiedError; the traceback in its message, or else the
    worker's own log in the session directory, names the exception that ended it.
    """
    from ray.exceptions import RayError

    chain = [error, error.__cause__, error.__context__]
    if not any(isinstance(link, RayError) for link in chain):
        return None
    causes = [match.group(1).split("(")[0].rsplit(".", 1)[-1] + ": " + match.group(2).strip()
              for link in chain if link is not None
              for line in str(link).splitlines() if (match := _EXCEPTION_LINE.match(line))]
    causes = [cause for cause in causes if not cause.startswith(_RAY_WRAPPERS)]
    if not causes:
        causes = _worker_log_causes()
    summary = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}" if str(error).strip() else \
        type(error).__name__
    return f"{causes[-1][:500]} ({summary})" if causes else summary


def _worker_log_causes() -> list[str]:
    """Exception lines in the worker logs of this job's Ray session, oldest file first.

    Only a session this job started: a shared instance's logs hold other jobs' errors too.
    """
    session = session_dir(started_here=True)
    if session is None:
        return []
    logs = sorted(Path(session, "logs").glob("worker-*.err"), key=lambda path: path.stat().st_mtime)
    causes = []
    for log in logs:
        for line in _log_tail(log, 50).split(" | "):
            match = _EXCEPTION_LINE.match(line)
            if match and not match.group(1).startswith(_RAY_WRAPPERS):
                causes.append(f"{match.group(1)}: {match.group(2)}")
    return causes


def session_dir(*, started_here: bool = False) -> str | None:
    """The Ray session directory of this process (with `started_here`: only if this process started Ray)."""
    import ray

    # Ray has no public name for it; its worker module keeps the node this process started or joined.
    node = getattr(ray._private.worker, "_global_node", None)  # noqa: SLF001
    if node is None or (started_here and not node.is_head()):
        return None
    return str(node.get_session_dir_path())


def kill_started_here() -> None:
    """End the Ray processes this job started (not a shared instance's) and remove their session directory."""
    import ray

    session = session_dir(started_here=True)
    if session is None:
        return
    # Ray's agents outlive the raylet that started them: find every process with a file open in the session.
    left = _processes_using(session)
    node = ray._private.worker._global_node  # noqa: SLF001 - Ray's node of this process (see session_dir)
    if node is not None:
        node.kill_all_processes(check_alive=False, allow_graceful=False)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            logger.debug("Ray process %d already gone", pid)
    remove_session(Path(session))
    _remove_own_token()


def _processes_using(directory: str) -> list[int]:
    """Pids (not this one) with a file open under `directory` (Linux /proc; others: none)."""
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        pid = int(fd_dir.parent.name)
        try:
            if pid != os.getpid() and any(os.readlink(fd).startswith(directory) for fd in fd_dir.iterdir()):
                pids.append(pid)
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return pids


def remove_session(session: Path) -> None:
    latest = session.parent / "session_latest"
    if latest.is_symlink() and Path(os.readlink(latest)).name == session.name:
        latest.unlink()

    shutil.rmtree(session, onerror=_report_not_removed)


def _report_not_removed(function: Any, path: str, error: Any) -> None:
    logger.warning("could not remove %s of the job's Ray session: %s", path, error)
