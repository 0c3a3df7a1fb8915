"""Typed hyperparameter values: what one field takes (FieldSpec) and the check that turns a decoded value into it.

A value may arrive as a JSON number, a string of one, or a list encoded twice (SageMaker SDK v2 and the
tuner); each is coerced to the first of the field's kinds it fits, within bounds, or refused with a
message that names the key, what it takes and what it got.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from sagemaker_rl.contract import decode_value
from sagemaker_rl.errors import UserError, did_you_mean, shorten

_FIX = "change the value, or drop the key to keep the preset's"


@dataclass(frozen=True)
class FieldSpec:
    """What one hyperparameter takes: its JSON types, bounds, allowed strings, list items."""

    kinds: tuple[type, ...]  # tried in order: bool, int, float, str, list, dict
    low: float | None = None  # lowest allowed number (None: no bound)
    high: float | None = None  # highest allowed number (None: no bound)
    low_inclusive: bool = True  # low itself is allowed
    choices: tuple[str, ...] = ()  # the strings allowed for a str kind (empty: any string)
    nullable: bool = False  # JSON null is allowed (RLlib reads None as "off" or "automatic")
    schedule: bool = False  # a schedule [[timestep, value], ...] is allowed as well
    item: FieldSpec | None = None  # what each element of a list holds
    min_items: int = 0  # fewest list elements
    max_items: int = 64  # most list elements


def check_value(key: str, value: Any, spec: FieldSpec) -> Any:
    """`value` as `spec` takes it (typed, in bounds, an allowed string), or UserError naming `key`."""
    if value is None and spec.nullable:
        return None
    if spec.schedule and isinstance(_maybe_list(value), list):
        return _check_schedule(key, _maybe_list(value), spec)
    for kind in spec.kinds:
        try:
            typed = _as(kind, value)
        except (TypeError, ValueError, OverflowError, RecursionError):
            continue
        if isinstance(typed, str) and spec.choices and typed not in spec.choices:
            continue
        if isinstance(typed, int | float) and not isinstance(typed, bool) and not _in_bounds(typed, spec):
            continue
        if isinstance(typed, list):
            return _check_items(key, typed, spec)
        if isinstance(typed, dict) and not all(isinstance(sub, str) for sub in typed):
            continue
        return typed
    raise UserError(f"{key} must be {describe(spec)}, got {shorten(value)}{_suggest(value, spec)}: {_FIX}")


def describe(spec: FieldSpec) -> str:
    """What `spec` allows, in words: 'a number > 0 and <= 1, or a schedule [[timestep, value], ...]'."""
    parts = []
    for kind in spec.kinds:
        if kind in (int, float):
            bounds = [text for text in (
                None if spec.low is None else f"{'>=' if spec.low_inclusive else '>'} {spec.low:g}",
                None if spec.high is None else f"<= {spec.high:g}") if text]
            parts.append(_KIND_NAMES[kind] + (" " + " and ".join(bounds) if bounds else ""))
        elif kind is str and spec.choices:
            parts.append("one of " + ", ".join(spec.choices))
        elif kind is list and spec.item is not None:
            parts.append(f"a JSON list of {spec.min_items} to {spec.max_items} {_plural(describe(spec.item))}")
        else:
            parts.append(_KIND_NAMES[kind])
    if spec.schedule:
        parts.append("a schedule [[timestep, value], ...] starting at timestep 0")
    if spec.nullable:
        parts.append("null")
    return " or ".join(parts)


def _plural(text: str) -> str:
    return text.replace("a whole number", "whole numbers").replace("a number", "numbers")


def _suggest(value: Any, spec: FieldSpec) -> str:
    return did_you_mean(value, spec.choices) if isinstance(value, str) and spec.choices and len(value) < 100 else ""


def _maybe_list(value: Any) -> Any:
    """A list, also when SageMaker SDK v2 or the tuner encoded it twice ("\"[64, 64]\"")."""
    return decode_value(value) if isinstance(value, str) else value


def _check_items(key: str, items: list[Any], spec: FieldSpec) -> list[Any]:
    if not spec.min_items <= len(items) <= spec.max_items:
        raise UserError(f"{key} must be {describe(spec)}, got {len(items)} elements ({shorten(items)}): {_FIX}")
    if spec.item is None:
        return items
    return [check_value(f"{key}[{index}]", item, spec.item) for index, item in enumerate(items)]


def _check_schedule(key: str, schedule: list[Any], spec: FieldSpec) -> list[list[Any]]:
    """RLlib's [[timestep, value], ...]: timesteps from 0, increasing; every value within the field's bounds."""
    value_spec = dataclasses.replace(spec, schedule=False, nullable=False)
    checked: list[list[Any]] = []
    for index, entry in enumerate(schedule[:spec.max_items + 1]):
        if not isinstance(entry, list) or len(entry) != 2:
            raise UserError(f"{key}[{index}] must be a pair [timestep, value], got {shorten(entry)}: "
                            "write the schedule as [[0, start value], [timestep, value], ...]")
        timestep = check_value(f"{key}[{index}][0]", entry[0], FieldSpec((int,), 0, 10**15))
        if (index == 0 and timestep != 0) or (checked and timestep <= checked[-1][0]):
            raise UserError(f"{key}: schedule timesteps must start at 0 and increase, got {shorten(schedule)}: "
                            "write [[0, start value], [later timestep, value], ...]")
        checked.append([timestep, check_value(f"{key}[{index}][1]", entry[1], value_spec)])
    if not checked or len(schedule) > spec.max_items:
        raise UserError(f"{key} must be {describe(spec)}, got {shorten(schedule)}: {_FIX}")
    return checked


_KIND_NAMES = {float: "a number", int: "a whole number", bool: "true or false", str: "a string",
               list: "a JSON list", dict: "a JSON object"}


def _as(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(value)
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float | str):  # never read True as 1
            raise TypeError(value)
        if isinstance(value, str) and not _NUMBER.fullmatch(value):  # float() would take "1_000", " 1", "١"
            raise ValueError(value)
        number = float(value)  # OverflowError for an int beyond float's range
        if not math.isfinite(number):
            raise ValueError(value)
        if kind is float:
            return number
        if isinstance(value, int):
            return value
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    if isinstance(value, kind):
        return value
    if kind in (list, dict) and isinstance(value, str):
        # SageMaker SDK v2 and the tuner encode a categorical list twice: "\"[64, 64]\"" -> "[64, 64]"
        decoded = decode_value(value)
        if isinstance(decoded, kind):
            return decoded
    raise TypeError(value)


# A JSON number in ASCII, at most 100 characters (no number of ours needs more digits).
_NUMBER = re.compile(r"(?=.{1,100}$)[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?")


def _in_bounds(value: float, spec: FieldSpec) -> bool:
    too_low = spec.low is not None and (value < spec.low or (value == spec.low and not spec.low_inclusive))
    return not too_low and not (spec.high is not None and value > spec.high)
