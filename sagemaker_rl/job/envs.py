"""Gymnasium construction of the problems' environments on both simulators.

MuJoCo envs come from gymnasium itself. The roboschool envs are PyBullet's ports of the Roboschool
robots (`pybullet_envs`), written against old `gym`, which we do not install: their modules are
loaded without the package `__init__` (it registers with gym) behind import-time stand-ins for
`gym` and `pkg_resources`, and an adapter gives them the gymnasium API. pybullet prints to the
C-level stdout on import and on connect; that output goes to the debug log so that stdout carries
only our reward lines.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import importlib.util
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec

from sagemaker_rl.job.problems import DEFAULT_SIMULATOR, PROBLEMS, check_simulator, get_problem

logger = logging.getLogger(__name__)

_ENV_CONFIG_KEYS = ("problem", "simulator")

_PORTS_PACKAGE = "pybullet_envs"
_PYBULLET_INSTALL_HINT = "the roboschool simulator needs pybullet: pip install pybullet==3.2.7"

# fd 1 is process-wide: one redirect at a time, and only one thread loads the ports' modules.
_STDOUT_LOCK = threading.RLock()
_IMPORT_LOCK = threading.Lock()


def make_env(problem: str, simulator: str = DEFAULT_SIMULATOR, *, seed: int | None = None,
             render_mode: str | None = None) -> gymnasium.Env:
    """The gymnasium env of `problem` on `simulator`, time-limited as the problem table says.

    A `seed` seeds the env by a first `reset(seed=seed)` and seeds the action space, so the
    episodes that follow are reproducible. `render_mode` is passed to the env: "rgb_array" works
    on both simulators; without a display, MuJoCo needs `MUJOCO_GL=egl` in the environment before
    it renders (the caller's to set: importing or calling this module sets no variables).
    """
    sim_env = get_problem(problem).envs[check_simulator(simulator)]
    if simulator == "mujoco":
        env = gymnasium.make(sim_env.env_id, max_episode_steps=sim_env.max_episode_steps,
                             render_mode=render_mode)
    else:
        port_name = sim_env.env_id.rpartition(":")[2]
        # gymnasium.make from a spec gives the ports the same wrappers as the mujoco envs
        # (TimeLimit, order enforcing, env checker) and an env.spec, without a global registration.
        spec = EnvSpec(id=f"{port_name}-v0", entry_point=f"{__name__}:{_BulletEnv.__name__}",
                       kwargs={"port": sim_env.env_id}, max_episode_steps=sim_env.max_episode_steps)
        env = gymnasium.make(spec, render_mode=render_mode)
    if seed is not None:
        # Seeding by a first reset, as Stable-Baselines3's make_vec_env does: gymnasium seeds
        # only through reset.
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def env_creator(env_config: Mapping[str, Any]) -> gymnasium.Env:
    """Build one env copy for RLlib: pass this to `ray.tune.registry.register_env`.

    `env_config` holds "problem" and optionally "simulator". The job's env runner seeds the copies
    (`sagemaker_rl.job.env_runner`): copy i of runner w with a seed derived from the job's seed, w and i.
    """
    unknown = sorted(set(env_config) - set(_ENV_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown env_config keys {unknown}: allowed are {', '.join(_ENV_CONFIG_KEYS)}")
    if "problem" not in env_config:
        raise ValueError(f"env_config {dict(env_config)} has no 'problem': add one of {', '.join(PROBLEMS)}")
    return make_env(env_config["problem"], env_config.get("simulator", DEFAULT_SIMULATOR))


class _BulletEnv(gymnasium.Env):
    """A pybullet_envs port (old gym API, no time limit) seen through the gymnasium API."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(self, port: str, render_mode: str | None = None) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r} is not supported by {port}: use None or "
                             f"{', '.join(self.metadata['render_modes'])}")
        port_class = _port_class(port)
        with _stdout_to_debug_log():
            self._port = port_class()  # render=False: no GUI; it connects on its first reset
        self.render_mode = render_mode
        self.observation_space = _float32_box(self._port.observation_space)
        self.action_space = _float32_box(self._port.action_space)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._port.seed(seed)  # the port draws its initial states from its own np_random
        if self._port.physicsClientId < 0:  # the first reset connects to pybullet, which prints
            with _stdout_to_debug_log():
                obs = self._port.reset()
        else:
            obs = self._port.reset()
        return np.asarray(obs, dtype=np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, done, info = self._port.step(np.asarray(action))
        # The ports have no time limit of their own: `done` is a real termination (a fall, ...);
        # truncation comes from gymnasium's TimeLimit around this env.
        return np.asarray(obs, dtype=np.float32), float(reward), bool(done), False, dict(info)

    def render(self) -> np.ndarray | None:  # type: ignore[override]  # gymnasium types it by a TypeVar
        if self.render_mode != "rgb_array":
            return None
        return np.asarray(self._port.render(mode="rgb_array"), dtype=np.uint8)

    def close(self) -> None:
        self._port.close()


def _float32_box(space: Any) -> gymnasium.spaces.Box:
    return gymnasium.spaces.Box(low=np.asarray(space.low, dtype=np.float32),
                                high=np.asarray(space.high, dtype=np.float32), dtype=np.float32)


def _port_class(env_id: str) -> type:
    """The class named by a "pybullet_envs.module:Class" id, its module imported if need be."""
    module_name, _, class_name = env_id.partition(":")
    assert module_name.startswith(f"{_PORTS_PACKAGE}."), env_id  # the problem table names ports only
    with _IMPORT_LOCK:
        module = sys.modules.get(module_name)
        if module is None:
            package = _ports_package()
            with _legacy_import_shims(list(package.__path__)), _stdout_to_debug_log():
                module = importlib.import_module(module_name)
    return getattr(module, class_name)


def _ports_package() -> ModuleType:
    """The pybullet_envs package, registered in sys.modules without running its `__init__`.

    That `__init__` only registers the envs with old gym (and fails without it). A module made from
    the package's spec but never executed keeps the real `__path__`, so `pybullet_envs.<module>`
    and the modules' relative imports resolve as usual. A package someone already imported is used
    as it is.
    """
    package = sys.modules.get(_PORTS_PACKAGE)
    if package is not None:
        return package
    spec = importlib.util.find_spec(_PORTS_PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(_PYBULLET_INSTALL_HINT)
    package = importlib.util.module_from_spec(spec)
    sys.modules[_PORTS_PACKAGE] = package
    return package


@contextlib.contextmanager
def _legacy_import_shims(package_path: list[str]) -> Iterator[None]:
    """What the ports' modules need while they import: stand-ins for missing modules, a sys.path.

    `env_bases.py`, `robot_bases.py` and `scene_abstract.py` import gym (Env, spaces.Box,
    utils.seeding) and `pkg_resources.parse_version`, which recent setuptools no longer ships. The
    stand-ins exist only in sys.modules during the import (the modules keep their reference), so
    nothing else ever sees a fake `gym`; a real module, if installed, is used instead.
    The modules import their siblings as top-level modules (`from robot_locomotors import ...`),
    relying on sys.path entries that the first of them to load adds; we add the package directory
    ourselves for each import and put sys.path back afterwards.
    """
    shims: dict[str, ModuleType] = {}
    if importlib.util.find_spec("gym") is None:
        shims |= _gym_shim()
    if importlib.util.find_spec("pkg_resources") is None:
        shims["pkg_resources"] = _pkg_resources_shim()
    saved_path = list(sys.path)
    sys.path.extend(package_path)
    sys.modules.update(shims)
    try:
        yield
    finally:
        for name in shims:
            del sys.modules[name]
        sys.path[:] = saved_path


class _OldGymEnv:
    """Base class for the ports in place of old `gym.Env`: they override everything they use."""


def _legacy_np_random(seed: int | None = None) -> tuple[np.random.RandomState, int]:
    """Old gym's `seeding.np_random`: a RandomState (the ports call `randint`), and its seed."""
    sequence = np.random.SeedSequence(seed)
    entropy = sequence.entropy
    assert isinstance(entropy, int)  # the seed given, or fresh entropy from the OS
    return np.random.RandomState(np.random.MT19937(sequence)), entropy


def _gym_shim() -> dict[str, ModuleType]:
    seeding = ModuleType("gym.utils.seeding")
    vars(seeding)["np_random"] = _legacy_np_random
    utils = ModuleType("gym.utils")
    vars(utils)["seeding"] = seeding
    gym = ModuleType("gym", "Stand-in for old gym with what pybullet_envs' env modules use.")
    # env_bases compares __version__ with 0.9.6 to pick method names; 0.21 is the API they target.
    vars(gym).update(Env=_OldGymEnv, spaces=gymnasium.spaces, utils=utils, __version__="0.21.0")
    return {"gym": gym, "gym.spaces": gymnasium.spaces, "gym.utils": utils, "gym.utils.seeding": seeding}


def _pkg_resources_shim() -> ModuleType:
    from packaging.version import Version

    pkg_resources = ModuleType("pkg_resources", "Stand-in for setuptools' pkg_resources: parse_version.")
    vars(pkg_resources)["parse_version"] = Version
    return pkg_resources


@contextlib.contextmanager
def _stdout_to_debug_log() -> Iterator[None]:
    """Send everything written to file descriptor 1 meanwhile, C code's too, to the debug log.

    pybullet's C code prints `pybullet build time ...` on import and `argv[0]=` on connect
    straight to fd 1, where our jobs print the reward lines SageMaker parses. Redirecting
    sys.stdout would not catch it; pointing fd 1 at a temporary file does. C stdio buffers are
    flushed before fd 1 is restored, or buffered lines would reach the real stdout later. Output
    of other threads during the redirect is logged too, not lost.
    """
    with _STDOUT_LOCK, tempfile.TemporaryFile() as sink:
        _flush_stdout()  # what was written before belongs on the real stdout
        saved_fd = os.dup(1)
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            _flush_stdout()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                logger.debug("pybullet: %s", line)


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()
    _libc().fflush(None)  # fflush(NULL) flushes every C stdio stream


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)
