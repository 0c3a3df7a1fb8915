"""The container runner: each job in the built image (podman or docker), its directory mounted as /opt/ml.

The job's head container runs attached to an engine process, which writes its output to the job's
stdout.log itself; a `LocalJob` follows that file as it follows a local job's. Stopping a job kills its
containers, and a job an earlier tuner process left running (kill -9) is found by its containers' labels
and removed, so the trial runs again. The user's code directory is bundled once per run, in the run
directory (`user_code.BUNDLE_FILE`), and every job of the run gets that bundle.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import time
from pathlib import Path

from sagemaker_rl import engine, user_code
from sagemaker_rl.contract import STDOUT_LOG
from sagemaker_rl.engine import ContainerSettings, JobContainers
from sagemaker_rl.tuning.runners import JobSpec, JobStatus, LocalJob, run_dir_of

logger = logging.getLogger(__name__)

SETTINGS_FILE = "container.json"  # in the run directory: the image, engine and hosts, read by --resume


class ContainerRunner:
    """Runs each job in `settings.image`, one container per host, with the job's CPU share as each one's limit."""

    def __init__(self, settings: ContainerSettings) -> None:
        self.settings = settings
        self._bundles: dict[Path, Path] = {}  # code directory -> its bundle, made by this runner's first job

    def start(self, spec: JobSpec) -> ContainerJob:
        job_containers = JobContainers(spec.base_dir, spec.problem, self.settings, cpus_per_host=spec.num_cpus,
                                       code_bundle=self.bundle(spec))
        job_containers.write_inputs(spec.hyperparameters)
        log_path = spec.base_dir / STDOUT_LOG
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:  # the engine process writes the head's output there itself
            head, others = job_containers.start(log)
        logger.debug("started container(s) %s for %s", ", ".join(map(job_containers.name, job_containers.hosts)),
                     spec.base_dir)
        return ContainerJob(spec, head, log_path, offset, job_containers, others)

    def bundle(self, spec: JobSpec) -> Path | None:
        """The bundle of the job's code directory, made in its run directory for the run's first job."""
        if spec.code_dir is None:
            return None
        code_dir = Path(spec.code_dir).absolute()
        if code_dir not in self._bundles:
            program = user_code.entry_point(spec.problem)
            self._bundles[code_dir] = user_code.make_bundle(code_dir, program, run_dir_of(spec.base_dir))
        return self._bundles[code_dir]

    def stop_orphan(self, base_dir: Path) -> bool:
        return engine.remove_left_in(base_dir, self.settings.engine)

    def reattach(self, spec: JobSpec) -> None:
        return None  # the dead tuner's engine process cannot be waited for here: stop_orphan removes it, it runs again

    def job_dir(self, base_dir: Path) -> Path:
        return base_dir  # mounted as the first host's /opt/ml, the host that writes checkpoints/ and model/


class ContainerJob(LocalJob):
    """A job's containers; the head's engine process is read as a local job's process is."""

    def __init__(self, spec: JobSpec, head: subprocess.Popen[bytes], log_path: Path, offset: int,
                 job_containers: JobContainers, others: list[subprocess.Popen[bytes]]) -> None:
        super().__init__(spec, head, log_path, offset)
        self._containers = job_containers
        self._others = others
        self._removed = False
        self._other_codes: list[int | None] = []

    def poll(self) -> JobStatus:
        status = super().poll()
        if status.done and not self._removed:
            self._remove()
        if status.done and status.failure is None:
            status.failure = self._other_host_failure()
        return status

    def stop(self) -> None:
        self._containers.stop()

    def wait(self, timeout: float) -> bool:
        ended = super().wait(timeout)
        self._remove()
        return ended

    def _remove(self) -> None:
        """Remove the job's containers; the other hosts first get engine.LEAVE_TIMEOUT_S to end by themselves."""
        self._removed = True
        deadline = time.monotonic() + engine.LEAVE_TIMEOUT_S
        for process in self._others:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.debug("a host of %s did not leave within %.0f s: removed", self.spec.base_dir,
                             engine.LEAVE_TIMEOUT_S)
        self._other_codes = [process.poll() for process in self._others]  # None: ended by the removal
        self._containers.remove()
        for process in self._others:
            process.wait()

    def _other_host_failure(self) -> str | None:
        for host, code in zip(self._containers.hosts[1:], self._other_codes, strict=True):
            if code not in (None, 0):
                return f"host {host} failed: {engine.failure_reason(self._containers.paths(host), code)}"
        return None


def write_settings(run_dir: Path, settings: ContainerSettings) -> None:
    (Path(run_dir) / SETTINGS_FILE).write_text(json.dumps(dataclasses.asdict(settings), indent=2) + "\n")


def read_settings(run_dir: Path) -> ContainerSettings | None:
    """The container settings a run directory's trials ran with; None for a run of another backend."""
    path = Path(run_dir) / SETTINGS_FILE
    return ContainerSettings(**json.loads(path.read_text())) if path.is_file() else None
