import math
import re

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


def test_parse_values_reads_only_the_named_metric_in_order():
    out = ["episode_reward_mean: -3.5", "noise", "episode_reward_max: 1", "episode_reward_mean: 2e1",
           "[reacher] iter 2 | reward 20.00"]
    assert metrics.parse_values(out) == [-3.5, 20.0]
    assert metrics.parse_values(out, metrics.EPISODE_REWARD_MAX) == [1.0]
