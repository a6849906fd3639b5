"""NCO against a plain twin built from the registry's allocators, and its limits, repairs and errors."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import Constraints, NCOStrategy, build_strategy
from strategies.clusters import hierarchical_clusters
from strategies.nco import NCO_ALLOCATORS

COMBINATIONS = [
    ("min_volatility", "min_volatility"),
    ("inverse_volatility", "hrp"),
    ("hrp", "risk_parity"),
    ("herc", "equal_weight"),
    ("max_diversification", "inverse_volatility"),
]


def nco_twin(returns, inner, outer, linkage="ward"):
    """Nested clustered optimisation written plainly: the registry's allocators on each cluster's
    returns, then on the clusters' portfolio returns."""

    def built(name):
        return (
            build_strategy(name, linkage=linkage)
            if name in ("hrp", "herc")
            else build_strategy(name)
        )

    clusters = hierarchical_clusters(np.cov(returns, rowvar=False), linkage)
    inner_w = np.zeros((clusters.n_clusters, returns.shape[1]))
    for c in range(clusters.n_clusters):
        members = np.flatnonzero(clusters.labels == c)
        if len(members) == 1:
            inner_w[c, members] = 1.0
        else:
            inner_w[c, members] = built(inner).allocate(returns[:, members])
    if clusters.n_clusters == 1:
        return inner_w[0]
    return built(outer).allocate(returns @ inner_w.T) @ inner_w


def random_returns(seed, n_assets, n_obs=150):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 3, n_assets)  # three loose sectors
    factors = rng.normal(0, 0.02, size=(n_obs, 3))
    return factors[:, blocks] + rng.normal(0.0005, 0.01, size=(n_obs, n_assets))


@pytest.mark.parametrize(("inner", "outer"), COMBINATIONS)
@pytest.mark.parametrize("seed", range(3))
def test_nco_equals_twin(inner, outer, seed):
    r = random_returns(seed, 12)
    a = NCOStrategy(inner=inner, outer=outer).allocate_detailed(r)
    np.testing.assert_allclose(a.weights, nco_twin(r, inner, outer), rtol=1e-10, atol=1e-13)
    inner_w, outer_w = a.extras["inner_weights"], a.extras["outer_weights"]
    np.testing.assert_allclose(inner_w.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(outer_w @ inner_w, a.weights, rtol=1e-12, atol=1e-15)


def test_cluster_returns_carry_the_reduced_covariance():
    """The outer allocator sees the clusters' portfolio returns, whose covariance is W' S W."""
    r = random_returns(4, 10)
    a = NCOStrategy(inner="inverse_volatility").allocate_detailed(r)
    W = a.extras["inner_weights"]
    np.testing.assert_allclose(
        np.cov(r @ W.T, rowvar=False), W @ np.cov(r, rowvar=False) @ W.T, rtol=1e-10
    )


def test_one_cluster_is_the_inner_allocator_and_singletons_the_outer():
    r = random_returns(1, 8)
    one = NCOStrategy(inner="min_volatility", max_clusters=1).allocate(r)
    np.testing.assert_allclose(one, build_strategy("min_volatility").allocate(r), atol=1e-14)
    apart = NCOStrategy(outer="inverse_volatility", max_clusters=8).allocate(r)
    np.testing.assert_allclose(apart, build_strategy("inverse_volatility").allocate(r), rtol=1e-12)


def test_one_and_two_assets():
    r = random_returns(2, 2)
    assert NCOStrategy().allocate(r[:, :1]).tolist() == [1.0]
    two = NCOStrategy(outer="inverse_volatility").allocate(r)  # two singleton clusters
    np.testing.assert_allclose(two, build_strategy("inverse_volatility").allocate(r), rtol=1e-12)


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 0.12), (0.02, 0.2), (0.06, 0.1)])
def test_bounds_hold_on_the_product(lo, hi):
    r = random_returns(3, 12)
    free = NCOStrategy().allocate(r)
    assert free.max() > hi or free.min() < lo  # the plain product breaks them
    w = NCOStrategy().allocate(r, {"min_weight": lo, "max_weight": hi})
    assert abs(w.sum() - 1) < 1e-12 and w.min() >= lo and w.max() <= hi


def test_groups_hold_by_projection():
    r = random_returns(5, 12)
    free = NCOStrategy(inner="hrp", outer="inverse_volatility").allocate(r)
    heavy = list(np.argsort(free)[-4:])
    cap = 0.5 * free[heavy].sum()
    a = NCOStrategy(inner="hrp", outer="inverse_volatility").allocate_detailed(
        r, Constraints(0.0, 0.3, {"heavy": (heavy, 0.0, cap)})
    )
    assert a.weights[heavy].sum() <= cap + 1e-9 and a.weights.max() <= 0.3 + 1e-12
    assert abs(a.weights.sum() - 1) < 1e-9
    assert any("projected onto the group" in note for note in a.notes)


def test_zero_variance_asset_is_handled():
    r = random_returns(6, 8)
    r[:, 2] = 0.0
    a = NCOStrategy(inner="inverse_volatility", outer="min_volatility").allocate_detailed(r)
    assert np.all(np.isfinite(a.weights)) and abs(a.weights.sum() - 1) < 1e-9
    assert a.weights.min() >= -1e-12
    assert any("zero-variance asset(s) at column(s) [2]" in note for note in a.notes)
    flat = NCOStrategy().allocate_detailed(np.zeros((30, 4)))
    assert flat.method == "equal_weight" and flat.weights.tolist() == [0.25] * 4


def test_nested_fallbacks_are_noted():
    r = random_returns(7, 6) - 0.01  # no asset or cluster beats the risk-free rate
    a = NCOStrategy(inner="max_sharpe", outer="max_sharpe").allocate_detailed(r)
    assert a.method == "nco" and abs(a.weights.sum() - 1) < 1e-9
    assert any(note.startswith("outer max_sharpe: max_sharpe failed") for note in a.notes)


def test_shared_parameters_reach_the_nested_allocators():
    s = NCOStrategy(inner="hrp", outer="max_sharpe", linkage="average", covariance="oas")
    assert (s.nested("hrp").linkage, s.nested("hrp").covariance) == ("average", "oas")
    assert s.nested("max_sharpe").risk_free_rate == 0.02
    assert set(NCO_ALLOCATORS) >= {"min_volatility", "hrp", "equal_weight", "risk_parity"}


def test_bad_parameters_are_clear_errors():
    with pytest.raises(
        ValueError,
        match=r"`inner` must be one of 'min_volatility', 'max_sharpe', .*; got 'hrpp' "
        r"\(did you mean 'hrp'\?\)",
    ):
        NCOStrategy(inner="hrpp")
    with pytest.raises(ValueError, match=r"`outer` must be one of .*'equal_weight'; got 'nco'"):
        NCOStrategy(outer="nco")
    with pytest.raises(ValueError, match=r"`linkage` must be one of .*; got 'median'"):
        NCOStrategy(linkage="median")
    with pytest.raises(ValueError, match=r"`max_clusters` must be an integer >= 1 or None"):
        NCOStrategy(max_clusters=2.0)
    with pytest.raises(ValueError, match=r"`span` must be > 0"):
        NCOStrategy(span=-1)
    with pytest.raises(ValueError, match=r"`inner` is not a parameter of strategy 'hrp'"):
        build_strategy("hrp", inner="min_volatility")
