"""Tuning: search spaces in SageMaker's vocabulary, strategies, runners, the tuning loop and its report."""

from sagemaker_rl.tuning.config import (
    TuningConfig,
    check_hyperparameters,
    config_from_mapping,
    default_space,
    load_config,
)
from sagemaker_rl.tuning.rundir import load_run_config
from sagemaker_rl.tuning.runners import Job, JobSpec, JobStatus, LocalProcessRunner, Runner
from sagemaker_rl.tuning.space import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Scaling,
    SearchSpace,
    TuningError,
    from_parameter_ranges,
    parse_parameter_flag,
    parse_space,
    parse_static_flag,
)
from sagemaker_rl.tuning.strategies import EarlyStopping, MedianRunningAveragePruner, Strategy
from sagemaker_rl.tuning.tuner import TuningResult, TuningRun, open_run, reopen_run, resume_tuning, run_tuning

__all__ = [
    "CategoricalParameter",
    "ContinuousParameter",
    "EarlyStopping",
    "IntegerParameter",
    "Job",
    "JobSpec",
    "JobStatus",
    "LocalProcessRunner",
    "MedianRunningAveragePruner",
    "Runner",
    "Scaling",
    "SearchSpace",
    "Strategy",
    "TuningConfig",
    "TuningError",
    "TuningResult",
    "TuningRun",
    "check_hyperparameters",
    "config_from_mapping",
    "default_space",
    "from_parameter_ranges",
    "load_config",
    "load_run_config",
    "open_run",
    "parse_parameter_flag",
    "parse_space",
    "parse_static_flag",
    "reopen_run",
    "resume_tuning",
    "run_tuning",
]
