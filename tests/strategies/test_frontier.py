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
