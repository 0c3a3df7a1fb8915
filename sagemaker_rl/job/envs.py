"""Gymnasium construction of a job's environment: a problem's, a registered id, or the user's own class.

`make` builds the env that `EnvSettings` names: a Gymnasium id (registered by Gymnasium or by the
settings' package, imported first), "module:Class" from the user's code, or one of PyBullet's ports
of the Roboschool robots (`pybullet_envs`, written against old `gym`, which we do not install: their
modules are loaded without the package `__init__`, behind import-time stand-ins for `gym` and
`pkg_resources`, and an adapter gives them the gymnasium API). Every env gets a time limit, Dict,
Tuple and Discrete observations are flattened into one vector, and every observation and reward is
checked: what an env does wrong ends the job with one sentence naming the env (`EnvError`).
`probe` builds an env once and steps it, before any Ray process starts. pybullet prints to the
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
import traceback
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec

from sagemaker_rl.errors import UserError, did_you_mean, shorten
from sagemaker_rl.job.hyperparameters import EnvFacts, EnvSettings
from sagemaker_rl.job.keys import ENV_ID_KEY, ENV_PACKAGE_KEY, MAX_EPISODE_STEPS_KEY
from sagemaker_rl.job.problems import DEFAULT_SIMULATOR, get_problem

logger = logging.getLogger(__name__)

# The time limit of an env registered without one (an episode that never ends would hold a job's whole
# batch): Gymnasium's MuJoCo envs' limit.
DEFAULT_TIME_LIMIT = 1000
PROBE_STEPS = 200  # random steps `probe` takes: a reset or two, and the first few hundred steps' checks

_PORTS_PACKAGE = "pybullet_envs"
_PYBULLET_INSTALL_HINT = "the roboschool simulator needs pybullet: pip install pybullet==3.2.7"
# Observation spaces `make` flattens into one vector (Box of one dimension passes as it is)
_FLATTENED = (gymnasium.spaces.Box, gymnasium.spaces.Discrete, gymnasium.spaces.MultiDiscrete,
              gymnasium.spaces.MultiBinary, gymnasium.spaces.Dict, gymnasium.spaces.Tuple)

# fd 1 is process-wide: one redirect at a time, and only one thread loads the ports' modules.
_STDOUT_LOCK = threading.RLock()
_IMPORT_LOCK = threading.Lock()


class EnvError(UserError):
    """The env did something a job cannot train on, or raised; the message names the env and what it did."""


class EnvCodeMissing(UserError):
    """The env's module is not importable here (it may be in an image or on a cluster)."""


def problem_env(problem: str, simulator: str = DEFAULT_SIMULATOR) -> EnvSettings:
    """The env settings of `problem` on `simulator`, as the problem table gives them."""
    row = get_problem(problem).env(simulator)
    return EnvSettings(row.env_id, max_episode_steps=row.max_episode_steps)


def make_env(problem: str, simulator: str = DEFAULT_SIMULATOR, *, seed: int | None = None,
             render_mode: str | None = None) -> gymnasium.Env:
    """The env of `problem` on `simulator` (see `make`)."""
    return make(problem_env(problem, simulator), seed=seed, render_mode=render_mode)


def make(settings: EnvSettings, *, seed: int | None = None, render_mode: str | None = None) -> gymnasium.Env:
    """The gymnasium env `settings` name: time-limited, its observations one vector, every step checked.

    A `seed` seeds the env by a first `reset(seed=seed)` and seeds the action space, so the
    episodes that follow are reproducible. `render_mode` is passed to the env: "rgb_array" works
    on both simulators; without a display, MuJoCo needs `MUJOCO_GL=egl` in the environment before
    it renders (the caller's to set: importing or calling this module sets no variables).
    """
    env = _construct(settings, render_mode)
    if env.spec is None or env.spec.max_episode_steps is None:
        env = _DefaultTimeLimit(env, DEFAULT_TIME_LIMIT)
    _check_spaces(env, settings.label)
    if not _is_vector(env.observation_space):
        env = gymnasium.wrappers.FlattenObservation(env)
    env = CheckedEnv(env, settings.label)
    if seed is not None:
        # Seeding by a first reset, as Stable-Baselines3's make_vec_env does: gymnasium seeds
        # only through reset.
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def env_creator(env_config: Mapping[str, Any]) -> gymnasium.Env:
    """Build one env copy for RLlib: pass this to `ray.tune.registry.register_env`.

    `env_config` holds the job's EnvSettings as a dict. The job's env runner seeds the copies
    (`sagemaker_rl.job.env_runner`): copy i of runner w with a seed derived from the job's seed, w and i.
    """
    fields = EnvSettings.__dataclass_fields__
    unknown = sorted(set(env_config) - set(fields))
    if unknown or "id" not in env_config:
        raise ValueError(f"env_config {dict(env_config)} must hold the EnvSettings fields {', '.join(fields)} "
                         f"(id required), not {unknown}")
    return make(EnvSettings(**{name: env_config[name] for name in fields if name in env_config}))


def probe(settings: EnvSettings, *, steps: int = PROBE_STEPS) -> EnvFacts:
    """Build the env once, take `steps` random steps (with resets), and report what a job needs to know.

    Every fault `make`'s checks find in those steps raises EnvError; a time limit applied for want
    of one is said in a notice.
    """
    env = make(settings, seed=0)
    try:
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        spec = env.spec
        if _wrapper(env, _DefaultTimeLimit) is not None:
            logger.warning("notice: %s has no time limit: its episodes end after %d steps (set %s to change it)",
                           settings.label, DEFAULT_TIME_LIMIT, MAX_EPISODE_STEPS_KEY)
        return EnvFacts(discrete_actions=isinstance(env.action_space, gymnasium.spaces.Discrete),
                        reward_threshold=None if spec is None else spec.reward_threshold,
                        observation_layout=observation_layout(env.unwrapped.observation_space))
    finally:
        env.close()


class _DefaultTimeLimit(gymnasium.wrappers.TimeLimit):
    """The time limit `make` gives an env registered without one."""


def _wrapper(env: gymnasium.Env, kind: type) -> gymnasium.Env | None:
    """The wrapper of type `kind` around `env`'s core, or None."""
    while isinstance(env, gymnasium.Wrapper):
        if isinstance(env, kind):
            return env
        env = env.env
    return None


def observation_layout(space: gymnasium.Space) -> list[dict[str, Any]]:
    """Where each part of `space` lies in the flat observation vector a job's policy takes (Gymnasium's
    `flatten` order: Dict keys sorted, Tuple in order, Discrete one-hot), one row per part."""
    rows: list[dict[str, Any]] = []

    def walk(part: gymnasium.Space, path: str) -> None:
        if isinstance(part, gymnasium.spaces.Dict):
            for key, sub in part.spaces.items():
                walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(part, gymnasium.spaces.Tuple):
            for index, sub in enumerate(part.spaces):
                walk(sub, f"{path}[{index}]")
        else:
            size = gymnasium.spaces.flatdim(part)
            offset = rows[-1]["offset"] + rows[-1]["size"] if rows else 0
            rows.append({"path": path or "obs", "space": str(part), "offset": offset, "size": size,
                         "encoding": "one-hot" if isinstance(part, gymnasium.spaces.Discrete) else "values"})

    walk(space, "")
    return rows


def _construct(settings: EnvSettings, render_mode: str | None) -> gymnasium.Env:
    """The env itself: a port, the user's class, or a registered id (after its package's import)."""
    if settings.package:
        _import_package(settings.package)
    module_name, colon, _ = settings.id.partition(":")
    options = {"render_mode": render_mode, **settings.kwargs}
    if colon and module_name.startswith(f"{_PORTS_PACKAGE}."):
        spec = EnvSpec(id=f"{settings.label}-v0", entry_point=f"{__name__}:{_BulletEnv.__name__}",
                       kwargs={"port": settings.id}, max_episode_steps=settings.max_episode_steps)
        return gymnasium.make(spec, **options)
    if colon:
        _user_class(settings.id)  # its import errors said in one sentence
        spec = EnvSpec(id=settings.label, entry_point=settings.id, max_episode_steps=settings.max_episode_steps)
        return _guarded(settings.label, "its constructor", lambda: gymnasium.make(spec, **options))
    if settings.id not in gymnasium.registry:
        raise UserError(f"{ENV_ID_KEY} {shorten(settings.id)} is not a registered Gymnasium id"
                        f"{did_you_mean(settings.id, gymnasium.registry)}: give a registered id, the package that "
                        f"registers it ({ENV_PACKAGE_KEY}), or module:Class of your code")
    return _guarded(settings.label, "its constructor", lambda: gymnasium.make(
        settings.id, max_episode_steps=settings.max_episode_steps, **options))


def _import_package(package: str) -> None:
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as error:
        raise EnvCodeMissing(f"{ENV_PACKAGE_KEY} {package!r} failed to import: {_said(error)}: install it, or give "
                             "the directory of your code (--code-dir)") from None
    except Exception as error:  # the user's module: whatever it raises is its own message
        raise UserError(f"{ENV_PACKAGE_KEY} {package!r} failed to import: {_said(error)}") from None


def _user_class(entry_point: str) -> type:
    module_name, _, class_name = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise EnvCodeMissing(f"{ENV_ID_KEY} {entry_point!r}: module {error.name!r} was not found: give the directory "
                             "of your code (--code-dir), put it on PYTHONPATH, or install its package") from None
    except Exception as error:  # the user's module: whatever it raises is its own message
        raise UserError(f"{ENV_ID_KEY} {entry_point!r}: {module_name} failed to import: {_said(error)}") from None
    env_class = getattr(module, class_name, None)
    if env_class is None:
        names = [name for name in vars(module) if not name.startswith("_")]
        raise UserError(f"{ENV_ID_KEY} {entry_point!r}: {module_name} has no {class_name!r}"
                        f"{did_you_mean(class_name, names)}")
    return env_class


def _guarded(label: str, where: str, call: Any) -> Any:
    """`call()`, with an exception raised by the env's code reported as an EnvError naming the env."""
    try:
        return call()
    except (UserError, gymnasium.error.Error):
        raise
    except Exception as error:  # the user's env: whatever it raises is its own message
        raise EnvError(f"the env {label} raised in {where}: {_said(error)}") from error


def _said(error: BaseException) -> str:
    """An exception as one line: its type, message and the innermost place it was raised."""
    frames = traceback.extract_tb(error.__traceback__)
    place = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[-1] if message else ''}{place}"


def _is_vector(space: gymnasium.Space) -> bool:
    return isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1 \
        and np.issubdtype(space.dtype, np.floating)


def _check_spaces(env: gymnasium.Env, label: str) -> None:
    """Box or Discrete actions; observations a Box or what flattens into one (Dict, Tuple, Discrete...)."""
    actions, observations = env.action_space, env.observation_space
    float_box = isinstance(actions, gymnasium.spaces.Box) and np.issubdtype(actions.dtype, np.floating)
    discrete = isinstance(actions, gymnasium.spaces.Discrete) and int(actions.start) == 0
    if not (float_box or discrete):
        raise EnvError(f"the env {label} has the action space {shorten(actions, 120)}: PPO here takes a float Box "
                       "or a Discrete(n) starting at 0 (wrap the env to map its actions to one)")

    def flattenable(space: gymnasium.Space) -> bool:
        if isinstance(space, gymnasium.spaces.Dict | gymnasium.spaces.Tuple):
            return all(flattenable(sub) for sub in (space.spaces.values() if isinstance(
                space, gymnasium.spaces.Dict) else space.spaces))
        return isinstance(space, _FLATTENED)

    if not flattenable(observations):
        raise EnvError(f"the env {label} has the observation space {shorten(observations, 120)}: a job takes Box, "
                       "Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple of them (flattened)")


class CheckedEnv(gymnasium.Wrapper):
    """Raises EnvError, naming the env, when it raises or returns what a job cannot train on."""

    def __init__(self, env: gymnasium.Env, label: str) -> None:
        super().__init__(env)
        self._label = label
        self._shape = env.observation_space.shape
        self._dtype = env.observation_space.dtype

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = _guarded(self._label, "reset", lambda: self.env.reset(**kwargs))
        return self._observation(obs, "reset"), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        try:  # every env step passes here: no closure, one try
            obs, reward, terminated, truncated, info = self.env.step(action)
        except (UserError, gymnasium.error.Error):
            raise
        except Exception as error:  # the user's env: whatever it raises is its own message
            raise EnvError(f"the env {self._label} raised in step: {_said(error)}") from error
        if not isinstance(reward, int | float | np.number) or not np.isfinite(reward):
            raise EnvError(f"the env {self._label} returned the reward {shorten(reward)} from step: rewards must "
                           "be finite numbers")
        return self._observation(obs, "step"), float(reward), bool(terminated), bool(truncated), info

    def _observation(self, obs: Any, where: str) -> np.ndarray:
        array = np.asarray(obs)
        if array.shape != self._shape or array.dtype.kind not in "fiub":
            raise EnvError(f"the env {self._label} returned an observation of shape {array.shape} and dtype "
                           f"{array.dtype} from {where}, but its observation space holds {self._shape} numbers")
        if not np.isfinite(array).all():
            raise EnvError(f"the env {self._label} returned a non-finite observation from {where}: "
                           f"{shorten(array.tolist())}")
        return array.astype(self._dtype, copy=False)


class _BulletEnv(gymnasium.Env):
    """A pybullet_envs port (old gym API, no time limit) seen through the gymnasium API."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(self, port: str, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r} is not supported by {port}: use None or "
                             f"{', '.join(self.metadata['render_modes'])}")
        port_class = _port_class(port)
        with _stdout_to_debug_log():
            self._port = port_class(**kwargs)  # render=False: no GUI; it connects on its first reset
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
            _keep_bound_functions(self._port._p)
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


class _KeepBoundFunctions:
    """A pybullet_utils client that keeps each pybullet function it binds to its connection (a mixin).

    BulletClient looks every call up again (`__getattr__`: the module attribute, an `inspect` test and a
    new `functools.partial`), and a port makes dozens of calls a step; kept in the instance, the next lookup
    is a dict's. The functions and their arguments are the same, so are the simulation's numbers.
    `disconnect` is looked up each time: BulletClient marks itself closed on that lookup.
    """

    def __getattr__(self, name: str) -> Any:
        attribute = super().__getattr__(name)  # type: ignore[misc]  # BulletClient's, after this in the MRO
        if name != "disconnect":
            setattr(self, name, attribute)
        return attribute


_KEEPING_CLASSES: dict[type, type] = {}  # a client class: its subclass with the mixin


def _keep_bound_functions(client: object) -> None:
    """Make the port's pybullet client keep its bound functions (its robot and scene hold the same object)."""
    client_class = type(client)
    if client_class.__module__ != "pybullet_utils.bullet_client":  # another client (a later pybullet's) stays
        return
    if client_class not in _KEEPING_CLASSES:
        _KEEPING_CLASSES[client_class] = type(client_class.__name__, (_KeepBoundFunctions, client_class), {})
    client.__class__ = _KEEPING_CLASSES[client_class]


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
