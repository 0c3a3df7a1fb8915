"""The pool of job processes on standby that a local runner hands its jobs to (`job.standby` is one process).

A standby process prepares (the job's imports and first uses; bench/trial_start.py measures what that
takes), says so on a pipe of its own, then waits for its job. The pool keeps `size` spare processes
and lets one prepare at a time, counting the ones it handed out that are still preparing: the cores
are busy with trials, and processes preparing side by side slow each other and the trials. A job
that finds no spare gets a new process at once (it prepares inside the trial, as a cold start would).
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
from collections.abc import Callable

from sagemaker_rl.job import STANDBY_READY_FD_ENV

logger = logging.getLogger(__name__)

PREPARING_AT_ONCE = 1
CHECK_INTERVAL_S = 0.2


class StandbyPool:
    """Spare standby processes, made by `spawn` (given the variables that pass the ready pipe), `size` kept."""

    def __init__(self, spawn: Callable[[dict[str, str], int], subprocess.Popen[bytes]], size: int) -> None:
        self._spawn_with = spawn
        self._size = size
        self._lock = threading.Lock()
        self._spares: list[subprocess.Popen[bytes]] = []
        self._preparing: dict[subprocess.Popen[bytes], int] = {}  # process -> read end of its ready pipe
        self._closed = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="standby-pool", daemon=True)
        self._keeper.start()

    def take(self) -> subprocess.Popen[bytes]:
        """A process for a job: the oldest spare alive (ready, or still preparing), else a new one."""
        with self._lock:
            self._update()
            return self._spares.pop(0) if self._spares else self._spawn()

    def close(self) -> list[subprocess.Popen[bytes]]:
        """Stop keeping spares and watching the others; the spares (they hold no job), for the caller to end."""
        self._closed.set()
        self._keeper.join()
        with self._lock:
            for ready in self._preparing.values():
                os.close(ready)
            spares, self._spares, self._preparing = self._spares, [], {}
        return spares

    def _keep(self) -> None:
        while not self._closed.wait(CHECK_INTERVAL_S):
            with self._lock:
                self._update()
                if len(self._spares) < self._size and len(self._preparing) < PREPARING_AT_ONCE:
                    try:
                        self._spares.append(self._spawn())
                    except OSError as error:  # no memory or file descriptors left: jobs start without spares
                        logger.warning("could not start a job process on standby (%s); trials start cold", error)
                        return

    def _spawn(self) -> subprocess.Popen[bytes]:
        ready, said = os.pipe()
        try:
            process = self._spawn_with({STANDBY_READY_FD_ENV: str(said)}, said)
        except BaseException:
            os.close(ready)
            raise
        finally:
            os.close(said)
        self._preparing[process] = ready
        return process

    def _update(self) -> None:
        """Forget spares that ended and processes that are done preparing."""
        self._spares = [spare for spare in self._spares if spare.poll() is None]
        for process, ready in list(self._preparing.items()):
            if process.poll() is not None or select.select([ready], [], [], 0)[0]:  # said ready, or ended
                os.close(ready)
                del self._preparing[process]

