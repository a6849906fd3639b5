"""HRP helpers against scipy and a pure-NumPy twin of the recursive bisection."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
import scipy.spatial.distance as ssd

from strategies import Constraints, HRPStrategy
from strategies.hrp import (
    correlation_distance,
    hrp_weights,
    leaf_order,
    linkage_from_distance,
    linkage_matrix,
    recursive_bisection,
    repair_zero_variance,
    single_linkage_nb,
)


def bisection_twin(cov, order):
    """Lopez de Prado's recursive bisection, written plainly (PyPortfolioOpt's structure)."""
    w = np.ones(len(order))
    clusters = [list(order)]
    while clusters:
        clusters = [
            c[j:k]
            for c in clusters
            for j, k in ((0, len(c) // 2), (len(c) // 2, len(c)))
            if len(c) > 1
        ]
        for a, b in zip(clusters[::2], clusters[1::2], strict=True):
            var = []
            for items in (a, b):
                sub = cov[np.ix_(items, items)]
                ivp = 1 / np.diag(sub)
                ivp /= ivp.sum()
                var.append(ivp @ sub @ ivp)
            alpha = 1 - var[0] / (var[0] + var[1])
            w[a] *= alpha
            w[b] *= 1 - alpha
    return w


def random_cov(seed, n):
    rng = np.random.default_rng(seed)
    returns = rng.normal(size=(3 * n, n)) @ (rng.normal(size=(n, n)) * 0.5 + np.eye(n))
    return np.cov(returns, rowvar=False)


@pytest.mark.parametrize("seed", range(10))
def test_single_linkage_equals_scipy(seed):
    cov = random_cov(seed, 12)
    dist = correlation_distance(cov)
    expected = sch.linkage(ssd.squareform(dist, checks=False), "single")
    np.testing.assert_array_equal(single_linkage_nb(dist), expected)


def test_single_linkage_ties_follow_scipy():
    dist = np.array([[0, 1, 1, 2], [1, 0, 1, 1], [1, 1, 0, 1], [2, 1, 1, 0]], dtype=float)
    expected = sch.linkage(ssd.squareform(dist), "single")
    np.testing.assert_array_equal(single_linkage_nb(dist), expected)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("method", ["complete", "average", "weighted", "ward"])
def test_nn_chain_linkage_equals_scipy_bit_for_bit(seed, method):
    """scipy's nearest-neighbour chain: the same merges, heights and labels, ties included."""
    if seed % 2:
        pts = np.random.default_rng(seed).integers(0, 3, size=(6 + 4 * seed, 2)).astype(float)
        dist = ssd.squareform(ssd.pdist(pts, "cityblock"))  # many equal distances
    else:
        dist = correlation_distance(random_cov(seed, 6 + 4 * seed))
    expected = sch.linkage(ssd.squareform(dist, checks=False), method)
    np.testing.assert_array_equal(linkage_from_distance(dist, method), expected)


@pytest.mark.parametrize("method", ["single", "average", "complete", "ward"])
def test_leaf_order_equals_scipy_pre_order(method):
    Z = linkage_matrix(random_cov(1, 15), method)
    assert leaf_order(Z).tolist() == sch.to_tree(Z).pre_order()


@pytest.mark.parametrize("seed", range(5))
def test_recursive_bisection_matches_twin(seed):
    cov = random_cov(seed, 11)
    order = leaf_order(linkage_matrix(cov))
    np.testing.assert_allclose(
        recursive_bisection(cov, order), bisection_twin(cov, order), rtol=1e-13
    )


def test_bounds_are_honoured_by_the_split_factors():
    cov = random_cov(2, 10)
    lo, hi = np.full(10, 0.05), np.full(10, 0.15)
    w, _, _ = hrp_weights(cov, "single", lo, hi)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(w >= lo - 1e-12) and np.all(w <= hi + 1e-12)


def test_weights_and_extras_from_the_strategy():
    rng = np.random.default_rng(0)
    returns = rng.normal(0, 0.02, size=(60, 5))
    allocation = HRPStrategy().allocate_detailed(returns)
    assert allocation.method == "hrp" and allocation.notes == ()
    Z = allocation.extras["linkage"]
    assert Z.shape == (4, 4) and sch.is_valid_linkage(Z)
    assert sorted(allocation.extras["order"].tolist()) == list(range(5))
    np.testing.assert_allclose(allocation.extras["covariance"], np.cov(returns, rowvar=False) * 365)
    sch.dendrogram(Z, no_plot=True)  # what the report draws


def test_zero_variance_asset_is_weighted_like_the_least_volatile():
    rng = np.random.default_rng(1)
    returns = rng.normal(0, [0.01, 0.02, 0.03], size=(80, 3))
    returns = np.column_stack([returns, np.zeros(80)])
    allocation = HRPStrategy().allocate_detailed(returns)
    assert "zero-variance asset(s) at column(s) [3]" in allocation.notes[0]
    assert np.isfinite(allocation.weights).all() and allocation.weights.sum() == pytest.approx(1.0)
    repaired, _ = repair_zero_variance(np.cov(returns, rowvar=False))
    assert repaired[3, 3] == pytest.approx(np.var(returns[:, 0], ddof=1))


def test_all_zero_variance_gives_equal_weight():
    allocation = HRPStrategy().allocate_detailed(np.zeros((10, 4)))
    assert allocation.method == "equal_weight"
    np.testing.assert_allclose(allocation.weights, 0.25)


def test_single_asset():
    np.testing.assert_allclose(HRPStrategy().allocate(np.array([[0.01], [0.02]])), [1.0])


def test_group_constraints_by_projection():
    rng = np.random.default_rng(2)
    returns = rng.normal(0, [0.01, 0.01, 0.05, 0.05], size=(100, 4))
    cons = Constraints(groups={"calm": ([0, 1], 0.0, 0.5)})
    allocation = HRPStrategy().allocate_detailed(returns, cons)
    assert allocation.weights[:2].sum() == pytest.approx(0.5, abs=1e-12)
    assert "projected onto the group / linear constraints" in allocation.notes[-1]


def test_invalid_parameters_are_named():
    with pytest.raises(ValueError, match=r"`linkage` must be one of 'single', .*; got 'singel'"):
        HRPStrategy(linkage="singel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`covariance` must be one of"):
        HRPStrategy(covariance="robust")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"must be > 0"):
        HRPStrategy(lookback_days=0)


def test_linkage_from_distance_refuses_a_malformed_matrix():
    from strategies.errors import InputError
    from strategies.hrp import linkage_from_distance

    dist = np.array([[0.0, 0.5, 0.9], [0.5, 0.0, 0.4], [0.9, 0.4, 0.0]])
    assert linkage_from_distance(dist, "average").shape == (2, 4)
    bad = dist.copy()
    bad[0, 2] = bad[2, 0] = np.nan
    with pytest.raises(InputError, match=r"finite distances; got shape \(3, 3\) with non-finite"):
        linkage_from_distance(bad, "single")
    skew = dist.copy()
    skew[0, 1] = 0.6
    with pytest.raises(InputError, match=r"`dist` must be symmetric"):
        linkage_from_distance(skew, "ward")
