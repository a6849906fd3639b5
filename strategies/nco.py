"""Nested Clustered Optimisation (Lopez de Prado 2019), identical to skfolio's
``NestedClustersOptimization`` with ``cv="ignore"`` configured the same way.

1. cluster the assets (:func:`strategies.clusters.hierarchical_clusters`: the tree of the
   correlation distance of the strategy's covariance, the number of clusters by the gap statistic);
2. inside each cluster of two or more assets, run the ``inner`` allocator on the cluster's returns
   (a single asset takes weight 1);
3. each cluster becomes one asset, whose returns are those of its inner portfolio
   (``returns[:, members] @ inner_weights``): their covariance is the reduced covariance
   ``W' S W``;
4. run the ``outer`` allocator on the cluster returns; an asset's weight is its inner weight times
   its cluster's outer weight.

The outer allocator is fitted on the in-sample cluster returns (skfolio's ``cv="ignore"``);
skfolio's default fits it on cross-validated, out-of-sample ones. Inner and outer allocators are
registry names (:data:`NCO_ALLOCATORS`) built with the strategy's shared parameters they accept
(``covariance``, ``linkage``, ``periods_per_year``, ``span``, ``risk_free_rate``) and run without
limits; the limits apply to the product: a product within the bounds is kept, otherwise it is
projected onto them (Euclidean), and group / ``A @ w <= b`` limits take the Euclidean projection
of :func:`strategies.portfolio_qp.feasible_weights` (noted).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from strategies.base import Allocation, BaseAllocator, Constraints, check_choice, check_positive
from strategies.clusters import (
    MONOTONE_LINKAGES,
    Clusters,
    check_max_clusters,
    hierarchical_clusters,
)
from strategies.estimators import COVARIANCE_METHODS, CovarianceMethod, covariance
from strategies.herc import HERCLinkage, limit_weights
from strategies.hrp import repair_zero_variance

#: Registry names an NCO may nest, inside the clusters (``inner``) or across them (``outer``).
NCO_ALLOCATORS: tuple[str, ...] = (
    "min_volatility",
    "max_sharpe",
    "max_diversification",
    "risk_parity",
    "hrp",
    "herc",
    "inverse_volatility",
    "equal_weight",
)
#: NCO parameters passed down to the inner and outer allocators that accept them.
SHARED_PARAMETERS: tuple[str, ...] = (
    "covariance",
    "linkage",
    "periods_per_year",
    "span",
    "risk_free_rate",
)
_NO_LIMITS = Constraints()


@functools.lru_cache(maxsize=64)
def _nested(name: str, params: tuple[tuple[str, Any], ...]) -> BaseAllocator:
    """The allocator ``name`` with ``params``; read-only, shared between NCO strategies."""
    from strategies.registry import build_strategy

    return build_strategy(name, **dict(params))


@dataclass
class NCOStrategy(BaseAllocator):
    """Nested Clustered Optimisation.

    Parameters
    ----------
    lookback_days : float
        Length of the estimation window used by the walk-forward engine.
    inner, outer : str
        Registry names of the allocators within and across clusters (:data:`NCO_ALLOCATORS`);
        both default to ``"min_volatility"``, skfolio's default ``MeanRisk()``.
    linkage : {"ward", "single", "complete", "average", "weighted"}
        How the tree of the correlation distance is built.
    covariance : {"sample", "ewma", "ledoit_wolf", "oas", "denoised", "detoned"}
        Estimator of the covariance the correlation distance comes from (passed down too).
    max_clusters : int, optional
        At most this many clusters; None (default) picks the number by the gap statistic.
    risk_free_rate : float
        Annual rate, for an inner or outer ``max_sharpe``.
    periods_per_year : float
        Bars per year used to annualise.
    span : float
        EWMA span in bars for ``covariance="ewma"``.

    Notes
    -----
    ``Allocation.extras`` holds ``linkage``, ``labels`` (cluster of each asset),
    ``inner_weights`` (``(n_clusters, n_assets)``), ``outer_weights`` (``(n_clusters,)``) and
    ``covariance``. Fallbacks of the inner and outer allocators are recorded in the notes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> nco = NCOStrategy(inner="inverse_volatility", outer="equal_weight")
    >>> w = nco.allocate(rng.normal(0, 0.02, size=(90, 5)), {"max_weight": 0.3})
    >>> round(float(w.sum()), 12), bool(w.max() <= 0.3)
    (1.0, True)
    """

    lookback_days: float = 30
    inner: str = "min_volatility"
    outer: str = "min_volatility"
    linkage: HERCLinkage = "ward"
    covariance: CovarianceMethod = "sample"
    max_clusters: int | None = None
    risk_free_rate: float = 0.02
    periods_per_year: float = 365.0
    span: float = 60.0
    name: ClassVar[str] = "nco"

    def __post_init__(self) -> None:
        check_choice("inner", self.inner, NCO_ALLOCATORS)
        check_choice("outer", self.outer, NCO_ALLOCATORS)
        check_choice("linkage", self.linkage, MONOTONE_LINKAGES)
        check_choice("covariance", self.covariance, COVARIANCE_METHODS)
        check_max_clusters(self.max_clusters)
        check_positive(
            periods_per_year=self.periods_per_year, lookback_days=self.lookback_days, span=self.span
        )
        self.nested(self.inner)  # the shared parameters must suit both allocators
        self.nested(self.outer)

    def nested(self, name: str) -> BaseAllocator:
        """The allocator registered as ``name`` with the shared parameters it accepts (built once
        per name and parameters: its checks cost more than a small cluster's allocation)."""
        from strategies.registry import STRATEGIES  # the registry imports us

        accepted = STRATEGIES[name].parameters
        return _nested(
            name, tuple((k, getattr(self, k)) for k in SHARED_PARAMETERS if k in accepted)
        )

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        n = returns.shape[1]
        lo, hi = constraints.bounds(n)
        cov = covariance(returns, self.covariance, self.periods_per_year, self.span)
        if n == 1:
            return Allocation(np.ones(1), self.name)
        if np.all(np.diag(cov) <= 0.0):
            weights, notes = limit_weights(np.full(n, 1.0 / n), lo, hi, constraints, False)
            return Allocation(
                weights, "equal_weight", ("all assets have zero variance: equal weight", *notes)
            )
        used, notes = repair_zero_variance(cov / np.diag(cov).max())
        clusters = hierarchical_clusters(used, self.linkage, self.max_clusters)
        inner, cluster_returns, inner_notes = self.inner_portfolios(returns, clusters)
        outer_notes: tuple[str, ...] = ()
        if clusters.n_clusters == 1:
            outer = np.ones(1)
        else:
            found = self.nested(self.outer).allocate_array(cluster_returns, _NO_LIMITS)
            outer = found.weights
            outer_notes = tuple(f"outer {self.outer}: {note}" for note in found.notes)
        weights, limited = limit_weights(outer @ inner, lo, hi, constraints, relative=False)
        extras = {
            "linkage": clusters.linkage,
            "labels": clusters.labels,
            "inner_weights": inner,
            "outer_weights": outer,
            "covariance": cov,
        }
        notes = (*notes, *inner_notes, *outer_notes, *limited)
        return Allocation(weights, self.name, notes, extras)

    def inner_portfolios(
        self, returns: np.ndarray, clusters: Clusters
    ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """The inner allocator in each cluster: weights ``(n_clusters, n_assets)`` (zero outside
        the cluster), the clusters' returns ``(n_obs, n_clusters)`` and the inner fallback notes."""
        n_obs, n = returns.shape
        allocator = self.nested(self.inner)
        weights = np.zeros((clusters.n_clusters, n))
        cluster_returns = np.empty((n_obs, clusters.n_clusters))
        notes: list[str] = []
        for c in range(clusters.n_clusters):
            members = np.flatnonzero(clusters.labels == c)
            if members.size == 1:
                weights[c, members[0]] = 1.0
                cluster_returns[:, c] = returns[:, members[0]]
                continue
            sub = np.ascontiguousarray(returns[:, members])
            found = allocator.allocate_array(sub, _NO_LIMITS)
            weights[c, members] = found.weights
            cluster_returns[:, c] = sub @ found.weights
            notes += [f"inner {self.inner} on cluster {c}: {note}" for note in found.notes]
        return weights, cluster_returns, tuple(notes)
