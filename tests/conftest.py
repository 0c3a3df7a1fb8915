"""Shared fixtures: job directories under tmp_path and a subprocess runner for entrypoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# The first example of a session imports RLlib (seconds); timing deadlines would make that flaky.
settings.register_profile("project", deadline=None)
settings.load_profile("project")

REPO = Path(__file__).resolve().parents[1]


def job_env(base: Path, home: Path, **extra: str) -> dict[str, str]:
    """Environment for a job subprocess: its own base dir and HOME (to see what it writes there)."""
    env = dict(os.environ)
    env.update({"SAGEMAKER_BASE_DIR": str(base), "HOME": str(home), "RAY_AUTH_MODE": "disabled"})
    env.update(extra)
    return env


def run_entrypoint(problem: str, base: Path, home: Path, *, timeout: float = 600,
                   **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "entrypoints" / f"train-{problem}.py")],
                          env=job_env(base, home, **extra), capture_output=True, text=True, timeout=timeout,
                          cwd=base)


def write_hyperparameters(base: Path, hyperparameters: dict[str, object], *, encode: bool = True) -> None:
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    values = {k: json.dumps(v) for k, v in hyperparameters.items()} if encode else hyperparameters
    (config / "hyperparameters.json").write_text(json.dumps(values))
    (config / "inputdataconfig.json").write_text("{}")


# Small but real PPO settings: a training iteration of reacher takes a few seconds on 2 cores.
TINY_PPO = {
    "rl.training.config.train_batch_size_per_learner": 2000,
    "rl.training.config.minibatch_size": 500,
    "rl.training.config.num_epochs": 2,
    "rl.training.config.num_envs_per_env_runner": 4,
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path
