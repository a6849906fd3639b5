"""Allocator benchmarks (issue 4): max Sharpe, min volatility and HRP against PyPortfolioOpt and skfolio.

Each job first checks that ours and the peer agree on the same input (Sharpe ratio / volatility
within 1e-5 relative, HRP weights within 1e-10), then times both in this process (warm-up, median of
repeats) and prints ``job | ours | peer | ratio``.

Ours is timed end to end (``strategy.allocate_detailed(returns, constraints)``: validation, moment
estimation, covariance check, solve). The PyPortfolioOpt max-Sharpe / min-volatility peer is timed
from precomputed moments (``EfficientFrontier(mu, S, weight_bounds)`` plus the solve, default
solver), HRP from the returns DataFrame (``HRPOpt(returns).optimize("single")``), skfolio from the
returns array (``fit``).

Data: the real Binance daily candles of ../shared/data. 20 and 50 assets: the first pairs listed
through the last 90 days of the file. 100 assets: the file has 50 pairs, so the matrix puts the 50
pairs' last 200 days beside the same pairs' preceding 200 days (real returns, 100 columns; 200
observations, since 90 observations of 100 assets give a singular covariance that PyPortfolioOpt
cannot use and that we shrink, so the two would no longer solve the same problem).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, row, shared_file

from datasets import load_csv
from strategies import Constraints, HRPStrategy, MPTStrategy

N_OBS = 90
LONG_OBS = 200
RF = 0.02
PPY = 365.0
MAX_WEIGHT = {20: 0.2, 50: 0.1, 100: 0.05}


def _returns() -> dict[int, pd.DataFrame]:
    """Returns windows keyed by the number of assets."""
    close = load_csv(shared_file("binance_spot_usdt_1d.csv.gz"), start="2021-09-01").close
    returns = close.pct_change().iloc[1:]
    last = returns.iloc[-N_OBS:].dropna(axis=1)
    long = returns.iloc[-LONG_OBS:].dropna(axis=1)
    before = returns.iloc[-2 * LONG_OBS : -LONG_OBS][long.columns]
    assert before.notna().all().all(), "the 100-asset matrix needs 400 days of all 50 pairs"
    before.columns = [f"{c} (prior window)" for c in before.columns]
    wide = pd.concat([long, before.set_axis(long.index)], axis=1)
    return {20: last.iloc[:, :20], 50: last.iloc[:, :50], 100: wide.iloc[:, :100]}


def _per_call(fn, calls: int, repeats: int = 7) -> float:
    return median_time(lambda: [fn() for _ in range(calls)], repeats=repeats) / calls


def _sharpe(w, mu, cov):
    return (w @ mu - RF) / np.sqrt(w @ cov @ w)


def max_sharpe_jobs(returns: dict[int, pd.DataFrame]) -> list[dict]:
    from pypfopt import EfficientFrontier, expected_returns, risk_models

    rows = []
    for n in (20, 50, 100):
        frame = returns[n]
        r = frame.to_numpy()
        cons = Constraints(0.0, MAX_WEIGHT[n])
        ours = MPTStrategy(risk_free_rate=RF, periods_per_year=PPY)
        mu = expected_returns.mean_historical_return(
            frame, returns_data=True, compounding=False, frequency=PPY
        )
        cov = risk_models.sample_cov(frame, returns_data=True, frequency=PPY)

        def peer(mu=mu, cov=cov, n=n):
            ef = EfficientFrontier(mu, cov, weight_bounds=(0.0, MAX_WEIGHT[n]))
            ef.max_sharpe(risk_free_rate=RF)
            return ef.weights

        allocation = ours.allocate_detailed(r, cons)
        assert allocation.method == "max_sharpe", allocation.notes
        s_ours, s_peer = (
            _sharpe(allocation.weights, mu.to_numpy(), cov.to_numpy()),
            _sharpe(peer(), mu, cov),
        )
        assert s_ours >= s_peer - 1e-5 * abs(s_peer) and abs(s_ours - s_peer) <= 1e-5 * abs(
            s_peer
        ), (s_ours, s_peer)
        t_ours = _per_call(
            lambda r=r, cons=cons, ours=ours: ours.allocate_detailed(r, cons),
            200 if n < 100 else 20,
        )
        t_peer = _per_call(peer, 3)
        target = ">= 30x and < 0.3 ms" if n == 20 else "report"
        rows.append(
            row(
                f"max Sharpe, {n} assets, {len(frame)} days, max_weight {MAX_WEIGHT[n]}",
                t_ours,
                "PyPortfolioOpt EfficientFrontier.max_sharpe",
                t_peer,
                target,
            )
        )
        if n == 20:
            rows.append(
                _skfolio_max_sharpe(r, allocation.weights, mu.to_numpy(), cov.to_numpy(), t_ours)
            )
    return rows


def _skfolio_max_sharpe(r, weights, mu, cov, t_ours) -> dict:
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    def peer():
        model = MeanRisk(
            objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
            risk_measure=RiskMeasure.VARIANCE,
            max_weights=MAX_WEIGHT[20],
            risk_free_rate=RF / PPY,
        )
        return model.fit(r).weights_

    s_ours, s_peer = _sharpe(weights, mu, cov), _sharpe(peer(), mu, cov)
    assert s_ours >= s_peer - 1e-5 * abs(s_peer), (s_ours, s_peer)
    return row(
        "max Sharpe, 20 assets",
        t_ours,
        "skfolio MeanRisk(MAXIMIZE_RATIO)",
        _per_call(peer, 3),
        "report",
    )


def min_volatility_jobs(returns: dict[int, pd.DataFrame]) -> list[dict]:
    from pypfopt import EfficientFrontier, risk_models

    rows = []
    for n in (20, 50, 100):
        frame = returns[n]
        r = frame.to_numpy()
        cons = Constraints(0.0, MAX_WEIGHT[n])
        ours = MPTStrategy(objective="min_volatility", periods_per_year=PPY)
        cov = risk_models.sample_cov(frame, returns_data=True, frequency=PPY)

        def peer(cov=cov, n=n):
            ef = EfficientFrontier(None, cov, weight_bounds=(0.0, MAX_WEIGHT[n]))
            ef.min_volatility()
            return ef.weights

        w = ours.allocate(r, cons)
        v_ours, v_peer = np.sqrt(w @ cov @ w), np.sqrt(peer() @ cov @ peer())
        assert v_ours <= v_peer * (1 + 1e-5), (v_ours, v_peer)
        t_ours = _per_call(
            lambda r=r, cons=cons, ours=ours: ours.allocate_detailed(r, cons),
            200 if n < 100 else 20,
        )
        rows.append(
            row(
                f"min volatility, {n} assets, {len(frame)} days",
                t_ours,
                "PyPortfolioOpt EfficientFrontier.min_volatility",
                _per_call(peer, 3),
                "report",
            )
        )
    return rows


def hrp_jobs(returns: dict[int, pd.DataFrame]) -> list[dict]:
    from pypfopt import HRPOpt

    rows = []
    for n in (20, 50, 100):
        frame = returns[n]
        r = frame.to_numpy()
        ours = HRPStrategy(linkage="single", periods_per_year=PPY)

        def peer(frame=frame):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return HRPOpt(frame).optimize("single")

        expected = pd.Series(peer())[frame.columns].to_numpy()
        np.testing.assert_allclose(ours.allocate(r), expected, rtol=0, atol=1e-10)
        t_ours = _per_call(
            lambda r=r, ours=ours: ours.allocate_detailed(r), 500 if n < 100 else 100
        )
        target = ">= 100x and < 0.3 ms" if n == 20 else "report"
        rows.append(
            row(
                f"HRP single linkage, {n} assets, {len(frame)} days",
                t_ours,
                "PyPortfolioOpt HRPOpt",
                _per_call(peer, 3),
                target,
            )
        )
        if n == 20:
            rows.append(_skfolio_hrp(r, expected, t_ours))
    return rows


def _skfolio_hrp(r, expected, t_ours) -> dict:
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.distance import PearsonDistance
    from skfolio.moments import EmpiricalCovariance
    from skfolio.optimization import HierarchicalRiskParity
    from skfolio.prior import EmpiricalPrior
    from skfolio.seriation import HierarchicalSeriation

    def peer():
        clustering = HierarchicalClustering(linkage_method=LinkageMethod.SINGLE)
        return (
            HierarchicalRiskParity(
                prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
                distance_estimator=PearsonDistance(),
                seriation_estimator=HierarchicalSeriation(
                    hierarchical_clustering_estimator=clustering, optimal_ordering=False
                ),
            )
            .fit(r)
            .weights_
        )

    np.testing.assert_allclose(peer(), expected, rtol=0, atol=1e-10)
    return row(
        "HRP single linkage, 20 assets",
        t_ours,
        "skfolio HierarchicalRiskParity",
        _per_call(peer, 3),
        "report",
    )


def main() -> list[dict]:
    returns = _returns()
    print("job | ours | peer | ratio | target")
    return [*max_sharpe_jobs(returns), *min_volatility_jobs(returns), *hrp_jobs(returns)]


if __name__ == "__main__":
    main()
