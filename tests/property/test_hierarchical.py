"""Properties of HERC, NCO and their flat clusters: finite weights that sum to 1 within any bounds
on any finite window (constant columns, duplicates, two rows), scale invariance, and clusters that
are whole subtrees numbered 0 .. k - 1."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import HERCStrategy, NCOStrategy
from strategies.clusters import gap_n_clusters_nb, hierarchical_clusters, maxclust_labels_nb
from tests.property.test_allocators import (
    allocate_quietly,
    arbitrary_returns,
    bounds,
    generic_returns,
)

SETTINGS = settings(max_examples=40, deadline=None)
ALLOCATORS = {
    "herc": HERCStrategy(),
    "herc_volatility_single": HERCStrategy(linkage="single", risk_measure="standard_deviation"),
    "nco": NCOStrategy(),
    "nco_hrp_herc": NCOStrategy(inner="hrp", outer="herc", linkage="average"),
    "nco_sharpe_parity": NCOStrategy(inner="max_sharpe", outer="risk_parity"),
}


@SETTINGS
@given(returns=arbitrary_returns(), name=st.sampled_from(sorted(ALLOCATORS)), data=st.data())
def test_weights_are_finite_sum_to_one_within_bounds(returns, name, data):
    constraints = data.draw(bounds(returns.shape[1]))
    w = allocate_quietly(ALLOCATORS[name], returns, constraints).weights
    lo, hi = constraints.per_asset(returns.shape[1])
    assert np.all(np.isfinite(w)) and abs(w.sum() - 1) <= 1e-9
    assert np.all(w >= lo - 1e-12) and np.all(w <= hi + 1e-12)


@SETTINGS
@given(returns=generic_returns(max_assets=12), scale=st.floats(0.1, 5.0))
def test_herc_is_scale_invariant(returns, scale):
    w = HERCStrategy().allocate(returns)
    np.testing.assert_allclose(HERCStrategy().allocate(returns * scale), w, rtol=1e-9, atol=1e-12)


@SETTINGS
@given(returns=generic_returns(max_assets=14), k=st.integers(1, 16))
def test_clusters_are_whole_subtrees(returns, k):
    cov = np.cov(returns, rowvar=False)
    n = cov.shape[0]
    clusters = hierarchical_clusters(cov)
    wanted = gap_n_clusters_nb(clusters.distance, clusters.linkage)
    assert wanted == 2 if n <= 3 else 2 <= wanted <= min(n, 8) - 1
    labels = maxclust_labels_nb(clusters.linkage, k)
    assert sorted(set(labels.tolist())) == list(range(min(k, n)))
    # each cluster is the leaf set of one node of the tree
    leaves = {i: {i} for i in range(n)}
    for row, (a, b, *_rest) in enumerate(clusters.linkage):
        leaves[n + row] = leaves[int(a)] | leaves[int(b)]
    sets = {frozenset(s) for s in leaves.values()}
    for c in range(labels.max() + 1):
        assert frozenset(np.flatnonzero(labels == c).tolist()) in sets
