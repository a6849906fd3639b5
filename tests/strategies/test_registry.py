"""Config names -> strategies."""

from __future__ import annotations

import pytest

from strategies import STRATEGIES, EqualWeight, HRPStrategy, MPTStrategy, RiskParity, build_strategy


def test_every_name_builds_with_defaults():
    assert set(STRATEGIES) == {
        "mpt",
        "max_sharpe",
        "min_volatility",
        "max_utility",
        "max_diversification",
        "hrp",
        "herc",
        "nco",
        "equal_weight",
        "inverse_volatility",
        "risk_parity",
        "black_litterman",
        "min_cvar",
        "min_cdar",
    }
    for name in STRATEGIES:
        strategy = build_strategy(name)
        assert strategy.lookback_days == 30 and isinstance(strategy.name, str)


def test_parameters_are_stored_as_given():
    s = build_strategy("hrp", lookback_days=90, linkage="average")
    assert isinstance(s, HRPStrategy) and (s.lookback_days, s.linkage) == (90, "average")
    s = build_strategy("min_volatility", covariance="ledoit_wolf")
    assert (
        isinstance(s, MPTStrategy)
        and s.objective == "min_volatility"
        and s.covariance == "ledoit_wolf"
    )
    assert isinstance(build_strategy("risk_parity"), RiskParity)
    assert isinstance(build_strategy("equal_weight"), EqualWeight)


def test_unknown_strategy_suggests_the_closest_name():
    with pytest.raises(
        ValueError, match=r"unknown strategy 'hrpp' \(did you mean 'hrp'\?\); choose one of 'mpt', "
    ):
        build_strategy("hrpp")
    with pytest.raises(ValueError, match=r"unknown strategy 'zzz'; choose one of"):
        build_strategy("zzz")


def test_wrong_parameter_lists_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"`linkage` is not a parameter of strategy 'mpt'; its parameters are "
        r"risk_free_rate, lookback_days, objective, ",
    ):
        build_strategy("mpt", linkage="single")
    with pytest.raises(
        ValueError,
        match=r"`lookback` is not a parameter of strategy 'hrp' \(did you mean `lookback_days`\?\)",
    ):
        build_strategy("hrp", lookback=30)


def test_fixed_and_constraint_keys_are_explained():
    with pytest.raises(
        ValueError,
        match=r"`objective` is fixed to 'max_sharpe' by strategy 'max_sharpe'; use strategy 'mpt'",
    ):
        build_strategy("max_sharpe", objective="min_volatility")
    with pytest.raises(
        ValueError, match=r"`max_weight` is a constraint, not a parameter of strategy 'hrp'"
    ):
        build_strategy("hrp", max_weight=0.4)


def test_value_errors_come_from_the_strategy():
    with pytest.raises(ValueError, match=r"`objective` must be one of"):
        build_strategy("mpt", objective="best")
