"""The job's model: what it leaves in model/ — the final checkpoint, the ONNX policy, params.json and result.json.

result.json is written last: with it, model/ holds the complete model of its iteration, so a job
killed while writing the model writes it again from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from sagemaker_rl.contract import JobPaths
from sagemaker_rl.files import write_atomically
from sagemaker_rl.job.checkpoints import JobState, disk_full_said
from sagemaker_rl.job.hyperparameters import JobConfig, to_hyperparameters
from sagemaker_rl.job.keys import STOP_PREFIX
from sagemaker_rl.job.learner import MODULE_ID
from sagemaker_rl.job.progress import Progress

OBSERVATION_FILE = "observation.json"  # the flat observation's parts, in order (envs.observation_layout)
RESULT_FILE = "result.json"  # written last to model/: with it, the model of its iteration is complete


def model_written(paths: JobPaths, state: JobState) -> bool:
    """model/ holds the complete model of the checkpoint `state` came from."""
    return _read_json(paths.model / RESULT_FILE).get("training_iteration") == state.training_iteration


def final_evaluation(model: Path) -> float | None:
    """The deterministic evaluation of the policy a job's complete model/ holds (result.json), if the job made one."""
    result = _read_json(model / RESULT_FILE)
    value = result.get("evaluation_reward_mean")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def trained_stop(model: Path) -> dict[str, Any]:
    """The stop criteria the job of a model/ trained with (params.json; empty when it has none)."""
    hyperparameters = _read_json(model / "params.json").get("hyperparameters")
    if not isinstance(hyperparameters, dict):
        return {}
    return {key: value for key, value in hyperparameters.items() if key.startswith(STOP_PREFIX)}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_model(algo: Any, job: JobConfig, paths: JobPaths, state: JobState, last: Progress | None) -> None:
    """checkpoint/, policy.onnx, params.json, then result.json (`last`: the final iteration; None: from `state`)."""
    from sagemaker_rl.job.export import export_onnx

    checkpoint_dir = paths.model / "checkpoint"
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    with disk_full_said(paths.model, "the model", "free space there and run the job again: it writes the model "
                        "from its last checkpoint without training again"):
        algo.save_to_path(str(checkpoint_dir))
        export_onnx(algo.get_module(MODULE_ID), paths.model / "policy.onnx",
                    observation_filter=observation_filter_stats(algo))
        if job.env_facts is not None:  # the parts of the observation vector policy.onnx takes
            layout = {"observation": job.env_facts.observation_layout}
            write_atomically(paths.model / OBSERVATION_FILE, json.dumps(layout, indent=2) + "\n")
        params = {"problem": job.problem, "simulator": job.simulator if job.problem else None,
                  "env": dataclasses.asdict(job.env), "seed": job.seed,
                  "hyperparameters": to_hyperparameters(job), "command": sys.argv}
        write_atomically(paths.model / "params.json", json.dumps(params, indent=2, default=str) + "\n")
        progress = vars(last) if last is not None else {
            "training_iteration": state.training_iteration, "timesteps_total": state.timesteps_total,
            "time_total_s": state.time_total_s, "episode_reward_mean": state.last_reward}
        summary = {**progress, "best_episode_reward_mean": state.best_reward}
        write_atomically(paths.model / RESULT_FILE, json.dumps(summary, indent=2) + "\n")


def observation_filter_stats(algo: Any) -> tuple[Any, Any, float] | None:
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
