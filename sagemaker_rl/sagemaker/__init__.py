"""SageMaker: training and tuning jobs through boto3 — the requests, starting them, following them.

Requests are built from the objects local runs use: the job's own hyperparameter parser (run before
any AWS call), the reward lines' metric definitions, the tuning space's ParameterRanges. Following a
tuning job ends with the local tuner's report files (trials.csv, best_hyperparameters.json).
The SageMaker SDK 3.x has no RLEstimator; boto3's API is the stable path.

One module per seam: `config` (settings and names, checked when built), `requests` (the request
builders), `aws` (clients, errors, the default bucket), `training_jobs` and `tuning_jobs` (start and
follow), `results` (a tuning job's trials as a local study and its report).
"""

from sagemaker_rl.sagemaker.aws import Aws, aws_errors, connect, default_output_s3
from sagemaker_rl.sagemaker.config import SageMakerConfig, entry_point, job_name, problem_of
from sagemaker_rl.sagemaker.requests import (
    check_tuning_job,
    training_hyperparameters,
    training_job_request,
    tuning_job_request,
)
from sagemaker_rl.sagemaker.results import list_tuning_trials, tuning_study, write_tuning_results
from sagemaker_rl.sagemaker.training_jobs import (
    LOG_GROUP,
    POLL_S,
    LogStreamer,
    start_training_job,
    training_outcome,
    wait_for_training_job,
)
from sagemaker_rl.sagemaker.tuning_jobs import start_tuning_job, wait_for_tuning_job

__all__ = [
    "LOG_GROUP",
    "POLL_S",
    "Aws",
    "LogStreamer",
    "SageMakerConfig",
    "aws_errors",
    "check_tuning_job",
    "connect",
    "default_output_s3",
    "entry_point",
    "job_name",
    "list_tuning_trials",
    "problem_of",
    "start_training_job",
    "start_tuning_job",
    "training_hyperparameters",
    "training_job_request",
    "training_outcome",
    "tuning_job_request",
    "tuning_study",
    "wait_for_training_job",
    "wait_for_tuning_job",
    "write_tuning_results",
]
