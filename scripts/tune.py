"""Tune PPO hyperparameters locally: `python scripts/tune.py --problem reacher`.

With no other flag this runs the default study (its budget and space: --help). The space, budget and
strategy come from flags or a YAML/JSON file (--config); flags win over the file.
`--resume RUN_DIR` continues a run that was stopped or killed.
`--backend container [--image TAG]` runs each trial's job in the built image (podman or docker);
`--backend ray --address http://HEAD:8265 --storage-path DIR` runs each trial as a Ray Job on a cluster;
`--backend sagemaker --image URI --role ARN` runs the same study as one SageMaker tuning job.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import env_flags
import sagemaker_flags

from sagemaker_rl import api
from sagemaker_rl.errors import cli
from sagemaker_rl.job import SIMULATOR_KEY
from sagemaker_rl.tuning import (
    EarlyStopping,
    Runner,
    Strategy,
    TuningConfig,
    TuningError,
    TuningResult,
    backends,
    load_config,
    parse_parameter_flag,
    parse_static_flag,
)
from sagemaker_rl.tuning.budget import parse_duration
from sagemaker_rl.tuning.config import (
    DEFAULT_ASHA_MAX_JOBS,
    DEFAULT_GENERATIONS,
    DEFAULT_PERTURBATION_INTERVAL,
    DEFAULT_REEVALUATE_SEEDS,
    MAX_WARM_START_PARENTS,
    MIN_POPULATION,
    REEVALUATION_SHARE,
    config_from_mapping,
    file_keys,
)
from sagemaker_rl.tuning.record import WARM_START_TYPES
from sagemaker_rl.tuning.rundir import LOG_FILE
from sagemaker_rl.tuning.space import parameter_flag

_DEFAULTS = TuningConfig()


@dataclasses.dataclass(frozen=True)
class _Option:
    """A flag of the tuning run; `{default}` in its help is the TuningConfig default (the field of its dest)."""

    flag: str
    help: str
    kind: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None
    nargs: str | None = None
    dest: str | None = None  # the TuningConfig field it sets, when not the flag's own name

    def add_to(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        help_text = self.help.format(default=self._default()).replace("%", "%%")  # argparse formats help with %
        settings: dict[str, Any] = {"help": help_text}
        for name in ("kind", "metavar", "choices", "action", "nargs", "dest"):
            if getattr(self, name) is not None:
                settings["type" if name == "kind" else name] = getattr(self, name)
        parser.add_argument(self.flag, **settings)

    def _default(self) -> object:
        return getattr(_DEFAULTS, self.dest or self.flag.lstrip("-").replace("-", "_"), None)


def _seconds(text: str) -> int:
    """A duration flag: `90`, `90s`, `30m` or `2h`, in whole seconds."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _space_help() -> str:
    return " ".join(parameter_flag(parameter) for parameter in _DEFAULTS.space.parameters)


# The flags of a tuning run, in the order --help lists them; those named after a TuningConfig field set it.
_OPTIONS = (
    _Option("--config", "YAML/JSON tuning file (a run's tuning.json works too)", Path),
    _Option("--param", "a range; replaces the default space. NAME=Continuous:MIN:MAX[:SCALING], "
            "NAME=Integer:MIN:MAX[:SCALING] or NAME=Categorical:A,B,C; SCALING is Auto, Linear, Logarithmic or "
            f"ReverseLogarithmic (default space: {_space_help()})", metavar="NAME=TYPE:...", action="append"),
    _Option("--static", "a hyperparameter fixed for every trial (default: "
            f"{' '.join(f'{key}={value}' for key, value in _DEFAULTS.space.static.items())})", metavar="KEY=VALUE",
            action="append"),
    _Option("--max-jobs", f"trials in the run (default: {_DEFAULTS.budget}; ASHA: {DEFAULT_ASHA_MAX_JOBS}; Grid: every "
            f"combination; PBT, PB2: jobs, "
            f"population x generations, default population x {DEFAULT_GENERATIONS})", int),
    _Option("--max-parallel-jobs", "trials at once; they split the cores (default: {default})", int),
    _Option("--strategy", "search strategy (default: ASHA with --train-budget, as measured best on problems no "
            "default of ours was chosen on; else Bayesian)", choices=tuple(map(str, Strategy))),
    _Option("--early-stopping", "stop poor trials early (default: {default})", choices=tuple(map(str, EarlyStopping))),
    _Option("--objective-last-k", "objective = mean of the last K reward values (default: {default}, the last)", int),
    _Option("--population", "strategy PBT or PB2: members of the population (default: one per core, at least "
            f"{MIN_POPULATION})", int),
    _Option("--perturbation-interval", "strategy PBT or PB2: env steps of a generation; at its end the worst members "
            "take the best's checkpoints and perturb their values (PB2: choose them with a bandit) (default: "
            f"{DEFAULT_PERTURBATION_INTERVAL:,}; with --train-budget: it / generations); a member trains "
            "max-jobs / population generations", int, "ENV_STEPS"),
    _Option("--seeds", "jobs per trial with different seeds; objective = their mean (default: {default})", int),
    _Option("--reevaluate-top", "after the search, train the K best configurations and the default again on fresh "
            "seeds; the best by that is the answer (default: {default}; 0: off; local runs only)", int, "K"),
    _Option("--reevaluate-seeds", f"fresh seeds per re-evaluated configuration (default: {DEFAULT_REEVALUATE_SEEDS}; "
            f"with --max-runtime, as many from 1 to {DEFAULT_REEVALUATE_SEEDS} as fit in {REEVALUATION_SHARE} of it)",
            int, "N"),
    _Option("--target-objective", "end the search when a trial's objective reaches this value (SageMaker's "
            "TargetObjectiveMetricValue); the re-evaluation follows", float, "VALUE"),
    _Option("--max-jobs-not-improving", "end the search when this many finished trials in a row did not improve the "
            "best by 1% (SageMaker's BestObjectiveNotImproving; at least 3)", int, "N"),
    _Option("--complete-on-convergence", "end the search when it has converged: the last quarter of the budget (at "
            "least 5 trials) improved nothing by 1% (SageMaker's ConvergenceDetected)", action="store_true"),
    _Option("--max-runtime", "the whole run's wall-clock budget, e.g. 30m, 2h or 900 (seconds): no trial starts that "
            "would not end in it with the re-evaluation after it, and what still runs then is stopped (SageMaker's "
            "MaxRuntimeInSeconds)", _seconds, "DURATION", dest="max_runtime_s"),
    _Option("--train-budget", "the training the answer is for: env steps (1M, 500k) or training time (30min, 2h); "
            "trials may be shorter, the re-evaluation trains at it, and its best job's policy is the run's model/; "
            "strategy PBT, PB2: env steps, each member's whole training (default: the trials' own stop; not with "
            "--backend sagemaker)", metavar="BUDGET"),
    _Option("--warm-start", f"start from the finished trials of up to {MAX_WARM_START_PARENTS} earlier runs: run "
            "directories (local) or tuning job names (--backend sagemaker)", metavar="PARENT", nargs="+"),
    _Option("--warm-start-type", f"SageMaker's warm-start types: {WARM_START_TYPES[0]} (same problem; parents' "
            f"trials may be the answer) or {WARM_START_TYPES[1]} (problem or static values may differ; parents only "
            "inform the sampler) (default: {default})", choices=WARM_START_TYPES),
    _Option("--run-dir", "run directory (default: runs/tune-PROBLEM-TIME)", Path),
    _Option("--storage", "SQLAlchemy URL of the study, e.g. for several machines (default: SQLite in the run dir)"),
    _Option("--study-name", "study name in the storage (default: the run directory's name)"),
    _Option("--sampler-seed", "seed of the sampler (default: drawn and recorded)", int),
    _Option("--num-cpus", "cores the parallel trials share (default: all this process may use)", int),
    _Option("--resume", "continue this run; only --max-jobs/--max-parallel-jobs apply", Path, "RUN_DIR"),
    _Option("--dry-run", "print the resolved config and SageMaker's ParameterRanges, then exit", action="store_true"),
    _Option("--verbose", "log details to the console too (they always go to RUN_DIR/tuner.log)", action="store_true"),
)
_RAY_OPTIONS = (
    _Option("--address", "the cluster's dashboard (Jobs API), e.g. http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS "
            "or RAY_ADDRESS); with --resume, where the recorded cluster is now"),
    _Option("--storage-path", "a directory every node can write, the same path on each: the trials' models and "
            "checkpoints go there (RUN_NAME/trials/NNNN)"),
)
# dests of the options only a local run reads (SageMaker AMT has no re-evaluation)
_LOCAL_ONLY = ("resume", "storage", "study_name", "num_cpus", "reevaluate_top", "reevaluate_seeds", "train_budget",
               "population", "perturbation_interval")
_RAY_ONLY = ("address", "storage_path")  # dests of the options only --backend ray reads
_RESUMABLE = ("max_jobs", "max_parallel_jobs")  # settings --resume may change


def build_parser() -> argparse.ArgumentParser:
    """The parser of tune.py's flags (the CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(
        prog="tune.py",
        description=__doc__.split("\n\n")[0],
        epilog=f"Tuning file keys: {', '.join(file_keys())} (SageMaker's ParameterRanges and "
        "StaticHyperParameters are read too).",
    )
    env_flags.add_arguments(parser, problem_help=f"a built-in problem to tune (default: {_DEFAULTS.problem}; or "
                            "--env / --problem-file)")
    for option in _OPTIONS:
        option.add_to(parser)
    ray = parser.add_argument_group("Ray cluster (--backend ray)")
    for option in _RAY_OPTIONS:
        option.add_to(ray)
    sagemaker_flags.add_arguments(parser, job="tuning")
    return parser


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {  # every flag named after a TuningConfig field sets that field
        item.name: getattr(args, item.name)
        for item in dataclasses.fields(TuningConfig)
        if getattr(args, item.name, None) is not None
    }
    if args.param:
        overrides["parameters"] = dict(parse_parameter_flag(text) for text in args.param)
    target = env_flags.target(args, required=False)
    static = dict(target.hyperparameters)
    if target.problem is None and static:
        overrides["problem"] = None
    elif args.simulator:
        static[SIMULATOR_KEY] = args.simulator
    static.update(dict(parse_static_flag(text) for text in args.static or ()))
    if static:
        overrides["static"] = static
    if target.code_dir is not None:
        overrides["code_dir"] = target.code_dir
    return overrides


def _load_config(args: argparse.Namespace, overrides: dict[str, object] | None = None) -> TuningConfig:
    """Defaults, a problem file's search space, the tuning file (--config), then the flags (`overrides`)."""
    space = env_flags.target(args, required=False).space
    base = config_from_mapping(space) if space else None
    return load_config(args.config, _overrides(args) if overrides is None else overrides, base=base)


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
    file_handler = logging.FileHandler(run_dir / LOG_FILE)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(file_handler)


@cli
def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    _check_flags(args)
    if args.backend == sagemaker_flags.SAGEMAKER and not args.dry_run:
        return tune_on_sagemaker(args)
    _configure_logging(args.verbose)
    if args.resume:
        result, runner = _resume(args)
    elif args.dry_run:
        return _dry_run(args)
    else:
        result, runner = _new_run(args)
    note = backends.stopped_note(runner) if result.interrupted else None
    if note:
        print(note)
    if result.interrupted:
        return 130
    return 0 if result.complete else 1


def _check_flags(args: argparse.Namespace) -> None:
    """Flags given to a backend or a mode that does not read them fail before anything starts."""
    sagemaker_flags.check_backend(args, local_only=_LOCAL_ONLY)
    given = ["--" + dest.replace("_", "-") for dest in _RAY_ONLY if getattr(args, dest)]
    if given and args.backend != sagemaker_flags.RAY and not args.resume:
        raise TuningError(f"{given[0]} applies to --backend ray: add --backend ray or drop {given[0]}")
    extra = {key for key, value in _overrides(args).items() if key not in _RESUMABLE and value}
    if args.resume and (extra or args.config):
        raise TuningError(f"--resume continues a run with its recorded settings; only --max-jobs and "
                          f"--max-parallel-jobs may be given with it, not {sorted(extra) or ['config']}")


def _dry_run(args: argparse.Namespace) -> int:
    config = _load_config(args).resolved()
    print(json.dumps({**config.to_dict(), "ParameterRanges": config.space.to_parameter_ranges(),
                      "StaticHyperParameters": config.space.static_hyperparameters()}, indent=2, default=str))
    return 0


def _resume(args: argparse.Namespace) -> tuple[TuningResult, Runner | None]:
    with api.reopen_tuning(args.resume, address=args.address, max_jobs=args.max_jobs,
                           max_parallel_jobs=args.max_parallel_jobs) as run:
        _log_to(run.run_dir)
        return run.run(), run.runner


def _new_run(args: argparse.Namespace) -> tuple[TuningResult, Runner | None]:
    # a bad key fails before the run dir exists; an env only in the image or on the cluster is checked there
    with api.open_tuning(_load_config(args), sagemaker_flags.backend(args), command=["python", *sys.argv]) as run:
        _log_to(run.run_dir)
        return run.run(), run.runner


def tune_on_sagemaker(args: argparse.Namespace) -> int:
    """Start the study as one SageMaker tuning job (or --attach to one); with --wait, follow it and write
    the same trials.csv and best_hyperparameters.json as a local run."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    name, run_dir = sagemaker_flags.value(args, "attach"), args.run_dir
    settings = None if name else sagemaker_flags.config(args)  # a missing role or image fails here, first
    backend = sagemaker_flags.backend(args, settings=settings)
    assert isinstance(backend, api.SageMaker)
    try:
        if name:
            run_dir = run_dir or Path("runs", f"tune-{name}")
            tuning = api.Tuning(run_dir, job_name=name, sagemaker=backend)
        else:
            tuning = api.tune(_load_config(args), backend=backend, out=sys.stdout)
            name, run_dir = tuning.job_name or "", tuning.run_dir
            if not sagemaker_flags.value(args, "wait"):
                print(f"follow it with: {sagemaker_flags.follow_command('tune.py', name, args, run_dir=run_dir)}")
                return 0
        tuning.wait(out=sys.stdout)
    except KeyboardInterrupt:
        if name:
            follow = sagemaker_flags.follow_command("tune.py", name, args, run_dir=run_dir)
            print(f"\nstopped following; the tuning job runs on in SageMaker: {follow}")
        return 130
    return 0 if tuning.sagemaker_status == "Completed" and tuning.best_hyperparameters is not None else 1


if __name__ == "__main__":
    sys.exit(main())
