"""HERC and NCO against skfolio on windows of the real Binance daily data (20 pairs, 90 and 200 days).

skfolio is configured like ours: ``EmpiricalPrior(covariance_estimator=EmpiricalCovariance())``
(ddof=1) for the risks, ``PearsonDistance()`` (``sqrt((1 - corr) / 2)``) for the tree, or
``CovarianceDistance`` with the same estimator as the prior for another covariance,
``HierarchicalClustering(linkage_method=..., max_clusters=None)`` (the gap statistic), and for NCO
``cv="ignore"`` (the outer estimator fitted on the in-sample cluster returns) with each inner and
outer estimator configured like our registry allocator of the same name.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from strategies import HERCStrategy, NCOStrategy

pytest.importorskip("skfolio")
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.distance import CovarianceDistance, PearsonDistance
from skfolio.measures import RiskMeasure
from skfolio.moments import EmpiricalCovariance, LedoitWolf
from skfolio.optimization import (
    EqualWeighted,
    HierarchicalEqualRiskContribution,
    HierarchicalRiskParity,
    InverseVolatility,
    MeanRisk,
    NestedClustersOptimization,
    RiskBudgeting,
)
from skfolio.prior import EmpiricalPrior
from skfolio.seriation import HierarchicalSeriation

pytestmark = pytest.mark.shared

ENDS = [250, 500, 800, 1100]
TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}


@pytest.fixture(scope="module")
def daily_returns(daily_market):
    return daily_market.close.pct_change()


def window(daily_returns, end, n_obs, n_assets=20):
    frame = daily_returns.iloc[end - n_obs + 1 : end + 1].dropna(axis=1)
    assert frame.shape[1] >= n_assets
    return frame.iloc[:, :n_assets].to_numpy()


def prior(covariance=None):
    return EmpiricalPrior(covariance_estimator=covariance or EmpiricalCovariance())


def clustering(linkage):
    return HierarchicalClustering(linkage_method=LinkageMethod[linkage.upper()])


def skfolio_herc(linkage, risk_measure="variance", lo=0.0, hi=1.0, covariance=None):
    distance = PearsonDistance() if covariance is None else CovarianceDistance(covariance)
    return HierarchicalEqualRiskContribution(
        risk_measure=RiskMeasure[risk_measure.upper()],
        prior_estimator=prior(covariance),
        distance_estimator=distance,
        hierarchical_clustering_estimator=clustering(linkage),
        min_weights=lo,
        max_weights=hi,
        solver_params=TIGHT,
    )


def skfolio_allocator(name, linkage):
    """The skfolio estimator our registry allocator ``name`` equals (configured identically)."""
    if name == "min_volatility":
        return MeanRisk(
            risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior(), solver_params=TIGHT
        )
    if name == "risk_parity":
        return RiskBudgeting(
            risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior(), solver_params=TIGHT
        )
    if name == "inverse_volatility":
        return InverseVolatility(prior_estimator=prior())
    if name == "equal_weight":
        return EqualWeighted()
    if name == "herc":
        return skfolio_herc(linkage)
    assert name == "hrp"
    seriation = HierarchicalSeriation(
        hierarchical_clustering_estimator=clustering(linkage), optimal_ordering=False
    )
    return HierarchicalRiskParity(
        prior_estimator=prior(), distance_estimator=PearsonDistance(), seriation_estimator=seriation
    )


def skfolio_nco(inner, outer, linkage):
    return NestedClustersOptimization(
        inner_estimator=skfolio_allocator(inner, linkage),
        outer_estimator=skfolio_allocator(outer, linkage),
        distance_estimator=PearsonDistance(),
        clustering_estimator=clustering(linkage),
        cv="ignore",
    )


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("n_obs", [90, 200])
@pytest.mark.parametrize("linkage", ["ward", "average", "single", "complete"])
@pytest.mark.parametrize("risk_measure", ["variance", "standard_deviation"])
def test_herc_equals_skfolio(daily_returns, end, n_obs, linkage, risk_measure):
    returns = window(daily_returns, end, n_obs)
    a = HERCStrategy(linkage=linkage, risk_measure=risk_measure).allocate_detailed(returns)
    peer = skfolio_herc(linkage, risk_measure).fit(returns)
    np.testing.assert_allclose(a.weights, peer.weights_, rtol=0, atol=1e-8)
    fitted = peer.hierarchical_clustering_estimator_
    np.testing.assert_array_equal(a.extras["labels"], fitted.labels_)
    np.testing.assert_array_equal(a.extras["linkage"][:, :2], fitted.linkage_matrix_[:, :2])


@pytest.mark.parametrize("end", ENDS)
def test_herc_with_ledoit_wolf_equals_skfolio(daily_returns, end):
    """Another covariance: the same estimator in skfolio's prior and its CovarianceDistance."""
    returns = window(daily_returns, end, 90)
    ours = HERCStrategy(covariance="ledoit_wolf").allocate(returns)
    peer = skfolio_herc("ward", covariance=LedoitWolf()).fit(returns).weights_
    np.testing.assert_allclose(ours, peer, rtol=0, atol=1e-8)


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize(("lo", "hi"), [(0.0, 0.2), (0.0, 0.3), (0.001, 0.3)])
def test_herc_bounds_as_skfolio(daily_returns, end, lo, hi):
    """Bounds: skfolio moves weights outside them to the bounded portfolio of least relative change
    (a conic programme solved by Clarabel, here at 1e-12); ours solves the same problem exactly
    (tests/strategies/test_herc.py checks its optimality conditions). Clarabel reaches 1e-6 on
    these windows to 1e-5: the problem is badly scaled (weights as small as 1e-4 moved to the
    floor). Solved exactly on the peer's active set (which weights sit at a bound), the peer's
    answer is ours to 1e-12."""
    returns = window(daily_returns, end, 200)
    ours = HERCStrategy().allocate(returns, {"min_weight": lo, "max_weight": hi})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Solution may be inaccurate"
        peer = skfolio_herc("ward", lo=lo, hi=hi).fit(returns).weights_
    assert ours.min() >= lo and ours.max() <= hi and abs(ours.sum() - 1) < 1e-12
    np.testing.assert_allclose(ours, peer, rtol=0, atol=1e-5)
    start = skfolio_herc("ward").fit(returns).weights_  # the weights before the bounds
    at_lo, at_hi = peer <= lo + 1e-7, peer >= hi - 1e-7
    free = ~(at_lo | at_hi)
    fixed = lo * at_lo.sum() + hi * at_hi.sum()
    lam = (1 - fixed - start[free].sum()) / (start[free] ** 2).sum()
    polished = np.where(at_lo, lo, np.where(at_hi, hi, start + lam * start**2))
    np.testing.assert_allclose(ours, polished, rtol=0, atol=1e-12)


CLOSED_FORM = [
    ("inverse_volatility", "hrp"),
    ("hrp", "inverse_volatility"),
    ("herc", "equal_weight"),
    ("equal_weight", "herc"),
]


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("n_obs", [90, 200])
@pytest.mark.parametrize("linkage", ["ward", "average"])
@pytest.mark.parametrize(("inner", "outer"), CLOSED_FORM)
def test_nco_equals_skfolio(daily_returns, end, n_obs, linkage, inner, outer):
    returns = window(daily_returns, end, n_obs)
    a = NCOStrategy(inner=inner, outer=outer, linkage=linkage).allocate_detailed(returns)
    peer = skfolio_nco(inner, outer, linkage).fit(returns)
    np.testing.assert_allclose(a.weights, peer.weights_, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(a.extras["labels"], peer.clustering_estimator_.labels_)


CONVEX = [
    ("min_volatility", "min_volatility"),
    ("min_volatility", "equal_weight"),
    ("risk_parity", "herc"),
]


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize(("inner", "outer"), CONVEX)
def test_nco_with_convex_allocators_matches_skfolio(daily_returns, end, inner, outer):
    """Inner / outer allocators that skfolio solves with Clarabel (here at 1e-12): the same
    weights to 1e-5, and our minimum-variance portfolio of each cluster is never riskier."""
    returns = window(daily_returns, end, 200)
    a = NCOStrategy(inner=inner, outer=outer).allocate_detailed(returns)
    peer = skfolio_nco(inner, outer, "ward").fit(returns)
    np.testing.assert_allclose(a.weights, peer.weights_, rtol=0, atol=1e-5)
    if inner != "min_volatility":
        return
    cov = np.cov(returns, rowvar=False)
    fitted = iter(peer.inner_estimators_)
    for c, row in enumerate(a.extras["inner_weights"]):
        members = np.flatnonzero(a.extras["labels"] == c)
        if len(members) > 1:
            theirs = next(fitted).weights_
            sub = cov[np.ix_(members, members)]
            assert row[members] @ sub @ row[members] <= theirs @ sub @ theirs * (1 + 1e-9)
