"""SageMaker backend: requests, jobs and logs against a moto server on 127.0.0.1 (real HTTP), and the CLIs.

moto (5.2.5) implements CreateTrainingJob / CreateHyperParameterTuningJob / Describe*, S3, STS and
CloudWatch Logs, with three gaps this file works around where it meets them, each said on the spot:
every job is "Completed" the moment it is created, DescribeTrainingJob answers with moto's own
MetricDefinitions, and ListTrainingJobsForHyperParameterTuningJob is not implemented.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters

from sagemaker_rl import metrics, sagemaker
from sagemaker_rl.errors import UserError
from sagemaker_rl.sagemaker import LOG_GROUP, SageMakerConfig
from sagemaker_rl.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    SearchSpace,
    TuningConfig,
    TuningError,
)
from tests.conftest import REPO, TINY_PPO, job_env, write_hyperparameters

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-rl:cpu"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
ACCOUNT_BUCKET = "sagemaker-us-east-1-123456789012"  # moto's STS answers with account 123456789012
SERVICE = botocore.session.get_session().get_service_model("sagemaker")


def _input_shape(operation: str):
    return SERVICE.operation_model(operation).input_shape


# --- fixtures: the moto server of conftest, reset for every test ---


@pytest.fixture
def aws(endpoint):
    return sagemaker.connect(endpoint_url=endpoint)


def _config(**changes) -> SageMakerConfig:
    return SageMakerConfig(image=IMAGE, role=ROLE, **changes)


def _tuning(tmp_path: Path, **changes) -> TuningConfig:
    space = SearchSpace(
        (
            ContinuousParameter("rl.training.config.kl_coeff", 0.5, 1.0),
            IntegerParameter("rl.training.config.num_epochs", 3, 50),
            ContinuousParameter("rl.training.config.gamma", 0.9, 0.999, "ReverseLogarithmic"),
            CategoricalParameter("rl.training.config.batch_mode", ("complete_episodes", "truncate_episodes")),
        ),
        {"rl.training.stop.training_iteration": 20, "rl.training.config.model_config.fcnet_hiddens": [64, 64]},
    )
    settings = {"problem": "reacher", "space": space, "max_jobs": 6, "max_parallel_jobs": 3,
                "run_dir": tmp_path / "run", "sampler_seed": 11, **changes}
    return TuningConfig(**settings)


def _record_bodies(client, operation: str) -> list[dict]:
    """The JSON bodies the client really sends for `operation` (botocore's before-send event)."""
    bodies: list[dict] = []

    def record(request, **kwargs):
        bodies.append(json.loads(request.body))

    client.meta.events.register(f"before-send.sagemaker.{operation}", record)
    return bodies


def _replay_states(client, operation: str, states: list[dict], on_call=None) -> None:
    """moto marks every job Completed the moment it is created and offers no way to move it through
    its states. This rewrites the parsed answers of `operation` (after the real HTTP round trip) with
    the states a real job passes through, one per call; the last state repeats. `on_call(n)` runs first."""
    calls = []

    def rewrite(parsed, **kwargs):
        calls.append(1)
        if on_call:
            on_call(len(calls))
        parsed.update(states[min(len(calls), len(states)) - 1])

    client.meta.events.register(f"after-call.sagemaker.{operation}", rewrite)


# --- requests (no AWS) ---


def test_training_request_encodes_hyperparameters_as_the_sdk_and_sets_every_part(tmp_path):
    config = _config(instance_type="ml.c5.2xlarge", instance_count=2, spot=True, max_run_s=3600,
                     checkpoint_s3="s3://bucket/ckpt", tags={"team": "rl"})
    encoded = sagemaker.training_hyperparameters(
        "hopper", {"rl.training.config.lr": 3e-4, "rl.training.config.batch_mode": "truncate_episodes",
                   "rl.training.config.model_config.fcnet_hiddens": [32, 32]})
    request = sagemaker.training_job_request("hopper", encoded, config, name="job-1", output_s3="s3://bucket/out")
    validate_parameters(request, _input_shape("CreateTrainingJob"))  # botocore's own check of the request
    assert request["HyperParameters"] == {
        "rl.training.config.lr": "0.0003",
        "rl.training.config.batch_mode": '"truncate_episodes"',
        "rl.training.config.model_config.fcnet_hiddens": "[32, 32]",
        "sagemaker_program": '"train-hopper.py"',
    }
    assert request["AlgorithmSpecification"] == {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                                 "MetricDefinitions": metrics.metric_definitions()}
    assert request["ResourceConfig"] == {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert request["EnableManagedSpotTraining"] is True
    assert request["CheckpointConfig"] == {"S3Uri": "s3://bucket/ckpt/", "LocalPath": "/opt/ml/checkpoints"}
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://bucket/out/"}
    assert request["Tags"] == [{"Key": "sagemaker-rl:problem", "Value": "hopper"}, {"Key": "team", "Value": "rl"}]


def test_metric_definitions_read_the_reward_lines_a_job_prints():
    lines = metrics.format_lines({"episode_reward_mean": -11.3453, "episode_reward_max": 1.5e-7,
                                  "timesteps_total": 115200, "training_iteration": 4})
    read = {}
    for definition in sagemaker.training_job_request(
            "reacher", {}, _config(), name="j", output_s3="s3://bkt/")["AlgorithmSpecification"]["MetricDefinitions"]:
        for line in lines:
            match = re.search(definition["Regex"], line)
            if match and line.startswith(definition["Name"]):
                read[definition["Name"]] = float(match.group(1))
    assert read == {"episode_reward_mean": -11.3453, "episode_reward_max": 1.5e-7, "timesteps_total": 115200,
                    "training_iteration": 4}


def test_spot_job_gets_checkpoints_under_its_output_and_on_demand_gets_none():
    spot = sagemaker.training_job_request("reacher", {}, _config(spot=True), name="j1", output_s3="s3://bkt/out")
    assert spot["CheckpointConfig"]["S3Uri"] == "s3://bkt/out/j1/checkpoints/"
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 86_400, "MaxWaitTimeInSeconds": 172_800}
    plain = sagemaker.training_job_request("reacher", {}, _config(), name="j2", output_s3="s3://bkt/out")
    assert "CheckpointConfig" not in plain and plain["EnableManagedSpotTraining"] is False
    assert plain["StoppingCondition"] == {"MaxRuntimeInSeconds": 86_400}


def test_tuning_request_carries_the_local_space_budget_strategy_and_early_stopping(tmp_path):
    tuning = _tuning(tmp_path, early_stopping="Auto")
    request = sagemaker.tuning_job_request(tuning, _config(), name="rl-reacher-1", output_s3="s3://bkt/out")
    validate_parameters(request, _input_shape("CreateHyperParameterTuningJob"))
    job_config = request["HyperParameterTuningJobConfig"]
    assert job_config["Strategy"] == "Bayesian" and job_config["TrainingJobEarlyStoppingType"] == "Auto"
    assert job_config["ResourceLimits"] == {"MaxParallelTrainingJobs": 3, "MaxNumberOfTrainingJobs": 6}
    assert job_config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "episode_reward_mean"}
    assert job_config["ParameterRanges"] == tuning.space.to_parameter_ranges()
    assert job_config["ParameterRanges"]["ContinuousParameterRanges"][1] == {
        "Name": "rl.training.config.gamma", "MinValue": "0.9", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"}
    assert job_config["RandomSeed"] == 11 and "StrategyConfig" not in job_config
    definition = request["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {
        "rl.training.stop.training_iteration": "20",
        "rl.training.config.model_config.fcnet_hiddens": "[64, 64]",
        "sagemaker_program": '"train-reacher.py"',
    }
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == metrics.metric_definitions()
    assert "CheckpointConfig" not in definition and "HyperParameters" not in definition


def test_hyperband_sends_its_resources_and_grid_leaves_the_count_to_sagemaker(tmp_path):
    hyperband = sagemaker.tuning_job_request(_tuning(tmp_path, strategy="Hyperband", hyperband_min_resource=2),
                                             _config(), name="hb", output_s3="s3://bkt/")
    assert hyperband["HyperParameterTuningJobConfig"]["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 20}}  # from rl.training.stop.training_iteration
    grid_space = SearchSpace((CategoricalParameter("rl.training.config.num_epochs", (5, 10, 20)),))
    grid = sagemaker.tuning_job_request(_tuning(tmp_path, strategy="Grid", space=grid_space, max_jobs=None),
                                        _config(), name="grid", output_s3="s3://bkt/")
    validate_parameters(grid, _input_shape("CreateHyperParameterTuningJob"))
    assert grid["HyperParameterTuningJobConfig"]["ResourceLimits"] == {"MaxParallelTrainingJobs": 3}
    assert grid["HyperParameterTuningJobConfig"]["ParameterRanges"]["CategoricalParameterRanges"] == [
        {"Name": "rl.training.config.num_epochs", "Values": ["5", "10", "20"]}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image": None}, "no training image given"),
        ({"image": ""}, "no training image given"),
        ({"role": None}, "no IAM role given"),
        ({"role": "SageMakerRole"}, "is not an IAM role ARN"),
        ({"instance_type": "m5.xlarge"}, "is not a SageMaker instance type"),
        ({"instance_count": 0}, "instance_count must be a whole number >= 1"),
        ({"spot": True, "max_run_s": 600, "max_wait_s": 300}, "max_wait_s (300) must be >= max_run_s (600)"),
        ({"max_wait_s": 900}, "applies to spot training only"),
        ({"output_s3": "bucket/out"}, "is not an S3 URI"),
    ],
)
def test_bad_settings_fail_in_one_sentence_before_any_aws_call(changes, message):
    with pytest.raises(UserError, match=re.escape(message)) as raised:
        SageMakerConfig(**{"image": IMAGE, "role": ROLE, **changes})
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("changes", "config", "message"),
    [
        ({"seeds": 2}, {}, "SageMaker runs one job per trial"),
        ({"objective_last_k": 3}, {}, "SageMaker's objective is the last value"),
        ({}, {"checkpoint_s3": "s3://bkt/c"}, "resume from each other's checkpoints"),
        ({"strategy": "Hyperband", "space": SearchSpace((ContinuousParameter("rl.training.config.lr", 1e-5, 1e-3),))},
         {}, "Hyperband on SageMaker needs the most training iterations"),
    ],
)
def test_tuning_runs_sagemaker_cannot_run_are_refused(tmp_path, changes, config, message):
    with pytest.raises(UserError, match=re.escape(message)):
        sagemaker.check_tuning_job(_tuning(tmp_path, **changes), _config(**config))


def test_a_bad_hyperparameter_fails_with_the_jobs_own_message_before_any_aws_call(tmp_path):
    class NoAws:
        def __getattr__(self, name):
            raise AssertionError(f"AWS was called ({name}) before the hyperparameters were checked")

    with pytest.raises(UserError, match="unknown PPO setting 'rl.training.config.lrr' \\(did you mean 'lr'\\?\\)"):
        sagemaker.start_training_job(NoAws(), "reacher", {"rl.training.config.lrr": 1e-3}, _config(), out=io.StringIO())
    bad_space = SearchSpace((ContinuousParameter("rl.training.config.gamma", 0.5, 1.5),))
    with pytest.raises(TuningError, match="gamma must be > 0 and <= 1, got 1.5"):
        sagemaker.start_tuning_job(NoAws(), _tuning(tmp_path, space=bad_space), _config(), out=io.StringIO())


def test_each_problem_has_the_entry_point_named_in_sagemaker_program():
    from sagemaker_rl.problems import PROBLEMS

    for problem in PROBLEMS:
        script = REPO / "entrypoints" / sagemaker.entry_point(problem)
        assert f'run("{problem}")' in script.read_text()
        assert sagemaker.problem_of(script.name) == problem


def test_job_names_follow_sagemakers_rules():
    assert len(sagemaker.job_name("humanoid", "tuning")) <= 32
    assert re.fullmatch(r"sagemaker-rl-hopper-\d{6}-\d{6}-\d{3}", sagemaker.job_name("hopper"))
    with pytest.raises(UserError, match="up to 32 letters"):
        sagemaker.job_name("reacher", "tuning", "x" * 33)
    with pytest.raises(UserError, match="is not valid"):
        sagemaker.job_name("reacher", "training", "my_job")


# --- moto over HTTP ---


def test_training_job_is_created_with_the_fields_we_meant(aws):
    bodies = _record_bodies(aws.sagemaker, "CreateTrainingJob")
    out = io.StringIO()
    config = _config(spot=True, max_run_s=1800, tags={"team": "rl"})
    name = sagemaker.start_training_job(aws, "hopper", {"rl.training.config.lr": 3e-4}, config, out=out)
    assert f"created S3 bucket {ACCOUNT_BUCKET}" in out.getvalue()  # the SDK's default bucket, made once
    aws.s3.head_bucket(Bucket=ACCOUNT_BUCKET)
    described = aws.sagemaker.describe_training_job(TrainingJobName=name)
    assert described["HyperParameters"] == {"rl.training.config.lr": "0.0003",
                                            "sagemaker_program": '"train-hopper.py"'}
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert described["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert described["RoleArn"] == ROLE and described["EnableManagedSpotTraining"] is True
    assert described["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}
    assert described["OutputDataConfig"] == {"S3OutputPath": f"s3://{ACCOUNT_BUCKET}/"}
    assert described["CheckpointConfig"] == {"S3Uri": f"s3://{ACCOUNT_BUCKET}/{name}/checkpoints/",
                                             "LocalPath": "/opt/ml/checkpoints"}
    tags = aws.sagemaker.list_tags(ResourceArn=described["TrainingJobArn"])["Tags"]
    assert {tag["Key"]: tag["Value"] for tag in tags} == {"sagemaker-rl:problem": "hopper", "team": "rl"}
    # moto's DescribeTrainingJob answers with MetricDefinitions of its own; what went over HTTP is ours.
    assert [body["AlgorithmSpecification"]["MetricDefinitions"] for body in bodies] == [metrics.metric_definitions()]


def test_tuning_job_is_created_with_the_fields_we_meant_and_recorded(aws, tmp_path):
    tuning = _tuning(tmp_path, strategy="Hyperband")
    name = sagemaker.start_tuning_job(aws, tuning, _config(output_s3="s3://my-bucket/rl"), out=io.StringIO())
    described = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    job_config = described["HyperParameterTuningJobConfig"]
    assert job_config["Strategy"] == "Hyperband" and job_config["TrainingJobEarlyStoppingType"] == "Off"
    assert job_config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 20}}
    assert job_config["ResourceLimits"] == {"MaxParallelTrainingJobs": 3, "MaxNumberOfTrainingJobs": 6}
    assert job_config["ParameterRanges"] == tuning.space.to_parameter_ranges()
    definition = described["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"]["sagemaker_program"] == '"train-reacher.py"'
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == metrics.metric_definitions()
    assert definition["OutputDataConfig"] == {"S3OutputPath": "s3://my-bucket/rl/"}
    record = json.loads((tmp_path / "run" / "sagemaker.json").read_text())
    assert record["arn"] == described["HyperParameterTuningJobArn"]
    assert record["request"]["HyperParameterTuningJobConfig"] == job_config


def _put_events(aws, stream: str, messages: list[str]) -> None:
    with _ignore_exists():
        aws.logs.create_log_group(logGroupName=LOG_GROUP)
    with _ignore_exists():
        aws.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(datetime.datetime.now().timestamp() * 1000)
    aws.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                            logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


class _ignore_exists:
    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        return kind is not None and "ResourceAlreadyExists" in str(error)


def test_log_streamer_returns_each_reward_line_once(aws):
    streamer = sagemaker.LogStreamer(aws.logs, "job-a")
    assert streamer.poll() == []  # no log group yet: the job has not started
    _put_events(aws, "job-a/algo-1-1700000000", ["Invoking script train-reacher.py", "episode_reward_mean: -12.5",
                                                 "timesteps_total: 25000\ntraining_iteration: 1"])
    _put_events(aws, "job-b/algo-1-1700000000", ["episode_reward_mean: 99"])  # another job: not ours
    assert streamer.poll() == ["episode_reward_mean: -12.5", "timesteps_total: 25000", "training_iteration: 1"]
    assert streamer.poll() == []
    _put_events(aws, "job-a/algo-1-1700000000", ["episode_reward_mean: -9.25", "[reacher] iter 2 | ..."])
    assert streamer.poll() == ["episode_reward_mean: -9.25"]
    _put_events(aws, "job-a/algo-2-1700000001", ["episode_reward_mean: -9.5"])  # a second host
    assert streamer.poll() == ["[algo-2] episode_reward_mean: -9.5"]
    assert streamer.poll() == []


@pytest.mark.parametrize(
    ("final", "code", "ending"),
    [
        ({"TrainingJobStatus": "Completed", "SecondaryStatus": "Completed", "BillableTimeInSeconds": 321}, 0,
         "Model written to s3://bkt/out/{name}/output/model.tar.gz (321 s billed)"),
        ({"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed",
          "FailureReason": "AlgorithmError: rl.training.config.lrr is unknown"}, 1,
         "training job {name} failed: AlgorithmError: rl.training.config.lrr is unknown"),
        ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped"}, 1,
         "training job {name} was stopped; the model it saved is at s3://bkt/out/{name}/output/model.tar.gz"),
    ],
)
def test_wait_shows_each_state_and_reward_line_once_and_ends_with_the_outcome(aws, final, code, ending):
    name = sagemaker.start_training_job(aws, "reacher", {}, _config(output_s3="s3://bkt/out"), out=io.StringIO())
    stream = f"{name}/algo-1-1700000000"

    def job_prints(call: int) -> None:  # the job writes reward lines while it trains
        if call == 2:
            _put_events(aws, stream, ["episode_reward_mean: -20.5", "training_iteration: 1"])
        if call == 3:
            _put_events(aws, stream, ["episode_reward_mean: -15.25", "training_iteration: 2"])

    _replay_states(aws.sagemaker, "DescribeTrainingJob", [
        {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting"},
        {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
        {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
        final,
    ], on_call=job_prints)
    out = io.StringIO()
    description = sagemaker.wait_for_training_job(aws, name, out=out, poll_s=0)
    assert sagemaker.training_outcome(description, out=out) == code
    lines = [re.sub(r"^\[\d+:\d\d:\d\d\] ", "", line) for line in out.getvalue().splitlines()]
    status = final["TrainingJobStatus"]
    assert lines == [
        f"training job {name}: InProgress (Starting)",
        f"training job {name}: InProgress (Training)",
        "episode_reward_mean: -20.5",
        "training_iteration: 1",
        "episode_reward_mean: -15.25",
        "training_iteration: 2",
        f"training job {name}: {status}",
        ending.format(name=name),
    ]


def test_wait_for_tuning_job_shows_progress_until_it_ends(aws, tmp_path):
    name = sagemaker.start_tuning_job(aws, _tuning(tmp_path), _config(output_s3="s3://bkt/"), out=io.StringIO())
    counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    best = {"TrainingJobName": f"{name}-002-abc", "FinalHyperParameterTuningJobObjectiveMetric":
            {"MetricName": "episode_reward_mean", "Value": -7.125}}
    _replay_states(aws.sagemaker, "DescribeHyperParameterTuningJob", [
        {"HyperParameterTuningJobStatus": "InProgress", "TrainingJobStatusCounters": {**counters, "InProgress": 3},
         "BestTrainingJob": {}},
        {"HyperParameterTuningJobStatus": "InProgress", "TrainingJobStatusCounters": {**counters, "InProgress": 3},
         "BestTrainingJob": {}},
        {"HyperParameterTuningJobStatus": "InProgress", "BestTrainingJob": best,
         "TrainingJobStatusCounters": {**counters, "Completed": 2, "NonRetryableError": 1, "InProgress": 3}},
        {"HyperParameterTuningJobStatus": "Failed", "FailureReason": "ResourceLimitExceeded: ml.m5.xlarge",
         "BestTrainingJob": best, "TrainingJobStatusCounters": {**counters, "Completed": 4, "NonRetryableError": 1,
                                                                "Stopped": 1}},
    ])
    out = io.StringIO()
    description = sagemaker.wait_for_tuning_job(aws, name, out=out, poll_s=0)
    assert description["HyperParameterTuningJobStatus"] == "Failed"
    lines = [re.sub(r"^\[\d+:\d\d:\d\d\] ", "", line) for line in out.getvalue().splitlines()]
    assert lines == [
        "0/6 done (0 failed, 0 stopped early), 3 running, best - [InProgress]",  # printed once, not per poll
        f"3/6 done (1 failed, 0 stopped early), 3 running, best -7.125 ({name}-002-abc) [InProgress]",
        f"6/6 done (1 failed, 1 stopped early), 0 running, best -7.125 ({name}-002-abc) [Failed]",
        f"tuning job {name} failed: ResourceLimitExceeded: ml.m5.xlarge",
    ]


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
        validate_parameters(params, _input_shape("ListTrainingJobsForHyperParameterTuningJob"))
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
    name = sagemaker.start_tuning_job(aws, _tuning(tmp_path), _config(output_s3="s3://bkt/"), out=io.StringIO())
    summaries = _trial_summaries(name)
    output_shape = SERVICE.operation_model("ListTrainingJobsForHyperParameterTuningJob").output_shape
    validate_parameters({"TrainingJobSummaries": summaries}, output_shape)  # the data has SageMaker's shape
    requests = _serve_trial_list(aws.sagemaker, summaries)
    description = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    out = io.StringIO()
    files = sagemaker.write_tuning_results(aws, description, tmp_path / "results", out=out)
    return name, files, out.getvalue(), requests


def test_results_table_and_best_file_are_built_from_the_listed_trials(tuning_results):
    name, files, printed, requests = tuning_results
    assert requests == [{"HyperParameterTuningJobName": name},
                        {"HyperParameterTuningJobName": name, "NextToken": "4"}]  # both pages read
    rows = list(csv.DictReader(open(files["trials"])))
    assert [(row["trial"], row["training_job"][-12:], row["status"]) for row in rows] == [
        ("0", "001-1a2b3c4d", "complete"), ("1", "002-1a2b3c4d", "complete"), ("2", "003-1a2b3c4d", "pruned"),
        ("3", "004-1a2b3c4d", "failed"), ("4", "005-1a2b3c4d", "failed"), ("5", "006-1a2b3c4d", "running")]
    assert [row["objective"] for row in rows] == ["-8.75", "-4.5", "-30.5", "", "", ""]
    assert rows[0]["rl.training.config.num_epochs"] == "7" and rows[0]["rl.training.config.kl_coeff"] == "0.7523"
    assert rows[0]["duration_s"] == "91.0"
    assert rows[3]["failure"] == "AlgorithmError: ExecuteUserScriptError: exit code 1"
    assert rows[4]["failure"] == "SageMaker read no episode_reward_mean from the job's log"
    best = json.loads(files["best_hyperparameters"].read_text())
    assert best == {
        "rl.training.stop.training_iteration": 20,
        "rl.training.config.model_config.fcnet_hiddens": [64, 64],
        "rl.training.config.kl_coeff": 0.5,
        "rl.training.config.num_epochs": 12,
        "rl.training.config.gamma": 0.995,
        "rl.training.config.batch_mode": "complete_episodes",
    }  # typed values, no sagemaker_* keys
    assert files["report"].stat().st_size > 1_000_000  # the local report, plotly inlined
    assert "best episode_reward_mean: -4.5" in printed
    assert f"train with them: python scripts/train.py --problem reacher --hp-file {files['best_hyperparameters']}" \
        in printed
    assert re.search(r"^1\s+complete\s+-4\.5\s+92\s+0\.5\s+12\s+0\.995\s+complete_episodes$", printed, re.M)


# --- the command-line scripts, end to end over HTTP ---


def _script(name: str, *args: str, env: dict, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, **env})


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("train.py", ["--problem", "hopper", "--role", ROLE], "error: no training image given"),
        ("train.py", ["--problem", "hopper", "--image", IMAGE], "error: no IAM role given"),
        ("tune.py", ["--problem", "reacher", "--image", IMAGE], "error: no IAM role given"),
        ("tune.py", ["--problem", "reacher", "--role", ROLE], "error: no training image given"),
        ("train.py", ["--problem", "hopper", "--role", "my-role", "--image", IMAGE], "error: role 'my-role' is not"),
        ("tune.py", ["--problem", "reacher", "--role", ROLE, "--image", IMAGE, "--resume", "x"],
         "error: --resume applies to --backend local only"),
    ],
)
def test_cli_refuses_a_missing_role_or_image_in_one_sentence(aws_env, tmp_path, script, args, message):
    done = _script(script, "--backend", "sagemaker", *args, env=aws_env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_cli_refuses_sagemaker_flags_on_a_local_run(tmp_path):
    done = _script("train.py", "--problem", "reacher", "--spot", env={}, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "error: --spot applies to --backend sagemaker: add --backend sagemaker or drop --spot\n"
    assert not (tmp_path / "runs").exists()


def test_cli_train_starts_a_job_with_the_best_file_and_streams_its_reward_lines(aws, endpoint, aws_env, tmp_path,
                                                                               tuning_results):
    _, files, _, _ = tuning_results
    job = "rl-cli-train-1"
    _put_events(aws, f"{job}/algo-1-1700000000", ["episode_reward_mean: -3.5", "some other line",
                                                  "episode_reward_max: 12"])  # moto's job is done at once
    done = _script("train.py", "--problem", "reacher", "--backend", "sagemaker", "--endpoint-url", endpoint,
                   "--image", IMAGE, "--role", ROLE, "--job-name", job, "--hp-file", str(files["best_hyperparameters"]),
                   "--hp", "rl.training.seed=3", "--instance-count", "2", "--wait", env=aws_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        f"started training job {job} (2 x ml.m5.xlarge) in us-east-1",
        f"[0:00:00] training job {job}: Completed",
        "episode_reward_mean: -3.5",
        "episode_reward_max: 12",
        f"Model written to s3://{ACCOUNT_BUCKET}/{job}/output/model.tar.gz",
    ]
    hyperparameters = aws.sagemaker.describe_training_job(TrainingJobName=job)["HyperParameters"]
    assert hyperparameters == {"rl.training.stop.training_iteration": "20",
                               "rl.training.config.model_config.fcnet_hiddens": "[64, 64]",
                               "rl.training.config.kl_coeff": "0.5", "rl.training.config.num_epochs": "12",
                               "rl.training.config.gamma": "0.995",
                               "rl.training.config.batch_mode": '"complete_episodes"',
                               "rl.training.seed": "3", "sagemaker_program": '"train-reacher.py"'}
    assert done.stderr == ""


def test_cli_train_checks_hyperparameters_before_creating_the_job(aws, endpoint, aws_env, tmp_path):
    done = _script("train.py", "--problem", "hopper", "--backend", "sagemaker", "--endpoint-url", endpoint,
                   "--image", IMAGE, "--role", ROLE, "--hp", "rl.training.config.num_sgd_iterr=5", env=aws_env,
                   cwd=tmp_path)
    assert done.returncode == 2 and "unknown PPO setting 'rl.training.config.num_sgd_iterr'" in done.stderr
    assert aws.sagemaker.list_training_jobs()["TrainingJobSummaries"] == []


def test_cli_tune_turns_the_local_flags_into_one_tuning_job(aws, endpoint, aws_env, tmp_path):
    done = _script("tune.py", "--problem", "reacher", "--backend", "sagemaker", "--endpoint-url", endpoint,
                   "--image", IMAGE, "--role", ROLE,
                   "--param", "rl.training.config.lr=Continuous:1e-5:1e-3:Logarithmic",
                   "--static", "rl.training.stop.time_total_s=300", "--max-jobs", "12", "--max-parallel-jobs", "4",
                   "--strategy", "Random", "--early-stopping", "Auto", "--job-name", "rl-cli-tune-1", "--spot",
                   "--run-dir", str(tmp_path / "run"), env=aws_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        f"follow it with: python scripts/tune.py --backend sagemaker --attach rl-cli-tune-1 --endpoint-url {endpoint}"
        f" --run-dir {tmp_path / 'run'}")
    described = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="rl-cli-tune-1")
    job_config = described["HyperParameterTuningJobConfig"]
    assert (job_config["Strategy"], job_config["TrainingJobEarlyStoppingType"]) == ("Random", "Auto")
    assert job_config["ResourceLimits"] == {"MaxParallelTrainingJobs": 4, "MaxNumberOfTrainingJobs": 12}
    assert job_config["ParameterRanges"]["ContinuousParameterRanges"] == [
        {"Name": "rl.training.config.lr", "MinValue": "1e-05", "MaxValue": "0.001", "ScalingType": "Logarithmic"}]
    definition = described["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {"rl.training.stop.time_total_s": "300",
                                                   "sagemaker_program": '"train-reacher.py"'}
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 86_400, "MaxWaitTimeInSeconds": 172_800}
    assert (tmp_path / "run" / "sagemaker.json").is_file()


# --- the job contract accepts what SageMaker writes for a tuning trial ---


@pytest.mark.slow
def test_a_tuning_trials_hyperparameters_json_trains_under_the_toolkit(tmp_path, home):
    """hyperparameters.json exactly as SageMaker writes it for a trial of our tuning job: the static values
    JSON-encoded as we send them, tuned continuous and integer values as bare strings, and SageMaker's own
    keys. The toolkit's `train` picks the entry point from our sagemaker_program, as in the image."""
    import shutil

    static = {**TINY_PPO, "rl.training.config.num_envs_per_env_runner": 2, "rl.training.stop.training_iteration": 1}
    del static["rl.training.config.num_epochs"]  # tuned below
    space = SearchSpace((ContinuousParameter("rl.training.config.kl_coeff", 0.5, 1.0),
                         IntegerParameter("rl.training.config.num_epochs", 1, 3)), static)
    tuning = TuningConfig(problem="reacher", space=space, max_jobs=2, run_dir=tmp_path / "run")
    request = sagemaker.tuning_job_request(tuning, _config(), name="rl-compat", output_s3="s3://bkt/")
    trial = {
        **request["TrainingJobDefinition"]["StaticHyperParameters"],
        "rl.training.config.kl_coeff": "0.7523",
        "rl.training.config.num_epochs": "2",
        "_tuning_objective_metric": "episode_reward_mean",
        "sagemaker_estimator_class_name": '"Estimator"',
        "sagemaker_estimator_module": '"sagemaker.estimator"',
    }
    write_hyperparameters(tmp_path, trial, encode=False)
    (tmp_path / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    (tmp_path / "code").mkdir()  # the image's /opt/ml/code
    shutil.copy(REPO / "entrypoints" / "train-reacher.py", tmp_path / "code")
    # SM_STUDIO_LOCAL_MODE skips the toolkit's DNS wait for "algo-1", which only SageMaker resolves.
    env = job_env(tmp_path, home, SM_STUDIO_LOCAL_MODE="true")
    env.pop("SAGEMAKER_PROGRAM", None)
    result = subprocess.run([str(Path(sys.executable).with_name("train"))], env=env, capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics.parse_values(result.stdout.splitlines())  # SageMaker's regex reads the objective
    assert (tmp_path / "model" / "policy.onnx").is_file() and (tmp_path / "output" / "success").is_file()
    params = json.loads((tmp_path / "model" / "params.json").read_text())["hyperparameters"]
    assert params["rl.training.config.kl_coeff"] == 0.7523 and params["rl.training.config.num_epochs"] == 2
    assert params["rl.training.config.train_batch_size_per_learner"] == TINY_PPO[
        "rl.training.config.train_batch_size_per_learner"]
