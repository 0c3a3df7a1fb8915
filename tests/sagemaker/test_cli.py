"""scripts/train.py and scripts/tune.py with --backend sagemaker, end to end over HTTP to the moto server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.sagemaker.helpers import (
    ACCOUNT_BUCKET,
    IMAGE,
    ROLE,
    put_events,
)

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
        ("tune.py", ["--problem", "reacher", "--role", ROLE, "--image", IMAGE, "--reevaluate-top", "2"],
         "error: --reevaluate-top applies to --backend local only"),
        ("tune.py", ["--problem", "reacher", "--role", ROLE, "--image", IMAGE, "--warm-start", "runs/tune-x"],
         "error: tuning job name 'runs/tune-x' is not valid"),
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
    put_events(aws, f"{job}/algo-1-1700000000", ["episode_reward_mean: -3.5", "some other line",
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


