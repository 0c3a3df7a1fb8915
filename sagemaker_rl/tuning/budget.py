"""Budgets: durations (`--max-runtime`) and the training budget a run's answer is judged and trained at.

A training budget is what the user will train with: env steps (`1M`, `500k`, `250000`) or training time
(`90s`, `30min`, `2h`). Search trials may be shorter (their own stop); the re-evaluation trains the
candidates at the training budget, so the answer is chosen where it will be used and its best job's
policy is the run's trained policy. `5m` is refused as ambiguous (minutes or million steps?).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagemaker_rl.job import STOP_PREFIX
from sagemaker_rl.tuning.space import TuningError

_TIME_UNITS = {"s": 1, "sec": 1, "min": 60, "h": 3600}
_STEP_UNITS = {"": 1, "k": 1_000, "K": 1_000, "M": 1_000_000}
# Stops that bound how long a job trains: a training budget replaces them (a target-return stop stays).
LENGTH_STOPS = tuple(STOP_PREFIX + name for name in ("time_total_s", "timesteps_total", "training_iteration"))
_LENGTH_UNITS = dict(zip(LENGTH_STOPS, ("training s", "env steps", "iterations"), strict=True))
_NUMBER = r"(\d+(?:\.\d*)?(?:e\d+)?|\.\d+)"


def parse_duration(text: str) -> int:
    """A duration: `900`, `90s`, `30m`, `30min` or `2h`, in whole seconds (ValueError when it is not one)."""
    match = re.fullmatch(_NUMBER + r"\s*(s|sec|m|min|h)?", str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration: write e.g. 900, 30m or 2h")
    seconds = float(match.group(1)) * _TIME_UNITS.get(match.group(2) or "s", 60)
    if not 1 <= seconds < 10**9:
        raise ValueError(f"{text!r} is not a duration from 1 s to ~30 years")
    return round(seconds)


@dataclass(frozen=True)
class TrainBudget:
    """How long the user's training runs: env steps or training seconds (one of the two)."""

    env_steps: int | None = None
    seconds: int | None = None

    @property
    def stop(self) -> dict[str, int]:
        """The job's stop for this budget."""
        if self.env_steps is not None:
            return {STOP_PREFIX + "timesteps_total": self.env_steps}
        assert self.seconds is not None
        return {STOP_PREFIX + "time_total_s": self.seconds}

    def apply(self, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
        """`hyperparameters` trained at this budget: their own length stops replaced by its stop."""
        kept = {key: value for key, value in hyperparameters.items() if key not in LENGTH_STOPS}
        return {**kept, **self.stop}

    def describe(self) -> str:
        return describe_length(self.stop) or ""


def describe_length(hyperparameters: Mapping[str, Any]) -> str | None:
    """How long a job with these hyperparameters trains, in words, e.g. `150 training s` (None: no length stop, it
    trains until its target return); a value as a tuning file wrote it (text, say) is shown as it is."""
    for key, unit in _LENGTH_UNITS.items():
        value = hyperparameters.get(key)
        if value is not None:
            number = f"{value:,}" if isinstance(value, int) else f"{value:g}" if isinstance(value, float) else value
            return f"{number} {unit}"
    return None


def parse_train_budget(value: Any) -> TrainBudget:
    """A training budget from a flag or a tuning file; TuningError in one sentence when it is not one."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
    if text is None:
        raise TuningError(f"train_budget must be env steps (1M, 500k, 250000) or a training time (90s, 30min, 2h), "
                          f"got {value!r}")
    if re.fullmatch(_NUMBER + r"\s*m", text):
        raise TuningError(f"train_budget {text!r} is ambiguous: write {text[:-1]}min for minutes or {text[:-1]}M "
                          "for million env steps")
    steps = re.fullmatch(_NUMBER + r"\s*([kKM]?)", text)
    if steps:
        count = float(steps.group(1)) * _STEP_UNITS[steps.group(2)]
        if not math.isfinite(count) or not 1_000 <= count <= 10**12:
            raise TuningError(f"train_budget {text!r} is not from 1,000 to 10^12 env steps")
        return TrainBudget(env_steps=round(count))
    try:
        return TrainBudget(seconds=parse_duration(text))
    except ValueError:
        raise TuningError(f"train_budget {text!r} is neither env steps (1M, 500k, 250000) nor a training time "
                          "(90s, 30min, 2h)") from None
