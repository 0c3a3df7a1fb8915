"""Run directory: a tuning run's recorded config (tuning.json) and its lock.

`tuning.json` holds the config as given (a valid `--config` file for a new run, with the sampler
seed drawn), where the run keeps its study, and how to reproduce it; `--config` and `--resume`
read it. The lock lets one tuner at a time use a run directory (released even by kill -9).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

from sagemaker_rl.tuning.config import TuningConfig, config_from_mapping
from sagemaker_rl.tuning.space import TuningError
from sagemaker_rl.tuning.trials import default_storage

CONFIG_FILE = "tuning.json"  # the resolved config; `--config` and `--resume` read it
LOCK_FILE = ".lock"


def is_run_dir(run_dir: Path) -> bool:
    return (Path(run_dir) / CONFIG_FILE).exists()


def load_run_config(run_dir: str | Path) -> TuningConfig:
    """The config a run directory was started with (resolved: storage, study name, sampler seed)."""
    run_dir = Path(run_dir).absolute()
    file = run_dir / CONFIG_FILE
    if not file.is_file():
        raise TuningError(
            f"{run_dir} is not a tuning run directory (no {CONFIG_FILE}): give the directory "
            "a run printed when it started"
        )
    data = json.loads(file.read_text())
    run = data.get("run", {})
    data["run_dir"] = str(run_dir)  # the directory may have been moved since
    data["study_name"] = run.get("study_name", data.get("study_name"))
    data["storage"] = data.get("storage") or default_storage(run_dir)
    return config_from_mapping(data)


def record(given: TuningConfig, config: TuningConfig, command: list[str] | None) -> None:
    """Write tuning.json for `config` (resolved from `given`); `command` None keeps the recorded one."""
    assert config.run_dir is not None
    file = config.run_dir / CONFIG_FILE
    previous = json.loads(file.read_text()) if file.exists() else {}
    reproduce = previous.get("reproduce", {})
    if command is not None:
        reproduce = {
            "command": shlex.join(command),
            "cwd": os.getcwd(),
            "rerun": f"python scripts/tune.py --config {file}",
            "python": sys.version.split()[0],
            "optuna": optuna.__version__,
            "image": os.environ.get("SAGEMAKER_RL_IMAGE", "local (no image)"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    data = dataclasses.replace(
        given,
        run_dir=None,
        sampler_seed=config.sampler_seed,
        max_jobs=config.max_jobs,
        max_parallel_jobs=config.max_parallel_jobs,
        storage=None if given.storage in (None, default_storage(config.run_dir)) else given.storage,
        study_name=None if given.study_name in (None, config.run_dir.name) else given.study_name,
    ).to_dict()
    data["run"] = previous.get("run") or {
        "run_dir": str(config.run_dir),
        "storage": config.storage,
        "study_name": config.study_name,
    }
    data["reproduce"] = reproduce
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(file)


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
