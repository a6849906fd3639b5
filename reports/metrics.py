"""Performance metrics of an equity curve: one definition each, vectorised NumPy.

Every metric is computed from plain pandas objects (an equity Series, optional trades/weights/benchmark
frames) and returned under a stable name (regression baselines store these names). The formulas, and
where they differ from empyrical / quantstats, are in ``docs/metrics.md``.

Conventions
-----------
* Returns are simple per-bar returns ``r_t = E_t / E_{t-1} - 1`` of the equity curve ``E``.
* Annualisation uses ``periods_per_year`` (365 for daily crypto, 8760 for hourly crypto, 252 for daily
  stocks); ``years = n_periods / periods_per_year``.
* The annual risk-free rate is converted per bar geometrically: ``rf_p = (1 + rf)**(1/ppy) - 1``.
* Drawdowns and VaR/CVaR are negative fractions (``-0.25`` is a 25% loss).

The figures of the value path (returns, risk, drawdowns) come from one compiled loop
(:mod:`reports.kernels`): as a dozen NumPy passes they took about 2 ms on a 35,000-bar hourly curve,
more than the simulation kernel itself, and a backtest that reads only its metrics paid them on
every run. The loop's NumPy twin is the test oracle; the rest (trade sums, benchmark figures) stays
NumPy.

The per-bar series (returns, drawdowns, monthly and rolling figures) live in :mod:`reports.series`
and the input checks in :mod:`reports.validation`; the public series functions are importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from reports.kernels import PATH_STATS, dispersion_nb, path_stats_nb
from reports.series import (
    drawdown,
    drawdown_durations,
    monthly_returns,
    periodic_risk_free,
    returns_from_equity,
    rolling_sharpe,
    rolling_volatility,
    simple_returns,
    value_path,
)
from reports.validation import check_equity, check_frame, check_periods_per_year

__all__ = [
    "METRICS",
    "MetricSpec",
    "benchmark_metrics",
    "compute_metrics",
    "drawdown",
    "drawdown_durations",
    "exposure",
    "monthly_returns",
    "ordered",
    "path_metrics",
    "periodic_risk_free",
    "rebalance_diagnostics",
    "rebalance_metrics",
    "returns_from_equity",
    "rolling_sharpe",
    "rolling_volatility",
    "trade_metrics",
]

Fmt = Literal["pct", "ratio", "int", "money", "bps", "days", "bars", "float"]


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is labelled and formatted; ``higher_is_better`` is None when neither holds."""

    label: str
    fmt: Fmt
    higher_is_better: bool | None
    description: str


METRICS: dict[str, MetricSpec] = {
    "start_value": MetricSpec(
        "Start value", "money", None, "equity at the start (or `initial_value`)"
    ),
    "end_value": MetricSpec("End value", "money", True, "equity at the last bar"),
    "n_periods": MetricSpec("Periods", "int", None, "number of per-bar returns"),
    "years": MetricSpec("Years", "float", None, "n_periods / periods_per_year"),
    "total_return": MetricSpec("Total return", "pct", True, "E_end / E_start - 1"),
    "cagr": MetricSpec("CAGR", "pct", True, "(1 + total_return) ** (1 / years) - 1"),
    "volatility": MetricSpec("Volatility (ann.)", "pct", False, "std(r, ddof=1) * sqrt(ppy)"),
    "sharpe": MetricSpec("Sharpe", "ratio", True, "mean(r - rf_p) / std(r - rf_p) * sqrt(ppy)"),
    "sortino": MetricSpec(
        "Sortino", "ratio", True, "mean(r - rf_p) / downside deviation * sqrt(ppy)"
    ),
    "max_drawdown": MetricSpec("Max drawdown", "pct", True, "min(E / running max(E) - 1)"),
    "max_drawdown_duration_bars": MetricSpec(
        "Longest drawdown (bars)",
        "bars",
        False,
        "bars from a peak to its recovery (or the last bar)",
    ),
    "max_drawdown_duration_days": MetricSpec(
        "Longest drawdown (days)",
        "days",
        False,
        "calendar days from a peak to its recovery (or the last bar)",
    ),
    "calmar": MetricSpec("Calmar", "ratio", True, "cagr / |max_drawdown|"),
    "var_95": MetricSpec("VaR 95% (per bar)", "pct", True, "5th percentile of r (historical)"),
    "cvar_95": MetricSpec(
        "CVaR 95% (per bar)", "pct", True, "mean of the worst 5% of r (historical)"
    ),
    "best_period": MetricSpec("Best bar", "pct", True, "max(r)"),
    "worst_period": MetricSpec("Worst bar", "pct", True, "min(r)"),
    "hit_rate": MetricSpec("Hit rate", "pct", True, "share of non-zero returns that are > 0"),
    "exposure": MetricSpec("Exposure", "pct", None, "mean invested weight (1 - cash)"),
    "turnover": MetricSpec(
        "Turnover (ann.)", "pct", False, "sum(notional / E at trade bar) / 2 / years"
    ),
    "fees": MetricSpec("Fees paid", "money", False, "sum of trade fees"),
    "slippage": MetricSpec("Slippage paid", "money", False, "sum of trade slippage costs"),
    "impact": MetricSpec("Impact paid", "money", False, "sum of trade market-impact costs"),
    "total_costs": MetricSpec("Total costs", "money", False, "fees + slippage + impact"),
    "cost_drag_bps": MetricSpec(
        "Cost drag (bps/yr)", "bps", False, "sum(cost / E at trade bar) * 1e4 / years"
    ),
    "n_trades": MetricSpec("Trades", "int", None, "rows of the trade ledger"),
    "n_rebalances": MetricSpec("Rebalances", "int", None, "rows of the rebalance log"),
    "mean_rebalance_turnover": MetricSpec(
        "Mean turnover / rebalance", "pct", None, "mean of the rebalance log's `turnover`"
    ),
    "n_fallbacks": MetricSpec(
        "Rebalances with allocator notes",
        "int",
        None,
        "rebalances whose `notes` is non-empty (fallbacks)",
    ),
    "tracking_error": MetricSpec("Tracking error", "pct", False, "std(r - r_b) * sqrt(ppy)"),
    "information_ratio": MetricSpec(
        "Information ratio", "ratio", True, "mean(r - r_b) / std(r - r_b) * sqrt(ppy)"
    ),
    "beta": MetricSpec("Beta", "ratio", None, "cov(r, r_b) / var(r_b)"),
    "correlation": MetricSpec("Correlation", "ratio", None, "corr(r, r_b)"),
}

_TRADE_COLUMNS = ("notional", "fee", "slippage", "impact")


# ---------------------------------------------------------------------------------------------
# metric groups


def _dispersion(x: np.ndarray) -> float:
    """Sample std (ddof=1) without rounding residue (:func:`reports.kernels.dispersion_nb`)."""
    return float(dispersion_nb(np.ascontiguousarray(x, dtype=np.float64)))


def _trade_positions(trades: pd.DataFrame, equity: pd.Series) -> np.ndarray:
    """Position in ``equity`` of each trade: by its ``time`` when present, else by ``bar``.

    ``time`` wins because it is unambiguous: an engine may number bars from the start of the market
    while the equity curve starts later (after the first lookback window).
    """
    if "time" in trades.columns:
        times = pd.DatetimeIndex(trades["time"])
        if times.tz is None and pd.DatetimeIndex(equity.index).tz is not None:
            times = times.tz_localize("UTC")
        pos = equity.index.get_indexer(times)
        if (pos < 0).any():
            bad = trades["time"].iloc[int(np.argmax(pos < 0))]
            raise ValueError(
                f"`trades['time']` must be bar times of `equity` "
                f"({equity.index[0]} .. {equity.index[-1]}); {bad} is not (trim the ledger to the curve)"
            )
        return pos
    if "bar" not in trades.columns:
        raise ValueError("`trades` must have a `time` or `bar` (position in `equity`) column")
    pos = trades["bar"].to_numpy()
    n = len(equity)
    if len(pos) and (not np.issubdtype(pos.dtype, np.integer) or pos.min() < 0 or pos.max() >= n):
        raise ValueError(
            f"`trades['bar']` must hold integer bar positions in [0, {n - 1}] of `equity`; "
            f"got dtype {pos.dtype} with range [{pos.min()}, {pos.max()}] (or give a `time` column)"
        )
    return pos.astype(np.int64)


def _trade_metrics(
    trades: pd.DataFrame | None, equity: pd.Series, years: float
) -> dict[str, float]:
    if trades is None:
        return trade_metrics(None, None, np.empty(0), years)
    trades = check_frame(trades, "trades", _TRADE_COLUMNS)
    cols = {c: trades[c].to_numpy(dtype=np.float64) for c in _TRADE_COLUMNS}
    for c in _TRADE_COLUMNS:
        bad = ~np.isfinite(cols[c]) | (cols[c] < 0)
        if bad.any():
            raise ValueError(
                f"`trades['{c}']` must be finite and >= 0; got {float(cols[c][bad][0])!r}"
            )
    positions = _trade_positions(trades, equity)
    return trade_metrics(cols, positions, equity.to_numpy(dtype=np.float64), years)


def trade_metrics(
    cols: Mapping[str, np.ndarray] | None,
    positions: np.ndarray | None,
    values: np.ndarray,
    years: float,
) -> dict[str, float]:
    """Turnover, costs and trade count from checked trade columns (``notional``, ``fee``,
    ``slippage``, ``impact``, each of shape (n_trades,)) and each trade's position in ``values``."""
    keys = ("turnover", "fees", "slippage", "impact", "total_costs", "cost_drag_bps", "n_trades")
    if cols is None or positions is None:
        return dict.fromkeys(keys, math.nan)
    value_at = values[positions]
    costs = cols["fee"] + cols["slippage"] + cols["impact"]
    return {
        "turnover": float(np.sum(cols["notional"] / value_at)) / 2.0 / years,
        "fees": float(cols["fee"].sum()),
        "slippage": float(cols["slippage"].sum()),
        "impact": float(cols["impact"].sum()),
        "total_costs": float(costs.sum()),
        "cost_drag_bps": float(np.sum(costs / value_at)) * 1e4 / years,
        "n_trades": float(len(positions)),
    }


def _benchmark_metrics(
    r: np.ndarray, benchmark: pd.Series | None, equity: pd.Series, ppy: float
) -> dict[str, float]:
    if benchmark is None:
        return benchmark_metrics(r, None, ppy)
    benchmark = check_equity(benchmark, "benchmark")
    if not benchmark.index.equals(equity.index):
        raise ValueError(
            f"`benchmark` must have the same index as `equity` ({len(equity)} bars from "
            f"{equity.index[0]}); got {len(benchmark)} bars from {benchmark.index[0]} "
            f"(use benchmark.reindex(equity.index))"
        )
    return benchmark_metrics(r, benchmark.to_numpy(dtype=np.float64), ppy)


def benchmark_metrics(r: np.ndarray, b: np.ndarray | None, ppy: float) -> dict[str, float]:
    """Tracking error, information ratio, beta and correlation of the returns ``r`` against the
    checked benchmark values ``b`` of shape (n_bars,) (None: all NaN)."""
    keys = ("tracking_error", "information_ratio", "beta", "correlation")
    if b is None:
        return dict.fromkeys(keys, math.nan)
    rb = b[1:] / b[:-1] - 1.0
    rs = r[len(r) - len(rb) :]
    if len(rs) < 2:
        return dict.fromkeys(keys, math.nan)
    active = rs - rb
    te = _dispersion(active)
    var_b = float(np.var(rb, ddof=1))
    cov = float(np.cov(rs, rb, ddof=1)[0, 1])
    sd_s = float(np.std(rs, ddof=1))
    return {
        "tracking_error": te * math.sqrt(ppy),
        "information_ratio": float(np.mean(active)) / te * math.sqrt(ppy) if te > 0 else math.nan,
        "beta": cov / var_b if var_b > 0 else math.nan,
        "correlation": cov / math.sqrt(var_b) / sd_s if var_b > 0 and sd_s > 0 else math.nan,
    }


def _exposure(weights: pd.DataFrame | None) -> float:
    if weights is None:
        return math.nan
    if not isinstance(weights, pd.DataFrame):
        raise TypeError(
            f"`weights` must be a pandas DataFrame (bars x symbols); got {type(weights).__name__}"
        )
    return exposure(weights.to_numpy(dtype=np.float64))


def exposure(weights: np.ndarray) -> float:
    """Mean invested weight of realised weights of shape (n_bars, n_assets), or of the invested
    share per bar of shape (n_bars,) (NaN when empty; a NaN weight counts as 0)."""
    if weights.size == 0:
        return math.nan
    invested = weights if weights.ndim == 1 else weights.sum(axis=1)
    if np.isnan(invested).any():  # the NaN-aware pass only where it changes something
        invested = np.nansum(weights.reshape(len(weights), -1), axis=1)
    return float(invested.mean())


def _rebalance_metrics(rebalances: pd.DataFrame | None) -> dict[str, float]:
    if rebalances is None:
        return rebalance_metrics(None, 0)
    rebalances = check_frame(rebalances, "rebalances", ("turnover",))
    notes = rebalances["notes"] if "notes" in rebalances.columns else pd.Series([], dtype=object)
    has_note = notes.fillna("").astype(str).str.strip().ne("")
    return rebalance_metrics(rebalances["turnover"].to_numpy(dtype=np.float64), int(has_note.sum()))


def rebalance_metrics(turnover: np.ndarray | None, n_fallbacks: int) -> dict[str, float]:
    """The rebalance log's summary from its ``turnover`` of shape (n_rebalances,) and the number
    of rebalances with notes (None: all NaN)."""
    keys = ("n_rebalances", "mean_rebalance_turnover", "n_fallbacks")
    if turnover is None:
        return dict.fromkeys(keys, math.nan)
    return {
        "n_rebalances": float(len(turnover)),
        "mean_rebalance_turnover": float(np.mean(turnover)) if len(turnover) else math.nan,
        "n_fallbacks": float(n_fallbacks),
    }


def compute_metrics(
    equity: pd.Series,
    *,
    periods_per_year: float,
    risk_free_rate: float = 0.02,
    trades: pd.DataFrame | None = None,
    weights: pd.DataFrame | None = None,
    benchmark: pd.Series | None = None,
    initial_value: float | None = None,
    rebalances: pd.DataFrame | None = None,
) -> dict[str, float]:
    """All performance metrics of one equity curve, under stable names (see :data:`METRICS`).

    Parameters
    ----------
    equity : Series of shape (n_bars,)
        Portfolio value per bar in quote currency, increasing UTC DatetimeIndex, finite and > 0.
    periods_per_year : float
        Bars per year used to annualise (365 daily crypto, 8760 hourly crypto, 252 daily stocks).
    risk_free_rate : float
        Annual risk-free rate (0.02 = 2%), de-annualised geometrically per bar.
    trades : DataFrame of shape (n_trades, ...), optional
        Ledger with ``notional``, ``fee``, ``slippage``, ``impact`` (quote currency, >= 0) and ``bar``
        (position in ``equity``) or ``time``. Without it the trade metrics are NaN.
    weights : DataFrame of shape (n_bars, n_assets), optional
        Realised weights per bar; gives ``exposure``.
    benchmark : Series of shape (n_bars,), optional
        Benchmark equity on the same index; gives tracking error, information ratio, beta, correlation.
    initial_value : float, optional
        Value before the first bar (e.g. the initial cash when ``E_0`` is already net of the first
        trades' costs); adds the return ``E_0 / initial_value - 1``.
    rebalances : DataFrame of shape (n_rebalances, ...), optional
        Rebalance log with ``turnover`` and ``notes``; gives the per-rebalance summary.

    Returns
    -------
    dict of str to float
        Every key of :data:`METRICS`, in that order; NaN where the input needed is missing or the
        metric is undefined (e.g. Sharpe of a constant curve). Counts are floats too.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    >>> m = compute_metrics(pd.Series([100.0, 110.0, 99.0, 108.9], index=idx), periods_per_year=365)
    >>> round(m["total_return"], 4), round(m["max_drawdown"], 4), m["hit_rate"]
    (0.089, -0.1, 0.6666666666666666)
    """
    equity = check_equity(equity)
    ppy = check_periods_per_year(periods_per_year)
    rf_p = periodic_risk_free(risk_free_rate, ppy)
    values, times = value_path(equity, initial_value)
    if len(values) < 2:
        raise ValueError(
            f"`equity` must have at least 2 bars (or 1 bar and `initial_value`); got {len(equity)}"
        )
    r = simple_returns(values)
    out = path_metrics(values, times, r, ppy, rf_p)
    out["exposure"] = _exposure(weights)
    out.update(_trade_metrics(trades, equity, out["years"]))
    out.update(_rebalance_metrics(rebalances))
    out.update(_benchmark_metrics(r, benchmark, equity, ppy))
    return ordered(out)


def path_metrics(
    values: np.ndarray, times: pd.DatetimeIndex, r: np.ndarray, ppy: float, rf_p: float
) -> dict[str, float]:
    """The return, risk and drawdown metrics of a checked value path of shape (n,) with at least
    2 values, its times and its :func:`~reports.series.simple_returns` ``r``
    (:func:`reports.kernels.path_stats_nb`)."""
    stats = path_stats_nb(
        np.ascontiguousarray(values, dtype=np.float64),
        np.ascontiguousarray(r, dtype=np.float64),
        times.asi8,  # in the index's own unit: no converted copy
        86_400.0 * {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[times.unit],
        float(ppy),
        float(rf_p),
    )
    return dict(zip(PATH_STATS, stats.tolist(), strict=True))


def ordered(out: Mapping[str, float]) -> dict[str, float]:
    """Every key of :data:`METRICS`, in that order, as floats (what :func:`compute_metrics` returns)."""
    return {name: float(out[name]) for name in METRICS}


def rebalance_diagnostics(
    rebalances: pd.DataFrame, equity: pd.Series | None = None
) -> pd.DataFrame:
    """Per-rebalance table: time, turnover, costs (and in bps of equity), trades, method, notes.

    Parameters
    ----------
    rebalances : DataFrame of shape (n_rebalances, ...)
        Columns ``time``, ``turnover``, ``fees``, ``slippage``, ``impact``; optional ``n_trades``,
        ``method``, ``notes``.
    equity : Series of shape (n_bars,), optional
        When given, ``cost_bps`` = costs / equity at the rebalance bar (last bar at or before ``time``).

    Returns
    -------
    DataFrame of shape (n_rebalances, 8)
        Columns ``time``, ``turnover``, ``costs``, ``cost_bps``, ``n_trades``, ``method``, ``notes``,
        ``fallback`` (notes non-empty).
    """
    rebalances = check_frame(
        rebalances, "rebalances", ("time", "turnover", "fees", "slippage", "impact")
    )
    costs = rebalances[["fees", "slippage", "impact"]].to_numpy(dtype=np.float64).sum(axis=1)
    cost_bps = np.full(len(rebalances), np.nan)
    if equity is not None:
        equity = check_equity(equity)
        pos = equity.index.searchsorted(pd.DatetimeIndex(rebalances["time"]), side="right") - 1
        cost_bps = costs / equity.to_numpy(dtype=np.float64)[np.clip(pos, 0, None)] * 1e4
    notes = rebalances.get("notes", pd.Series("", index=rebalances.index)).fillna("").astype(str)
    return pd.DataFrame(
        {
            "time": pd.DatetimeIndex(rebalances["time"]),
            "turnover": rebalances["turnover"].to_numpy(dtype=np.float64),
            "costs": costs,
            "cost_bps": cost_bps,
            "n_trades": rebalances.get(
                "n_trades", pd.Series(np.nan, index=rebalances.index)
            ).to_numpy(),
            "method": rebalances.get("method", pd.Series("", index=rebalances.index))
            .fillna("")
            .astype(str)
            .to_numpy(),
            "notes": notes.to_numpy(),
            "fallback": notes.str.strip().ne("").to_numpy(),
        }
    )
