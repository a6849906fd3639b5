"""Black-Litterman benchmarks (issue 18): the posterior, and the whole allocation (posterior + max
Sharpe), ours against PyPortfolioOpt at N = 20 and N = 100.

Data: real Binance daily returns, padded to N columns as ``bench_allocators.padded_returns`` does
(N = 20: the last 90 days of 20 pairs; N = 100: 200 days, the 41 pairs listed throughout and
copies of them shifted by 7-day steps). Five views by index (three absolute, two relative, one
with weighted legs), Idzorek confidences, the prior implied by market-cap-like weights with
``risk_aversion`` 2.5 and the risk-free rate 0.02.

Each job first checks that ours and the peer agree (posterior within 1e-8; Sharpe ratio within
1e-5 relative, ours not below), then times both in this process (warm-up, median of repeats).
The posterior is timed twice: from the covariance array (``posterior_from_covariance``: prior,
omega, posterior, the work the peer does) and end to end from the returns (validation and the
sample covariance too); the allocation end to end from the returns (with the max-Sharpe solve).
PyPortfolioOpt is timed from the precomputed covariance DataFrame: ``BlackLittermanModel(S, pi="market", market_caps=...,
risk_free_rate=..., P=, Q=, omega="idzorek", view_confidences=...)`` with ``bl_returns()``, and
for the allocation ``EfficientFrontier(bl_returns, S, weight_bounds).max_sharpe()`` after it
(default solver).
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
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_allocators import padded_returns  # noqa: E402
from common import median_time, row  # noqa: E402

from strategies import BlackLittermanStrategy, Constraints, Views  # noqa: E402

RF = 0.02
PPY = 365.0
DELTA = 2.5
TAU = 0.05
SIZES = {20: 90, 100: 200}  # assets: observations
MAX_WEIGHT = {20: 0.2, 100: 0.05}
CONFIDENCES = (0.6, 0.3, 0.5, 0.4, 0.7)


def views(n: int) -> Views:
    """Absolute views on assets 0, 1, 2; ``3 - 4``; ``(5 + 6) / 2 - 7``."""
    P = np.zeros((5, n))
    P[0, 0] = P[1, 1] = P[2, 2] = 1.0
    P[3, [3, 4]] = [1.0, -1.0]
    P[4, [5, 6, 7]] = [0.5, 0.5, -1.0]
    return Views(P, [0.3, 0.45, -0.1, 0.05, 0.02])


def caps(n: int) -> np.ndarray:
    """Market-cap-like weights: a few large assets, a long tail."""
    return 1.0 / np.arange(1, n + 1) ** 1.2


def _peer_model(cov: pd.DataFrame, v: Views):
    from pypfopt.black_litterman import BlackLittermanModel

    return BlackLittermanModel(
        cov,
        pi="market",
        market_caps=pd.Series(caps(len(cov)), index=cov.index),
        risk_free_rate=RF,
        risk_aversion=DELTA,
        P=v.P,
        Q=v.Q,
        omega="idzorek",
        view_confidences=list(CONFIDENCES),
        tau=TAU,
    )


def _per_call(fn, calls: int, repeats: int = 7) -> float:
    return median_time(lambda: [fn() for _ in range(calls)], repeats=repeats) / calls


def jobs(n: int) -> list[dict]:
    from pypfopt import EfficientFrontier, risk_models

    r = padded_returns(n, SIZES[n])
    frame = pd.DataFrame(r, columns=[f"A{j}" for j in range(n)])
    cov = risk_models.sample_cov(frame, returns_data=True, frequency=PPY)
    v = views(n)
    ours = BlackLittermanStrategy(
        views=v,
        view_confidences=CONFIDENCES,
        prior_weights=tuple(caps(n)),
        risk_aversion=DELTA,
        tau=TAU,
        risk_free_rate=RF,
        periods_per_year=PPY,
    )
    hi = MAX_WEIGHT[n]
    cons = Constraints(0.0, hi)

    def peer_posterior():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _peer_model(cov, v).bl_returns()

    def peer_allocation():
        mu = peer_posterior()
        ef = EfficientFrontier(mu, cov, weight_bounds=(0.0, hi))
        ef.max_sharpe(risk_free_rate=RF)
        return np.array([ef.weights[i] for i in range(n)])

    # parity first
    S = cov.to_numpy()
    mean = ours.posterior(r)
    gap = float(np.abs(mean - peer_posterior().to_numpy()).max())
    assert gap <= 1e-8, gap
    allocation = ours.allocate_detailed(r, cons)
    assert allocation.method == "max_sharpe" and not allocation.notes, allocation.notes

    def sharpe(w):
        return (w @ mean - RF) / np.sqrt(w @ S @ w)

    s_ours, s_peer = sharpe(allocation.weights), sharpe(peer_allocation())
    assert s_ours >= s_peer - 1e-5 * abs(s_peer), (s_ours, s_peer)
    assert allocation.weights.max() <= hi and abs(allocation.weights.sum() - 1) <= 1e-12

    from_cov = ours.posterior_from_covariance(S)
    assert np.abs(from_cov - mean).max() <= 1e-12

    calls = 200 if n < 100 else 50
    label = f"{n} assets, {len(r)} days, 5 views (Idzorek), prior implied by weights"
    t_peer = _per_call(peer_posterior, 20)
    return [
        row(
            f"Black-Litterman posterior from the covariance, {label}",
            _per_call(lambda: ours.posterior_from_covariance(S), calls),
            "PyPortfolioOpt BlackLittermanModel.bl_returns",
            t_peer,
            ">= 10x",
            note=f"(the same work: prior, omega, posterior; max |ours - peer| {gap:.1e})",
        ),
        row(
            f"Black-Litterman posterior from the returns, {label}",
            _per_call(lambda: ours.posterior(r), calls),
            "PyPortfolioOpt BlackLittermanModel.bl_returns",
            t_peer,
            "report",
            note="(ours also validates the returns and estimates the covariance; the peer not)",
        ),
        row(
            f"Black-Litterman + max Sharpe, {label}, max_weight {hi:g}",
            _per_call(lambda: ours.allocate_detailed(r, cons), calls // 2),
            "PyPortfolioOpt BlackLittermanModel + EfficientFrontier.max_sharpe",
            _per_call(peer_allocation, 3),
            ">= 10x",
            note=f"(Sharpe ours - peer {s_ours - s_peer:+.1e})",
        ),
    ]


def main() -> list[dict]:
    print("job | ours | peer | ratio | target")
    return [*jobs(20), *jobs(100)]


if __name__ == "__main__":
    main()
