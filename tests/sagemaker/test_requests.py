"""SageMaker settings and requests: checked before any AWS call, and what a job then reads."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.validate import validate_parameters

from sagemaker_rl import metrics, sagemaker
from sagemaker_rl.errors import UserError
from sagemaker_rl.sagemaker import SageMakerConfig
from sagemaker_rl.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    SearchSpace,
    TuningConfig,
    TuningError,
)
from tests.conftest import REPO, TINY_PPO, job_env, write_hyperparameters
from tests.sagemaker.helpers import (
    IMAGE,
    ROLE,
    input_shape,
    sm_config,
    tuning_config,
)

# --- requests (no AWS) ---


def test_training_request_encodes_hyperparameters_as_the_sdk_and_sets_every_part(tmp_path):
    config = sm_config(instance_type="ml.c5.2xlarge", instance_count=2, spot=True, max_run_s=3600,
                     checkpoint_s3="s3://bucket/ckpt", tags={"team": "rl"})
    encoded = sagemaker.training_hyperparameters(
        "hopper", {"rl.training.config.lr": 3e-4, "rl.training.config.batch_mode": "truncate_episodes",
                   "rl.training.config.model_config.fcnet_hiddens": [32, 32]})
    request = sagemaker.training_job_request("hopper", encoded, config, name="job-1", output_s3="s3://bucket/out")
    validate_parameters(request, input_shape("CreateTrainingJob"))  # botocore's own check of the request
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
            "reacher", {}, sm_config(), name="j", output_s3="s3://bkt/")["AlgorithmSpecification"]["MetricDefinitions"]:
        for line in lines:
            match = re.search(definition["Regex"], line)
            if match and line.startswith(definition["Name"]):
                read[definition["Name"]] = float(match.group(1))
    assert read == {"episode_reward_mean": -11.3453, "episode_reward_max": 1.5e-7, "timesteps_total": 115200,
                    "training_iteration": 4}


def test_spot_job_gets_checkpoints_under_its_output_and_on_demand_gets_none():
    spot = sagemaker.training_job_request("reacher", {}, sm_config(spot=True), name="j1", output_s3="s3://bkt/out")
    assert spot["CheckpointConfig"]["S3Uri"] == "s3://bkt/out/j1/checkpoints/"
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 86_400, "MaxWaitTimeInSeconds": 172_800}
    plain = sagemaker.training_job_request("reacher", {}, sm_config(), name="j2", output_s3="s3://bkt/out")
    assert "CheckpointConfig" not in plain and plain["EnableManagedSpotTraining"] is False
    assert plain["StoppingCondition"] == {"MaxRuntimeInSeconds": 86_400}


def test_tuning_request_carries_the_local_space_budget_strategy_and_early_stopping(tmp_path):
    tuning = tuning_config(tmp_path, early_stopping="Auto")
    request = sagemaker.tuning_job_request(tuning, sm_config(), name="rl-reacher-1", output_s3="s3://bkt/out")
    validate_parameters(request, input_shape("CreateHyperParameterTuningJob"))
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


def test_completion_criteria_and_the_max_runtime_are_sagemakers(tmp_path):
    tuning = tuning_config(tmp_path, target_objective=15, max_jobs_not_improving=4, complete_on_convergence=True,
                           max_runtime_s=1800)
    request = sagemaker.tuning_job_request(tuning, sm_config(), name="done", output_s3="s3://bkt/")
    validate_parameters(request, input_shape("CreateHyperParameterTuningJob"))
    assert request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] == 1800
    assert request["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] == {
        "TargetObjectiveMetricValue": 15.0,
        "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 4},
        "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"},
    }
    plain = sagemaker.tuning_job_request(tuning_config(tmp_path), sm_config(), name="plain", output_s3="s3://bkt/")
    assert "TuningJobCompletionCriteria" not in plain["HyperParameterTuningJobConfig"]


def test_hyperband_sends_its_resources_and_grid_leaves_the_count_to_sagemaker(tmp_path):
    hyperband = sagemaker.tuning_job_request(tuning_config(tmp_path, strategy="Hyperband", hyperband_min_resource=2),
                                             sm_config(), name="hb", output_s3="s3://bkt/")
    assert hyperband["HyperParameterTuningJobConfig"]["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 20}}  # from rl.training.stop.training_iteration
    grid_space = SearchSpace((CategoricalParameter("rl.training.config.num_epochs", (5, 10, 20)),))
    grid = sagemaker.tuning_job_request(tuning_config(tmp_path, strategy="Grid", space=grid_space, max_jobs=None),
                                        sm_config(), name="grid", output_s3="s3://bkt/")
    validate_parameters(grid, input_shape("CreateHyperParameterTuningJob"))
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
        ({"train_budget": "1M"}, {}, "a SageMaker tuning job has no re-evaluation to train at it"),
        ({"strategy": "Hyperband", "space": SearchSpace((ContinuousParameter("rl.training.config.lr", 1e-5, 1e-3),))},
         {}, "Hyperband on SageMaker needs the most training iterations"),
    ],
)
def test_tuning_runs_sagemaker_cannot_run_are_refused(tmp_path, changes, config, message):
    with pytest.raises(UserError, match=re.escape(message)):
        sagemaker.check_tuning_job(tuning_config(tmp_path, **changes), sm_config(**config))


def test_a_bad_hyperparameter_fails_with_the_jobs_own_message_before_any_aws_call(tmp_path):
    class NoAws:
        def __getattr__(self, name):
            raise AssertionError(f"AWS was called ({name}) before the hyperparameters were checked")

    with pytest.raises(UserError, match="unknown PPO setting 'rl.training.config.lrr' \\(did you mean 'lr'\\?\\)"):
        sagemaker.start_training_job(NoAws(), "reacher", {"rl.training.config.lrr": 1e-3}, sm_config(),
                                     out=io.StringIO())
    bad_space = SearchSpace((ContinuousParameter("rl.training.config.gamma", 0.5, 1.5),))
    with pytest.raises(TuningError, match="gamma must be a number > 0 and <= 1, got 1.5"):
        sagemaker.start_tuning_job(NoAws(), tuning_config(tmp_path, space=bad_space), sm_config(), out=io.StringIO())


def test_each_problem_has_the_entry_point_named_in_sagemaker_program():
    from sagemaker_rl.job.problems import PROBLEMS

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
    request = sagemaker.tuning_job_request(tuning, sm_config(), name="rl-compat", output_s3="s3://bkt/")
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
    records = metrics.read_records(result.stdout.splitlines())  # read with SageMaker's regex
    assert any(record.value is not None for record in records)
    assert (tmp_path / "model" / "policy.onnx").is_file() and (tmp_path / "output" / "success").is_file()
    params = json.loads((tmp_path / "model" / "params.json").read_text())["hyperparameters"]
    assert params["rl.training.config.kl_coeff"] == 0.7523 and params["rl.training.config.num_epochs"] == 2
    assert params["rl.training.config.train_batch_size_per_learner"] == TINY_PPO[
        "rl.training.config.train_batch_size_per_learner"]
