"""Hierarchical clustering allocators (issue 18): HERC and NCO against skfolio at N = 20 and N = 100.

Data: real Binance daily returns, padded to N columns as ``bench_allocators.padded_returns`` does
(N = 20: the last 90 days of 20 pairs; N = 100: 200 days, the 41 pairs listed throughout and
copies of them shifted by 7-day steps).

Each job first checks that ours and the peer agree on the same input, then times both in this
process (warm-up, median of repeats). Ours is timed end to end
(``strategy.allocate_detailed(returns, constraints)``: validation, covariance, tree, clusters,
weights), skfolio's ``fit`` on the returns array.

* HERC: ``HierarchicalEqualRiskContribution`` with the empirical prior (ddof=1), Pearson distance and
  Ward linkage (skfolio's defaults, written out); weights equal to 1e-8.
* NCO, closed form: ``NestedClustersOptimization(cv="ignore")`` with HRP (Ward) inside the clusters
  and inverse volatility across them; weights equal to 1e-8.
* NCO, default: minimum variance inside and across the clusters (skfolio's default ``MeanRisk()``,
  Clarabel with its default tolerances, as timed); parity is checked first against the same model
  at tolerance 1e-12: weights within 1e-5 (the solver's accuracy, see
  tests/crosscheck/test_hierarchical_skfolio.py).
"""

from __future__ import annotations

import os

# BLAS single-threaded for ours and the peers alike (see bench_allocators.py)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_allocators import padded_returns  # noqa: E402
from common import median_time, row  # noqa: E402

from strategies import Constraints, HERCStrategy, NCOStrategy  # noqa: E402

SIZES = {20: 90, 100: 200}  # assets: observations
TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}


def _skfolio_herc():
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.distance import PearsonDistance
    from skfolio.moments import EmpiricalCovariance
    from skfolio.optimization import HierarchicalEqualRiskContribution
    from skfolio.prior import EmpiricalPrior

    return HierarchicalEqualRiskContribution(
        prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
        distance_estimator=PearsonDistance(),
        hierarchical_clustering_estimator=HierarchicalClustering(linkage_method=LinkageMethod.WARD),
    )


def _skfolio_nco(inner: str, solver_params: dict | None = None):
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.distance import PearsonDistance
    from skfolio.moments import EmpiricalCovariance
    from skfolio.optimization import (
        HierarchicalRiskParity,
        InverseVolatility,
        MeanRisk,
        NestedClustersOptimization,
    )
    from skfolio.prior import EmpiricalPrior
    from skfolio.seriation import HierarchicalSeriation

    def prior():
        return EmpiricalPrior(covariance_estimator=EmpiricalCovariance())

    def ward():
        return HierarchicalClustering(linkage_method=LinkageMethod.WARD)

    if inner == "hrp":
        seriation = HierarchicalSeriation(
            hierarchical_clustering_estimator=ward(), optimal_ordering=False
        )
        inner_est = HierarchicalRiskParity(
            prior_estimator=prior(),
            distance_estimator=PearsonDistance(),
            seriation_estimator=seriation,
        )
        outer_est = InverseVolatility(prior_estimator=prior())
    else:
        inner_est = MeanRisk(prior_estimator=prior(), solver_params=solver_params)
        outer_est = MeanRisk(prior_estimator=prior(), solver_params=solver_params)
    return NestedClustersOptimization(
        inner_estimator=inner_est,
        outer_estimator=outer_est,
        distance_estimator=PearsonDistance(),
        clustering_estimator=ward(),
        cv="ignore",
    )


def _per_call(fn, calls: int, repeats: int = 7) -> float:
    return median_time(lambda: [fn() for _ in range(calls)], repeats=repeats) / calls


def herc_jobs() -> list[dict]:
    rows = []
    for n, n_obs in SIZES.items():
        r = padded_returns(n, n_obs)
        ours, cons = HERCStrategy(), Constraints()
        diff = np.abs(
            ours.allocate_detailed(r, cons).weights - _skfolio_herc().fit(r).weights_
        ).max()
        assert diff <= 1e-8, diff
        rows.append(
            row(
                f"HERC (Ward, variance), {n} assets, {n_obs} days",
                _per_call(
                    lambda r=r, s=ours, c=cons: s.allocate_detailed(r, c), 200 if n < 100 else 50
                ),
                "skfolio HierarchicalEqualRiskContribution.fit",
                _per_call(lambda r=r: _skfolio_herc().fit(r), 3, repeats=5),
                ">= 10x",
                note=f"(weights within {diff:.0e})",
            )
        )
    return rows


def nco_jobs() -> list[dict]:
    rows = []
    for inner, label, limit in (
        ("hrp", "NCO (HRP inside, inverse volatility across, Ward)", 1e-8),
        ("min_volatility", "NCO (min variance inside and across, Ward)", 1e-5),
    ):
        for n, n_obs in SIZES.items():
            r = padded_returns(n, n_obs)
            outer = "inverse_volatility" if inner == "hrp" else "min_volatility"
            ours, cons = NCOStrategy(inner=inner, outer=outer), Constraints()
            w = ours.allocate_detailed(r, cons).weights
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # Clarabel: "may be inaccurate"
                diff = np.abs(w - _skfolio_nco(inner, TIGHT).fit(r).weights_).max()
            assert diff <= limit, (inner, n, diff)
            rows.append(
                row(
                    f"{label}, {n} assets, {n_obs} days",
                    _per_call(
                        lambda r=r, s=ours, c=cons: s.allocate_detailed(r, c), 50 if n < 100 else 10
                    ),
                    "skfolio NestedClustersOptimization(cv='ignore').fit",
                    _per_call(lambda r=r, i=inner: _skfolio_nco(i).fit(r), 1, repeats=5),
                    ">= 10x",
                    note=f"(weights within {diff:.0e} of skfolio at tolerance 1e-12)",
                )
            )
    return rows


def main() -> list[dict]:
    print("job | ours | peer | ratio | target")
    return [*herc_jobs(), *nco_jobs()]


if __name__ == "__main__":
    main()
