"""The scheduler and ASHA's rungs, with scripted jobs: what the pruner decides at a trial's last report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sagemaker_rl.metrics import Record
from sagemaker_rl.tuning.config import config_from_mapping
from sagemaker_rl.tuning.runners import JobSpec, JobStatus
from sagemaker_rl.tuning.scheduler import Scheduler
from sagemaker_rl.tuning.trials import LOSSES_IN_A_ROW, Trials

BUDGET = 9000  # rungs at 1,000, 3,000 and 9,000 env steps (a ninth of it, times 3)
LOST = -1  # a script's step: the job ends there, lost with the run's Ray instance


@dataclass
class ScriptedJob:
    """TEST DOUBLE of a started job: it has already printed `values` (env step -> value) and ended."""

    spec: JobSpec
    values: dict[int, float]
    stopped: bool = False

    def poll(self) -> JobStatus:
        records = [Record(index + 1, step, value) for index, (step, value) in enumerate(self.values.items())]
        if LOST in self.values:  # ended with the run's Ray instance
            return JobStatus(values=records[:-1], done=True, failure="the Ray instance ended", lost=True)
        return JobStatus(values=records, done=True)

    def stop(self) -> None:
        self.stopped = True

    def wait(self, timeout: float) -> bool:
        return True


@dataclass
class ScriptedRunner:
    """TEST DOUBLE of a runner: the next job it starts reports the next script."""

    scripts: list[dict[int, float]]
    started: list[ScriptedJob] = field(default_factory=list)

    def start(self, spec: JobSpec) -> ScriptedJob:
        self.started.append(ScriptedJob(spec, self.scripts.pop(0)))
        return self.started[-1]


def _run_one_at_a_time(tmp_path: Path, scripts: list[dict[int, float]], *, earlier: int = 0
                       ) -> tuple[list[TrialState], ScriptedRunner, Trials]:
    """Each script as a trial's job, one after the other; `earlier` trials first, each stopped at the last two rungs
    below the budget with 0 there (so that a rung has others to compare with: ASHA judges no trial alone)."""
    config = config_from_mapping({
        "strategy": "ASHA", "train_budget": str(BUDGET), "max_jobs": len(scripts), "max_parallel_jobs": 1,
        "reevaluate_top": 1, "reevaluate_seeds": 1, "check_hyperparameters": False,
        "parameters": {"rl.training.config.lr": {"type": "Continuous", "min_value": 1e-5, "max_value": 1e-3}},
        "run_dir": str(tmp_path / "run"),
    }).resolved()
    config.run_dir.mkdir()
    trials, runner = Trials.open(config), ScriptedRunner(list(scripts))
    for _ in range(earlier):
        trials.study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, intermediate_values={1000: 0.0,
                                                                                                       3000: 0.0}))
    scheduler = Scheduler(config, runner, trials)  # type: ignore[arg-type]
    for _ in scripts:
        trial, directory, flat = trials.ask(config.space)
        scheduler.queue(trial, directory, {**flat, "rl.training.stop.timesteps_total": BUDGET}, None)
        scheduler.start_jobs()
        assert scheduler.poll() and not scheduler.active
    return [trial.state for trial in trials.study.trials[earlier:]], runner, trials


def test_a_trial_that_trained_to_its_stop_completes_though_the_last_rung_ranks_it_low(tmp_path):
    states, runner, _ = _run_one_at_a_time(tmp_path, [
        {1000: 10.0, 3000: 10.0, 9000: 10.0},
        {1000: 20.0, 3000: 20.0, 9000: 0.0},  # best at the first two rungs, worst at the last: its stop
    ], earlier=2)
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert not any(job.stopped for job in runner.started)


def test_a_trial_below_its_rung_before_its_stop_is_still_stopped_there(tmp_path):
    states, runner, _ = _run_one_at_a_time(tmp_path, [
        {1000: 10.0, 3000: 10.0, 9000: 10.0},
        {1000: -1.0, 3000: 20.0, 9000: 20.0},
    ], earlier=2)
    assert states == [TrialState.COMPLETE, TrialState.PRUNED]
    assert runner.started[1].stopped


def test_a_rungs_first_trials_stop_there_with_nobody_to_compare_them_with(tmp_path):
    # Optuna's and Ray Tune's ASHA would promote each of these: the first at every rung, the second as the better
    # of two; here each waits at the first rung (paused) until three trials are there, and the third, the best of
    # three, goes on to the next rung, where it is alone again.
    states, runner, trials = _run_one_at_a_time(tmp_path, [
        {1000: 10.0, 3000: 10.0, 9000: 10.0},
        {1000: 20.0, 3000: 20.0, 9000: 20.0},
        {1000: 30.0, 3000: 30.0, 9000: 30.0},
    ])
    assert states == [TrialState.PRUNED] * 3 and all(job.stopped for job in runner.started)
    assert [trial.last_step for trial in trials.study.trials] == [1000, 1000, 3000]


def test_a_trial_whose_job_was_lost_with_the_runs_ray_instance_runs_again_outside_the_budget(tmp_path):
    states, _, trials = _run_one_at_a_time(tmp_path, [
        {1000: 10.0, LOST: 0.0},
        {1000: 12.0, 3000: 12.0, 9000: 12.0},  # the rerun: asked next, with the lost trial's parameters
    ], earlier=2)
    lost, rerun = trials.study.trials[2:]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]
    assert rerun.params == lost.params and rerun.user_attrs["rerun_of"] == lost.number
    assert lost.user_attrs["interrupted"] and lost.user_attrs["failure"] == "the Ray instance ended"
    assert trials.to_rerun() == []  # queued once, not again at the next start


def test_a_trial_whose_job_is_lost_three_times_in_a_row_fails_instead_of_running_for_ever(tmp_path):
    states, _, trials = _run_one_at_a_time(tmp_path, [{1000: 10.0, LOST: 0.0}] * LOSSES_IN_A_ROW, earlier=2)
    assert states == [TrialState.FAIL] * LOSSES_IN_A_ROW
    *lost, last = trials.study.trials[2:]
    assert [trial.user_attrs.get("rerun_of") for trial in trials.study.trials[2:]] == [None, 2, 3]
    assert all(trial.user_attrs["interrupted"] for trial in lost)
    assert "interrupted" not in last.user_attrs  # failed: not queued again, now or at the next start
    assert last.user_attrs["failure"] == "the Ray instance ended (its job was lost 3 times in a row: the trial is " \
                                         "not run again)"
    assert trials.to_rerun() == [] and not trials.study.get_trials(states=(TrialState.WAITING,))
