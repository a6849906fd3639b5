"""Cross-checks against skfolio on windows of the real Binance daily data.

skfolio is configured like our HRP: empirical covariance (ddof=1), Pearson distance
``sqrt((1 - corr) / 2)``, the same linkage, no optimal leaf ordering, variance risk measure.
"""

from __future__ import annotations

import numpy as np
import pytest

from strategies import HRPStrategy, MPTStrategy, RiskParity
from strategies.risk_parity import risk_contributions

pytest.importorskip("skfolio")
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.distance import PearsonDistance
from skfolio.measures import RiskMeasure
from skfolio.moments import EmpiricalCovariance
from skfolio.optimization import HierarchicalRiskParity, RiskBudgeting
from skfolio.prior import EmpiricalPrior
from skfolio.seriation import HierarchicalSeriation


@pytest.fixture(scope="module")
def daily_returns(daily_market):
    return daily_market.close.pct_change()


def window(daily_returns, end, n_obs, n_assets):
    frame = daily_returns.iloc[end - n_obs + 1 : end + 1].dropna(axis=1)
    assert frame.shape[1] >= n_assets
    return frame.iloc[:, :n_assets].to_numpy()


def skfolio_hrp(linkage, min_weights=0.0, max_weights=1.0):
    clustering = HierarchicalClustering(linkage_method=LinkageMethod[linkage.upper()])
    return HierarchicalRiskParity(
        risk_measure=RiskMeasure.VARIANCE,
        prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
        distance_estimator=PearsonDistance(),
        seriation_estimator=HierarchicalSeriation(
            hierarchical_clustering_estimator=clustering, optimal_ordering=False
        ),
        min_weights=min_weights,
        max_weights=max_weights,
    )


@pytest.mark.parametrize("end", [250, 500, 800, 1100])
@pytest.mark.parametrize("linkage", ["single", "average", "complete"])
@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (0.01, 0.08), (0.02, 0.05)])
def test_hrp_equals_skfolio(daily_returns, end, linkage, lo, hi):
    returns = window(daily_returns, end, n_obs=90, n_assets=25)
    ours = HRPStrategy(linkage=linkage).allocate(returns, {"min_weight": lo, "max_weight": hi})
    peer = skfolio_hrp(linkage, lo, hi).fit(returns).weights_
    np.testing.assert_allclose(ours, peer, rtol=0, atol=1e-10)


@pytest.mark.parametrize("end", [300, 900])
def test_risk_parity_matches_skfolio_risk_budgeting(daily_returns, end):
    returns = window(daily_returns, end, n_obs=90, n_assets=20)
    tight = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
    peer = RiskBudgeting(
        risk_measure=RiskMeasure.VARIANCE,
        solver_params=tight,
        prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
    ).fit(returns)
    ours = RiskParity().allocate(returns)
    np.testing.assert_allclose(ours, peer.weights_, atol=1e-6)
    cov = np.cov(returns, rowvar=False)
    spread = np.ptp(risk_contributions(ours, cov))
    assert spread < 1e-10 and spread <= np.ptp(risk_contributions(peer.weights_, cov))


@pytest.mark.parametrize("end", [300, 900])
def test_risk_budgets_match_skfolio_risk_budgeting(daily_returns, end):
    """Custom budgets: each asset's share of the variance is its share of the budget, as skfolio's
    `RiskBudgeting(risk_budget=...)` (empirical covariance, Clarabel at 1e-10) finds it."""
    returns = window(daily_returns, end, n_obs=90, n_assets=20)
    budget = np.random.default_rng(end).uniform(0.5, 3.0, returns.shape[1])
    tight = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
    peer = RiskBudgeting(
        risk_measure=RiskMeasure.VARIANCE,
        risk_budget=budget,
        solver_params=tight,
        prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
    ).fit(returns)
    ours = RiskParity(risk_budget=tuple(budget)).allocate(returns)
    np.testing.assert_allclose(ours, peer.weights_, atol=1e-6)
    cov = np.cov(returns, rowvar=False)
    shares = risk_contributions(ours, cov) / risk_contributions(ours, cov).sum()
    np.testing.assert_allclose(shares, budget / budget.sum(), rtol=1e-9)


def diversification_ratio(w, cov):
    return float(w @ np.sqrt(np.diag(cov)) / np.sqrt(w @ cov @ w))


@pytest.mark.parametrize("end", [250, 500, 800, 1100])
@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (0.0, 0.2), (0.02, 0.1)])
def test_max_diversification_reaches_skfolios_ratio(daily_returns, end, lo, hi):
    """skfolio's `MaximumDiversification` (empirical covariance, Clarabel at 1e-10) on the same
    window and bounds: our diversification ratio is within 1e-6 of its (and not below by more)."""
    from skfolio.optimization import MaximumDiversification

    returns = window(daily_returns, end, n_obs=90, n_assets=20)
    tight = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
    peer = MaximumDiversification(
        prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
        min_weights=lo,
        max_weights=hi,
        solver_params=tight,
    ).fit(returns)
    got = MPTStrategy(objective="max_diversification").allocate_detailed(
        returns, {"min_weight": lo, "max_weight": hi}
    )
    assert got.method == "max_diversification"
    w = got.weights
    cov = np.cov(returns, rowvar=False)
    ours, theirs = diversification_ratio(w, cov), diversification_ratio(peer.weights_, cov)
    assert ours >= theirs - 1e-6 and abs(ours - theirs) <= 1e-6, (ours, theirs)
    assert abs(w.sum() - 1) <= 1e-12 and w.min() >= lo - 1e-12 and w.max() <= hi + 1e-12
