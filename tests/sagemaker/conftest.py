"""The SageMaker tests' fixtures: clients of the moto server of tests/conftest.py (reset for every test), and
a tuning job with its trials listed and its report written."""

from __future__ import annotations

import datetime
import io

import pytest
from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters

from sagemaker_rl import sagemaker
from tests.sagemaker.helpers import SERVICE, input_shape, sm_config, tuning_config


@pytest.fixture
def aws(endpoint):
    return sagemaker.connect(endpoint_url=endpoint)


def _summary(name: str, number: int, status: str, tuned: dict, value: float | None = None, **extra) -> dict:
    start = datetime.datetime(2026, 11, 24, 1, 0, number, tzinfo=datetime.UTC)
    summary = {"TrainingJobName": f"{name}-{number:03d}-1a2b3c4d", "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:"
               f"123456789012:training-job/{name}-{number:03d}-1a2b3c4d", "TuningJobName": name,
               "CreationTime": start, "TrainingJobStatus": status, "TunedHyperParameters": tuned, **extra}
    if status != "InProgress":
        summary.update(TrainingStartTime=start, TrainingEndTime=start + datetime.timedelta(seconds=90 + number))
    if value is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "episode_reward_mean",
                                                                  "Value": value}
    return summary


def _trial_summaries(name: str) -> list[dict]:
    """What ListTrainingJobsForHyperParameterTuningJob answers: tuned values as SageMaker reports them
    (bare strings; categorical values as sent), final objective values, failure reasons."""
    def tuned(kl, epochs, gamma, mode):
        return {"rl.training.config.kl_coeff": kl, "rl.training.config.num_epochs": epochs,
                "rl.training.config.gamma": gamma, "rl.training.config.batch_mode": mode}

    return [
        _summary(name, 3, "Stopped", tuned("0.61", "41", "0.95", "complete_episodes"), -30.5),
        _summary(name, 1, "Completed", tuned("0.7523", "7", "0.99", "truncate_episodes"), -8.75,
                 ObjectiveStatus="Succeeded"),
        _summary(name, 2, "Completed", tuned("0.5", "12", "0.995", "complete_episodes"), -4.5,
                 ObjectiveStatus="Succeeded"),
        _summary(name, 4, "Failed", tuned("0.9", "3", "0.9", "truncate_episodes"),
                 FailureReason="AlgorithmError: ExecuteUserScriptError: exit code 1"),
        _summary(name, 5, "Completed", tuned("0.8", "9", "0.97", "complete_episodes"), ObjectiveStatus="Failed"),
        _summary(name, 6, "InProgress", tuned("0.55", "20", "0.98", "truncate_episodes")),
    ]


def _serve_trial_list(client, summaries: list[dict], page_size: int = 4) -> list[dict]:
    """moto does not implement ListTrainingJobsForHyperParameterTuningJob (its server answers 500).
    This answers it in botocore's before-call event, after botocore has validated the parameters, in
    pages as SageMaker would; every request is also checked against botocore's service model."""
    requests: list[dict] = []

    def record(params, **kwargs):
        validate_parameters(params, input_shape("ListTrainingJobsForHyperParameterTuningJob"))
        requests.append(dict(params))

    def answer(**kwargs):
        start = int(requests[-1].get("NextToken", "0"))
        page = {"TrainingJobSummaries": summaries[start:start + page_size]}
        if start + page_size < len(summaries):
            page["NextToken"] = str(start + page_size)
        return AWSResponse("", 200, {}, None), page

    operation = "ListTrainingJobsForHyperParameterTuningJob"
    client.meta.events.register(f"before-parameter-build.sagemaker.{operation}", record)
    client.meta.events.register(f"before-call.sagemaker.{operation}", answer)
    return requests


@pytest.fixture
def tuning_results(aws, tmp_path):
    """A tuning job created on moto, its trials listed, and the local report files written for it."""
    name = sagemaker.start_tuning_job(aws, tuning_config(tmp_path), sm_config(output_s3="s3://bkt/"), out=io.StringIO())
    summaries = _trial_summaries(name)
    output_shape = SERVICE.operation_model("ListTrainingJobsForHyperParameterTuningJob").output_shape
    validate_parameters({"TrainingJobSummaries": summaries}, output_shape)  # the data has SageMaker's shape
    requests = _serve_trial_list(aws.sagemaker, summaries)
    description = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    out = io.StringIO()
    files = sagemaker.write_tuning_results(aws, description, tmp_path / "results", out=out)
    return name, files, out.getvalue(), requests
