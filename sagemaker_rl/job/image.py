"""The image's entry point: `IMAGE train` runs a job as SageMaker does, wherever the image runs.

SageMaker starts a training image as `docker run IMAGE train`; the sagemaker-training toolkit's `train`
then runs `$SAGEMAKER_PROGRAM` from `/opt/ml/code`. Two things differ when a user runs the image by hand
with `-v "$PWD/job:/opt/ml"`: the mount hides the image's code directory, and there is no
`resourceconfig.json` naming the hosts. This wrapper fills both gaps the way the toolkit itself does
for a fresh local base directory, waits (for the job's own timeout) until a multi-host job's host
names resolve, then hands over to the toolkit. Any other command runs as given.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from sagemaker_rl import contract
from sagemaker_rl.contract import JobPaths, decode_value
from sagemaker_rl.errors import UserError
from sagemaker_rl.job import cluster

ENTRYPOINTS_ENV = "SAGEMAKER_RL_ENTRYPOINTS"
DEFAULT_ENTRYPOINTS = "/opt/sagemaker-rl/entrypoints"
PROGRAM_ENV = "SAGEMAKER_PROGRAM"


def prepare(paths: JobPaths, entrypoints: Path, environ: Mapping[str, str]) -> None:
    """Make `paths.base` a directory the toolkit's `train` can run, without touching what is there."""
    hyperparameters = contract.read_hyperparameters(paths)
    available = sorted(path.name for path in entrypoints.glob("train-*.py"))
    program = environ.get(PROGRAM_ENV) or str(decode_value(hyperparameters.get(contract.PROGRAM_KEY, "")))
    if not program:
        raise UserError(f"no training program is named: set ${PROGRAM_ENV} to one of {', '.join(available)}")
    code = paths.base / "code"
    own_code = contract.SUBMIT_DIRECTORY_KEY in hyperparameters or (code.is_dir() and any(code.iterdir()))
    if not own_code:  # the toolkit downloads a submit directory only into an empty code directory
        shutil.copytree(entrypoints, code, dirs_exist_ok=True)
    if not (code / program).is_file() and contract.SUBMIT_DIRECTORY_KEY not in hyperparameters:
        raise UserError(f"the training program {program!r} is not in {code}: "
                        f"set ${PROGRAM_ENV} to one of {', '.join(available)}")
    if not paths.resource_config_file.is_file():  # SageMaker always writes it; here it is a local run
        contract.write_platform_config(paths, [socket.gethostname()])  # a name that resolves: no DNS wait
    contract.write_data_config(paths)  # a hand-written resourceconfig.json may come alone; the toolkit reads both


def wait_for_hosts(paths: JobPaths) -> None:
    """A multi-host job: wait, for the job's own cluster timeout, until the host names it needs resolve.

    sagemaker-training waits 15 minutes for every host's name before it starts the job; this fails sooner,
    with the job's reason.
    """
    hosts = cluster.hosts_of(contract.read_resource_config(paths))
    if hosts.multi:
        cluster.wait_for_names(hosts, timeout_s=cluster.timeout_from(contract.read_hyperparameters(paths)))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv) or ["train"]
    if args[0] == "train":
        paths = JobPaths.from_env()
        entrypoints = Path(os.environ.get(ENTRYPOINTS_ENV, DEFAULT_ENTRYPOINTS))
        def before_the_toolkit(job_paths: JobPaths) -> None:
            prepare(job_paths, entrypoints, os.environ)
            wait_for_hosts(job_paths)

        status = contract.run_job(paths, before_the_toolkit)
        if status != 0:
            return status
        paths.success_file.unlink(missing_ok=True)  # the job, not this preparation, reports success
    os.execvp(args[0], args)
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    sys.exit(main())
