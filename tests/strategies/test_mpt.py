"""MPTStrategy: objectives, constraints, and every robustness rule of issue 4."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from strategies import ConstraintError, Constraints, InputError, MPTStrategy, NoFreedomWarning
from strategies.estimators import covariance, expected_returns
from strategies.portfolio_qp import greedy_max_return_nb


@pytest.fixture
def returns():
    rng = np.random.default_rng(7)
    mix = np.eye(6) + 0.3 * rng.normal(size=(6, 6))
    return rng.normal(0.003, 0.02, size=(90, 6)) @ mix


def sharpe(w, mu, cov, rf):
    return (w @ mu - rf) / np.sqrt(w @ cov @ w)


def test_max_sharpe_is_the_best_sharpe_on_a_grid(returns):
    rng = np.random.default_rng(0)
    mu, cov = expected_returns(returns), covariance(returns)
    w = MPTStrategy().allocate(returns)
    candidates = rng.dirichlet(np.ones(6), size=20_000)
    best = max(sharpe(c, mu, cov, 0.02) for c in candidates)
    assert sharpe(w, mu, cov, 0.02) >= best


def test_min_volatility_has_zero_gradient_on_the_free_assets(returns):
    cov = covariance(returns)
    w = MPTStrategy(objective="min_volatility").allocate(returns)
    grad = cov @ w
    free = w > 1e-9
    np.testing.assert_allclose(grad[free], grad[free].mean(), rtol=1e-9)
    assert np.all(grad[~free] >= grad[free].mean() - 1e-12)


def test_efficient_return_meets_the_target(returns):
    mu = expected_returns(returns)
    w_min = MPTStrategy(objective="min_volatility").allocate(returns)
    target = float(w_min @ mu + 0.5 * (mu.max() - w_min @ mu))
    w = MPTStrategy(objective="efficient_return", target_return=target).allocate(returns)
    assert w @ mu == pytest.approx(target, rel=1e-9)


def test_efficient_risk_meets_the_target_volatility(returns):
    cov = covariance(returns)
    w_min = MPTStrategy(objective="min_volatility").allocate(returns)
    target = 1.2 * float(np.sqrt(w_min @ cov @ w_min))
    w = MPTStrategy(objective="efficient_risk", target_volatility=target).allocate(returns)
    vol = float(np.sqrt(w @ cov @ w))
    assert vol <= target * (1 + 1e-12) and vol == pytest.approx(target, rel=1e-9)


def test_efficient_risk_above_the_max_return_volatility_is_the_max_return_portfolio(returns):
    mu = expected_returns(returns)
    w = MPTStrategy(objective="efficient_risk", target_volatility=50.0).allocate(
        returns, {"max_weight": 0.5}
    )
    np.testing.assert_allclose(w, greedy_max_return_nb(mu, np.zeros(6), np.full(6, 0.5)))


def test_dict_constraints_and_per_asset_bounds(returns):
    w = MPTStrategy().allocate(returns, {"min_weight": 0.05, "max_weight": 0.40})
    assert np.all(w >= 0.05 - 1e-12) and np.all(w <= 0.40 + 1e-12)
    hi = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    w = MPTStrategy().allocate(returns, Constraints(max_weight=hi))
    assert np.all(w <= np.array(hi) + 1e-12)


def test_group_and_linear_constraints(returns):
    cons = Constraints(
        groups={"first_three": ([0, 1, 2], 0.0, 0.5)}, A=[[1, -1, 0, 0, 0, 0]], b=[0.0]
    )
    w = MPTStrategy().allocate(returns, cons)
    assert w[:3].sum() <= 0.5 + 1e-12
    assert w[0] <= w[1] + 1e-12


def test_infeasible_group_constraints_raise(returns):
    cons = Constraints(max_weight=0.3, groups={"all": (list(range(6)), 0.0, 0.5)})
    with pytest.raises(ConstraintError, match="admit no portfolio within the weight bounds"):
        MPTStrategy().allocate(returns, cons)


@pytest.mark.parametrize(
    ("min_w", "max_w", "match"),
    [
        (0.2, 1.0, r"`min_weight` = 0.2 with 6 assets needs 1.2 > 100%.*<= 1/6"),
        (
            0.0,
            0.1,
            r"`max_weight` = 0.1 with 6 assets leaves 40% unallocatable; `max_weight` must be >= 1/6",
        ),
    ],
)
def test_infeasible_bounds_name_the_numbers(returns, min_w, max_w, match):
    with pytest.raises(ConstraintError, match=match):
        MPTStrategy().allocate(returns, {"min_weight": min_w, "max_weight": max_w})


def test_bounds_without_freedom_warn_and_note(returns):
    with pytest.warns(NoFreedomWarning, match="the optimiser has no freedom"):
        allocation = MPTStrategy().allocate_detailed(returns[:, :5], {"min_weight": 0.2})
    np.testing.assert_allclose(allocation.weights, 0.2)
    assert "single feasible portfolio" in allocation.notes[0]


def test_no_asset_above_the_risk_free_rate_falls_back_to_min_volatility(returns):
    allocation = MPTStrategy(risk_free_rate=100.0).allocate_detailed(returns)
    assert allocation.method == "min_volatility"
    assert "exceeds the risk-free rate 100" in allocation.notes[0]
    assert "falling back to min_volatility" in allocation.notes[0]
    np.testing.assert_allclose(
        allocation.weights, MPTStrategy(objective="min_volatility").allocate(returns)
    )


def test_fallback_chain_hrp_then_previous_then_equal_weight(returns):
    allocation = MPTStrategy(risk_free_rate=100.0, fallback=("hrp",)).allocate_detailed(returns)
    assert allocation.method == "hrp"
    previous = np.array([0.5, 0.5, 0, 0, 0, 0])
    allocation = MPTStrategy(risk_free_rate=100.0, fallback=["previous"]).allocate_detailed(
        returns, None, previous
    )
    assert allocation.method == "previous"
    np.testing.assert_allclose(allocation.weights, previous)
    allocation = MPTStrategy(risk_free_rate=100.0, fallback=("previous",)).allocate_detailed(
        returns
    )
    assert allocation.method == "equal_weight"
    assert "previous failed (no previous weights)" in allocation.notes[-1]
    np.testing.assert_allclose(allocation.weights, 1 / 6)


def test_previous_weights_of_another_universe_are_skipped(returns):
    strategy = MPTStrategy(risk_free_rate=100.0, fallback=("previous", "equal_weight"))
    allocation = strategy.allocate_detailed(returns, None, previous=np.full(4, 0.25))
    assert allocation.method == "equal_weight"
    assert "previous weights unusable (shape (4,), need (6,)" in allocation.notes[1]


def test_unattainable_target_return_falls_back(returns):
    allocation = MPTStrategy(objective="efficient_return", target_return=1e6).allocate_detailed(
        returns
    )
    assert allocation.method == "min_volatility"
    assert "target return 1e+06 is above the attainable maximum" in allocation.notes[0]


def test_target_volatility_below_the_minimum_falls_back(returns):
    allocation = MPTStrategy(objective="efficient_risk", target_volatility=1e-6).allocate_detailed(
        returns
    )
    assert allocation.method == "min_volatility"
    assert "is below the minimum volatility" in allocation.notes[0]


def test_fewer_observations_than_assets_is_shrunk_and_noted(returns):
    allocation = MPTStrategy(risk_free_rate=-1.0).allocate_detailed(returns[:4])
    assert allocation.method == "max_sharpe"
    assert "fewer observations (4) than assets (6)" in allocation.notes[0]
    assert np.isfinite(allocation.weights).all() and allocation.weights.sum() == pytest.approx(
        1.0, abs=1e-12
    )


def test_zero_variance_and_duplicate_assets(returns):
    window = np.column_stack([returns, np.zeros(90), returns[:, 0]])
    allocation = MPTStrategy(objective="min_volatility").allocate_detailed(window)
    assert "zero-variance asset(s) at column(s) [6]" in allocation.notes[0]
    assert allocation.weights[6] > 1 / 8  # the (shrunk) riskless asset is overweight
    allocation = MPTStrategy().allocate_detailed(np.column_stack([returns, returns[:, 0]]))
    assert "ill-conditioned covariance" in allocation.notes[0]
    assert allocation.weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_all_zero_variance_gives_equal_weight():
    allocation = MPTStrategy().allocate_detailed(np.zeros((30, 3)))
    assert allocation.method == "equal_weight"
    assert allocation.notes == ("all assets have zero variance: equal weight",)


def test_nan_and_inf_are_rejected_with_the_asset_named(returns):
    frame = pd.DataFrame(returns, columns=[f"C{i}/USDT" for i in range(6)])
    frame.iloc[5, 3] = np.nan
    with pytest.raises(InputError, match=r"contains NaN for C3/USDT \(column 3, 1 cells\)"):
        MPTStrategy().allocate_detailed(frame)
    bad = returns.copy()
    bad[0, 1] = np.inf
    with pytest.raises(InputError, match=r"contains inf for asset 1"):
        MPTStrategy().allocate(bad)
    with pytest.raises(InputError, match=r"contains inf for ETH"):
        MPTStrategy().allocate_detailed(bad, symbols=["BTC", "ETH", "a", "b", "c", "d"])


def test_extras_hold_the_moments_for_the_frontier(returns):
    allocation = MPTStrategy(periods_per_year=252).allocate_detailed(returns)
    np.testing.assert_allclose(allocation.extras["expected_returns"], returns.mean(axis=0) * 252)
    np.testing.assert_allclose(allocation.extras["covariance"], np.cov(returns, rowvar=False) * 252)
    assert allocation.extras["risk_free_rate"] == 0.02


def test_single_asset_gets_everything():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(
            MPTStrategy().allocate(np.array([[0.01], [-0.02], [0.0]])), [1.0]
        )


def test_allocate_frame_returns_a_series(returns):
    frame = pd.DataFrame(returns, columns=list("abcdef"))
    weights = MPTStrategy().allocate_frame(frame)
    assert list(weights.index) == list("abcdef") and weights.name == "mpt"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"objective": "max_sharp"},
            r"`objective` must be one of .*; got 'max_sharp' \(did you mean 'max_sharpe'\?\)",
        ),
        (
            {"objective": "efficient_return"},
            r"`target_return` is required for objective 'efficient_return'",
        ),
        (
            {"objective": "efficient_risk"},
            r"`target_volatility` must be > 0 for objective 'efficient_risk'",
        ),
        (
            {"fallback": "hrp"},
            r"`fallback` must be a sequence of method names; got the string 'hrp' \(write \['hrp'\]\)",
        ),
        (
            {"fallback": ("min_volatility", "hpr")},
            r"`fallback` must be one of .*; got 'hpr' \(did you mean 'hrp'\?\)",
        ),
        (
            {"covariance": "shrunk"},
            r"`covariance` must be one of 'sample', 'ewma', 'ledoit_wolf', 'oas', 'denoised', 'detoned'; got 'shrunk'",
        ),
        ({"periods_per_year": 0}, r"must be > 0"),
    ],
)
def test_invalid_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        MPTStrategy(**params)
