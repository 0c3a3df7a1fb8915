"""The flags that name what a job trains, shared by train.py and tune.py: a problem, your env, your code.

`--problem` picks a built-in row; `--env` (with `--env-package`, `--env-kwargs`, `--max-episode-steps`)
or `--problem-file` name your own env, which every backend receives as `rl.env.*` hyperparameters;
`--code-dir` is the directory of your code, which travels with every job as SageMaker's source_dir.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagemaker_rl import user_code
from sagemaker_rl.errors import UserError
from sagemaker_rl.job import (
    ENV_ID_KEY,
    ENV_KWARGS_KEY,
    ENV_PACKAGE_KEY,
    MAX_EPISODE_STEPS_KEY,
    PROBLEMS,
    SIMULATORS,
)
from sagemaker_rl.job.problem_file import load_problem_file

# flag dest -> the hyperparameter it sets
_ENV_FLAGS = {"env": ENV_ID_KEY, "env_package": ENV_PACKAGE_KEY, "env_kwargs": ENV_KWARGS_KEY,
              "max_episode_steps": MAX_EPISODE_STEPS_KEY}


@dataclass(frozen=True)
class Target:
    """What a job trains: a built-in problem (None: the env its hyperparameters name), and those hyperparameters."""

    problem: str | None
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # rl.env.* and a problem file's preset
    space: dict[str, Any] | None = None  # a problem file's default search space
    code_dir: Path | None = None


def add_arguments(parser: argparse.ArgumentParser, *, problem_help: str) -> None:
    parser.add_argument("--problem", choices=sorted(PROBLEMS), help=problem_help)
    parser.add_argument("--simulator", choices=SIMULATORS, help="a problem's simulator (default: roboschool, PyBullet; "
                        "a problem file's first)")
    own = parser.add_argument_group("your own env (instead of --problem)")
    own.add_argument("--env", metavar="ID_OR_ENTRY_POINT", help="a Gymnasium id (Pendulum-v1, Walker2d-v5) or "
                     "module:Class of your code")
    own.add_argument("--env-package", metavar="MODULE", help="a module to import first (it registers the id)")
    own.add_argument("--env-kwargs", metavar="JSON", type=_json_object, help="the env's constructor arguments, "
                     "a JSON object")
    own.add_argument("--max-episode-steps", type=int, metavar="N", help="the env's time limit (default: its "
                     "registered one, else 1000)")
    own.add_argument("--problem-file", type=Path, metavar="FILE", help="a YAML problem: its env (per simulator), "
                     "stop reward, presets and search space (see docs/own-problem.md)")
    own.add_argument("--preset", help="a problem file's preset (default: its default_preset)")
    own.add_argument("--code-dir", type=Path, metavar="DIR", help="the directory of your env's code (and its "
                     "requirements.txt): importable locally, and sent with every job as SageMaker's source_dir")


def target(args: argparse.Namespace, *, required: bool = True) -> Target:
    """What the flags say to train; UserError for flags that contradict each other."""
    own = [f"--{dest.replace('_', '-')}" for dest in _ENV_FLAGS if getattr(args, dest) is not None]
    if args.problem_file and own:
        raise UserError(f"--problem-file names the env itself: drop {own[0]}, or drop --problem-file")
    if args.problem and (own or args.problem_file):
        raise UserError(f"--problem and {(own or ['--problem-file'])[0]} both name what to train: keep one")
    if own and args.env is None:
        raise UserError(f"{own[0]} describes an env: add --env ID_OR_ENTRY_POINT")
    if args.preset and not args.problem_file:
        raise UserError("--preset picks a problem file's preset: add --problem-file, or set rl.training.preset")
    code_dir = None if args.code_dir is None else user_code.check_code_dir(args.code_dir)
    if args.problem_file:
        problem = load_problem_file(args.problem_file)
        return Target(None, problem.hyperparameters(args.simulator, args.preset), problem.space, code_dir)
    if own:
        if args.simulator:
            raise UserError("--simulator picks a problem's env: drop it with --env")
        values = {key: getattr(args, dest) for dest, key in _ENV_FLAGS.items() if getattr(args, dest) is not None}
        return Target(None, values, None, code_dir)
    if required and not args.problem:
        raise UserError("name what to train: --problem NAME, --env ID_OR_ENTRY_POINT or --problem-file FILE")
    return Target(args.problem, {}, None, code_dir)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error.msg}): write e.g. '{{\"g\": 9.81}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object of argument names to values")
    return value
