"""The plan: which work a run starts next, decided from trial records alone (no study storage, no processes)."""

from __future__ import annotations

import dataclasses

import pytest
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from sagemaker_rl.tuning import ContinuousParameter, SearchSpace, TuningConfig, load_config
from sagemaker_rl.tuning.config import JOB_START_S, REEVALUATION_SEED_BASE
from sagemaker_rl.tuning.plan import Retrain, Sample, StartSegment, View, make_plan, search_has_room
from sagemaker_rl.tuning.record import TrialRecord

MAX = StudyDirection.MAXIMIZE
LR = "rl.training.config.lr"
SPACE = SearchSpace((ContinuousParameter(LR, 1e-4, 1e-2),), {"rl.training.stop.time_total_s": 60})
CONFIG = TuningConfig(space=SPACE, max_jobs=3, reevaluate_top=1, reevaluate_seeds=2, check_hyperparameters=False)


def _trial(number: int, state: TrialState, value: float | None = None, **fields) -> FrozenTrial:
    record = TrialRecord(**{"tuned": {LR: 1e-3 * (number + 1)}, "hyperparameters": {LR: 1e-3 * (number + 1)},
                            **fields})
    trial = create_trial(state=state, value=value if state == TrialState.COMPLETE else None, user_attrs=record.attrs())
    trial.number = number
    return trial


def _search(values: list[float | None]) -> list[FrozenTrial]:
    return [_trial(number, TrialState.COMPLETE if value is not None else TrialState.RUNNING, value)
            for number, value in enumerate(values)]


def test_the_search_samples_until_the_budget_is_used_then_the_reevaluation_retrains_best_and_default():
    plan = make_plan(CONFIG, MAX)
    assert plan.next(View([], MAX)) == Sample()
    assert plan.next(View(_search([1.0, 3.0]), MAX)) == Sample()
    work = plan.next(View(_search([1.0, 3.0, 2.0]), MAX))
    assert isinstance(work, Retrain)
    assert [candidate.key for candidate in work.candidates] == [1, "default"]
    assert work.seeds == [REEVALUATION_SEED_BASE, REEVALUATION_SEED_BASE + 1]
    assert work.candidates[1].hyperparameters == {"rl.training.stop.time_total_s": 60}
    assert plan.describe() == "tuning reacher: 3 trials, then the best 1 and the default on 2 fresh seeds (4 jobs)"


def test_the_default_starts_while_the_last_search_trials_run_and_the_best_once_they_end():
    plan = make_plan(CONFIG, MAX)
    running = _search([1.0, 3.0, None])
    work = plan.next(View(running, MAX, searching=True))
    assert isinstance(work, Retrain) and [candidate.key for candidate in work.candidates] == ["default"]
    started = [*running, _trial(3, TrialState.RUNNING, reevaluation_of="default", seeds=work.seeds)]
    assert plan.next(View(started, MAX, searching=True)) is None  # the best waits for the search's end
    ended = [*_search([1.0, 3.0, 2.0]), started[-1]]
    work = plan.next(View(ended, MAX))
    assert isinstance(work, Retrain) and [candidate.key for candidate in work.candidates] == [1]
    done = [*ended, _trial(4, TrialState.RUNNING, reevaluation_of=1, seeds=work.seeds)]
    assert plan.next(View(done, MAX)) is None
    assert plan.progress(View(done, MAX)) == "; re-evaluated 0 of 2 configurations"


def test_a_waiting_rerun_starts_past_the_budget_and_nothing_is_compared_without_a_complete_search_trial():
    failed = [_trial(number, TrialState.FAIL) for number in range(3)]
    assert not search_has_room(failed, 3)
    assert make_plan(CONFIG, MAX).next(View(failed, MAX)) is None  # the default alone would compare nothing
    waiting = [*failed, _trial(3, TrialState.WAITING, rerun_of=0)]
    assert search_has_room(waiting, 3) and make_plan(CONFIG, MAX).next(View(waiting, MAX)) == Sample()


def test_pbt_plans_its_generations_alone():
    config = load_config(None, {"strategy": "PBT", "population": 2, "max_jobs": 4, "sampler_seed": 1,
                                "check_hyperparameters": False})
    plan = make_plan(config, MAX)
    work = plan.next(View([], MAX))
    assert isinstance(work, StartSegment) and (work.segment.member, work.segment.generation) == (0, 0)
    first = [_trial(member, TrialState.COMPLETE, float(member), member=member, generation=0) for member in (0, 1)]
    work = plan.next(View(first, MAX))
    assert isinstance(work, StartSegment) and work.segment.generation == 1 and work.segment.parent is not None
    assert plan.progress(View(first, MAX)) == "; generation 1 of 2"
    assert plan.describe().startswith("population-based training of reacher: 2 members, 2 generations")


def test_the_search_starts_no_trial_its_max_runtime_cannot_fit_with_the_re_evaluation_after_it():
    config = TuningConfig(space=SPACE, max_jobs=20, max_parallel_jobs=2, reevaluate_top=1, reevaluate_seeds=2,
                          max_runtime_s=1000, check_hyperparameters=False)
    plan = make_plan(config, MAX)
    finished = [_trial(number, TrialState.COMPLETE, 1.0, duration_s=100.0) for number in range(3)]
    # a trial of ~100 s, then the re-evaluation: 4 jobs on 2 slots, two rounds of ~100 s
    assert plan.next(View(finished, MAX, elapsed_s=700)) == Sample()
    early = plan.next(View(finished, MAX, elapsed_s=701, searching=True))  # no new search trial: the default now
    assert isinstance(early, Retrain) and [candidate.key for candidate in early.candidates] == ["default"]
    assert plan.stopped() == ("the search ended before its budget: the run's max runtime (1000 s) leaves no time "
                              "for another trial and the re-evaluation after it")
    work = plan.next(View(finished, MAX, elapsed_s=701))
    assert isinstance(work, Retrain)  # the search is over: the re-evaluation starts
    unlimited = make_plan(TuningConfig(space=SPACE, max_jobs=20, check_hyperparameters=False), MAX)
    assert unlimited.next(View(finished, MAX, elapsed_s=10**6)) == Sample()


def test_a_search_that_used_its_whole_budget_did_not_end_early():
    config = TuningConfig(space=SPACE, max_jobs=4, reevaluate_top=0, max_jobs_not_improving=3,
                          check_hyperparameters=False)
    plan = make_plan(config, MAX)
    used = [_trial(number, TrialState.COMPLETE, 1.0) for number in range(4)]  # 3 without improvement: at the end
    assert plan.next(View(used, MAX)) is None and plan.stopped() is None


def test_the_re_evaluation_trains_at_the_training_budget_and_says_so():
    config = TuningConfig(space=SPACE, max_jobs=3, reevaluate_top=1, reevaluate_seeds=2, train_budget="200k",
                          check_hyperparameters=False, strategy="Bayesian")
    plan = make_plan(config, MAX)
    work = plan.next(View(_search([1.0, 3.0, 2.0]), MAX))
    assert isinstance(work, Retrain)
    assert [candidate.hyperparameters for candidate in work.candidates] == [
        {LR: 2e-3, "rl.training.stop.timesteps_total": 200_000}, {"rl.training.stop.timesteps_total": 200_000}]
    assert plan.describe() == ("tuning reacher: 3 trials, then the best 1 and the default on 2 fresh seeds at "
                               "200,000 env steps (4 jobs)")


def _timed(count: int, duration_s: float, env_steps: int) -> list[FrozenTrial]:
    trials = [_trial(number, TrialState.COMPLETE, 1.0, duration_s=duration_s) for number in range(count)]
    for trial in trials:
        trial.intermediate_values = {env_steps: 1.0}
    return trials


def test_the_search_keeps_time_for_a_re_evaluation_at_the_training_budget():
    # 4 re-evaluation jobs on 2 slots: two rounds at the budget, each with a job's start-up (JOB_START_S)
    timed = TuningConfig(space=SPACE, max_jobs=20, reevaluate_seeds=2, train_budget="300s", max_runtime_s=1000,
                         check_hyperparameters=False, strategy="Bayesian")
    finished = _timed(3, 100.0, 50_000)
    assert make_plan(timed, MAX).next(View(finished, MAX, elapsed_s=1000 - 100 - 2 * (300 + JOB_START_S))) == Sample()
    assert isinstance(make_plan(timed, MAX).next(View(finished, MAX, elapsed_s=261)), Retrain)
    # an env-step budget's time comes from the trials' rate: 50,000 steps in 100 s, so 200,000 take ~400 s
    stepped = TuningConfig(space=SPACE, max_jobs=20, reevaluate_seeds=2, train_budget="200k", max_runtime_s=1000,
                           check_hyperparameters=False, strategy="Bayesian")
    assert make_plan(stepped, MAX).next(View(finished, MAX, elapsed_s=1000 - 100 - 2 * (400 + JOB_START_S))) == \
        Sample()
    assert isinstance(make_plan(stepped, MAX).next(View(finished, MAX, elapsed_s=61)), Retrain)


def test_a_trials_curve_times_its_job_start_up_apart_from_its_env_step_rate():
    # 100 s of wall time: the first report at 10,000 steps after 25 s, then 50,000 steps in 60 s, 15 s to exit.
    # After start-up the rate is 833 steps/s: 60,000 steps are 72 s of it, so the job's other 28 s are paid once
    # and 200,000 steps take 28 + 240 = 268 s (not 400 + JOB_START_S at the whole wall time's rate).
    curved = [_trial(number, TrialState.COMPLETE, 1.0, duration_s=100.0, curve_s={"10000": 25.0, "60000": 85.0})
              for number in range(3)]
    for trial in curved:
        trial.intermediate_values = {10_000: 0.5, 60_000: 1.0}
    stepped = TuningConfig(space=SPACE, max_jobs=20, reevaluate_seeds=2, train_budget="200k", max_runtime_s=1000,
                           check_hyperparameters=False, strategy="Bayesian")
    one_job_s = 100 - 60_000 / (50_000 / 60) + 200_000 / (50_000 / 60)
    assert one_job_s == pytest.approx(268)
    assert make_plan(stepped, MAX).next(View(curved, MAX, elapsed_s=1000 - 100 - 2 * one_job_s)) == Sample()
    assert isinstance(make_plan(stepped, MAX).next(View(curved, MAX, elapsed_s=1000 - 100 - 2 * one_job_s + 1)),
                      Retrain)
    # a time budget pays the same measured start-up and exit instead of JOB_START_S
    timed = TuningConfig(space=SPACE, max_jobs=20, reevaluate_seeds=2, train_budget="300s", max_runtime_s=1000,
                         check_hyperparameters=False, strategy="Bayesian")
    assert make_plan(timed, MAX).next(View(curved, MAX, elapsed_s=1000 - 100 - 2 * (300 + 28))) == Sample()
    assert isinstance(make_plan(timed, MAX).next(View(curved, MAX, elapsed_s=1000 - 100 - 2 * (300 + 28) + 1)),
                      Retrain)


def _search_ends(config: TuningConfig, trials: list[FrozenTrial], elapsed_s: float) -> bool:
    """The search started no trial at `elapsed_s` because the max runtime has no room for one."""
    plan = make_plan(config, MAX)
    if plan.next(View(trials, MAX, elapsed_s=elapsed_s)) == Sample():
        return False
    assert "max runtime" in (plan.stopped() or "")
    return True


def test_trials_stopped_early_do_not_shorten_what_the_search_expects_a_new_trial_to_take():
    # trials pruned after 10 and 40 s and one that ran its whole 100 s: a new trial may run as long as the whole one
    config = TuningConfig(space=SPACE, max_jobs=20, reevaluate_seeds=2, max_runtime_s=1000,
                          check_hyperparameters=False)
    pruned = [_trial(number, TrialState.PRUNED, duration_s=seconds) for number, seconds in enumerate((10.0, 40.0))]
    trials = [*pruned, _trial(2, TrialState.COMPLETE, 1.0, duration_s=100.0)]
    last_start = 1000 - 100 - 2 * 100  # the trial, then two rounds of re-evaluation jobs as long as a whole trial
    assert not _search_ends(config, trials, last_start) and _search_ends(config, trials, last_start + 1)
    # while every trial was stopped early, the longest of them is the estimate (not their median, 25 s)
    last_start = 1000 - 40 - 2 * 40
    assert not _search_ends(config, pruned, last_start) and _search_ends(config, pruned, last_start + 1)


def test_asha_keeps_time_for_a_trial_that_runs_its_whole_training_budget():
    # ASHA's trials train at the training budget unless stopped early: however short the stopped ones were, a new
    # trial may take a whole re-evaluation job's time (300 s and its start-up); the bench's ASHA run, estimating
    # from its stopped trials, started one that ran to the end and left its answer's re-evaluation no time
    asha = TuningConfig(space=SPACE, strategy="ASHA", max_jobs=50, reevaluate_seeds=2, train_budget="300s",
                        max_runtime_s=1200, check_hyperparameters=False)
    pruned = [_trial(number, TrialState.PRUNED, duration_s=10.0) for number in range(5)]
    last_start = 1200 - 3 * (300 + JOB_START_S)  # the trial, then two rounds of re-evaluation jobs
    assert not _search_ends(asha, pruned, last_start) and _search_ends(asha, pruned, last_start + 1)


@pytest.mark.parametrize(("max_runtime_s", "seeds", "last_start"), [
    # a job at the 300-s budget is 320 s with its start-up; 2 at a time, the best and the default: a round a seed
    (900, 1, 900 - 100 - 320),  # a third of 900 s holds no round: the fewest, one seed
    (2000, 2, 2000 - 100 - 2 * 320),  # 666 s: two rounds
    (3000, 3, 3000 - 100 - 3 * 320),  # 1,000 s: three, the most
    (9000, 3, 9000 - 100 - 3 * 320),
])
def test_without_reevaluate_seeds_the_re_evaluation_takes_the_seeds_that_fit_in_a_third_of_the_max_runtime(
        max_runtime_s, seeds, last_start):
    config = TuningConfig(space=SPACE, max_jobs=50, train_budget="300s", max_runtime_s=max_runtime_s,
                          check_hyperparameters=False, strategy="Bayesian")
    finished = _timed(3, 100.0, 50_000)
    assert not _search_ends(config, finished, last_start) and _search_ends(config, finished, last_start + 1)
    work = make_plan(config, MAX).next(View(finished, MAX, elapsed_s=last_start + 1))
    assert isinstance(work, Retrain) and len(work.seeds) == seeds
    assert make_plan(config, MAX).describe() == (
        "tuning reacher: 50 trials, then the best 1 and the default on 1 to 3 fresh seeds at 300 training s (as many "
        "as fit in 1/3 of the max runtime)")


def test_a_started_re_evaluation_fixes_the_seed_count_and_a_run_without_a_max_runtime_takes_three():
    config = TuningConfig(space=SPACE, max_jobs=3, train_budget="300s", max_runtime_s=900, check_hyperparameters=False,
                          strategy="Bayesian")
    finished = _timed(3, 100.0, 50_000)  # the estimate alone would give one seed (above)
    seeds = [REEVALUATION_SEED_BASE + n for n in range(2)]
    started = [*finished, _trial(3, TrialState.COMPLETE, 1.0, reevaluation_of="default", seeds=seeds)]
    work = make_plan(config, MAX).next(View(started, MAX, elapsed_s=500))
    assert isinstance(work, Retrain) and [c.key for c in work.candidates] == [0] and work.seeds == seeds
    unbounded = dataclasses.replace(config, max_runtime_s=None)
    work = make_plan(unbounded, MAX).next(View(finished, MAX))
    assert isinstance(work, Retrain) and len(work.seeds) == 3
