"""Run one training job locally, under the SageMaker job layout, in a fresh run directory.

    python scripts/train.py --problem reacher --hp rl.training.stop.time_total_s=60
    python scripts/train.py --problem hopper --hp-file runs/tune-hopper-.../best_hyperparameters.json
    python scripts/train.py --problem reacher --run-dir runs/train-reacher-20261123-101500   # resume
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sagemaker_rl.contract import JobPaths, write_inputs
from sagemaker_rl.hyperparameters import decode_value
from sagemaker_rl.job import run
from sagemaker_rl.problems import PROBLEMS, SIMULATORS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", required=True, choices=sorted(PROBLEMS))
    parser.add_argument("--simulator", choices=SIMULATORS, help="default: roboschool (PyBullet)")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyperparameter, e.g. rl.training.config.lr=3e-4 (repeatable)")
    parser.add_argument("--hp-file", type=Path, help="JSON object of hyperparameters (e.g. a tuner's best)")
    parser.add_argument("--run-dir", type=Path,
                        help="job base directory; an existing one resumes from its checkpoints "
                             "(default: a new runs/train-PROBLEM-TIME)")
    return parser.parse_args(argv)


def hyperparameters_from(args: argparse.Namespace) -> dict[str, object]:
    hyperparameters: dict[str, object] = {}
    if args.hp_file:
        try:
            loaded = json.loads(args.hp_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            sys.exit(f"error: cannot read --hp-file {args.hp_file}: {error}")
        if not isinstance(loaded, dict):
            sys.exit(f"error: --hp-file {args.hp_file} must hold a JSON object of hyperparameters")
        hyperparameters.update({key: decode_value(value) for key, value in loaded.items()})
    if args.simulator:
        hyperparameters["rl.env.simulator"] = args.simulator
    for item in args.hp:
        key, sep, value = item.partition("=")
        if not sep or not key:
            sys.exit(f"error: --hp expects KEY=VALUE, got {item!r}")
        hyperparameters[key.strip()] = decode_value(value)
    return hyperparameters


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir = args.run_dir or Path("runs") / f"train-{args.problem}-{time.strftime('%Y%m%d-%H%M%S')}"
    paths = JobPaths(run_dir.resolve())
    hyperparameters = hyperparameters_from(args)
    if not paths.hyperparameters_file.exists() or hyperparameters:
        write_inputs(paths, hyperparameters)
    print(f"Run directory: {paths.base}", flush=True)
    return run(args.problem, paths)


if __name__ == "__main__":
    sys.exit(main())
