"""Checkpoints: the job's resumable state, saved with the algorithm's and restored from the newest complete one.

Checkpoints carry the job's own counters (JobState, in `job_state.json`), so a job killed at any
point continues from its last checkpoint with the same budget. A checkpoint is written under a
temporary name and renamed when complete; the state file is written last, after the list of the
checkpoint's files with their sizes and SHA-256. A resume skips, with a warning, a checkpoint whose
files no longer match that list (cut short or damaged on disk after it was written) and continues
from the newest one that does.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagemaker_rl.errors import JobError, UserError
from sagemaker_rl.job import learner
from sagemaker_rl.job.hyperparameters import JobConfig
from sagemaker_rl.job.keys import GSDE_KEY, KEEP_CHECKPOINTS_KEY, PPO_PREFIX

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint_"
FULL_DISK_FREE_BYTES = 1 << 20  # less free than this after a failed write: the disk was full
JOB_STATE_FILE = "job_state.json"  # written last: a checkpoint without it is incomplete
FILES_FILE = "files.json"  # every other file of the checkpoint: [size, sha256]


@dataclass
class JobState:
    """Counters that must survive a restart (RLlib restarts its time counter at 0 on restore)."""

    training_iteration: int = 0
    timesteps_total: int = 0
    time_total_s: float = 0.0
    kl_coeff: float | None = None  # PPO's adaptive KL coefficient: RLlib does not checkpoint it
    kl_coeff_setting: float | None = None  # the rl.training.config.kl_coeff it adapted from (see restore)
    best_reward: float | None = None
    # [mean, episodes, max, min] of the newest iterations that finished >= progress.EPISODES_PER_MEAN episodes
    recent_episodes: list[list[float]] = field(default_factory=list)
    last_reward: float | None = None  # the reward line's mean at the checkpoint (for the stop check on resume)
    # The policy's parameter shapes at the checkpoint: RLlib restores a state of another network without a
    # word (the first update then fails on a tensor size), so a resume compares them first (see restore).
    network: dict[str, list[int]] = field(default_factory=dict)


def latest_checkpoint(directory: Path) -> tuple[JobState, Path | None]:
    """The newest complete and intact checkpoint in `directory` and its job state (a fresh state and None
    without one)."""
    if directory.is_dir():
        for candidate in sorted(directory.glob(f"{CHECKPOINT_PREFIX}*"), reverse=True):
            if not (candidate / JOB_STATE_FILE).is_file():
                logger.warning("ignoring incomplete checkpoint %s (no %s)", candidate, JOB_STATE_FILE)
                continue
            try:
                _check_files(candidate)
                return JobState(**json.loads((candidate / JOB_STATE_FILE).read_text())), candidate
            except (OSError, ValueError, TypeError) as error:
                logger.warning("skipping damaged checkpoint %s (%s): resuming from the one before it, if any",
                               candidate, error)
    return JobState(), None


def _file_list(checkpoint: Path) -> dict[str, list[int | str]]:
    """Each file of `checkpoint` but the two of ours: relative path -> [size, sha256]."""
    listed: dict[str, list[int | str]] = {}
    for path in sorted(checkpoint.rglob("*")):
        name = path.relative_to(checkpoint).as_posix()
        if path.is_file() and name not in (JOB_STATE_FILE, FILES_FILE):
            listed[name] = [path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()]
    return listed


def _check_files(checkpoint: Path) -> None:
    """ValueError naming the first file of `checkpoint` that differs from its list (a checkpoint written before
    the list existed is taken as it is)."""
    if not (checkpoint / FILES_FILE).is_file():
        return
    written = json.loads((checkpoint / FILES_FILE).read_text())
    found = _file_list(checkpoint)
    for name, (size, digest) in written.items():
        if name not in found:
            raise ValueError(f"{name} is missing")
        if found[name][0] != size:
            raise ValueError(f"{name} has {found[name][0]:,} bytes, {size:,} when written")
        if found[name][1] != digest:
            raise ValueError(f"{name} differs from what was written")


@dataclass(frozen=True)
class Snapshot:
    """The algorithm's and the job's state after an iteration, copied: a checkpoint can be written from it while
    the algorithm has moved on (a stop that cuts the next iteration short saves the last completed one)."""

    algorithm: dict[str, Any]  # Algorithm.get_state(): what its save_to_path writes
    job: JobState


def snapshot(algo: Any, state: JobState) -> Snapshot:
    """A copy of `algo`'s and `state`'s state now. RLlib's get_state already returns copies, not views of the
    live tensors (tests/job/test_restore.py fails if that changes)."""
    job = dataclasses.replace(state, recent_episodes=copy.deepcopy(state.recent_episodes),
                              kl_coeff=learner.live_kl_coeff(algo), network=learner.network(algo))
    return Snapshot(algo.get_state(), job)


def save_checkpoint(algo: Any, directory: Path, saved: Snapshot, *, keep: int) -> Path:
    """Save the snapshot `saved` of `algo` as the checkpoint of its iteration; keep the newest `keep` (0: all)."""
    state = saved.job
    final = directory / f"{CHECKPOINT_PREFIX}{state.training_iteration:06d}"
    partial = directory / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    advice = f"free space there or keep fewer checkpoints ({KEEP_CHECKPOINTS_KEY}); the ones before it are kept"
    with disk_full_said(directory, final.name, advice, cleanup=partial):
        algo.save_to_path(str(partial / "algorithm"), state=_dicts_copied(saved.algorithm))
        (partial / FILES_FILE).write_text(json.dumps(_file_list(partial)))
        (partial / JOB_STATE_FILE).write_text(json.dumps(vars(state), indent=2))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)  # atomic: a kill leaves either the old set or the new checkpoint
    if keep > 0:
        for old in sorted(directory.glob(f"{CHECKPOINT_PREFIX}*"))[:-keep]:
            shutil.rmtree(old)
    return final


def _dicts_copied(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with its dicts copied and its values shared: save_to_path takes the dicts apart as it writes."""
    return {key: _dicts_copied(value) if isinstance(value, dict) else value for key, value in state.items()}


@contextmanager
def disk_full_said(directory: Path, what: str, advice: str, *, cleanup: Path | None = None) -> Iterator[None]:
    """A write into `directory` that fails on a full disk (ENOSPC, or too little space left after torch's own
    words for it) ends as one JobError that says so and what to do; `cleanup`, the half-written part, is
    removed either way."""
    try:
        yield
    except Exception as error:
        full = _says_disk_full(error) or shutil.disk_usage(directory).free < FULL_DISK_FREE_BYTES
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        if not full:
            raise
        raise JobError(f"the disk holding {directory} is full: writing {what} failed ({type(error).__name__}: "
                       f"{str(error).strip()[:160]}); {advice}") from error


def _says_disk_full(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


def restore(algo: Any, checkpoint: Path, state: JobState, job: JobConfig) -> None:
    """Restore `checkpoint` into `algo`, built from `job`'s values, and make those values live.

    RLlib restores the optimizer's state with the learning rate it was saved with, and the KL
    coefficient not at all; every other PPO setting comes from the new config. The learning rate is
    set again from the config, so that a job resumed or explored with a new `lr` uses it on its first
    update. The KL coefficient continues where it adapted to when `kl_coeff` is the value it adapted
    from (a plain resume), and starts from the new `kl_coeff` when that was changed (PBT's explore:
    the new value is the point of the change, and the adapted one belongs to the old setting).
    """
    _check_network(algo, checkpoint, state)
    algo.restore_from_path(str(checkpoint / "algorithm"))
    learner.make_values_live(algo, timestep=state.timesteps_total, kl_coeff=_kl_coeff_to_continue(state, job))


def _check_network(algo: Any, checkpoint: Path, state: JobState) -> None:
    """UserError when the checkpoint's policy has other parameters than the one `algo` built."""
    built = learner.network(algo)
    if state.network and state.network != built:
        changed = sorted(set(state.network).symmetric_difference(built)) or sorted(
            name for name in built if built[name] != state.network[name])
        raise UserError(f"the checkpoint in {checkpoint} holds another network than this job builds (parameters "
                        f"{', '.join(changed[:4])} differ): resume with the {PPO_PREFIX}model_config and "
                        f"{GSDE_KEY} it was trained with, or empty the checkpoints directory to start afresh")


def _kl_coeff_to_continue(state: JobState, job: JobConfig) -> float | None:
    """The checkpoint's adapted KL coefficient when the job keeps the setting it adapted from, else None."""
    same_setting = state.kl_coeff_setting is None or state.kl_coeff_setting == job.ppo.get("kl_coeff")
    return state.kl_coeff if state.kl_coeff is not None and same_setting else None
