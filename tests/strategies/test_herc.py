"""HERC helpers against plain twins, and the allocator's limits, repairs and errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch

from strategies import ConstraintError, Constraints, HERCStrategy, build_strategy
from strategies.clusters import hierarchical_clusters
from strategies.herc import box_projection_nb, herc_weights_nb, limit_weights, split_clusters_nb


def herc_twin(cov, Z, labels, volatility=False):
    """Raffinot's HERC written plainly: inverse-risk weights in each cluster, then the tree walked
    from the root with scipy's ``to_tree`` until each node is one of the clusters."""
    risk = np.sqrt(np.diag(cov)) if volatility else np.diag(cov)
    clusters = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
    inner = np.zeros(len(cov))
    cluster_risk = []
    for members in clusters:
        w = 1 / risk[members]
        w /= w.sum()
        inner[members] = w
        var = w @ cov[np.ix_(members, members)] @ w
        cluster_risk.append(np.sqrt(var) if volatility else var)
    cluster_risk = np.array(cluster_risk)
    cluster_weight = np.ones(len(clusters))
    sets = [set(m.tolist()) for m in clusters]

    def visit(node):
        if set(node.pre_order()) in sets:
            return
        left_leaves = set(node.get_left().pre_order())
        right_leaves = set(node.get_right().pre_order())
        left = [c for c, s in enumerate(sets) if s <= left_leaves]
        right = [c for c, s in enumerate(sets) if s <= right_leaves]
        alpha = 1 - cluster_risk[left].sum() / (
            cluster_risk[left].sum() + cluster_risk[right].sum()
        )
        cluster_weight[left] *= alpha
        cluster_weight[right] *= 1 - alpha
        visit(node.get_left())
        visit(node.get_right())

    visit(sch.to_tree(Z))
    return inner * cluster_weight[labels]


def projection_twin(target, scale, lo, hi):
    """The same projection by bisection on the multiplier (not the breakpoint search)."""
    a, b = -1e12, 1e12
    for _ in range(400):
        mid = 0.5 * (a + b)
        if np.clip(target + mid * scale, lo, hi).sum() < 1:
            a = mid
        else:
            b = mid
    return np.clip(target + 0.5 * (a + b) * scale, lo, hi)


def random_returns(seed, n_assets, n_obs=120):
    rng = np.random.default_rng(seed)
    mix = np.eye(n_assets) + 0.6 * rng.normal(size=(n_assets, n_assets)) / np.sqrt(n_assets)
    return rng.normal(0, 0.01, size=(n_obs, n_assets)) @ mix


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("volatility", [False, True])
def test_herc_weights_equal_twin(seed, volatility):
    cov = np.cov(random_returns(seed, 5 + 3 * seed), rowvar=False)
    for k in (None, 1, 3):
        clusters = hierarchical_clusters(cov, "ward", k)
        ours = herc_weights_nb(cov, clusters.linkage, clusters.labels, volatility)
        twin = herc_twin(cov, clusters.linkage, clusters.labels, volatility)
        np.testing.assert_allclose(ours, twin, rtol=1e-13)
        assert abs(ours.sum() - 1) < 1e-14


def test_split_gives_each_side_its_inverse_risk_share():
    # ((0, 1), 2): clusters {0, 1} with risk 1 and {2} with risk 3 -> 3/4 and 1/4
    Z = np.array([[0, 1, 0.1, 2], [2, 3, 0.5, 3]])
    np.testing.assert_allclose(
        split_clusters_nb(Z, np.array([0, 0, 1]), np.array([1.0, 3.0])), [0.75, 0.25]
    )
    np.testing.assert_allclose(split_clusters_nb(Z, np.array([0, 0, 0]), np.array([2.0])), [1.0])


@pytest.mark.parametrize("seed", range(20))
def test_box_projection_equals_bisection_twin_and_is_optimal(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    target = rng.dirichlet(np.full(n, 0.3))
    lo = rng.uniform(0, 0.6 / n, n) * (seed % 3 != 0)
    hi = np.maximum(lo, rng.uniform(0.5 / n, 3.0 / n, n))
    hi[0] = 1.0  # the caps can fill the book
    for scale in (target**2, np.ones(n)):
        w = box_projection_nb(target, scale, lo, hi)
        np.testing.assert_allclose(w, projection_twin(target, scale, lo, hi), atol=1e-12)
        assert abs(w.sum() - 1) < 1e-13 and np.all(w >= lo) and np.all(w <= hi)
        # KKT: every weight strictly inside its bounds has the same multiplier
        free = (w > lo + 1e-12) & (w < hi - 1e-12) & (scale > 0)
        lam = (w[free] - target[free]) / scale[free]
        if free.any():
            assert np.ptp(lam) <= 1e-9 * max(1.0, np.abs(lam).max())


def test_box_projection_at_the_edges():
    t = np.array([0.6, 0.4])
    np.testing.assert_array_equal(
        box_projection_nb(t, t**2, np.array([0.5, 0.5]), np.ones(2)), [0.5, 0.5]
    )
    np.testing.assert_array_equal(
        box_projection_nb(t, t**2, np.zeros(2), np.array([0.5, 0.5])), [0.5, 0.5]
    )
    np.testing.assert_array_equal(box_projection_nb(t, np.zeros(2), np.zeros(2), np.ones(2)), t)


def test_limit_weights_keeps_weights_inside_and_moves_the_rest_relatively():
    w = np.array([0.5, 0.3, 0.2])
    kept, notes = limit_weights(w, np.zeros(3), np.full(3, 0.6), Constraints())
    assert kept is w and notes == ()
    moved, _ = limit_weights(np.array([0.7, 0.2, 0.1]), np.zeros(3), np.full(3, 0.5), Constraints())
    # least relative change: the freed 0.2 goes in proportion to the squared weights
    np.testing.assert_allclose(moved, [0.5, 0.2 + 0.2 * 0.04 / 0.05, 0.1 + 0.2 * 0.01 / 0.05])
    euclid, _ = limit_weights(
        np.array([0.7, 0.2, 0.1]), np.zeros(3), np.full(3, 0.5), Constraints(), relative=False
    )
    np.testing.assert_allclose(euclid, [0.5, 0.3, 0.2])


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 0.15), (0.03, 0.2), (0.04, 0.06)])
def test_bounds_hold(lo, hi):
    r = random_returns(3, 20)
    a = HERCStrategy().allocate_detailed(r, {"min_weight": lo, "max_weight": hi})
    w = a.weights
    assert a.method == "herc" and abs(w.sum() - 1) < 1e-12
    assert w.min() >= lo and w.max() <= hi


def test_groups_hold_by_projection():
    r = random_returns(5, 10)
    free = HERCStrategy().allocate(r)
    heavy = list(np.argsort(free)[-3:])
    cap = 0.5 * free[heavy].sum()
    a = HERCStrategy().allocate_detailed(r, Constraints(0.0, 0.5, {"g": (heavy, 0.0, cap)}))
    assert a.weights[heavy].sum() <= cap + 1e-9 and a.weights.max() <= 0.5 + 1e-12
    assert abs(a.weights.sum() - 1) < 1e-9 and a.weights.min() >= -1e-12
    assert any("projected onto the group" in note for note in a.notes)
    b = Constraints(A=np.eye(10)[[heavy[0]]], b=np.array([0.01]))
    assert HERCStrategy().allocate(r, b)[heavy[0]] <= 0.01 + 1e-9


def test_one_and_two_assets():
    r = random_returns(1, 2)
    assert HERCStrategy().allocate(r[:, :1]).tolist() == [1.0]
    w = HERCStrategy().allocate(r)  # two singleton clusters: inverse-variance split
    var = r.var(axis=0, ddof=1)
    np.testing.assert_allclose(w, (1 / var) / (1 / var).sum(), rtol=1e-12)
    vol = HERCStrategy(risk_measure="standard_deviation").allocate(r)
    np.testing.assert_allclose(vol, (1 / var**0.5) / (1 / var**0.5).sum(), rtol=1e-12)


def test_zero_variance_asset_is_repaired_and_noted():
    r = random_returns(2, 6)
    r[:, 3] = 0.0
    a = HERCStrategy().allocate_detailed(r)
    assert np.all(np.isfinite(a.weights)) and abs(a.weights.sum() - 1) < 1e-12
    assert any("zero-variance asset(s) at column(s) [3]" in note for note in a.notes)
    flat = HERCStrategy().allocate_detailed(np.zeros((30, 4)), {"max_weight": 0.3})
    assert flat.method == "equal_weight" and flat.weights.tolist() == [0.25] * 4


def test_extras_and_scale_free():
    r = random_returns(7, 9)
    a = HERCStrategy(covariance="ledoit_wolf", periods_per_year=252).allocate_detailed(r)
    assert a.extras["linkage"].shape == (8, 4) and a.extras["labels"].shape == (9,)
    np.testing.assert_allclose(
        HERCStrategy().allocate(10 * r), HERCStrategy().allocate(r), rtol=1e-12
    )


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ValueError, match=r"`linkage` must be one of .*; got 'centroid'"):
        HERCStrategy(linkage="centroid")
    with pytest.raises(
        ValueError,
        match=r"`risk_measure` must be one of 'variance', 'standard_deviation'; got 'cvar'",
    ):
        HERCStrategy(risk_measure="cvar")
    with pytest.raises(ValueError, match=r"`covariance` must be one of"):
        HERCStrategy(covariance="robust")
    with pytest.raises(ValueError, match=r"`max_clusters` must be an integer >= 1 or None"):
        HERCStrategy(max_clusters=0)
    with pytest.raises(ValueError, match=r"`lookback_days` must be > 0"):
        HERCStrategy(lookback_days=0)
    with pytest.raises(ConstraintError, match=r"`max_weight` = 0.1 with 5 assets leaves 50%"):
        HERCStrategy().allocate(random_returns(0, 5), {"max_weight": 0.1})


def test_built_from_the_registry():
    s = build_strategy("herc", linkage="average", risk_measure="standard_deviation", max_clusters=4)
    assert isinstance(s, HERCStrategy) and (s.linkage, s.max_clusters) == ("average", 4)
