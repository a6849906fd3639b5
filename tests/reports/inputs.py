"""Backtest-shaped inputs for the reports tests and benchmark, built without the engine.

A seeded correlated random walk is rebalanced to Dirichlet target weights every ``every`` bars by a
plain loop (sell/buy at the close, fees/slippage/impact in bps of notional, no cash constraint needed
since costs are tiny). The objects have exactly the shapes the engine hands to ``reports``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def random_walk_prices(
    n_bars: int,
    n_assets: int,
    *,
    seed: int = 0,
    freq: str = "D",
    start: str = "2019-01-01",
    symbols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Correlated GBM closes, shape (n_bars, n_assets), UTC index."""
    rng = np.random.default_rng(seed)
    market = rng.standard_t(5, size=(n_bars, 1)) * 0.02
    idio = rng.standard_t(5, size=(n_bars, n_assets)) * 0.025
    drift = rng.normal(0.0004, 0.0006, size=n_assets)
    log_r = drift + market * rng.uniform(0.5, 1.5, size=n_assets) + idio
    log_r[0] = 0.0
    prices = 100.0 * np.exp(np.cumsum(log_r, axis=0))
    index = pd.date_range(start, periods=n_bars, freq=freq, tz="UTC")
    cols = list(symbols) if symbols is not None else [f"A{i:02d}/USDT" for i in range(n_assets)]
    return pd.DataFrame(prices, index=index, columns=cols)


def simulate(
    prices: pd.DataFrame,
    *,
    every: int = 7,
    seed: int = 1,
    initial_cash: float = 100_000.0,
    fee_bps: float = 10.0,
    slippage_bps: float = 5.0,
    impact_bps: float = 1.0,
) -> dict[str, Any]:
    """Rebalance to random target weights every ``every`` bars; return engine-shaped outputs."""
    rng = np.random.default_rng(seed)
    p = prices.to_numpy()
    n_bars, n_assets = p.shape
    units = np.zeros(n_assets)
    cash = initial_cash
    equity = np.empty(n_bars)
    weights = np.empty((n_bars, n_assets))
    trades, rebalances, targets = [], [], []
    for t in range(n_bars):
        if t % every == 0:
            value = cash + units @ p[t]
            target = rng.dirichlet(np.ones(n_assets)) * 0.98
            delta = target * value - units * p[t]
            traded = np.abs(delta) > 1.0
            notional = np.abs(delta[traded])
            fee, slip, imp = (
                notional * fee_bps / 1e4,
                notional * slippage_bps / 1e4,
                notional * impact_bps / 1e4,
            )
            units[traded] += delta[traded] / p[t, traded]
            cash -= delta[traded].sum() + fee.sum() + slip.sum() + imp.sum()
            for j, k in enumerate(np.flatnonzero(traded)):
                trades.append(
                    {
                        "time": prices.index[t],
                        "bar": t,
                        "symbol": prices.columns[k],
                        "side": "buy" if delta[k] > 0 else "sell",
                        "units": abs(delta[k] / p[t, k]),
                        "price": p[t, k],
                        "notional": notional[j],
                        "fee": fee[j],
                        "slippage": slip[j],
                        "impact": imp[j],
                    }
                )
            rebalances.append(
                {
                    "time": prices.index[t],
                    "turnover": notional.sum() / value / 2,
                    "fees": fee.sum(),
                    "slippage": slip.sum(),
                    "impact": imp.sum(),
                    "n_trades": int(traded.sum()),
                    "method": "max_sharpe" if t % (5 * every) else "min_volatility",
                    "notes": "" if t % (5 * every) else "covariance ill-conditioned: fell back",
                }
            )
            targets.append(pd.Series(target, index=prices.columns, name=prices.index[t]))
        equity[t] = cash + units @ p[t]
        weights[t] = units * p[t] / equity[t]
    trade_cols = [
        "time",
        "bar",
        "symbol",
        "side",
        "units",
        "price",
        "notional",
        "fee",
        "slippage",
        "impact",
    ]
    return {
        "equity": pd.Series(equity, index=prices.index, name="equity"),
        "weights": pd.DataFrame(weights, index=prices.index, columns=prices.columns),
        "target_weights": pd.DataFrame(targets),
        "trades": pd.DataFrame(trades, columns=trade_cols),
        "rebalances": pd.DataFrame(rebalances),
    }


def frontier_and_linkage(prices: pd.DataFrame, n_points: int = 40) -> dict[str, Any]:
    """A long-only frontier sampled from random portfolios, and a single-linkage tree of the assets."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    r = prices.pct_change().dropna().to_numpy()
    mu, cov = r.mean(axis=0) * 365, np.cov(r.T) * 365
    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(r.shape[1]) * 0.3, size=4000)
    ret = w @ mu
    vol = np.sqrt(np.einsum("ij,jk,ik->i", w, cov, w))
    edges = np.linspace(ret.min(), ret.max(), n_points + 1)
    keep = []
    for lo, hi in itertools.pairwise(edges):
        inside = np.flatnonzero((ret >= lo) & (ret <= hi))
        if len(inside):
            keep.append(inside[np.argmin(vol[inside])])
    frontier = pd.DataFrame(
        {"return": ret[keep], "volatility": vol[keep], "sharpe": (ret[keep] - 0.02) / vol[keep]}
    )
    frontier = pd.concat([frontier, pd.DataFrame(w[keep], columns=prices.columns)], axis=1)
    best = int(frontier["sharpe"].idxmax())
    corr = np.corrcoef(r.T)
    dist = np.sqrt(np.clip((1 - corr) / 2, 0, None))
    np.fill_diagonal(dist, 0.0)
    z = linkage(squareform(dist, checks=False), method="single")
    return {
        "frontier": frontier,
        "chosen": {"return": frontier["return"][best], "volatility": frontier["volatility"][best]},
        "linkage": z,
        "linkage_labels": list(prices.columns),
    }


def make_backtest(
    n_bars: int = 400,
    n_assets: int = 6,
    *,
    seed: int = 0,
    freq: str = "D",
    symbols: Sequence[str] | None = None,
    strategy: str = "demo",
    synthetic: bool = True,
) -> dict[str, Any]:
    """Everything ``write_report`` takes: equity, benchmark, weights, trades, rebalances, meta, frontier..."""
    prices = random_walk_prices(n_bars, n_assets, seed=seed, freq=freq, symbols=symbols)
    out = simulate(prices)
    bench = prices.iloc[:, 0] / prices.iloc[0, 0] * 100_000.0
    ppy = 365.0 * (24.0 if freq.lower() in ("h", "1h") else 1.0)
    out["benchmark"] = bench.rename("benchmark")
    out["meta"] = {
        "title": f"Backtest of {strategy}",
        "strategy": strategy,
        "strategy_params": {"lookback_days": 90, "risk_free_rate": 0.02},
        "data_source": "random walk (tests/reports/inputs.py)",
        "synthetic": synthetic,
        "timeframe": "1h" if ppy > 365 else "1d",
        "periods_per_year": ppy,
        "risk_free_rate": 0.02,
        "gap_policy": "forward-fill up to 3 bars, flagged",
        "data_notes": ["no gaps found"],
        "universe_changes": [f"{prices.index[10]:%Y-%m-%d}: {prices.columns[-1]} listed"],
        "symbols": list(prices.columns),
        "config": {"strategy": {"name": strategy}, "costs": {"fee_bps": 10}},
    }
    out.update(frontier_and_linkage(prices))
    return out


REPORT_KEYS = (
    "equity",
    "benchmark",
    "weights",
    "trades",
    "rebalances",
    "meta",
    "frontier",
    "chosen",
    "linkage",
    "linkage_labels",
)
RESULT_KEYS = ("equity", "weights", "trades", "rebalances", "meta", "benchmark")


def report_kwargs(bt: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``write_report`` out of a :func:`make_backtest` dict."""
    return {k: bt[k] for k in REPORT_KEYS}


def comparison_entry(bt: dict[str, Any]) -> dict[str, Any]:
    """One value of ``write_comparison``'s ``results`` out of a :func:`make_backtest` dict."""
    return {k: bt[k] for k in RESULT_KEYS}


def random_curves(
    seed: int,
    n: int = 900,
    *,
    beta: float = 0.6,
    start: str = "2020-01-01",
    freq: str = "D",
    start_value: float = 1e5,
) -> tuple[pd.Series, pd.Series]:
    """A strategy equity curve and a fat-tailed benchmark curve (``n`` returns each, UTC index)."""
    rng = np.random.default_rng(seed)
    rb = rng.standard_t(4, n) * 0.022 + 0.0007
    rs = beta * rb + rng.normal(0.0003, 0.013, n)
    idx = pd.date_range(start, periods=n + 1, freq=freq, tz="UTC")
    return (
        pd.Series(start_value * np.cumprod(np.r_[1.0, 1 + rs]), index=idx),
        pd.Series(start_value * np.cumprod(np.r_[1.0, 1 + rb]), index=idx),
    )
