"""The container engine (podman or docker): jobs in the built image on this machine, one container per host
as SageMaker lays them out.

A job's directory is `/opt/ml` of its first host, `algo-1`; with several hosts the others get their own
`/opt/ml` in `hosts/algo-N/` of it, and all of them one network on which each is found by the name
SageMaker gives it. Each container gets the job's CPUs per host as a CPU limit (and as SM_NUM_CPUS,
which the job sizes its env runners from), shared memory for Ray's object store, and labels naming
the run and the job, by which what a killed process left behind is found and removed. The hosts of a
multi-host job share a Ray token made for the job: a 0600 file in each host's /opt/ml/input/config
(never an `-e` on the engine's command line, which `ps` shows), removed with the containers. A job with the
user's code gets its run's bundle (`user_code.make_bundle`) mounted read-only and named as the
`sagemaker_submit_directory`, as SageMaker's local mode names a source_dir: the toolkit extracts it into a
fresh /opt/ml/code, installs its requirements.txt and runs the entry program from there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from sagemaker_rl import contract, user_code
from sagemaker_rl.errors import UserError

logger = logging.getLogger(__name__)

ENGINE_ENV = "DOCKER"  # the container engine's command, as `make build DOCKER=podman` takes it
JOB_LABEL = "sagemaker-rl.job"  # a container's or network's job directory (absolute)
RUN_LABEL = "sagemaker-rl.run"  # the run (tuning run or training job) it belongs to
HOST_LABEL = "sagemaker-rl.host"
HOSTS_DIR = "hosts"  # in a job directory: the /opt/ml of every host but the first
# Ray puts its object store in /dev/shm, which is 64 MB in a container by default (FACTS: --shm-size=2g);
# it is a limit, not an allocation.
SHM_SIZE = "2g"
_TIMEOUT_S = 60.0  # for one engine command (inspect, kill, rm)
LEAVE_TIMEOUT_S = 60.0  # after the head's container ended, for the other hosts' (they leave within seconds)
STOP_GRACE_S = 30  # a stopped job finishes its iteration and checkpoints (job/image.py forwards the SIGTERM)
SUBMIT_MOUNT = f"/opt/sagemaker-rl/submit/{user_code.BUNDLE_FILE}"  # where a container sees its run's code bundle


def find_engine() -> str:
    """The engine's command: $DOCKER, else docker when its daemon answers, else podman; UserError if none."""
    given = os.environ.get(ENGINE_ENV)
    if given:
        if shutil.which(given) is None:
            raise UserError(f"${ENGINE_ENV} names {given!r}, which is not on PATH: set it to podman or docker")
        return given
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True, check=False,
                                                 timeout=_TIMEOUT_S).returncode == 0:
        return "docker"
    if shutil.which("podman"):
        return "podman"
    raise UserError("neither podman nor a running docker engine was found: install podman (apt install podman) "
                    f"or start docker, or name the engine in ${ENGINE_ENV}")


def default_image() -> str:
    """The CPU image `make build` tags for this version."""
    return f"sagemaker-rl:{metadata.version('sagemaker-rl')}-cpu"


def check_image(settings: ContainerSettings) -> None:
    """UserError when the engine does not have the image (before any container or file is made)."""
    done = subprocess.run([settings.engine, "image", "inspect", settings.image], capture_output=True, check=False,
                          timeout=_TIMEOUT_S)
    if done.returncode != 0:
        raise UserError(f"{settings.engine} has no image {settings.image}: build it with `make build VARIANT=cpu"
                        f"{' DOCKER=podman' if 'podman' in settings.engine else ''}`, or give --image a tag "
                        f"`{settings.engine} images` lists")


def host_names(count: int) -> list[str]:
    """The hosts of a job with `count` instances, named as SageMaker names them."""
    if count < 1:
        raise UserError(f"--instance-count must be at least 1, got {count}")
    return [f"algo-{index}" for index in range(1, count + 1)]


def host_dir(base_dir: Path, host: str, hosts: list[str]) -> Path:
    """The host's /opt/ml: the job directory for the first host, hosts/HOST in it for the others."""
    return Path(base_dir) if host == hosts[0] else Path(base_dir) / HOSTS_DIR / host


@dataclass(frozen=True)
class ContainerSettings:
    """How the jobs of a run are started in containers."""

    image: str  # the training image (make build)
    engine: str  # podman or docker
    instance_count: int = 1  # hosts per job, one container each
    run_name: str = ""  # the RUN_LABEL of every container


class JobContainers:
    """The containers (and network) of one job in `base_dir`."""

    def __init__(self, base_dir: Path, problem: str | None, settings: ContainerSettings, *, cpus_per_host: int,
                 code_bundle: Path | None = None) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.problem = problem
        self.program = user_code.entry_point(problem)
        self.settings = settings
        self.cpus_per_host = cpus_per_host
        self.code_bundle = Path(code_bundle).absolute() if code_bundle is not None else None  # make_bundle's
        self.hosts = host_names(settings.instance_count)
        digest = hashlib.sha256(str(self.base_dir).encode()).hexdigest()[:10]
        self._prefix = f"sagemaker-rl-{digest}"
        self.network = self._prefix if len(self.hosts) > 1 else None

    def name(self, host: str) -> str:
        return f"{self._prefix}-{host}"

    def paths(self, host: str) -> contract.JobPaths:
        """The host's paths, as its job writes its outcome (the head under the contract's names)."""
        return contract.JobPaths(host_dir(self.base_dir, host, self.hosts),
                                 host_outputs="" if host == self.hosts[0] else host)

    def write_inputs(self, hyperparameters: Mapping[str, Any]) -> None:
        """Every host's input files as SageMaker writes them: the same hyperparameters, its own current_host; the
        toolkit's log level WARNING unless they set it (`sagemaker_container_log_level`)."""
        quiet = {contract.LOG_LEVEL_KEY: logging.WARNING, **hyperparameters}  # not the toolkit's INFO lines
        if self.code_bundle is not None:
            quiet.update({contract.SUBMIT_DIRECTORY_KEY: SUBMIT_MOUNT, contract.PROGRAM_KEY: self.program})
        for host in self.hosts:
            contract.write_inputs(self.paths(host), quiet, hosts=self.hosts, current_host=host)

    def has_inputs(self) -> bool:
        return all(self.paths(host).hyperparameters_file.is_file() for host in self.hosts)

    def start(self, head_stdout: int | IO[Any] | None) -> tuple[subprocess.Popen[bytes], list[subprocess.Popen[bytes]]]:
        """Start every host's container (attached: one engine process each); the head's output to `head_stdout`,
        the others' to their stdout.log. Returns the head's process and the others'."""
        remove_left_in(self.base_dir, self.settings.engine)  # a rerun of the same job directory
        for host in self.hosts:
            paths = self.paths(host)
            for stale in (paths.failure_file, paths.success_file):
                stale.unlink(missing_ok=True)
            if self.code_bundle is not None:  # the toolkit extracts the bundle into an empty code directory only
                shutil.rmtree(paths.base / "code", ignore_errors=True)
        if self.network:
            self._engine("network", "create", "--label", f"{JOB_LABEL}={self.base_dir}", self.network)
            token = contract.write_ray_token(self.paths(self.hosts[0]).ray_token_file)
            for host in self.hosts[1:]:
                contract.write_ray_token(self.paths(host).ray_token_file, token)
        processes = []
        for host in self.hosts:
            if host == self.hosts[0]:
                stdout: Any = head_stdout
            else:
                stdout = open(self.paths(host).base / contract.STDOUT_LOG, "ab")  # noqa: SIM115 - the child holds it
            try:
                processes.append(subprocess.Popen(self._run_command(host), stdin=subprocess.DEVNULL, stdout=stdout,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
            finally:
                if host != self.hosts[0]:
                    stdout.close()
        return processes[0], processes[1:]

    def _run_command(self, host: str) -> list[str]:
        command = [
            self.settings.engine, "run", "--rm", "--name", self.name(host), "--hostname", host,
            "--cpus", str(self.cpus_per_host), f"--shm-size={SHM_SIZE}",
            "-v", f"{self.paths(host).base}:/opt/ml",
            "-e", f"{contract.NUM_CPUS_ENV}={self.cpus_per_host}",
            "-e", f"SAGEMAKER_PROGRAM={self.program}",
            "--label", f"{JOB_LABEL}={self.base_dir}", "--label", f"{HOST_LABEL}={host}",
            "--label", f"{RUN_LABEL}={self.settings.run_name or self.base_dir.name}",
        ]
        if self.code_bundle is not None:
            command += ["-v", f"{self.code_bundle}:{SUBMIT_MOUNT}:ro"]
        if self.network:
            command += ["--network", self.network, "--network-alias", host]
        return [*command, self.settings.image, "train"]

    def stop(self, *, wait: bool = False) -> None:
        """Stop the job's containers as SageMaker stops a job: SIGTERM (the image's init hands it to the job, which
        checkpoints after its iteration), SIGKILL after STOP_GRACE_S. Returns at once unless `wait`."""
        command = [self.settings.engine, "stop", "--time", str(STOP_GRACE_S), *(self.name(host) for host in self.hosts)]
        quiet = subprocess.DEVNULL
        process = subprocess.Popen(command, stdin=quiet, stdout=quiet, stderr=quiet)  # noqa: S603
        if wait:
            try:
                process.wait(STOP_GRACE_S + _TIMEOUT_S)
            except subprocess.TimeoutExpired:  # the engine hangs: remove() kills what is left
                process.kill()

    def remove(self) -> bool:
        """Remove what is left of the job: its containers and network, its hosts' token; True if there was something."""
        removed = remove_left_in(self.base_dir, self.settings.engine)
        for host in self.hosts:
            self.paths(host).ray_token_file.unlink(missing_ok=True)
        return removed

    def _engine(self, *args: str) -> str:
        return _engine(self.settings.engine, *args)


def _engine(engine_command: str, *args: str, check: bool = True) -> str:
    done = subprocess.run([engine_command, *args], capture_output=True, text=True, check=False, timeout=_TIMEOUT_S)
    if check and done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{engine_command} {' '.join(args[:2])} failed (exit {done.returncode}): {tail}")
    return done.stdout


def left_in(base_dir: Path, engine_command: str) -> list[str]:
    """Names of the containers (running or not) of the job in `base_dir`."""
    label = f"label={JOB_LABEL}={Path(base_dir).absolute()}"
    return _engine(engine_command, "ps", "-a", "--filter", label, "--format", "{{.Names}}").split()


def remove_left_in(base_dir: Path, engine_command: str) -> bool:
    """Kill and remove the containers, and remove the network, of the job in `base_dir`; True if any were there."""
    label = f"label={JOB_LABEL}={Path(base_dir).absolute()}"
    names = left_in(base_dir, engine_command)
    if names:
        logger.info("removing container(s) %s of %s", ", ".join(names), base_dir)
        for name in names:  # one at a time: one that ended meanwhile (--rm) fails a command naming several
            _engine(engine_command, "kill", name, check=False)  # SIGKILL: rm -f would wait for SIGTERM first
            _engine(engine_command, "rm", "-f", name, check=False)
    networks = _engine(engine_command, "network", "ls", "-q", "--filter", label).split()
    if networks:
        _engine(engine_command, "network", "rm", *networks, check=False)
    left = left_in(base_dir, engine_command)
    if left:
        logger.warning("container(s) %s of %s could not be removed", ", ".join(left), base_dir)
    return bool(names or networks)


def run_job(containers: JobContainers, *, out: IO[str]) -> int:
    """Run a job's containers in the foreground, the head's output on this console; its exit code.

    Every host's container ends with it: after a Ctrl-C too, and when the head ends, the other hosts get
    LEAVE_TIMEOUT_S to leave (they do within seconds). A host's failure reason is its output/failure.
    """
    head, others = containers.start(None)
    try:
        code = head.wait()
        codes = [_wait(process, LEAVE_TIMEOUT_S) for process in others]
    except KeyboardInterrupt:
        containers.stop(wait=True)
        print(f"stopped: the job's containers are removed; rerun with --run-dir {containers.base_dir} to resume "
              "from its last checkpoint", file=out, flush=True)
        return 130
    finally:
        containers.remove()
    for host, host_code in zip(containers.hosts[1:], codes, strict=True):
        if host_code != 0 and code == 0:
            reason = failure_reason(containers.paths(host), host_code)
            print(f"{contract.FAILURE_PREFIX}host {host} failed: {reason}", file=out, flush=True)
            code = host_code
    return code


def failure_reason(paths: contract.JobPaths, returncode: int) -> str:
    """A host's reason: the first line of its output/failure, else its exit code."""
    try:
        lines = [line for line in paths.failure_file.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    return lines[0].strip() if lines else f"its container ended ({contract.exit_hint(returncode)})"


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        return -9  # removed with the job's containers
