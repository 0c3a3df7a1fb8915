"""Backends: the runner of a run's jobs (local processes, the built image, a Ray cluster), chosen for a new run,
recorded in its run directory and found there again on resume.

Local processes are the tuner's default (`Runner` None). SageMaker runs a whole study as one tuning job
(`sagemaker_rl.sagemaker`) and has no runner here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from sagemaker_rl.contract import RAY_ADDRESS_ENV
from sagemaker_rl.engine import ContainerSettings
from sagemaker_rl.tuning.container_runner import ContainerRunner, read_settings, write_settings
from sagemaker_rl.tuning.ray_jobs import RayCluster, RayJobRunner, cluster_cpus, connect
from sagemaker_rl.tuning.runners import Runner
from sagemaker_rl.tuning.space import TuningError

RAY_API_ADDRESS_ENV = "RAY_API_SERVER_ADDRESS"  # Ray's own name for a Jobs API address, read before RAY_ADDRESS


def ray_address(given: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The Ray cluster's Jobs API address: the one given, else Ray's own environment variables (may be empty)."""
    return given or environ.get(RAY_API_ADDRESS_ENV) or environ.get(RAY_ADDRESS_ENV) or ""


def ray_cluster(address: str | None, storage_path: str | None) -> RayCluster:
    """The cluster of `--backend ray`, reachable (checked), with the directory its nodes share."""
    if not storage_path:
        raise TuningError("--backend ray needs --storage-path: a directory every node of the cluster can write "
                          "(the same path on each), where the trials' models and checkpoints go")
    cluster = RayCluster(ray_address(address), storage_path)
    connect(cluster.address)
    return cluster


def cpus_to_share(cluster: RayCluster) -> int:
    """The CPUs of the cluster's live nodes: the trials share them as a local run shares the cores."""
    cpus = cluster_cpus(cluster.address)
    if cpus < 1:
        raise TuningError(f"the Ray cluster at {cluster.address} has no live node with CPUs yet: give "
                          "--num-cpus, the CPUs the trials share (e.g. what the autoscaler may start)")
    return cpus


def check_pbt_storage(storage_path: str | None, strategy: str = "PBT") -> None:
    """Strategy PBT (or PB2) on a cluster copies checkpoints between a member's jobs: this machine must write the
    storage."""
    storage = Path(storage_path) if storage_path else None
    if storage is not None and not (storage.is_dir() and os.access(storage, os.W_OK)):
        raise TuningError(f"strategy {strategy} copies checkpoints between a member's jobs through --storage-path, but "
                          f"{storage} is not a directory this machine can write: mount the cluster's storage here "
                          "at the same path, or run the tuner on the head node")


def new_runner(run_dir: Path, *, cluster: RayCluster | None = None, container: ContainerSettings | None = None,
               code_dir: Path | None = None) -> Runner | None:
    """The runner of a new run's jobs (None: local processes); a cluster's storage, and the jobs' runtime env with
    `code_dir`, are checked before the run starts."""
    if cluster is not None:
        runner = RayJobRunner(cluster, run_dir)
        runner.check(code_dir)  # a storage path the cluster cannot write fails here, before the run directory exists
        return runner
    return ContainerRunner(container) if container is not None else None


def record(runner: Runner | None, run_dir: Path) -> None:
    """Write where a run's jobs run into its directory, for `runner_to_resume`."""
    if isinstance(runner, RayJobRunner):
        runner.cluster.write(run_dir)
    elif isinstance(runner, ContainerRunner):
        write_settings(run_dir, runner.settings)


def runner_to_resume(run_dir: Path, *, address: str | None = None) -> Runner | None:
    """The runner a run recorded (a Ray cluster, reached at `address` if given, or the image); None: local."""
    cluster = RayCluster.read(run_dir)
    if cluster is not None:
        if address:  # the same cluster, reached another way (a new port-forward)
            cluster = dataclasses.replace(cluster, address=address)
        return RayJobRunner(cluster, run_dir)
    settings = read_settings(run_dir)
    return ContainerRunner(settings) if settings is not None else None


def jobs_dir(run_dir: Path) -> Path:
    """Where a run's jobs keep their directories (trials/NNNN), as this machine sees them: the run directory, or
    for a Ray run its folder on the cluster's storage (the same path on every node)."""
    cluster = RayCluster.read(run_dir)
    return Path(cluster.run_folder(run_dir)) if cluster is not None else Path(run_dir)


def stopped_note(runner: Runner | None) -> str | None:
    """What an interrupted run left to say about its runner: the Ray jobs it stopped."""
    if isinstance(runner, RayJobRunner) and runner.stopped:
        return f"stopped {len(runner.stopped)} Ray job(s) on {runner.cluster.address}: {', '.join(runner.stopped)}"
    return None
