"""The PPO algorithm a job trains: its JobConfig as RLlib's PPOConfig, checked against the job's CPUs and GPUs.

Our config is the source and PPOConfig the output format: every value the project relies on is set
here from the job's config, and RLlib's validation runs before any Ray process starts.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

from sagemaker_rl.contract import driver_cpus
from sagemaker_rl.errors import UserError
from sagemaker_rl.job import ray_session
from sagemaker_rl.job.hyperparameters import JobConfig
from sagemaker_rl.job.keys import ppo_key
from sagemaker_rl.job.progress import EPISODES_PER_MEAN

LEARNER_TORCH_THREADS = 1  # intra-op threads of the learner (see build_algorithm)
CPUS_PER_RUNNER = 1  # what env_runners_for counts, unless num_cpus_per_env_runner says otherwise


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
    cpus_per_runner = ppo.get("num_cpus_per_env_runner", CPUS_PER_RUNNER)
    needed = runners * cpus_per_runner + learners * cpus_per_learner
    if needed > cpus - held:
        driver = f", {held} of them held by its driver" if held else ""
        raise UserError(f"the job asks for {needed:g} CPUs ({ppo_key('num_env_runners')}={runners} x "
                        f"{ppo_key('num_cpus_per_env_runner')}={cpus_per_runner:g} + "
                        f"{ppo_key('num_learners')}={learners} x {ppo_key('num_cpus_per_learner')}="
                        f"{cpus_per_learner:g}) but has {cpus} (SM_NUM_CPUS or its CPU affinity{driver}): lower "
                        "those values, or give the job more CPUs")
    gpus_per_runner, gpus_per_learner = ppo.get("num_gpus_per_env_runner", 0), ppo.get("num_gpus_per_learner", 0)
    gpus_needed = runners * gpus_per_runner + max(learners, 1) * gpus_per_learner
    if gpus_needed > 0 and gpus is None:
        gpus = available_gpus()
    if gpus is not None and gpus_needed > gpus:
        raise UserError(f"the job asks for {gpus_needed:g} GPUs ({ppo_key('num_gpus_per_env_runner')}="
                        f"{gpus_per_runner:g}, {ppo_key('num_gpus_per_learner')}={gpus_per_learner:g}) but this "
                        f"machine has {gpus}: set them to 0, or run on a GPU instance")


def available_gpus() -> int:
    """GPUs torch can see (0 on the CPU image)."""
    import torch

    return int(torch.cuda.device_count())


def env_name(job: JobConfig) -> str:
    """The name the job's env is registered under with Ray Tune's registry."""
    return f"sagemaker_rl-{job.env.label}"


def build_ppo_config(job: JobConfig, *, cpus: int) -> Any:
    """PPOConfig for `job` (our config is the source; PPOConfig is the output format)."""
    from ray.rllib.algorithms.ppo import PPOConfig

    ray_session.quiet_ray_loggers()  # after the import: Ray sets its loggers' levels when first imported
    ppo = _ppo_values(job, cpus=cpus)
    model_config = ppo.pop("model_config", {})
    config = _base_config(PPOConfig(), job, batch=ppo.pop("train_batch_size_per_learner"), model_config=model_config)
    # The old stack's `observation_filter` is a connector on the new one; its running statistics
    # are env-runner state: merged across runners each iteration and saved in every checkpoint.
    if ppo.pop("observation_filter", "NoFilter") == "MeanStdFilter":
        config.env_runners(env_to_module_connector=mean_std_filter)
    if job.gsde_resample_steps is not None:
        _use_gsde(config, model_config, job.gsde_resample_steps)
    _use_our_action_connector(config, ppo)
    config.update_from_dict({**ppo, "normalize_actions": False, "clip_actions": False})
    try:
        config.validate()
    except (ValueError, TypeError) as error:
        raise UserError(f"RLlib rejected the PPO settings: {str(error).strip().splitlines()[0]}") from None
    return config


def _ppo_values(job: JobConfig, *, cpus: int) -> dict[str, Any]:
    """The job's PPO fields with the runner count and the env copies per runner this job's CPUs give."""
    ppo = dict(job.ppo)
    ppo.setdefault("num_env_runners", env_runners_for(cpus, driver_cpus=driver_cpus()))
    ppo.setdefault("num_cpus_per_env_runner", CPUS_PER_RUNNER)
    if job.num_envs:  # the job's copies split over its runners (rounded up), or all in the driver
        ppo["num_envs_per_env_runner"] = -(-job.num_envs // max(ppo["num_env_runners"], 1))
    return ppo


def _base_config(config: Any, job: JobConfig, *, batch: int, model_config: dict[str, Any]) -> Any:
    """`config` (a new PPOConfig) with the settings every job has, whatever its hyperparameters."""
    from sagemaker_rl.job.env_runner import LeanEnvRunner, SeededEnvRunner
    from sagemaker_rl.job.lean_learner import LeanPPOLearner

    return (
        config
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .framework("torch")
        .environment(env_name(job), env_config=dataclasses.asdict(job.env))
        # Seeded from debugging(seed=...) so that no two env copies share a seed (RLlib's runners do).
        .env_runners(env_runner_cls=LeanEnvRunner if job.sampler == "lean" else SeededEnvRunner)
        .training(train_batch_size_per_learner=batch, learner_class=LeanPPOLearner if job.learner == "lean" else None)
        .rl_module(model_config=model_config)
        .debugging(log_level="ERROR", seed=job.seed)
        # Actors without restarts: no "max_restarts > 0" noise, and a broken env fails the job
        # with its own error instead of being retried forever.
        .fault_tolerance(restart_failed_env_runners=False)
        .reporting(metrics_num_episodes_for_smoothing=EPISODES_PER_MEAN)
    )


def _use_gsde(config: Any, model_config: dict[str, Any], resample_steps: int) -> None:
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from sagemaker_rl.job.gsde import RESAMPLE_KEY, GsdePPOTorchRLModule

    config.rl_module(rl_module_spec=RLModuleSpec(module_class=GsdePPOTorchRLModule),
                     model_config={**model_config, RESAMPLE_KEY: resample_steps})


def _use_our_action_connector(config: Any, ppo: dict[str, Any]) -> None:
    """Takes `normalize_actions` and `clip_actions` out of `ppo` into our env-actions connector.

    The env's actions come from our connector (one array op for all vector copies; RLlib's does
    each copy apart): it takes RLlib's two settings, and RLlib's own connector is turned off.
    """
    actions = {key: ppo.pop(key, getattr(config, key)) for key in ("normalize_actions", "clip_actions")}
    config.env_runners(module_to_env_connector=functools.partial(unsquash_clip_actions, **actions))


def mean_std_filter(env: Any = None, spaces: Any = None, device: Any = None) -> Any:
    """The observation filter connector (a module-level function: env runners unpickle it by name)."""
    from sagemaker_rl.job.connectors import MeanStdFilter

    return MeanStdFilter()


def unsquash_clip_actions(env: Any = None, spaces: Any = None, device: Any = None, *, normalize_actions: bool,
                          clip_actions: bool) -> Any:
    """The env-actions connector, with RLlib's `normalize_actions` and `clip_actions` (see mean_std_filter)."""
    from sagemaker_rl.job.connectors import UnsquashClipActions

    return UnsquashClipActions(normalize_actions=normalize_actions, clip_actions=clip_actions)


def build_algorithm(config: Any, job: JobConfig, *, torch_threads: int | None = LEARNER_TORCH_THREADS) -> Any:
    """The algorithm of `config` (a PPOConfig) as a job builds it, after `ray_session.start_ray`.

    Also registers the job's env, points Ray's default log directory away from ~ and sets the
    learner's torch threads (`torch_threads`; None leaves torch's default).
    """
    import ray.tune.trainable.trainable as trainable_module
    from ray.tune.registry import register_env

    from sagemaker_rl.job.envs import env_creator

    register_env(env_name(job), env_creator)
    # A standalone Algorithm makes an empty log dir under ~/ray_results; Ray 2.60 has no setting
    # for it, so point its default at a throwaway place (tests/job/test_training checks ~ stays clean).
    trainable_module.DEFAULT_STORAGE_PATH = os.path.join(_scratch_dir(), "ray_results")
    algo = config.build_algo()
    import torch

    # The learner runs in this process, with one thread: with one per core, torch's threads spin
    # against every other busy process (env runners, other jobs) and the learning step slows
    # several-fold (bench/throughput.py measures it).
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    return algo


def _scratch_dir() -> str:
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"sagemaker_rl-{os.getuid()}")
