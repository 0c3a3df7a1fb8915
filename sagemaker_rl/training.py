"""Training: one RLlib PPO run from a JobConfig, with stop criteria, checkpoints and resume.

The loop prints the reward lines (metrics.py) and one progress line per iteration; everything
else RLlib and Ray say goes to the job's log file. Checkpoints carry the job's own counters, so
a job killed at any point continues from its last checkpoint with the same budget. A job fails
with its reason, never hangs: resources are checked before Ray starts, a non-finite return or loss
is a divergence, a watchdog ends a job without progress, and an env runner's crash is reported by
the exception that ended it.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagemaker_rl import metrics, ray_session
from sagemaker_rl.contract import JobPaths, driver_cpus
from sagemaker_rl.errors import JobError, UserError
from sagemaker_rl.hyperparameters import GSDE_KEY, PPO_PREFIX, JobConfig, StopCriteria
from sagemaker_rl.problems import PROBLEMS

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint_"
JOB_STATE_FILE = "job_state.json"  # written last: a checkpoint without it is incomplete
MODULE_ID = "default_policy"
LOG_STD_PARAMETER = "pi.log_std"  # the free log std of RLlib's default PPO module
LEARNER_TORCH_THREADS = 1  # intra-op threads of the learner (see build_algorithm)
# The reward lines' mean, max and min are over the last 100 finished episodes (as the old API stack
# and Stable-Baselines3 report), whichever iterations they finished in; RLlib 2.60 reports each
# iteration's own episodes only, and nothing when none finished.
EPISODES_PER_MEAN = 100
# Learner statistics kept in progress.csv and TensorBoard (RLlib 2.60 result keys).
LEARNER_STATS = ("policy_loss", "vf_loss", "mean_kl_loss", "entropy", "curr_kl_coeff",
                 "default_optimizer_learning_rate")
LOSSES = ("total_loss", "policy_loss", "vf_loss")  # a non-finite one means the run diverged


@dataclass
class JobState:
    """Counters that must survive a restart (RLlib restarts its time counter at 0 on restore)."""

    training_iteration: int = 0
    timesteps_total: int = 0
    time_total_s: float = 0.0
    kl_coeff: float | None = None  # PPO's adaptive KL coefficient: RLlib does not checkpoint it
    kl_coeff_setting: float | None = None  # the rl.training.config.kl_coeff it adapted from (see _restore)
    best_reward: float | None = None
    # [mean, episodes, max, min] of the newest iterations that finished >= EPISODES_PER_MEAN episodes
    recent_episodes: list[list[float]] = field(default_factory=list)
    last_reward: float | None = None  # the reward line's mean at the checkpoint (for the stop check on resume)
    # The policy's parameter shapes at the checkpoint: RLlib restores a state of another network without a
    # word (the first update then fails on a tensor size), so a resume compares them first (see _restore).
    network: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Progress:
    """What one iteration reported, in our names."""

    training_iteration: int
    timesteps_total: int
    time_total_s: float
    episode_reward_mean: float | None
    episode_reward_max: float | None
    episode_reward_min: float | None
    steps_this_iter: int
    time_this_iter_s: float
    episodes_this_iter: int
    learner: dict[str, float]


def env_runners_for(cpus: int, *, driver_cpus: int = 0) -> int:
    """Remote env runners (one CPU each) for a job with `cpus` CPUs.

    When the driver holds no CPU in Ray (Ray of its own, or a tuning run's shared instance): one per
    CPU, none on one CPU (sampling in the driver); sampling and learning alternate, so the driver's
    learner shares the runners' cores. When it already holds `driver_cpus` of them (a Ray Job on a
    shared cluster, `contract.DRIVER_CPUS_ENV`), the runners get the rest, so that the job holds
    exactly `cpus` and trials sharing a node never oversubscribe it.
    """
    if driver_cpus:
        return max(0, cpus - driver_cpus)
    return cpus if cpus >= 2 else 0


def check_resources(job: JobConfig, *, cpus: int, gpus: int | None = None) -> None:
    """UserError, with the numbers, when the job asks for more CPUs or GPUs than it has (`gpus` None: ask torch).

    Ray would otherwise wait for the resources forever (an env runner actor stays pending).
    """
    ppo = job.ppo
    held = driver_cpus()  # CPUs of the share the driver already holds in a shared cluster
    runners = ppo.get("num_env_runners", env_runners_for(cpus, driver_cpus=held))
    learners = ppo.get("num_learners", 0)
    cpus_per_learner = ppo.get("num_cpus_per_learner", "auto")
    cpus_per_learner = 1 if cpus_per_learner == "auto" else cpus_per_learner
    cpus_per_runner = ppo.get("num_cpus_per_env_runner", 1)
    needed = runners * cpus_per_runner + learners * cpus_per_learner
    key = "rl.training.config."
    if needed > cpus - held:
        driver = f", {held} of them held by its driver" if held else ""
        raise UserError(f"the job asks for {needed:g} CPUs ({key}num_env_runners={runners} x "
                        f"{key}num_cpus_per_env_runner={cpus_per_runner:g} + {key}num_learners={learners} x "
                        f"{key}num_cpus_per_learner={cpus_per_learner:g}) but has {cpus} (SM_NUM_CPUS or its "
                        f"CPU affinity{driver}): lower those values, or give the job more CPUs")
    gpus_per_runner, gpus_per_learner = ppo.get("num_gpus_per_env_runner", 0), ppo.get("num_gpus_per_learner", 0)
    gpus_needed = runners * gpus_per_runner + max(learners, 1) * gpus_per_learner
    if gpus_needed > 0 and gpus is None:
        gpus = available_gpus()
    if gpus is not None and gpus_needed > gpus:
        raise UserError(f"the job asks for {gpus_needed:g} GPUs ({key}num_gpus_per_env_runner={gpus_per_runner:g}, "
                        f"{key}num_gpus_per_learner={gpus_per_learner:g}) but this machine has {gpus}: set them "
                        "to 0, or run on a GPU instance")


def available_gpus() -> int:
    """GPUs torch can see (0 on the CPU image)."""
    import torch

    return int(torch.cuda.device_count())


def env_name(job: JobConfig) -> str:
    return f"sagemaker_rl-{job.problem}-{job.simulator}"


def build_ppo_config(job: JobConfig, *, cpus: int) -> Any:
    """PPOConfig for `job` (our config is the source; PPOConfig is the output format)."""
    from ray.rllib.algorithms.ppo import PPOConfig

    from sagemaker_rl.env_runner import SeededEnvRunner

    _quiet_ray_loggers()
    ppo = dict(job.ppo)
    ppo.setdefault("num_env_runners", env_runners_for(cpus, driver_cpus=driver_cpus()))
    ppo.setdefault("num_cpus_per_env_runner", 1)  # env_runners_for counts one CPU a runner
    if job.num_envs:  # the job's copies split over its runners (rounded up), or all in the driver
        ppo["num_envs_per_env_runner"] = -(-job.num_envs // max(ppo["num_env_runners"], 1))
    model_config = ppo.pop("model_config", {})
    batch = ppo.pop("train_batch_size_per_learner")
    # The old stack's `observation_filter` is a connector on the new one; its running statistics
    # are env-runner state: merged across runners each iteration and saved in every checkpoint.
    observation_filter = ppo.pop("observation_filter", "NoFilter")
    config = (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .framework("torch")
        .environment(env_name(job), env_config={"problem": job.problem, "simulator": job.simulator})
        # Seeded from debugging(seed=...) so that no two env copies share a seed (RLlib's runners do).
        .env_runners(env_runner_cls=SeededEnvRunner)
        .training(train_batch_size_per_learner=batch)
        .rl_module(model_config=model_config)
        .debugging(log_level="ERROR", seed=job.seed)
        # Actors without restarts: no "max_restarts > 0" noise, and a broken env fails the job
        # with its own error instead of being retried forever.
        .fault_tolerance(restart_failed_env_runners=False)
        .reporting(metrics_num_episodes_for_smoothing=100)
    )
    if observation_filter == "MeanStdFilter":
        config.env_runners(env_to_module_connector=mean_std_filter)
    if job.gsde_resample_steps is not None:
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from sagemaker_rl.gsde import RESAMPLE_KEY, GsdePPOTorchRLModule

        config.rl_module(rl_module_spec=RLModuleSpec(module_class=GsdePPOTorchRLModule),
                         model_config={**model_config, RESAMPLE_KEY: job.gsde_resample_steps})
    # The env's actions come from our connector (one array op for all vector copies; RLlib's does
    # each copy apart): it takes RLlib's two settings, and RLlib's own connector is turned off.
    actions = {key: ppo.pop(key, getattr(config, key)) for key in ("normalize_actions", "clip_actions")}
    config.env_runners(module_to_env_connector=functools.partial(unsquash_clip_actions, **actions))
    config.update_from_dict({**ppo, "normalize_actions": False, "clip_actions": False})
    try:
        config.validate()
    except (ValueError, TypeError) as error:
        raise UserError(f"RLlib rejected the PPO settings: {str(error).strip().splitlines()[0]}") from None
    return config


def mean_std_filter(env: Any = None, spaces: Any = None, device: Any = None) -> Any:
    """The observation filter connector (a module-level function: env runners unpickle it by name)."""
    from sagemaker_rl.connectors import MeanStdFilter

    return MeanStdFilter()


def unsquash_clip_actions(env: Any = None, spaces: Any = None, device: Any = None, *, normalize_actions: bool,
                          clip_actions: bool) -> Any:
    """The env-actions connector, with RLlib's `normalize_actions` and `clip_actions` (see mean_std_filter)."""
    from sagemaker_rl.connectors import UnsquashClipActions

    return UnsquashClipActions(normalize_actions=normalize_actions, clip_actions=clip_actions)


def train(
    job: JobConfig, paths: JobPaths, *, cpus: int, on_built: Callable[[Any], None] | None = None
) -> Progress | None:
    """Run PPO until a stop criterion is met; returns the last iteration's progress.

    A job whose final checkpoint already meets the stop criteria (killed while it wrote model/)
    writes the model from that checkpoint without training. `on_built` is called with the
    algorithm once it is built (a multi-host job reports where its env runners run).
    """
    paths.make_dirs()
    check_resources(job, cpus=cpus)
    config = build_ppo_config(job, cpus=cpus)
    state, checkpoint = latest_checkpoint(paths.checkpoints)
    finished = _stop_reason(job.stop, state, state.last_reward)
    if finished and _model_written(paths, state):
        raise UserError(f"the checkpoint in {checkpoint} already meets the stop criteria "
                        f"({finished}) and model/ holds its model: raise a rl.training.stop.* value "
                        "or empty the checkpoints directory to train again")
    with ray_session.Watchdog(job.stall_timeout_s, paths) as watchdog:
        start_ray(cpus)
        logger.info("Ray session directory: %s", ray_session.session_dir())
        try:
            algo = build_algorithm(config, job)
            try:
                if on_built is not None:
                    on_built(algo)
                if checkpoint is not None:
                    _restore(algo, checkpoint, state, job)
                    print(f"Resumed from {checkpoint.name}: iteration {state.training_iteration}, "
                          f"{state.timesteps_total:,} env steps, {state.time_total_s:.0f} s", flush=True)
                elif job.initial_log_std is not None:
                    _set_initial_log_std(algo, job.initial_log_std, gsde=job.gsde_resample_steps is not None)
                if finished:
                    print(f"Stopped: {finished} (at the last checkpoint; writing the model).", flush=True)
                    _write_model(algo, job, paths, state, None)
                    return None
                return _loop(algo, job, paths, state, watchdog)
            finally:
                algo.stop()
        except Exception as error:
            cause = ray_session.env_runner_cause(error)
            if cause is None:
                raise
            raise JobError(f"an env runner failed: {cause}") from error
        finally:
            stop_ray()


def _loop(
    algo: Any, job: JobConfig, paths: JobPaths, state: JobState, watchdog: ray_session.Watchdog
) -> Progress | None:
    time_offset = state.time_total_s
    sigterm = _SigtermFlag()
    last: Progress | None = None
    with _ProgressLog(paths.intermediate, after_iteration=state.training_iteration) as progress_log:
        while True:
            result = algo.train()
            watchdog.kick()
            diverged = _divergence(result)
            last = _over_recent_episodes(_progress(result, time_offset), state)
            if diverged:
                print(metrics.diverged_line(), flush=True)
                raise JobError(f"diverged: {diverged} at iteration {last.training_iteration} "
                               f"({last.timesteps_total:,} env steps): lower rl.training.config.lr, set "
                               "rl.training.config.grad_clip, or check the env's rewards")
            state.training_iteration = last.training_iteration
            state.timesteps_total = last.timesteps_total
            state.time_total_s = last.time_total_s
            state.kl_coeff_setting = job.ppo.get("kl_coeff")
            state.last_reward = last.episode_reward_mean
            if last.episode_reward_mean is not None:
                best = -math.inf if state.best_reward is None else state.best_reward
                state.best_reward = max(last.episode_reward_mean, best)
            _report(job, last, state)
            progress_log.write(last)
            reason = _stop_reason(job.stop, state, last.episode_reward_mean)
            if reason or sigterm.raised:
                _save_checkpoint(algo, paths.checkpoints, state, keep=job.keep_checkpoints)
                if sigterm.raised:
                    raise RuntimeError("the job received SIGTERM; a checkpoint was saved, rerun it to resume")
                print(f"Stopped: {reason}.", flush=True)
                _write_model(algo, job, paths, state, last)
                return last
            if state.training_iteration % job.checkpoint_freq == 0:
                _save_checkpoint(algo, paths.checkpoints, state, keep=job.keep_checkpoints)


def _divergence(result: dict[str, Any]) -> str:
    """What became NaN or infinity in an iteration's result ('' if nothing did).

    A missing mean is no episode finished yet; a present but non-finite one is a diverged return.
    """
    mean = result.get("env_runners", {}).get("episode_return_mean")
    if isinstance(mean, int | float) and not math.isfinite(mean):
        return f"{metrics.EPISODE_REWARD_MEAN} is {mean}"
    learner = result.get("learners", {}).get(MODULE_ID, {})
    for name in LOSSES:
        value = learner.get(name)
        if isinstance(value, int | float) and not math.isfinite(value):
            return f"the learner's {name} is {value}"
    return ""


def _report(job: JobConfig, progress: Progress, state: JobState) -> None:
    for line in metrics.format_lines(vars(progress)):
        print(line)
    reward = "n/a (no episode finished)" if progress.episode_reward_mean is None \
        else f"{progress.episode_reward_mean:.2f}"
    best = "" if state.best_reward is None else f" (best {state.best_reward:.2f})"
    rate = progress.steps_this_iter / max(progress.time_this_iter_s, 1e-9)
    print(f"[{job.problem}] iter {progress.training_iteration} | {progress.timesteps_total:,} steps | "
          f"{rate:,.0f} steps/s | reward {reward}{best} | {progress.time_total_s:.0f} s", flush=True)


def _stop_reason(stop: StopCriteria, state: JobState, reward: float | None) -> str:
    if stop.episode_reward_mean is not None and reward is not None and reward >= stop.episode_reward_mean:
        return f"episode_reward_mean {reward:.2f} >= {stop.episode_reward_mean:g}"
    if stop.time_total_s is not None and state.time_total_s >= stop.time_total_s:
        return f"time_total_s {state.time_total_s:.0f} >= {stop.time_total_s:g}"
    if stop.timesteps_total is not None and state.timesteps_total >= stop.timesteps_total:
        return f"timesteps_total {state.timesteps_total} >= {stop.timesteps_total}"
    if stop.training_iteration is not None and state.training_iteration >= stop.training_iteration:
        return f"training_iteration {state.training_iteration} >= {stop.training_iteration}"
    return ""


def _progress(result: dict[str, Any], time_offset: float) -> Progress:
    runners = result.get("env_runners", {})
    learner = result.get("learners", {}).get(MODULE_ID, {})

    def finite(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    return Progress(
        training_iteration=int(result["training_iteration"]),
        timesteps_total=int(runners.get("num_env_steps_sampled_lifetime")
                            or result.get("num_env_steps_sampled_lifetime") or 0),
        time_total_s=time_offset + float(result["time_total_s"]),
        episode_reward_mean=finite(runners.get("episode_return_mean")),
        episode_reward_max=finite(runners.get("episode_return_max")),
        episode_reward_min=finite(runners.get("episode_return_min")),
        steps_this_iter=int(runners.get("num_env_steps_sampled", 0)),
        time_this_iter_s=float(result.get("time_this_iter_s", 0.0)),
        episodes_this_iter=int(runners.get("num_episodes", 0)),
        learner={name: float(learner[name]) for name in LEARNER_STATS if finite(learner.get(name)) is not None},
    )


def _over_recent_episodes(progress: Progress, state: JobState) -> Progress:
    """`progress` with mean, max and min over the last EPISODES_PER_MEAN episodes (kept in `state`)."""
    mean = progress.episode_reward_mean
    if mean is not None and progress.episodes_this_iter > 0:
        window = state.recent_episodes
        high, low = progress.episode_reward_max, progress.episode_reward_min
        window.append([mean, progress.episodes_this_iter, mean if high is None else high, mean if low is None else low])
        while sum(entry[1] for entry in window[1:]) >= EPISODES_PER_MEAN:
            window.pop(0)
    if not state.recent_episodes:
        return progress
    weighted_sum, weight_left = 0.0, float(EPISODES_PER_MEAN)
    for entry_mean, count, _, _ in reversed(state.recent_episodes):  # the oldest counts only in part
        weight = min(count, weight_left)
        weighted_sum += entry_mean * weight
        weight_left -= weight
    progress.episode_reward_mean = weighted_sum / (EPISODES_PER_MEAN - weight_left)
    progress.episode_reward_max = max(entry[2] for entry in state.recent_episodes)
    progress.episode_reward_min = min(entry[3] for entry in state.recent_episodes)
    return progress


class _ProgressLog:
    """progress.csv and TensorBoard event files in output/intermediate (appended across restarts)."""

    COLUMNS = ("training_iteration", "timesteps_total", "time_total_s", "episode_reward_mean",
               "episode_reward_max", "episode_reward_min", "steps_this_iter", "time_this_iter_s",
               "episodes_this_iter", *LEARNER_STATS)

    def __init__(self, directory: Path, *, after_iteration: int = 0) -> None:
        self._csv_path = directory / "progress.csv"
        self._tensorboard_dir = directory / "tensorboard"
        self._after = after_iteration  # the checkpoint's iteration: later rows were lost with a kill and rerun

    def __enter__(self) -> _ProgressLog:
        from tensorboardX import SummaryWriter

        self._drop_rows_after(self._after)
        new = not self._csv_path.exists()
        self._csv_file = self._csv_path.open("a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=self.COLUMNS)
        if new:
            self._csv.writeheader()
        self._tensorboard = SummaryWriter(str(self._tensorboard_dir))
        return self

    def _drop_rows_after(self, iteration: int) -> None:
        """Keep each iteration once: the rows past the resumed checkpoint are written again by the rerun."""
        if not self._csv_path.exists():
            return
        with self._csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        kept = [row for row in rows if row.get("training_iteration", "").isdigit()
                and int(row["training_iteration"]) <= iteration]
        if len(kept) == len(rows):
            return
        partial = self._csv_path.with_name(f".partial-{self._csv_path.name}")
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        partial.replace(self._csv_path)

    def write(self, progress: Progress) -> None:
        row = {name: value for name, value in vars(progress).items() if name != "learner"}
        row.update(progress.learner)
        self._csv.writerow({name: ("" if row.get(name) is None else row[name]) for name in self.COLUMNS})
        self._csv_file.flush()
        step = progress.timesteps_total
        for name, value in row.items():
            if isinstance(value, int | float) and name != "timesteps_total":
                group = "learner" if name in LEARNER_STATS else "ray/tune"
                self._tensorboard.add_scalar(f"{group}/{name}", value, step)
        self._tensorboard.flush()

    def __exit__(self, *exc: object) -> None:
        self._csv_file.close()
        self._tensorboard.close()


class _SigtermFlag:
    """SIGTERM (SageMaker's stop, a spot interruption) finishes the iteration and checkpoints."""

    def __init__(self) -> None:
        self.raised = False
        if sys.platform != "win32" and _is_main_thread():
            signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        logger.warning("SIGTERM received: checkpointing after this iteration")
        self.raised = True


def _is_main_thread() -> bool:

    return threading.current_thread() is threading.main_thread()


# --- Ray and the algorithm -------------------------------------------------------------------

def start_ray(cpus: int) -> None:
    """Start Ray for a job with `cpus` CPUs, or connect to the cluster at $RAY_ADDRESS; Ray's loggers quiet."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file, no warning
    address = os.environ.get("RAY_ADDRESS")
    if address:  # a cluster is already running (a tuning run's shared instance, Ray runner, multi-host job)
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        logger.info("connected to the Ray instance at %s", address)
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    _quiet_ray_loggers()


def _quiet_ray_loggers() -> None:
    """Ray configures its loggers on import; RLlib then warns at config time (e.g. "new API stack")."""
    for name in ("ray", "ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def stop_ray() -> None:
    """Shut Ray down; a session this job started (not a shared instance's) has its directory removed."""
    import ray

    session = ray_session.session_dir(started_here=True)
    ray.shutdown()
    if session is not None:
        ray_session.remove_session(Path(session))


def build_algorithm(config: Any, job: JobConfig, *, torch_threads: int | None = LEARNER_TORCH_THREADS) -> Any:
    """The algorithm of `config` (a PPOConfig) as a job builds it, after `start_ray`.

    Also registers the job's env, points Ray's default log directory away from ~ and sets the
    learner's torch threads (`torch_threads`; None leaves torch's default).
    """
    import ray.tune.trainable.trainable as trainable_module
    from ray.tune.registry import register_env

    from sagemaker_rl.envs import env_creator

    register_env(env_name(job), env_creator)
    # A standalone Algorithm makes an empty log dir under ~/ray_results; Ray 2.60 has no setting
    # for it, so point its default at a throwaway place (tests/test_training checks ~ stays clean).
    trainable_module.DEFAULT_STORAGE_PATH = os.path.join(_scratch_dir(), "ray_results")
    algo = config.build_algo()
    import torch

    # The learner runs in this process. One thread (`make bench`, 2 shared cores): with one per
    # core, torch's threads spin against every other busy process and reacher's learning step took
    # 45.9 s an iteration instead of 9.7 s (end to end 478 instead of 1,187 env steps/s).
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    return algo


def _scratch_dir() -> str:
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"sagemaker_rl-{os.getuid()}")


def _restore(algo: Any, checkpoint: Path, state: JobState, job: JobConfig) -> None:
    """Restore `checkpoint` into `algo`, built from `job`'s values, and make those values live.

    RLlib restores the optimizer's state with the learning rate it was saved with, and the KL
    coefficient not at all; every other PPO setting comes from the new config. The learning rate is
    set again from the config, so that a job resumed or explored with a new `lr` uses it on its first
    update. The KL coefficient continues where it adapted to when `kl_coeff` is the value it adapted
    from (a plain resume), and starts from the new `kl_coeff` when that was changed (PBT's explore:
    the new value is the point of the change, and the adapted one belongs to the old setting).
    """
    built = _network(algo)
    if state.network and state.network != built:
        changed = sorted(set(state.network).symmetric_difference(built)) or sorted(
            name for name in built if built[name] != state.network[name])
        raise UserError(f"the checkpoint in {checkpoint} holds another network than this job builds (parameters "
                        f"{', '.join(changed[:4])} differ): resume with the {PPO_PREFIX}model_config and "
                        f"{GSDE_KEY} it was trained with, or empty the checkpoints directory to start afresh")
    algo.restore_from_path(str(checkpoint / "algorithm"))
    configured = job.ppo.get("kl_coeff")
    same_setting = state.kl_coeff_setting is None or state.kl_coeff_setting == configured
    kl_coeff = state.kl_coeff if state.kl_coeff is not None and same_setting else None
    timestep = state.timesteps_total

    def make_live(learner: Any) -> None:
        for optimizer, schedule in learner._optimizer_lr_schedules.items():
            learner._set_optimizer_lr(optimizer, lr=schedule.update(timestep=timestep))
        if kl_coeff is not None:
            learner.curr_kl_coeffs_per_module[MODULE_ID].data.fill_(kl_coeff)

    algo.learner_group.foreach_learner(make_live)


def _network(algo: Any) -> dict[str, list[int]]:
    """The shape of every parameter of the learner's policy module, by name."""
    def shapes(learner: Any) -> dict[str, list[int]]:
        return {name: list(value.shape) for name, value in learner.module[MODULE_ID].named_parameters()}

    return next(iter(algo.learner_group.foreach_learner(shapes))).get()


def _live_kl_coeff(algo: Any) -> float:
    """The KL coefficient the learner's next update uses (the reported one is the last update's)."""
    def read(learner: Any) -> float:
        return float(learner.curr_kl_coeffs_per_module[MODULE_ID])

    return next(iter(algo.learner_group.foreach_learner(read))).get()


def _set_initial_log_std(algo: Any, log_std: float, *, gsde: bool) -> None:
    """Start the policy's free log std at `log_std` (RLlib starts it at 0: a std of 1 on [-1, 1]).

    With gSDE it is the log std of every entry of the noise matrices (SB3's `log_std_init`).
    """
    from sagemaker_rl import gsde as gsde_module

    name = gsde_module.LOG_STD_PARAMETER if gsde else LOG_STD_PARAMETER

    def set_log_std(learner: Any) -> None:
        parameters = dict(learner.module[MODULE_ID].named_parameters())
        assert name in parameters, "the parser allows initial_log_std with free_log_std or gSDE only"
        parameters[name].data.fill_(log_std)

    algo.learner_group.foreach_learner(set_log_std)
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)


def _observation_filter_stats(algo: Any) -> tuple[Any, Any, float] | None:
    """(mean, std, clip) of the algorithm's observation filter, as its checkpoint holds them; None without one.

    The statistics are the ones merged across env runners after the last iteration.
    """
    from ray.rllib.core import COMPONENT_ENV_RUNNER, COMPONENT_ENV_TO_MODULE_CONNECTOR
    from ray.rllib.utils.filter import RunningStat

    state = algo.get_state(components=[COMPONENT_ENV_RUNNER, COMPONENT_ENV_TO_MODULE_CONNECTOR])
    # With a local env runner the connector is its part; without one the algorithm holds it.
    connectors = state.get(COMPONENT_ENV_RUNNER, state).get(COMPONENT_ENV_TO_MODULE_CONNECTOR, {})
    if "MeanStdFilter" not in connectors:
        return None
    filter_state = connectors["MeanStdFilter"][None]  # one agent
    (stats,) = filter_state["running_stats"]
    running = RunningStat.from_state(stats)
    return running.mean, running.std, float(filter_state["clip_by_value"])


# --- checkpoints and the model ---------------------------------------------------------------

def latest_checkpoint(directory: Path) -> tuple[JobState, Path | None]:
    """The newest complete checkpoint in `directory` and its job state (a fresh state and None without one)."""
    if directory.is_dir():
        for candidate in sorted(directory.glob(f"{CHECKPOINT_PREFIX}*"), reverse=True):
            state_file = candidate / JOB_STATE_FILE
            if state_file.is_file():
                return JobState(**json.loads(state_file.read_text())), candidate
            logger.warning("ignoring incomplete checkpoint %s (no %s)", candidate, JOB_STATE_FILE)
    return JobState(), None


def _save_checkpoint(algo: Any, directory: Path, state: JobState, *, keep: int) -> Path:
    final = directory / f"{CHECKPOINT_PREFIX}{state.training_iteration:06d}"
    partial = directory / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    algo.save_to_path(str(partial / "algorithm"))
    state.kl_coeff = _live_kl_coeff(algo)
    state.network = _network(algo)
    (partial / JOB_STATE_FILE).write_text(json.dumps(vars(state), indent=2))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)  # atomic: a kill leaves either the old set or the new checkpoint
    if keep > 0:
        for old in sorted(directory.glob(f"{CHECKPOINT_PREFIX}*"))[:-keep]:
            shutil.rmtree(old)
    return final


RESULT_FILE = "result.json"  # written last to model/: with it, the model of its iteration is complete


def _model_written(paths: JobPaths, state: JobState) -> bool:
    """model/ holds the complete model of the checkpoint `state` came from."""
    try:
        result = json.loads((paths.model / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(result, dict) and result.get("training_iteration") == state.training_iteration


def _write_model(algo: Any, job: JobConfig, paths: JobPaths, state: JobState, last: Progress | None) -> None:
    """checkpoint/, policy.onnx, params.json, then result.json (`last`: the final iteration; None: from `state`)."""
    from sagemaker_rl.export import export_onnx
    from sagemaker_rl.hyperparameters import to_hyperparameters

    checkpoint_dir = paths.model / "checkpoint"
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    algo.save_to_path(str(checkpoint_dir))
    problem_env = PROBLEMS[job.problem].envs[job.simulator]
    export_onnx(algo.get_module(MODULE_ID), paths.model / "policy.onnx",
                observation_filter=_observation_filter_stats(algo))
    params = {"problem": job.problem, "simulator": job.simulator, "env_id": problem_env.env_id,
              "max_episode_steps": problem_env.max_episode_steps, "seed": job.seed,
              "hyperparameters": to_hyperparameters(job), "command": sys.argv}
    _write_atomically(paths.model / "params.json", json.dumps(params, indent=2, default=str) + "\n")
    progress = vars(last) if last is not None else {
        "training_iteration": state.training_iteration, "timesteps_total": state.timesteps_total,
        "time_total_s": state.time_total_s, "episode_reward_mean": state.last_reward}
    summary = {**progress, "best_episode_reward_mean": state.best_reward}
    _write_atomically(paths.model / RESULT_FILE, json.dumps(summary, indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".partial-{path.name}")
    partial.write_text(text)
    partial.replace(path)
