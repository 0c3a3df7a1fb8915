"""SageMaker requests: CreateTrainingJob and CreateHyperParameterTuningJob, built from the objects local runs use.

The job's own hyperparameter parser checks a training job's hyperparameters, the reward lines give the
metric definitions and the tuning space gives the ParameterRanges. Builders call no AWS API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagemaker_rl import metrics
from sagemaker_rl.contract import DEFAULT_BASE_DIR, PROGRAM_KEY, SUBMIT_DIRECTORY_KEY, JobPaths, encode_hyperparameters
from sagemaker_rl.errors import UserError
from sagemaker_rl.job import STOP_PREFIX, check_hyperparameters
from sagemaker_rl.sagemaker.config import SageMakerConfig, entry_point, job_name

if TYPE_CHECKING:  # the tuning package imports Optuna: only what tuning needs pays for it
    from sagemaker_rl.tuning import TuningConfig

logger = logging.getLogger(__name__)

CHECKPOINT_LOCAL_PATH = str(JobPaths(Path(DEFAULT_BASE_DIR)).checkpoints)  # synced with CheckpointConfig.S3Uri
PROBLEM_TAG = "sagemaker-rl:problem"


def training_hyperparameters(
    problem: str | None, hyperparameters: Mapping[str, Any], *, code_dir: Path | None = None
) -> dict[str, str]:
    """HyperParameters as the SageMaker SDK encodes them, checked first with the job's own parser (the user's
    `code_dir` importable; an env whose packages only the image has is not checked here)."""
    encoded = encode_hyperparameters({**hyperparameters, PROGRAM_KEY: entry_point(problem)})
    refused = check_hyperparameters(problem, [encoded], code_dir=code_dir, envs_here=False)  # before any AWS call
    if refused is not None:
        raise UserError(refused[1])
    return encoded


def training_job_request(
    problem: str | None, hyperparameters: Mapping[str, str], config: SageMakerConfig, *, name: str, output_s3: str
) -> dict[str, Any]:
    """CreateTrainingJob's request; `hyperparameters` as `training_hyperparameters` returns them."""
    output_s3 = _prefix(output_s3)
    checkpoint = config.checkpoint_s3 or (f"{output_s3}{name}/checkpoints/" if config.spot else None)
    return {
        "TrainingJobName": name,
        "HyperParameters": dict(hyperparameters),
        **_job_definition(config, output_s3=output_s3, checkpoint_s3=checkpoint),
        "Tags": _tags(config, problem),
    }


def check_tuning_job(tuning: TuningConfig, config: SageMakerConfig) -> None:
    """Raise UserError/TuningError for a tuning run SageMaker cannot run as asked, or a bad value in its space."""
    from sagemaker_rl.tuning import Strategy, check_hyperparameters

    if tuning.seeds != 1:
        raise UserError(f"seeds is {tuning.seeds}, but SageMaker runs one job per trial: "
                        "drop seeds (or tune with --backend local)")
    if tuning.objective_last_k != 1:
        raise UserError(f"objective_last_k is {tuning.objective_last_k}, but SageMaker's objective is the last "
                        "value a job reports: drop objective_last_k (or tune with --backend local)")
    if tuning.train_budget is not None:
        raise UserError(f"train_budget is {tuning.train_budget}, but a SageMaker tuning job has no re-evaluation to "
                        "train at it: drop train_budget and train the answer with a training job at your budget "
                        "(or tune with --backend local)")
    if config.checkpoint_s3:
        # Every trial would sync the same S3 prefix, and a job resumes from any checkpoint it finds there.
        raise UserError("checkpoint_s3 applies to single training jobs: the trials of a tuning job would "
                        "share it and resume from each other's checkpoints; drop it")
    if tuning.strategy is Strategy.HYPERBAND:
        _hyperband_max_resource(tuning)
    for parent in tuning.warm_start:  # the parents are tuning jobs here, not run directories
        job_name(tuning.problem, "tuning", parent)
    check_hyperparameters(tuning, envs_here=False)


def tuning_job_request(
    tuning: TuningConfig, config: SageMakerConfig, *, name: str, output_s3: str, submit_directory: str | None = None
) -> dict[str, Any]:
    """CreateHyperParameterTuningJob's request for a tuning run that `check_tuning_job` accepts; `submit_directory`:
    the S3 URI of the user's code bundle (`aws.upload_code`)."""
    submit = {SUBMIT_DIRECTORY_KEY: submit_directory} if submit_directory else {}
    static = encode_hyperparameters({**tuning.space.static, PROGRAM_KEY: entry_point(tuning.problem), **submit})
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": _tuning_job_config(tuning),
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            **_job_definition(config, output_s3=_prefix(output_s3), checkpoint_s3=None),
        },
        "Tags": _tags(config, tuning.problem),
    }
    if tuning.warm_start:  # the parents are tuning jobs; SageMaker checks the rules of its warm-start types
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": name} for name in tuning.warm_start],
            "WarmStartType": tuning.warm_start_type,
        }
    return request


def _tuning_job_config(tuning: TuningConfig) -> dict[str, Any]:
    """HyperParameterTuningJobConfig: strategy, objective, limits and ranges."""
    from sagemaker_rl.tuning import Strategy

    job_config: dict[str, Any] = {
        "Strategy": str(tuning.strategy),
        "HyperParameterTuningJobObjective": {"Type": tuning.objective_type, "MetricName": tuning.objective_metric},
        "ResourceLimits": {"MaxParallelTrainingJobs": tuning.max_parallel_jobs},
        "ParameterRanges": tuning.space.to_parameter_ranges(),
        "TrainingJobEarlyStoppingType": str(tuning.early_stopping),
    }
    if tuning.strategy is Strategy.GRID:  # SageMaker runs every combination; a smaller budget is not sent
        if tuning.max_jobs is not None and tuning.max_jobs != tuning.space.grid_size():
            logger.warning("Grid on SageMaker runs all %d combinations; max_jobs %d is not sent",
                           tuning.space.grid_size(), tuning.max_jobs)
    else:
        job_config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = tuning.budget
    if tuning.max_runtime_s is not None:
        job_config["ResourceLimits"]["MaxRuntimeInSeconds"] = tuning.max_runtime_s
    if tuning.strategy is Strategy.HYPERBAND:
        job_config["StrategyConfig"] = {"HyperbandStrategyConfig": {
            "MinResource": tuning.hyperband_min_resource or 1, "MaxResource": _hyperband_max_resource(tuning)}}
    if tuning.sampler_seed is not None:
        job_config["RandomSeed"] = tuning.sampler_seed
    if tuning.completion.any:
        job_config["TuningJobCompletionCriteria"] = _completion_criteria(tuning)
    return job_config


def _completion_criteria(tuning: TuningConfig) -> dict[str, Any]:
    """TuningJobCompletionCriteria: the same criteria a local search ends on."""
    criteria: dict[str, Any] = {}
    if tuning.target_objective is not None:
        criteria["TargetObjectiveMetricValue"] = float(tuning.target_objective)
    if tuning.max_jobs_not_improving is not None:
        criteria["BestObjectiveNotImproving"] = {"MaxNumberOfTrainingJobsNotImproving": tuning.max_jobs_not_improving}
    if tuning.complete_on_convergence:
        criteria["ConvergenceDetected"] = {"CompleteOnConvergence": "Enabled"}
    return criteria


def _job_definition(config: SageMakerConfig, *, output_s3: str, checkpoint_s3: str | None) -> dict[str, Any]:
    """The parts a training job and a tuning job's TrainingJobDefinition share."""
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": config.max_run_s}
    if config.spot:
        stopping["MaxWaitTimeInSeconds"] = config.max_wait
    definition: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": config.image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metrics.metric_definitions(),
        },
        "RoleArn": config.role,
        "OutputDataConfig": {"S3OutputPath": output_s3},
        "ResourceConfig": {
            "InstanceType": config.instance_type,
            "InstanceCount": config.instance_count,
            "VolumeSizeInGB": config.volume_size_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": config.spot,
    }
    if checkpoint_s3:
        definition["CheckpointConfig"] = {"S3Uri": _prefix(checkpoint_s3), "LocalPath": CHECKPOINT_LOCAL_PATH}
    return definition


def _hyperband_max_resource(tuning: TuningConfig) -> int:
    if tuning.hyperband_max_resource is not None:
        return int(tuning.hyperband_max_resource)
    iterations = tuning.space.static.get(STOP_PREFIX + "training_iteration")
    if isinstance(iterations, int) and not isinstance(iterations, bool) and iterations >= 1:
        return iterations
    raise UserError("Hyperband on SageMaker needs the most training iterations a trial may run: set "
                    "hyperband_max_resource in the tuning file or a static rl.training.stop.training_iteration")


def _tags(config: SageMakerConfig, problem: str | None) -> list[dict[str, str]]:
    tags = {PROBLEM_TAG: problem or "env", **config.tags}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _prefix(uri: str) -> str:
    """An S3 prefix ending in '/': without it SageMaker syncs every key that starts with the text."""
    return uri if uri.endswith("/") else uri + "/"
