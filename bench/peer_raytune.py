"""Ray Tune over RLlib PPO: the tuner a Ray user would run instead of ours, on the same job, space and budget.

    .venv/bin/python bench/peer_raytune.py --env Pendulum-v1 --budget-s 600 --train-steps 100000 --out DIR
        [--scheduler ASHA|PBT]

Each Ray Tune trial builds the job's own PPO (our parser, preset, env, observation filter and
initial log std: `sagemaker_rl.job`'s building blocks, as a user of both would write it) on one CPU,
two trials at a time, and reports the mean return over the last 100 episodes with its env steps
after every iteration, up to the user's training budget. `time_budget_s` ends the run. Schedulers:
- ASHA (asynchronous successive halving, reduction factor 3, on env steps) with Ray Tune's random search
  over the space our run searches on the target (`our_space`: our config builds it; lr log-uniform, initial log
  std uniform, gamma with 1 - gamma log-uniform, its reverse-logarithmic scaling; --config: a tuning file's);
- PBT (Ray Tune's PopulationBasedTraining, synchronous, its own exploit and explore rules) over the space and
  with the population and perturbation interval of our strategy PBT (`tuning.config.default_pbt_space`: lr,
  gamma, lambda, clip param; one member per core, at least `MIN_POPULATION`; `DEFAULT_PERTURBATION_INTERVAL`
  env steps). Every report carries a checkpoint (the job's own, `job.checkpoints`), which a member that
  exploits another restores before its new values take effect, as our job restores one.
The answer is Ray Tune's `get_best_result()` (the best last-reported value; under PBT the member's last
values), in our job's hyperparameter names, so the harness (bench/peers.py) trains it again with our job.
Last stdout line: `BENCH_RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULT_PREFIX

from sagemaker_rl.job import ENV_ID_KEY, SEED_KEY, SIMULATOR_KEY, STOP_PREFIX
from sagemaker_rl.tuning.config import DEFAULT_PERTURBATION_INTERVAL, MIN_POPULATION, load_config
from sagemaker_rl.tuning.space import CategoricalParameter, ContinuousParameter, Scaling, SearchSpace

METRIC = "episode_reward_mean"
STEPS = "env_steps"
REDUCTION_FACTOR = 3
SCHEDULERS = ("ASHA", "PBT")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help="a Gymnasium id, e.g. Pendulum-v1 (the job's generic default)")
    where.add_argument("--problem", help="a problem of ours, e.g. hopper")
    parser.add_argument("--simulator", default="roboschool", help="a problem's simulator (default: roboschool)")
    parser.add_argument("--budget-s", type=float, required=True, help="wall-clock budget of the whole run")
    parser.add_argument("--train-steps", type=int, required=True, help="the user's training budget (ASHA's max_t)")
    parser.add_argument("--cpus", type=int, default=2, help="cores; one trial per core")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default="ASHA", help="Ray Tune's scheduler (default: ASHA)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    parser.add_argument("--config", type=Path, help="a tuning file whose space both tools search (default: ours)")
    parser.add_argument("--out", type=Path, required=True, help="where Ray Tune keeps its trials")
    return parser.parse_args()


REVERSED = "@1-"  # a reverse-logarithmic parameter is searched as 1 - value, log-uniform


def our_space(args: argparse.Namespace, base: dict[str, Any]) -> SearchSpace:
    """The space our run searches on this target (with --config: that tuning file's), under ASHA or PBT as this
    run's scheduler: our own config builds it, so both tools search the same ranges."""
    overrides = {"problem": args.problem, "static": base, "strategy": args.scheduler}
    return load_config(args.config, overrides).space


def search_space(ours: SearchSpace) -> dict[str, Any]:
    """Our space `ours` in Ray Tune's terms, with a seed for each trial."""
    from ray import tune

    space: dict[str, Any] = {}
    for parameter in ours.parameters:
        if isinstance(parameter, CategoricalParameter):
            space[parameter.name] = tune.choice(list(parameter.values))
            continue
        assert isinstance(parameter, ContinuousParameter)
        low, high = parameter.min_value, parameter.max_value
        if parameter.scaling_type is Scaling.LOGARITHMIC:
            space[parameter.name] = tune.loguniform(low, high)
        elif parameter.scaling_type is Scaling.REVERSE_LOGARITHMIC:
            space[REVERSED + parameter.name] = tune.loguniform(1 - high, 1 - low)
        else:
            space[parameter.name] = tune.uniform(low, high)
    space[SEED_KEY] = tune.randint(0, 10_000)  # each trial its own seed, as our search's
    return space


def job_values(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled values in our job's names."""
    return {key.removeprefix(REVERSED): 1 - value if key.startswith(REVERSED) else value
            for key, value in params.items()}


def trial(params: dict[str, Any], *, base: dict[str, Any], problem: str | None, max_steps: int,
          checkpoints: bool) -> None:
    """One Ray Tune trial: the job's PPO with `params`, reporting after every iteration until `max_steps`; with
    `checkpoints` each report carries the job's checkpoint, and a trial given one (PBT's exploit) continues it."""
    from ray import tune

    from sagemaker_rl.job import learner, progress
    from sagemaker_rl.job.checkpoints import JobState, latest_checkpoint, restore, save_checkpoint, snapshot
    from sagemaker_rl.job.entry import job_config
    from sagemaker_rl.job.ppo_config import build_algorithm, build_ppo_config
    from sagemaker_rl.job.training import record_iteration

    job = job_config({**base, **job_values(params)}, problem)  # as the job parses it, its env's facts included
    algo = build_algorithm(build_ppo_config(job, cpus=1), job)
    state, given = JobState(), tune.get_checkpoint()
    if given is not None:
        with given.as_directory() as directory:
            state, path = latest_checkpoint(Path(directory))
            assert path is not None, f"Ray Tune handed over {directory} without a checkpoint of the job's"
            restore(algo, path, state, job)
    elif job.initial_log_std is not None:
        learner.set_initial_log_std(algo, job.initial_log_std, gsde=job.gsde_resample_steps is not None)
    time_offset = state.time_total_s
    try:
        while True:
            last = progress.over_recent_episodes(progress.read_progress(algo.train(), time_offset), state)
            record_iteration(state, last, job)  # what the job's own checkpoint carries
            reward = last.episode_reward_mean
            values = {METRIC: reward if reward is not None else float("nan"), STEPS: last.timesteps_total}
            if not checkpoints:
                tune.report(values)
            else:
                with tempfile.TemporaryDirectory() as directory:
                    save_checkpoint(algo, Path(directory), snapshot(algo, state), keep=1)
                    tune.report(values, checkpoint=tune.Checkpoint.from_directory(directory))
            if last.timesteps_total >= max_steps:
                return
    finally:
        algo.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from sagemaker_rl.job import ray_session

    base: dict[str, Any] = {ENV_ID_KEY: args.env} if args.env else {SIMULATOR_KEY: args.simulator}
    pbt = args.scheduler == "PBT"
    space = search_space(our_space(args, base))
    ray_session.start_ray(args.cpus)
    started = time.monotonic()
    try:
        trainable = tune.with_parameters(trial, base=base, problem=args.problem, max_steps=args.train_steps,
                                         checkpoints=pbt)
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=_scheduler(args, space),
                                        num_samples=max(MIN_POPULATION, args.cpus) if pbt else 100_000,
                                        search_alg=BasicVariantGenerator(random_state=args.seed),
                                        max_concurrent_trials=args.cpus, time_budget_s=args.budget_s),
            run_config=tune.RunConfig(storage_path=str(args.out.absolute()), name="ray-tune", verbose=0),
        )
        results = tuner.fit()
        return _answer(results, args.scheduler, time.monotonic() - started)
    finally:
        ray.shutdown()
        ray_session.stop_ray()


def _scheduler(args: argparse.Namespace, space: dict[str, Any]) -> Any:
    """ASHA on env steps up to the training budget, or PBT mutating every value of `space` but the seed."""
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    if args.scheduler == "ASHA":
        return ASHAScheduler(time_attr=STEPS, max_t=args.train_steps, reduction_factor=REDUCTION_FACTOR,
                             grace_period=max(1, args.train_steps // REDUCTION_FACTOR**2))
    # Synchronous: with more members than cores, asynchronous PBT pauses members to share the cores and then
    # finds no checkpoint to clone at most of its perturbations (Ray's "[pbt]: no checkpoint ... Skip exploit").
    # Every checkpoint is kept: with a limit (CheckpointConfig.num_to_keep) the one a member clones can be deleted
    # while it waits for a core, the member fails, and the synchronous population waits for it to the end.
    return PopulationBasedTraining(time_attr=STEPS, perturbation_interval=DEFAULT_PERTURBATION_INTERVAL, synch=True,
                                   hyperparam_mutations={key: value for key, value in space.items()
                                                         if key != SEED_KEY})


def _answer(results: Any, scheduler: str, wall_s: float) -> dict[str, Any]:
    """What the run found: the best trial's values in our names, and how the trials went."""
    best = results.get_best_result(metric=METRIC, mode="max", scope="last", filter_nan_and_inf=True)
    # Ray Tune creates trials ahead of the free cores: those the time budget ended before they started have no result
    steps = [result.metrics[STEPS] for result in results if result.metrics.get(STEPS)]
    tuned = {key: value for key, value in job_values(best.config).items() if key != SEED_KEY}
    finished = sum(value >= best.metrics[STEPS] for value in steps)
    return {"tool": f"ray-tune-{scheduler.lower()}", "job_hyperparameters": tuned,
            "best_value": best.metrics.get(METRIC), "best_env_steps": best.metrics.get(STEPS), "trials": len(steps),
            "trials_created": len(results), "trials_at_max": finished, "errors": len(results.errors),
            "wall_s": round(wall_s, 1)}


def main() -> int:
    args = _arguments()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())
    result = run(args)
    result["stop"] = {STOP_PREFIX + "timesteps_total": args.train_steps}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
