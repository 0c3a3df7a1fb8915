"""The learner's seconds per PPO update, the job's lean loop against RLlib's, on the same batches in one process.

    .venv/bin/python bench/learner.py [--problem reacher] [--simulator roboschool] [--batches 3] [--repeats 3]

Both learners are built from the job's config for the problem (its `fast` preset), one with
`rl.training.learner=lean` and one with `rllib`, with the same weights, in this process with the job's
one learner thread. `--batches` batches are sampled with the job's env runner; each learner then updates
from each batch, starting from the same state every time, lean and RLlib's in turn, `--repeats` times
(so a change in the machine's load falls on both alike). The batch is copied outside the timing: a
figure is `learner.update` alone (the learner connectors' advantages included), as the job calls it.
Run on its own or as part `learner` of bench/run.py.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time
from typing import Any

from common import emit


def measure(problem: str, simulator: str, batches: int, repeats: int) -> dict[str, Any]:
    import numpy as np
    import torch
    from ray.rllib.core.learner.training_data import TrainingData
    from ray.tune.registry import register_env

    from sagemaker_rl.job import ppo_config
    from sagemaker_rl.job.env_runner import LeanEnvRunner
    from sagemaker_rl.job.envs import env_creator
    from sagemaker_rl.job.hyperparameters import parse_hyperparameters

    torch.set_num_threads(ppo_config.LEARNER_TORCH_THREADS)
    job = parse_hyperparameters({"rl.env.simulator": simulator}, problem)
    configs = {name: ppo_config.build_ppo_config(dataclasses.replace(job, learner=name), cpus=1)
               for name in ("lean", "rllib")}
    config = configs["lean"]
    register_env(ppo_config.env_name(job), env_creator)
    runner = LeanEnvRunner(config=config, worker_index=0)
    try:
        samples = [runner.sample(num_timesteps=config.train_batch_size_per_learner, explore=True)
                   for _ in range(batches)]
        spaces = runner.get_spaces()
    finally:
        runner.stop()
    learners = {name: each.build_learner(spaces=spaces) for name, each in configs.items()}
    state = learners["lean"].get_state()
    seconds: dict[str, list[float]] = {name: [] for name in learners}
    for repeat in range(repeats):
        for number, episodes in enumerate(samples):
            for name, learner in learners.items():
                learner.set_state(state)
                training_data = TrainingData(episodes=copy.deepcopy(episodes))
                np.random.seed(repeat * batches + number)
                start = time.perf_counter()
                learner.update(training_data=training_data, timesteps={}, num_epochs=config.num_epochs,
                               minibatch_size=config.minibatch_size,
                               shuffle_batch_per_epoch=config.shuffle_batch_per_epoch)
                seconds[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "problem": problem, "simulator": simulator, "train_batch_size_per_learner": config.train_batch_size_per_learner,
        "num_epochs": config.num_epochs, "minibatch_size": config.minibatch_size,
        "fcnet_hiddens": config.model_config.get("fcnet_hiddens"), "torch_threads": torch.get_num_threads(),
        "batches": batches, "repeats": repeats, "lean_refusal": learners["lean"].lean_refusal,
        "update_s": {name: [round(value, 4) for value in values] for name, values in seconds.items()},
        "median_update_s": {name: round(value, 4) for name, value in medians.items()},
        "lean_over_rllib": round(medians["lean"] / medians["rllib"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="reacher")
    parser.add_argument("--simulator", default="roboschool")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    emit(measure(args.problem, args.simulator, args.batches, args.repeats))


if __name__ == "__main__":
    main()
