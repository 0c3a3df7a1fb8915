"""Generic default: choose the generic preset's values by measurement, then report them against two baselines.

    .venv/bin/python bench/generic_default.py [--quick] [--budget-s 150] [--seeds 2] [--report-seeds 3]
                                              [--choose P,P] [--report P,P,P] [--cpus 2]

A problem P is a row of the problem table on a simulator (`walker2d/roboschool`) or any env by id
(`Pendulum-v1`, `module:Class`: a job without a problem). Every run is a fresh job started as a user
starts it (`python -m sagemaker_rl.job [--problem P]` under $SAGEMAKER_BASE_DIR), on `--cpus` CPUs,
one at a time, stopped by its training clock (rl.training.stop.time_total_s); its figure is the mean
return (the reward line: last 100 episodes) at its last iteration. Runs go seed by seed, problem by
problem, config by config, so that a drift in the shared machine's load falls on every config alike.

1. CHOOSE: each candidate on the choice problems, `--seeds` seeds each; the score of a candidate is the
   mean over problems of its runs' returns normalized per problem, (x - min) / (max - min) over every
   run of that problem (a run without a return counts as the minimum), so problems of different scales
   count alike. The best score is the choice.
2. REPORT: the choice, RLlib's default PPOConfig and the original scripts' values (preset `seed`) on
   other problems, `--report-seeds` seeds each; a table of mean [min..max] over seeds and chosen / each.

Every config's hyperparameters are parsed (and its env built once) before the first run starts.
A Gaussian-only setting (initial_log_std, gSDE) of a candidate is dropped on a Discrete-action env, as
the job drops a preset's. The JSON (bench/results/generic-default-<time>.json) is rewritten after
every run. Expected wall time of the full run on 2 cores: 39 runs (12 choosing, 27 reporting), each the
budget plus ~40 s (start-up, the last iteration's overshoot, the model's export; --quick measured 27-57 s
under a load average of 1.2-3.8): about 2 h 5 min. --quick (1 seed, 20 s, the first choice problem and the
last report problem, CartPole-v1, for its Discrete actions): 6 runs, about 5-6 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import BENCH, REPO, Target, cores, job, load_average, target

from sagemaker_rl import metrics
from sagemaker_rl.job import INITIAL_LOG_STD_KEY, ppo_key
from sagemaker_rl.job.keys import CHECKPOINT_FREQ_KEY, GSDE_KEY, PRESET_KEY, SEED_KEY, STOP_PREFIX

CHOICE_PROBLEMS = ("inverted_double_pendulum/roboschool", "walker2d/roboschool")
REPORT_PROBLEMS = ("half_cheetah/roboschool", "Pendulum-v1", "CartPole-v1")
BUDGET_S, QUICK_BUDGET_S = 150.0, 20.0
OVERHEAD_S = 40.0  # per run beyond the budget (--quick: 27-57 s): start-up, last iteration, export
EXIT_GRACE_S = 300.0  # beyond the budget before a run is killed: start-up, a long last iteration, the export
_GAUSSIAN_ONLY = (INITIAL_LOG_STD_KEY, GSDE_KEY)  # refused on Discrete actions (hyperparameters.py)


@dataclass(frozen=True)
class Config:
    """A set of hyperparameters over a preset (the preset is one of them), with where its values come from."""

    name: str
    hyperparameters: dict[str, Any]
    source: str


@dataclass
class RunResult:
    """One job's figures: its final mean return, its curve, and how it ended."""

    target: str
    config: str
    seed: int
    final_return: float | None  # the reward line at its last iteration (mean over the last 100 episodes)
    iterations: int
    env_steps: int | None
    wall_s: float
    exit_code: int
    load_average: float
    curve: list[list[float | int | None]] = field(default_factory=list)  # [iteration, env steps, mean return]
    resolved: dict[str, Any] = field(default_factory=dict)  # model/params.json's hyperparameters
    failure: str | None = None  # output/failure's first line, or the tail of stderr


def _generic(name: str, values: dict[str, Any], source: str) -> Config:
    return Config(name, {PRESET_KEY: "generic", **values}, source)


# Candidates for the generic preset, each over the generic preset as problems.py has it today (hopper's fast
# values: _FAST_LOCOMOTION, initial log std 0, 16 env copies); the JSON holds each run's resolved values.
CANDIDATES = (
    _generic("generic", {}, "problems.GENERIC as it is: hopper/roboschool's fast preset (lr 3e-4 annealed to "
             "3e-5 over 4M steps, gamma 0.99, lambda 0.95, clip 0.2, 10 epochs of minibatch 512 from 8192, "
             "MeanStdFilter, vf_loss_coeff 0.5, grad_clip 0.5, initial log std 0, 16 env copies)"),
    _generic("sb3-zoo", {ppo_key("lr"): 3e-4, ppo_key("minibatch_size"): 256,
                         ppo_key("train_batch_size_per_learner"): 4096},
             "SB3 PPO's defaults as rl-zoo3 hyperparams/ppo.yml's MuJoCo rows use them (&mujoco-defaults: "
             "normalize true, SB3 defaults: lr 3e-4 constant, n_steps 2048, batch 64, 10 epochs, gamma 0.99, "
             "gae_lambda 0.95, clip 0.2, vf_coef 0.5, max_grad_norm 0.5, log_std_init 0, [64, 64] tanh): the "
             "generic preset already holds all but the lr schedule and the sizes; batch 4096 = our 16 copies x "
             "256 steps (SB3: 1 x 2048), minibatch 256 (SB3's 64 is too slow a learner here); reward "
             "normalization (VecNormalize) cannot be expressed"),
    _generic("generic-logstd-0.5", {INITIAL_LOG_STD_KEY: -0.5},
             "the generic preset with initial log std -0.5 (std 0.61): our reacher study found the initial "
             "log std the most important value (53% of the variance, best -0.41), and every tuned rl-zoo3 PPO "
             "row for continuous control starts below 0 (pybullet rows -1 to -2.7, MuJoCo rows -2); kept at "
             "-0.5 as hopper's note saw a fast-shrinking std collapse without the gradient clip this keeps"),
)
SEED_BASELINE = Config("seed", {PRESET_KEY: "seed"}, "the original SageMaker RL Roboschool scripts' shared "
                       "values (problems.SHARED_PPO; a problem's `seed` preset)")
RLLIB_BASELINE = "rllib-default"
# Kept ours in RLlib's default config: one env runner per CPU (2 on 2 CPUs, as RLlib's default 2) and the
# 1-thread learner (not a hyperparameter); what the job does differently whatever its hyperparameters:
RLLIB_NOT_EXPRESSED = (
    "num_env_runners: the job's (one per CPU; RLlib's default is 2 as well on 2 CPUs)",
    "the learner's torch threads: the job's 1 (RLlib: torch's default)",
    "env copies seeded apart by the job's SeededEnvRunner (RLlib seeds a runner's copies alike; 1 copy here)",
    "actions unsquashed by the job's connector, with RLlib's normalize_actions/clip_actions values",
)


def rllib_default() -> Config:
    """RLlib's PPOConfig() values of every field a job takes (PPO_FIELDS, MODEL_FIELDS), over the seed preset."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from sagemaker_rl.job.hyperparameters import MODEL_FIELDS, PPO_FIELDS

    defaults = PPOConfig()
    # PPOConfig.model_config: PPO's own additions (vf_share_layers False) over DefaultModelConfig
    model = {**{name: getattr(DefaultModelConfig(), name) for name in MODEL_FIELDS}, **defaults.model_config}
    values = {ppo_key(name): getattr(defaults, name) for name in PPO_FIELDS
              if name not in ("num_env_runners", "model_config")}
    return Config(RLLIB_BASELINE, {PRESET_KEY: "seed", **values, ppo_key("model_config"): model},
                  "ray.rllib.algorithms.ppo.PPOConfig() and DefaultModelConfig() of the installed RLlib; not "
                  "expressed: " + "; ".join(RLLIB_NOT_EXPRESSED))


def job_hyperparameters(where: Target, config: Config, *, seed: int, budget_s: float,
                        discrete: bool) -> dict[str, Any]:
    """The hyperparameters.json of one run: the env, the config, the seed and the budget (and no other stop)."""
    values = {key: value for key, value in config.hyperparameters.items() if not (discrete and key in _GAUSSIAN_ONLY)}
    return {**where.env, **values, SEED_KEY: seed, f"{STOP_PREFIX}time_total_s": budget_s,
            CHECKPOINT_FREQ_KEY: 1000}


def discrete_envs(targets: Iterable[Target]) -> dict[str, bool]:
    """Whether each target's env has Discrete actions: its env built once, as the job does (envs.probe)."""
    from sagemaker_rl.job import envs
    from sagemaker_rl.job.hyperparameters import parse_hyperparameters

    return {where.label: envs.probe(parse_hyperparameters(where.env, where.problem).env).discrete_actions
            for where in targets}


def check_all(targets: list[Target], configs: list[Config], discrete: dict[str, bool], budget_s: float) -> None:
    """Parse every run's hyperparameters as its job will (with its env's facts); a UserError before any run."""
    from sagemaker_rl.job.hyperparameters import EnvFacts, parse_hyperparameters

    for where in targets:
        facts = EnvFacts(discrete_actions=discrete[where.label], reward_threshold=None, observation_layout=[])
        for config in configs:
            raw = job_hyperparameters(where, config, seed=0, budget_s=budget_s, discrete=discrete[where.label])
            parse_hyperparameters(raw, where.problem, facts)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def train(where: Target, config: Config, hyperparameters: dict[str, Any], *, cpus: int,
          timeout_s: float) -> RunResult:
    """One job as a user starts it; its figures."""
    load = load_average()
    with job(where.problem, hyperparameters, cpus=cpus, timeout_s=timeout_s, prefix="generic-default-") as run:
        resolved = _read_json(run.paths.model / "params.json").get("hyperparameters", {})
        failure = run.failure
    records = metrics.read_records(run.stdout.splitlines())
    final = records[-1] if records else None
    return RunResult(where.label, config.name, int(hyperparameters[SEED_KEY]), final and final.value,
                     len(records), final and final.env_steps, run.wall_s, run.exit_code, load,
                     [[r.iteration, r.env_steps, r.value] for r in records], resolved, failure)


def plan(targets: list[Target], configs: list[Config], seeds: list[int]) -> list[tuple[Target, Config, int]]:
    """The runs in order: seed by seed, problem by problem, config by config (interleaved against load drift)."""
    return [(where, config, seed) for seed in seeds for where in targets for config in configs]


def scores(runs: list[RunResult]) -> dict[str, float]:
    """Each config's mean over problems of its runs' returns normalized per problem (min..max of all its runs)."""
    per_config: dict[str, list[float]] = {}
    for label in dict.fromkeys(run.target for run in runs):
        here = [run for run in runs if run.target == label]
        known = [run.final_return for run in here if run.final_return is not None]
        low, high = (min(known), max(known)) if known else (0.0, 0.0)
        for config in dict.fromkeys(run.config for run in here):
            normalized = [0.0 if run.final_return is None else
                          (run.final_return - low) / (high - low) if high > low else 0.5
                          for run in here if run.config == config]
            per_config.setdefault(config, []).append(statistics.fmean(normalized))
    return {config: statistics.fmean(values) for config, values in per_config.items()}


def _finals(runs: list[RunResult], label: str, config: str) -> list[float]:
    return [run.final_return for run in runs if run.target == label and run.config == config
            and run.final_return is not None]


def _spread(values: list[float]) -> str:
    """'mean [min..max] (n)' of the values, or '—'."""
    return f"{statistics.fmean(values):.1f} [{min(values):.1f}..{max(values):.1f}] ({len(values)})" if values else "—"


def _versus(chosen: list[float], other: list[float]) -> str:
    """chosen / other (of the means) and chosen - other; a ratio of negative returns reads inverted."""
    if not chosen or not other:
        return "—"
    a, b = statistics.fmean(chosen), statistics.fmean(other)
    if a < 0 and b < 0:
        quotient = f"{a / b:.2f} (both < 0: < 1 is better)"
    else:
        quotient = f"{a / b:.2f}" if b > 0 and a >= 0 else "— (signs differ)"
    return f"{quotient}, {a - b:+.1f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """Rows as left-aligned text columns."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def choice_table(runs: list[RunResult], score: dict[str, float]) -> str:
    labels = list(dict.fromkeys(run.target for run in runs))
    rows = [[config, *(_spread(_finals(runs, label, config)) for label in labels), f"{value:.3f}"]
            for config, value in sorted(score.items(), key=lambda item: -item[1])]
    return table(["candidate", *(f"{label}: mean [min..max] (seeds)" for label in labels), "score"], rows)


def report_table(runs: list[RunResult], chosen: str) -> str:
    rows = []
    for label in dict.fromkeys(run.target for run in runs):
        mine = _finals(runs, label, chosen)
        for config in dict.fromkeys(run.config for run in runs if run.target == label):
            finals = _finals(runs, label, config)
            rows.append([label, config, _spread(finals), "" if config == chosen else _versus(mine, finals)])
    return table(["problem", "config", "final mean return [min..max] (seeds)", f"{chosen} / this, - this"], rows)


def run_phase(name: str, runs: list[tuple[Target, Config, int]], *, discrete: dict[str, bool],
              budget_s: float, cpus: int, on_run: Callable[[RunResult], None]) -> list[RunResult]:
    """Every run of a phase, one at a time; `on_run` sees each result as it ends."""
    results = []
    for number, (where, config, seed) in enumerate(runs, 1):
        print(f"[{time.strftime('%H:%M:%S')}] {name} {number}/{len(runs)}: {where.label} {config.name} seed {seed} "
              f"(load average {load_average()})", flush=True)
        hyperparameters = job_hyperparameters(where, config, seed=seed, budget_s=budget_s,
                                              discrete=discrete[where.label])
        result = train(where, config, hyperparameters, cpus=cpus, timeout_s=budget_s + EXIT_GRACE_S)
        ending = f"exit {result.exit_code}: {result.failure}" if result.failure else f"exit {result.exit_code}"
        print(f"    final mean return {result.final_return} after {result.iterations} iterations, "
              f"{result.env_steps} env steps, {result.wall_s:.0f} s wall, {ending}", flush=True)
        results.append(result)
        on_run(result)
    return results


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke settings: 1 seed, 20 s, one problem a phase")
    parser.add_argument("--budget-s", type=float, help=f"training seconds of each run (default {BUDGET_S:g})")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of each choosing run (default 2)")
    parser.add_argument("--report-seeds", type=int, default=3, help="seeds of each reporting run (default 3)")
    parser.add_argument("--choose", default=",".join(CHOICE_PROBLEMS), help="comma-separated choice problems")
    parser.add_argument("--report", default=",".join(REPORT_PROBLEMS), help="comma-separated report problems")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of each job (SM_NUM_CPUS; default 2)")
    parser.add_argument("--out", type=Path, help="the JSON file (default bench/results/generic-default-<time>.json)")
    args = parser.parse_args()
    if args.quick:
        args.seeds = args.report_seeds = 1
        args.choose, args.report = args.choose.split(",")[0], args.report.split(",")[-1]  # CartPole: Discrete
    args.budget_s = args.budget_s or (QUICK_BUDGET_S if args.quick else BUDGET_S)
    suffix = "-quick" if args.quick else ""
    args.out = args.out or BENCH / "results" / f"generic-default-{time.strftime('%Y%m%d-%H%M%S')}{suffix}.json"
    return args


def _write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")


def _header(args: argparse.Namespace, choose: list[Target], report: list[Target], configs: list[Config],
            discrete: dict[str, bool]) -> dict[str, Any]:
    """The JSON record's settings: how to reproduce the run, and every config's values and source."""
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": [sys.executable, *sys.argv],
            "quick": args.quick, "budget_s": args.budget_s, "cpus": args.cpus, "machine_cores": cores(),
            "choose_seeds": list(range(args.seeds)), "report_seeds": list(range(args.report_seeds)),
            "choice_problems": [where.label for where in choose], "report_problems": [where.label for where in report],
            "discrete": discrete, "configs": {config.name: dataclasses.asdict(config) for config in configs},
            "runs": []}


def main() -> int:
    args = _arguments()
    choose = [target(label) for label in args.choose.split(",") if label]
    report = [target(label) for label in args.report.split(",") if label]
    baselines = [rllib_default(), SEED_BASELINE]
    discrete = discrete_envs([*choose, *report])
    check_all(choose, list(CANDIDATES), discrete, args.budget_s)
    check_all(report, [*CANDIDATES, *baselines], discrete, args.budget_s)
    count = (len(choose) * len(CANDIDATES) * args.seeds + len(report) * (1 + len(baselines)) * args.report_seeds)
    print(f"{count} runs of {args.budget_s:g} s on {args.cpus} CPUs, one at a time: expect "
          f"~{count * (args.budget_s + OVERHEAD_S) / 60:.0f} min (load average {load_average()})", flush=True)
    record = _header(args, choose, report, [*CANDIDATES, *baselines], discrete)

    def keep(result: RunResult) -> None:
        record["runs"].append(dataclasses.asdict(result))
        _write(args.out, record)

    phase = functools.partial(run_phase, discrete=discrete, budget_s=args.budget_s, cpus=args.cpus, on_run=keep)
    choice_runs = phase("choose", plan(choose, list(CANDIDATES), record["choose_seeds"]))
    record["scores"] = score = scores(choice_runs)
    record["choice"] = chosen = max(score, key=score.__getitem__)
    chosen_config = next(config for config in CANDIDATES if config.name == chosen)
    report_runs = phase("report", plan(report, [chosen_config, *baselines], record["report_seeds"]))
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write(args.out, record)
    print(f"\nCHOOSE (budget {args.budget_s:g} s, {args.cpus} CPUs; score: mean over problems of the returns "
          f"normalized per problem): the choice is {chosen}\n{choice_table(choice_runs, score)}\n\n"
          f"REPORT\n{report_table(report_runs, chosen)}")
    print(f"\nResults written to {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
