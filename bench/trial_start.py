"""Benchmark: what a trial costs beyond its training time, in the shape of `make tune`, cold and from standby.

Three small tuning runs of the same study, one after the other: trials of a fixed training time
(rl.training.stop.time_total_s), 2 at a time on 1 CPU each, Random strategy, no re-evaluation. The
first starts each job as `python -m sagemaker_rl.job` (as before standby processes); the second as a
fresh standby process ("cold": imports, first uses of torch's compiler front end and of the ONNX
exporter, all inside the trial); the third is the tuner's default, where each slot keeps a job
process on standby with that done (`sagemaker_rl/job/standby/`). Per trial: its wall
time (from the tuner creating it until its result is recorded, model/ with policy.onnx written) minus
its training time (the job's own time_total_s). Issue 30's goal: at most 2 s. The first trial of each
slot also starts the run's Ray instance and finds no spare yet: the median is over the trials after them.

    .venv/bin/python bench/trial_start.py [--trials 8] [--training-s 20] [--problem reacher]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import cores, emit, load_average

# "python -m": each job as `python -m sagemaker_rl.job`, as the runner started jobs before standby processes
# (its build pays for runpy's frozen frames, see sagemaker_rl/job/standby/__main__.py); "cold": a fresh standby
# process per job, prepared inside the trial; "standby": the tuner's default.
MODES = ("python -m", "cold", "standby")


def measure(problem: str, trials: int, training_s: float) -> dict[str, Any]:
    runs = {mode: _run(mode, problem, trials, training_s) for mode in MODES}
    return {"problem": problem, "trials": trials, "training_s": training_s, "parallel": 2, "cpus_per_job": 1,
            "cores": cores(), "runs": runs,
            # The first trial of each slot also waits for the run's Ray instance, and finds no spare yet.
            "median_extra_after_first_s": {mode: statistics.median(run["extra_s"][2:]) for mode, run in runs.items()}}


def _run(mode: str, problem: str, trials: int, training_s: float) -> dict[str, Any]:
    import optuna

    from sagemaker_rl.tuning import ContinuousParameter, LocalProcessRunner, SearchSpace, TuningConfig, run_tuning
    from sagemaker_rl.tuning.shared_ray import SharedRay

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace((ContinuousParameter("rl.training.config.kl_coeff", 0.5, 1.0),),
                        {"rl.training.stop.time_total_s": training_s})
    load = load_average()
    with tempfile.TemporaryDirectory() as parent:
        run_dir = Path(parent) / "run"
        config = TuningConfig(problem=problem, space=space, max_jobs=trials, max_parallel_jobs=2, strategy="Random",
                              run_dir=run_dir, sampler_seed=0, reevaluate_top=0)
        shared = SharedRay(run_dir, num_cpus=2) if mode != "standby" else None
        # A command that does not start with this Python runs as it is (`env` runs the interpreter).
        command = [shutil.which("env") or "/usr/bin/env", sys.executable, "-m", "sagemaker_rl.job"]
        runner = (LocalProcessRunner(command if mode == "python -m" else None, shared_ray=shared) if shared
                  else None)  # None: the tuner's default, on standby
        try:
            result = run_tuning(config, runner=runner, out=io.StringIO(), command=["bench/trial_start.py"])
        finally:
            if shared is not None:
                shared.close()
        if result.complete != trials:
            raise RuntimeError(f"the {mode} run completed {result.complete} of {trials} trials")
        walls = _trial_walls(run_dir)
        training = [float(json.loads(path.read_text())["time_total_s"])
                    for path in sorted(run_dir.glob("trials/*/model/result.json"))]
    return {"load_average": load, "trial_wall_s": walls, "training_s": training,
            "extra_s": [round(wall - spent, 1) for wall, spent in zip(walls, training, strict=True)]}


def _trial_walls(run_dir: Path) -> list[float]:
    import optuna

    from sagemaker_rl.tuning.record import read
    from sagemaker_rl.tuning.rundir import default_storage

    study = optuna.load_study(study_name=run_dir.name, storage=default_storage(run_dir))
    return [float(read(trial).duration_s or 0.0) for trial in sorted(study.trials, key=lambda trial: trial.number)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="reacher")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--training-s", type=float, default=20.0)
    args = parser.parse_args()
    emit(measure(args.problem, args.trials, args.training_s))


if __name__ == "__main__":
    main()
