"""Hierarchical Risk Parity (Lopez de Prado, 2016), identical to PyPortfolioOpt ``HRPOpt`` and skfolio
``HierarchicalRiskParity`` configured the same way (Pearson distance ``sqrt((1 - corr) / 2)``, the
same linkage, no optimal leaf ordering, variance as the risk measure).

Steps, each a small helper with its own tests:

1. :func:`correlation_distance` -- ``sqrt(clip((1 - corr) / 2, 0, 1))`` of shape ``(n_assets, n_assets)``;
2. :func:`linkage_matrix` -- scipy-format linkage ``(n_assets - 1, 4)``; single linkage runs in numba
   (Prim's minimum spanning tree, exactly as scipy's ``mst_single_linkage``, including its tie
   handling); complete, average, weighted and ward run scipy's nearest-neighbour chain in numba
   (the same updates in the same order: bit for bit equal); centroid and median call
   ``scipy.cluster.hierarchy.linkage``;
3. :func:`leaf_order` -- the quasi-diagonal order (scipy ``to_tree(Z).pre_order()``);
4. :func:`recursive_bisection` -- split the ordered list in halves, weight each half by the inverse of
   its inverse-variance-portfolio variance; weight bounds are applied to each split factor as in
   skfolio.

The classic algorithm depends on the asset order through one tie-break: when two single assets merge,
scipy puts the lower column index on the left, and the split "in halves" can fall between them. The
weights are therefore permutation-equivariant only for permutations that keep the order inside such
pairs; docs/allocators.md shows an example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numba as nb
import numpy as np

from strategies.base import Allocation, BaseAllocator, Constraints, check_choice, check_positive
from strategies.errors import InputError
from strategies.estimators import (
    COVARIANCE_METHODS,
    ILL_CONDITIONED_RATIO,
    CovarianceMethod,
    covariance,
)
from strategies.portfolio_qp import feasible_weights

LinkageMethod = Literal["single", "complete", "average", "weighted", "centroid", "median", "ward"]
LINKAGE_METHODS: tuple[str, ...] = (
    "single",
    "complete",
    "average",
    "weighted",
    "centroid",
    "median",
    "ward",
)


@nb.njit(cache=True)
def correlation_distance_nb(cov: np.ndarray) -> np.ndarray:
    n = cov.shape[0]
    dist = np.zeros((n, n))
    for i in range(n):
        for j in range(i):
            corr = cov[i, j] / (np.sqrt(cov[i, i]) * np.sqrt(cov[j, j]))
            v = min(max((1.0 - corr) / 2.0, 0.0), 1.0)
            dist[i, j] = np.sqrt(v)
            dist[j, i] = dist[i, j]
    return dist


@nb.njit(cache=True)
def single_linkage_nb(dist: np.ndarray) -> np.ndarray:
    """scipy ``linkage(squareform(dist), "single")``: Prim's MST from node 0, stable sort, relabel."""
    n = dist.shape[0]
    Z = np.zeros((n - 1, 4))
    merged = np.zeros(n, dtype=np.bool_)
    D = np.full(n, np.inf)
    x = 0
    y = 0
    for k in range(n - 1):
        current = np.inf
        merged[x] = True
        for i in range(n):
            if merged[i]:
                continue
            if D[i] > dist[x, i]:
                D[i] = dist[x, i]
            if D[i] < current:
                y = i
                current = D[i]
        Z[k, 0] = x
        Z[k, 1] = y
        Z[k, 2] = current
        x = y
    _sort_and_label_nb(Z, n)
    return Z


_LINKAGE_CODES = {"complete": 1, "average": 2, "weighted": 3, "ward": 4}


@nb.njit(cache=True)
def nn_chain_linkage_nb(dist: np.ndarray, method: int) -> np.ndarray:
    """scipy ``linkage(squareform(dist), m)`` for ``m`` complete (1), average (2), weighted (3)
    or ward (4): its nearest-neighbour chain, the same distance updates in the same order (so
    the same ties and round-off), stable sort, relabel."""
    n = dist.shape[0]
    D = dist.copy()
    size = np.ones(n, dtype=np.int64)
    chain = np.empty(n, dtype=np.int64)
    Z = np.zeros((n - 1, 4))
    length, x, y = 0, 0, 0
    for k in range(n - 1):
        if length == 0:
            length = 1
            for i in range(n):
                if size[i] > 0:
                    chain[0] = i
                    break
        while True:  # follow nearest neighbours until two are each other's
            x = chain[length - 1]
            current = np.inf
            if length > 1:  # prefer the previous link: no cycles on ties
                y = chain[length - 2]
                current = D[x, y]
            for i in range(n):
                if size[i] > 0 and i != x and D[x, i] < current:
                    current = D[x, i]
                    y = i
            if length > 1 and y == chain[length - 2]:
                break
            chain[length] = y
            length += 1
        length -= 2
        x, y = min(x, y), max(x, y)
        nx, ny = size[x], size[y]
        Z[k, 0], Z[k, 1], Z[k, 2] = x, y, current
        size[x] = 0
        size[y] = nx + ny
        for i in range(n):
            if size[i] == 0 or i == y:
                continue
            D[i, y] = _merged_distance(D[i, x], D[i, y], current, nx, ny, size[i], method)
            D[y, i] = D[i, y]
    _sort_and_label_nb(Z, n)
    return Z


@nb.njit(cache=True)
def _merged_distance(d_xi, d_yi, d_xy, nx, ny, ni, method):
    """Lance-Williams update: distance from cluster i to the merge of x and y (scipy's formulas)."""
    if method == 1:
        return max(d_xi, d_yi)
    if method == 2:
        return (nx * d_xi + ny * d_yi) / (nx + ny)
    if method == 3:
        return 0.5 * (d_xi + d_yi)
    t = 1.0 / (nx + ny + ni)
    return np.sqrt((ni + nx) * t * d_xi * d_xi + (ni + ny) * t * d_yi * d_yi - ni * t * d_xy * d_xy)


@nb.njit(cache=True)
def _sort_and_label_nb(Z: np.ndarray, n: int) -> None:
    """Stable sort of the merges by distance (an insertion sort: scipy sorts stably; n - 1 rows is
    small, and this avoids compiling numba's merge sort), then scipy's labels."""
    for i in range(1, n - 1):
        a, b, d = Z[i, 0], Z[i, 1], Z[i, 2]
        j = i
        while j > 0 and Z[j - 1, 2] > d:
            Z[j, 0], Z[j, 1], Z[j, 2] = Z[j - 1, 0], Z[j - 1, 1], Z[j - 1, 2]
            j -= 1
        Z[j, 0], Z[j, 1], Z[j, 2] = a, b, d
    _relabel_nb(Z, n)


@nb.njit(cache=True)
def _relabel_nb(Z: np.ndarray, n: int) -> None:
    """scipy's ``label``: union-find over the sorted merges, smaller cluster id first."""
    parent = np.arange(2 * n - 1)
    size = np.ones(2 * n - 1, dtype=np.int64)
    next_label = n
    for i in range(n - 1):
        xr = _find(parent, int(Z[i, 0]))
        yr = _find(parent, int(Z[i, 1]))
        Z[i, 0] = min(xr, yr)
        Z[i, 1] = max(xr, yr)
        parent[xr] = next_label
        parent[yr] = next_label
        size[next_label] = size[xr] + size[yr]
        Z[i, 3] = size[next_label]
        next_label += 1


@nb.njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@nb.njit(cache=True)
def leaf_order_nb(Z: np.ndarray) -> np.ndarray:
    """Leaves in pre-order (left child first), as scipy ``to_tree(Z).pre_order()``."""
    n = Z.shape[0] + 1
    order = np.empty(n, dtype=np.int64)
    stack = np.empty(2 * n, dtype=np.int64)
    stack[0] = 2 * n - 2
    top = 1
    k = 0
    while top > 0:
        top -= 1
        node = stack[top]
        if node < n:
            order[k] = node
            k += 1
        else:
            stack[top] = int(Z[node - n, 1])
            stack[top + 1] = int(Z[node - n, 0])
            top += 2
    return order


@nb.njit(cache=True)
def _cluster_variance(cov: np.ndarray, items: np.ndarray) -> float:
    m = items.shape[0]
    ivp = np.empty(m)
    total = 0.0
    for a in range(m):
        ivp[a] = 1.0 / cov[items[a], items[a]]
        total += ivp[a]
    var = 0.0
    for a in range(m):
        row = 0.0
        for b in range(m):
            row += cov[items[a], items[b]] * ivp[b]
        var += ivp[a] * row
    return var / (total * total)


@nb.njit(cache=True)
def recursive_bisection_nb(
    cov: np.ndarray, order: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """HRP weights for a leaf order; bounds clamp each split factor as skfolio does."""
    n = order.shape[0]
    w = np.ones(n)
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    starts[0] = 0
    ends[0] = n
    top = 1
    while top > 0:
        top -= 1
        s = starts[top]
        e = ends[top]
        if e - s < 2:
            continue
        mid = s + (e - s) // 2
        left = order[s:mid]
        right = order[mid:e]
        v_left = _cluster_variance(cov, left)
        v_right = _cluster_variance(cov, right)
        alpha = 1.0 - v_left / (v_left + v_right)
        parent = w[left[0]]
        if parent > 0.0:
            lo_l, hi_l, lo_r, hi_r = 0.0, 0.0, 0.0, 0.0
            for a in left:
                lo_l += lo[a]
                hi_l += hi[a]
            for a in right:
                lo_r += lo[a]
                hi_r += hi[a]
            alpha = min(hi_l / parent, max(lo_l / parent, alpha))
            alpha = 1.0 - min(hi_r / parent, max(lo_r / parent, 1.0 - alpha))
        for a in left:
            w[a] *= alpha
        for a in right:
            w[a] *= 1.0 - alpha
        starts[top] = s
        ends[top] = mid
        starts[top + 1] = mid
        ends[top + 1] = e
        top += 2
    return w


@nb.njit(cache=True)
def hrp_single_nb(cov, lo, hi):
    """The whole single-linkage HRP in one call: ``(weights, linkage, order)``."""
    Z = single_linkage_nb(correlation_distance_nb(cov))
    order = leaf_order_nb(Z)
    return recursive_bisection_nb(cov, order, lo, hi), Z, order


def correlation_distance(cov: np.ndarray) -> np.ndarray:
    """Distance matrix ``sqrt(clip((1 - corr) / 2, 0, 1))`` of shape ``(n_assets, n_assets)``."""
    return correlation_distance_nb(np.ascontiguousarray(cov, dtype=np.float64))


def linkage_matrix(cov: np.ndarray, method: LinkageMethod = "single") -> np.ndarray:
    """scipy-format linkage matrix of shape ``(n_assets - 1, 4)`` on the correlation distance.

    Examples
    --------
    >>> cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> linkage_matrix(cov)[:, :2]
    array([[0., 1.],
           [2., 3.]])
    """
    check_choice("linkage", method, LINKAGE_METHODS)
    return linkage_from_distance(correlation_distance(cov), method)


def linkage_from_distance(dist: np.ndarray, method: LinkageMethod = "single") -> np.ndarray:
    """scipy-format linkage matrix of shape ``(n_assets - 1, 4)`` for a distance matrix of shape
    ``(n_assets, n_assets)``, equal to ``scipy.cluster.hierarchy.linkage`` (``optimal_ordering=
    False``): single, complete, average, weighted and ward in numba (scipy's algorithms), centroid
    and median by scipy.

    Raises
    ------
    InputError
        When ``dist`` is not a square, symmetric matrix of finite distances (the numba paths would
        return a malformed tree).
    """
    dist = np.ascontiguousarray(dist, dtype=np.float64)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1] or not np.isfinite(dist).all():
        raise InputError(
            f"`dist` must be a square matrix of finite distances; got shape {dist.shape}"
            + ("" if np.isfinite(dist).all() else " with non-finite entries")
        )
    if not np.array_equal(dist, dist.T):
        raise InputError("`dist` must be symmetric (dist[i, j] == dist[j, i])")
    if method == "single":
        return single_linkage_nb(dist)
    if method in _LINKAGE_CODES:
        return nn_chain_linkage_nb(dist, _LINKAGE_CODES[method])
    import scipy.cluster.hierarchy as sch
    import scipy.spatial.distance as ssd

    return sch.linkage(ssd.squareform(dist, checks=False), method)


def leaf_order(Z: np.ndarray) -> np.ndarray:
    """Quasi-diagonal order of the assets (indices) from a linkage matrix."""
    return leaf_order_nb(np.ascontiguousarray(Z, dtype=np.float64))


def recursive_bisection(
    cov: np.ndarray, order: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None
) -> np.ndarray:
    """HRP weights of shape ``(n_assets,)`` for a covariance and a leaf order (bounds optional)."""
    n = cov.shape[0]
    lo = np.zeros(n) if lo is None else np.asarray(lo, dtype=np.float64)
    hi = np.ones(n) if hi is None else np.asarray(hi, dtype=np.float64)
    return recursive_bisection_nb(
        np.ascontiguousarray(cov, dtype=np.float64), np.asarray(order, dtype=np.int64), lo, hi
    )


def hrp_weights(
    cov: np.ndarray,
    linkage: LinkageMethod = "single",
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HRP on a covariance matrix.

    Parameters
    ----------
    cov : ndarray of shape (n_assets, n_assets)
        Positive variances (see :class:`HRPStrategy` for the zero-variance rule).
    linkage : str
        A scipy linkage method.
    lo, hi : ndarray of shape (n_assets,), optional
        Weight bounds (default 0 and 1).

    Returns
    -------
    weights : ndarray of shape (n_assets,)
    Z : ndarray of shape (n_assets - 1, 4)
        scipy linkage matrix (for ``scipy.cluster.hierarchy.dendrogram``).
    order : ndarray of shape (n_assets,)
        Quasi-diagonal order of the assets.
    """
    cov = np.ascontiguousarray(cov, dtype=np.float64)
    n = cov.shape[0]
    lo = np.zeros(n) if lo is None else np.asarray(lo, dtype=np.float64)
    hi = np.ones(n) if hi is None else np.asarray(hi, dtype=np.float64)
    if linkage == "single":
        return hrp_single_nb(cov, lo, hi)
    Z = linkage_matrix(cov, linkage)
    order = leaf_order(Z)
    return recursive_bisection_nb(cov, order, lo, hi), Z, order


def repair_zero_variance(cov: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Give zero-variance assets the smallest positive variance of the window (and no correlation).

    A constant series (a stablecoin, a halted market) has no correlation and would take an infinite
    inverse-variance weight; it is weighted like the least volatile risky asset instead, the rule
    :class:`strategies.InverseVolatility` uses. Variances below
    :data:`strategies.estimators.ILL_CONDITIONED_RATIO` times the largest (a constant price with
    round-off) count as zero. Returns ``cov`` unchanged (no notes) otherwise.
    """
    var = np.diag(cov)
    zero = var <= ILL_CONDITIONED_RATIO * var.max()
    if not zero.any() or zero.all():
        return cov, ()
    repaired = cov.copy()
    repaired[zero, :] = 0.0
    repaired[:, zero] = 0.0
    idx = np.flatnonzero(zero)
    repaired[idx, idx] = var[~zero].min()
    return repaired, (
        f"zero-variance asset(s) at column(s) {idx.tolist()} given the smallest positive "
        "variance and no correlation",
    )


@dataclass
class HRPStrategy(BaseAllocator):
    """Hierarchical Risk Parity.

    Parameters
    ----------
    risk_free_rate : float
        Annual rate; HRP weights do not depend on it (kept for a uniform strategy interface).
    lookback_days : float
        Length of the estimation window used by the walk-forward engine.
    linkage : {"single", "complete", "average", "weighted", "centroid", "median", "ward"}
    covariance : {"sample", "ewma", "ledoit_wolf", "oas", "denoised", "detoned"}
        Estimator for the covariance the correlations are derived from.
    periods_per_year : float
        Bars per year (annualises the covariance stored in ``Allocation.extras``).
    span : float
        EWMA span in bars for ``covariance="ewma"``.

    Notes
    -----
    ``Allocation.extras`` holds ``linkage`` (scipy linkage matrix), ``order`` (leaf order) and
    ``covariance`` (annualised). Group and ``A @ w <= b`` constraints are met by the Euclidean
    projection of the HRP weights onto the feasible set, recorded in the notes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> w = HRPStrategy().allocate(rng.normal(0, 0.02, size=(90, 4)))
    >>> round(float(w.sum()), 12)
    1.0
    """

    risk_free_rate: float = 0.02
    lookback_days: float = 30
    linkage: LinkageMethod = "single"
    covariance: CovarianceMethod = "sample"
    periods_per_year: float = 365.0
    span: float = 60.0
    name: ClassVar[str] = "hrp"

    def __post_init__(self) -> None:
        check_choice("linkage", self.linkage, LINKAGE_METHODS)
        check_choice("covariance", self.covariance, COVARIANCE_METHODS)
        check_positive(
            periods_per_year=self.periods_per_year, lookback_days=self.lookback_days, span=self.span
        )

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        cov = covariance(returns, self.covariance, self.periods_per_year, self.span)
        return hrp_allocation(cov, lo, hi, constraints, self.linkage)


def hrp_allocation(
    cov: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    constraints: Constraints,
    linkage: LinkageMethod = "single",
) -> Allocation:
    """HRP with the documented repair rules, as an :class:`Allocation` (also the MPT fallback)."""
    n = cov.shape[0]
    if np.all(np.diag(cov) <= 0.0):
        from strategies.base import project_to_bounds

        return Allocation(
            project_to_bounds(np.full(n, 1.0 / n), lo, hi),
            "equal_weight",
            ("all assets have zero variance: equal weight",),
        )
    if n == 1:
        return Allocation(
            np.ones(1),
            "hrp",
            (),
            {"linkage": np.zeros((0, 4)), "order": np.zeros(1, dtype=np.int64), "covariance": cov},
        )
    used, notes = repair_zero_variance(
        cov / np.diag(cov).max()
    )  # HRP is scale-free; avoid underflow
    weights, Z, order = hrp_weights(used, linkage, lo, hi)
    if constraints.has_linear:
        G, h = constraints.linear(n)
        feasible, projected = feasible_weights(weights, lo, hi, G, h)
        if projected:
            moved = float(np.abs(feasible - weights).sum()) / 2
            notes = (
                *notes,
                f"weights projected onto the group / linear constraints (turnover {moved:.3g})",
            )
            weights = feasible
    return Allocation(weights, "hrp", notes, {"linkage": Z, "order": order, "covariance": cov})
