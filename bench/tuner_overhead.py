"""Benchmark 5: the local tuner's overhead per trial.

A small tuning run (Random strategy, trials one at a time, each a very short job: one iteration of
a 2,000-step batch) is timed from `run_tuning` to its return, then the same job (same
hyperparameters, same CPUs) is timed alone as a process, as the tuner starts it. Overhead per trial
= tuning wall time / trials - the lone job's wall time: the tuner's own work (Optuna sampling and
storage, writing inputs, polling, the report) plus what a job costs more under the tuner; it is
negative when the run's shared Ray instance saves more than the tuner costs (a lone job starts its
own Ray). Also per trial: its wall time minus its training time (the job's time_total_s), the
figure a trial's budget is planned with: start-up, the final export and the exit.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import child_env, cores

SHORT_JOB = {
    "rl.training.stop.training_iteration": 1,
    "rl.training.config.train_batch_size_per_learner": 2000,
    "rl.training.config.minibatch_size": 500,
    "rl.training.config.num_envs_per_env_runner": 4,  # the presets' 16 copies would finish no episode in 2,000 steps
}


def _lone_job(problem: str, hyperparameters: dict[str, Any], cpus: int) -> float:
    from sagemaker_rl import contract

    with tempfile.TemporaryDirectory() as base:
        contract.write_inputs(contract.JobPaths(Path(base)), hyperparameters)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sagemaker_rl.job", "--problem", problem], cwd=base, check=True,
                       env=child_env(SAGEMAKER_BASE_DIR=base, HOME=base, SM_NUM_CPUS=str(cpus)),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def measure(problem: str, trials: int) -> dict[str, Any]:
    import optuna

    from sagemaker_rl.tuning import ContinuousParameter, SearchSpace, TuningConfig, run_tuning

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = SearchSpace((ContinuousParameter("rl.training.config.kl_coeff", 0.5, 1.0),), dict(SHORT_JOB))
    with tempfile.TemporaryDirectory() as run_dir:
        config = TuningConfig(problem=problem, space=space, max_jobs=trials, max_parallel_jobs=1,
                              strategy="Random", run_dir=Path(run_dir) / "run", sampler_seed=0, reevaluate_top=0)
        start = time.perf_counter()
        result = run_tuning(config, out=io.StringIO(), command=["bench/tuner_overhead.py"])
        tuning_s = time.perf_counter() - start
        durations = _trial_durations(Path(run_dir) / "run")
        training = _training_seconds(Path(run_dir) / "run")
    if result.complete != trials:
        raise RuntimeError(f"the tuning run completed {result.complete} of {trials} trials")
    lone_s = [_lone_job(problem, {**SHORT_JOB, "rl.training.config.kl_coeff": 0.75}, config.cpus_per_job)
              for _ in range(2)]
    lone = min(lone_s)
    per_trial = tuning_s / trials
    return {"problem": problem, "trials": trials, "cpus_per_job": config.cpus_per_job, "job": SHORT_JOB,
            "tuning_wall_s": round(tuning_s, 1), "wall_per_trial_s": round(per_trial, 1),
            "trial_durations_s": durations, "lone_job_s": [round(s, 1) for s in lone_s],
            "trial_wall_minus_training_s": [round(d - t, 1) for d, t in zip(durations, training, strict=True)],
            "overhead_per_trial_s": round(per_trial - lone, 1), "overhead_fraction": round(per_trial / lone - 1, 3),
            "cores": cores()}


def _trial_durations(run_dir: Path) -> list[float]:
    import optuna

    from sagemaker_rl.tuning.record import read
    from sagemaker_rl.tuning.rundir import default_storage

    study = optuna.load_study(study_name=run_dir.name, storage=default_storage(run_dir))
    return [round(float(read(trial).duration_s or 0.0), 1) for trial in study.trials]


def _training_seconds(run_dir: Path) -> list[float]:
    """Each trial's training time, as its job counted it (model/result.json's time_total_s)."""
    import json

    return [float(json.loads(path.read_text())["time_total_s"])
            for path in sorted(run_dir.glob("trials/*/model/result.json"))]
