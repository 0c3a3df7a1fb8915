"""Problem files: a user's own problem as a row of data, in YAML, as the built-in rows are.

    name: pendulum                 # names runs (default: the file's name)
    env:                           # the env; or `envs:` with one such block per simulator
      id: Pendulum-v1              # a Gymnasium id or module:Class of your code
      package: my_robots           # optional: imported first (it registers the id)
      kwargs: {g: 9.81}            # optional: the env's constructor arguments
      max_episode_steps: 200       # optional: the time limit
      stop_reward: -200            # optional: a job stops at this mean return (else 1M env steps)
    presets:                       # optional: named sets of hyperparameters (rl.* keys)
      fast: {rl.training.config.lr: 0.001}
    default_preset: fast           # optional (default: `fast` if there is one; else the generic preset)
    space:                         # optional: the default search space (a tuning file's parameters/static)
      parameters: {rl.training.config.lr: {type: Continuous, min: 1.0e-4, max: 3.0e-3, scaling: Logarithmic}}

A file resolves, on the launching side, into the hyperparameters of a job without a problem
(`rl.env.*`, the stop and the preset's values), so every backend runs it as it runs `--env`: the job
itself needs no file. Loading it imports neither RLlib nor the simulators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sagemaker_rl.errors import UserError, did_you_mean, shorten
from sagemaker_rl.job.keys import (
    ENV_ID_KEY,
    ENV_KWARGS_KEY,
    ENV_PACKAGE_KEY,
    KEY_ROOT,
    MAX_EPISODE_STEPS_KEY,
    STOP_PREFIX,
)

_FILE_KEYS = ("name", "env", "envs", "presets", "default_preset", "space")
_ENV_KEYS = {"id": ENV_ID_KEY, "package": ENV_PACKAGE_KEY, "kwargs": ENV_KWARGS_KEY,
             "max_episode_steps": MAX_EPISODE_STEPS_KEY, "stop_reward": STOP_PREFIX + "episode_reward_mean"}
MAX_FILE_BYTES = 1_000_000  # a problem file is a few lines; a bigger one is the wrong file


@dataclass(frozen=True)
class ProblemFile:
    """A problem a user wrote: its env per simulator (or one), presets and default search space."""

    name: str
    envs: dict[str, dict[str, Any]]  # simulator (or "" for one env) -> its `env:` block
    presets: dict[str, dict[str, Any]]  # name -> rl.* hyperparameters
    default_preset: str | None
    space: dict[str, Any] | None  # parameters/static as a tuning file holds them

    def hyperparameters(self, simulator: str | None = None, preset: str | None = None) -> dict[str, Any]:
        """The job's hyperparameters for this problem on `simulator` with `preset` (None: the file's default)."""
        if "" in self.envs:
            if simulator is not None:
                raise UserError(f"problem {self.name} has one env (env:), so a simulator cannot be chosen: drop "
                                f"--simulator, or give one env per simulator (envs:)")
            block = self.envs[""]
        else:
            simulator = simulator or next(iter(self.envs))
            if simulator not in self.envs:
                raise UserError(f"problem {self.name} has no env for simulator {simulator!r}: choose one of "
                                f"{', '.join(self.envs)}")
            block = self.envs[simulator]
        name = preset or self.default_preset
        if name is not None and name not in self.presets:
            raise UserError(f"problem {self.name} has no preset {name!r}{did_you_mean(name, self.presets)}: "
                            f"choose one of {', '.join(self.presets) or '(none: drop --preset)'}")
        env = {_ENV_KEYS[key]: value for key, value in block.items()}
        return {**env, **(self.presets[name] if name is not None else {})}


def load_problem_file(path: str | Path) -> ProblemFile:
    """The problem file at `path`, checked; UserError with the file's name and what is wrong otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"problem file {path} is over {MAX_FILE_BYTES:,} bytes: is it the right file?")
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UserError(f"cannot read problem file {path}: {error.strerror or error}") from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as error:
        raise UserError(f"problem file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    try:
        return _problem(data, default_name=path.stem)
    except UserError as error:
        raise UserError(f"problem file {path}: {error}") from None


def _problem(data: Any, *, default_name: str) -> ProblemFile:
    _mapping("the file", data, _FILE_KEYS)
    if ("env" in data) == ("envs" in data):
        raise UserError("give the env as `env:` (one) or `envs:` (one per simulator), exactly one of them")
    if "env" in data:
        envs = {"": _env_block("env", data["env"])}
    else:
        _mapping("envs", data["envs"], None)
        envs = {str(simulator): _env_block(f"envs.{simulator}", block) for simulator, block in data["envs"].items()}
        if not envs:
            raise UserError("envs is empty: give one env block per simulator")
    presets = data.get("presets") or {}
    _mapping("presets", presets, None)
    for preset, values in presets.items():
        _mapping(f"presets.{preset}", values, None)
        for key in values:
            if not isinstance(key, str) or not key.startswith(KEY_ROOT):
                raise UserError(f"presets.{preset} holds {shorten(key)}: give hyperparameters by their rl.* names")
    default = data.get("default_preset", "fast" if "fast" in presets else None)
    space = data.get("space")
    if space is not None:
        _mapping("space", space, ("parameters", "static"))
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"name must be text, got {shorten(name)}")
    return ProblemFile(name.strip(), envs, {str(k): dict(v) for k, v in presets.items()}, default, space)


def _env_block(where: str, block: Any) -> dict[str, Any]:
    _mapping(where, block, tuple(_ENV_KEYS))
    if "id" not in block:
        raise UserError(f"{where} has no id: give a Gymnasium id or module:Class of your code")
    return dict(block)


def _mapping(where: str, value: Any, allowed: tuple[str, ...] | None) -> None:
    if not isinstance(value, Mapping):
        raise UserError(f"{where} must be a mapping, got {shorten(value)}")
    for key in value:
        if allowed is not None and key not in allowed:
            raise UserError(f"{where} has the unknown key {shorten(key)}{did_you_mean(str(key), allowed)}: "
                            f"use {', '.join(allowed)}")
