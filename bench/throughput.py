"""Benchmarks 2 and 3: a PPO job's env steps/s, sampling only and end to end, ours vs RLlib's defaults.

    .venv/bin/python bench/throughput.py --setting ours|rllib [--problem reacher] [--simulator roboschool]
        [--iterations 3] [--hp KEY=VALUE ...]

Runs in its own process (the parent, bench/run.py, starts one per setting). The algorithm is built
as the job builds it: `ours` goes through sagemaker_rl's hyperparameter parser and build_ppo_config
(the job's defaults; --hp adds job hyperparameters), `rllib` is `PPOConfig().environment(env)` with
nothing else changed (what a user starts from; only the log level is lowered). Then
`algo.train()` runs --iterations times after one warm-up iteration.

Timing, by perf_counter in this process (RLlib's own timers are moving averages, unfit here):
- sampling: the call PPO's training_step makes to collect its batch from the env runners
  (`synchronous_parallel_sample`) is wrapped and timed: env steps / seconds inside it;
- end to end: env steps / seconds of each `algo.train()` call (sampling, learning, weight sync).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from common import emit

from sagemaker_rl.contract import decode_value


def _build(setting: str, problem: str, simulator: str, hyperparameters: dict[str, Any], cpus: int,
           torch_threads: int | None) -> Any:
    from sagemaker_rl.job import ppo_config, ray_session
    from sagemaker_rl.job.hyperparameters import parse_hyperparameters

    job = parse_hyperparameters({"rl.env.simulator": simulator, **hyperparameters}, problem)
    if setting == "ours":
        config = ppo_config.build_ppo_config(job, cpus=cpus)
        threads = torch_threads or ppo_config.LEARNER_TORCH_THREADS
    else:
        from ray.rllib.algorithms.ppo import PPOConfig

        config = (PPOConfig().environment(ppo_config.env_name(job), env_config=dataclasses.asdict(job.env))
                  .debugging(log_level="ERROR"))
        threads = torch_threads  # None: torch's default, as a user starting from RLlib gets
    ray_session.start_ray(cpus)  # exactly as the job does: the same Ray start and algorithm build
    return ppo_config.build_algorithm(config, job, torch_threads=threads)


class _SampleTimer:
    """Wraps PPO's batch collection call and sums the seconds spent in it."""

    def __init__(self) -> None:
        import ray.rllib.algorithms.ppo.ppo as ppo_module

        self.seconds = 0.0
        self._module = ppo_module
        self._original = ppo_module.synchronous_parallel_sample

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return self._original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        ppo_module.synchronous_parallel_sample = timed


def measure(setting: str, problem: str, simulator: str, iterations: int, hyperparameters: dict[str, Any],
            cpus: int, torch_threads: int | None = None) -> dict[str, Any]:
    import torch

    from sagemaker_rl.job import ray_session

    timer = _SampleTimer()
    build_start = time.perf_counter()
    algo = _build(setting, problem, simulator, hyperparameters, cpus, torch_threads)
    build_s = time.perf_counter() - build_start
    config = algo.config
    rows = []
    try:
        for _ in range(iterations + 1):
            timer.seconds = 0.0
            start = time.perf_counter()
            result = algo.train()
            seconds = time.perf_counter() - start
            rows.append({"steps": int(result["env_runners"]["num_env_steps_sampled"]), "train_s": seconds,
                         "sample_s": timer.seconds})
    finally:
        algo.stop()
        ray_session.stop_ray()
    steady = rows[1:]  # the first iteration pays for warm-up (first episodes, torch compile paths)
    steps = sum(row["steps"] for row in steady)
    sample_s = sum(row["sample_s"] for row in steady)
    train_s = sum(row["train_s"] for row in steady)
    runners = config.num_env_runners
    return {
        "setting": setting, "problem": problem, "simulator": simulator, "cpus": cpus,
        "num_env_runners": runners, "num_envs_per_env_runner": config.num_envs_per_env_runner,
        "sampling_cores": max(runners, 1),
        "train_batch_size_per_learner": config.train_batch_size_per_learner, "num_epochs": config.num_epochs,
        "minibatch_size": config.minibatch_size, "batch_mode": config.batch_mode,
        "fcnet_hiddens": config.model_config.get("fcnet_hiddens"),
        "torch_threads": torch.get_num_threads(), "build_s": round(build_s, 1),
        "iterations": [{k: round(v, 3) for k, v in row.items()} for row in rows],
        "sampling_steps_per_s": round(steps / sample_s), "end_to_end_steps_per_s": round(steps / train_s),
        "learning_s_per_iteration": round((train_s - sample_s) / len(steady), 2),
    }


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=("ours", "rllib"), default="ours")
    parser.add_argument("--problem", default="reacher")
    parser.add_argument("--simulator", default="roboschool")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, help="learner threads instead of the job's (experiments)")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="job hyperparameters (ours)")
    args = parser.parse_args()
    hyperparameters = {key: decode_value(value) for key, _, value in (item.partition("=") for item in args.hp)}
    cpus = len(os.sched_getaffinity(0))
    emit(measure(args.setting, args.problem, args.simulator, args.iterations, hyperparameters, cpus,
                 args.torch_threads))


if __name__ == "__main__":
    main()
