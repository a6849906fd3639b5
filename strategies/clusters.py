"""Flat clusters of the assets from a hierarchical tree, as skfolio's ``HierarchicalClustering``.

The tree is the linkage of the correlation distance ``sqrt(clip((1 - corr) / 2, 0, 1))``
(:func:`strategies.hrp.correlation_distance`, :func:`strategies.hrp.linkage_from_distance`). It is
cut into flat clusters in two steps, each a numba kernel with a plain twin in the tests:

1. :func:`gap_n_clusters_nb` -- how many clusters, by the two-order difference of the gap statistic
   (Yue, Wang & Wei 2009) as skfolio computes it when ``max_clusters=None``: for ``c = 1 ..
   min(n, max(8, round(sqrt(n))))`` clusters (the tree cut by scipy's ``cut_tree``) the dispersion
   ``W_c`` is the sum over the clusters of two or more assets of their mean pairwise distance; the
   answer is ``argmax_k W_{k+2} + W_k - 2 W_{k+1}`` plus 2 (2 for two assets);
2. :func:`maxclust_labels_nb` -- the labels of scipy ``fcluster(Z, t, criterion="maxclust")``
   minus 1: the tree cut at the lowest merge height that leaves at most ``t`` clusters (fewer when
   merges tie at that height), numbered in scipy's depth-first order.

Only the linkages whose merge heights never decrease up the tree are offered
(:data:`MONOTONE_LINKAGES`): centroid and median linkages can produce inversions, where a cut by
the number of clusters is not defined.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from strategies.base import check_choice
from strategies.hrp import correlation_distance, linkage_from_distance
from strategies.limits import pairwise_sum_nb

#: Linkage methods whose merge heights increase up the tree (no inversions).
MONOTONE_LINKAGES: tuple[str, ...] = ("single", "complete", "average", "weighted", "ward")


@nb.njit(cache=True)
def merge_order_nb(Z: np.ndarray) -> np.ndarray:
    """The rows of ``Z`` in the order scipy's ``cut_tree`` applies them: by merge height, ties
    broken as its sorted insertion does (of equal heights, the node met later in a breadth-first walk
    from the root, right child first, comes first)."""
    m = Z.shape[0]
    n = m + 1
    met = np.empty(m, dtype=np.int64)  # position of each row in the breadth-first walk
    queue = np.empty(m, dtype=np.int64)
    queue[0] = m - 1
    head, tail = 0, 1
    while head < tail:
        row = queue[head]
        met[row] = head
        head += 1
        for child in (int(Z[row, 1]), int(Z[row, 0])):
            if child >= n:
                queue[tail] = child - n
                tail += 1
    order = np.arange(m)
    for i in range(1, m):  # insertion sort: the rows are (nearly) sorted by height already
        row = order[i]
        j = i
        while j > 0 and _before(Z, met, row, order[j - 1]):
            order[j] = order[j - 1]
            j -= 1
        order[j] = row
    return order


@nb.njit(cache=True)
def _before(Z: np.ndarray, met: np.ndarray, a: int, b: int) -> bool:
    return Z[a, 2] < Z[b, 2] or (Z[a, 2] == Z[b, 2] and met[a] > met[b])


@nb.njit(cache=True)
def dispersion_nb(dist: np.ndarray, roots: np.ndarray) -> float:
    """Sum over the clusters of two or more assets of their mean pairwise distance; ``roots[i]``
    identifies the cluster of asset ``i`` (any integers in ``[0, 2 n - 1)``).

    Summed as skfolio sums them (NumPy's pairwise sums: each cluster's distances ``i < j`` in
    order, the clusters in the order of their first asset), so exact ties between gaps resolve
    the same way."""
    n = dist.shape[0]
    seen = np.full(2 * n - 1, -1)
    firsts = np.empty(n, dtype=np.int64)
    n_clusters = 0
    for i in range(n):
        if seen[roots[i]] < 0:
            seen[roots[i]] = n_clusters
            firsts[n_clusters] = roots[i]
            n_clusters += 1
    densities = np.empty(n_clusters)
    members = np.empty(n, dtype=np.int64)
    pairs = np.empty(n * (n - 1) // 2)
    n_dense = 0
    for c in range(n_clusters):
        size = 0
        for i in range(n):
            if roots[i] == firsts[c]:
                members[size] = i
                size += 1
        if size < 2:
            continue
        k = 0
        for a in range(size):
            for b in range(a + 1, size):
                pairs[k] = dist[members[a], members[b]]
                k += 1
        densities[n_dense] = pairwise_sum_nb(pairs[:k]) / k
        n_dense += 1
    return pairwise_sum_nb(densities[:n_dense])


@nb.njit(cache=True)
def gap_n_clusters_nb(dist: np.ndarray, Z: np.ndarray) -> int:
    """Number of clusters by the two-order difference of the gap statistic (module docstring)."""
    n = dist.shape[0]
    if n <= 2:
        return n
    max_c = min(n, max(8, int(np.floor(np.sqrt(n) + 0.5))))
    order = merge_order_nb(Z)
    parent = np.arange(2 * n - 1)
    roots = np.empty(n, dtype=np.int64)
    disp = np.empty(max_c)  # disp[c - 1]: dispersion with c clusters
    applied = 0
    for c in range(max_c, 0, -1):
        while applied < n - c:  # c clusters remain after n - c merges
            row = order[applied]
            parent[int(Z[row, 0])] = n + row
            parent[int(Z[row, 1])] = n + row
            applied += 1
        for i in range(n):
            node = i
            while parent[node] != node:
                node = parent[node]
            roots[i] = node
        disp[c - 1] = dispersion_nb(dist, roots)
    best, best_gap = 0, -np.inf
    for k in range(max_c - 2):
        gap = disp[k + 2] + disp[k] - 2.0 * disp[k + 1]
        if gap > best_gap:
            best, best_gap = k, gap
    return best + 2


@nb.njit(cache=True)
def subtree_heights_nb(Z: np.ndarray) -> np.ndarray:
    """Largest merge height within each row's subtree, shape ``(n_assets - 1,)``."""
    n = Z.shape[0] + 1
    out = np.empty(n - 1)
    for row in range(n - 1):
        h = Z[row, 2]
        for child in (int(Z[row, 0]), int(Z[row, 1])):
            if child >= n and out[child - n] > h:
                h = out[child - n]
        out[row] = h
    return out


@nb.njit(cache=True)
def maxclust_labels_nb(Z: np.ndarray, max_clusters: int) -> np.ndarray:
    """``fcluster(Z, max_clusters, "maxclust") - 1``, shape ``(n_assets,)`` (module docstring)."""
    n = Z.shape[0] + 1
    if max_clusters >= n:
        return np.arange(n)
    heights = subtree_heights_nb(Z)
    low, high = -1, n - 1  # scipy's bisection over the rows for the cut height
    while high - low > 1:
        mid = (low + high) >> 1
        inside = 0
        for row in range(n - 1):
            if heights[row] <= heights[mid]:
                inside += 1
        if n - inside > max_clusters:
            low = mid
        else:
            high = mid
    return _dfs_labels_nb(Z, heights, heights[high])


@nb.njit(cache=True)
def _dfs_labels_nb(Z: np.ndarray, heights: np.ndarray, cutoff: float) -> np.ndarray:
    """Number the subtrees at or below ``cutoff`` depth first, left before right; a subtree takes
    its number when first reached, a single asset when both its parent's subtrees are done."""
    n = Z.shape[0] + 1
    labels = np.empty(n, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    phase = np.zeros(n - 1, dtype=np.int64)  # 0 new, 1 left done, 2 right done
    stack[0] = n - 2
    top, count, leader = 1, 0, -1
    while top > 0:
        row = stack[top - 1]
        left, right = int(Z[row, 0]), int(Z[row, 1])
        if phase[row] == 0:
            if leader == -1 and heights[row] <= cutoff:
                leader = row
                count += 1
            phase[row] = 1
            if left >= n:
                stack[top] = left - n
                top += 1
                continue
        if phase[row] == 1:
            phase[row] = 2
            if right >= n:
                stack[top] = right - n
                top += 1
                continue
        for child in (left, right):
            if child < n:
                if leader == -1:
                    count += 1
                labels[child] = count - 1
        if leader == row:
            leader = -1
        top -= 1
    return labels


class Clusters(NamedTuple):
    """Flat clusters of ``n_assets`` assets.

    Attributes
    ----------
    labels : ndarray of int64, shape (n_assets,)
        Cluster of each asset, ``0 .. n_clusters - 1``.
    n_clusters : int
    linkage : ndarray of shape (n_assets - 1, 4)
        scipy linkage matrix of the tree.
    distance : ndarray of shape (n_assets, n_assets)
        Correlation distance the tree was built on.
    """

    labels: np.ndarray
    n_clusters: int
    linkage: np.ndarray
    distance: np.ndarray


def hierarchical_clusters(
    cov: np.ndarray, linkage: str = "ward", max_clusters: int | None = None
) -> Clusters:
    """Cluster the assets of a covariance matrix as skfolio's ``HierarchicalClustering``.

    Parameters
    ----------
    cov : ndarray of shape (n_assets, n_assets)
        Covariance with positive variances (the correlation distance is derived from it).
    linkage : {"single", "complete", "average", "weighted", "ward"}
    max_clusters : int, optional
        At most this many clusters; None picks the number by the gap statistic.

    Examples
    --------
    >>> cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> hierarchical_clusters(cov).labels
    array([0, 0, 1])
    """
    check_choice("linkage", linkage, MONOTONE_LINKAGES)
    cov = np.ascontiguousarray(cov, dtype=np.float64)
    n = cov.shape[0]
    dist = correlation_distance(cov)
    if n == 1:
        return Clusters(np.zeros(1, dtype=np.int64), 1, np.zeros((0, 4)), dist)
    Z = np.ascontiguousarray(linkage_from_distance(dist, linkage))  # type: ignore[arg-type]
    wanted = gap_n_clusters_nb(dist, Z) if max_clusters is None else int(max_clusters)
    labels = maxclust_labels_nb(Z, wanted)
    return Clusters(labels, int(labels.max()) + 1, Z, dist)


def check_max_clusters(value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is None or an integer >= 1."""
    integer = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if value is None or (integer and value >= 1):  # type: ignore[operator]
        return
    raise ValueError(
        f"`max_clusters` must be an integer >= 1 or None (the gap statistic); got {value!r}"
    )
