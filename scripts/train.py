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
import os
import sys
import time
from pathlib import Path

import env_flags
import sagemaker_flags

from sagemaker_rl import engine, user_code
from sagemaker_rl.contract import JobPaths, decode_value, num_cpus, write_inputs
from sagemaker_rl.errors import UserError, cli
from sagemaker_rl.job import SIMULATOR_KEY, run, target_label


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env_flags.add_arguments(parser, problem_help="a built-in problem (or --env / --problem-file)")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyperparameter, e.g. rl.training.config.lr=3e-4 (repeatable)")
    parser.add_argument("--hp-file", type=Path, help="JSON object of hyperparameters (e.g. a tuner's best)")
    parser.add_argument("--run-dir", type=Path,
                        help="job base directory; an existing one resumes from its checkpoints "
                             "(default: a new runs/train-PROBLEM-TIME)")
    sagemaker_flags.add_arguments(parser, job="training")
    args = parser.parse_args(argv)
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
    label = target_label(args.target.problem, args.target.hyperparameters)
    run_dir = args.run_dir or Path("runs") / f"train-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.backend == sagemaker_flags.CONTAINER:
        return train_in_containers(args, run_dir)
    paths = JobPaths(run_dir.resolve())
    hyperparameters = hyperparameters_from(args)
    if not paths.hyperparameters_file.exists() or hyperparameters:
        write_inputs(paths, hyperparameters)
    print(f"Run directory: {paths.base}", flush=True)
    code_dir = args.target.code_dir
    if code_dir is not None:  # importable here and in the Ray workers this job starts (they inherit PYTHONPATH)
        sys.path.insert(0, str(code_dir))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), os.environ.get("PYTHONPATH")]))
    return run(args.target.problem, paths)



def train_in_containers(args: argparse.Namespace, run_dir: Path) -> int:
    """Run the job in the built image, one container per host sharing this machine's cores, in the foreground."""
    settings = sagemaker_flags.container_settings(args, run_name=run_dir.name)
    hyperparameters = hyperparameters_from(args)
    cpus = max(1, num_cpus() // settings.instance_count)
    problem, code_dir = args.target.problem, args.target.code_dir
    bundle = user_code.make_bundle(code_dir, user_code.entry_point(problem), run_dir) if code_dir else None
    job = engine.JobContainers(run_dir.resolve(), problem, settings, cpus_per_host=cpus, code_bundle=bundle)
    if not job.has_inputs() or hyperparameters:
        job.write_inputs(hyperparameters)
    print(f"Run directory: {job.base_dir} (/opt/ml of {job.hosts[0]}; {settings.image}, {len(job.hosts)} "
          f"host(s) of {cpus} CPU(s) with {settings.engine})", flush=True)
    return engine.run_job(job, out=sys.stdout)


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
