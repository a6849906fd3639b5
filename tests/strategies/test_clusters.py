"""Flat clusters (strategies.clusters) against plain twins and scipy's ``cut_tree`` / ``fcluster``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
import scipy.spatial.distance as ssd

from strategies.clusters import (
    check_max_clusters,
    dispersion_nb,
    gap_n_clusters_nb,
    hierarchical_clusters,
    maxclust_labels_nb,
    merge_order_nb,
    subtree_heights_nb,
)
from strategies.hrp import correlation_distance, linkage_from_distance

METHODS = ["single", "complete", "average", "weighted", "ward"]


def gap_twin(dist, Z):
    """The two-order difference gap statistic written from its definition with scipy's cut_tree."""
    n = len(dist)
    if n <= 2:
        return n
    cuts = sch.cut_tree(Z)  # column j: the tree after j merges, n - j clusters
    max_c = min(n, max(8, round(np.sqrt(n))))
    dispersion = []
    for c in range(1, max_c + 1):
        level = cuts[:, n - c]
        total = 0.0
        for label in np.unique(level):
            members = np.flatnonzero(level == label)
            if len(members) > 1:
                total += np.mean(ssd.squareform(dist[np.ix_(members, members)], checks=False))
        dispersion.append(total)
    w = np.array(dispersion)
    return int(np.argmax(w[2:] + w[:-2] - 2 * w[1:-1])) + 2


def maxclust_twin(Z, t):
    """``fcluster(Z, t, "maxclust") - 1`` from its definition: cut at the lowest subtree height
    that leaves at most t clusters, number the clusters depth first (a cluster when first reached,
    a lone asset once both subtrees of its parent are done)."""
    n = len(Z) + 1
    if t >= n:
        return np.arange(n)
    height = {}
    for row in range(n - 1):
        kids = [int(Z[row, 0]), int(Z[row, 1])]
        height[n + row] = max([Z[row, 2]] + [height[k] for k in kids if k >= n])
    values = [height[n + r] for r in range(n - 1)]
    cut = min(v for v in values if n - sum(u <= v for u in values) <= t)
    labels = np.full(n, -1)
    count = [0]

    def visit(node, inside):
        row = node - n
        if not inside and height[node] <= cut:
            count[0] += 1
            inside = True
        kids = [int(Z[row, 0]), int(Z[row, 1])]
        for kid in kids:
            if kid >= n:
                visit(kid, inside)
        for kid in kids:
            if kid < n:
                if not inside:
                    count[0] += 1
                labels[kid] = count[0] - 1

    visit(2 * n - 2, False)
    return labels


def distances(seed, n, ties=False):
    rng = np.random.default_rng(seed)
    if ties:  # city-block distances of points on a 3 x 3 grid: many equal merge heights
        pts = rng.integers(0, 3, size=(n, 2)).astype(float)
        d = ssd.squareform(ssd.pdist(pts, "cityblock"))
        return d / (d.max() + 1)
    x = rng.normal(size=(80, n)) @ (np.eye(n) + 0.5 * rng.normal(size=(n, n)))
    return correlation_distance(np.cov(x, rowvar=False))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("method", METHODS)
def test_gap_statistic_equals_its_twin(seed, method):
    dist = distances(seed, 3 + 3 * seed, ties=seed % 3 == 0)
    Z = linkage_from_distance(dist, method)
    assert gap_n_clusters_nb(dist, Z) == gap_twin(dist, Z)


def test_gap_statistic_small_universes():
    assert gap_n_clusters_nb(np.zeros((1, 1)), np.zeros((0, 4))) == 1
    dist = np.array([[0.0, 0.3], [0.3, 0.0]])
    assert gap_n_clusters_nb(dist, linkage_from_distance(dist, "ward")) == 2
    dist3 = distances(0, 3)
    assert gap_n_clusters_nb(dist3, linkage_from_distance(dist3, "ward")) == 2


def test_two_obvious_blocks_are_found():
    corr = np.kron(np.eye(3), np.full((4, 4), 0.9)) + 0.1 * np.eye(12)
    clusters = hierarchical_clusters(corr)
    assert clusters.n_clusters == 3
    blocks = clusters.labels.reshape(3, 4)
    assert (blocks == blocks[:, :1]).all() and sorted(blocks[:, 0]) == [0, 1, 2]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("method", METHODS)
def test_maxclust_labels_equal_twin_and_scipy(seed, method):
    n = 4 + 2 * seed
    Z = linkage_from_distance(distances(seed, n, ties=seed % 2 == 1), method)
    for t in range(1, n + 2):
        ours = maxclust_labels_nb(Z, t)
        np.testing.assert_array_equal(ours, maxclust_twin(Z, t))
        np.testing.assert_array_equal(ours, sch.fcluster(Z, t, "maxclust") - 1)
        assert ours.max() + 1 <= t


def test_merge_order_is_cut_trees_order():
    """Equal heights: the node met later breadth-first (right child first) is applied first."""
    Z = np.array([[0, 1, 0.5, 2], [2, 3, 0.5, 2], [4, 5, 0.5, 4]])
    # walk from the root (row 2): row 2, then its right child (row 1), then its left (row 0)
    np.testing.assert_array_equal(merge_order_nb(Z), [0, 1, 2])
    Z = np.array([[0, 1, 0.5, 2], [2, 3, 0.5, 2], [5, 4, 0.5, 4]])
    np.testing.assert_array_equal(merge_order_nb(Z), [1, 0, 2])
    Z = linkage_from_distance(distances(1, 15), "average")
    np.testing.assert_array_equal(merge_order_nb(Z), np.argsort(Z[:, 2], kind="stable"))


def test_dispersion_and_subtree_heights():
    dist = np.array([[0.0, 0.2, 0.6], [0.2, 0.0, 0.4], [0.6, 0.4, 0.0]])
    assert dispersion_nb(dist, np.array([0, 0, 2])) == pytest.approx(0.2)
    assert dispersion_nb(dist, np.array([0, 0, 0])) == pytest.approx(0.4)
    assert dispersion_nb(dist, np.array([0, 1, 2])) == 0.0
    Z = np.array([[0, 1, 0.3, 2], [2, 3, 0.2, 3]])  # an inversion: the subtree max carries up
    np.testing.assert_array_equal(subtree_heights_nb(Z), [0.3, 0.3])


def test_a_cap_on_the_number_of_clusters():
    dist = distances(4, 16)
    for k in (1, 2, 5, 16, 40):
        clusters = hierarchical_clusters(_cov_of(dist), max_clusters=k)
        assert clusters.n_clusters <= k
        np.testing.assert_array_equal(
            clusters.labels, sch.fcluster(clusters.linkage, k, "maxclust") - 1
        )


def _cov_of(dist):
    """A correlation matrix whose correlation distance is ``dist``."""
    return 1.0 - 2.0 * dist**2


def test_one_asset():
    clusters = hierarchical_clusters(np.array([[0.04]]))
    assert clusters.n_clusters == 1 and clusters.labels.tolist() == [0]
    assert clusters.linkage.shape == (0, 4)


def test_bad_choices_are_clear_errors():
    cov = np.eye(3)
    with pytest.raises(
        ValueError, match=r"`linkage` must be one of 'single', .*'ward'; got 'median'"
    ):
        hierarchical_clusters(cov, "median")
    for bad in (0, -2, 2.5, True, "3"):
        with pytest.raises(ValueError, match=r"`max_clusters` must be an integer >= 1 or None"):
            check_max_clusters(bad)
    check_max_clusters(None)
    check_max_clusters(np.int64(3))
