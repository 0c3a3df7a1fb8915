"""The reward lines' mean over the last 100 episodes, whichever iterations they finished in."""

import csv
import math

from sagemaker_rl.job.checkpoints import JobState
from sagemaker_rl.job.progress import (
    EPISODES_PER_MEAN,
    Progress,
    ProgressLog,
    divergence,
    divergence_hint,
    over_recent_episodes,
)


def _iteration(mean, episodes, high=None, low=None):
    return Progress(training_iteration=1, timesteps_total=0, time_total_s=0.0, episode_reward_mean=mean,
                    episode_reward_max=high, episode_reward_min=low, steps_this_iter=0, time_this_iter_s=0.0,
                    episodes_this_iter=episodes, learner={})


def test_the_mean_covers_the_last_100_episodes_with_the_oldest_iteration_in_part():
    state = JobState()
    for mean in (-10.0, 0.0, 10.0):
        last = over_recent_episodes(_iteration(mean, 40, mean + 1, mean - 1), state)
    # 40 episodes at 10, 40 at 0 and the newest 20 of the 40 at -10
    assert EPISODES_PER_MEAN == 100
    assert last.episode_reward_mean == (40 * 10 + 40 * 0 + 20 * -10) / 100
    assert (last.episode_reward_max, last.episode_reward_min) == (11.0, -11.0)
    assert len(state.recent_episodes) == 3


def test_an_iteration_without_finished_episodes_keeps_the_window_and_old_iterations_drop_out():
    state = JobState()
    over_recent_episodes(_iteration(-5.0, 30, 0.0, -9.0), state)
    quiet = over_recent_episodes(_iteration(None, 0), state)
    assert (quiet.episode_reward_mean, quiet.episode_reward_max, quiet.episode_reward_min) == (-5.0, 0.0, -9.0)
    last = over_recent_episodes(_iteration(7.0, 100, 8.0, 6.0), state)
    assert (last.episode_reward_mean, last.episode_reward_max, last.episode_reward_min) == (7.0, 8.0, 6.0)
    assert len(state.recent_episodes) == 1


def test_no_episode_yet_reports_none():
    assert over_recent_episodes(_iteration(None, 0), JobState()).episode_reward_mean is None


def _result(mean, episodes, **losses):
    return {"env_runners": {"episode_return_mean": mean, "num_episodes": episodes},
            "learners": {"default_policy": {"total_loss": 1.0, **losses}}}


def test_a_nan_mean_of_an_iteration_without_finished_episodes_is_not_a_divergence():
    assert divergence(_result(math.nan, 0)) == ""
    assert divergence({"env_runners": {"episode_return_mean": math.nan}, "learners": {}}) == ""


def test_a_non_finite_return_over_finished_episodes_or_a_non_finite_loss_is():
    assert divergence(_result(math.nan, 3)) == "episode_reward_mean is nan"
    assert divergence(_result(-math.inf, 1)) == "episode_reward_mean is -inf"
    assert divergence(_result(1.0, 3, vf_loss=math.inf)) == "the learner's vf_loss is inf"


def test_the_hint_names_what_would_help_given_the_jobs_settings():
    assert "env's rewards" in divergence_hint("episode_reward_mean is nan", {"lr": 1e-3, "grad_clip": None})
    loss = "the learner's total_loss is nan"
    assert divergence_hint(loss, {"lr": 1e-3, "grad_clip": None}) == (
        "lower rl.training.config.lr (now 0.001) or set rl.training.config.grad_clip (e.g. 0.5)")
    assert divergence_hint(loss, {"lr": [[0, 1.6e-3], [1_000_000, 1.6e-4]], "grad_clip": 0.5}).endswith(
        "lower rl.training.config.grad_clip (now 0.5)")


def test_a_progress_csv_of_an_earlier_version_is_rewritten_with_todays_columns_on_resume(tmp_path):
    old = tmp_path / "progress.csv"  # the columns before evaluation_reward_mean
    old.write_text("training_iteration,timesteps_total,episode_reward_mean\n1,2000,-5.5\n2,4000,-4.25\n")
    with ProgressLog(tmp_path, after_iteration=2):
        pass
    with old.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames) == ProgressLog.COLUMNS
    assert [(row["training_iteration"], row["episode_reward_mean"], row["evaluation_reward_mean"]) for row in rows] \
        == [("1", "-5.5", ""), ("2", "-4.25", "")]
