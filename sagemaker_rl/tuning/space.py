"""Search space: hyperparameter ranges in SageMaker's vocabulary, and how trials sample them.

A space is data: Continuous / Integer / Categorical parameters with a scaling type (Auto, Linear,
Logarithmic, ReverseLogarithmic) plus static hyperparameters. The same object becomes Optuna
distributions for the local tuner and SageMaker's `ParameterRanges` for a tuning job.

Auto scaling: SageMaker documents only that it "chooses the best scale". Locally we apply the rule
its documentation gives for choosing a scale by hand: Logarithmic for a positive range spanning more
than one order of magnitude, ReverseLogarithmic for a range inside [0, 1) whose distance to 1 spans
more than one order of magnitude (values near 1, such as gamma), Linear otherwise. SageMaker itself
still receives "Auto".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import optuna

from sagemaker_rl.contract import decode_value, encode_hyperparameters
from sagemaker_rl.errors import UserError, did_you_mean, shorten

# Ratio beyond which a range counts as spanning "several orders of magnitude" (SageMaker's guidance:
# linear when the range is "within one order of magnitude").
_ORDER_OF_MAGNITUDE = 10.0
# Prefix of the Optuna parameter that holds 1 - x for a ReverseLogarithmic parameter x.
REVERSE_PREFIX = "1-"
MAX_INTEGER = 2**53  # the largest whole number a float holds exactly
MAX_FILE_BYTES = 1_000_000  # a tuning file is a few KB
MAX_FILE_VALUES = 100_000  # values (keys, items) a tuning file may hold once its YAML aliases are expanded

_Choice = TypeVar("_Choice", bound=StrEnum)

class Scaling(StrEnum):
    """SageMaker's ScalingType values."""

    AUTO = "Auto"
    LINEAR = "Linear"
    LOGARITHMIC = "Logarithmic"
    REVERSE_LOGARITHMIC = "ReverseLogarithmic"


class TuningError(UserError):
    """A search space, tuning file or run directory that cannot be used; one sentence with the fix."""


@dataclass(frozen=True)
class ContinuousParameter:
    """A float hyperparameter searched between min_value and max_value (both included)."""

    name: str  # the dotted hyperparameter key, e.g. rl.training.config.lr
    min_value: float  # lowest value searched
    max_value: float  # highest value searched
    scaling_type: Scaling = Scaling.AUTO  # the scale values are sampled on

    def __post_init__(self) -> None:
        _check_name(self.name)
        for label in ("min_value", "max_value"):
            value = getattr(self, label)
            if not finite_number(value):
                raise TuningError(f"{self.name}: {label} must be a finite number, got {shorten(value)}")
        object.__setattr__(self, "min_value", float(self.min_value))
        object.__setattr__(self, "max_value", float(self.max_value))
        object.__setattr__(self, "scaling_type", _scaling(self.name, self.scaling_type))
        _check_range(self)

    @property
    def scale(self) -> Scaling:
        """The scale actually sampled on (Auto resolved)."""
        return _resolve(self)


@dataclass(frozen=True)
class IntegerParameter:
    """An integer hyperparameter searched between min_value and max_value (both included)."""

    name: str  # the dotted hyperparameter key, e.g. rl.training.config.num_epochs
    min_value: int  # lowest value searched
    max_value: int  # highest value searched
    scaling_type: Scaling = Scaling.AUTO  # the scale values are sampled on (ReverseLogarithmic not allowed)

    def __post_init__(self) -> None:
        _check_name(self.name)
        for label in ("min_value", "max_value"):
            value = getattr(self, label)
            if isinstance(value, float) and value.is_integer():
                object.__setattr__(self, label, int(value))
            elif isinstance(value, bool) or not isinstance(value, int):
                raise TuningError(f"{self.name}: {label} of an Integer range must be a whole number, got "
                                  f"{shorten(value)}")
            if abs(getattr(self, label)) > MAX_INTEGER:  # the samplers compute with floats
                raise TuningError(f"{self.name}: {label} of an Integer range must be within ±{MAX_INTEGER:,}, got "
                                  f"{shorten(value)}")
        object.__setattr__(self, "scaling_type", _scaling(self.name, self.scaling_type))
        if self.scaling_type is Scaling.REVERSE_LOGARITHMIC:
            raise TuningError(
                f"{self.name}: ReverseLogarithmic scaling needs values in [0, 1), which an Integer "
                "range cannot have: use a Continuous range or Linear/Logarithmic scaling"
            )
        _check_range(self)

    @property
    def scale(self) -> Scaling:
        """The scale actually sampled on (Auto resolved)."""
        return _resolve(self)


@dataclass(frozen=True)
class CategoricalParameter:
    """A hyperparameter that takes one of a list of values."""

    name: str  # the dotted hyperparameter key, e.g. rl.training.config.batch_mode
    values: tuple[Any, ...]  # the choices (numbers, strings, booleans, lists)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if isinstance(self.values, str | bytes) or not isinstance(self.values, Sequence):
            raise TuningError(f"{self.name}: values of a Categorical range must be a list, got {self.values!r}")
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise TuningError(f"{self.name}: a Categorical range needs at least one value")
        encoded = [_choice(value) for value in self.values]
        if len(set(encoded)) != len(encoded):
            raise TuningError(f"{self.name}: Categorical values must be distinct, got {list(self.values)!r}")

    @property
    def choices(self) -> list[Any]:
        """The values as Optuna stores them (lists and dicts as JSON text)."""
        return [_choice(value) for value in self.values]


Parameter = ContinuousParameter | IntegerParameter | CategoricalParameter

PARAMETER_TYPES: dict[str, type] = {
    "Continuous": ContinuousParameter,
    "Integer": IntegerParameter,
    "Categorical": CategoricalParameter,
}


@dataclass(frozen=True)
class SearchSpace:
    """The tuned parameters and the static hyperparameters every trial gets."""

    parameters: tuple[Parameter, ...] = ()  # the ranges searched
    static: Mapping[str, Any] = field(default_factory=dict)  # hyperparameters fixed for every trial

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "static", dict(self.static))
        names = [parameter.name for parameter in self.parameters]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise TuningError(f"{duplicates[0]} is given more than one range: keep one")
        both = sorted(set(names) & set(self.static))
        if both:
            raise TuningError(f"{both[0]} is both tuned and static: remove it from one of the two")
        for key in self.static:
            _check_name(key)

    @property
    def names(self) -> list[str]:
        return [parameter.name for parameter in self.parameters]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample every parameter on its scale; returns the real values by hyperparameter key."""
        return {parameter.name: _suggest(trial, parameter) for parameter in self.parameters}

    def hyperparameters(self, tuned: Mapping[str, Any]) -> dict[str, Any]:
        """The flat hyperparameters of one trial: static values, then the tuned values."""
        return {**self.static, **tuned}

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """The Optuna distribution of each parameter, keyed by the name Optuna stores it under."""
        return dict(_distribution(parameter) for parameter in self.parameters)

    def real_values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Real hyperparameter values from the values Optuna stored (undoing 1 - x and JSON text)."""
        values = {}
        for parameter in self.parameters:
            key, _ = _distribution(parameter)
            if key in params:
                values[parameter.name] = _real(parameter, params[key])
        return values

    def stored_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values Optuna stores for real hyperparameter values (the inverse of `real_values`)."""
        stored = {}
        for parameter in self.parameters:
            if parameter.name in values:
                key, _ = _distribution(parameter)
                stored[key] = _stored(parameter, values[parameter.name])
        return stored

    def from_sagemaker(self, tuned: Mapping[str, str]) -> dict[str, Any]:
        """Real values from the strings SageMaker reports for a trial (its TunedHyperParameters)."""
        parameters = {parameter.name: parameter for parameter in self.parameters}
        values = {}
        for name, text in tuned.items():
            parameter = parameters.get(name)
            if isinstance(parameter, CategoricalParameter):
                sent = [_as_sagemaker_string(value) for value in parameter.values]
                values[name] = parameter.values[sent.index(text)] if text in sent else decode_value(text)
            elif isinstance(parameter, IntegerParameter):
                values[name] = int(float(text))
            elif isinstance(parameter, ContinuousParameter):
                values[name] = float(text)
            else:
                values[name] = decode_value(text)
        return values

    def grid(self) -> dict[str, list[Any]]:
        """The grid of a Grid search; only Categorical parameters, as SageMaker requires."""
        ranges = [parameter.name for parameter in self.parameters if not isinstance(parameter, CategoricalParameter)]
        if ranges:
            raise TuningError(
                f"Grid search takes Categorical parameters only (as in SageMaker), but {ranges[0]} is a "
                "range: list its values as a Categorical parameter or use strategy Bayesian or Random"
            )
        if not self.parameters:
            raise TuningError("Grid search needs at least one Categorical parameter to enumerate")
        return {p.name: p.choices for p in self.parameters if isinstance(p, CategoricalParameter)}

    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid().values())

    def to_parameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """SageMaker's ParameterRanges for CreateHyperParameterTuningJob (all values as strings)."""
        ranges: dict[str, list[dict[str, Any]]] = {
            "ContinuousParameterRanges": [],
            "IntegerParameterRanges": [],
            "CategoricalParameterRanges": [],
        }
        for parameter in self.parameters:
            if isinstance(parameter, CategoricalParameter):
                ranges["CategoricalParameterRanges"].append(
                    {
                        "Name": parameter.name,
                        "Values": [_as_sagemaker_string(value) for value in parameter.values],
                    }
                )
            else:
                kind = (
                    "ContinuousParameterRanges"
                    if isinstance(parameter, ContinuousParameter)
                    else "IntegerParameterRanges"
                )
                ranges[kind].append(
                    {
                        "Name": parameter.name,
                        "MinValue": str(parameter.min_value),
                        "MaxValue": str(parameter.max_value),
                        "ScalingType": str(parameter.scaling_type),
                    }
                )
        return ranges

    def static_hyperparameters(self) -> dict[str, str]:
        """SageMaker's StaticHyperParameters: each value JSON-encoded, as the SageMaker SDK writes them."""
        return encode_hyperparameters(self.static)

    def to_dict(self) -> dict[str, Any]:
        """The space in the file format `parse_space` reads."""
        parameters: dict[str, dict[str, Any]] = {}
        for parameter in self.parameters:
            if isinstance(parameter, CategoricalParameter):
                parameters[parameter.name] = {"type": "Categorical", "values": list(parameter.values)}
            else:
                kind = "Continuous" if isinstance(parameter, ContinuousParameter) else "Integer"
                parameters[parameter.name] = {
                    "type": kind,
                    "min_value": parameter.min_value,
                    "max_value": parameter.max_value,
                    "scaling_type": str(parameter.scaling_type),
                }
        return {"parameters": parameters, "static": dict(self.static)}


_PARAMETER_FIELDS = {
    "Continuous": ("type", "min_value", "max_value", "scaling_type"),
    "Integer": ("type", "min_value", "max_value", "scaling_type"),
    "Categorical": ("type", "values"),
}


def to_unit(parameter: ContinuousParameter | IntegerParameter, value: float) -> float:
    """Where `value` lies in the parameter's range on its scale, from 0 (min_value) to 1 (max_value)."""
    low, high = _scaled(parameter, parameter.min_value), _scaled(parameter, parameter.max_value)
    return min(1.0, max(0.0, (_scaled(parameter, value) - low) / (high - low))) if high != low else 0.5


def from_unit(parameter: ContinuousParameter | IntegerParameter, unit: float) -> Any:
    """The value at `unit` (0 to 1) of the parameter's range on its scale, kept in the range."""
    low, high = _scaled(parameter, parameter.min_value), _scaled(parameter, parameter.max_value)
    value = _unscaled(parameter, low + unit * (high - low))
    value = min(parameter.max_value, max(parameter.min_value, value))
    return int(round(value)) if isinstance(parameter, IntegerParameter) else float(value)


def _scaled(parameter: ContinuousParameter | IntegerParameter, value: float) -> float:
    if parameter.scale is Scaling.LOGARITHMIC:
        return math.log(value)
    if parameter.scale is Scaling.REVERSE_LOGARITHMIC:
        return -math.log(1 - value)
    return float(value)


def _unscaled(parameter: ContinuousParameter | IntegerParameter, scaled: float) -> float:
    if parameter.scale is Scaling.LOGARITHMIC:
        return math.exp(scaled)
    if parameter.scale is Scaling.REVERSE_LOGARITHMIC:
        return 1 - math.exp(-scaled)
    return scaled


def parse_parameter(name: str, data: Mapping[str, Any]) -> Parameter:
    """One parameter from its file form, e.g. {type: Continuous, min_value: 0.5, max_value: 1.0}."""
    if not isinstance(data, Mapping):
        raise TuningError(
            f"{name}: a parameter must be a mapping such as "
            f"{{type: Continuous, min_value: 0.5, max_value: 1.0}}, got {data!r}"
        )
    kind = data.get("type")
    if kind not in PARAMETER_TYPES:
        raise TuningError(
            f"{name}: unknown parameter type {kind!r}{did_you_mean(str(kind), PARAMETER_TYPES)}: "
            f"use one of {', '.join(PARAMETER_TYPES)}"
        )
    allowed = _PARAMETER_FIELDS[kind]
    for key in data:
        if key not in allowed:
            raise TuningError(
                f"{name}: unknown field {key!r} for a {kind} parameter{did_you_mean(str(key), allowed)}: "
                f"use {', '.join(allowed)}"
            )
    if kind == "Categorical":
        if "values" not in data:
            raise TuningError(f"{name}: a Categorical parameter needs 'values', a list of choices")
        return CategoricalParameter(name, data["values"])
    missing = [key for key in ("min_value", "max_value") if key not in data]
    if missing:
        raise TuningError(f"{name}: a {kind} parameter needs {' and '.join(missing)}")
    cls = ContinuousParameter if kind == "Continuous" else IntegerParameter
    return cls(
        name,
        _number(name, data["min_value"]),
        _number(name, data["max_value"]),
        data.get("scaling_type", Scaling.AUTO),
    )


def parse_space(parameters: Mapping[str, Any] | None, static: Mapping[str, Any] | None = None) -> SearchSpace:
    """A space from the `parameters` and `static` sections of a tuning file."""
    if parameters is not None and not isinstance(parameters, Mapping):
        raise TuningError(f"'parameters' must map hyperparameter keys to ranges, got {type(parameters).__name__}")
    if static is not None and not isinstance(static, Mapping):
        raise TuningError(f"'static' must map hyperparameter keys to values, got {type(static).__name__}")
    return SearchSpace(
        tuple(parse_parameter(name, data) for name, data in (parameters or {}).items()), dict(static or {})
    )


def from_parameter_ranges(ranges: Mapping[str, Any], static: Mapping[str, Any] | None = None) -> SearchSpace:
    """A space from SageMaker's ParameterRanges (and StaticHyperParameters, values decoded from JSON)."""
    try:
        return _from_parameter_ranges(ranges, static)
    except (KeyError, TypeError, AttributeError) as error:
        raise TuningError(
            f"ParameterRanges is not in SageMaker's form ({type(error).__name__}: {shorten(error)}): Continuous- and "
            "IntegerParameterRanges are lists of {Name, MinValue, MaxValue[, ScalingType]}, CategoricalParameterRanges "
            "a list of {Name, Values}; StaticHyperParameters a mapping"
        ) from None


def _from_parameter_ranges(ranges: Mapping[str, Any], static: Mapping[str, Any] | None) -> SearchSpace:
    parameters: list[Parameter] = []
    for item in ranges.get("ContinuousParameterRanges", []):
        parameters.append(
            ContinuousParameter(
                item["Name"],
                _number(item["Name"], item["MinValue"]),
                _number(item["Name"], item["MaxValue"]),
                item.get("ScalingType", Scaling.AUTO),
            )
        )
    for item in ranges.get("IntegerParameterRanges", []):
        parameters.append(
            IntegerParameter(
                item["Name"],
                _number(item["Name"], item["MinValue"]),
                _number(item["Name"], item["MaxValue"]),
                item.get("ScalingType", Scaling.AUTO),
            )
        )
    for item in ranges.get("CategoricalParameterRanges", []):
        parameters.append(CategoricalParameter(item["Name"], tuple(decode_value(value) for value in item["Values"])))
    return SearchSpace(tuple(parameters), {key: decode_value(value) for key, value in (static or {}).items()})


def parse_parameter_flag(text: str) -> tuple[str, dict[str, Any]]:
    """A parameter from a command-line flag, e.g. `rl.training.config.lr=Continuous:1e-5:1e-3:Logarithmic`.

    Forms: NAME=Continuous:MIN:MAX[:SCALING], NAME=Integer:MIN:MAX[:SCALING], NAME=Categorical:A,B,C.
    Returns the name and the parameter in file form (see `parse_parameter`).
    """
    name, sep, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    if not sep or not name or not rest:
        raise TuningError(
            f"cannot read parameter {text!r}: write NAME=Continuous:MIN:MAX[:SCALING], "
            "NAME=Integer:MIN:MAX[:SCALING] or NAME=Categorical:A,B,C"
        )
    if kind == "Categorical":
        data: dict[str, Any] = {"type": kind, "values": [decode_value(value) for value in rest.split(",")]}
    else:
        parts = rest.split(":")
        if len(parts) not in (2, 3):
            raise TuningError(f"cannot read parameter {text!r}: a {kind} range is {kind}:MIN:MAX[:SCALING]")
        data = {"type": kind, "min_value": parts[0], "max_value": parts[1]}
        if len(parts) == 3:
            data["scaling_type"] = parts[2]
    parse_parameter(name, data)  # validate now, so the flag is named in the error
    return name, data


def parameter_flag(parameter: Parameter) -> str:
    """The `--param` text of a parameter (what `parse_parameter_flag` reads back)."""
    if isinstance(parameter, CategoricalParameter):
        return f"{parameter.name}=Categorical:{','.join(_as_sagemaker_string(value) for value in parameter.values)}"
    kind = "Continuous" if isinstance(parameter, ContinuousParameter) else "Integer"
    return f"{parameter.name}={kind}:{parameter.min_value!r}:{parameter.max_value!r}:{parameter.scaling_type}"


def parse_static_flag(text: str) -> tuple[str, Any]:
    """A static hyperparameter from `KEY=VALUE` (VALUE read as JSON, else as a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise TuningError(
            f"cannot read static hyperparameter {text!r}: write KEY=VALUE, e.g. rl.training.stop.time_total_s=120"
        )
    return key, decode_value(value)


def load_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON tuning file."""
    import yaml

    path = Path(path)
    text = _read_text(path)
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0]
        raise TuningError(
            f"tuning file {path} is not valid {path.suffix.lstrip('.').upper() or 'YAML'}: {first}"
        ) from None
    except RecursionError:
        raise TuningError(f"tuning file {path} nests too deeply to read: a tuning file is a few flat "
                          "mappings") from None
    _check_size(data, path)
    if not isinstance(data, dict):
        raise TuningError(
            f"tuning file {path} must hold a mapping (parameters:, static:, max_jobs: ...), got {type(data).__name__}"
        )
    return data


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise TuningError(f"tuning file {path} holds {path.stat().st_size:,} bytes: a tuning file is a few KB "
                              f"(at most {MAX_FILE_BYTES:,})")
        return path.read_text()
    except OSError as error:
        raise TuningError(f"cannot read tuning file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise TuningError(f"tuning file {path} is not UTF-8 text (byte {error.start}): save it as YAML or JSON "
                          "text") from None


def _check_size(data: Any, path: Path) -> None:
    """TuningError when the loaded file holds more values than a tuning file has: YAML aliases can make a few lines
    of text stand for billions of values (a "billion laughs"), which every later step would expand."""
    budget, stack = MAX_FILE_VALUES, [data]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            raise TuningError(f"tuning file {path} expands to more than {MAX_FILE_VALUES:,} values (YAML aliases "
                              "repeating lists?): write the ranges out")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def finite_number(value: Any) -> bool:
    """`value` is an int or a float (not a bool) that a float holds, not NaN or infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise TuningError(f"a hyperparameter name must be a non-empty string, got {name!r}")


def parse_choice(kind: type[_Choice], value: Any, *, what: str, where: str = "") -> _Choice:
    """`value` as a member of the StrEnum `kind`; a TuningError names the choices (and the closest) otherwise."""
    try:
        return kind(value)
    except ValueError:
        choices = [str(member) for member in kind]
        raise TuningError(
            f"{where}unknown {what} {value!r}{did_you_mean(str(value), choices)}: use one of {', '.join(choices)}"
        ) from None


def _scaling(name: str, value: Any) -> Scaling:
    return parse_choice(Scaling, value, what="scaling_type", where=f"{name}: ")


def _check_range(parameter: ContinuousParameter | IntegerParameter) -> None:
    low, high, name = parameter.min_value, parameter.max_value, parameter.name
    if low >= high:
        raise TuningError(
            f"{name}: min_value ({low}) must be below max_value ({high}); "
            "for a single value use a static hyperparameter"
        )
    if parameter.scaling_type is Scaling.LOGARITHMIC and low <= 0:
        raise TuningError(
            f"{name}: Logarithmic scaling needs values above 0, but min_value is {low}: "
            "raise min_value or use Linear scaling"
        )
    if parameter.scaling_type is Scaling.REVERSE_LOGARITHMIC and not (0 <= low and high < 1):
        raise TuningError(
            f"{name}: ReverseLogarithmic scaling needs 0 <= values < 1, got [{low}, {high}]: "
            "narrow the range or use Linear or Logarithmic scaling"
        )
    if isinstance(parameter, IntegerParameter) and parameter.scaling_type is Scaling.LOGARITHMIC and low < 1:
        raise TuningError(f"{name}: Logarithmic scaling of an Integer range needs min_value >= 1, got {low}")


def _resolve(parameter: ContinuousParameter | IntegerParameter) -> Scaling:
    if parameter.scaling_type is not Scaling.AUTO:
        return parameter.scaling_type
    low, high = parameter.min_value, parameter.max_value
    if low >= (1 if isinstance(parameter, IntegerParameter) else 0) and low > 0 and high / low > _ORDER_OF_MAGNITUDE:
        return Scaling.LOGARITHMIC
    if (
        isinstance(parameter, ContinuousParameter)
        and 0 <= low
        and high < 1
        and (1 - low) / (1 - high) > _ORDER_OF_MAGNITUDE
    ):
        return Scaling.REVERSE_LOGARITHMIC
    return Scaling.LINEAR


def _distribution(parameter: Parameter) -> tuple[str, optuna.distributions.BaseDistribution]:
    if isinstance(parameter, CategoricalParameter):
        return parameter.name, optuna.distributions.CategoricalDistribution(parameter.choices)
    scale = parameter.scale
    if isinstance(parameter, IntegerParameter):
        return parameter.name, optuna.distributions.IntDistribution(
            parameter.min_value, parameter.max_value, log=scale is Scaling.LOGARITHMIC
        )
    if scale is Scaling.REVERSE_LOGARITHMIC:
        # 1 - x on a log scale: as much resolution near 1 as a log scale has near 0.
        return REVERSE_PREFIX + parameter.name, optuna.distributions.FloatDistribution(
            1 - parameter.max_value, 1 - parameter.min_value, log=True
        )
    return parameter.name, optuna.distributions.FloatDistribution(
        parameter.min_value, parameter.max_value, log=scale is Scaling.LOGARITHMIC
    )


def _suggest(trial: optuna.Trial, parameter: Parameter) -> Any:
    key, distribution = _distribution(parameter)
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        value = trial.suggest_categorical(key, distribution.choices)
    elif isinstance(distribution, optuna.distributions.IntDistribution):
        value = trial.suggest_int(key, distribution.low, distribution.high, log=distribution.log)
    else:
        assert isinstance(distribution, optuna.distributions.FloatDistribution)
        value = trial.suggest_float(key, distribution.low, distribution.high, log=distribution.log)
    return _real(parameter, value)


def _real(parameter: Parameter, stored: Any) -> Any:
    if isinstance(parameter, CategoricalParameter):
        return parameter.values[parameter.choices.index(stored)]
    if isinstance(parameter, IntegerParameter):
        return int(stored)
    if parameter.scale is Scaling.REVERSE_LOGARITHMIC:
        # 1 - (1 - x) can round a hair outside the range; keep the sample inside it.
        return min(parameter.max_value, max(parameter.min_value, 1 - float(stored)))
    return float(stored)


def _stored(parameter: Parameter, value: Any) -> Any:
    if isinstance(parameter, CategoricalParameter):
        return _choice(value)
    if isinstance(parameter, IntegerParameter):
        return int(value)
    if parameter.scale is Scaling.REVERSE_LOGARITHMIC:
        return 1 - float(value)
    return float(value)


def _choice(value: Any) -> Any:
    """A categorical value as Optuna can store it: scalars as they are, anything else as JSON text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)


def _number(name: str, value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise TuningError(f"{name}: {value!r} is not a number") from None
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def _as_sagemaker_string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
