"""Whole tuning runs of reacher side by side: the policy each run ends with, on fresh episode seeds.

    .venv/bin/python bench/pbt_vs_search.py [--suite pbt-vs-search|main-job] [--repeats 1] [--episodes 50]
        [--strategies PBT,PB2,...] [--out FILE]

Each arm is a whole `scripts/tune.py` run on this machine's cores, one after the other (their order turns
with each repeat). Suite `pbt-vs-search` gives each strategy a budget that takes about the same wall time:
- Bayesian and Random: 16 trials of 60 training seconds, 2 at a time, no re-evaluation (its time
  would go to the search's answer only);
- PBT and PB2 (PBT whose explore is a bandit): 4 members, 8 generations of 40,000 env steps, 2 at a time (a
  member trains ~25 s a generation).
Suite `main-job` asks what the README's main job (`make tune`) should do with its ~15 minutes on 2 cores:
the job as it was (its default study: 60-s trials, the re-evaluation at 60 s), and planned runs that end
within `--max-runtime 15m` (Bayesian and ASHA judging their answer at a 150-s training budget, PBT and PB2
with their default population and generations).
The wall times are measured and printed beside the results. The policy a run ends with (the run's model/:
PBT, PB2: the best final member's; with a re-evaluation: its answer's best job's; else the best trial's)
is then evaluated on fresh episode seeds (20000 on), deterministic actions, without Ray: its mean return and
spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from common import BENCH, load_average, tune

SEARCH = ["--max-jobs", "16", "--static", "rl.training.stop.time_total_s=60", "--reevaluate-top", "0"]
POPULATION = ["--population", "4", "--max-jobs", "32", "--perturbation-interval", "40000"]
PLANNED = ["--max-runtime", "15m"]
AT_TRAIN_BUDGET = [*PLANNED, "--train-budget", "150s"]
SUITES: dict[str, dict[str, list[str]]] = {
    "pbt-vs-search": {
        "PBT": ["--strategy", "PBT", *POPULATION],
        "PB2": ["--strategy", "PB2", *POPULATION],
        "Bayesian": ["--strategy", "Bayesian", *SEARCH],
        "Random": ["--strategy", "Random", *SEARCH],
    },
    "main-job": {
        "default study": [],
        "Bayesian 15m": ["--strategy", "Bayesian", *AT_TRAIN_BUDGET],
        "ASHA 15m": ["--strategy", "ASHA", *AT_TRAIN_BUDGET],
        "PBT 15m": ["--strategy", "PBT", *PLANNED],
        "PB2 15m": ["--strategy", "PB2", *PLANNED],
    },
}
EVALUATION_SEED = 20_000  # no training job uses episode seeds from here


def run(strategy: str, arguments: list[str], run_dir: Path, *, sampler_seed: int, episodes: int) -> dict[str, Any]:
    from sagemaker_rl.contract import JobPaths
    from sagemaker_rl.job.evaluation import evaluate
    from sagemaker_rl.tuning import record
    from sagemaker_rl.tuning.ranking import answer
    from sagemaker_rl.tuning.record import read

    load = load_average()
    args = ["--problem", "reacher", *arguments, "--sampler-seed", str(sampler_seed)]
    wall_s, _, study = tune(args, run_dir)
    best = answer(study.get_trials(), study.direction)
    if best is None:
        return {"strategy": strategy, "wall_s": round(wall_s, 1), "error": "no trial completed: see bench-stdout.log"}
    model = run_dir / "model"  # the run's own policy; a search without a re-evaluation has none but its trials'
    if not model.is_dir():
        model = JobPaths(Path(str(read(best).trial_dir))).model
    result = evaluate(model, episodes=episodes, seed=EVALUATION_SEED)
    params = json.loads((model / "result.json").read_text())
    return {
        "strategy": strategy, "run_dir": str(run_dir), "wall_s": round(wall_s, 1), "load_before": load,
        "load_after": load_average(), "trials": len(study.trials), "answer_trial": best.number,
        "answer_objective": best.value, "policy_env_steps": params.get("timesteps_total"),
        "policy_training_s": params.get("time_total_s"), "evaluation_mean": round(result.mean, 2),
        "evaluation_std": round(statistics.stdev(result.returns), 2), "episodes": episodes,
        "answer": record.hyperparameters(best),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=tuple(SUITES), default="pbt-vs-search", help="the arms compared")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each strategy (sampler seeds 1, 2, ...)")
    parser.add_argument("--first-repeat", type=int, default=0, help="start at this repeat (sampler seed K + 1)")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes of each final policy")
    parser.add_argument("--strategies", help="the suite's arms run, comma-separated (default: all of them)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sagemaker_rl-pbt-bench"), help="run directories")
    parser.add_argument("--out", type=Path, help="results file (default: bench/results/SUITE-DATE-TIME.json); "
                        "an existing one is added to, so that a suite may run in parts (--first-repeat)")
    args = parser.parse_args()
    arms = SUITES[args.suite]
    out = args.out or BENCH / "results" / f"{args.suite}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    rows = json.loads(out.read_text()) if out.exists() else []
    order = args.strategies.split(",") if args.strategies else list(arms)
    if unknown := set(order) - set(arms):
        parser.error(f"--strategies: {', '.join(sorted(unknown))} is not one of {', '.join(arms)}")
    for repeat in range(args.first_repeat, args.first_repeat + args.repeats):
        for strategy in order[repeat % len(order):] + order[:repeat % len(order)]:
            run_dir = args.work / f"{strategy.lower().replace(' ', '-')}-{repeat}"
            row = run(strategy, arms[strategy], run_dir, sampler_seed=repeat + 1, episodes=args.episodes)
            rows.append({**row, "repeat": repeat, "suite": args.suite})
            print(json.dumps(row), flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{'strategy':<14} {'wall s':>7} {'policy env steps':>17} {'policy train s':>15} "
          f"{'return on fresh seeds':>22}")
    for row in rows:
        print(f"{row['strategy']:<14} {row['wall_s']:>7.0f} {row.get('policy_env_steps') or 0:>17,} "
              f"{row.get('policy_training_s') or 0:>15.0f} {row.get('evaluation_mean', float('nan')):>14.2f} ± "
              f"{row.get('evaluation_std', float('nan')):.2f}")


if __name__ == "__main__":
    main()
