"""Hierarchical Equal Risk Contribution (Raffinot 2018), identical to skfolio's
``HierarchicalEqualRiskContribution`` configured the same way (the same covariance for the risks and
the correlation distance, the same linkage, the number of clusters by skfolio's default rule).

Steps, each a small helper with its own tests:

1. :func:`strategies.clusters.hierarchical_clusters` -- the tree of the correlation distance and
   its flat clusters (the gap statistic picks how many);
2. :func:`herc_weights_nb` -- inside each cluster, weights proportional to ``1 / risk`` of each
   asset; each cluster's risk is that of its inverse-risk portfolio; from the root of the tree down
   to the clusters, each split gives its left side ``1 - risk_left / (risk_left + risk_right)``,
   where a side's risk is the sum of the risks of its clusters;
3. :func:`limit_weights` -- the bounds as skfolio applies them: weights already inside them are
   kept, others move to the bounded portfolio of least relative change ``sum((w / w0 - 1)^2)``
   (:func:`box_projection_nb`, exact); group and ``A @ w <= b`` limits by the Euclidean projection
   :func:`strategies.portfolio_qp.feasible_weights`, as HRP does.

The risk measure is the variance (``"variance"``) or the volatility (``"standard_deviation"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numba as nb
import numpy as np

from strategies.base import Allocation, BaseAllocator, Constraints, check_choice, check_positive
from strategies.clusters import MONOTONE_LINKAGES, check_max_clusters, hierarchical_clusters
from strategies.estimators import COVARIANCE_METHODS, CovarianceMethod, covariance
from strategies.hrp import repair_zero_variance
from strategies.portfolio_qp import feasible_weights

RiskMeasure = Literal["variance", "standard_deviation"]
RISK_MEASURES: tuple[str, ...] = ("variance", "standard_deviation")
HERCLinkage = Literal["single", "complete", "average", "weighted", "ward"]


@nb.njit(cache=True)
def herc_weights_nb(
    cov: np.ndarray, Z: np.ndarray, labels: np.ndarray, volatility: bool
) -> np.ndarray:
    """HERC weights of shape ``(n_assets,)`` for a covariance, its linkage and cluster labels.

    ``volatility`` measures risk by the standard deviation instead of the variance.
    """
    n = cov.shape[0]
    k = labels.max() + 1
    inner = np.empty(n)
    total = np.zeros(k)
    for i in range(n):
        risk = np.sqrt(cov[i, i]) if volatility else cov[i, i]
        inner[i] = 1.0 / risk
        total[labels[i]] += inner[i]
    for i in range(n):
        inner[i] /= total[labels[i]]
    cluster_risk = np.zeros(k)
    for i in range(n):
        for j in range(n):
            if labels[i] == labels[j]:
                cluster_risk[labels[i]] += inner[i] * cov[i, j] * inner[j]
    if volatility:
        cluster_risk = np.sqrt(cluster_risk)
    cluster_weight = split_clusters_nb(Z, labels, cluster_risk)
    out = np.empty(n)
    for i in range(n):
        out[i] = inner[i] * cluster_weight[labels[i]]
    return out


@nb.njit(cache=True)
def split_clusters_nb(Z: np.ndarray, labels: np.ndarray, cluster_risk: np.ndarray) -> np.ndarray:
    """Weight of each cluster, shape ``(n_clusters,)``: the root's unit weight split top-down by
    ``1 - risk_left / (risk_left + risk_right)`` at every node above the clusters."""
    n = labels.shape[0]
    m = 2 * n - 1
    label = np.empty(m, dtype=np.int64)  # a node's cluster when all its leaves share one, else -1
    risk = np.empty(m)  # sum of the risks of the clusters below a node
    label[:n] = labels
    for i in range(n):
        risk[i] = cluster_risk[labels[i]]
    for row in range(n - 1):
        a, b = int(Z[row, 0]), int(Z[row, 1])
        node = n + row
        if label[a] >= 0 and label[a] == label[b]:
            label[node] = label[a]
            risk[node] = cluster_risk[label[a]]
        else:
            label[node] = -1
            risk[node] = risk[a] + risk[b]
    weight = np.ones(m)
    out = np.ones(cluster_risk.shape[0])
    for row in range(n - 2, -1, -1):  # parents before children
        node = n + row
        if label[node] >= 0:
            continue
        a, b = int(Z[row, 0]), int(Z[row, 1])
        alpha = 1.0 - risk[a] / (risk[a] + risk[b])
        weight[a] = weight[node] * alpha
        weight[b] = weight[node] * (1.0 - alpha)
        for child in (a, b):
            if label[child] >= 0:
                out[label[child]] = weight[child]
    return out


@nb.njit(cache=True)
def box_projection_nb(
    target: np.ndarray, scale: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """``argmin sum((w - target)^2 / scale)`` subject to ``sum(w) = 1``, ``lo <= w <= hi``.

    The solution is ``clip(target + lam * scale, lo, hi)`` with ``lam`` the root of a
    non-decreasing piecewise-linear sum: located among the sorted breakpoints, then solved on its
    segment. ``scale = target ** 2`` is skfolio's least relative deviation, ``scale = 1`` the
    Euclidean projection. Assumes ``sum(lo) <= 1 <= sum(hi)`` and ``scale >= 0``.
    """
    n = target.shape[0]
    points = np.empty(2 * n)
    k = 0
    for i in range(n):
        if scale[i] > 0.0:
            points[k] = (lo[i] - target[i]) / scale[i]
            points[k + 1] = (hi[i] - target[i]) / scale[i]
            k += 2
    points = np.sort(points[:k])
    if k == 0:  # nothing can move
        lam = 0.0
    elif _clipped_sum(target, scale, lo, hi, points[0]) >= 1.0:  # every weight at its floor
        lam = points[0]
    elif _clipped_sum(target, scale, lo, hi, points[k - 1]) <= 1.0:
        lam = points[k - 1]
    else:
        low, high = 0, k - 1  # sum(points[low]) < 1 < sum(points[high])
        while high - low > 1:
            mid = (low + high) >> 1
            if _clipped_sum(target, scale, lo, hi, points[mid]) < 1.0:
                low = mid
            else:
                high = mid
        inside = 0.5 * (points[low] + points[high])
        fixed, free_target, free_scale = 0.0, 0.0, 0.0
        for i in range(n):
            x = target[i] + inside * scale[i]
            if scale[i] > 0.0 and lo[i] < x < hi[i]:
                free_target += target[i]
                free_scale += scale[i]
            else:
                fixed += min(max(x, lo[i]), hi[i])
        lam = (1.0 - fixed - free_target) / free_scale
    out = np.empty(n)
    for i in range(n):
        out[i] = min(max(target[i] + lam * scale[i], lo[i]), hi[i])
    return out


@nb.njit(cache=True)
def _clipped_sum(
    target: np.ndarray, scale: np.ndarray, lo: np.ndarray, hi: np.ndarray, lam: float
) -> float:
    total = 0.0
    for i in range(target.shape[0]):
        total += min(max(target[i] + lam * scale[i], lo[i]), hi[i])
    return total


def limit_weights(
    weights: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    constraints: Constraints,
    relative: bool = True,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``weights`` (summing to 1) within the bounds and the group / ``A @ w <= b`` limits.

    Weights inside the bounds are kept; others move to the nearest bounded portfolio, nearest in
    relative terms (``sum((w / w0 - 1)^2)``, skfolio's rule for its hierarchical allocators) or,
    with ``relative=False`` or a zero weight, in Euclidean distance. Group and linear limits then
    take the Euclidean projection of :func:`strategies.portfolio_qp.feasible_weights` (noted).

    Examples
    --------
    >>> w, notes = limit_weights(np.array([0.7, 0.2, 0.1]), np.zeros(3), np.full(3, 0.5), Constraints())
    >>> w.round(6), notes
    (array([0.5 , 0.36, 0.14]), ())
    """
    weights = np.asarray(weights, dtype=np.float64)
    if not (np.all(weights >= lo) and np.all(weights <= hi)):
        relative = relative and bool(np.all(weights > 0))
        scale = weights * weights if relative else np.ones_like(weights)
        weights = box_projection_nb(weights, scale, lo, hi)
    if not constraints.has_linear:
        return weights, ()
    G, h = constraints.linear(len(weights))
    feasible, projected = feasible_weights(weights, lo, hi, G, h)
    if not projected:
        return weights, ()
    moved = float(np.abs(feasible - weights).sum()) / 2
    return feasible, (
        f"weights projected onto the group / linear constraints (turnover {moved:.3g})",
    )


@dataclass
class HERCStrategy(BaseAllocator):
    """Hierarchical Equal Risk Contribution.

    Parameters
    ----------
    lookback_days : float
        Length of the estimation window used by the walk-forward engine.
    linkage : {"ward", "single", "complete", "average", "weighted"}
        How the tree of the correlation distance is built (skfolio's default is Ward).
    covariance : {"sample", "ewma", "ledoit_wolf", "oas", "denoised", "detoned"}
        Estimator of the covariance the risks and the correlation distance come from.
    risk_measure : {"variance", "standard_deviation"}
    max_clusters : int, optional
        At most this many clusters; None (default) picks the number by the gap statistic.
    periods_per_year : float
        Bars per year (annualises the covariance stored in ``Allocation.extras``).
    span : float
        EWMA span in bars for ``covariance="ewma"``.
    risk_free_rate : float
        Annual rate; HERC weights do not depend on it (kept for a uniform strategy interface).

    Notes
    -----
    ``Allocation.extras`` holds ``linkage``, ``labels`` (cluster of each asset) and ``covariance``
    (annualised). A zero-variance asset is given the smallest positive variance of the window and no
    correlation (:func:`strategies.hrp.repair_zero_variance`, noted).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> w = HERCStrategy().allocate(rng.normal(0, 0.02, size=(90, 4)), {"max_weight": 0.4})
    >>> round(float(w.sum()), 12), bool(w.max() <= 0.4)
    (1.0, True)
    """

    lookback_days: float = 30
    linkage: HERCLinkage = "ward"
    covariance: CovarianceMethod = "sample"
    risk_measure: RiskMeasure = "variance"
    max_clusters: int | None = None
    periods_per_year: float = 365.0
    span: float = 60.0
    risk_free_rate: float = 0.02
    name: ClassVar[str] = "herc"

    def __post_init__(self) -> None:
        check_choice("linkage", self.linkage, MONOTONE_LINKAGES)
        check_choice("covariance", self.covariance, COVARIANCE_METHODS)
        check_choice("risk_measure", self.risk_measure, RISK_MEASURES)
        check_max_clusters(self.max_clusters)
        check_positive(
            periods_per_year=self.periods_per_year, lookback_days=self.lookback_days, span=self.span
        )

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        cov = covariance(returns, self.covariance, self.periods_per_year, self.span)
        return herc_allocation(
            cov, lo, hi, constraints, self.linkage, self.risk_measure, self.max_clusters
        )


def herc_allocation(
    cov: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    constraints: Constraints,
    linkage: str = "ward",
    risk_measure: str = "variance",
    max_clusters: int | None = None,
) -> Allocation:
    """HERC on an annualised covariance with the repair rules and the limits, as an
    :class:`Allocation` (``method`` ``"herc"``, or ``"equal_weight"`` when no asset varies)."""
    n = cov.shape[0]
    if np.all(np.diag(cov) <= 0.0):
        weights, notes = limit_weights(np.full(n, 1.0 / n), lo, hi, constraints, relative=False)
        return Allocation(
            weights, "equal_weight", ("all assets have zero variance: equal weight", *notes)
        )
    used, notes = repair_zero_variance(cov / np.diag(cov).max())  # HERC is scale-free
    clusters = hierarchical_clusters(used, linkage, max_clusters)
    if n == 1:
        raw = np.ones(1)
    else:
        raw = herc_weights_nb(
            used, clusters.linkage, clusters.labels, risk_measure == "standard_deviation"
        )
    weights, limited = limit_weights(raw, lo, hi, constraints)
    extras = {"linkage": clusters.linkage, "labels": clusters.labels, "covariance": cov}
    return Allocation(weights, "herc", (*notes, *limited), extras)
