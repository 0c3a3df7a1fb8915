"""One Ray instance that a local tuning run's jobs share, instead of each starting and stopping its own.

A job started with $RAY_ADDRESS connects to that instance (`ray_session.start_ray`): about half a second
instead of 3-6 s for a private `ray.init`, and one set of Ray's own processes for the whole run. The
instance is `ray start --head --block` in its own process group, with as many CPUs as the run's jobs
share, so the env-runner actors of parallel jobs cannot oversubscribe the cores (a job on one CPU
samples in its own process and asks Ray for nothing). It starts with the first job; `close` ends it
and removes its session files. A head left by a tuner killed with -9 is stopped by the next tuner
of the same run directory (its pid file), and the next head started on the machine removes the
session files of instances whose tuner has died. A head that ends during the run (killed, out of
memory) is started again for the jobs that start after it (`address`); the jobs it had end with it,
and their trials run again (`ended_since` tells the runner). The instance requires a token of its own,
made per run and kept in a 0600 file in its temp dir (never on a command line or in the run's files):
the head and every job of the run get it by RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH. A head that
cannot start (e.g. a machine so loaded that Ray's own start-up times out) is reported once, and the
jobs then start their own Ray as they do outside a tuner.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sagemaker_rl import contract
from sagemaker_rl.tuning.runners import signal_group, stop_recorded_process, write_pid_file
from sagemaker_rl.tuning.space import TuningError

logger = logging.getLogger(__name__)

PID_FILE = "ray-head.pid"  # in the run directory: the head of the run's shared instance
LOG_FILE = "ray-head.log"  # in the run directory: what `ray start` printed
READY_TIMEOUT_S = 90.0
_READY_LINE = "will now block forever"  # `ray start --block` prints it once every process is up


class SharedRay:
    """A Ray head for the jobs of one run directory; `address` starts it on first use."""

    def __init__(self, run_dir: Path, *, num_cpus: int) -> None:
        self._run_dir = Path(run_dir)
        self._num_cpus = num_cpus
        self._process: subprocess.Popen[bytes] | None = None
        self._address: str | None = None
        self._failed = False  # the head could not start: jobs start their own Ray
        self._started_at = 0.0  # when the head was last started (time.monotonic)
        self._ended_at: float | None = None  # when it was last found ended
        # Ray's temp dir holds unix sockets, whose paths may not exceed ~107 bytes: keep it short.
        self._temp_dir = Path(tempfile.gettempdir(), f"sagemaker_rl-{os.getuid()}", f"ray-{os.getpid()}")

    def address(self) -> str | None:
        """host:port of the running head (started now if it is not running yet, or again if it ended: killed,
        or out of memory); None if it could not start."""
        if self._found_ended():
            self._process = self._address = None
        if self._address is None and not self._failed:
            try:
                self._address = self._start()
            except TuningError as error:
                self._failed = True
                logger.warning("%s; each job starts its own Ray instead", error)
        return self._address

    def ended_since(self, moment: float) -> bool:
        """The head was found ended (killed, out of memory) at or after `moment` (time.monotonic)."""
        self._found_ended()
        return self._ended_at is not None and self._ended_at >= moment

    def _found_ended(self) -> bool:
        """The head has ended since it was started: say so once, and end what is left of its processes."""
        if self._process is None or self._process.poll() is None:
            return False
        if self._ended_at is None or self._ended_at < self._started_at:
            self._ended_at = time.monotonic()
            logger.warning("the run's Ray instance (pid %d) ended with code %s: the next job starts it again",
                           self._process.pid, self._process.returncode)
            signal_group(self._process.pid, signal.SIGKILL)
        return True

    def job_env(self) -> dict[str, str]:
        """What a job needs to join the instance ($RAY_ADDRESS, the token's mode and file); {} when there is none."""
        address = self.address()
        return {contract.RAY_ADDRESS_ENV: address, **self._token_env()} if address else {}

    def _token_env(self) -> dict[str, str]:
        return contract.ray_token_env(self._temp_dir / contract.RAY_TOKEN_FILE)

    def close(self) -> None:
        """Stop the head and every process of the instance; remove its session files."""
        if self._process is not None:
            _stop(self._process)
            self._process = None
            self._address = None
        (self._run_dir / PID_FILE).unlink(missing_ok=True)
        shutil.rmtree(self._temp_dir, ignore_errors=True)

    def _start(self) -> str:
        stop_recorded_process(self._run_dir / PID_FILE, what="Ray head left running by an earlier tuner")
        _remove_dead_tuners_temp_dirs(self._temp_dir.parent)
        port = _free_port()
        command = [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            f"--port={port}", "--node-ip-address=127.0.0.1", f"--num-cpus={self._num_cpus}",
            "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self._temp_dir}",
        ]  # fmt: skip
        log_path = self._run_dir / LOG_FILE
        self._temp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        contract.write_ray_token(self._temp_dir / contract.RAY_TOKEN_FILE)
        # No drain on SIGTERM: Ray 2.60 otherwise waits up to 30 s for a node's work to move elsewhere.
        env = {**os.environ, **self._token_env(), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        for name in (contract.RAY_ADDRESS_ENV, contract.RAY_AUTH_TOKEN_ENV):  # a user's would win over ours
            env.pop(name, None)
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # Ctrl-C in the terminal reaches the tuner, which stops the head
            )  # fmt: skip
        write_pid_file(self._run_dir / PID_FILE, self._process.pid)
        self._started_at = time.monotonic()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while _READY_LINE not in log_path.read_text(errors="replace"):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                self.close()
                raise TuningError(
                    f"could not start the run's Ray instance (`ray start --head` on port {port}); "
                    f"its last output, in {log_path}: {' | '.join(tail) or 'none'}"
                )
            time.sleep(0.2)
        logger.info("shared Ray instance at 127.0.0.1:%d with %d CPUs (pid %d)", port, self._num_cpus,
                    self._process.pid)
        return f"127.0.0.1:{port}"


def _remove_dead_tuners_temp_dirs(root: Path) -> None:
    """Remove the temp dirs (Ray's session files) of instances whose tuner has died (kill -9: no `close`)."""
    for temp_dir in root.glob("ray-*"):
        pid = temp_dir.name.removeprefix("ray-")
        if pid.isdigit() and not Path("/proc", pid).exists():
            shutil.rmtree(temp_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:  # a port free now; Ray takes it a moment later
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `ray start --block` ends the processes it started; SIGKILL what is left of its group."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        logger.warning("the Ray head (pid %d) did not stop within 10 s: killing it", process.pid)
    signal_group(process.pid, signal.SIGKILL)
    process.wait()
