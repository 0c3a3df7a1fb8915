"""Run one training job locally, under the SageMaker job layout, in a fresh run directory (or on SageMaker).

    python scripts/train.py --problem reacher --hp rl.training.stop.time_total_s=60
    python scripts/train.py --problem hopper --hp-file runs/tune-hopper-.../best_hyperparameters.json
    python scripts/train.py --problem reacher --run-dir runs/train-reacher-20261123-101500   # resume
    python scripts/train.py --problem reacher --backend container --instance-count 2   # in the built image
    python scripts/train.py --problem hopper --backend sagemaker --image URI --role ARN --wait
    python scripts/train.py --env Pendulum-v1 --hp rl.training.stop.timesteps_total=200000   # any Gymnasium env
    python scripts/train.py --env my_robots.envs:Arm --code-dir ./my_code   # your own env class
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import env_flags
import sagemaker_flags

from sagemaker_rl import api
from sagemaker_rl.contract import decode_value
from sagemaker_rl.errors import UserError, cli
from sagemaker_rl.job import SIMULATOR_KEY


def build_parser() -> argparse.ArgumentParser:
    """The parser of train.py's flags (the CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    env_flags.add_arguments(parser, problem_help="a built-in problem (or --env / --problem-file)")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyperparameter, e.g. rl.training.config.lr=3e-4 (repeatable)")
    parser.add_argument("--hp-file", type=Path, help="JSON object of hyperparameters (e.g. a tuner's best)")
    parser.add_argument("--run-dir", type=Path,
                        help="job base directory; an existing one resumes from its checkpoints "
                             "(default: a new runs/train-PROBLEM-TIME)")
    sagemaker_flags.add_arguments(parser, job="training")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.target = env_flags.target(args, required=not sagemaker_flags.value(args, "attach"))
    return args


def hyperparameters_from(args: argparse.Namespace) -> dict[str, object]:
    hyperparameters: dict[str, object] = dict(args.target.hyperparameters)
    if args.hp_file:
        try:
            loaded = json.loads(args.hp_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"cannot read --hp-file {args.hp_file}: {error}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"--hp-file {args.hp_file} must hold a JSON object of hyperparameters")
        hyperparameters.update({key: decode_value(value) for key, value in loaded.items()})
    if args.simulator and args.target.problem:
        hyperparameters[SIMULATOR_KEY] = args.simulator
    for item in args.hp:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--hp expects KEY=VALUE, got {item!r}")
        hyperparameters[key.strip()] = decode_value(value)
    return hyperparameters


@cli
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sagemaker_flags.check_backend(args, local_only=("run_dir",))
    if args.backend == sagemaker_flags.SAGEMAKER:
        return train_on_sagemaker(args)
    backend = sagemaker_flags.backend(args)
    assert isinstance(backend, api.Local | api.Container)
    trained = api.train(args.target.problem, hyperparameters_from(args), run_dir=args.run_dir, backend=backend,
                        code_dir=args.target.code_dir, out=sys.stdout)
    assert trained.exit_code is not None
    return trained.exit_code


def train_on_sagemaker(args: argparse.Namespace) -> int:
    """Start a SageMaker training job (or --attach to one); with --wait, follow it to its end."""
    from sagemaker_rl import sagemaker

    name = sagemaker_flags.value(args, "attach")
    try:
        if name:
            aws = sagemaker_flags.aws(args)
        else:
            config = sagemaker_flags.config(args)  # a missing role or image fails here, first
            hyperparameters = hyperparameters_from(args)
            aws = sagemaker_flags.aws(args)
            name = sagemaker.start_training_job(aws, args.target.problem, hyperparameters, config, out=sys.stdout,
                                                code_dir=args.target.code_dir)
            if not sagemaker_flags.value(args, "wait"):
                print(f"follow it with: {sagemaker_flags.follow_command('train.py', name, args)}")
                return 0
        poll_s = sagemaker_flags.poll_seconds(args)
        description = sagemaker.wait_for_training_job(aws, name, out=sys.stdout, poll_s=poll_s)
    except KeyboardInterrupt:
        if name:
            follow = sagemaker_flags.follow_command("train.py", name, args)
            print(f"\nstopped following; the job runs on in SageMaker: {follow}")
        return 130
    return sagemaker.training_outcome(description, out=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
