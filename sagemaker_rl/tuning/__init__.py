"""Tuning: search spaces in SageMaker's vocabulary, strategies, runners, the tuning loop and its report."""

from sagemaker_rl.tuning.config import TuningConfig, config_from_mapping, default_space, load_config
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
from sagemaker_rl.tuning.tuner import (
    TuningResult,
    check_hyperparameters,
    load_run_config,
    resume_tuning,
    run_tuning,
)

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
    "check_hyperparameters",
    "config_from_mapping",
    "default_space",
    "from_parameter_ranges",
    "load_config",
    "load_run_config",
    "parse_parameter_flag",
    "parse_space",
    "parse_static_flag",
    "resume_tuning",
    "run_tuning",
]
