"""Benchmark 1: raw simulator steps/s, one process, random actions: the limit a trainer can reach.

    .venv/bin/python bench/raw.py [--seconds 5]

The env is the one the jobs train on (sagemaker_rl.job.envs.make_env: same wrappers, same time limit);
only env.step and the resets an episode end needs are timed.
"""

from __future__ import annotations

import time

from sagemaker_rl.job.envs import make_env
from sagemaker_rl.job.problems import PROBLEMS, SIMULATORS


def raw_rate(problem: str, simulator: str, seconds: float) -> float:
    """env.step calls per second with random actions (resets included, construction not)."""
    env = make_env(problem, simulator, seed=0)
    actions = [env.action_space.sample() for _ in range(1000)]
    for action in actions[:100]:  # warm-up: caches, first contacts
        if any(env.step(action)[2:4]):
            env.reset()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
        steps += 1
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def raw_rates(seconds: float) -> dict[str, dict[str, float]]:
    """{problem: {simulator: steps/s}} for every problem and each simulator it has an env on."""
    return {problem: {simulator: round(raw_rate(problem, simulator, seconds))
                      for simulator in SIMULATORS if simulator in row.envs} for problem, row in PROBLEMS.items()}


if __name__ == "__main__":
    import argparse

    from common import emit

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed stepping per problem and simulator")
    emit(raw_rates(parser.parse_args().seconds))
