"""The tuning loop, run on the job contract's TEST DOUBLE (fake_job.py), not the real job.

The real job takes ~15 s to start and minutes to train; these tests exercise the loop's behaviour
(failures, budget, parallelism, early stopping, Ctrl-C, kill -9 and resume) in seconds.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sagemaker_rl.tuning import TuningError, config_from_mapping, open_run, reopen_run, run_tuning
from sagemaker_rl.tuning.record import trial_job_dirs
from sagemaker_rl.tuning.runners import PID_FILE

optuna.logging.set_verbosity(optuna.logging.WARNING)
DRIVER = Path(__file__).with_name("fake_tuning.py")


def _config(tmp_path: Path, **settings):
    return config_from_mapping(
        {
            "run_dir": str(tmp_path / "run"),
            "num_cpus": 2,
            "check_hyperparameters": False,
            "sampler_seed": 0,
            "reevaluate_top": 0,  # the re-evaluation has its own tests
            **settings,
        }
    )


def _study(run_dir: Path) -> optuna.Study:
    data = json.loads((run_dir / "tuning.json").read_text())
    return optuna.load_study(study_name=data["run"]["study_name"], storage=data["run"]["storage"])


def _starts(trial_dir: str) -> int:
    return len((Path(trial_dir) / "starts.log").read_text().splitlines())


def test_failed_nan_and_silent_trials_are_recorded_with_reasons_and_the_run_goes_on(tmp_path, fake_runner):
    config = _config(
        tmp_path,
        strategy="Grid",
        max_parallel_jobs=2,
        parameters={"fake.mode": {"type": "Categorical", "values": ["ok", "crash", "nan", "silent", "sigkill"]}},
        static={"rl.training.stop.training_iteration": 3, "fake.slope": 2.0},
    )
    out = io.StringIO()
    result = run_tuning(config, runner=fake_runner, out=out)
    assert (result.complete, result.failed, result.pruned, result.interrupted) == (1, 4, 0, False)
    assert result.best_value == 6.0
    rows = {row["fake.mode"]: row for row in csv.DictReader(open(result.run_dir / "trials.csv"))}
    assert rows["ok"]["status"] == "complete" and float(rows["ok"]["objective"]) == 6.0
    assert "RuntimeError: boom" in rows["crash"]["failure"]
    assert "NaN" in rows["nan"]["failure"]
    assert "no episode_reward_mean line" in rows["silent"]["failure"]
    assert "SIGKILL" in rows["sigkill"]["failure"]
    assert all(rows[mode]["status"] == "failed" for mode in ("crash", "nan", "silent", "sigkill"))
    best = json.loads((result.run_dir / "best_hyperparameters.json").read_text())
    assert best == {
        "fake.mode": "ok",
        "fake.slope": 2.0,
        "rl.training.stop.training_iteration": 3,
        "rl.training.stop.time_total_s": 60,
    }  # the default static value stays
    html = (result.run_dir / "report.html").read_text()
    assert "Answer (best trial" in html and "RuntimeError: boom" in html
    printed = out.getvalue()
    assert "5/5 done (4 failed" in printed and "failed trials:" in printed


def test_budget_is_kept_and_parallel_jobs_share_the_cores(tmp_path, fake_runner):
    config = _config(
        tmp_path,
        strategy="Random",
        max_jobs=5,
        max_parallel_jobs=2,
        parameters={"rl.training.config.kl_coeff": {"type": "Continuous", "min_value": 0.5, "max_value": 1.0}},
        static={"rl.training.stop.training_iteration": 3, "fake.sleep": 0.3},
    )
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    trials = _study(result.run_dir).trials
    assert len(trials) == 5 and result.complete == 5
    spans = []
    for trial in trials:
        directory = Path(trial.user_attrs["trial_dir"])
        assert _starts(directory) == 1
        assert (directory / "env.log").read_text().strip() == "1"  # 2 cores / 2 parallel jobs
        start = float((directory / "starts.log").read_text().split()[1])
        spans.append((start, (directory / "output/success").stat().st_mtime))
        assert trial.value == pytest.approx(3 * trial.params["rl.training.config.kl_coeff"], rel=1e-5)
    most_at_once = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert most_at_once == 2


def test_early_stopping_auto_stops_poor_trials_and_ends_their_jobs(tmp_path, fake_runner):
    config = _config(
        tmp_path,
        strategy="Random",
        early_stopping="Auto",
        max_jobs=7,
        max_parallel_jobs=1,
        sampler_seed=3,
        parameters={"fake.slope": {"type": "Continuous", "min_value": -1.0, "max_value": 1.0}},
        static={"rl.training.stop.training_iteration": 6, "fake.sleep": 0.4},
    )
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    trials = _study(result.run_dir).trials
    pruned = [trial for trial in trials if trial.state == TrialState.PRUNED]
    assert result.pruned == len(pruned) >= 1
    complete_slopes = sorted(t.params["fake.slope"] for t in trials if t.state == TrialState.COMPLETE)
    for trial in pruned:
        assert trial.last_step < 6000  # env steps: the fake job does 1,000 an iteration
        assert trial.params["fake.slope"] < complete_slopes[-1]
        log = (Path(trial.user_attrs["trial_dir"]) / "stdout.log").read_text()
        assert log.count("episode_reward_mean") < 6  # the job was stopped, not run to the end


def test_seeds_run_as_separate_jobs_and_the_objective_is_their_mean_of_the_last_k(tmp_path, fake_runner):
    config = _config(
        tmp_path,
        strategy="Random",
        max_jobs=2,
        max_parallel_jobs=3,
        seeds=2,
        objective_last_k=2,
        storage=f"sqlite:///{tmp_path / 'shared.db'}",
        study_name="shared",
        parameters={"fake.slope": {"type": "Continuous", "min_value": 1.0, "max_value": 2.0}},
        static={"rl.training.stop.training_iteration": 3, "rl.training.seed": 10},
    )
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    assert result.complete == 2
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path / 'shared.db'}")
    for trial in study.trials:
        slope = trial.params["fake.slope"]
        # per seed: mean of the values at iterations 2 and 3 = 2.5 * slope + seed
        assert trial.user_attrs["seed_objectives"] == pytest.approx([2.5 * slope + 10, 2.5 * slope + 11], abs=1e-3)
        assert trial.value == pytest.approx(2.5 * slope + 10.5, abs=1e-3)
        seeds = [
            json.loads(
                (Path(trial.user_attrs["trial_dir"]) / f"seed-{i}/input/config/hyperparameters.json").read_text()
            )["rl.training.seed"]
            for i in range(2)
        ]
        assert seeds == ["10", "11"]  # JSON-encoded, as SageMaker writes them
        assert trial.intermediate_values[3000] == pytest.approx(3 * slope + 10.5, abs=1e-3)  # the mean, at env steps
    assert not (result.run_dir / "study.db").exists()  # the given storage was used


def test_a_job_that_cannot_start_fails_its_trial_and_the_run_goes_on(tmp_path):
    from sagemaker_rl.tuning import LocalProcessRunner

    config = _config(tmp_path, max_jobs=2, static={"rl.training.stop.training_iteration": 1})
    result = run_tuning(config, runner=LocalProcessRunner([str(tmp_path / "no-such-program")]), out=io.StringIO())
    assert (result.complete, result.failed) == (0, 2)
    rows = list(csv.DictReader(open(result.run_dir / "trials.csv")))
    assert all("could not start the job: FileNotFoundError" in row["failure"] for row in rows)


def test_hyperband_gives_poor_trials_fewer_iterations(tmp_path, fake_runner):
    config = _config(
        tmp_path,
        strategy="Hyperband",
        max_jobs=8,
        max_parallel_jobs=2,
        hyperband_min_resource=1000,
        hyperband_max_resource=9000,
        parameters={"fake.slope": {"type": "Continuous", "min_value": -1.0, "max_value": 1.0}},
        static={"rl.training.stop.training_iteration": 9, "fake.sleep": 0.25},
    )
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    trials = _study(result.run_dir).trials
    assert len(trials) == 8 and result.complete + result.pruned == 8 and result.pruned >= 1
    assert all(t.last_step < 9000 for t in trials if t.state == TrialState.PRUNED)


ASHA_TRIALS = {
    "strategy": "ASHA",
    "train_budget": "9k",  # 9 iterations of the fake job's 1,000 env steps; rungs at 1,000, 3,000 and 9,000
    "max_jobs": 8,
    "max_parallel_jobs": 2,
    "num_cpus": 2,
    "reevaluate_top": 1,
    "reevaluate_seeds": 1,
    "check_hyperparameters": False,
    "sampler_seed": 3,
    "parameters": {"fake.slope": {"type": "Continuous", "min_value": -1.0, "max_value": 1.0}},
    "static": {"rl.training.stop.time_total_s": 60, "fake.sleep": 0.2},
}


def _asha_checked(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The invariants of a finished ASHA run: every stopped trial stopped at its first report past a rung, every
    other trained the whole budget, every promotion continued a stopped trial from its checkpoint (the fake job's
    reward, slope * iteration + seed, goes on from the iteration it stopped at), and the re-evaluation trained at
    the budget too. Its search trials that used the budget (reruns of interrupted ones included)."""
    trials = _study(run_dir).trials
    search = [t for t in trials if "reevaluation_of" not in t.user_attrs and t.state != TrialState.FAIL]
    assert any(t.state == TrialState.PRUNED for t in search)
    for trial in search:
        parent = trials[trial.user_attrs["pbt_parent"]] if "pbt_parent" in trial.user_attrs else None
        before = max(parent.intermediate_values) if parent else 0
        steps = sorted(trial.intermediate_values)
        if trial.state == TrialState.PRUNED:
            previous = steps[-2] if len(steps) > 1 else before
            assert any(previous < rung <= steps[-1] for rung in (1000, 3000)), (trial.number, previous, steps)
        else:
            assert trial.state == TrialState.COMPLETE and steps[-1] == 9000
        if parent is not None:
            assert parent.state == TrialState.PRUNED and trial.params == parent.params and steps[0] > before
            sent_jobs = [json.loads((job / "input/config/hyperparameters.json").read_text())
                         for job in trial_job_dirs(trial)]
            seed = statistics.fmean(int(values.get("rl.training.seed", 0)) for values in sent_jobs)  # their mean
            for step, value in trial.intermediate_values.items():
                assert value == pytest.approx(trial.params["fake.slope"] * step / 1000 + seed, rel=1e-5, abs=1e-5)
    first = [t for t in search if "pbt_parent" not in t.user_attrs]
    sent = json.loads((trial_job_dirs(first[0])[0] / "input/config/hyperparameters.json").read_text())
    assert json.loads(sent["rl.training.stop.timesteps_total"]) == 9000 and "rl.training.stop.time_total_s" not in sent
    # a job a rung pauses ends at once (its last completed iteration's checkpoint kept): sent, not recorded
    assert json.loads(sent["rl.training.stop_grace_s"]) == 0
    assert "rl.training.stop_grace_s" not in first[0].user_attrs["hyperparameters"]
    reevaluated = [t for t in trials if "reevaluation_of" in t.user_attrs]
    assert reevaluated and all(t.state == TrialState.COMPLETE and t.last_step == 9000 for t in reevaluated)
    return first


def test_asha_stops_poor_trials_at_a_rung_and_trains_the_rest_to_the_training_budget(tmp_path, fake_runner):
    config = config_from_mapping({**ASHA_TRIALS, "run_dir": str(tmp_path / "run")})
    assert config.hyperband_min_env_steps == 1000
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    assert len(_asha_checked(result.run_dir)) == 8
    promoted = [t for t in _study(result.run_dir).trials if "pbt_parent" in t.user_attrs]
    # 8 trials at the first rung: too few to fill the next two by the top third alone, so when the budget allows no
    # new trial each rung's best goes on, and the search's best configuration trains to the end
    assert any(t.state == TrialState.COMPLETE for t in promoted)
    assert f"continues trial {promoted[0].user_attrs['pbt_parent']}" in (result.run_dir / "trials.csv").read_text()


def test_asha_with_several_seeds_judges_each_rung_on_their_mean(tmp_path, fake_runner):
    config = config_from_mapping({**ASHA_TRIALS, "run_dir": str(tmp_path / "run"), "seeds": 2, "max_jobs": 6})
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    assert len(_asha_checked(result.run_dir)) == 6
    for trial in [t for t in _study(result.run_dir).trials if "reevaluation_of" not in t.user_attrs]:
        sent = [json.loads((Path(trial.user_attrs["trial_dir"]) / f"seed-{i}/input/config/hyperparameters.json")
                           .read_text()) for i in range(2)]
        seeds = [int(values["rl.training.seed"]) for values in sent]
        assert seeds[0] != seeds[1]
        for step, value in trial.intermediate_values.items():  # the fake job's reward: slope * iteration + seed
            assert value == pytest.approx(trial.params["fake.slope"] * step / 1000 + sum(seeds) / 2, rel=1e-5, abs=1e-5)


def test_asha_ranks_on_the_jobs_evaluations_when_they_are_the_objective(tmp_path, fake_runner):
    # the fake job evaluates every 2,000 env steps and at its end (9,000), at 2 * slope * iteration + seed
    config = config_from_mapping({**ASHA_TRIALS, "run_dir": str(tmp_path / "run"),
                                  "objective_metric": "evaluation_reward_mean",
                                  "static": {**ASHA_TRIALS["static"], "rl.training.evaluation_interval": 2000}})
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    trials = _study(result.run_dir).trials
    assert any(t.state == TrialState.PRUNED for t in trials)
    for trial in trials:
        assert set(trial.intermediate_values) <= {2000, 4000, 6000, 8000, 9000}
        sent = json.loads((Path(trial.user_attrs["trial_dir"]) / "input/config/hyperparameters.json").read_text())
        slope, seed = float(sent.get("fake.slope", 1.0)), int(sent.get("rl.training.seed", 0))
        for step, value in trial.intermediate_values.items():  # printed with 6 significant digits
            assert value == pytest.approx(2 * slope * step / 1000 + seed, rel=1e-5, abs=1e-5)
        if trial.state == TrialState.COMPLETE:
            assert trial.last_step == 9000 and trial.value == trial.intermediate_values[9000]


def test_asha_resumes_after_kill_9_without_running_a_finished_trial_again(tmp_path):
    run_dir = tmp_path / "run"
    tuner = _start_driver(run_dir, ASHA_TRIALS)
    _wait_for(lambda: _states(run_dir).count(TrialState.PRUNED) >= 1 and _jobs_running(run_dir))
    tuner.kill()
    tuner.wait()
    finished = {t.number: t for t in _study(run_dir).trials if t.state.is_finished()}
    resumed = subprocess.run([sys.executable, str(DRIVER), "resume", str(run_dir)], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = _study(run_dir).trials
    for number, trial in finished.items():  # kept as they were, and not run again
        assert after[number].state == trial.state and _starts(trial.user_attrs["trial_dir"]) == 1
    assert len(_asha_checked(run_dir)) == 8  # the budget: the trials kept, and reruns of those killed running


def test_a_run_directory_is_not_started_twice(tmp_path, fake_runner):
    config = _config(tmp_path, max_jobs=1, static={"rl.training.stop.training_iteration": 1})
    run_tuning(config, runner=fake_runner, out=io.StringIO())
    with pytest.raises(TuningError, match="--resume"):
        run_tuning(config, runner=fake_runner, out=io.StringIO())


def _start_driver(run_dir: Path, settings: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), "start", str(run_dir), json.dumps(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _jobs_running(run_dir: Path) -> bool:
    """Some trial is running and every running trial's job has started (its pid file exists)."""
    try:
        running = [t for t in _study(run_dir).trials if t.state == TrialState.RUNNING]
    except Exception:  # the study does not exist yet
        return False
    return bool(running) and all(
        "trial_dir" in t.user_attrs and (Path(t.user_attrs["trial_dir"]) / PID_FILE).exists() for t in running
    )


def _states(run_dir: Path) -> list[TrialState]:
    try:
        return [trial.state for trial in _study(run_dir).trials]
    except Exception:  # the study does not exist yet
        return []


SLOW_TRIALS = {
    "strategy": "Random",
    "max_parallel_jobs": 2,
    "num_cpus": 2,
    "check_hyperparameters": False,
    "sampler_seed": 5,
    "parameters": {"rl.training.config.kl_coeff": {"type": "Continuous", "min_value": 0.5, "max_value": 1.0}},
    "static": {"rl.training.stop.training_iteration": 6, "fake.sleep": 0.4},
}


def test_resume_after_kill_9_keeps_finished_trials_and_reruns_running_ones(tmp_path):
    run_dir = tmp_path / "run"
    tuner = _start_driver(run_dir, {**SLOW_TRIALS, "max_jobs": 6})
    # Kill while jobs run: every running trial has started its job (a trial the tuner has just asked
    # for, without a job yet, is a different case, covered by the next test).
    _wait_for(lambda: _states(run_dir).count(TrialState.COMPLETE) >= 2 and _jobs_running(run_dir))
    tuner.kill()  # SIGKILL: no cleanup at all
    tuner.wait()
    before = {t.number: t for t in _study(run_dir).trials}
    finished = {n: t for n, t in before.items() if t.state == TrialState.COMPLETE}
    running = {n: t for n, t in before.items() if t.state == TrialState.RUNNING}
    assert finished and running
    # A job can finish between the wait and the kill, and the tuner then asks for the next trial: that trial
    # is RUNNING with no directory yet, which resume must handle too.
    pid_files = [Path(t.user_attrs["trial_dir"]) / PID_FILE for t in running.values() if "trial_dir" in t.user_attrs]
    orphans = [json.loads(pid_file.read_text())["pid"] for pid_file in pid_files if pid_file.exists()]

    resumed = subprocess.run(
        [sys.executable, str(DRIVER), "resume", str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = _study(run_dir).trials
    for number, trial in finished.items():  # kept as they were, and not run again
        assert after[number].state == TrialState.COMPLETE and after[number].value == trial.value
        assert _starts(trial.user_attrs["trial_dir"]) == 1
    # A job still running when the resume starts is stopped and its trial run again; one that ended in between
    # (jobs from standby start at once, and a loaded machine slows the resume) is recorded from its outputs.
    reruns = {t.user_attrs["rerun_of"]: t for t in after if "rerun_of" in t.user_attrs}
    recorded = {number for number in running if after[number].state == TrialState.COMPLETE}
    assert set(reruns) | recorded == set(running) and not set(reruns) & recorded
    for number, rerun in reruns.items():
        assert after[number].state == TrialState.FAIL
        # the values of the trial it reruns (one the tuner was killed in the middle of asking for had none yet)
        assert rerun.params == running[number].params or not running[number].params
        assert rerun.state == TrialState.COMPLETE
    for number in recorded:
        assert _starts(running[number].user_attrs["trial_dir"]) == 1
    counted = [t for t in after if t.number not in reruns]
    assert len(counted) == 6 and all(t.state == TrialState.COMPLETE for t in counted)
    for pid in orphans:  # the killed tuner's jobs were stopped, not left to run on
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    assert sorted(row["status"] for row in rows) == ["complete"] * 6 + ["interrupted"] * len(reruns)


def test_resume_recovers_a_trial_killed_before_its_job_started(tmp_path):
    run_dir = tmp_path / "run"
    tuner = _start_driver(run_dir, {**SLOW_TRIALS, "max_jobs": 6})
    # Killed early enough that the budget still had room for the trial asked below.
    _wait_for(lambda: 1 <= _states(run_dir).count(TrialState.COMPLETE) <= 2 and _jobs_running(run_dir))
    tuner.kill()
    tuner.wait()
    # What a tuner killed right after study.ask() leaves: a RUNNING trial with no job and no attributes.
    asked = _study(run_dir).ask().number
    resumed = subprocess.run(
        [sys.executable, str(DRIVER), "resume", str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = _study(run_dir).trials
    assert after[asked].state == TrialState.FAIL
    assert any(t.user_attrs.get("rerun_of") == asked and t.state == TrialState.COMPLETE for t in after)
    assert [t.state for t in after].count(TrialState.COMPLETE) == 6  # the budget, no more
    assert TrialState.RUNNING not in [t.state for t in after]


def test_ctrl_c_stops_cleanly_says_how_to_resume_and_resume_finishes_the_budget(tmp_path):
    run_dir = tmp_path / "run"
    tuner = _start_driver(run_dir, {**SLOW_TRIALS, "max_jobs": 3})
    # Both jobs started (pid files written): the tuner is in its polling loop, past the job start-up.
    _wait_for(lambda: _states(run_dir).count(TrialState.RUNNING) == 2 and _jobs_running(run_dir))
    time.sleep(0.5)
    os.kill(tuner.pid, signal.SIGINT)
    output, _ = tuner.communicate(timeout=60)
    assert tuner.returncode == 130, output
    assert f"--resume {run_dir}" in output
    states = [(t.state, t.user_attrs.get("interrupted")) for t in _study(run_dir).trials]
    assert states.count((TrialState.FAIL, True)) == 2
    assert not any(state == TrialState.RUNNING for state, _ in states)

    resumed = subprocess.run(
        [sys.executable, str(DRIVER), "resume", str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = _study(run_dir).trials
    assert len(trials) == 5  # 2 interrupted + their 2 reruns + 1 new: 3 count against the budget
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


def test_more_parallel_jobs_than_cpus_run_one_per_cpu_with_a_warning(tmp_path, caplog):
    config = _config(tmp_path, max_parallel_jobs=1000, num_cpus=2, max_jobs=1,
                     parameters={"fake.slope": {"type": "Continuous", "min_value": 1.0, "max_value": 2.0}})
    with open_run(config) as run:
        assert run.config.max_parallel_jobs == 2
    assert json.loads((tmp_path / "run" / "tuning.json").read_text())["max_parallel_jobs"] == 2
    assert "max_parallel_jobs 1000 is more than the 2 CPUs the jobs share: running 2 at a time" in caplog.text


def test_a_pbt_run_with_a_training_budget_keeps_its_generations_length_on_resume(tmp_path):
    config = _config(tmp_path, strategy="PBT", population=2, max_jobs=4, train_budget="20k")
    with open_run(config) as run:
        assert run.config.generation_env_steps == 10_000  # 2 generations
    with pytest.raises(TuningError, match=r"max_jobs 8 would change the length of this run's generations \(its "
                       r"train_budget 20k over 2 of 10,000 env steps\)"):
        with reopen_run(tmp_path / "run", max_jobs=8):
            pass
    with reopen_run(tmp_path / "run", max_parallel_jobs=1) as run:  # what does not change the generations
        assert run.config.generation_env_steps == 10_000


def test_a_search_that_reaches_its_target_ends_before_its_budget_and_is_still_re_evaluated(tmp_path, fake_runner):
    config = _config(tmp_path, strategy="Random", max_jobs=6, max_parallel_jobs=1, target_objective=15,
                     reevaluate_top=1, reevaluate_seeds=1,
                     parameters={"fake.slope": {"type": "Continuous", "min_value": 5.0, "max_value": 6.0}},
                     static={"rl.training.stop.training_iteration": 3})
    out = io.StringIO()
    result = run_tuning(config, runner=fake_runner, out=out)
    roles = [row["role"] for row in csv.DictReader(open(result.run_dir / "trials.csv"))]
    assert sorted(roles) == ["re-evaluation of default", "re-evaluation of trial 0", "search"]
    assert "the search ended before its budget: trial 0 reached the target objective 15" in out.getvalue()
    assert result.best_hyperparameters is not None


def test_a_run_stops_starting_trials_its_max_runtime_cannot_fit_and_stops_what_runs_at_it(tmp_path, fake_runner):
    slow = {"rl.training.stop.training_iteration": 3, "fake.sleep": 5.0}  # 15 s a trial
    config = _config(tmp_path, strategy="Random", max_jobs=50, max_parallel_jobs=1, max_runtime_s=3,
                     parameters={"fake.slope": {"type": "Continuous", "min_value": 1.0, "max_value": 2.0}},
                     static=slow)
    out = io.StringIO()
    started = time.monotonic()
    result = run_tuning(config, runner=fake_runner, out=out)
    assert time.monotonic() - started < 3 + 15
    assert (result.complete, result.failed, result.interrupted) == (0, 1, False)
    rows = list(csv.DictReader(open(result.run_dir / "trials.csv")))
    assert rows[0]["failure"] == "stopped: the run reached its max runtime (3 s)"
    assert "the run reached its max runtime (3 s): 1 running trial(s) stopped" in out.getvalue()


def test_a_run_starts_no_trial_that_would_end_after_its_max_runtime(tmp_path, fake_runner):
    quick = {"rl.training.stop.training_iteration": 2, "fake.sleep": 0.6}
    config = _config(tmp_path, strategy="Random", max_jobs=50, max_parallel_jobs=1, max_runtime_s=6,
                     parameters={"fake.slope": {"type": "Continuous", "min_value": 1.0, "max_value": 2.0}},
                     static=quick)
    started = time.monotonic()
    result = run_tuning(config, runner=fake_runner, out=io.StringIO())
    # the last trial was predicted to end by 6 s; on a slow machine it may still be the one stopped there
    assert 1 <= result.complete < 50 and result.failed <= 1
    assert time.monotonic() - started < 6 + 10
