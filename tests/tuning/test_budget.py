"""Training budgets and durations: what a user writes, what the job is told, what is refused."""

from __future__ import annotations

import pytest

from sagemaker_rl.tuning import TuningError
from sagemaker_rl.tuning.budget import TrainBudget, describe_length, parse_duration, parse_train_budget

STOP = "rl.training.stop."


@pytest.mark.parametrize("text, steps", [("1M", 1_000_000), ("500k", 500_000), ("250000", 250_000),
                                         ("1.5M", 1_500_000), (" 2e5 ", 200_000), (300_000, 300_000)])
def test_env_step_budgets(text, steps):
    assert parse_train_budget(text) == TrainBudget(env_steps=steps)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30min", 1800), ("2h", 7200), ("1.5h", 5400)])
def test_time_budgets(text, seconds):
    assert parse_train_budget(text) == TrainBudget(seconds=seconds)


@pytest.mark.parametrize("value, message", [
    ("5m", "train_budget '5m' is ambiguous: write 5min for minutes or 5M for million env steps"),
    ("10", "train_budget '10' is not from 1,000 to 10^12 env steps"),
    ("fast", "train_budget 'fast' is neither env steps (1M, 500k, 250000) nor a training time (90s, 30min, 2h)"),
    ("-1M", "train_budget '-1M' is neither env steps"),
    ("nanM", "train_budget 'nanM' is neither env steps"),
    (True, "train_budget must be env steps (1M, 500k, 250000) or a training time (90s, 30min, 2h), got True"),
    ([1], "train_budget must be env steps"),
])
def test_what_is_not_a_budget_is_refused_in_one_sentence(value, message):
    with pytest.raises(TuningError) as caught:
        parse_train_budget(value)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_budget_replaces_the_length_stops_and_keeps_a_target_return():
    given = {STOP + "time_total_s": 60, STOP + "training_iteration": 9, STOP + "episode_reward_mean": 18,
             "rl.training.config.lr": 1e-3}
    assert TrainBudget(env_steps=10_000).apply(given) == {
        STOP + "timesteps_total": 10_000, STOP + "episode_reward_mean": 18, "rl.training.config.lr": 1e-3}
    assert TrainBudget(seconds=300).apply(given)[STOP + "time_total_s"] == 300
    assert TrainBudget(seconds=300).describe() == "300 training s"
    assert TrainBudget(env_steps=1_000_000).describe() == "1,000,000 env steps"


@pytest.mark.parametrize("text, seconds", [("900", 900), ("90s", 90), ("30m", 1800), ("30min", 1800), ("2h", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["3x", "", "0", "-5m", "1e12"])
def test_what_is_not_a_duration(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("hyperparameters", "length"), [
    ({"rl.training.stop.time_total_s": 150}, "150 training s"),
    ({"rl.training.stop.timesteps_total": 1_000_000, "rl.training.config.lr": 1e-3}, "1,000,000 env steps"),
    ({"rl.training.stop.training_iteration": 20}, "20 iterations"),
    ({"rl.training.stop.time_total_s": 90.5}, "90.5 training s"),
    ({"rl.training.stop.time_total_s": "120"}, "120 training s"),  # as text, it is shown as it is
    ({"rl.training.stop.episode_reward_mean": 18}, None),  # a target return is no length: it trains until then
])
def test_a_length_stop_in_words_says_how_long_a_job_trains(hyperparameters, length):
    assert describe_length(hyperparameters) == length
