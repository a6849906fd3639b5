"""The min_cvar and min_cdar allocators: limits, the return floor, errors, config and real data."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.config import StrategyConfig
from strategies import Constraints, MinCDaR, MinCVaR, build_strategy
from strategies.errors import ConstraintError
from strategies.limits import single_portfolio
from strategies.tail_lp import cdar, cvar, highs_min_tail_risk
from strategies.tail_risk import check_beta
from tests.strategies.tail_oracle import ORACLE

ALLOCATORS = [MinCVaR, MinCDaR]
MEASURE = {MinCVaR: cvar, MinCDaR: cdar}


@pytest.fixture(scope="module")
def returns():
    rng = np.random.default_rng(11)
    common = rng.standard_t(4, size=(150, 1)) * 0.02
    return common + rng.standard_t(4, size=(150, 7)) * 0.015 + rng.normal(0.0005, 0.001, 7)


@pytest.mark.parametrize("cls", ALLOCATORS)
def test_bounds_and_groups_hold(cls, returns):
    groups = {"a": ([0, 1, 2], 0.0, 0.3), "b": ([5, 6], 0.25, 1.0)}
    lo = [0.02, 0.0, 0.05, 0.0, 0.0, 0.0, 0.01]
    got = cls().allocate_detailed(returns, Constraints(lo, 0.35, groups))
    w = got.weights
    assert got.method == cls.name and got.notes == ()
    assert abs(w.sum() - 1) <= 1e-12 and np.all(w >= lo) and w.max() <= 0.35
    assert w[[0, 1, 2]].sum() <= 0.3 + 1e-12 and w[[5, 6]].sum() >= 0.25 - 1e-12
    # optimal: no worse than HiGHS on the same limits
    G, h = Constraints(lo, 0.35, groups).linear(7)
    peer = highs_min_tail_risk(returns, cls.measure, 0.95, np.array(lo), np.full(7, 0.35), G, h)
    measure = MEASURE[cls]
    assert measure(returns @ w) <= measure(returns @ peer) + 1e-12
    oracle = ORACLE[cls.measure](returns @ w, 0.95)  # ... and the Rockafellar-Uryasev definition's
    assert got.extras[cls.measure] == pytest.approx(oracle, rel=1e-10, abs=1e-14)
    assert got.extras["beta"] == 0.95 and got.extras["solver"] == "simplex"


@pytest.mark.parametrize("cls", ALLOCATORS)
def test_target_return_holds_and_costs_risk(cls, returns):
    mean = returns.mean(axis=0)
    free = cls(periods_per_year=252).allocate(returns, {"max_weight": 0.5})
    target = (mean @ free + 0.5 * (np.sort(mean)[-2:].mean() - mean @ free)) * 252
    got = cls(target_return=target, periods_per_year=252).allocate_detailed(
        returns, {"max_weight": 0.5}
    )
    assert mean @ got.weights * 252 == pytest.approx(target, abs=1e-10)  # binding
    assert got.extras["expected_return"] == pytest.approx(target, abs=1e-10)
    assert got.extras[cls.measure] >= MEASURE[cls](returns @ free) - 1e-12
    loose = cls(target_return=-10.0).allocate(returns, {"max_weight": 0.5})
    np.testing.assert_allclose(
        loose, free, atol=1e-12
    )  # a floor below the optimum's changes nothing


@pytest.mark.parametrize("cls", ALLOCATORS)
def test_target_return_is_on_the_real_book_when_the_budget_is_below_one(cls, returns):
    """Caps that hold 80% of the book: the allocator's weights are scaled by 0.8, so a floor of
    ``target`` on the book asks ``target / 0.8`` of them."""
    mean = returns.mean(axis=0)
    scaled = Constraints(0.0, 0.2 / 0.8, budget=0.8)  # what universe_limits gives for caps of 0.2
    best = np.sort(mean)[-4:].sum() * 0.25  # the highest return of the scaled weights
    target = 0.7 * best * 365 * 0.8
    w = cls(target_return=target).allocate(returns, scaled)
    assert 0.8 * (mean @ w) * 365 >= target - 1e-10


@pytest.mark.parametrize("cls", ALLOCATORS)
def test_an_unreachable_target_names_the_highest_return(cls, returns):
    best = np.sort(returns.mean(axis=0))[-2:].mean() * 365  # max_weight 0.5: the two best
    with pytest.raises(
        ConstraintError,
        match=rf"`target_return` = 5 is above the highest annualised mean return the limits allow on this window, {best:.4g}; lower `target_return`",
    ):
        cls(target_return=5.0).allocate(returns, {"max_weight": 0.5})


@pytest.mark.parametrize("cls", ALLOCATORS)
def test_limits_without_a_portfolio_raise_even_with_a_target(cls, returns):
    groups = {"all": (list(range(7)), 0.0, 0.5)}
    for target in (None, 0.1):
        with pytest.raises(ConstraintError, match="limits admit no portfolio"):
            cls(target_return=target).allocate(returns, {"max_weight": 0.5, "groups": groups})


@pytest.mark.parametrize("cls", ALLOCATORS)
def test_a_single_feasible_portfolio_is_returned_with_a_note(cls, returns):
    hi = [0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.2]
    with pytest.warns(UserWarning, match="single feasible portfolio"):
        got = cls().allocate_detailed(returns, {"max_weight": hi})
    np.testing.assert_allclose(got.weights, hi)
    assert got.notes == ("bounds leave a single feasible portfolio: no optimisation",)
    assert got.extras["solver"] == "none"
    with (
        pytest.raises(ConstraintError, match="`target_return` = 9 is above"),
        pytest.warns(UserWarning),
    ):
        cls(target_return=9.0).allocate(returns, {"max_weight": hi})
    one = cls().allocate_detailed(returns[:, :1])
    assert one.weights.tolist() == [1.0]


@pytest.mark.parametrize("cls", ALLOCATORS)
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"beta": 1.0}, r"`beta` must be a confidence level in \(0, 1\), e.g. 0.95; got 1.0"),
        ({"beta": 0}, r"`beta` must be a confidence level in \(0, 1\), e.g. 0.95; got 0"),
        ({"beta": True}, r"`beta` must be a confidence level .*; got True"),
        ({"beta": "0.9"}, r"`beta` must be a confidence level .*; got '0.9'"),
        (
            {"target_return": float("nan")},
            r"`target_return` must be a finite annualised return such as 0.2, or None; got nan",
        ),
        ({"target_return": "high"}, r"`target_return` must be a finite .*; got 'high'"),
        ({"lookback_days": 0}, r"`lookback_days` must be > 0; got lookback_days=0"),
        ({"periods_per_year": -1}, r"`periods_per_year` must be > 0; got periods_per_year=-1"),
    ],
)
def test_bad_parameters_are_named(cls, params, message):
    with pytest.raises(ValueError, match=message):
        cls(**params)


def test_check_beta_accepts_levels_inside_the_unit_interval():
    for beta in (0.5, 0.95, 0.999, 1e-6):
        check_beta(beta)


def test_single_portfolio():
    assert single_portfolio(np.zeros(3), np.ones(3)) is None
    np.testing.assert_allclose(single_portfolio(np.full(2, 0.5), np.ones(2)), [0.5, 0.5])


@pytest.mark.parametrize("name", ["min_cvar", "min_cdar"])
def test_registered_and_configurable(name, returns):
    strategy = build_strategy(name, lookback_days=60, beta=0.9, target_return=0.1)
    assert strategy.name == name and strategy.beta == 0.9 and strategy.lookback_days == 60
    params = StrategyConfig(name=name, beta=0.9, target_return=0.1).params()
    assert build_strategy(name, **params).beta == 0.9
    with pytest.raises(ValueError, match="`linkage` is not a parameter of strategy"):
        build_strategy(name, linkage="single")


@pytest.mark.parametrize("beta", [0.0, 1.0, 1.5])
def test_config_rejects_a_beta_outside_the_unit_interval(beta):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="beta"):
        StrategyConfig(name="min_cvar", beta=beta)


@pytest.mark.shared
@pytest.mark.parametrize("cls", ALLOCATORS)
def test_real_daily_window_matches_highs_and_beats_equal_weight(cls, daily_csv):
    from datasets import load_csv

    symbols = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "LTC/USDT",
               "LINK/USDT", "TRX/USDT", "XLM/USDT", "ETC/USDT"]  # fmt: skip
    market = load_csv(daily_csv, symbols=symbols, start="2021-06-01", end="2021-11-30")
    r = market.close.pct_change().iloc[1:].to_numpy()
    got = cls().allocate_detailed(r, {"max_weight": 0.25})
    measure = MEASURE[cls]
    peer = highs_min_tail_risk(
        r, cls.measure, 0.95, np.zeros(10), np.full(10, 0.25), np.zeros((0, 10)), np.zeros(0)
    )
    assert got.extras[cls.measure] <= measure(r @ peer) + 1e-12
    assert got.extras[cls.measure] == pytest.approx(measure(r @ peer), abs=1e-9)
    assert got.extras[cls.measure] < measure(r.mean(axis=1))


@pytest.mark.parametrize("cls", [MinCVaR, MinCDaR])
def test_a_single_portfolio_that_breaks_a_group_is_refused(cls):
    """Bounds that leave one portfolio do not excuse it from the groups: the run stops."""
    r = np.random.default_rng(0).normal(0, 0.02, (90, 3))
    cons = Constraints(max_weight=[0.5, 0.3, 0.2], groups={"g": ([0, 1], 0.0, 0.6)})
    with pytest.raises(
        ConstraintError, match=r"single portfolio, \[0.5, 0.3, 0.2\].*row 0 totals 0.8 > 0.6"
    ):
        cls().allocate_detailed(r, cons)
