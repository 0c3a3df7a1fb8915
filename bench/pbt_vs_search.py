"""PBT and PB2 vs Bayesian vs Random at equal wall time on reacher: the policy each run ends with.

    .venv/bin/python bench/pbt_vs_search.py [--repeats 1] [--episodes 50] [--strategies PBT,PB2,...] [--out FILE]

Each strategy is a whole `scripts/tune.py` run on this machine's cores, one after the other (their
order turns with each repeat), with budgets that take about the same wall time:
- Bayesian and Random: 16 trials of 60 training seconds, 2 at a time, no re-evaluation (its time
  would go to the search's answer only);
- PBT and PB2 (PBT whose explore is a bandit): 4 members, 8 generations of 40,000 env steps, 2 at a time (a
  member trains ~25 s a generation).
The wall times are measured and printed beside the results. The policy a run ends with (PBT, PB2: the
best final member's model/; the searches: the best trial's model/) is then evaluated on fresh
episode seeds (20000 on), deterministic actions, without Ray: its mean return and spread.
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
STRATEGIES: dict[str, list[str]] = {
    "PBT": ["--strategy", "PBT", *POPULATION],
    "PB2": ["--strategy", "PB2", *POPULATION],
    "Bayesian": ["--strategy", "Bayesian", *SEARCH],
    "Random": ["--strategy", "Random", *SEARCH],
}
EVALUATION_SEED = 20_000  # no training job uses episode seeds from here


def run(strategy: str, run_dir: Path, *, sampler_seed: int, episodes: int) -> dict[str, Any]:
    from sagemaker_rl.contract import JobPaths
    from sagemaker_rl.job.evaluation import evaluate
    from sagemaker_rl.tuning.ranking import answer
    from sagemaker_rl.tuning.record import read

    load = load_average()
    args = ["--problem", "reacher", *STRATEGIES[strategy], "--sampler-seed", str(sampler_seed)]
    wall_s, _, study = tune(args, run_dir)
    best = answer(study.get_trials(), study.direction)
    if best is None:
        return {"strategy": strategy, "wall_s": round(wall_s, 1), "error": "no trial completed: see bench-stdout.log"}
    model = run_dir / "model" if strategy in ("PBT", "PB2") else JobPaths(Path(str(read(best).trial_dir))).model
    result = evaluate(model, episodes=episodes, seed=EVALUATION_SEED)
    params = json.loads((model / "result.json").read_text())
    return {
        "strategy": strategy, "run_dir": str(run_dir), "wall_s": round(wall_s, 1), "load_before": load,
        "load_after": load_average(), "trials": len(study.trials), "answer_trial": best.number,
        "answer_objective": best.value, "policy_env_steps": params.get("timesteps_total"),
        "policy_training_s": params.get("time_total_s"), "evaluation_mean": round(result.mean, 2),
        "evaluation_std": round(statistics.stdev(result.returns), 2), "episodes": episodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each strategy (sampler seeds 1, 2, ...)")
    parser.add_argument("--first-repeat", type=int, default=0, help="start at this repeat (sampler seed K + 1)")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes of each final policy")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"the strategies run (default: {','.join(STRATEGIES)})")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sagemaker_rl-pbt-bench"), help="run directories")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / f"pbt-vs-search-{time.strftime('%Y%m%d')}.json")
    args = parser.parse_args()
    rows = []
    order = args.strategies.split(",")
    if unknown := set(order) - set(STRATEGIES):
        parser.error(f"--strategies: {', '.join(sorted(unknown))} is not one of {', '.join(STRATEGIES)}")
    for repeat in range(args.first_repeat, args.first_repeat + args.repeats):
        for strategy in order[repeat % len(order):] + order[:repeat % len(order)]:
            row = run(strategy, args.work / f"{strategy.lower()}-{repeat}", sampler_seed=repeat + 1,
                      episodes=args.episodes)
            rows.append({**row, "repeat": repeat})
            print(json.dumps(row), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{'strategy':<10} {'wall s':>7} {'policy env steps':>17} {'policy train s':>15} "
          f"{'return on fresh seeds':>22}")
    for row in rows:
        print(f"{row['strategy']:<10} {row['wall_s']:>7.0f} {row.get('policy_env_steps') or 0:>17,} "
              f"{row.get('policy_training_s') or 0:>15.0f} {row.get('evaluation_mean', float('nan')):>14.2f} ± "
              f"{row.get('evaluation_std', float('nan')):.2f}")


if __name__ == "__main__":
    main()
