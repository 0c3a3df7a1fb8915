"""Benchmark: a training job's env-step rate against the raw simulator rate, measured in one run.

    .venv/bin/python bench/throughput.py [--problem reacher] [--simulator roboschool] [--iterations 3]

Prints the raw single-core env.step rate (random actions), the job's end-to-end rate (env steps per
second of training iteration, sampling and learning included) for the default PPO settings, and
their ratio. Machines are shared and noisy: compare ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def raw_rate(problem: str, simulator: str, seconds: float = 5.0) -> float:
    from sagemaker_rl.envs import make_env

    env = make_env(problem, simulator, seed=0)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    env.close()
    return steps / (time.perf_counter() - start)


def job_rates(problem: str, simulator: str, iterations: int, extra: dict[str, object]) -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as base:
        config = Path(base) / "input" / "config"
        config.mkdir(parents=True)
        hyperparameters = {"rl.env.simulator": simulator, "rl.training.stop.training_iteration": iterations,
                           "rl.training.checkpoint_freq": 1000, **extra}
        (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hyperparameters.items()}))
        env = {"SAGEMAKER_BASE_DIR": base, "PATH": "/usr/bin:/bin", "HOME": base, "RAY_AUTH_MODE": "disabled"}
        subprocess.run([sys.executable, str(REPO / "entrypoints" / f"train-{problem}.py")], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return list(csv.DictReader((Path(base) / "output" / "intermediate" / "progress.csv").open()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="reacher")
    parser.add_argument("--simulator", default="roboschool")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="extra hyperparameters")
    args = parser.parse_args()
    extra = {key: json.loads(value) for key, _, value in (item.partition("=") for item in args.hp)}
    raw_before = raw_rate(args.problem, args.simulator)
    rows = job_rates(args.problem, args.simulator, args.iterations, extra)
    raw_after = raw_rate(args.problem, args.simulator)
    raw = (raw_before + raw_after) / 2
    steady = rows[1:] or rows  # the first iteration includes warm-up
    steps = sum(int(row["steps_this_iter"]) for row in steady)
    seconds = sum(float(row["time_this_iter_s"]) for row in steady)
    rate = steps / seconds
    print(f"{args.problem}/{args.simulator}: raw env.step {raw:,.0f} steps/s (1 core, before {raw_before:,.0f} "
          f"/ after {raw_after:,.0f})")
    for row in rows:
        row_steps, row_seconds = int(row["steps_this_iter"]), float(row["time_this_iter_s"])
        print(f"  iter {row['training_iteration']}: {row_steps:,} steps in {row_seconds:.1f} s "
              f"= {row_steps / row_seconds:,.0f} steps/s")
    print(f"job (iterations 2..{len(rows)}): {rate:,.0f} env steps/s end to end; ratio job / raw = {rate / raw:.2f}")


if __name__ == "__main__":
    main()
