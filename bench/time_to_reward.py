"""Benchmark 4: wall time until the mean return reaches fixed targets, our job vs Stable-Baselines3 PPO.

Both run as a user runs them, each a fresh process on the whole machine, one after the other:
our job is `entrypoints/train-<problem>.py` under a throwaway SAGEMAKER_BASE_DIR with its defaults
(stop at the highest target); SB3 is bench/sb3_ppo.py with SB3's PPO defaults on the same env (and
one torch thread, its faster setting here). The clock starts when the process is started (imports,
Ray start-up and env construction included), each reward line is timed when it arrives, and both
get the same wall-time cap. The mean return is over the last 100 episodes in both. One seed each:
a single run is a sample, not a distribution.
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
             wall_s: float) -> dict[str, Any]:
    reached = {}
    for target in targets:
        hit = next(((t, steps) for t, steps, reward in curve if reward >= target), None)
        reached[str(target)] = None if hit is None else {"seconds": round(hit[0], 1), "env_steps": hit[1]}
    best = max((reward for _, _, reward in curve), default=None)
    return {"reached": reached, "best_mean_return": best, "cap_s": cap_s, "wall_s": round(wall_s, 1),
            "env_steps": curve[-1][1] if curve else 0,
            "curve": [[round(t, 1), steps, round(reward, 3)] for t, steps, reward in curve]}


def ours(problem: str, simulator: str, targets: list[float], cap_s: float, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as base:
        config = Path(base) / "input" / "config"
        config.mkdir(parents=True)
        hyperparameters = {"rl.env.simulator": simulator, "rl.training.seed": seed,
                           "rl.training.stop.episode_reward_mean": max(targets),
                           "rl.training.stop.time_total_s": cap_s, "rl.training.checkpoint_freq": 1000}
        (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hyperparameters.items()}))
        lines, code = _timed_lines([sys.executable, str(REPO / "entrypoints" / f"train-{problem}.py")],
                                   child_env(SAGEMAKER_BASE_DIR=base, HOME=base), cap_s, base)
    # One record per iteration: its time is when its last reward line arrived.
    curve: list[tuple[float, int, float]] = []
    reader = metrics.RecordReader(metrics.EPISODE_REWARD_MEAN)
    for seconds, line in lines:
        record = reader.feed(line)
        if record is not None and record.value is not None and record.env_steps is not None:
            curve.append((seconds, record.env_steps, record.value))
    return {"exit_code": code, **_summary(curve, targets, cap_s, lines[-1][0] if lines else 0.0)}


def sb3(problem: str, simulator: str, targets: list[float], cap_s: float, seed: int) -> dict[str, Any]:
    command = [sys.executable, str(BENCH / "sb3_ppo.py"), "--problem", problem, "--simulator", simulator,
               "--target", str(max(targets)), "--cap-s", str(cap_s), "--seed", str(seed)]
    with tempfile.TemporaryDirectory() as base:
        lines, code = _timed_lines(command, child_env(HOME=base), cap_s, base)
    curve = []
    for seconds, line in lines:
        fields = line.split()
        if len(fields) == 3:
            try:
                curve.append((seconds, int(fields[1]), float(fields[2])))
            except ValueError:
                continue
    if code != 0 and not curve:
        raise RuntimeError(f"bench/sb3_ppo.py failed (exit {code}): {lines[-1][1] if lines else 'no output'}")
    return {"exit_code": code, **_summary(curve, targets, cap_s, lines[-1][0] if lines else 0.0)}
