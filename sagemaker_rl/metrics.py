"""Reward lines: the one definition of what a job prints and how runners and benchmarks read it back.

SageMaker's metric definitions and our own tuner both parse these lines; the names are a public
contract and must never be renamed.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

EPISODE_REWARD_MEAN = "episode_reward_mean"
EPISODE_REWARD_MAX = "episode_reward_max"
EPISODE_REWARD_MIN = "episode_reward_min"
TIMESTEPS_TOTAL = "timesteps_total"
TRAINING_ITERATION = "training_iteration"
# The mean return of a deterministic evaluation (the policy's mean action, fixed episode seeds), printed in the
# iterations that evaluate (rl.training.evaluation_interval): a ranking without the exploration noise.
EVALUATION_REWARD_MEAN = "evaluation_reward_mean"

METRIC_NAMES = (EPISODE_REWARD_MEAN, EPISODE_REWARD_MAX, EPISODE_REWARD_MIN, EVALUATION_REWARD_MEAN, TIMESTEPS_TOTAL,
                TRAINING_ITERATION)

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


def diverged_line(name: str = EPISODE_REWARD_MEAN) -> str:
    """The line a job prints when `name` became NaN or infinity (SageMaker's regex reads no number in it)."""
    return f"{name}: nan"


_LINE_PATTERNS = {name: re.compile(metric_regex(name)) for name in METRIC_NAMES}
# A value SageMaker's regex cannot read: what a job that does not leave NaN out would print.
_NON_FINITE_LINE = re.compile(rf"^\s*({'|'.join(METRIC_NAMES)}):\s*([-+]?(nan|inf(inity)?))\s*$", re.IGNORECASE)


def parse_line(line: str) -> tuple[str, float] | None:
    """The (metric, value) a line reports, or None; a value printed as NaN or infinity reads as one.

    Finite values are read with SageMaker's regex, so what SageMaker reads and what we read agree.
    """
    for name, pattern in _LINE_PATTERNS.items():
        match = pattern.search(line)
        if match and line.lstrip().startswith(name):
            return name, float(match.group(1))
    match = _NON_FINITE_LINE.match(line)
    if match:
        return match.group(1), float(match.group(2))
    return None


@dataclass(frozen=True)
class Record:
    """What a job reported for one training iteration."""

    iteration: int  # training iteration (increasing, even if a job prints a repeated number)
    env_steps: int | None  # timesteps_total at that iteration, when printed
    value: float | None  # the metric read, None when the job printed no finite value for it


class RecordReader:
    """Turns a job's output, line by line, into one `Record` per training iteration.

    The job prints an iteration's reward lines, then timesteps_total, then training_iteration, which
    ends the record. A value printed again before its iteration line starts a new record (output that
    never prints iteration lines still reads as one record per value). NaN or infinity is never a
    record's value; `diverged` says whether the metric's latest value was one.
    """

    def __init__(self, metric: str = EPISODE_REWARD_MEAN) -> None:
        if metric not in METRIC_NAMES:
            raise ValueError(f"{metric!r} is not a reward line: use one of {', '.join(METRIC_NAMES)}")
        self.metric = metric
        self.diverged = False  # the latest value of the metric was NaN or infinity
        self._iteration = 0  # of the last record
        self._value: float | None = None
        self._env_steps: int | None = None

    def feed(self, line: str) -> Record | None:
        """Read one output line; the record it completes, if any."""
        parsed = parse_line(line)
        if parsed is None:
            return None
        name, value = parsed
        if name == self.metric:
            completed = self._complete(None) if self._value is not None else None
            self.diverged = not math.isfinite(value)
            if not self.diverged:
                self._value = value
            return completed
        if name == TIMESTEPS_TOTAL and math.isfinite(value):
            self._env_steps = int(value)
        elif name == TRAINING_ITERATION and math.isfinite(value):
            return self._complete(int(value))
        return None

    def close(self) -> Record | None:
        """The record the output ended in, when it has a value but no iteration line."""
        return self._complete(None) if self._value is not None else None

    def _complete(self, printed: int | None) -> Record:
        iteration = self._iteration + 1 if printed is None else max(printed, self._iteration + 1)
        record = Record(iteration, self._env_steps, self._value)
        self._iteration, self._value, self._env_steps = iteration, None, None
        return record


def read_progress_records(progress_csv: Path, metric: str = EPISODE_REWARD_MEAN) -> list[Record]:
    """Every record of a job's output/intermediate/progress.csv (a row per iteration, the reward lines' values):
    what a job reported, read where its printed output is lost; [] without the file."""
    try:
        with progress_csv.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return []
    records = []
    for row in rows:
        try:
            iteration, steps = int(row[TRAINING_ITERATION]), int(float(row[TIMESTEPS_TOTAL]))
            value = float(row[metric].strip() or "nan")  # empty: no episode finished in the iteration
        except (KeyError, AttributeError, TypeError, ValueError):  # a row cut short by a kill; a metric not there
            continue
        records.append(Record(iteration, steps, value if math.isfinite(value) else None))
    return records


def read_records(lines: Iterable[str], metric: str = EPISODE_REWARD_MEAN) -> list[Record]:
    """Every record in a job's complete output (see `RecordReader`)."""
    reader = RecordReader(metric)
    records = [record for record in map(reader.feed, lines) if record is not None]
    last = reader.close()
    return records + ([last] if last else [])
