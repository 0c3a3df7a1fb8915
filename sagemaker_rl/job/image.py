"""The image's entry point: `IMAGE train` runs a job as SageMaker does, wherever the image runs.

SageMaker starts a training image as `docker run IMAGE train`; the sagemaker-training toolkit's `train`
then runs `$SAGEMAKER_PROGRAM` from `/opt/ml/code`. Two things differ when a user runs the image by hand
with `-v "$PWD/job:/opt/ml"`: the mount hides the image's code directory, and there is no
`resourceconfig.json` naming the hosts. This wrapper fills both gaps the way the toolkit itself does
for a fresh local base directory, waits (for the job's own timeout) until a multi-host job's host
names resolve, then hands over to the toolkit. Any other command runs as given.

Whatever it runs, this process stays the container's init (PID 1): the kernel delivers no signal to a PID 1
that has no handler for it, and the toolkit has none, so `docker stop`, SageMaker's StopTrainingJob and a spot
interruption would never reach the job's checkpoint-on-SIGTERM. `supervise` forwards SIGTERM and SIGINT to the
job, reaps the orphans a job's Ray leaves, and exits with the command's exit code.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sagemaker_rl import contract
from sagemaker_rl.contract import JobPaths, decode_value
from sagemaker_rl.errors import UserError
from sagemaker_rl.job import cluster

ENTRYPOINTS_ENV = "SAGEMAKER_RL_ENTRYPOINTS"
DEFAULT_ENTRYPOINTS = "/opt/sagemaker-rl/entrypoints"
PROGRAM_ENV = "SAGEMAKER_PROGRAM"
LOCAL_HOST_MARK = ".sagemaker-rl-local-host"  # in input/config: resourceconfig.json is ours, not SageMaker's
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
LEFTOVER_GRACE_S = 5.0  # after the command exits: what it left running gets SIGTERM, then SIGKILL


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
    ours = paths.config_dir / LOCAL_HOST_MARK
    if not paths.resource_config_file.is_file() or ours.is_file():  # SageMaker always writes it: a local run
        # This container's name, which resolves (no DNS wait); written anew on every start, as a restarted
        # container has another name and the toolkit would wait 15 minutes for the old one.
        contract.write_platform_config(paths, [socket.gethostname()])
        ours.write_text(socket.gethostname() + "\n")
    contract.write_data_config(paths)  # a hand-written resourceconfig.json may come alone; the toolkit reads both


def wait_for_hosts(paths: JobPaths) -> None:
    """A multi-host job: wait, for the job's own cluster timeout, until the host names it needs resolve.

    sagemaker-training waits 15 minutes for every host's name before it starts the job; this fails sooner,
    with the job's reason.
    """
    hosts = cluster.hosts_of(contract.read_resource_config(paths))
    if hosts.multi:
        cluster.wait_for_names(hosts, timeout_s=cluster.timeout_from(contract.read_hyperparameters(paths)))


def supervise(command: Sequence[str], *, job_is_grandchild: bool) -> int:
    """Run `command` as the container's init; its exit code (128 + N when signal N ended it).

    SIGTERM and SIGINT go to the job: the command itself, or, with `job_is_grandchild` (the toolkit's `train`,
    which runs the job as its child and would die on SIGTERM without waiting for it), the command's children —
    the command itself only while it has none. Every child that ends is reaped, orphans included; when the
    command has exited, whatever it left running gets SIGTERM and, after LEFTOVER_GRACE_S, SIGKILL.
    """
    import psutil

    _adopt_orphans()
    process = subprocess.Popen(list(command))  # noqa: S603 - the image's own command line

    def forward(signum: int, frame: object) -> None:
        try:
            job = psutil.Process(process.pid).children() if job_is_grandchild else []
        except psutil.NoSuchProcess:  # ended meanwhile: nothing to forward to
            return
        for pid in [child.pid for child in job] or [process.pid]:
            _signal(pid, signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    code = _reap_until(process.pid)
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    _end_leftovers()
    return code


def _adopt_orphans() -> None:
    """Become the subreaper of what the command starts, so its orphans are ours to reap and end even when
    this process is not PID 1 (under `docker run --init`, or in a test)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _reap_until(pid: int) -> int:
    """Reap every child that ends (as an init must) until `pid` has; its exit code."""
    while True:
        ended, status = os.waitpid(-1, 0)  # PEP 475: retried after a forwarding handler ran
        if ended == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def _end_leftovers() -> None:
    import psutil

    leftovers = psutil.Process().children(recursive=True)
    for child in leftovers:
        _signal(child.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(leftovers, timeout=LEFTOVER_GRACE_S)
    for child in alive:
        _signal(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


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
        host_paths = paths.of_this_host()  # resourceconfig.json exists now: prepare() wrote it if it was missing
        host_paths.success_file.unlink(missing_ok=True)  # the job, not this preparation, reports success
        status = supervise(args, job_is_grandchild=True)
        move_toolkit_outcome(host_paths)
        return status
    return supervise(args, job_is_grandchild=False)


def move_toolkit_outcome(paths: JobPaths) -> None:
    """On a multi-host job's host other than the head, the toolkit's `success` (or its `failure`, written when the
    job wrote none there) goes under the host's own names: the contract's are the head's alone."""
    if not paths.host_outputs:
        return
    for own in (paths.success_file, paths.failure_file):
        written = paths.output / own.name
        if written.exists():
            if own.exists():  # the job's own outcome says more
                written.unlink()
            else:
                own.parent.mkdir(parents=True, exist_ok=True)
                written.replace(own)


if __name__ == "__main__":
    sys.exit(main())
