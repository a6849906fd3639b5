"""Efficient frontier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies import MPTStrategy, efficient_frontier, frontier_from_moments
from strategies.estimators import covariance, expected_returns


@pytest.fixture
def returns():
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        rng.normal(0.002, [0.01, 0.02, 0.03, 0.05], size=(120, 4)), columns=list("ABCD")
    )


def test_columns_and_shape(returns):
    frame = efficient_frontier(returns, n_points=8)
    assert list(frame.columns) == ["return", "volatility", "sharpe", "A", "B", "C", "D"]
    assert frame.attrs["assets"] == list("ABCD") and len(frame) == 8
    np.testing.assert_allclose(frame[list("ABCD")].sum(axis=1), 1.0, atol=1e-12)


def test_frontier_is_increasing_and_spans_min_vol_to_max_return(returns):
    frame = efficient_frontier(returns, n_points=10, constraints={"max_weight": 0.6})
    assert frame["return"].is_monotonic_increasing and frame["volatility"].is_monotonic_increasing
    mu, cov = expected_returns(returns.to_numpy()), covariance(returns.to_numpy())
    w_min = MPTStrategy(objective="min_volatility").allocate(
        returns.to_numpy(), {"max_weight": 0.6}
    )
    assert frame["volatility"].iloc[0] == pytest.approx(np.sqrt(w_min @ cov @ w_min), rel=1e-12)
    best = np.sort(mu)[::-1]
    assert frame["return"].iloc[-1] == pytest.approx(0.6 * best[0] + 0.4 * best[1], rel=1e-12)


def test_max_sharpe_is_on_or_above_every_point(returns):
    r = returns.to_numpy()
    frame = efficient_frontier(r, n_points=25, risk_free_rate=0.0)
    allocation = MPTStrategy(risk_free_rate=0.0).allocate_detailed(r)
    mu, cov = allocation.extras["expected_returns"], allocation.extras["covariance"]
    w = allocation.weights
    assert (w @ mu) / np.sqrt(w @ cov @ w) >= frame["sharpe"].max() - 1e-12
    same = frontier_from_moments(mu, cov, n_points=25, risk_free_rate=0.0)
    np.testing.assert_allclose(same["volatility"], frame["volatility"], rtol=1e-12)


def test_invalid_arguments(returns):
    with pytest.raises(ValueError, match=r"`n_points` must be an integer >= 2; got 1"):
        efficient_frontier(returns, n_points=1)
    with pytest.raises(
        ValueError, match=r"`cov` must have shape \(2, 2\) to match `mu`; got \(3, 3\)"
    ):
        frontier_from_moments(np.zeros(2), np.eye(3))


def _net(x, mu, cov, prev, cost, gamma):
    return gamma / 2 * x @ cov @ x + cost * np.abs(x - prev).sum()


def test_the_frontier_net_of_costs(returns):
    """From a book, with a cost: each point minimises risk + cost at its return (the gross efficient
    portfolio of that return costs more, net), the max-utility choice lies on it, without a cost it
    is the gross frontier, and the turnover cap holds at every point."""
    r = returns.to_numpy()
    gamma, cost, prev = 3.0, 0.01, np.array([0.7, 0.1, 0.1, 0.1])
    cons = {"max_weight": 0.7}
    chosen = MPTStrategy(objective="max_utility", risk_aversion=gamma, transaction_cost=cost)
    allocation = chosen.allocate_detailed(r, cons, previous=prev)
    mu, cov = allocation.extras["expected_returns"], allocation.extras["covariance"]
    np.testing.assert_array_equal(allocation.extras["previous"], prev)
    kw = {"constraints": cons, "previous": prev, "risk_aversion": gamma}
    net = frontier_from_moments(mu, cov, 12, transaction_cost=cost, **kw)
    gross = frontier_from_moments(mu, cov, 12, constraints=cons)
    assert len(net) == 12 and net["return"].is_monotonic_increasing
    w_net = net[list(net.attrs["assets"])].to_numpy()
    for k in range(1, 11):
        plain = MPTStrategy(objective="efficient_return", target_return=net["return"].iloc[k])
        same_return = plain.allocate(r, cons)
        assert _net(w_net[k], mu, cov, prev, cost, gamma) <= (
            _net(same_return, mu, cov, prev, cost, gamma) + 1e-9
        )
    w = allocation.weights
    on = MPTStrategy(
        objective="efficient_return",
        target_return=float(w @ mu),
        risk_aversion=gamma,
        transaction_cost=cost,
    ).allocate_detailed(r, cons, previous=prev)
    assert _net(on.weights, mu, cov, prev, cost, gamma) == pytest.approx(
        _net(w, mu, cov, prev, cost, gamma), abs=1e-9
    )  # the choice is the net-efficient portfolio of its return
    free = frontier_from_moments(mu, cov, 12, transaction_cost=0.0, **kw)
    np.testing.assert_allclose(free["volatility"], gross["volatility"], rtol=1e-9)
    capped = frontier_from_moments(mu, cov, 12, transaction_cost=cost, max_turnover=0.3, **kw)
    moved = np.abs(capped[list(capped.attrs["assets"])].to_numpy() - prev).sum(axis=1)
    assert 0 < len(capped) < 12 and moved.max() <= 0.3 + 1e-9  # the cap ends the frontier early
