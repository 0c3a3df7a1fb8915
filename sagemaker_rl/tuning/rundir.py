"""Run directory: where a tuning run keeps each of its files, and the lock that gives it one tuner.

The layout, in one place: the study (`study.db`, the default storage), `trials/NNNN` (a trial's
jobs; `seed-K` below it when a trial runs several seeds), `tuning.json` (the recorded config;
`config.py` reads and writes its content), the lock, and the report's files. The lock lets one
tuner at a time use a run directory (released even by kill -9).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sagemaker_rl.files import write_atomically
from sagemaker_rl.tuning.space import TuningError

STUDY_FILE = "study.db"  # the default storage: SQLite in the run directory
TRIALS_DIR = "trials"  # trials/NNNN of the run directory
CONFIG_FILE = "tuning.json"  # the resolved config; `--config` and `--resume` read it
LOCK_FILE = ".lock"
REPORT_FILE = "report.html"
TRIALS_FILE = "trials.csv"
BEST_FILE = "best_hyperparameters.json"
LOG_FILE = "tuner.log"  # the tuner's log records (INFO and up)
SCHEDULE_FILE = "schedule.json"  # strategy PBT: the best final member's hyperparameter schedule
MODEL_DIR = "model"  # the run's trained policy: its best-evaluated job's at the answer's training, or PBT's


def default_storage(run_dir: Path) -> str:
    """The study's storage when none is given: SQLite in the run directory.

    The path is escaped as a URL part: a run directory named `a?b` or `%41` would otherwise put the
    study elsewhere or fail in SQLAlchemy's URL parser.
    """
    from sqlalchemy.engine import URL

    database = str(Path(run_dir) / STUDY_FILE)
    return URL.create("sqlite", database=database).render_as_string(hide_password=False)


def trial_dir(run_dir: Path, number: int) -> Path:
    """Where trial `number` of a run keeps its jobs."""
    return Path(run_dir) / TRIALS_DIR / f"{number:04d}"


def job_dirs(directory: Path, seeds: int) -> list[Path]:
    """The base directory of each seed's job in a trial directory."""
    return [directory] if seeds == 1 else [directory / f"seed-{index}" for index in range(seeds)]


def publish_model(job_dir: Path, run_dir: Path) -> Path | None:
    """Copy a job's model/ (ONNX included) to the run directory's model/, whole or not at all (None: it has none)."""
    from sagemaker_rl.contract import JobPaths

    model = JobPaths(Path(job_dir)).model
    if not model.is_dir():
        return None
    partial = run_dir / f".partial-{MODEL_DIR}"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(model, partial)
    shutil.rmtree(run_dir / MODEL_DIR, ignore_errors=True)
    partial.rename(run_dir / MODEL_DIR)
    return run_dir / MODEL_DIR


def is_run_dir(run_dir: Path) -> bool:
    return (Path(run_dir) / CONFIG_FILE).exists()


def read_config_file(run_dir: Path) -> dict[str, Any]:
    """The content of a run directory's tuning.json; TuningError when it has none."""
    file = Path(run_dir) / CONFIG_FILE
    if not file.is_file():
        raise TuningError(
            f"{run_dir} is not a tuning run directory (no {CONFIG_FILE}): give the directory "
            "a run printed when it started"
        )
    data: dict[str, Any] = json.loads(file.read_text())
    return data


def write_config_file(run_dir: Path, data: Mapping[str, Any]) -> None:
    write_atomically(Path(run_dir) / CONFIG_FILE, json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock: one tuner per run directory (released even by kill -9)."""
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise TuningError(
                f"another tuner is running in {run_dir} ({handle.read().strip() or 'unknown pid'}): "
                "wait for it or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_held(run_dir: Path) -> bool:
    """A tuner holds the run directory's lock now."""
    lock = Path(run_dir) / LOCK_FILE
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
