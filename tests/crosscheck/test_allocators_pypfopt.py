"""Cross-checks against PyPortfolioOpt on windows of the real Binance daily data.

PyPortfolioOpt is configured like our defaults: ``returns_data=True``, ``frequency=365``, arithmetic
mean (``compounding=False``), sample covariance (ddof=1), the same bounds and risk-free rate. Its cvxpy
back end runs Clarabel with tolerances 1e-10: with the default tolerances its solutions violate the
weight bounds by up to 1e-5 and are not a sound reference at the 1e-6 level.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from strategies import HRPStrategy, MPTStrategy, efficient_frontier
from strategies.estimators import covariance, expected_returns, ledoit_wolf

pypfopt = pytest.importorskip("pypfopt")
from pypfopt import EfficientFrontier, HRPOpt, risk_models  # noqa: E402
from pypfopt import expected_returns as pp_returns  # noqa: E402

TIGHT = {
    "solver": "CLARABEL",
    "solver_options": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
}
ENDS = [180, 300, 420, 540, 660, 780, 900, 1020, 1138]  # bar positions in the daily panel
BOUNDS = [(0.0, 1.0), (0.0, 0.2), (0.02, 0.3)]


@pytest.fixture(scope="module")
def daily_returns(daily_market):
    return daily_market.close.pct_change()


def window(daily_returns, end, n_obs=90, n_assets=20):
    """``n_obs`` daily returns ending at bar ``end`` for the first ``n_assets`` assets listed throughout."""
    frame = daily_returns.iloc[end - n_obs + 1 : end + 1].dropna(axis=1)
    assert frame.shape[1] >= n_assets, (
        f"only {frame.shape[1]} assets listed in the window ending {end}"
    )
    return frame.iloc[:, :n_assets]


def peer_frontier(frame, lo, hi):
    mu = pp_returns.mean_historical_return(
        frame, returns_data=True, compounding=False, frequency=365
    )
    cov = risk_models.sample_cov(frame, returns_data=True, frequency=365)
    return mu, cov, EfficientFrontier(mu, cov, weight_bounds=(lo, hi), **TIGHT)


def sharpe(w, mu, cov, rf):
    return (w @ mu - rf) / np.sqrt(w @ cov @ w)


def test_moments_equal_pypfopt(daily_returns):
    frame = window(daily_returns, 900)
    r = frame.to_numpy()
    mu, cov, _ = peer_frontier(frame, 0, 1)
    np.testing.assert_allclose(expected_returns(r, "mean", 365), mu, rtol=1e-12)
    np.testing.assert_allclose(covariance(r, "sample", 365), cov, rtol=1e-12)
    ewm = pp_returns.ema_historical_return(
        frame, returns_data=True, compounding=False, frequency=365, span=30
    )
    np.testing.assert_allclose(expected_returns(r, "ewma", 365, span=30), ewm, rtol=1e-12)
    geo = pp_returns.mean_historical_return(frame, returns_data=True, frequency=365)
    np.testing.assert_allclose(expected_returns(r, "geometric", 365), geo, rtol=1e-12)
    exp_cov = risk_models.exp_cov(frame, returns_data=True, frequency=365, span=30)
    np.testing.assert_allclose(covariance(r, "ewma", 365, span=30), exp_cov, rtol=1e-10, atol=1e-14)
    lw = risk_models.CovarianceShrinkage(frame, returns_data=True, frequency=365).ledoit_wolf()
    np.testing.assert_allclose(ledoit_wolf(r, 365)[0], lw, rtol=1e-12)


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize(("lo", "hi"), BOUNDS)
def test_max_sharpe_matches_pypfopt(daily_returns, end, lo, hi):
    frame = window(daily_returns, end)
    mu, cov, ef = peer_frontier(frame, lo, hi)
    rf = 0.02
    allocation = MPTStrategy(risk_free_rate=rf).allocate_detailed(
        frame, {"min_weight": lo, "max_weight": hi}
    )
    np.testing.assert_allclose(allocation.extras["covariance"], cov, rtol=1e-12)
    try:
        ef.max_sharpe(risk_free_rate=rf)
    except (ValueError, pypfopt.exceptions.OptimizationError):
        # the peer finds no portfolio above the risk-free rate: neither do we, and we say so
        assert allocation.method == "min_volatility"
        assert "risk-free rate 0.02" in allocation.notes[0]
        return
    assert allocation.method == "max_sharpe" and allocation.notes == ()
    ours = sharpe(allocation.weights, mu.to_numpy(), cov.to_numpy(), rf)
    peer = sharpe(ef.weights, mu.to_numpy(), cov.to_numpy(), rf)
    assert ours >= peer - 1e-6 * abs(peer), (ours, peer)
    assert ours == pytest.approx(peer, rel=1e-6)


@pytest.mark.parametrize("end", ENDS[::2])
@pytest.mark.parametrize(("lo", "hi"), BOUNDS)
def test_min_volatility_matches_pypfopt(daily_returns, end, lo, hi):
    frame = window(daily_returns, end)
    _, cov, ef = peer_frontier(frame, lo, hi)
    ef.min_volatility()
    w = MPTStrategy(objective="min_volatility").allocate(
        frame, {"min_weight": lo, "max_weight": hi}
    )
    ours, peer = np.sqrt(w @ cov @ w), np.sqrt(ef.weights @ cov @ ef.weights)
    assert ours <= peer * (1 + 1e-6) and ours == pytest.approx(peer, rel=1e-6)


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
@pytest.mark.parametrize("end", [420, 900])
def test_efficient_return_and_risk_match_pypfopt(daily_returns, end):
    frame = window(daily_returns, end)
    mu, cov, ef = peer_frontier(frame, 0.0, 0.3)
    cons = {"max_weight": 0.3}
    w_min = MPTStrategy(objective="min_volatility").allocate(frame, cons)
    target_return = float(w_min @ mu + 0.4 * (mu.nlargest(4).mean() - w_min @ mu))
    w = MPTStrategy(objective="efficient_return", target_return=target_return).allocate(frame, cons)
    ef.efficient_return(target_return)
    assert np.sqrt(w @ cov @ w) == pytest.approx(np.sqrt(ef.weights @ cov @ ef.weights), rel=1e-6)
    target_vol = float(1.3 * np.sqrt(w_min @ cov @ w_min))
    w = MPTStrategy(objective="efficient_risk", target_volatility=target_vol).allocate(frame, cons)
    _, _, ef = peer_frontier(frame, 0.0, 0.3)
    ef.efficient_risk(target_vol)
    ours, peer = float(w @ mu), float(ef.weights @ mu)
    assert ours >= peer - 1e-6 * abs(peer) and ours == pytest.approx(peer, rel=1e-6)
    assert np.sqrt(w @ cov @ w) <= target_vol * (1 + 1e-12)


def test_frontier_points_lie_on_pypfopt_frontier(daily_returns):
    frame = window(daily_returns, 780)
    frontier = efficient_frontier(
        frame, n_points=12, constraints={"max_weight": 0.25}, risk_free_rate=0.02
    )
    for ret, vol in frontier[["return", "volatility"]].to_numpy()[:-1]:
        _, cov, ef = peer_frontier(frame, 0.0, 0.25)
        ef.efficient_return(float(ret))
        peer_vol = np.sqrt(ef.weights @ cov @ ef.weights)
        assert vol <= peer_vol * (1 + 1e-6) and vol == pytest.approx(peer_vol, rel=1e-6)


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("linkage", ["single", "average", "complete", "ward"])
def test_hrp_equals_pypfopt(daily_returns, end, linkage):
    frame = window(daily_returns, end, n_obs=60, n_assets=25)
    allocation = HRPStrategy(linkage=linkage).allocate_detailed(frame)
    peer = HRPOpt(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weights = peer.optimize(linkage)
    expected = pd.Series(weights)[frame.columns].to_numpy()
    np.testing.assert_allclose(allocation.weights, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(allocation.extras["linkage"], peer.clusters, rtol=1e-12)
