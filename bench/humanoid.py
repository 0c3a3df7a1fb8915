"""Benchmark 7: humanoid/roboschool on 2 CPUs: a `fast` preset of its own, chosen by measurement, then
what it and the `seed` preset reach in 30 and 60 minutes.

    .venv/bin/python bench/humanoid.py [--choose-cap-s 600] [--cap-s 3600] [--out FILE]

1. choose: every candidate of CANDIDATES for --choose-cap-s (seed 0, both CPUs); the best mean return
   over the last 100 episodes at its cap wins, and becomes humanoid's `fast` preset in problems.py;
2. curves: the `seed` preset, then the `fast` preset, for --cap-s each (seed 0, both CPUs): the mean
   return along the wall clock from process start, what it is at each of MARKS_S, and the final policy's
   deterministic return on seeds no run trains on. The record says whether the `fast` run's values are
   the winner's (problems.py was changed between the stages, or not).
Runs go one at a time. Each finished run is written to --out at once, and a rerun with the same --out
skips the runs it holds: the whole takes ~2.5 h, and a stopped machine loses one run at most.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import BENCH, REPO, load_average
from time_to_reward import ours

from sagemaker_rl.job import ppo_key
from sagemaker_rl.job.keys import PRESET_KEY

PROBLEM, SIMULATOR = "humanoid", "roboschool"
TARGETS = [500.0, 1000.0, 2000.0, 3500.0]  # 3500: the original script's stop
MARKS_S = (1800.0, 3600.0)  # 30 and 60 minutes from process start
FINAL_EPISODES = 20  # a standing humanoid's episode is 1,000 of its slow steps (raw rates: docs/benchmarks.md)
CPUS = 2
# Beyond the cap before a run is killed: the job ends the iteration in progress (the seed preset's are minutes
# long here: the Humanoid section of docs/benchmarks.md), then exports; time_to_reward's grace cut the first seed
# run off before its export.
EXIT_GRACE_S = 600.0
# Candidates over the generic preset (hopper/roboschool's fast values: problems._FAST_LOCOMOTION, initial log
# std 0, 16 env copies), each with where its values come from; the record holds each run's resolved values.
CANDIDATES = {
    "generic": ({PRESET_KEY: "generic"}, "problems.GENERIC as it is: hopper/roboschool's fast values (lr 3e-4 "
                "annealed to 3e-5 over 4M steps, gamma 0.99, lambda 0.95, clip 0.2, 10 epochs of minibatch 512 "
                "from 8192, MeanStdFilter, vf_loss_coeff 0.5, grad_clip 0.5, initial log std 0, 16 env copies)"),
    "zoo-row": ({PRESET_KEY: "generic", ppo_key("lr"): 2.5e-4, ppo_key("train_batch_size_per_learner"): 16_384,
                 ppo_key("minibatch_size"): 256},
                "rl-zoo3 hyperparams/ppo.yml's HumanoidBulletEnv-v0 row (normalize, 8 envs x 2048 steps, batch 64, "
                "10 epochs, lr 2.5e-4 constant, gamma 0.99, gae_lambda 0.95, clip 0.2, SB3 defaults otherwise: "
                "vf_coef 0.5, max_grad_norm 0.5, log_std_init 0, [64, 64]) over the generic preset, which holds "
                "all but the lr and the sizes: batch 16384 = our 16 copies x 1024 steps, minibatch 256 (64 makes "
                "the learner most of an iteration here); reward normalization cannot be expressed"),
}
CURVES = {"seed": ({PRESET_KEY: "seed"}, "the original train-humanoid.py's values (problems._HUMANOID_SEED)"),
          "fast": ({PRESET_KEY: "fast"}, "humanoid's fast preset in problems.py when the run started")}


def run(name: str, hyperparameters: dict[str, Any], cap_s: float) -> dict[str, Any]:
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {cap_s:.0f} s (load average {load_average()})", flush=True)
    result = ours(PROBLEM, SIMULATOR, TARGETS, cap_s, 0, hyperparameters=hyperparameters, cpus=CPUS,
                  final_episodes=FINAL_EPISODES, exit_grace_s=EXIT_GRACE_S)
    result["at_marks"] = {str(int(mark)): at(result["curve"], mark) for mark in MARKS_S if mark <= cap_s}
    result["load_average"] = load_average()
    last = result["curve"][-1] if result["curve"] else None
    print(f"    {'no reward line' if last is None else f'{last[2]:.1f} at {last[0]:.0f} s, {last[1]:,} steps'}; "
          f"final policy {result['final_return']}; exit {result['exit_code']}", flush=True)
    return result


def at(curve: list[list[float]], seconds: float) -> dict[str, float] | None:
    """The curve's last point at or before `seconds` (the mean return a user had then), None before the first."""
    points = [point for point in curve if point[0] <= seconds]
    return None if not points else {"seconds": points[-1][0], "env_steps": points[-1][1], "mean_return": points[-1][2]}


def learning_values(resolved: dict[str, Any]) -> dict[str, Any]:
    """What a run learned with: every resolved value but the run's own (seed, stop, checkpoints)."""
    return {key: value for key, value in resolved.items()
            if key.startswith("rl.training.") and not key.startswith(("rl.training.stop.", "rl.training.seed",
                                                                       "rl.training.checkpoint", "rl.training.preset"))}


def report(record: dict[str, Any]) -> str:
    lines = [f"CHOOSE ({record['choose_cap_s']:.0f} s each, {CPUS} CPUs, seed 0): mean return at the cap"]
    for name, result in record["choose"].items():
        lines.append(f"  {name:10s} {_last(result)}")
    if record.get("winner"):
        lines.append(f"  winner: {record['winner']}")
    lines.append(f"\nCURVES ({record['cap_s']:.0f} s each, {CPUS} CPUs, seed 0): mean return at "
                 + ", ".join(f"{mark / 60:.0f} min" for mark in MARKS_S) + "; final policy")
    for name, result in record["curves"].items():
        marks = [result["at_marks"].get(str(int(mark))) for mark in MARKS_S]
        cells = ["—" if mark is None else f"{mark['mean_return']:.1f} ({mark['env_steps'] / 1e6:.2f}M steps)"
                 for mark in marks]
        lines.append(f"  {name:6s} " + " | ".join(cells) + f" | final {result['final_return']}")
    if "fast_is_winner" in record:
        lines.append(f"  the fast run's values are the winner's: {record['fast_is_winner']}")
    return "\n".join(lines)


def _final_mean(result: dict[str, Any]) -> float:
    return result["curve"][-1][2] if result["curve"] else float("-inf")


def _last(result: dict[str, Any]) -> str:
    if not result["curve"]:
        return "no reward line"
    seconds, steps, reward = result["curve"][-1]
    return f"{reward:.1f} at {seconds:.0f} s ({steps / 1e6:.2f}M steps); final policy {result['final_return']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--choose-cap-s", type=float, default=600.0, help="wall seconds of each candidate run")
    parser.add_argument("--cap-s", type=float, default=max(MARKS_S), help="wall seconds of each curve run")
    parser.add_argument("--out", type=Path, help="the JSON file, kept between reruns "
                        "(default bench/results/humanoid-<time>.json)")
    args = parser.parse_args()
    out = args.out or BENCH / "results" / f"humanoid-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "problem": PROBLEM, "simulator": SIMULATOR, "cpus": CPUS,
        "choose_cap_s": args.choose_cap_s, "cap_s": args.cap_s, "targets": TARGETS,
        "configs": {name: {"hyperparameters": values, "source": source}
                    for name, (values, source) in {**CANDIDATES, **CURVES}.items()},
        "choose": {}, "curves": {}}

    def keep() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1) + "\n")

    for name, (values, _) in CANDIDATES.items():
        if name not in record["choose"]:
            record["choose"][name] = run(f"choose {name}", values, record["choose_cap_s"])
            keep()
    record["winner"] = max(record["choose"], key=lambda name: _final_mean(record["choose"][name]))
    for name, (values, _) in CURVES.items():
        if name not in record["curves"]:
            record["curves"][name] = run(f"curve {name}", values, record["cap_s"])
            keep()
    record["fast_is_winner"] = (learning_values(record["curves"]["fast"]["resolved"])
                                == learning_values(record["choose"][record["winner"]]["resolved"]))
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    keep()
    print("\n" + report(record))
    print(f"\nResults written to {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
