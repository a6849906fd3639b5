"""Performance by market regime: how each strategy did while the benchmark trended up or down, and in
calm or turbulent markets.

Two default regime families, both read from the benchmark equity curve and known *before* each bar
(the label of the return over bar ``t`` uses data up to bar ``t - 1`` only):

* ``trend``: the benchmark closed above / below its trailing ``ma_days``-day simple moving average.
* ``volatility``: the benchmark's trailing ``vol_days``-day realised volatility was above / at-or-below
  its median over the whole sample (the median is an ex-post split into two halves, fine for a
  report, not for a trading rule).

Windows in days become bars through the index spacing (median bar length), so 200 days is 200 daily
bars and 4,800 hourly bars. Bars before a window is full carry no label and are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from reports.series import simple_returns
from reports.validation import check_equity, check_periods_per_year

__all__ = ["regime_labels", "regime_performance"]

_COLUMNS = [
    "strategy",
    "regime_type",
    "regime",
    "n_periods",
    "share",
    "total_return",
    "ann_return",
    "volatility",
    "max_drawdown",
]


def median_bars_per_day(index: pd.DatetimeIndex) -> float:
    """Bars per calendar day from the median spacing of ``index`` (1.0 for a single bar)."""
    if len(index) < 2:
        return 1.0
    step_ns = float(np.median(np.diff(index.as_unit("ns").asi8)))
    return 86_400e9 / step_ns


def _window(days: float, bars_day: float, name: str) -> int:
    if not isinstance(days, (int, float)) or not math.isfinite(days) or days <= 0:
        raise ValueError(f"`{name}` must be a number of days > 0; got {days!r}")
    return max(2, round(days * bars_day))


def regime_labels(
    benchmark: pd.Series, *, ma_days: float = 200.0, vol_days: float = 30.0
) -> pd.DataFrame:
    """Regime of each bar, decided from the benchmark up to the previous bar.

    Parameters
    ----------
    benchmark : Series of shape (n_bars,)
        Benchmark equity (or price), DatetimeIndex, finite and > 0.
    ma_days : float
        Length of the trend moving average, in days.
    vol_days : float
        Length of the realised-volatility window, in days.

    Returns
    -------
    DataFrame of shape (n_bars, 2)
        Columns ``trend`` (``"above {ma}d MA"`` / ``"below {ma}d MA"``) and ``volatility``
        (``"high vol"`` / ``"low vol"``), object dtype, None where the window is not yet full.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    >>> regime_labels(pd.Series([1.0, 2, 3, 2, 1, 2], index=idx), ma_days=2, vol_days=2)["trend"].tolist()
    [None, None, 'above 2d MA', 'above 2d MA', 'below 2d MA', 'below 2d MA']
    """
    benchmark = check_equity(benchmark, "benchmark")
    bars_day = median_bars_per_day(pd.DatetimeIndex(benchmark.index))
    ma_bars = _window(ma_days, bars_day, "ma_days")
    vol_bars = _window(vol_days, bars_day, "vol_days")
    price = benchmark.astype(np.float64)
    ma = price.rolling(ma_bars).mean()
    trend = np.where(price > ma, f"above {ma_days:g}d MA", f"below {ma_days:g}d MA").astype(object)
    trend[ma.isna().to_numpy()] = None
    vol = price.pct_change().rolling(vol_bars).std(ddof=1)
    high = vol > vol.median()
    volatility = np.where(high, "high vol", "low vol").astype(object)
    volatility[vol.isna().to_numpy()] = None
    labels = pd.DataFrame({"trend": trend, "volatility": volatility}, index=benchmark.index).shift(
        1
    )
    return labels.astype(object).where(labels.notna(), None)


def _segment_stats(r: np.ndarray, ppy: float) -> dict[str, float]:
    n = len(r)
    if n == 0:
        return {
            "total_return": math.nan,
            "ann_return": math.nan,
            "volatility": math.nan,
            "max_drawdown": math.nan,
        }
    growth = np.cumprod(1.0 + r)
    path = np.r_[1.0, growth]
    total = float(growth[-1] - 1.0)
    return {
        "total_return": total,
        "ann_return": (1.0 + total) ** (ppy / n) - 1.0,
        "volatility": float(np.std(r, ddof=1)) * math.sqrt(ppy) if n > 1 else math.nan,
        "max_drawdown": float(np.min(path / np.maximum.accumulate(path) - 1.0)),
    }


def regime_performance(
    equity_by_strategy: Mapping[str, pd.Series],
    benchmark: pd.Series,
    *,
    periods_per_year: float,
    ma_days: float = 200.0,
    vol_days: float = 30.0,
    include_benchmark: bool = True,
) -> pd.DataFrame:
    """Return, volatility and drawdown of each strategy within each regime.

    Within a regime, the strategy's returns on the regime's bars are chained (as if it were invested
    only then): ``total_return = prod(1 + r) - 1``, ``ann_return = (1 + total) ** (ppy / n) - 1``,
    ``volatility = std(r, ddof=1) * sqrt(ppy)``, ``max_drawdown`` of the chained curve. A row with
    ``regime_type = "all"`` covers every bar for reference.

    Parameters
    ----------
    equity_by_strategy : mapping of str to Series of shape (n_bars,)
        Equity curve of each strategy, on the benchmark's index.
    benchmark : Series of shape (n_bars,)
        Benchmark equity that defines the regimes (see :func:`regime_labels`).
    periods_per_year : float
        Bars per year for annualisation.
    ma_days, vol_days : float
        Windows of the trend and volatility regimes, in days.
    include_benchmark : bool
        Also report the benchmark itself (as strategy ``"benchmark"``).

    Returns
    -------
    DataFrame of shape (n_strategies * n_regimes, 9)
        Columns ``strategy``, ``regime_type``, ``regime``, ``n_periods``, ``share`` (of all returns),
        ``total_return``, ``ann_return``, ``volatility``, ``max_drawdown``.
    """
    ppy = check_periods_per_year(periods_per_year)
    if not isinstance(equity_by_strategy, Mapping) or not equity_by_strategy:
        raise ValueError(
            "`equity_by_strategy` must be a non-empty mapping of name -> equity Series"
        )
    labels = regime_labels(benchmark, ma_days=ma_days, vol_days=vol_days).iloc[1:]
    curves = dict(equity_by_strategy)
    if include_benchmark:
        curves.setdefault("benchmark", benchmark)
    rows = []
    for name, equity in curves.items():
        equity = check_equity(equity, f"equity_by_strategy[{name!r}]")
        if not equity.index.equals(benchmark.index):
            raise ValueError(
                f"`equity_by_strategy[{name!r}]` must have the benchmark's index ({len(benchmark)} bars); "
                f"got {len(equity)} bars (reindex it to the benchmark)"
            )
        values = equity.to_numpy(dtype=np.float64)
        r = simple_returns(values)
        rows.append(
            {
                "strategy": str(name),
                "regime_type": "all",
                "regime": "all bars",
                "n_periods": len(r),
                "share": 1.0,
                **_segment_stats(r, ppy),
            }
        )
        for regime_type in ("trend", "volatility"):
            column = labels[regime_type]
            for regime in sorted(column.dropna().unique()):
                mask = (column == regime).to_numpy()
                rows.append(
                    {
                        "strategy": str(name),
                        "regime_type": regime_type,
                        "regime": regime,
                        "n_periods": int(mask.sum()),
                        "share": float(mask.mean()),
                        **_segment_stats(r[mask], ppy),
                    }
                )
    return pd.DataFrame(rows, columns=_COLUMNS)
