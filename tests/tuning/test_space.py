"""Search space: SageMaker's vocabulary, validation messages, scales and SageMaker's ParameterRanges."""

from __future__ import annotations

import math
import statistics

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_rl.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Scaling,
    SearchSpace,
    TuningError,
    from_parameter_ranges,
    parse_parameter_flag,
    parse_space,
    parse_static_flag,
)
from sagemaker_rl.tuning.space import REVERSE_PREFIX, load_file, parameter_flag

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _samples(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values = []
    for _ in range(n):
        trial = study.ask()
        values.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return values


def test_yaml_file_with_every_parameter_type_is_read(tmp_path):
    file = tmp_path / "space.yaml"
    file.write_text(
        "parameters:\n"
        "  rl.training.config.lr:\n"
        "    {type: Continuous, min_value: 1.0e-5, max_value: 1.0e-3, scaling_type: Logarithmic}\n"
        "  rl.training.config.num_epochs: {type: Integer, min_value: 3, max_value: 50}\n"
        "  rl.training.config.gamma: {type: Continuous, min_value: 0.9, max_value: 0.9999}\n"
        "  rl.training.config.model_config.fcnet_hiddens:\n"
        "    {type: Categorical, values: [[64, 64], [256, 256]]}\n"
        "static:\n"
        "  rl.training.stop.time_total_s: 120\n"
    )
    data = load_file(file)
    space = parse_space(data["parameters"], data["static"])
    lr, epochs, gamma, hidden = space.parameters
    assert (lr.min_value, lr.max_value, lr.scale) == (1e-5, 1e-3, Scaling.LOGARITHMIC)
    assert (epochs.min_value, epochs.max_value) == (3, 50) and isinstance(epochs.min_value, int)
    assert gamma.scale is Scaling.REVERSE_LOGARITHMIC  # Auto, values near 1
    assert hidden.values == ([64, 64], [256, 256])
    assert space.static == {"rl.training.stop.time_total_s": 120}
    sample = _samples(space, 1)[0]
    assert sample["rl.training.config.model_config.fcnet_hiddens"] in ([64, 64], [256, 256])


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("x", {"type": "Continous", "min_value": 0, "max_value": 1}, "did you mean 'Continuous'"),
        ("x", {"type": "Continuous", "min_value": 0, "max_valu": 1}, "did you mean 'max_value'"),
        ("x", {"type": "Continuous", "min_value": 0}, "needs max_value"),
        (
            "x",
            {"type": "Continuous", "min_value": 1, "max_value": 1},
            "min_value (1.0) must be below max_value",
        ),
        (
            "x",
            {"type": "Continuous", "min_value": 0, "max_value": 1, "scaling_type": "Log"},
            "unknown scaling_type",
        ),
        (
            "x",
            {"type": "Continuous", "min_value": 0, "max_value": 1, "scaling_type": "Logarithmic"},
            "above 0",
        ),
        (
            "x",
            {"type": "Continuous", "min_value": 0.5, "max_value": 1.0, "scaling_type": "ReverseLogarithmic"},
            "0 <= values < 1",
        ),
        (
            "x",
            {"type": "Integer", "min_value": 0, "max_value": 1, "scaling_type": "ReverseLogarithmic"},
            "Integer range cannot",
        ),
        ("x", {"type": "Integer", "min_value": 1.5, "max_value": 3}, "whole number"),
        ("x", {"type": "Continuous", "min_value": "a", "max_value": 3}, "'a' is not a number"),
        ("x", {"type": "Categorical", "values": []}, "at least one value"),
        ("x", {"type": "Categorical", "values": [1, 1]}, "distinct"),
        ("x", {"type": "Categorical", "values": "abc"}, "must be a list"),
    ],
)
def test_invalid_parameter_is_rejected_with_one_sentence(name, data, expected):
    with pytest.raises(TuningError) as error:
        parse_space({name: data})
    message = str(error.value)
    assert expected in message
    assert "\n" not in message and message.startswith("x")


def test_a_key_both_tuned_and_static_is_rejected():
    with pytest.raises(TuningError, match="both tuned and static"):
        parse_space({"a": {"type": "Integer", "min_value": 1, "max_value": 2}}, {"a": 3})


def test_auto_scaling_follows_sagemakers_guidance():
    assert ContinuousParameter("a", 0.5, 1.0).scale is Scaling.LINEAR  # within an order of magnitude
    assert ContinuousParameter("a", 1e-5, 1e-2).scale is Scaling.LOGARITHMIC  # several orders
    assert ContinuousParameter("a", 0.9, 0.9999).scale is Scaling.REVERSE_LOGARITHMIC  # near 1
    assert ContinuousParameter("a", 0.0, 0.5).scale is Scaling.LINEAR
    assert IntegerParameter("a", 3, 50).scale is Scaling.LOGARITHMIC
    assert IntegerParameter("a", 0, 50).scale is Scaling.LINEAR  # 0 cannot be on a log scale
    assert IntegerParameter("a", 3, 20).scale is Scaling.LINEAR


def test_logarithmic_scale_spreads_samples_over_orders_of_magnitude():
    space = SearchSpace((ContinuousParameter("lr", 1e-5, 1e-1, Scaling.LOGARITHMIC),))
    values = [sample["lr"] for sample in _samples(space, 400)]
    below_geometric_middle = sum(value < 1e-3 for value in values) / len(values)
    assert 0.4 < below_geometric_middle < 0.6  # linear sampling would put ~1% there


def test_reverse_logarithmic_scale_samples_one_minus_x_on_a_log_scale():
    space = SearchSpace((ContinuousParameter("gamma", 0.9, 0.9999, Scaling.REVERSE_LOGARITHMIC),))
    key, distribution = next(iter(space.distributions().items()))
    assert key == REVERSE_PREFIX + "gamma" and distribution.log
    assert math.isclose(distribution.low, 1e-4, rel_tol=1e-6) and math.isclose(distribution.high, 0.1)
    values = [sample["gamma"] for sample in _samples(space, 400)]
    above_099 = sum(value > 0.99 for value in values) / len(values)
    assert 0.6 < above_099 < 0.75  # 2 of 3 decades of 1-x lie above 0.99; linear would give ~10%


@settings(max_examples=60, deadline=None)
@given(
    low=st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    width=st.floats(min_value=1e-3, max_value=1e3, allow_nan=False),
    scaling=st.sampled_from(list(Scaling)),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_continuous_samples_stay_in_range_on_every_valid_scale(low, width, scaling, seed):
    high = low + width
    if scaling is Scaling.LOGARITHMIC:
        low, high = abs(low) + 1e-3, abs(low) + 1e-3 + width
    if scaling is Scaling.REVERSE_LOGARITHMIC:
        low, high = sorted((abs(low) % 1, (abs(low) + width) % 1))
        if high - low < 1e-6:
            return
    parameter = ContinuousParameter("x", low, high, scaling)
    space = SearchSpace((parameter,))
    for sample in _samples(space, 5, seed=seed):
        assert parameter.min_value <= sample["x"] <= parameter.max_value
        stored = space.distributions()
        assert len(stored) == 1


@settings(max_examples=60, deadline=None)
@given(
    low=st.integers(min_value=-50, max_value=500),
    width=st.integers(min_value=1, max_value=5000),
    scaling=st.sampled_from([Scaling.AUTO, Scaling.LINEAR, Scaling.LOGARITHMIC]),
)
def test_integer_samples_are_integers_in_range(low, width, scaling):
    if scaling is Scaling.LOGARITHMIC:
        low = max(low, 1)
    parameter = IntegerParameter("n", low, low + width, scaling)
    for sample in _samples(SearchSpace((parameter,)), 5):
        assert isinstance(sample["n"], int) and low <= sample["n"] <= low + width


def test_real_values_undo_the_stored_form():
    space = SearchSpace(
        (
            ContinuousParameter("g", 0.9, 0.999, Scaling.REVERSE_LOGARITHMIC),
            CategoricalParameter("h", [[1, 2], "x"]),
        )
    )
    study = optuna.create_study()
    trial = study.ask()
    real = space.suggest(trial)
    study.tell(trial, 1.0)
    assert space.real_values(study.trials[0].params) == real
    assert set(study.trials[0].params) == {"1-g", "h"}


def test_parameter_ranges_round_trip_through_sagemakers_format():
    space = SearchSpace(
        (
            ContinuousParameter("rl.training.config.kl_coeff", 0.5, 1.0),
            IntegerParameter("rl.training.config.num_epochs", 3, 50, Scaling.LINEAR),
            CategoricalParameter("rl.training.config.batch_mode", ["truncate_episodes", "complete_episodes"]),
        ),
        {"rl.training.stop.time_total_s": 120},
    )
    ranges = space.to_parameter_ranges()
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "rl.training.config.kl_coeff", "MinValue": "0.5", "MaxValue": "1.0", "ScalingType": "Auto"}
    ]
    assert ranges["IntegerParameterRanges"][0]["MinValue"] == "3"
    assert ranges["CategoricalParameterRanges"][0]["Values"] == ["truncate_episodes", "complete_episodes"]
    assert space.static_hyperparameters() == {"rl.training.stop.time_total_s": "120"}
    again = from_parameter_ranges(ranges, space.static_hyperparameters())
    assert again == space


def test_command_line_flags_are_read():
    name, data = parse_parameter_flag("rl.training.config.lr=Continuous:1e-5:1e-3:Logarithmic")
    assert name == "rl.training.config.lr"
    assert parse_space({name: data}).parameters[0].scale is Scaling.LOGARITHMIC
    assert parse_parameter_flag("a=Categorical:1,x")[1]["values"] == [1, "x"]
    assert parse_static_flag("rl.training.stop.time_total_s=90") == ("rl.training.stop.time_total_s", 90)
    assert parse_static_flag("rl.env.simulator=mujoco") == ("rl.env.simulator", "mujoco")
    with pytest.raises(TuningError, match="NAME=Continuous:MIN:MAX"):
        parse_parameter_flag("lr")


def test_grid_needs_categorical_parameters():
    with pytest.raises(TuningError, match="Categorical parameters only"):
        SearchSpace((IntegerParameter("n", 1, 3),)).grid()
    grid = SearchSpace((CategoricalParameter("a", [1, 2]), CategoricalParameter("b", ["x", "y", "z"])))
    assert grid.grid_size() == 6


def test_scaling_statistics_are_not_degenerate():
    # guard for the two distribution tests above: the sampler really varies
    space = SearchSpace((ContinuousParameter("x", 0, 1, Scaling.LINEAR),))
    assert statistics.pstdev(sample["x"] for sample in _samples(space, 50)) > 0.2


def test_a_parameter_is_written_as_the_flag_that_reads_it_back():
    space = SearchSpace((
        ContinuousParameter("rl.training.config.lr", 5e-4, 5e-3, Scaling.LOGARITHMIC),
        ContinuousParameter("rl.training.config.gamma", 0.98765432, 0.999, Scaling.REVERSE_LOGARITHMIC),
        IntegerParameter("rl.training.config.num_epochs", 3, 30),
        CategoricalParameter("rl.training.config.batch_mode", ("truncate_episodes", "complete_episodes")),
        CategoricalParameter("x", (1, 2.5, "auto")),
    ))
    flags = [parameter_flag(parameter) for parameter in space.parameters]
    assert flags[0] == "rl.training.config.lr=Continuous:0.0005:0.005:Logarithmic"
    assert parse_space(dict(parse_parameter_flag(flag) for flag in flags)) == space
