"""Population-based training: the explore rules, the plan of exploits, and real tiny PBT runs of reacher
(an exploit continues the donor's checkpoint with the new values live; kill -9 and --resume)."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from sagemaker_rl.tuning import TuningError, load_config, load_run_config, pbt
from sagemaker_rl.tuning.ranking import segments
from sagemaker_rl.tuning.record import TrialRecord, read, tuned
from sagemaker_rl.tuning.runners import _start_time
from sagemaker_rl.tuning.space import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Scaling,
    SearchSpace,
)
from tests.conftest import REPO, TINY_PPO

LR = ContinuousParameter("rl.training.config.lr", 1e-4, 1e-2, Scaling.LOGARITHMIC)
GAMMA = ContinuousParameter("rl.training.config.gamma", 0.9, 0.999, Scaling.REVERSE_LOGARITHMIC)
EPOCHS = IntegerParameter("rl.training.config.num_epochs", 1, 30)


def test_perturbation_respects_each_scale_and_the_range():
    assert pbt.perturb(LR, 1e-3, 1.2) == pytest.approx(1.2e-3)
    assert pbt.perturb(GAMMA, 0.99, 0.8) == pytest.approx(0.992)  # 1 - gamma shrinks: gamma moves towards 1
    assert pbt.perturb(GAMMA, 0.99, 1.2) == pytest.approx(0.988)
    assert pbt.perturb(LR, 9e-3, 1.2) == 1e-2  # kept in the range
    assert pbt.perturb(EPOCHS, 2, 1.2) == 3  # an Integer moves by at least 1
    assert pbt.perturb(EPOCHS, 20, 0.8) == 16
    signed = ContinuousParameter("rl.training.initial_log_std", -2.0, 1.0)
    assert pbt.perturb(signed, 0.0, 1.2) == pytest.approx(0.6)  # a range below 0 moves by 20% of its width


def test_resampling_draws_on_the_scale_and_categoricals_are_drawn_anew():
    rng = random.Random(0)
    draws = [pbt.sample_value(LR, rng) for _ in range(2000)]
    assert all(1e-4 <= value <= 1e-2 for value in draws)
    assert 0.4 < sum(value < 1e-3 for value in draws) / len(draws) < 0.6  # log-uniform: half below the middle decade
    space = SearchSpace((LR, CategoricalParameter("rl.training.config.batch_mode", ("truncate_episodes",
                                                                                      "complete_episodes"))))
    explored = [pbt.explore(space, {LR.name: 1e-3, "rl.training.config.batch_mode": "truncate_episodes"}, rng)
                for _ in range(400)]
    perturbed = [item[LR.name] for item in explored if item[LR.name] in (pytest.approx(8e-4), pytest.approx(1.2e-3))]
    assert 0.65 < len(perturbed) / len(explored) < 0.85  # 1 - RESAMPLE_PROBABILITY perturbed, the rest drawn
    assert {item["rl.training.config.batch_mode"] for item in explored} == {"truncate_episodes", "complete_episodes"}


def _segment_trial(member, generation, value, *, state=TrialState.COMPLETE, number):
    trial = optuna.trial.create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                                      params={}, distributions={},
                                      user_attrs=TrialRecord(member=member, generation=generation,
                                                             tuned={LR.name: 1e-3 * (member + 1)}).attrs())
    trial.number = number
    return trial


def test_the_bottom_quantile_and_failed_members_take_the_top_members_checkpoints():
    space = SearchSpace((LR,))
    population = pbt.Population(space, population=4, generations=3, direction=StudyDirection.MAXIMIZE, seed=7)
    first = [_segment_trial(0, 0, 5.0, number=0), _segment_trial(1, 0, 9.0, number=1),
             _segment_trial(2, 0, 1.0, number=2), _segment_trial(3, 0, None, state=TrialState.FAIL, number=3)]
    plan = population._plan(1, segments(first))
    assert [segment.parent for segment in plan[:2]] == [0, 1]  # the middle and the top continue their own
    assert [segment.tuned for segment in plan[:2]] == [{LR.name: 1e-3}, {LR.name: 2e-3}]
    for segment in plan[2:]:  # the worst and the failed one take the best's checkpoint and explore its values
        assert (segment.parent, segment.exploited) == (1, 1)
        assert segment.tuned != {LR.name: 2e-3}
    assert population._plan(1, segments(first)) == plan  # the same plan on every call (a resumed run)
    assert population.next_segment(first) == plan[0]
    # Two members, one failed: the other is the top and continues; the failed one takes its checkpoint.
    pair = pbt.Population(space, population=2, generations=3, direction=StudyDirection.MAXIMIZE, seed=7)
    plan = pair._plan(1, segments(first[:1] + [_segment_trial(1, 0, None, state=TrialState.FAIL, number=1)]))
    assert [(segment.parent, segment.exploited) for segment in plan] == [(0, None), (0, 0)]
    everyone_failed = [_segment_trial(member, 0, None, state=TrialState.FAIL, number=member) for member in (0, 1)]
    assert pair.next_segment(everyone_failed) is None and "every member's job failed" in pair.stopped


def test_pbt_refuses_settings_a_restored_job_does_not_use_and_stop_criteria(tmp_path):
    with pytest.raises(TuningError, match="cannot change rl.training.config.model_config.fcnet_hiddens.*weights"):
        load_config(None, {"strategy": "PBT", "parameters": {
            "rl.training.config.model_config.fcnet_hiddens": {"type": "Categorical", "values": [[64], [32]]}}})
    with pytest.raises(TuningError, match="stop.time_total_s has no use"):
        load_config(None, {"strategy": "PBT", "static": {"rl.training.stop.time_total_s": 30}})
    with pytest.raises(TuningError, match="multiple of the population"):
        load_config(None, {"strategy": "PBT", "population": 3, "max_jobs": 7})
    config = load_config(None, {"strategy": "PBT", "population": 3})
    assert "rl.training.initial_log_std" not in config.space.names  # not live: PBT's own default space
    assert (config.budget, config.generations, config.reevaluate_top) == (30, 10, 0)


TINY_PBT = ["--problem", "reacher", "--population", "2", "--num-cpus", "2",
            "--sampler-seed", "3", *[arg for key, value in TINY_PPO.items() for arg in ("--static", f"{key}={value}")]]
POPULATION_STRATEGIES = pytest.mark.parametrize("strategy", ["PBT", "PB2"])  # PB2: PBT with the bandit's explore


def _tune(*args: str, **kwargs):
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "tune.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kwargs)


def _trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=run_dir.name, storage=f"sqlite:///{run_dir / 'study.db'}")
    return study.get_trials()


def _trials_so_far(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of a run that may not have created its study yet.

    Read only once a trial's directory exists (the tuner made its study before it): opened while the
    tuner creates the database, optuna here and optuna there both stamp its schema version, and one
    of them fails with "UNIQUE constraint failed: alembic_version" (seen in CI).
    """
    trials = run_dir / "trials"
    if not trials.is_dir() or not any(trials.iterdir()):
        return []
    return _trials(run_dir)


def _first_row(job_dir: Path) -> dict[str, str]:
    with (job_dir / "output" / "intermediate" / "progress.csv").open() as handle:
        return next(csv.DictReader(handle))


@pytest.mark.slow
@POPULATION_STRATEGIES
def test_a_tiny_pbt_run_exploits_and_the_taker_continues_the_donors_checkpoint_with_its_new_values(tmp_path,
                                                                                                   strategy):
    run_dir = tmp_path / "run"
    # PB2's run states each member's training instead of the interval: 3 generations of 4,000 env steps either way.
    length = ["--train-budget", "12k"] if strategy == "PB2" else ["--perturbation-interval", "4000"]
    process = _tune(*TINY_PBT, *length, "--strategy", strategy, "--max-jobs", "6", "--run-dir", str(run_dir))
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-3000:]
    trials = _trials(run_dir)
    assert len(trials) == 6 and all(trial.state == TrialState.COMPLETE for trial in trials)
    by_number = {trial.number: trial for trial in trials}
    exploits = [trial for trial in trials if read(trial).exploited is not None]
    assert len(exploits) == 2  # population 2: one exploit at each of the two boundaries
    for taker in exploits:
        donor = by_number[read(taker).parent]
        assert read(donor).member != read(taker).member
        donor_state = json.loads(sorted((Path(donor.user_attrs["trial_dir"]) / "checkpoints").glob(
            "checkpoint_*/job_state.json"))[-1].read_text())  # its final one
        log = (Path(taker.user_attrs["trial_dir"]) / "stdout.log").read_text()
        assert (f"Resumed from checkpoint_{donor_state['training_iteration']:06d}: iteration "
                f"{donor_state['training_iteration']}, {donor_state['timesteps_total']:,} env steps") in log
        first = _first_row(Path(taker.user_attrs["trial_dir"]))
        assert int(first["training_iteration"]) == donor_state["training_iteration"] + 1
        # The explored lr is the one the learner's optimizer reported in the first iteration after the exploit.
        lr = taker.user_attrs["tuned"]["rl.training.config.lr"]
        assert lr != donor.user_attrs["tuned"]["rl.training.config.lr"]
        assert float(first["default_optimizer_learning_rate"]) == pytest.approx(lr, rel=1e-6)
    schedule = json.loads((run_dir / "schedule.json").read_text())
    assert [entry["to_env_step"] for entry in schedule["schedule"]] == [4000, 8000, 12000]
    assert schedule["trial"] == max((trial for trial in trials if read(trial).generation == 2),
                                    key=lambda trial: trial.value).number
    assert (run_dir / "model" / "policy.onnx").is_file()
    for trial in trials:  # only the last generation's members evaluate their policies
        log = (Path(trial.user_attrs["trial_dir"]) / "stdout.log").read_text()
        assert ("evaluation_reward_mean: " in log) == (read(trial).generation == 2)
    assert "exploit" in (run_dir / "report.html").read_text()
    assert ("(they train the best member's last values for 12,000 env steps from scratch; the member itself learned "
            "on schedule.json's values)") in out


@pytest.mark.slow
@POPULATION_STRATEGIES
def test_kill_9_mid_run_then_resume_continues_the_population_and_reruns_only_running_segments(tmp_path, strategy):
    run_dir = tmp_path / "run"
    tuner = _tune(*TINY_PBT, "--perturbation-interval", "4000", "--strategy", strategy, "--max-jobs", "6", "--run-dir",
                  str(run_dir))
    deadline = time.monotonic() + 300
    while not any(read(trial).generation == 1 and trial.state == TrialState.RUNNING
                  for trial in _trials_so_far(run_dir)):
        assert tuner.poll() is None, tuner.stdout.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    os.kill(tuner.pid, signal.SIGKILL)  # the tuner only: its jobs are left running, as after a crash
    tuner.wait()
    before = {trial.number: trial.state for trial in _trials(run_dir)}

    resumed = _tune("--resume", str(run_dir))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    trials = _trials(run_dir)
    done = segments(trials)
    assert sorted(done) == [(member, generation) for member in range(2) for generation in range(3)]
    assert all(trial.state == TrialState.COMPLETE for trial in done.values())
    for number, state in before.items():  # finished segments were kept, not run again
        if state == TrialState.COMPLETE:
            by = read(next(t for t in trials if t.number == number))
            assert done[(by.member, by.generation)].number == number
    kept = {trial.number for trial in done.values()}
    rerun = [trial for trial in trials if trial.number not in kept]
    assert 1 <= len(rerun) <= 2  # at most the generation that was running: no member lost more than one interval
    space = load_run_config(run_dir).space
    for trial in rerun:  # planned again from the record alone: the same donor and the same explored values
        again = done[(read(trial).member, read(trial).generation)]
        values = read(trial).tuned or space.real_values(trial.params)  # killed while asking: the values asked
        assert read(again).parent == read(trial).parent
        assert {name: tuned(again)[name] for name in values} == pytest.approx(values)
    for pid_file in run_dir.glob("trials/*/job.pid"):  # the dead tuner's jobs were stopped
        assert _start_time(json.loads(pid_file.read_text())["pid"]) is None  # gone (or a zombie)
