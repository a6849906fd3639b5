"""Allocator benchmarks (issues 4, 16 and 18): max Sharpe, min volatility, HRP, max diversification
and the OAS covariance against PyPortfolioOpt, skfolio and scikit-learn.

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

import os

# BLAS single-threaded for ours and the peers alike: on this shared 2-core machine OpenBLAS threads
# thrash (a 300 x 300 Cholesky took 0.4 s threaded against 1 ms on one thread).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, row, shared_file  # noqa: E402

from datasets import load_csv  # noqa: E402
from strategies import Constraints, HRPStrategy, MPTStrategy  # noqa: E402

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


#: Max Sharpe at scale (issue 16): observations and upper bound per universe size. More observations
#: than assets keep the sample covariance non-singular, so PyPortfolioOpt and skfolio solve the same
#: problem as ours (which would otherwise shrink it). 0.05 wherever 0.05 * N >= 1 leaves freedom;
#: at N = 20 it would leave the single portfolio 1/20, so N = 20 uses 0.1.
SCALING_OBS = {20: 90, 50: 90, 100: 200, 200: 600, 300: 600, 500: 600}
SCALING_MAX_WEIGHT = {20: 0.1, 50: 0.05, 100: 0.05, 200: 0.05, 300: 0.05, 500: 0.05}
SCALING_TARGET = {20: 100.0, 100: 30.0, 300: 20.0, 500: 10.0}
#: Days between the shifted copies of the padded universe.
PAD_SHIFT = 7


def padded_returns(n_assets: int, n_obs: int) -> np.ndarray:
    """Real daily returns padded to ``n_assets`` columns, shape ``(n_obs, n_assets)``.

    The daily file holds 50 pairs; the 41 listed throughout its last 700 days are the base. Copy
    ``k`` (k = 0, 1, ...) of the base is the same pairs' returns over the ``n_obs`` days ending
    ``PAD_SHIFT * k`` days before the last day: copy 0 is the real window, later copies are real
    returns of the same pairs shifted in time (their correlation with the unshifted pair is the
    pair's autocorrelation at lag 7k, near zero), so every column is a real return series.
    """
    close = load_csv(shared_file("binance_spot_usdt_1d.csv.gz")).close
    base = close.pct_change().iloc[1:].iloc[-700:].dropna(axis=1).to_numpy()
    n_base = base.shape[1]
    copies = -(-n_assets // n_base)
    end = base.shape[0]
    assert n_obs + PAD_SHIFT * (copies - 1) <= end, "not enough days to pad this far"
    blocks = [base[end - n_obs - PAD_SHIFT * k : end - PAD_SHIFT * k] for k in range(copies)]
    return np.ascontiguousarray(np.hstack(blocks)[:, :n_assets])


def _pypfopt_max_sharpe(mu, cov, max_weight):
    from pypfopt import EfficientFrontier

    ef = EfficientFrontier(mu, cov, weight_bounds=(0.0, max_weight))
    ef.max_sharpe(risk_free_rate=RF)
    return np.array([ef.weights[i] for i in range(len(mu))])


def _skfolio_max_sharpe_weights(r, max_weight):
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    model = MeanRisk(
        objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
        risk_measure=RiskMeasure.VARIANCE,
        min_weights=0.0,
        max_weights=max_weight,
        risk_free_rate=RF / PPY,
    )
    return model.fit(r).weights_


def max_sharpe_scaling_jobs(sizes=(20, 50, 100, 200, 300, 500)) -> list[dict]:
    """Max Sharpe with bounds on real daily returns padded to N, ours (end to end, cold start:
    no previous weights) against PyPortfolioOpt (from precomputed moments) and skfolio (``fit``).
    Parity first: ours within the bounds exactly, Sharpe >= each peer's - 1e-6."""
    rows = []
    for n in sizes:
        r = padded_returns(n, SCALING_OBS[n])
        hi = SCALING_MAX_WEIGHT[n]
        cons = Constraints(0.0, hi)
        ours = MPTStrategy(risk_free_rate=RF, periods_per_year=PPY)
        mu = r.mean(axis=0) * PPY
        cov = np.cov(r, rowvar=False, ddof=1) * PPY
        allocation = ours.allocate_detailed(r, cons)
        assert allocation.method == "max_sharpe" and not allocation.notes, allocation.notes
        w = allocation.weights
        assert w.min() >= 0.0 and w.max() <= hi and abs(w.sum() - 1.0) <= 1e-12, (w.min(), w.max())
        warm = ours.allocate_detailed(r, cons, previous=w).weights
        assert np.abs(warm - w).max() <= 1e-10
        s_ours = _sharpe(w, mu, cov)
        t_ours = _per_call(lambda r=r, c=cons, s=ours: s.allocate_detailed(r, c), 20, repeats=7)
        t_warm = _per_call(
            lambda r=r, c=cons, s=ours, p=w: s.allocate_detailed(r, c, previous=p), 20, repeats=7
        )
        label = f"max Sharpe, {n} assets (padded real daily), {len(r)} days, bounds 0..{hi:g}"
        target = f">= {SCALING_TARGET[n]:g}x" if n in SCALING_TARGET else "report"
        for name, solve in (
            (
                "PyPortfolioOpt EfficientFrontier.max_sharpe",
                lambda mu=mu, cov=cov, hi=hi: _pypfopt_max_sharpe(mu, cov, hi),
            ),
            (
                "skfolio MeanRisk(MAXIMIZE_RATIO)",
                lambda r=r, hi=hi: _skfolio_max_sharpe_weights(r, hi),
            ),
        ):
            s_peer = _sharpe(solve(), mu, cov)
            assert s_ours >= s_peer - 1e-6, (n, name, s_ours, s_peer)
            t_peer = median_time(solve, repeats=3 if n >= 300 else 5)
            note = (
                f"(Sharpe ours - peer {s_ours - s_peer:+.1e}; warm start from the solution "
                f"{t_warm * 1e3:.2f} ms)"
            )
            rows.append(row(label, t_ours, name, t_peer, target, note=note))
    return rows


def padded_market(n_assets: int = 300, n_bars: int = 1826):
    """A daily panel of ``n_assets`` x ``n_bars`` (5 years) built from the real daily returns.

    Pair ``p``'s listed daily returns (2017-08 to 2023-01, or from its listing) are repeated
    cyclically to the file's length; asset ``j`` takes pair ``j % 50``'s series rolled by
    ``97 * (j // 50)`` days. Prices are ``100 * cumprod(1 + r)`` (open = high = low = close).
    Every return in the panel is a real daily return of one pair.
    """
    from datasets import MarketData

    close = load_csv(shared_file("binance_spot_usdt_1d.csv.gz")).close
    base = close.pct_change().iloc[1:]
    n_days = len(base)
    tiled = []
    for col in base.columns:
        listed = base[col].dropna().to_numpy()
        tiled.append(np.resize(listed, n_days))  # np.resize repeats cyclically
    filled = np.column_stack(tiled)
    cols = [np.roll(filled[:, j % 50], 97 * (j // 50)) for j in range(n_assets)]
    r = np.column_stack(cols)[-n_bars:]
    prices = 100.0 * np.cumprod(1.0 + r, axis=0)
    index = base.index[-n_bars:]
    arrays = {k: prices.copy() for k in ("open", "high", "low", "close")}
    arrays["volume"] = np.full(prices.shape, 1e12)
    symbols = tuple(f"P{j:03d}/USDT" for j in range(n_assets))
    return MarketData(index, symbols, "1d", arrays, source="padded real daily returns")


def walk_forward_max_sharpe_job(n_assets: int = 300) -> dict:
    """``run_backtest`` of weekly max Sharpe (bounds 0..0.05, 365-day lookback) on the padded
    300-asset, 5-year daily panel; timed after one untimed run (numba compile excluded)."""
    from backtest import run_backtest

    market = padded_market(n_assets)
    strategy = MPTStrategy(objective="max_sharpe", lookback_days=365, risk_free_rate=RF)
    bounds = {"min_weight": 0.0, "max_weight": 0.05}

    def job():
        return run_backtest(market, strategy, "1W", constraints=bounds, benchmark=None)

    result = job()
    weights = result.target_weights.to_numpy()
    assert np.nanmax(weights) <= 0.05 + 1e-12, np.nanmax(weights)
    methods = result.rebalances["method"]
    assert (methods == "max_sharpe").all(), methods.value_counts()  # no fallback, no repair
    t = median_time(job, repeats=3, warmup=0)
    n_decisions = len(result.target_weights)
    return row(
        f"walk-forward, weekly max Sharpe, {n_assets} assets x {market.n_bars} daily bars "
        f"(padded real), 365d lookback, bounds 0..0.05, {n_decisions} decisions",
        t,
        "-",
        None,
        "< 5 s",
        note="(every decision solved as max Sharpe; first run, with the numba compile, untimed)",
    )


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


def breadth_jobs(returns: dict[int, pd.DataFrame]) -> list[dict]:
    """Issue 18's allocators and estimators against the peer users know them from, N = 20 and 100:
    OAS against scikit-learn's ``OAS`` (the same window; equal to 1e-12 first), the denoised
    covariance against skfolio's ``DenoiseCovariance`` (equal to 1e-9 first), max diversification
    against skfolio's ``MaximumDiversification`` (the ratio within 1e-6 first)."""
    from skfolio.moments import DenoiseCovariance, EmpiricalCovariance
    from skfolio.optimization import MaximumDiversification
    from skfolio.prior import EmpiricalPrior
    from sklearn.covariance import OAS

    from strategies.estimators import covariance, oas

    def ratio(w, cov):
        return float(w @ np.sqrt(np.diag(cov)) / np.sqrt(w @ cov @ w))

    rows = []
    for n in (20, 100):
        r = returns[n].to_numpy()
        np.testing.assert_allclose(oas(r, PPY)[0], OAS().fit(r).covariance_ * PPY, rtol=1e-12)
        rows.append(
            row(
                f"OAS covariance, {n} assets, {len(r)} days",
                _per_call(lambda r=r: oas(r, PPY), 500),
                "scikit-learn OAS().fit",
                _per_call(lambda r=r: OAS().fit(r), 20),
                ">= 10x",
            )
        )
        denoised = DenoiseCovariance(covariance_estimator=EmpiricalCovariance(), nearest=False)
        np.testing.assert_allclose(
            covariance(r, "denoised", 1.0), denoised.fit(r).covariance_, rtol=1e-9, atol=1e-15
        )
        rows.append(
            row(
                f"denoised covariance (Marchenko-Pastur), {n} assets, {len(r)} days",
                _per_call(lambda r=r: covariance(r, "denoised", PPY), 50),
                "skfolio DenoiseCovariance.fit",
                _per_call(lambda r=r, d=denoised: d.fit(r), 5),
                ">= 10x",
            )
        )
        hi = MAX_WEIGHT[n]
        ours = MPTStrategy(objective="max_diversification", periods_per_year=PPY)
        cons = Constraints(0.0, hi)

        def peer(r=r, hi=hi):
            return (
                MaximumDiversification(
                    prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
                    max_weights=hi,
                )
                .fit(r)
                .weights_
            )

        cov = np.cov(r, rowvar=False)
        got, theirs = ratio(ours.allocate(r, cons), cov), ratio(peer(), cov)
        assert got >= theirs - 1e-6, (got, theirs)
        rows.append(
            row(
                f"max diversification, {n} assets, {len(r)} days, max_weight {hi:g}",
                _per_call(
                    lambda r=r, ours=ours, cons=cons: ours.allocate_detailed(r, cons),
                    200 if n < 100 else 20,
                ),
                "skfolio MaximumDiversification.fit",
                _per_call(peer, 3),
                ">= 10x",
                note=f"ratio ours {got:.8f}, skfolio {theirs:.8f}",
            )
        )
    return rows


def risk_budget_jobs(returns: dict[int, pd.DataFrame]) -> list[dict]:
    """Risk budgeting with custom budgets (``RiskParity(risk_budget=...)``) against skfolio's
    ``RiskBudgeting(risk_budget=...)`` on the same window (empirical covariance), N = 20 and 100:
    the weights equal to 1e-6 and each asset's share of the variance its budget share first."""
    from skfolio.measures import RiskMeasure
    from skfolio.moments import EmpiricalCovariance
    from skfolio.optimization import RiskBudgeting
    from skfolio.prior import EmpiricalPrior

    from strategies import RiskParity

    rows = []
    for n in (20, 100):
        r = returns[n].to_numpy()
        budget = np.random.default_rng(n).uniform(0.5, 3.0, n)
        ours = RiskParity(risk_budget=tuple(budget))
        cons = Constraints()

        def peer(r=r, budget=budget):
            return (
                RiskBudgeting(
                    risk_measure=RiskMeasure.VARIANCE,
                    risk_budget=budget,
                    prior_estimator=EmpiricalPrior(covariance_estimator=EmpiricalCovariance()),
                )
                .fit(r)
                .weights_
            )

        w = ours.allocate(r, cons)
        np.testing.assert_allclose(w, peer(), atol=1e-6)
        cov = np.cov(r, rowvar=False)
        contrib = w * (cov @ w)
        np.testing.assert_allclose(contrib / contrib.sum(), budget / budget.sum(), rtol=1e-8)
        rows.append(
            row(
                f"risk budgets (custom), {n} assets, {len(r)} days",
                _per_call(lambda r=r, s=ours, c=cons: s.allocate_detailed(r, c), 50),
                "skfolio RiskBudgeting(risk_budget).fit",
                _per_call(peer, 3),
                ">= 10x",
            )
        )
    return rows


def main() -> list[dict]:
    returns = _returns()
    print("job | ours | peer | ratio | target")
    return [
        *max_sharpe_jobs(returns),
        *max_sharpe_scaling_jobs(),
        walk_forward_max_sharpe_job(),
        *min_volatility_jobs(returns),
        *hrp_jobs(returns),
        *breadth_jobs(returns),
        *risk_budget_jobs(returns),
    ]


if __name__ == "__main__":
    main()
