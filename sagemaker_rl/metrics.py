"""Reward lines: the one definition of what a job prints and how runners read it back.

SageMaker's metric definitions and our own tuner both parse these lines; the names are a public
contract and must never be renamed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

EPISODE_REWARD_MEAN = "episode_reward_mean"
EPISODE_REWARD_MAX = "episode_reward_max"
EPISODE_REWARD_MIN = "episode_reward_min"
TIMESTEPS_TOTAL = "timesteps_total"
TRAINING_ITERATION = "training_iteration"

METRIC_NAMES = (EPISODE_REWARD_MEAN, EPISODE_REWARD_MAX, EPISODE_REWARD_MIN, TIMESTEPS_TOTAL, TRAINING_ITERATION)

# The number pattern of the SageMaker Python SDK's RAY toolkit metric definitions.
NUMBER_PATTERN = r"([-+]?[0-9]*[.]?[0-9]+([eE][-+]?[0-9]+)?)"


def metric_regex(name: str) -> str:
    """The regex SageMaker uses for one metric (first group is the value)."""
    return f"{name}: {NUMBER_PATTERN}"


def metric_definitions() -> list[dict[str, str]]:
    """MetricDefinitions for a SageMaker training or tuning job."""
    return [{"Name": name, "Regex": metric_regex(name)} for name in METRIC_NAMES]


def format_lines(values: Mapping[str, float | int | None]) -> list[str]:
    """The reward lines for one iteration; NaN or missing values are left out, never printed."""
    lines = []
    for name in METRIC_NAMES:
        value = values.get(name)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        if name in (TIMESTEPS_TOTAL, TRAINING_ITERATION):
            lines.append(f"{name}: {int(value)}")
        else:
            lines.append(f"{name}: {float(value):.6g}")
    return lines


_LINE_PATTERNS = {name: re.compile(metric_regex(name)) for name in METRIC_NAMES}


def parse_line(line: str) -> tuple[str, float] | None:
    """The (metric, value) a line reports, read with SageMaker's regex, or None."""
    for name, pattern in _LINE_PATTERNS.items():
        match = pattern.search(line)
        if match and line.lstrip().startswith(name):
            return name, float(match.group(1))
    return None


def parse_values(lines: Iterable[str], name: str = EPISODE_REWARD_MEAN) -> list[float]:
    """Every value of one metric, in order, from a job's output lines."""
    values = []
    for line in lines:
        parsed = parse_line(line)
        if parsed and parsed[0] == name:
            values.append(parsed[1])
    return values
