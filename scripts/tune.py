"""Tune PPO hyperparameters locally: `python scripts/tune.py --problem reacher`.

With no other flag this runs the default study (20 trials of 60 s, 2 at a time, then the best one and
the default re-evaluated on 3 fresh seeds: ~16 minutes on a 2-core machine). The space, budget and
strategy come from flags or a YAML/JSON file (--config);
flags win over the file. `--resume RUN_DIR` continues a run that was stopped or killed.
`--backend container [--image TAG]` runs each trial's job in the built image (podman or docker);
`--backend ray --address http://HEAD:8265 --storage-path DIR` runs each trial as a Ray Job on a cluster;
`--backend sagemaker --image URI --role ARN` runs the same study as one SageMaker tuning job.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import sagemaker_flags

from sagemaker_rl.errors import cli
from sagemaker_rl.problems import PROBLEMS
from sagemaker_rl.tuning import (
    EarlyStopping,
    Strategy,
    TuningConfig,
    TuningError,
    load_config,
    open_run,
    parse_parameter_flag,
    parse_static_flag,
    reopen_run,
)
from sagemaker_rl.tuning.config import (
    DEFAULT_MAX_JOBS,
    DEFAULT_MAX_PARALLEL_JOBS,
    DEFAULT_REEVALUATE_SEEDS,
    DEFAULT_REEVALUATE_TOP,
    DEFAULT_TIME_PER_TRIAL_S,
    file_keys,
)
from sagemaker_rl.tuning.container_runner import ContainerRunner, read_settings, write_settings
from sagemaker_rl.tuning.ray_jobs import RayCluster, RayJobRunner, cluster_cpus, connect
from sagemaker_rl.tuning.runners import Runner
from sagemaker_rl.tuning.trials import IDENTICAL, TRANSFER, WARM_START_TYPES


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=f"Tuning file keys: {', '.join(file_keys())} (SageMaker's ParameterRanges and "
        "StaticHyperParameters are read too).",
    )
    add = parser.add_argument
    add("--problem", choices=sorted(PROBLEMS), default=None, help="problem to tune (default: reacher)")
    add("--config", type=Path, help="YAML/JSON tuning file (a run's tuning.json works too)")
    add(
        "--param",
        action="append",
        default=[],
        metavar="NAME=TYPE:...",
        help="a range; replaces the default space. NAME=Continuous:MIN:MAX[:SCALING], "
        "NAME=Integer:MIN:MAX[:SCALING] or NAME=Categorical:A,B,C; SCALING is Auto, Linear, "
        "Logarithmic or ReverseLogarithmic (default space: lr Continuous 5e-4-5e-3 Logarithmic, "
        "initial_log_std Continuous -1.5-0.5, gamma Continuous 0.98-0.999 ReverseLogarithmic)",
    )
    add(
        "--static",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a hyperparameter fixed for every trial (default: rl.training.stop.time_total_s="
        f"{DEFAULT_TIME_PER_TRIAL_S})",
    )
    add(
        "--max-jobs",
        type=int,
        help=f"trials in the run (default: {DEFAULT_MAX_JOBS}; Grid: every combination; PBT: jobs, population x "
        "generations, default population x 10)",
    )
    add(
        "--max-parallel-jobs",
        type=int,
        help=f"trials at once; they split the cores (default: {DEFAULT_MAX_PARALLEL_JOBS})",
    )
    add("--strategy", choices=[str(s) for s in Strategy], help="search strategy (default: Bayesian)")
    add(
        "--early-stopping",
        choices=[str(e) for e in EarlyStopping],
        help="stop poor trials early (default: Off)",
    )
    add(
        "--objective-last-k",
        type=int,
        help="objective = mean of the last K reward values (default: 1, the last)",
    )
    add("--population", type=int, help="strategy PBT: members of the population (default: one per core, at least 4)")
    add(
        "--perturbation-interval",
        type=int,
        metavar="ENV_STEPS",
        help="strategy PBT: env steps of a generation; at its end the worst members take the best's checkpoints "
        "and perturb their values (default: 50,000); a member trains max-jobs / population generations",
    )
    add("--seeds", type=int, help="jobs per trial with different seeds; objective = their mean (default: 1)")
    add(
        "--reevaluate-top",
        type=int,
        metavar="K",
        help=f"after the search, train the K best configurations and the default again on fresh seeds; "
        f"the best by that is the answer (default: {DEFAULT_REEVALUATE_TOP}; 0: off; local runs only)",
    )
    add(
        "--reevaluate-seeds",
        type=int,
        metavar="N",
        help=f"fresh seeds per re-evaluated configuration (default: {DEFAULT_REEVALUATE_SEEDS})",
    )
    add(
        "--warm-start",
        nargs="+",
        metavar="PARENT",
        help="start from the finished trials of up to 5 earlier runs: run directories (local) or "
        "tuning job names (--backend sagemaker)",
    )
    add(
        "--warm-start-type",
        choices=WARM_START_TYPES,
        help=f"SageMaker's warm-start types: {IDENTICAL} (same problem; parents' trials may be the answer) or "
        f"{TRANSFER} (problem or static values may differ; parents only inform the sampler) (default: {IDENTICAL})",
    )
    add("--run-dir", type=Path, help="run directory (default: runs/tune-PROBLEM-TIME)")
    add(
        "--storage",
        help="SQLAlchemy URL of the study, e.g. for several machines (default: SQLite in the run dir)",
    )
    add("--study-name", help="study name in the storage (default: the run directory's name)")
    add("--sampler-seed", type=int, help="seed of the sampler (default: drawn and recorded)")
    add("--num-cpus", type=int, help="cores the parallel trials share (default: all this process may use)")
    add(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue this run; only --max-jobs/--max-parallel-jobs apply",
    )
    add(
        "--dry-run",
        action="store_true",
        help="print the resolved config and SageMaker's ParameterRanges, then exit",
    )
    add(
        "--verbose",
        action="store_true",
        help="log details to the console too (they always go to RUN_DIR/tuner.log)",
    )
    ray = parser.add_argument_group("Ray cluster (--backend ray)")
    ray.add_argument("--address", help="the cluster's dashboard (Jobs API), e.g. http://HEAD:8265 (default: "
                     "RAY_API_SERVER_ADDRESS or RAY_ADDRESS); with --resume, where the recorded cluster is now")
    ray.add_argument("--storage-path", help="a directory every node can write, the same path on each: the trials' "
                     "models and checkpoints go there (RUN_NAME/trials/NNNN)")
    sagemaker_flags.add_arguments(parser, job="tuning")
    return parser.parse_args(argv)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {  # every flag named after a TuningConfig field sets that field
        item.name: getattr(args, item.name)
        for item in dataclasses.fields(TuningConfig)
        if getattr(args, item.name, None) is not None
    }
    if args.param:
        overrides["parameters"] = dict(parse_parameter_flag(text) for text in args.param)
    if args.static:
        overrides["static"] = dict(parse_static_flag(text) for text in args.static)
    return overrides


def _configure_logging(verbose: bool) -> None:
    """Console: warnings (everything with --verbose); `_log_to` adds the run directory's tuner.log."""
    import optuna

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[console], force=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    logging.captureWarnings(True)


def _log_to(run_dir: Path) -> None:
    file_handler = logging.FileHandler(run_dir / "tuner.log")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(file_handler)


@cli
def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    sagemaker_flags.check_backend(args, local_only=_LOCAL_ONLY)
    _check_ray_flags(args)
    if args.strategy == str(Strategy.PBT):
        _check_pbt_backend(args)
    if args.backend == sagemaker_flags.SAGEMAKER and not args.dry_run:
        return tune_on_sagemaker(args)
    _configure_logging(args.verbose)
    runner: Runner | None = None  # None: local processes
    if args.resume:
        extra = {k for k, v in _overrides(args).items() if k not in ("max_jobs", "max_parallel_jobs") and v}
        if extra or args.config:
            raise TuningError(
                f"--resume continues a run with its recorded settings; only --max-jobs and "
                f"--max-parallel-jobs may be given with it, not {sorted(extra) or ['config']}"
            )
        runner = _ray_runner_to_resume(args) or _container_runner_to_resume(args)
        with reopen_run(args.resume, max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel_jobs) as run:
            _log_to(run.run_dir)
            result = run.run(runner=runner)
    else:
        overrides = _overrides(args)
        cluster: RayCluster | None = None
        if args.backend == sagemaker_flags.RAY and not args.dry_run:
            cluster, overrides = _ray_cluster(args, overrides)
        config = load_config(args.config, overrides).resolved()
        container = None
        if args.backend == sagemaker_flags.CONTAINER and not args.dry_run:
            assert config.run_dir is not None
            container = sagemaker_flags.container_settings(args, run_name=config.run_dir.name)
            runner = ContainerRunner(container)
        if args.dry_run:
            print(
                json.dumps(
                    {
                        **config.to_dict(),
                        "ParameterRanges": config.space.to_parameter_ranges(),
                        "StaticHyperParameters": config.space.static_hyperparameters(),
                    },
                    indent=2,
                    default=str,
                )
            )
            return 0
        if cluster is not None:
            assert config.run_dir is not None
            runner = RayJobRunner(cluster, config.run_dir)
            runner.check()  # a storage path the cluster cannot write fails here, before the run directory exists
        with open_run(config, command=["python", *sys.argv]) as run:  # a bad key fails before the run dir exists
            _log_to(run.run_dir)
            if cluster is not None:
                cluster.write(run.run_dir)  # --resume finds the cluster there
            if container is not None:
                write_settings(run.run_dir, container)  # --resume finds the image there
            result = run.run(runner=runner)
    if isinstance(runner, RayJobRunner) and runner.stopped and result.interrupted:
        print(f"stopped {len(runner.stopped)} Ray job(s) on {runner.cluster.address}: {', '.join(runner.stopped)}")
    if result.interrupted:
        return 130
    return 0 if result.complete else 1


# dests of the options only a local run reads (SageMaker AMT has no re-evaluation)
_LOCAL_ONLY = ("resume", "storage", "study_name", "num_cpus", "reevaluate_top", "reevaluate_seeds", "population",
               "perturbation_interval")
_RAY_ONLY = ("address", "storage_path")  # dests of the options only --backend ray reads


def _check_ray_flags(args: argparse.Namespace) -> None:
    if args.backend == sagemaker_flags.RAY or args.resume:
        return
    given = ["--" + dest.replace("_", "-") for dest in _RAY_ONLY if getattr(args, dest)]
    if given:
        raise TuningError(f"{given[0]} applies to --backend ray: add --backend ray or drop {given[0]}")


def _check_pbt_backend(args: argparse.Namespace) -> None:
    if args.backend == sagemaker_flags.SAGEMAKER:
        raise TuningError("strategy PBT runs locally or on a Ray cluster (--backend local or ray): SageMaker AMT has "
                          "no population-based strategy")
    storage = Path(args.storage_path) if args.backend == sagemaker_flags.RAY and args.storage_path else None
    if storage is not None and not (storage.is_dir() and os.access(storage, os.W_OK)):
        raise TuningError(f"strategy PBT copies checkpoints between a member's jobs through --storage-path, but "
                          f"{storage} is not a directory this machine can write: mount the cluster's storage here "
                          "at the same path, or run the tuner on the head node")


def _ray_cluster(args: argparse.Namespace, overrides: dict[str, object]) -> tuple[RayCluster, dict[str, object]]:
    """The cluster of --backend ray (reachable: checked), and the overrides with its CPUs as the cores to share."""
    if not args.storage_path:
        raise TuningError("--backend ray needs --storage-path: a directory every node of the cluster can write "
                          "(the same path on each), where the trials' models and checkpoints go")
    cluster = RayCluster(_ray_address(args), args.storage_path)
    connect(cluster.address)
    if "num_cpus" not in overrides:  # the trials share the cluster's CPUs as a local run shares the cores
        cpus = cluster_cpus(cluster.address)
        if cpus < 1:
            raise TuningError(f"the Ray cluster at {cluster.address} has no live node with CPUs yet: give "
                              "--num-cpus, the CPUs the trials share (e.g. what the autoscaler may start)")
        overrides = {**overrides, "num_cpus": cpus}
    return cluster, overrides


def _ray_runner_to_resume(args: argparse.Namespace) -> RayJobRunner | None:
    """The Ray runner of a run that ran on a cluster (recorded in its directory); None for a local run."""
    cluster = RayCluster.read(args.resume)
    if cluster is None:
        return None
    if args.address:  # the same cluster, reached another way (a new port-forward)
        cluster = dataclasses.replace(cluster, address=args.address)
    return RayJobRunner(cluster, args.resume)


def _container_runner_to_resume(args: argparse.Namespace) -> ContainerRunner | None:
    """The container runner of a run whose trials ran in containers (its settings recorded); None otherwise."""
    settings = read_settings(args.resume)
    return ContainerRunner(settings) if settings is not None else None


def _ray_address(args: argparse.Namespace) -> str:
    return args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or ""


def tune_on_sagemaker(args: argparse.Namespace) -> int:
    """Start the study as one SageMaker tuning job (or --attach to one); with --wait, follow it and write
    the same trials.csv and best_hyperparameters.json as a local run."""
    from sagemaker_rl import sagemaker

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    name, run_dir = sagemaker_flags.value(args, "attach"), args.run_dir
    try:
        if name:
            aws = sagemaker_flags.aws(args)
            run_dir = run_dir or Path("runs", f"tune-{name}")
        else:
            settings = sagemaker_flags.config(args)  # a missing role or image fails here, first
            config = load_config(args.config, _overrides(args)).resolved()
            aws = sagemaker_flags.aws(args)
            name = sagemaker.start_tuning_job(aws, config, settings, out=sys.stdout)
            assert config.run_dir is not None
            run_dir = config.run_dir
            if not sagemaker_flags.value(args, "wait"):
                print(f"follow it with: {sagemaker_flags.follow_command('tune.py', name, args, run_dir=run_dir)}")
                return 0
        poll_s = sagemaker_flags.poll_seconds(args)
        description = sagemaker.wait_for_tuning_job(aws, name, out=sys.stdout, poll_s=poll_s)
        files = sagemaker.write_tuning_results(aws, description, run_dir.absolute(), out=sys.stdout)
    except KeyboardInterrupt:
        if name:
            follow = sagemaker_flags.follow_command("tune.py", name, args, run_dir=run_dir)
            print(f"\nstopped following; the tuning job runs on in SageMaker: {follow}")
        return 130
    complete = description["HyperParameterTuningJobStatus"] == "Completed" and "best_hyperparameters" in files
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
