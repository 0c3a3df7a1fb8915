"""SageMaker training and tuning jobs: created, followed and their logs streamed against a moto server on
127.0.0.1 (real HTTP).

moto (5.2.5) implements CreateTrainingJob / CreateHyperParameterTuningJob / Describe*, S3, STS and
CloudWatch Logs, with three gaps this file works around where it meets them, each said on the spot:
every job is "Completed" the moment it is created, DescribeTrainingJob answers with moto's own
MetricDefinitions, and ListTrainingJobsForHyperParameterTuningJob is not implemented.
"""

from __future__ import annotations

import io
import json
import re

import pytest

from sagemaker_rl import metrics, sagemaker
from sagemaker_rl.errors import UserError
from tests.sagemaker.helpers import (
    ACCOUNT_BUCKET,
    IMAGE,
    ROLE,
    put_events,
    record_bodies,
    replay_states,
    sm_config,
    tuning_config,
)

# --- moto over HTTP ---


def test_training_job_is_created_with_the_fields_we_meant(aws):
    bodies = record_bodies(aws.sagemaker, "CreateTrainingJob")
    out = io.StringIO()
    config = sm_config(spot=True, max_run_s=1800, tags={"team": "rl"})
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
    tuning = tuning_config(tmp_path, strategy="Hyperband")
    name = sagemaker.start_tuning_job(aws, tuning, sm_config(output_s3="s3://my-bucket/rl"), out=io.StringIO())
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


def test_a_warm_start_tuning_job_names_its_parents_in_warm_start_config(aws, tmp_path):
    parent = sagemaker.start_tuning_job(aws, tuning_config(tmp_path / "p"), sm_config(output_s3="s3://bkt/"),
                                        out=io.StringIO())
    child = tuning_config(tmp_path / "c", warm_start=[parent], warm_start_type="TransferLearning")
    name = sagemaker.start_tuning_job(aws, child, sm_config(output_s3="s3://bkt/"), out=io.StringIO())
    described = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert described["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": parent}],
        "WarmStartType": "TransferLearning",
    }
    with pytest.raises(UserError, match="tuning job name 'runs/tune-reacher' is not valid"):
        sagemaker.start_tuning_job(aws, tuning_config(tmp_path / "d", warm_start=["runs/tune-reacher"]),
                                   sm_config(output_s3="s3://bkt/"), out=io.StringIO())


def test_log_streamer_returns_each_reward_line_once(aws):
    streamer = sagemaker.LogStreamer(aws.logs, "job-a")
    assert streamer.poll() == []  # no log group yet: the job has not started
    put_events(aws, "job-a/algo-1-1700000000", ["Invoking script train-reacher.py", "episode_reward_mean: -12.5",
                                                 "timesteps_total: 25000\ntraining_iteration: 1"])
    put_events(aws, "job-b/algo-1-1700000000", ["episode_reward_mean: 99"])  # another job: not ours
    assert streamer.poll() == ["episode_reward_mean: -12.5", "timesteps_total: 25000", "training_iteration: 1"]
    assert streamer.poll() == []
    put_events(aws, "job-a/algo-1-1700000000", ["episode_reward_mean: -9.25", "[reacher] iter 2 | ..."])
    assert streamer.poll() == ["episode_reward_mean: -9.25"]
    put_events(aws, "job-a/algo-2-1700000001", ["episode_reward_mean: -9.5"])  # a second host
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
    name = sagemaker.start_training_job(aws, "reacher", {}, sm_config(output_s3="s3://bkt/out"), out=io.StringIO())
    stream = f"{name}/algo-1-1700000000"

    def job_prints(call: int) -> None:  # the job writes reward lines while it trains
        if call == 2:
            put_events(aws, stream, ["episode_reward_mean: -20.5", "training_iteration: 1"])
        if call == 3:
            put_events(aws, stream, ["episode_reward_mean: -15.25", "training_iteration: 2"])

    replay_states(aws.sagemaker, "DescribeTrainingJob", [
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
    name = sagemaker.start_tuning_job(aws, tuning_config(tmp_path), sm_config(output_s3="s3://bkt/"), out=io.StringIO())
    counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    best = {"TrainingJobName": f"{name}-002-abc", "FinalHyperParameterTuningJobObjectiveMetric":
            {"MetricName": "episode_reward_mean", "Value": -7.125}}
    replay_states(aws.sagemaker, "DescribeHyperParameterTuningJob", [
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


# --- the user's code directory, uploaded as the SDK uploads a source_dir ---


def _code_dir(tmp_path):
    code = tmp_path / "my_code"
    (code / "my_pkg").mkdir(parents=True)
    (code / "my_pkg" / "__init__.py").write_text("")
    (code / "my_pkg" / "envs.py").write_text("class MyRobot: ...\n")
    (code / "requirements.txt").write_text("\n")
    return code


def _members(aws, uri: str) -> list[str]:
    import tarfile

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return sorted(archive.getnames())


def test_a_training_job_with_a_code_dir_gets_its_bundle_as_the_submit_directory(aws, tmp_path):
    aws.s3.create_bucket(Bucket="bkt")
    hyperparameters = {"rl.env.id": "CartPole-v1", "rl.training.stop.training_iteration": 1}
    name = sagemaker.start_training_job(aws, None, hyperparameters, sm_config(output_s3="s3://bkt/out"),
                                        out=io.StringIO(), code_dir=_code_dir(tmp_path))
    described = aws.sagemaker.describe_training_job(TrainingJobName=name)
    uri = f"s3://bkt/out/{name}/source/sourcedir.tar.gz"
    assert described["HyperParameters"]["sagemaker_submit_directory"] == json.dumps(uri)
    assert described["HyperParameters"]["sagemaker_program"] == '"train-env.py"'
    assert name.startswith("sagemaker-rl-env-")
    assert _members(aws, uri) == ["my_pkg/__init__.py", "my_pkg/envs.py", "requirements.txt", "train-env.py"]


def test_a_tuning_job_with_a_code_dir_names_one_bundle_for_every_trial(aws, tmp_path):
    aws.s3.create_bucket(Bucket="bkt")
    tuning = tuning_config(tmp_path, code_dir=_code_dir(tmp_path))
    name = sagemaker.start_tuning_job(aws, tuning, sm_config(output_s3="s3://bkt/"), out=io.StringIO())
    static = aws.sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name)["TrainingJobDefinition"]["StaticHyperParameters"]
    uri = f"s3://bkt/{name}/source/sourcedir.tar.gz"
    assert static["sagemaker_submit_directory"] == json.dumps(uri)
    assert static["sagemaker_program"] == '"train-reacher.py"'
    assert "train-reacher.py" in _members(aws, uri)


def test_a_missing_code_dir_fails_before_any_aws_call(aws, tmp_path):
    bodies = record_bodies(aws.sagemaker, "CreateTrainingJob")
    with pytest.raises(UserError, match="does not exist: give --code-dir"):
        sagemaker.start_training_job(aws, "reacher", {}, sm_config(output_s3="s3://bkt/"), out=io.StringIO(),
                                     code_dir=tmp_path / "gone")
    assert bodies == [] and aws.s3.list_buckets()["Buckets"] == []
