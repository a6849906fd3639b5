"""Tail-risk allocator benchmarks (issue 18): minimum CVaR and minimum CDaR against skfolio's
``MeanRisk(MINIMIZE_RISK, RiskMeasure.CVAR / CDAR)`` on the same window and bounds.

Each job first checks parity: both weight vectors scored by skfolio's own measure
(``measures.cvar``, ``measures.cdar(get_drawdowns(...))``), ours no worse and within 1e-7; then
times both in this process (warm-up, median of repeats) and prints ``job | ours | peer | ratio``.
Ours is timed end to end (``allocate_detailed(returns, constraints)``: the linear programme
built, solved by the simplex of :mod:`strategies.simplex`, certified), skfolio from the returns
array (``fit``, its default Clarabel settings). The note gives the same programme's time through
HiGHS (``scipy.optimize.linprog``, the fallback) for scale.

Data: the real Binance daily candles of ../shared/data. 20 assets: the first pairs listed through
the last 90 days of the file; 100 assets: 200 days of real returns padded to 100 columns as in
bench_allocators.py (``padded_returns``: the same pairs' returns shifted by whole weeks).
"""

from __future__ import annotations

import os

# BLAS single-threaded for ours and the peer alike (see bench_allocators.py)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_allocators import padded_returns  # noqa: E402
from common import median_time, row, shared_file  # noqa: E402

from datasets import load_csv  # noqa: E402
from strategies import Constraints, MinCDaR, MinCVaR  # noqa: E402
from strategies.tail_lp import highs_min_tail_risk  # noqa: E402

BETA = 0.95
#: (assets, observations, max_weight) of each job.
CASES = ((20, 90, 0.2), (100, 200, 0.05))
OURS = {"cvar": MinCVaR, "cdar": MinCDaR}


def last_window(n_assets: int, n_obs: int) -> np.ndarray:
    """The first ``n_assets`` pairs listed through the last ``n_obs`` days of the daily file."""
    close = load_csv(shared_file("binance_spot_usdt_1d.csv.gz"), start="2021-09-01").close
    returns = close.pct_change().iloc[1:].iloc[-n_obs:].dropna(axis=1)
    return np.ascontiguousarray(returns.iloc[:, :n_assets].to_numpy())


def skfolio_score(measure: str, returns: np.ndarray, weights: np.ndarray) -> float:
    from skfolio.measures import cdar, cvar, get_drawdowns

    path = returns @ weights
    return float(cvar(path, BETA) if measure == "cvar" else cdar(get_drawdowns(path), BETA))


def skfolio_fit(measure: str, returns: np.ndarray, max_weight: float) -> np.ndarray:
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    model = MeanRisk(
        objective_function=ObjectiveFunction.MINIMIZE_RISK,
        risk_measure=RiskMeasure.CVAR if measure == "cvar" else RiskMeasure.CDAR,
        cvar_beta=BETA,
        cdar_beta=BETA,
        max_weights=max_weight,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Solution may be inaccurate": parity is checked
        return model.fit(returns).weights_


def tail_risk_job(measure: str, returns: np.ndarray, max_weight: float) -> dict:
    n_obs, n = returns.shape
    ours = OURS[measure](beta=BETA)
    cons = Constraints(0.0, max_weight)
    allocation = ours.allocate_detailed(returns, cons)
    assert allocation.extras["solver"] == "simplex" and not allocation.notes, allocation.notes
    peer = skfolio_fit(measure, returns, max_weight)
    got, theirs = (
        skfolio_score(measure, returns, allocation.weights),
        skfolio_score(measure, returns, peer),
    )
    assert got <= theirs + 1e-12 and theirs - got <= 1e-7, (measure, n, got, theirs)
    lo, hi = np.zeros(n), np.full(n, max_weight)
    G, h = np.zeros((0, n)), np.zeros(0)
    highs = highs_min_tail_risk(returns, measure, BETA, lo, hi, G, h)
    assert skfolio_score(measure, returns, highs) >= got - 1e-12
    t_ours = median_time(lambda: ours.allocate_detailed(returns, cons), repeats=21)
    t_peer = median_time(lambda: skfolio_fit(measure, returns, max_weight), repeats=7)
    t_highs = median_time(
        lambda: highs_min_tail_risk(returns, measure, BETA, lo, hi, G, h), repeats=7
    )
    note = (
        f"({measure.upper()} ours {got:.10f}, skfolio {theirs:.10f}; "
        f"{allocation.extras['iterations']} simplex iterations; HiGHS {t_highs * 1e3:.1f} ms)"
    )
    return row(
        f"min {measure.upper()} (beta {BETA}), {n} assets, {n_obs} days, max_weight {max_weight:g}",
        t_ours,
        f"skfolio MeanRisk(MINIMIZE_RISK, {measure.upper()})",
        t_peer,
        ">= 10x",
        note=note,
    )


def main() -> list[dict]:
    print("job | ours | peer | ratio | target")
    rows = []
    for n, n_obs, max_weight in CASES:
        returns = last_window(n, n_obs) if n <= 20 else padded_returns(n, n_obs)
        assert returns.shape == (n_obs, n)
        for measure in ("cvar", "cdar"):
            rows.append(tail_risk_job(measure, returns, max_weight))
    return rows


if __name__ == "__main__":
    main()
