"""The reduced active-set frontier solver (``box_frontier_nb``): KKT certificates computed in NumPy,
the general Goldfarb-Idnani path, warm starts and PyPortfolioOpt on real daily returns."""

from __future__ import annotations

import numpy as np
import pytest

from datasets import load_csv, shared_data_dir
from strategies import Constraints, MPTStrategy
from strategies.portfolio_qp import (
    MODE_FIXED,
    MODE_RETURN,
    MODE_SHARPE,
    NOT_CONVERGED,
    OK,
    box_frontier_nb,
    efficient_return_from_nb,
    efficient_return_nb,
    max_sharpe_from_nb,
    max_sharpe_nb,
    min_variance_from_nb,
    min_variance_nb,
)
from strategies.qp import INFEASIBLE

RF = 0.02


def sharpe_kkt_violation(w, mu, cov, rf, lo, hi):
    """Pure-NumPy certificate of the maximum-Sharpe optimality of ``w``: with ``a = mu - rf`` and
    ``t = w'Sw / a'w``, ``w`` must minimise ``0.5 w'Sw - t a'w`` over the box and the budget, i.e.
    the gradient ``g = Sw - t a`` is constant (``nu``) on the free assets, ``>= nu`` at a lower
    bound and ``<= nu`` at an upper bound. Returns the largest violation relative to ``|g|``."""
    a = mu - rf
    t = (w @ cov @ w) / (a @ w)
    g = cov @ w - t * a
    at_lo = w <= lo + 1e-12
    at_hi = w >= hi - 1e-12
    free = ~(at_lo | at_hi)
    if free.any():
        nu = g[free].mean()
    else:
        nu = 0.5 * (g[at_lo].min(initial=np.inf) + g[at_hi].max(initial=-np.inf))
    scale = np.abs(g).max()
    violations = [
        np.abs(g[free] - nu).max(initial=0.0),
        np.maximum(nu - g[at_lo], 0.0).max(initial=0.0),
        np.maximum(g[at_hi] - nu, 0.0).max(initial=0.0),
    ]
    return max(violations) / scale


def general_path(n):
    """A redundant constraint row ``0 w <= 1`` sends the builders down the Goldfarb-Idnani path."""
    return np.zeros((1, n)), np.ones(1)


def no_rows(n):
    return np.zeros((0, n)), np.zeros(0)


def moments(seed, n, n_obs=None):
    rng = np.random.default_rng(seed)
    n_obs = n_obs or 2 * n + 20
    mix = np.eye(n) + 0.2 * rng.normal(size=(n, n))
    returns = rng.normal(0.002, 0.02, size=(n_obs, n)) @ mix
    return returns.mean(axis=0) * 365, np.cov(returns, rowvar=False) * 365


@pytest.mark.parametrize("seed", range(25))
def test_max_sharpe_meets_the_kkt_certificate_and_matches_the_general_solver(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([4, 10, 30, 60]))
    mu, cov = moments(seed, n)
    hi_value = max(float(rng.choice([1.0, 0.3, 0.1])), 1.5 / n)
    lo = np.full(n, float(rng.choice([0.0, 0.2 / n])))
    hi = np.full(n, hi_value)
    G, h = no_rows(n)
    w, status = max_sharpe_nb(mu, cov, RF, lo, hi, G, h, 10_000)
    w_gi, status_gi = max_sharpe_nb(mu, cov, RF, lo, hi, *general_path(n), 100_000)
    assert status == status_gi
    if status != OK:
        assert status == INFEASIBLE
        return
    assert w.min() >= lo[0] and w.max() <= hi_value and abs(w.sum() - 1.0) <= 1e-12
    assert sharpe_kkt_violation(w, mu, cov, RF, lo, hi) <= 1e-9
    s = (w @ mu - RF) / np.sqrt(w @ cov @ w)
    s_gi = (w_gi @ mu - RF) / np.sqrt(w_gi @ cov @ w_gi)
    assert s >= s_gi - 1e-12 * abs(s_gi)
    np.testing.assert_allclose(w, w_gi, atol=1e-8)


@pytest.mark.parametrize("seed", range(10))
def test_min_variance_and_efficient_return_match_the_general_solver(seed):
    n = 8 + 4 * seed
    mu, cov = moments(100 + seed, n)
    lo, hi = np.zeros(n), np.full(n, max(0.15, 1.5 / n))
    G, h = no_rows(n)
    w, status = min_variance_nb(cov, lo, hi, G, h, 10_000)
    w_gi, _ = min_variance_nb(cov, lo, hi, *general_path(n), 100_000)
    assert status == OK
    np.testing.assert_allclose(w, w_gi, atol=1e-9)
    target = float(w @ mu + 0.5 * (np.sort(mu)[-3:].mean() - w @ mu))
    w, status = efficient_return_nb(mu, cov, target, lo, hi, G, h, 10_000)
    w_gi, status_gi = efficient_return_nb(mu, cov, target, lo, hi, *general_path(n), 100_000)
    assert status == status_gi
    if status == OK:
        assert w @ mu >= target - 1e-9 * abs(target)
        np.testing.assert_allclose(w, w_gi, atol=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_warm_start_reaches_the_cold_start_solution(seed):
    rng = np.random.default_rng(seed)
    n = 40
    mu, cov = moments(200 + seed, n)
    lo, hi = np.zeros(n), np.full(n, 0.1)
    G, h = no_rows(n)
    cold, status = max_sharpe_nb(mu, cov, RF, lo, hi, G, h, 10_000)
    if status != OK:
        pytest.skip("no portfolio beats the risk-free rate in this draw")
    mu2, cov2 = moments(300 + seed, n)  # e.g. the previous rebalance's solution
    previous, _ = max_sharpe_nb(mu2, cov2, RF, lo, hi, G, h, 10_000)
    starts = [cold, previous, np.full(n, 1 / n), rng.dirichlet(np.ones(n)), np.zeros(n)]
    for start in starts:
        warm, status = max_sharpe_from_nb(mu, cov, RF, lo, hi, G, h, 10_000, start)
        assert status == OK
        np.testing.assert_allclose(warm, cold, rtol=0, atol=1e-10)
        w, _ = min_variance_from_nb(cov, lo, hi, G, h, 10_000, start)
        np.testing.assert_allclose(w, min_variance_nb(cov, lo, hi, G, h, 10_000)[0], atol=1e-10)
        target = float(cold @ mu)
        w, _ = efficient_return_from_nb(mu, cov, target, lo, hi, G, h, 10_000, start)
        expected = efficient_return_nb(mu, cov, target, lo, hi, G, h, 10_000)[0]
        np.testing.assert_allclose(w, expected, atol=1e-10)


def test_warm_start_converges_in_one_step_from_the_solution():
    mu, cov = moments(5, 50)
    lo, hi = np.zeros(50), np.full(50, 0.05)
    w, status, steps = box_frontier_nb(mu, cov, RF, lo, hi, MODE_SHARPE, 0.0, np.empty(0), 200)
    assert status == OK and steps > 1
    _, status, steps = box_frontier_nb(mu, cov, RF, lo, hi, MODE_SHARPE, 0.0, w, 200)
    assert status == OK and steps == 1


def test_fixed_mode_zero_is_minimum_variance_and_unreachable_return_does_not_converge():
    mu, cov = moments(6, 12)
    lo, hi = np.zeros(12), np.full(12, 0.25)
    w, status, _ = box_frontier_nb(mu, cov, 0.0, lo, hi, MODE_FIXED, 0.0, np.empty(0), 200)
    np.testing.assert_allclose(
        w, min_variance_nb(cov, lo, hi, *general_path(12), 10_000)[0], atol=1e-9
    )
    best = np.sort(mu)[-4:].sum() * 0.25  # the greedy maximum return under these bounds
    _, status, _ = box_frontier_nb(mu, cov, 0.0, lo, hi, MODE_RETURN, best + 1.0, np.empty(0), 200)
    assert status == NOT_CONVERGED
    w, status = efficient_return_nb(mu, cov, best + 1.0, lo, hi, *no_rows(12), 10_000)
    assert status == INFEASIBLE and np.isnan(w).all()


def test_no_asset_above_the_risk_free_rate_is_infeasible():
    mu, cov = moments(7, 10)
    w, status = max_sharpe_nb(
        mu - mu.max() - 0.01, cov, 0.0, np.zeros(10), np.ones(10), *no_rows(10), 500
    )
    assert status == INFEASIBLE and np.isnan(w).all()


def test_mpt_strategy_gives_the_same_weights_with_previous_weights():
    mu_rng = np.random.default_rng(11)
    returns = mu_rng.normal(0.003, 0.02, size=(150, 30)) @ (
        np.eye(30) + 0.2 * mu_rng.normal(size=(30, 30))
    )
    cons = Constraints(0.0, 0.1)
    for objective in ("max_sharpe", "min_volatility"):
        strategy = MPTStrategy(objective=objective, periods_per_year=365.0)
        cold = strategy.allocate_detailed(returns, cons)
        for previous in (cold.weights, np.full(30, 1 / 30), np.full(7, 1 / 7), np.full(30, np.nan)):
            warm = strategy.allocate_detailed(returns, cons, previous=previous)
            assert warm.method == cold.method
            np.testing.assert_allclose(warm.weights, cold.weights, rtol=0, atol=1e-10)


# --- real daily returns padded to N, against PyPortfolioOpt --------------------------------------


def padded_real_returns(n_assets, n_obs=600, shift=7):
    """The shared daily file's pairs listed throughout the last 700 days; copy k is the same pairs
    over the window ending ``shift * k`` days earlier (as ``benchmarks/bench_allocators.py``)."""
    folder = shared_data_dir()
    if folder is None or not (folder / "binance_spot_usdt_1d.csv.gz").exists():
        pytest.skip("needs the shared daily file (set ALPHAPULSE_SHARED_DATA)")
    close = load_csv(folder / "binance_spot_usdt_1d.csv.gz").close
    base = close.pct_change().iloc[1:].iloc[-700:].dropna(axis=1).to_numpy()
    end, copies = base.shape[0], -(-n_assets // base.shape[1])
    blocks = [base[end - n_obs - shift * k : end - shift * k] for k in range(copies)]
    return np.ascontiguousarray(np.hstack(blocks)[:, :n_assets])


@pytest.mark.parametrize("n_assets", [100, 200, 300])
def test_large_universe_matches_pypfopt_sharpe_with_exact_bounds(n_assets):
    pypfopt = pytest.importorskip("pypfopt")
    returns = padded_real_returns(n_assets)
    mu = returns.mean(axis=0) * 365
    cov = np.cov(returns, rowvar=False) * 365
    allocation = MPTStrategy(risk_free_rate=RF, periods_per_year=365.0).allocate_detailed(
        returns, Constraints(0.0, 0.05)
    )
    assert allocation.method == "max_sharpe" and not allocation.notes
    w = allocation.weights
    assert w.min() >= 0.0 and w.max() <= 0.05 and abs(w.sum() - 1.0) <= 1e-12
    assert sharpe_kkt_violation(w, mu, cov, RF, np.zeros(n_assets), np.full(n_assets, 0.05)) <= 1e-9
    ef = pypfopt.EfficientFrontier(mu, cov, weight_bounds=(0.0, 0.05))
    ef.max_sharpe(risk_free_rate=RF)
    peer = np.array([ef.weights[i] for i in range(n_assets)])
    s_ours = (w @ mu - RF) / np.sqrt(w @ cov @ w)
    s_peer = (peer @ mu - RF) / np.sqrt(peer @ cov @ peer)
    assert s_ours >= s_peer - 1e-6 and abs(s_ours - s_peer) <= 1e-6


def test_an_asset_with_equal_bounds_stays_fixed():
    mu, cov = moments(8, 12)
    lo, hi = np.zeros(12), np.full(12, 0.3)
    lo[3] = hi[3] = 0.07
    w, status, steps = box_frontier_nb(mu, cov, RF, lo, hi, MODE_SHARPE, 0.0, np.empty(0), 200)
    assert status == OK and steps < 50
    assert w[3] == 0.07
    w_gi, _ = max_sharpe_nb(mu, cov, RF, lo, hi, *general_path(12), 10_000)
    np.testing.assert_allclose(w, w_gi, atol=1e-9)
