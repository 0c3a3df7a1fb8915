import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagemaker_rl import metrics
from tests.conftest import SDK_RAY_REGEX


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_reward_mean_line_is_read_back_by_sagemakers_regex(value):
    (line,) = [line for line in metrics.format_lines({"episode_reward_mean": value})]
    match = re.search(SDK_RAY_REGEX["episode_reward_mean"], line)
    assert match is not None
    assert math.isclose(float(match.group(1)), value, rel_tol=1e-5, abs_tol=1e-300)
    assert metrics.parse_line(line) == ("episode_reward_mean", float(match.group(1)))


def test_nan_and_missing_values_are_not_printed():
    lines = metrics.format_lines({"episode_reward_mean": math.nan, "episode_reward_max": None,
                                  "timesteps_total": 4000, "training_iteration": 2})
    assert lines == ["timesteps_total: 4000", "training_iteration: 2"]


def test_metric_definitions_use_the_sdk_regex():
    definitions = {d["Name"]: d["Regex"] for d in metrics.metric_definitions()}
    for name, regex in SDK_RAY_REGEX.items():
        assert definitions[name] == regex


def _job_output(iterations):
    """What the job prints, iteration by iteration (metrics.format_lines), with its progress line between."""
    lines = ["Resumed from checkpoint_000002: iteration 2"]
    for iteration, steps, reward in iterations:
        lines += metrics.format_lines({"episode_reward_mean": reward, "episode_reward_max": reward,
                                       "timesteps_total": steps, "training_iteration": iteration})
        lines.append(f"[reacher] iter {iteration} | {steps:,} steps | reward {reward}")
    return lines


def test_records_pair_each_iteration_with_its_env_steps_and_value():
    out = _job_output([(3, 6000, -12.5), (4, 8000, math.nan), (5, 10000, -9.25)])
    assert metrics.read_records(out) == [
        metrics.Record(3, 6000, -12.5),
        metrics.Record(4, 8000, None),  # no episode finished: the job printed no value
        metrics.Record(5, 10000, -9.25),
    ]
    assert [record.value for record in metrics.read_records(out, metrics.EPISODE_REWARD_MAX)] == [-12.5, None, -9.25]


def test_evaluations_are_read_at_the_iterations_that_printed_them():
    out = ["episode_reward_mean: 1", "timesteps_total: 2000", "training_iteration: 1",
           "episode_reward_mean: 2", "evaluation_reward_mean: 5.5", "timesteps_total: 4000", "training_iteration: 2"]
    assert metrics.read_records(out, metrics.EVALUATION_REWARD_MEAN) == [
        metrics.Record(1, 2000, None), metrics.Record(2, 4000, 5.5)]
    assert [record.value for record in metrics.read_records(out)] == [1.0, 2.0]


def test_records_are_read_incrementally_as_lines_arrive():
    reader = metrics.RecordReader()
    completed = [reader.feed(line) for line in _job_output([(1, 2000, 1.0), (2, 4000, 2.0)])]
    assert [record for record in completed if record] == [metrics.Record(1, 2000, 1.0), metrics.Record(2, 4000, 2.0)]
    assert reader.close() is None


def test_values_without_iteration_lines_still_get_increasing_iterations():
    out = ["episode_reward_mean: 1", "episode_reward_mean: 2", "training_iteration: 1", "episode_reward_mean: 3"]
    assert [(r.iteration, r.value) for r in metrics.read_records(out)] == [(1, 1.0), (2, 2.0), (3, 3.0)]


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_non_finite_values_are_never_a_records_value_and_mark_divergence(text):
    reader = metrics.RecordReader()
    for line in ["episode_reward_mean: 1.5", "training_iteration: 1", f"episode_reward_mean: {text}",
                 "training_iteration: 2"]:
        reader.feed(line)
    assert reader.diverged
    assert [r.value for r in metrics.read_records(["episode_reward_mean: 1.5", "training_iteration: 1",
                                                   f"episode_reward_mean: {text}", "training_iteration: 2"])] == [
        1.5, None]
    reader.feed("episode_reward_mean: 2.5")  # a finite value again: no longer diverged
    assert not reader.diverged


def test_lines_that_only_mention_a_metric_are_not_read():
    out = ["[reacher] iter 2 | reward 20.00", "note: episode_reward_mean: 5 was the best", "episode_reward_meanx: 3"]
    assert metrics.read_records(out) == []


def test_records_are_read_from_a_jobs_progress_csv_where_its_printed_output_is_lost(tmp_path):
    from sagemaker_rl.metrics import Record, read_progress_records

    progress = tmp_path / "progress.csv"
    progress.write_text("training_iteration,timesteps_total,episode_reward_mean,episode_reward_max\n"
                        "1,1000,,3.5\n"  # no episode finished: RLlib's NaN, written empty
                        "2,2000,-12.25,4.0\n"
                        "3,3000,nan,4.0\n"
                        "4,40")  # cut short by a kill
    assert read_progress_records(progress) == [Record(1, 1000, None), Record(2, 2000, -12.25), Record(3, 3000, None)]
    assert read_progress_records(progress, "episode_reward_max") == [Record(1, 1000, 3.5), Record(2, 2000, 4.0),
                                                                     Record(3, 3000, 4.0)]
    assert read_progress_records(tmp_path / "none.csv") == []
