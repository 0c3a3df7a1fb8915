"""Tuning: search spaces in SageMaker's vocabulary, strategies, runners, the tuning loop and its report.

This module is the package's public face. Inside: `config` (TuningConfig, the tuner's defaults,
tuning.json's content), `space` (search spaces), `strategies` (samplers and pruners), `direction`
(which objective is better), `rundir` (the run directory's layout and lock), `record` (the trial
record's schema, its one reader and writer), `ranking` (best, re-evaluation, answer, progress from
the records), `trials` (the study's writer), `plan` (the run's phases: what to start next),
`pbt` (population-based training's planner), `scheduler` (jobs in slots, the pruner),
`recovery` (start-up after a stopped tuner), `tuner` (the run), `report`, `warm_start`, and
the runners (`runners`, `standby_pool`, `container_runner`, `ray_jobs`, `shared_ray`, `backends`).
"""

from sagemaker_rl.tuning.config import (
    TuningConfig,
    check_hyperparameters,
    config_from_mapping,
    default_space,
    load_config,
    load_run_config,
)
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
