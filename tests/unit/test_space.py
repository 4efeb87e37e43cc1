"""Every range type and scaling: checked by distribution, not only by bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kubetune.api.spec import ScalingType
from kubetune.engine.space import Kind, Parameter, SearchSpace, resolve_scaling

N = 20_000


def draws(param: Parameter, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [param.from_unit(u) for u in rng.random(N)]


def test_linear_integer_every_value_equally_likely_and_ends_reached() -> None:
    values = draws(Parameter("n", Kind.INTEGER, 1, 6, ScalingType.LINEAR))
    counts = np.bincount(values, minlength=7)[1:]
    assert all(isinstance(v, int) for v in values[:100])
    assert counts.min() > 0
    assert stats.chisquare(counts).pvalue > 1e-3


def test_log_integer_reaches_both_ends_and_favours_small_values() -> None:
    values = np.array(draws(Parameter("n", Kind.INTEGER, 1, 1000, ScalingType.LOGARITHMIC)))
    assert values.min() == 1 and values.max() == 1000
    # log-uniform over [1, 1001): about a third of the mass below 10
    assert abs((values < 10).mean() - math.log(10) / math.log(1001)) < 0.02


def test_log_continuous_is_log_uniform() -> None:
    values = np.array(draws(Parameter("lr", Kind.CONTINUOUS, 1e-5, 1.0, ScalingType.LOGARITHMIC)))
    assert values.min() >= 1e-5 and values.max() <= 1.0
    u = (np.log(values) - math.log(1e-5)) / (math.log(1.0) - math.log(1e-5))
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_linear_continuous_is_uniform() -> None:
    values = np.array(draws(Parameter("d", Kind.CONTINUOUS, -2.0, 3.0, ScalingType.LINEAR)))
    assert stats.kstest((values + 2.0) / 5.0, "uniform").pvalue > 1e-3


def test_reverse_log_crowds_toward_one() -> None:
    low, high = 0.0, 0.999
    values = np.array(draws(Parameter("m", Kind.CONTINUOUS, low, high, ScalingType.REVERSE_LOGARITHMIC)))
    assert values.min() >= low and values.max() <= high
    # 1 - x is log-uniform on [1 - high, 1 - low]
    w = (np.log(1 - values) - math.log(1 - low)) / (math.log(1 - high) - math.log(1 - low))
    assert stats.kstest(w, "uniform").pvalue > 1e-3
    assert (values > 0.9).mean() > 0.6  # uniform would give 10%


def test_categorical_uniform_and_types_preserved() -> None:
    choices = ("a", 1, 2.5, True, False)
    values = draws(Parameter("c", Kind.CATEGORICAL, choices=choices))
    counts = [sum(1 for v in values if type(v) is type(c) and v == c) for c in choices]
    assert sum(counts) == N
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1e-4, 1.0, ScalingType.LOGARITHMIC),
        (1, 100, ScalingType.LOGARITHMIC),
        (1, 99, ScalingType.LINEAR),
        (0.0, 1000.0, ScalingType.LINEAR),
        (-1.0, 1.0, ScalingType.LINEAR),
    ],
)
def test_auto_scaling_rule(low: float, high: float, expected: ScalingType) -> None:
    assert resolve_scaling(ScalingType.AUTO, low, high) is expected


@pytest.mark.parametrize(
    "param",
    [
        Parameter("i", Kind.INTEGER, 3, 17, ScalingType.LINEAR),
        Parameter("j", Kind.INTEGER, 1, 4096, ScalingType.LOGARITHMIC),
        Parameter("x", Kind.CONTINUOUS, 1e-3, 10.0, ScalingType.LOGARITHMIC),
        Parameter("m", Kind.CONTINUOUS, 0.5, 0.9999, ScalingType.REVERSE_LOGARITHMIC),
        Parameter("c", Kind.CATEGORICAL, choices=("x", 2, 3.5, False)),
    ],
)
def test_encode_decode_round_trip(param: Parameter) -> None:
    for value in draws(param)[:500]:
        u = param.to_unit(value)
        assert 0.0 <= u <= 1.0
        back = param.from_unit(u)
        assert type(back) is type(value)
        assert back == pytest.approx(value, rel=1e-9) if isinstance(value, float) else back == value


def test_space_from_spec_orders_and_samples(spec: dict) -> None:
    from kubetune.api.spec import parse_spec

    space = SearchSpace.from_spec(parse_spec(spec))
    assert space.names == ["layers", "lr", "dropout", "optimizer"]
    samples = space.sample(np.random.default_rng(1), 50)
    for config in samples:
        assert space.decode(space.encode(config)) == config
