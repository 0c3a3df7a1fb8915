"""The Ray cluster runner: each job a Ray Job on a running cluster (Ray's Jobs API), reattached by its id.

The tuner may run off the cluster (a laptop reaching the head's dashboard). A job's base directory is
on the cluster's storage (`RayCluster.storage_path`, the same path on every node); the tuner's trial
directory keeps `ray_job.json` (the job's id and where it runs) and `stdout.log`, a copy of the job's
log as read through the Jobs API, which is also where the reward lines come from. On the cluster the
job's entrypoint is this module (`python -m sagemaker_rl.tuning.ray_jobs [--problem P]`): it writes the
job's inputs into its base directory, as SageMaker does before it starts a job, then becomes
`python -m sagemaker_rl.job`. This very package is shipped with every job (`py_modules`), so the
cluster runs the tuner's code; RLlib and the simulators come from the cluster's image. The user's code
directory travels as the job's `working_dir` (a snapshot copied into the run directory once per run, so
every trial trains the same code), with its requirements.txt as the job's `pip` list: Ray puts the
directory on the driver's and every worker's path and installs the list into a virtualenv per node (each
line as pip reads it there, so no paths relative to the directory). Ray refuses a package over its gRPC
message limit (512 MiB); `user_code` refuses a directory over 100 MB before that.

A cluster with token authentication: the tuner presents the user's token, found where Ray's own
clients look (RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, `~/.ray/auth_token`), in every
request to the dashboard. A job's driver inherits its node's token settings (a Ray Job's entrypoint
runs in the node's environment), so no token travels in a runtime env, which the dashboard shows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import secrets
import shlex
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sagemaker_rl import contract, job, metrics, user_code
from sagemaker_rl.tuning.runners import JobSpec, JobStatus, last_output, reward_failure
from sagemaker_rl.tuning.space import TuningError

logger = logging.getLogger(__name__)

MODULE = "sagemaker_rl.tuning.ray_jobs"  # the entrypoint of every job on the cluster
JOB_FILE = "ray_job.json"  # in a job's local directory: its Ray job id, the cluster, its base directory there
CLUSTER_FILE = "ray_cluster.json"  # in the run directory: the cluster and storage path, read by --resume
CODE_SNAPSHOT = "code"  # in the run directory: the snapshot of the user's code its jobs get as working_dir
HYPERPARAMETERS_ENV = "SAGEMAKER_RL_HYPERPARAMETERS"  # the job's hyperparameters, written into its inputs there
POLL_S = 2.0  # between two reads of a job's status and log
LOST_AFTER_S = 300.0  # a job whose cluster cannot be reached this long is given up (failed)
ENTRYPOINT_CPUS = 1  # CPUs a job's driver (its learner, and the sampling on one CPU) holds in Ray
CHECK_TIMEOUT_S = 180.0  # the storage check job (it may wait for a free node)
RUNTIME_ENV_SETUP_S = 600.0  # and its requirements' install on a node (Ray's own runtime_env setup timeout)
DEFAULT_TOKEN_FILE = ".ray/auth_token"  # under the home directory: where Ray keeps a user's token
STOP_TIMEOUT_S = 20.0  # after a stop request: Ray sends SIGTERM, SIGKILL 3 s later
# Waits between submissions a cluster refuses for now ("No available agent to submit job, please try again later",
# seen right after a cluster came up): about half a minute in all, then the refusal is the job's failure.
SUBMIT_RETRY_WAITS_S = (1.0, 2.0, 4.0, 8.0, 15.0)
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
NODE_DIED = "because its node has died"  # in Ray's message for a job whose supervisor's node died
_CLIENT_LOGGERS = ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk",
                   "ray._private.runtime_env.packaging")
_REQUIRED_ON_CLUSTER = ("ray.rllib", "torch", "gymnasium", "pybullet", "mujoco", "optuna")  # what a job imports


@dataclass(frozen=True)
class RayCluster:
    """Where the jobs run: the cluster's dashboard and a directory every node can write."""

    address: str  # the head's dashboard (Jobs API), e.g. http://HEAD:8265
    storage_path: str  # absolute directory, the same on every node (shared filesystem); jobs go under it

    def __post_init__(self) -> None:
        address = self.address.strip().rstrip("/")
        if not address:
            raise TuningError("--backend ray needs the cluster's dashboard address: --address http://HEAD:8265 "
                              "(or set RAY_ADDRESS)")
        if "://" not in address:
            address = f"http://{address}"
        object.__setattr__(self, "address", address)
        if "://" in self.storage_path:
            raise TuningError(
                f"--storage-path {self.storage_path} is a URI: Ray jobs write their model and checkpoints to a "
                "directory; mount the bucket or file system on every node (s3fs, EFS, NFS) and give its path"
            )
        if not PurePosixPath(self.storage_path).is_absolute():
            raise TuningError(f"--storage-path {self.storage_path!r} must be an absolute directory on the cluster "
                              "(the same on every node), e.g. /mnt/shared/sagemaker-rl")

    def run_folder(self, run_dir: Path) -> PurePosixPath:
        """Where the run in `run_dir` keeps its jobs on the storage: STORAGE/RUN_NAME."""
        return PurePosixPath(self.storage_path, Path(run_dir).name)

    def write(self, run_dir: Path) -> None:
        (run_dir / CLUSTER_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, run_dir: Path) -> RayCluster | None:
        """The cluster a run directory's trials ran on; None for a run of another backend."""
        path = Path(run_dir) / CLUSTER_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def _user_token(environ: Mapping[str, str] = os.environ) -> str | None:
    """The user's Ray token, from the first of Ray's own places that has one; None when none does."""
    if environ.get(contract.RAY_AUTH_TOKEN_ENV, "").strip():
        return environ[contract.RAY_AUTH_TOKEN_ENV].strip()
    path = environ.get(contract.RAY_AUTH_TOKEN_PATH_ENV)
    file = Path(path).expanduser() if path else Path.home() / DEFAULT_TOKEN_FILE
    try:
        return file.read_text().strip() or None
    except OSError as error:
        if path:  # named but unreadable: the request goes without one, and the refusal names the variable
            logger.warning("cannot read the Ray token file %s ($%s): %s", file, contract.RAY_AUTH_TOKEN_PATH_ENV,
                           error.strerror or error)
        return None


def _headers() -> dict[str, str]:
    """The HTTP headers of every request to the cluster's dashboard: the user's token, when there is one."""
    token = _user_token()
    return {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}


def _refused(address: str) -> TuningError:
    given = "refused the token given" if _user_token() else "requires a token and none was given"
    return TuningError(
        f"the Ray cluster at {address} {given}: put the cluster's token in ${contract.RAY_AUTH_TOKEN_ENV}, in "
        f"a file named by ${contract.RAY_AUTH_TOKEN_PATH_ENV}, or in ~/{DEFAULT_TOKEN_FILE} (`ray get-auth-token` "
        "on the head prints it)"
    )


def connect(address: str) -> Any:
    """A Jobs API client of the cluster at `address`; one sentence with the fix when it cannot be reached."""
    from ray.job_submission import JobSubmissionClient

    # Ray's client logs each package upload at INFO to the console on its own: keep the console quiet.
    for name in _CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return JobSubmissionClient(address, headers=_headers())
    except Exception as error:  # ConnectionError, a dashboard without the Jobs API, or a refused token
        # By name: this runner uses Ray's client APIs only, and ray.exceptions is not one of them.
        if type(error).__name__ == "AuthenticationError":
            raise _refused(address) from None
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TuningError(
            f"cannot reach the Ray cluster's Jobs API at {address} ({reason}): start the cluster with its "
            "dashboard (ray start --head --dashboard-host 0.0.0.0; pip install 'ray[default]'), and give "
            "--address the head's dashboard URL (port 8265 by default) or port-forward it"
        ) from None


def cluster_cpus(address: str) -> int:
    """CPUs of the cluster's live nodes (the state API, through the dashboard)."""
    from ray.util.state import StateApiClient
    from ray.util.state.common import ListApiOptions, StateResource

    options = ListApiOptions(filters=[("state", "=", "ALIVE")], detail=True)
    nodes: list[Any] = StateApiClient(address, headers=_headers()).list(StateResource.NODES, options=options,
                                                                        raise_on_missing_output=False)
    return int(sum(node.resources_total.get("CPU", 0) for node in nodes))


class RayJobRunner:
    """Runs each job as a Ray Job on `cluster`; a job's base directory there mirrors its place in `run_dir`."""

    def __init__(self, cluster: RayCluster, run_dir: Path, *, client: Any = None) -> None:
        self.cluster = cluster
        self._run_dir = Path(run_dir).absolute()
        self._client = client or connect(cluster.address)
        self.stopped: list[str] = []  # ids of the jobs this runner asked Ray to stop
        self._snapshots: dict[Path, Path] = {}  # code directory -> its snapshot, made by this runner's first job

    def remote_dir(self, base_dir: Path) -> str:
        """The job's base directory on the cluster: STORAGE/RUN_NAME/trials/NNNN[/seed-i]."""
        relative = Path(base_dir).absolute().relative_to(self._run_dir)
        return str(self.cluster.run_folder(self._run_dir).joinpath(*relative.parts))

    def job_dir(self, base_dir: Path) -> Path:
        return Path(self.remote_dir(base_dir))  # the storage path is the same on every node and the tuner's

    def check(self, code_dir: Path | None = None) -> None:
        """Run a tiny job on the cluster: the storage path is writable, holds no run of this name (its trials'
        directories there would mix with this run's) and the job's packages are there, with `code_dir` and its
        requirements.txt installed as every job will have them (a failing install fails here, once)."""
        command = f"python -m {MODULE} --check {shlex.quote(self.cluster.storage_path)} --run-name " \
                  f"{shlex.quote(self._run_dir.name)}"
        try:
            job_id = self._submit(command, env={}, cpus=0, name=f"check-{self._run_dir.name}", code_dir=code_dir)
        except RuntimeError as error:  # the Jobs API's refusal, after the retries a transient one gets
            raise TuningError(f"the Ray cluster at {self.cluster.address} did not take the check job: "
                              f"{str(error).strip().splitlines()[0]}") from None
        installs = code_dir is not None and user_code.requirements(code_dir) is not None
        deadline = time.monotonic() + CHECK_TIMEOUT_S + (RUNTIME_ENV_SETUP_S if installs else 0)
        info = self._client.get_job_info(job_id)
        while info.status not in _TERMINAL:
            if time.monotonic() > deadline:
                self._client.stop_job(job_id)
                raise TuningError(f"the check job on {self.cluster.address} did not run within "
                                  f"{CHECK_TIMEOUT_S:.0f} s ({info.status}: {info.message}): is a node free?")
            time.sleep(0.5)
            info = self._client.get_job_info(job_id)
        if info.status != "SUCCEEDED":
            logs = self._client.get_job_logs(job_id)
            reason = _error_line(logs) or _ray_reason(info.message) + last_output(logs.splitlines())
            raise TuningError(f"the Ray cluster at {self.cluster.address} cannot run our jobs: {reason}")

    def start(self, spec: JobSpec) -> RayJob:
        remote = self.remote_dir(spec.base_dir)
        env = {
            contract.BASE_DIR_ENV: remote,
            contract.NUM_CPUS_ENV: str(spec.num_cpus),
            contract.DRIVER_CPUS_ENV: str(ENTRYPOINT_CPUS),  # the job starts its runners on the rest
            HYPERPARAMETERS_ENV: json.dumps(dict(spec.hyperparameters), default=str),
        }
        job_id = self._submit(shlex.join(["python", "-m", MODULE, *spec.problem_args()]), env=env,
                              cpus=ENTRYPOINT_CPUS, name=_name(self._run_dir, spec.base_dir),
                              code_dir=self.code_snapshot(spec.code_dir))
        record = {"job_id": job_id, "address": self.cluster.address, "base_dir": remote}
        (spec.base_dir / JOB_FILE).write_text(json.dumps(record, indent=2) + "\n")
        logger.debug("started Ray job %s for %s (base directory %s)", job_id, spec.base_dir, remote)
        return RayJob(spec, self._client, job_id, remote_dir=remote, on_stop=self.stopped.append)

    def reattach(self, spec: JobSpec) -> RayJob | None:
        """Follow again the Ray job an earlier tuner started in `spec.base_dir`, running or ended (read from
        its log); None when there is none on the cluster."""
        record = _read_record(spec.base_dir)
        if record is None:
            return None
        try:
            info = self._client.get_job_info(record["job_id"])
        except Exception as error:  # unknown to this cluster (another cluster, or its job table was lost)
            logger.warning("cannot reattach Ray job %s of %s: %s", record["job_id"], spec.base_dir, error)
            return None
        logger.info("reattached to Ray job %s (%s) of %s", record["job_id"], info.status, spec.base_dir)
        return RayJob(spec, self._client, record["job_id"], remote_dir=record["base_dir"],
                      on_stop=self.stopped.append)

    def stop_orphan(self, base_dir: Path) -> bool:
        record = _read_record(base_dir)
        if record is None:
            return False
        job_id = record["job_id"]
        try:
            if self._client.get_job_status(job_id) in _TERMINAL:
                return False
            logger.warning("stopping Ray job %s left running in %s by an earlier tuner", job_id, base_dir)
            self._client.stop_job(job_id)
            self.stopped.append(job_id)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while self._client.get_job_status(job_id) not in _TERMINAL and time.monotonic() < deadline:
                time.sleep(0.5)
        except Exception as error:  # the cluster is gone or lost the job: nothing left to stop
            logger.warning("could not stop Ray job %s of %s: %s", job_id, base_dir, error)
            return False
        return True

    def code_snapshot(self, code_dir: Path | None) -> Path | None:
        """The run's snapshot of `code_dir` (copied into the run directory by the run's first job); None: none."""
        if code_dir is None:
            return None
        given = Path(code_dir).absolute()
        if given not in self._snapshots:
            self._snapshots[given] = user_code.copy_code(given, self._run_dir / CODE_SNAPSHOT)
        return self._snapshots[given]

    def _submit(self, entrypoint: str, *, env: Mapping[str, str], cpus: float, name: str,
                code_dir: Path | None = None) -> str:
        runtime_env: dict[str, Any] = {
            "env_vars": dict(env),
            # This package, so the cluster runs the tuner's code (as job.child_env does for a local job).
            "py_modules": [str(Path(job.package_root()) / "sagemaker_rl")],
            "excludes": ["__pycache__", "*.pyc", ".git"],
        }
        if code_dir is not None:  # the job's driver and its workers (they inherit the job's runtime env)
            runtime_env["working_dir"] = str(code_dir)
            requirements = user_code.requirements(code_dir)
            if requirements is not None:
                runtime_env["pip"] = str(requirements)
        return submit_with_retries(lambda: str(self._client.submit_job(
            entrypoint=entrypoint,
            submission_id=f"{name}-{secrets.token_hex(3)}",  # unique: a cluster keeps every job it ran
            runtime_env=runtime_env,
            entrypoint_num_cpus=cpus,  # > 0: Ray may place the driver on any node with a free CPU
            metadata={"sagemaker_rl_run": self._run_dir.name},
        )))


class RayJob:
    """A job running as a Ray Job; a thread reads its status and log every POLL_S seconds."""

    def __init__(self, spec: JobSpec, client: Any, job_id: str, *, remote_dir: str,
                 on_stop: Any = None) -> None:
        self.spec = spec
        self.job_id = job_id
        self.remote_dir = remote_dir
        self._client = client
        self._on_stop = on_stop
        self._lock = threading.Lock()
        self._records = metrics.RecordReader(spec.metric)
        self._values: list[metrics.Record] = []
        self._read = 0  # characters of the log read so far
        self._pending = ""  # a last line without its newline yet
        self._done = threading.Event()
        self._wake = threading.Event()
        self._failure: str | None = None
        self._lost = False  # it failed because its node died: not the trial's doing
        self._stop_requested = False
        self._log = open(spec.base_dir / contract.STDOUT_LOG, "w")  # noqa: SIM115 - closed by the thread; Ray's log is whole
        self._thread = threading.Thread(target=self._follow, name=f"ray-job-{job_id}", daemon=True)
        self._thread.start()

    def poll(self) -> JobStatus:
        with self._lock:
            status = JobStatus(values=list(self._values), output_dir=self.remote_dir)
            if self._done.is_set():
                status.done = True
                status.failure = self._failure
                status.lost = self._lost
        return status

    def stop(self) -> None:
        if self._done.is_set() or self._stop_requested:
            return
        self._stop_requested = True
        try:
            self._client.stop_job(self.job_id)
        except Exception as error:  # the job may have ended meanwhile; wait() sees its end either way
            logger.warning("could not stop Ray job %s: %s", self.job_id, error)
        if self._on_stop is not None:
            self._on_stop(self.job_id)
        self._wake.set()

    def wait(self, timeout: float) -> bool:
        if self._done.wait(timeout):
            return not self._stop_requested
        self.stop()  # Ray ends it: SIGTERM, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (3 s)
        if not self._done.wait(STOP_TIMEOUT_S):
            logger.warning("Ray job %s did not end within %.0f s of its stop", self.job_id, STOP_TIMEOUT_S)
        return False

    # --- the reader thread ---

    def _follow(self) -> None:
        last_contact = time.monotonic()
        with self._log:
            while True:
                try:
                    info = self._client.get_job_info(self.job_id)
                except Exception as error:  # the dashboard restarts, the network drops
                    logger.debug("reading the status of Ray job %s: %s", self.job_id, error)
                    if time.monotonic() - last_contact > LOST_AFTER_S:
                        reason = _first_line(str(error)) or type(error).__name__
                        self._end(f"lost contact with the Ray cluster for {LOST_AFTER_S:.0f} s: {reason}")
                        return
                else:
                    last_contact = time.monotonic()
                    if info.status in _TERMINAL:
                        self._finish(info)
                        return
                    try:
                        self._read_log()
                    except Exception as error:  # e.g. the job's node died: its status says so next
                        logger.debug("reading the log of Ray job %s: %s", self.job_id, error)
                self._wake.wait(POLL_S)
                self._wake.clear()

    def _read_log(self) -> None:
        text = self._client.get_job_logs(self.job_id)
        new = text[self._read:]
        self._read = len(text)
        if not new:
            return
        self._log.write(new)
        self._log.flush()
        lines = (self._pending + new).split("\n")
        self._pending = lines.pop()  # "" after a final newline
        with self._lock:
            for line in lines:
                self._add(self._records.feed(line.rstrip("\r")))

    def _finish(self, info: Any) -> None:
        try:
            self._read_log()  # what the job printed after the last read
        except Exception as error:  # its node died with the job: its log is gone
            logger.debug("last read of Ray job %s's log: %s", self.job_id, error)
        with self._lock:
            if self._pending:
                self._add(self._records.feed(self._pending))
                self._pending = ""
            self._add(self._records.close())
            diverged, values = self._records.diverged, list(self._values)
        if info.status == "SUCCEEDED" and not values and not diverged:
            values = self._values_from_storage()
        if info.status == "SUCCEEDED":
            self._end(reward_failure(self.spec.metric, diverged=diverged, values=values))
        elif info.status == "STOPPED":
            self._end("the Ray job was stopped" + ("" if self._stop_requested else
                                                   " outside the tuner (ray job stop, or the dashboard)"))
        else:
            self._end(self._ray_failure(info))

    def _values_from_storage(self) -> list[metrics.Record]:
        """What the job reported, read from the progress.csv it wrote on the storage: Ray can return an empty log
        for a job that succeeded (seen on a 2-node cluster)."""
        found = [record for record in metrics.read_progress_records(
            contract.JobPaths(Path(self.remote_dir)).progress_csv, self.spec.metric) if record.value is not None]
        if found:
            logger.warning("Ray job %s succeeded with %s log: its values are read from its progress.csv on the "
                           "storage", self.job_id, "an empty" if not self._read else "no reward line in its")
            with self._lock:
                self._values = list(found)
        return found

    def _ray_failure(self, info: Any) -> str:
        """The job's own reason (its `ERROR:` line) when it gave one, else Ray's."""
        own = _error_line(self._log_text())
        if own:
            return own
        code = getattr(info, "driver_exit_code", None)
        exit_text = f" ({contract.exit_hint(code)})" if code not in (None, 0) else ""
        reason = _ray_reason(info.message) or str(info.error_type or "no reason given")
        dead_node = self._dead_node(info.driver_node_id)
        # A machine lost (a spot node, a crash) is no fault of the trial's values: its trial runs again. Ray's
        # message may say so before its health checks have called the node dead.
        self._lost = bool(dead_node) or NODE_DIED in str(info.message or "")
        return f"the Ray job failed{exit_text}: {reason}{last_output(self._log_text().splitlines())}{dead_node}"

    def _dead_node(self, node_id: str | None) -> str:
        """`; its node … is dead: <why>` when the job's driver was on a node Ray holds dead, else ''."""
        if not node_id:
            return ""
        from ray.util.state import StateApiClient
        from ray.util.state.common import GetApiOptions, StateResource

        try:
            node: Any = StateApiClient(self._client.get_address(), headers=_headers()).get(
                StateResource.NODES, node_id, GetApiOptions())
        except Exception as error:  # the state API is an extra: the job's own status already says it failed
            logger.debug("could not read node %s of Ray job %s: %s", node_id, self.job_id, error)
            return ""
        if node is None or node.state != "DEAD":
            return ""
        why = f": {_first_line(node.state_message)}" if node.state_message else ""
        return f"; its node {node.node_ip} ({node_id[:8]}) is dead{why}"

    def _log_text(self) -> str:
        try:
            return (self.spec.base_dir / contract.STDOUT_LOG).read_text(errors="replace")
        except OSError:
            return ""

    def _add(self, record: metrics.Record | None) -> None:
        if record is not None and record.value is not None:
            self._values.append(record)

    def _end(self, failure: str | None) -> None:
        with self._lock:
            self._failure = failure
        self._done.set()


def submit_with_retries(submit: Callable[[], str]) -> str:
    """`submit()`, tried again after SUBMIT_RETRY_WAITS_S while the cluster answers that it cannot take a job yet."""
    for wait in (*SUBMIT_RETRY_WAITS_S, None):
        try:
            return submit()
        except Exception as error:
            if wait is None or "try again later" not in str(error).lower():
                raise
            logger.warning("the Ray cluster cannot take a job yet (%s): submitting again in %g s",
                           str(error).strip().splitlines()[0], wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _name(run_dir: Path, base_dir: Path) -> str:
    """A readable job id prefix: the run's name and the job's place in it."""
    relative = Path(base_dir).absolute().relative_to(Path(run_dir).absolute())
    return "-".join([run_dir.name, *(part for part in relative.parts if part != "trials")])


def _read_record(base_dir: Path) -> dict[str, str] | None:
    path = Path(base_dir) / JOB_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return {key: str(record[key]) for key in ("job_id", "address", "base_dir")}
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable %s: %s", path, error)
        return None


def _error_line(log: str) -> str | None:
    """The reason a job wrote for its failure (the contract's `ERROR:` line), the last one in `log`."""
    lines = [line for line in log.splitlines() if line.startswith(contract.FAILURE_PREFIX)]
    return lines[-1][len(contract.FAILURE_PREFIX):].strip() if lines else None


def _ray_reason(message: str | None) -> str:
    """The first line of Ray's message, the sentence of it that says why (Ray puts it further down), and pip's
    last error when it was a runtime env's install that failed (Ray quotes pip's output)."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0].split(", last available logs")[0].rstrip(":")  # the logs themselves are in stdout.log
    cause = next((line for line in lines[1:] if " because " in line), "")
    reason = f"{first} {cause.split('. ')[0].rstrip('.')}." if cause else first
    installer = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
    if not installer:
        return reason
    # pip names the line of Ray's copy of the requirements, in the node's session directory: the user's is meant
    return f"{reason} pip: " + re.sub(r" \(from line (\d+) of \S+\)$", r" (line \1 of requirements.txt)", installer[-1])


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


# --- the job's side, on the cluster ---

def _check(storage_path: str, run_name: str | None) -> int:
    """The check job: the storage path is writable here, holds no run named `run_name`, and the job's packages
    import."""
    missing = [name for name in _REQUIRED_ON_CLUSTER if importlib.util.find_spec(name) is None]
    if missing:
        print(f"{contract.FAILURE_PREFIX}the cluster's Python ({sys.executable}) lacks {', '.join(missing)}: start "
              "the cluster from our image (docker/ray-cluster.yaml) or install docker/requirements.txt on every "
              "node", flush=True)
        return 1
    probe = Path(storage_path) / f".sagemaker-rl-check-{secrets.token_hex(4)}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok\n")
        probe.unlink()
    except OSError as error:
        print(f"{contract.FAILURE_PREFIX}--storage-path {storage_path} is not writable on the cluster "
              f"({type(error).__name__}: {error.strerror or error}): give a directory every node can write, "
              "the same path on each (a shared file system)", flush=True)
        return 1
    if run_name and (Path(storage_path) / run_name).exists():
        print(f"{contract.FAILURE_PREFIX}--storage-path {storage_path} already holds a run named {run_name}: its "
              "trials' files would mix with this run's; choose a --run-dir with another name, or remove "
              f"{Path(storage_path) / run_name}", flush=True)
        return 1
    print(f"storage {storage_path} writable; python {sys.executable}", flush=True)
    return 0


def _run_job(problem: str | None) -> int:
    """Write the job's inputs under $SAGEMAKER_BASE_DIR (the platform's part), then run the job itself."""
    paths = contract.JobPaths.from_env()
    try:
        paths.base.mkdir(parents=True, exist_ok=True)
        contract.write_inputs(paths, json.loads(os.environ[HYPERPARAMETERS_ENV]))
    except OSError as error:
        print(f"{contract.FAILURE_PREFIX}cannot write the job's inputs in {paths.base} ({error}): give "
              "--storage-path a directory every node can write", flush=True)
        return 1
    os.chdir(paths.base)
    os.execv(sys.executable, [sys.executable, *job.job_command(problem)])
    return 1  # not reached: execv replaces this process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A tuning job's entrypoint on a Ray cluster (started by "
                                     "RayJobRunner, not by hand).")
    parser.add_argument("--problem", help="run the job for this problem (none: the env its rl.env.* keys name)")
    parser.add_argument("--check", metavar="STORAGE_PATH", help="only check the storage path and packages")
    parser.add_argument("--run-name", help="with --check: the new run, which the storage must not hold yet")
    args = parser.parse_args(argv)
    return _check(args.check, args.run_name) if args.check else _run_job(args.problem)


if __name__ == "__main__":
    sys.exit(main())
