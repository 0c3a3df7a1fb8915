"""Shared fixtures: job directories under tmp_path and a subprocess runner for entrypoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import settings

# The first example of a session imports RLlib (seconds); timing deadlines would make that flaky.
settings.register_profile("project", deadline=None)
settings.load_profile("project")

REPO = Path(__file__).resolve().parents[1]

# The image tests need built images: `make image-test` builds them and sets IMAGE_TEST.
collect_ignore = [] if os.environ.get("IMAGE_TEST") else ["image"]


def job_env(base: Path, home: Path, **extra: str) -> dict[str, str]:
    """Environment for a job subprocess: its own base dir and HOME (to see what it writes there)."""
    env = dict(os.environ)
    env.update({"SAGEMAKER_BASE_DIR": str(base), "HOME": str(home)})
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


# The RAY toolkit metric definitions of the SageMaker Python SDK, verbatim (not taken from sagemaker_rl.metrics).
SDK_RAY_REGEX = {name: rf"{name}: ([-+]?[0-9]*[.]?[0-9]+([eE][-+]?[0-9]+)?)"
                 for name in ("episode_reward_mean", "episode_reward_max")}

# Small but real PPO settings: a training iteration of reacher takes a few seconds on 2 cores.
# A user's env module (`user_envs.Corridor`, Discrete actions, 20-step episodes) for tests of code that travels
# with a job: `{imports}` and `{reward}` (the step's reward from `action`) make each test's variant.
CORRIDOR_ENV = '''"""A user's env, importable only from their code directory."""
import gymnasium as gym
import numpy as np
{imports}


class Corridor(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(2, np.float32), {{}}

    def step(self, action):
        self._t += 1
        return np.zeros(2, np.float32), {reward}, False, self._t >= 20, {{}}
'''

TINY_PPO = {
    "rl.training.config.train_batch_size_per_learner": 2000,
    "rl.training.config.minibatch_size": 500,
    "rl.training.config.num_epochs": 2,
    "rl.training.config.num_envs_per_env_runner": 4,
}


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on 127.0.0.1: the AWS APIs over real HTTP, with botocore's own request handling."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials and a region from the environment, as a user's AWS configuration gives them."""
    values = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
              "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-creds")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    return values


@pytest.fixture
def endpoint(moto_server, aws_env):
    """The moto server's URL, emptied for this test (moto keeps its state per process, not per client)."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    return moto_server


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


# Once in a fresh-clone CI run (365 passed), the pytest process then died of SIGSEGV while the interpreter
# finalized, after the result was printed: native threads of the in-process Ray/RLlib/torch sessions some tests
# start (test_envs, test_env_runner, test_restore) do not survive teardown in every order. The jobs themselves run
# as subprocesses and are not affected. So: Ray is shut down when the session ends, and the process leaves with
# pytest's own exit status, without the finalization, once every other plugin has unconfigured.
_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(config.stash.get(_EXIT_STATUS, 0))
