"""The SageMaker job layout: where a job finds its inputs and leaves its outputs.

Every runner (local process, container, Ray cluster, SageMaker) starts a job under this layout, so
this module knows `/opt/ml` and the `SM_*` environment, and nothing about PPO.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_rl.errors import USER_ERROR_EXIT, JobError, UserError

logger = logging.getLogger(__name__)

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"  # the variable sagemaker-training itself honours
DEFAULT_BASE_DIR = "/opt/ml"
NUM_CPUS_ENV = "SM_NUM_CPUS"  # CPUs a job may use: set by SageMaker, and by our tuner per job
# CPUs of that share the job's driver process already holds in a shared Ray cluster (a Ray Job's
# entrypoint resources): the job asks Ray for the rest only. Unset: the driver holds none.
DRIVER_CPUS_ENV = "SAGEMAKER_RL_DRIVER_CPUS"
RAY_ADDRESS_ENV = "RAY_ADDRESS"  # a job given it joins that Ray instance instead of starting one
# Ray's token authentication, in Ray's own variables: every Ray instance the product starts requires a token,
# and whatever joins it (node, driver, job) presents it: "token" mode and the token's file (0600).
RAY_AUTH_MODE_ENV = "RAY_AUTH_MODE"
RAY_AUTH_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
RAY_AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"  # Ray reads it before the file: never set by us, dropped where we give a file
RAY_TOKEN_FILE = "ray_auth_token"  # a multi-host job's token, in every host's input/config (the launcher's)
PROGRESS_CSV = "progress.csv"  # a row per training iteration, in output/intermediate (job/progress.py writes it)
STDOUT_LOG = "stdout.log"  # a job's console output, in its base directory, where our runners put it
# Hyperparameters the SageMaker platform reads: the entry point in /opt/ml/code the toolkit runs, and
# where it downloads that code from (absent: the image's own entry points).
PROGRAM_KEY = "sagemaker_program"
SUBMIT_DIRECTORY_KEY = "sagemaker_submit_directory"
LOG_LEVEL_KEY = "sagemaker_container_log_level"  # sagemaker-training's own logging (the SDK sends 20, INFO)

FAILURE_PREFIX = "ERROR: "  # a failed job's console line with its reason (a runner may read only the console)
FAILURE_HINT = ("The reason above is the first line of /opt/ml/output/failure: SageMaker shows it as the job's "
                "FailureReason; in SageMaker SDK local mode, where fit() only says that docker-compose exited with "
                "code 1, it is the file 'failure' in the job's output.tar.gz (and on the ERROR line of the log).")
# Exit codes that point at a cause a user can act on.
_EXIT_HINTS = {137: "killed with SIGKILL (exit 137): likely out of memory", -9: "killed with SIGKILL"}


@dataclass(frozen=True)
class JobPaths:
    """The directories and files of one job under its base directory.

    A multi-host job's head writes its outcome (`success` or `failure`) and its log under the contract's
    names; every other host writes them in `output/<its name>/` (`own_output`), so that a merge of all
    the hosts' output directories (the SageMaker SDK's output.tar.gz in local mode) tells the head's.
    """

    base: Path
    host_outputs: str = ""  # a multi-host job's host other than the head: its own outputs' directory name

    def of_this_host(self) -> JobPaths:
        """These paths as this host writes its outcome (resourceconfig.json names the host and the head, the
        first host); as they are when that file is missing or not as SageMaker writes it."""
        try:
            resources = read_resource_config(self)
            current, hosts = resources.get("current_host"), resources.get("hosts")
        except (UserError, AttributeError, OSError):  # the job itself says what is wrong with the file
            return self
        if not isinstance(current, str) or current in ("", ".", "..") or "/" in current:
            return self
        if not isinstance(hosts, list) or not hosts or current == hosts[0]:
            return self
        return JobPaths(self.base, host_outputs=current)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> JobPaths:
        return cls(Path(environ.get(BASE_DIR_ENV, DEFAULT_BASE_DIR)))

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def ray_token_file(self) -> Path:
        """The token a multi-host job's hosts share, when its launcher gave one (not on SageMaker)."""
        return self.config_dir / RAY_TOKEN_FILE

    @property
    def checkpoints(self) -> Path:
        return self.base / "checkpoints"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def intermediate(self) -> Path:
        return self.output / "intermediate"

    @property
    def progress_csv(self) -> Path:
        return self.intermediate / PROGRESS_CSV

    @property
    def own_output(self) -> Path:
        """Where this host's outcome and log go: `output`, or a directory of its own in it (`host_outputs`)."""
        return self.output / self.host_outputs if self.host_outputs else self.output

    @property
    def failure_file(self) -> Path:
        return self.own_output / "failure"

    @property
    def success_file(self) -> Path:
        return self.own_output / "success"

    @property
    def log_file(self) -> Path:
        """Where a job's detailed (library) logs go, keeping the console quiet."""
        return self.own_output / "job.log"

    def make_dirs(self) -> None:
        for directory in (self.checkpoints, self.model, self.intermediate):
            directory.mkdir(parents=True, exist_ok=True)


def encode_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """Hyperparameters as the SageMaker SDK sends them: every value JSON-encoded into a string."""
    return {str(key): json.dumps(value) for key, value in hyperparameters.items()}


def decode_value(value: Any) -> Any:
    """A value as SageMaker may have written it: JSON first, the raw string as fallback.

    The inverse of `encode_hyperparameters` for one value; the tuner's bare strings ("0.75") and
    native JSON values read the same way.
    """
    if isinstance(value, str):
        try:
            return json.loads(value)
        # Not JSON, or JSON Python will not hold (over 4,300 digits, nesting deeper than the stack):
        # the raw string, which the field's type check then refuses with the key's name.
        except (ValueError, RecursionError):
            return value
    return value


def write_inputs(
    paths: JobPaths,
    hyperparameters: Mapping[str, Any],
    *,
    hosts: list[str] | None = None,
    current_host: str | None = None,
) -> None:
    """Write a job's input files as SageMaker would (values JSON-encoded as strings)."""
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    encoded = encode_hyperparameters(hyperparameters)
    paths.hyperparameters_file.write_text(json.dumps(encoded, indent=2, sort_keys=True) + "\n")
    write_platform_config(paths, hosts or ["algo-1"], current_host=current_host)


def write_platform_config(paths: JobPaths, hosts: list[str], *, current_host: str | None = None) -> None:
    """The files SageMaker writes beside the hyperparameters: the hosts (this one: `current_host`, default the
    first), no data channels."""
    resource = {"current_host": current_host or hosts[0], "hosts": hosts, "network_interface_name": "eth0"}
    paths.resource_config_file.write_text(json.dumps(resource, indent=2) + "\n")
    write_data_config(paths)


def write_data_config(paths: JobPaths) -> None:
    """inputdataconfig.json with no data channels (the toolkit reads it), unless there is one: a user's stay."""
    data_config = paths.config_dir / "inputdataconfig.json"
    if not data_config.is_file():
        data_config.write_text("{}\n")


def read_hyperparameters(paths: JobPaths) -> dict[str, Any]:
    """The raw flat object of hyperparameters.json (values still encoded as SageMaker wrote them)."""
    file = paths.hyperparameters_file
    if not file.is_file():
        raise UserError(f"hyperparameter file {file} does not exist: write a JSON object of "
                        f"hyperparameters there, or set ${BASE_DIR_ENV} to the job's base directory")
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"hyperparameter file {file} is not UTF-8 text (byte {error.start}): "
                        "write it as UTF-8 JSON, as SageMaker does") from None
    except RecursionError:
        raise UserError(f"hyperparameter file {file} nests lists or objects too deeply to read: "
                        "hyperparameters are a flat JSON object of names to values") from None
    except ValueError as error:  # JSONDecodeError, or a number of more than 4,300 digits
        raise UserError(f"hyperparameter file {file} is not valid JSON ({str(error)[:200]}): "
                        "it must hold one JSON object of names to values") from None
    if not isinstance(data, dict):
        raise UserError(f"hyperparameter file {file} holds a {type(data).__name__}, "
                        "not a JSON object of names to values")
    return data


def read_resource_config(paths: JobPaths) -> dict[str, Any]:
    """current_host and hosts; a single local host when the file is absent."""
    file = paths.resource_config_file
    if not file.is_file():
        return {"current_host": "algo-1", "hosts": ["algo-1"]}
    try:
        return dict(json.loads(file.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise UserError(f"resource config {file} is not a valid JSON object ({error})") from None


def write_ray_token(path: Path, token: str | None = None) -> str:
    """Write `token` (default: a new random one) to `path`, readable by this user only; returns it."""
    token = token or secrets.token_hex(32)
    path.unlink(missing_ok=True)  # a file of an earlier run: O_EXCL creates it anew with mode 0600
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token)
    return token


def ray_token_env(path: Path) -> dict[str, str]:
    """The variables that make Ray (a node, a driver, a Jobs API server) require and present the token in `path`."""
    return {RAY_AUTH_MODE_ENV: "token", RAY_AUTH_TOKEN_PATH_ENV: str(path)}


def num_cpus(environ: Mapping[str, str] = os.environ, *, cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this job may use: SM_NUM_CPUS (set by SageMaker and by our tuner), else the affinity mask; at most
    a container's CPU limit (`--cpus`: sagemaker-training sets SM_NUM_CPUS to the machine's count)."""
    value = environ.get(NUM_CPUS_ENV)
    if value:
        try:
            cpus = max(1, int(value))
        except ValueError:
            raise UserError(f"{NUM_CPUS_ENV} must be a whole number of CPUs, got {value!r}") from None
    else:
        cpus = len(os.sched_getaffinity(0))
    limit = cpu_limit(cgroup)
    return cpus if limit is None else min(cpus, limit)


def cpu_limit(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This process's CPU limit (its cgroup's quota over its period, rounded up, at least 1); None when unlimited."""
    try:
        if (cgroup / "cpu.max").is_file():  # cgroup v2: "max 100000" or "150000 100000"
            quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        else:  # cgroup v1
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1"):
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError) as error:  # no such file (not Linux), or a format this does not know
        logger.debug("no CPU limit read from %s: %s", cgroup, error)
        return None


def driver_cpus(environ: Mapping[str, str] = os.environ) -> int:
    """CPUs this job's driver already holds in Ray ($SAGEMAKER_RL_DRIVER_CPUS; 0 when unset)."""
    value = environ.get(DRIVER_CPUS_ENV, "0") or "0"
    try:
        return max(0, int(value))
    except ValueError:
        raise UserError(f"{DRIVER_CPUS_ENV} must be a whole number of CPUs, got {value!r}") from None


def exit_hint(returncode: int) -> str:
    """A human reason for a process exit code, where one is known."""
    return _EXIT_HINTS.get(returncode, f"exit code {returncode}")


def run_job(paths: JobPaths, job: Callable[[JobPaths], None]) -> int:
    """Run `job` under the contract: on any failure write this host's failure file (reason first) and return 1."""
    try:
        paths = paths.of_this_host()
        paths.own_output.mkdir(parents=True, exist_ok=True)
        for stale in (paths.failure_file, paths.success_file):
            stale.unlink(missing_ok=True)
        job(paths)
    except KeyboardInterrupt:
        write_failure(paths, "the job was interrupted (SIGINT); rerun it to resume from the last checkpoint")
        return 130
    except UserError as error:
        write_failure(paths, str(error))
        return USER_ERROR_EXIT
    except JobError as error:
        write_failure(paths, str(error), details=traceback.format_exc())
        return 1
    except Exception as error:  # everything else: keep the traceback for the failure file
        reason = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
        write_failure(paths, f"the job failed: {reason}", details=traceback.format_exc())
        return 1
    paths.success_file.write_text("")
    return 0


FAILURE_LINE_LIMIT = 1024  # SageMaker shows the first 1,024 characters of output/failure


def write_failure(paths: JobPaths, reason: str, *, details: str = "") -> None:
    """output/failure: `reason` on one line of at most FAILURE_LINE_LIMIT characters, then `details`."""
    reason = " ".join(reason.split())  # one line, whatever a library put in its message
    if len(reason) > FAILURE_LINE_LIMIT:
        reason = reason[:FAILURE_LINE_LIMIT - 30] + f" ... ({len(reason):,} characters)"
    text = reason + ("\n\n" + details if details else "")
    try:
        paths.own_output.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(text + "\n")
    except OSError as error:
        logger.error("could not write %s: %s", paths.failure_file, error)
    print(f"{FAILURE_PREFIX}{reason}", file=sys.stderr, flush=True)
    if paths.base == Path(DEFAULT_BASE_DIR):  # in an image, where a user may see only an engine's exit code
        print(_host_failure_hint(paths.host_outputs) if paths.host_outputs else FAILURE_HINT,
              file=sys.stderr, flush=True)


def _host_failure_hint(host: str) -> str:
    return (f"The reason above is this host's, the first line of /opt/ml/output/{host}/failure (in SageMaker SDK "
            f"local mode, '{host}/failure' in the job's output.tar.gz); the job's own is its head's output/failure.")
