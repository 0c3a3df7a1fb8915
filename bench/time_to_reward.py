"""Benchmark 4: wall time until the mean return reaches fixed targets: our presets vs Stable-Baselines3 PPO.

Every run is a fresh process started as a user starts it, and the clock starts with the process
(imports, Ray start-up and env construction included); each reward line is timed when it arrives
and every run gets the same wall-time cap. The mean return is over the last 100 episodes in both.
Runs go two at a time, one per core, each pair started together, so that ours and the peer share
the machine's state: our `fast` preset on 1 CPU beside SB3 PPO with rl-zoo3's tuned row (1 torch
thread), then the `seed` preset (the original scripts' values) two seeds side by side, then the
`fast` preset alone with both cores. Several seeds each: a single run is a sample, not a distribution.

Each run ends with the policy it trained: its deterministic return over FINAL_EPISODES episodes on
seeds no run trains on (the same targets for every trainer), the figure a user keeps. Both trainers
stop themselves on a training clock of `cap_s` (ours: rl.training.stop.time_total_s; SB3: from its
first rollout), so the final policy is not cut off by the kill; the times to the targets still count
from process start and only the reward lines within `cap_s` of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import BENCH, REPO, child_env

from sagemaker_rl import metrics
from sagemaker_rl.contract import JobPaths, write_inputs
from sagemaker_rl.job.evaluation import evaluate

FINAL_EPISODES = 100
FINAL_SEED = 100_000  # episodes FINAL_SEED.. (no run trains on these seeds)
EXIT_GRACE_S = 120.0  # after the cap: start-up before the training clock, the export and the evaluation


def _timed_lines(command: list[str], env: dict[str, str], cap_s: float,
                 cwd: str) -> tuple[list[tuple[float, str]], int]:
    """(seconds since start, line) for every stdout line; the process group is killed at cap_s (wall)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    lines: list[tuple[float, str]] = []
    assert process.stdout is not None
    killer = threading.Timer(cap_s, _kill_group, (process.pid,))
    killer.start()
    try:
        for line in process.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
    finally:
        killer.cancel()
        process.wait()
    return lines, process.returncode


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the job's Ray workers too
    except ProcessLookupError:
        return  # it ended by itself


def _summary(curve: list[tuple[float, int, float]], targets: list[float], cap_s: float,
             wall_s: float, final_return: float | None) -> dict[str, Any]:
    curve = [point for point in curve if point[0] <= cap_s]  # the race is from process start
    reached = {}
    for target in targets:
        hit = next(((t, steps) for t, steps, reward in curve if reward >= target), None)
        reached[str(target)] = None if hit is None else {"seconds": round(hit[0], 1), "env_steps": hit[1]}
    best = max((reward for _, _, reward in curve), default=None)
    return {"reached": reached, "best_mean_return": best, "cap_s": cap_s, "wall_s": round(wall_s, 1),
            "env_steps": curve[-1][1] if curve else 0, "final_return": final_return,
            "curve": [[round(t, 1), steps, round(reward, 3)] for t, steps, reward in curve]}


def ours(problem: str, simulator: str, targets: list[float], cap_s: float, seed: int, *,
         hyperparameters: dict[str, Any] | None = None, cpus: int | None = None,
         final_episodes: int = FINAL_EPISODES, exit_grace_s: float = EXIT_GRACE_S) -> dict[str, Any]:
    """Our job with `hyperparameters` over its defaults, on `cpus` CPUs (default: the machine's); with the
    values it resolved (model/params.json)."""
    with tempfile.TemporaryDirectory() as base:
        hyperparameters = {"rl.env.simulator": simulator, "rl.training.seed": seed,
                           "rl.training.stop.episode_reward_mean": max(targets),
                           "rl.training.stop.time_total_s": cap_s, "rl.training.checkpoint_freq": 1000,
                           **(hyperparameters or {})}
        write_inputs(JobPaths(Path(base)), hyperparameters)  # as SageMaker writes them
        env = child_env(SAGEMAKER_BASE_DIR=base, HOME=base, **({"SM_NUM_CPUS": str(cpus)} if cpus else {}))
        lines, code = _timed_lines([sys.executable, str(REPO / "entrypoints" / f"train-{problem}.py")],
                                   env, cap_s + exit_grace_s, base)
        model = JobPaths(Path(base)).model
        final = (evaluate(model, episodes=final_episodes, seed=FINAL_SEED).mean
                 if (model / "policy.onnx").is_file() else None)
        params = model / "params.json"
        resolved = json.loads(params.read_text()).get("hyperparameters", {}) if params.is_file() else {}
    # One record per iteration: its time is when its last reward line arrived.
    curve: list[tuple[float, int, float]] = []
    reader = metrics.RecordReader(metrics.EPISODE_REWARD_MEAN)
    for seconds, line in lines:
        record = reader.feed(line)
        if record is not None and record.value is not None and record.env_steps is not None:
            curve.append((seconds, record.env_steps, record.value))
    return {"exit_code": code, **_summary(curve, targets, cap_s, lines[-1][0] if lines else 0.0, final),
            "resolved": resolved}


def sb3(problem: str, simulator: str, targets: list[float], cap_s: float, seed: int, *,
        settings: str = "zoo") -> dict[str, Any]:
    """bench/sb3_ppo.py: rl-zoo3's tuned row (`zoo`) or SB3's defaults (`defaults`)."""
    command = [sys.executable, str(BENCH / "sb3_ppo.py"), "--problem", problem, "--simulator", simulator,
               "--target", str(max(targets)), "--cap-s", str(cap_s), "--seed", str(seed), "--settings", settings,
               "--final-episodes", str(FINAL_EPISODES), "--final-seed", str(FINAL_SEED)]
    with tempfile.TemporaryDirectory() as base:
        lines, code = _timed_lines(command, child_env(HOME=base), cap_s + EXIT_GRACE_S, base)
    curve, final = [], None
    for seconds, line in lines:
        fields = line.split()
        if len(fields) == 2 and fields[0] == "final":
            final = float(fields[1])
        elif len(fields) == 3:
            try:
                curve.append((seconds, int(fields[1]), float(fields[2])))
            except ValueError:
                continue
    if code != 0 and not curve:
        raise RuntimeError(f"bench/sb3_ppo.py failed (exit {code}): {lines[-1][1] if lines else 'no output'}")
    return {"exit_code": code, **_summary(curve, targets, cap_s, lines[-1][0] if lines else 0.0, final)}


# (label, trainer, CPUs, preset of our job or settings of bench/sb3_ppo.py): one round's runs go side by side.
Run = tuple[str, str, int, str]
FAST_1 = ("fast preset, 1 CPU", "ours", 1, "fast")
SEED_1 = ("seed preset, 1 CPU", "ours", 1, "seed")
FAST_2 = ("fast preset, 2 CPUs", "ours", 2, "fast")
SB3_ZOO = ("SB3 PPO, rl-zoo3 row, 1 thread", "sb3", 1, "zoo")


def rounds(seeds: list[int]) -> list[list[tuple[Run, int]]]:
    """The side-by-side rounds: [fast-1 | SB3] per seed, [seed-1 | seed-1] for the first two seeds, [fast-2].

    The seed preset gets two seeds only: it is far from every target (the README's figures), and
    each of its runs costs the whole cap.
    """
    plan = [[(FAST_1, seed), (SB3_ZOO, seed)] for seed in seeds]
    plan += [[(SEED_1, seed) for seed in seeds[:2]]]
    return plan + two_cpu_rounds(seeds)


def two_cpu_rounds(seeds: list[int]) -> list[list[tuple[Run, int]]]:
    """[fast-2] per seed: hopper's rounds (its goal is the fast preset with two cores; any other run
    would cost another half hour)."""
    return [[(FAST_2, seed)] for seed in seeds]


def measure(problem: str, simulator: str, targets: list[float], cap_s: float,
            plan: list[list[tuple[Run, int]]], *, on_round: Any = None) -> dict[str, Any]:
    """Every round of `plan` (`rounds` or `two_cpu_rounds`); results grouped by label, one entry per seed."""
    from concurrent.futures import ThreadPoolExecutor

    from common import load_average

    results: dict[str, Any] = {"problem": problem, "simulator": simulator, "targets": targets, "cap_s": cap_s,
                               "seeds": sorted({seed for round_ in plan for _, seed in round_}), "runs": {}}

    def one(item: tuple[Run, int]) -> dict[str, Any]:
        (label, trainer, cpus, preset), seed = item
        if trainer == "sb3":
            return sb3(problem, simulator, targets, cap_s, seed, settings=preset)
        return ours(problem, simulator, targets, cap_s, seed, cpus=cpus,
                    hyperparameters={"rl.training.preset": preset})

    for round_ in plan:
        if on_round:
            on_round(", ".join(f"{run[0]} seed {seed}" for run, seed in round_))
        load = load_average()
        with ThreadPoolExecutor(len(round_)) as pool:
            for (run, seed), result in zip(round_, pool.map(one, round_), strict=True):
                result.update(seed=seed, load_average=load, side_by_side=len(round_))
                results["runs"].setdefault(run[0], []).append(result)
    return results
