"""A SageMaker tuning job's trials as a local study: the same trials.csv, best file and report as a local run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sagemaker_rl.contract import PROGRAM_KEY, decode_value
from sagemaker_rl.job import PLATFORM_PREFIXES
from sagemaker_rl.sagemaker.aws import Aws, aws_errors
from sagemaker_rl.sagemaker.config import problem_of

if TYPE_CHECKING:  # the tuning package imports Optuna: only what tuning needs pays for it
    import optuna

    from sagemaker_rl.tuning import SearchSpace


def list_tuning_trials(aws: Aws, name: str) -> list[dict[str, Any]]:
    """Every training job of a tuning job (ListTrainingJobsForHyperParameterTuningJob, all pages)."""
    summaries: list[dict[str, Any]] = []
    with aws_errors(f"list the training jobs of tuning job {name}"):
        pages = aws.sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=name)
        for page in pages:
            summaries += page["TrainingJobSummaries"]
    return summaries


def tuning_study(description: Mapping[str, Any], summaries: list[dict[str, Any]]) -> optuna.Study:
    """An in-memory Optuna study of a tuning job's trials, in the shape the local tuner's report reads."""
    import optuna

    from sagemaker_rl.tuning import from_parameter_ranges
    from sagemaker_rl.tuning.direction import of_objective_type

    job_config = description["HyperParameterTuningJobConfig"]
    static = description.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {})
    ours = {key: value for key, value in static.items() if not key.startswith(PLATFORM_PREFIXES)}
    space = from_parameter_ranges(job_config.get("ParameterRanges", {}), ours)
    objective = job_config["HyperParameterTuningJobObjective"]
    study = optuna.create_study(study_name=description["HyperParameterTuningJobName"],
                                direction=of_objective_type(objective["Type"]))
    distributions = space.distributions()
    for summary in sorted(summaries, key=lambda s: (str(s.get("CreationTime", "")), s["TrainingJobName"])):
        study.add_trial(_trial(summary, space, distributions, objective["MetricName"]))
    return study


def _trial(
    summary: Mapping[str, Any], space: SearchSpace, distributions: Mapping[str, Any], metric: str
) -> optuna.trial.FrozenTrial:
    from optuna.trial import TrialState

    from sagemaker_rl.tuning.record import TrialRecord, external_trial

    name, status = summary["TrainingJobName"], summary["TrainingJobStatus"]
    tuned = space.from_sagemaker(summary.get("TunedHyperParameters", {}))
    value = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
    start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
    duration = round((end - start).total_seconds(), 1) if start and end else None
    failure = None
    if status == "Completed" and value is not None:
        state = TrialState.COMPLETE
    elif status == "Stopped":
        state = TrialState.PRUNED  # stopped early by the tuning job (or by hand)
    elif status in ("InProgress", "Stopping"):
        state, value = TrialState.RUNNING, None
    else:
        state, value = TrialState.FAIL, None
        failure = summary.get("FailureReason") or f"SageMaker read no {metric} from the job's log"
    record = TrialRecord(tuned=tuned, hyperparameters=space.hyperparameters(tuned), training_job=name,
                         duration_s=duration, failure=failure)
    return external_trial(f"training job {name}", state=state, value=value, params=space.stored_values(tuned),
                          distributions=distributions, record=record)


def write_tuning_results(
    aws: Aws, description: Mapping[str, Any], run_dir: Path, *, out: IO[str]
) -> dict[str, Path]:
    """Write trials.csv, best_hyperparameters.json and report.html for a tuning job, and print the summary."""
    from sagemaker_rl.tuning import report

    name = description["HyperParameterTuningJobName"]
    study = tuning_study(description, list_tuning_trials(aws, name))
    metric = description["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    static = description.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {})
    problem = problem_of(str(decode_value(static.get(PROGRAM_KEY, "")))) or "PROBLEM"
    run_dir.mkdir(parents=True, exist_ok=True)
    files = report.write_outputs(study, run_dir, objective=metric, html=True)
    print(report.summary(study, files, problem=problem, objective=metric), file=out, flush=True)
    return files
