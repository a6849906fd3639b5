"""Series derived from an equity curve: returns, drawdowns and their spells, monthly and rolling figures.

The building blocks of :mod:`reports.metrics` (which re-exports the public ones); same conventions:
simple per-bar returns, ``periods_per_year`` annualisation, geometric per-bar risk-free rate.
Formulas: docs/metrics.md.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.kernels import RETURN_RESOLUTION
from reports.validation import check_equity, check_periods_per_year, check_window


def periodic_risk_free(risk_free_rate: float, periods_per_year: float) -> float:
    """Per-bar risk-free rate ``(1 + rf) ** (1 / ppy) - 1`` (geometric de-annualisation).

    >>> round(periodic_risk_free(0.02, 365), 10)
    5.42552e-05
    """
    rf = float(risk_free_rate)
    if not math.isfinite(rf) or rf <= -1:
        raise ValueError(
            f"`risk_free_rate` must be an annual rate > -1 (0.02 is 2%); got {risk_free_rate!r}"
        )
    return (1.0 + rf) ** (1.0 / check_periods_per_year(periods_per_year)) - 1.0


def value_path(
    equity: pd.Series, initial_value: float | None
) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Equity values with ``initial_value`` prepended, and their times (the initial value one bar earlier)."""
    values = equity.to_numpy(dtype=np.float64)
    index = pd.DatetimeIndex(equity.index)
    if initial_value is None:
        return values, index
    iv = float(initial_value)
    if not math.isfinite(iv) or iv <= 0:
        raise ValueError(f"`initial_value` must be a finite number > 0; got {initial_value!r}")
    before = index[0] - (index[1] - index[0]) if len(index) > 1 else index[0]
    times = pd.DatetimeIndex(pd.DatetimeIndex([before]).append(index))
    return np.concatenate([[iv], values]), times


def simple_returns(values: np.ndarray) -> np.ndarray:
    """``values[1:] / values[:-1] - 1`` with float noise (``|r| < RETURN_RESOLUTION``) set to 0."""
    r = values[1:] / values[:-1] - 1.0
    r[np.abs(r) < RETURN_RESOLUTION] = 0.0
    return r


def returns_from_equity(equity: pd.Series, initial_value: float | None = None) -> pd.Series:
    """Simple per-bar returns of an equity curve.

    Parameters
    ----------
    equity : Series of shape (n_bars,)
        Portfolio value per bar (quote currency), DatetimeIndex.
    initial_value : float, optional
        Value before the first bar; when given, the first return is ``E_0 / initial_value - 1``.

    Returns
    -------
    Series of shape (n_bars - 1,) or (n_bars,) with ``initial_value``
        ``r_t = E_t / E_{t-1} - 1``, indexed by the bar at which each return ends.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    >>> returns_from_equity(pd.Series([100.0, 110.0, 99.0], index=idx)).round(4).tolist()
    [0.1, -0.1]
    """
    equity = check_equity(equity)
    values, _ = value_path(equity, initial_value)
    r = simple_returns(values)
    index = equity.index if initial_value is not None else equity.index[1:]
    return pd.Series(r, index=index, name=equity.name)


def drawdown(equity: pd.Series, initial_value: float | None = None) -> pd.Series:
    """Drawdown ``E_t / max_{s<=t} E_s - 1`` per bar (0 at a new high, negative below it).

    Parameters
    ----------
    equity : Series of shape (n_bars,)
        Portfolio value per bar.
    initial_value : float, optional
        Value before the first bar; it seeds the running maximum.

    Returns
    -------
    Series of shape (n_bars,)

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    >>> drawdown(pd.Series([100.0, 120.0, 90.0, 130.0], index=idx)).tolist()
    [0.0, 0.0, -0.25, 0.0]
    """
    equity = check_equity(equity)
    values, _ = value_path(equity, initial_value)
    dd = values / np.maximum.accumulate(values) - 1.0
    return pd.Series(dd[len(values) - len(equity) :], index=equity.index, name="drawdown")


def drawdown_durations(values: np.ndarray, times: pd.DatetimeIndex) -> pd.DataFrame:
    """Every drawdown spell of a value path: peak, recovery (or last bar), depth and duration.

    Parameters
    ----------
    values : ndarray of shape (n,)
        Positive values (equity path).
    times : DatetimeIndex of shape (n,)
        Time of each value.

    Returns
    -------
    DataFrame with one row per spell and columns ``peak`` / ``end`` (positions), ``recovered``,
    ``depth`` (min drawdown in the spell, negative), ``bars`` (end - peak) and ``days``. A spell ends at
    the first bar back at or above its peak; an unrecovered spell ends at the last bar.
    """
    n = len(values)
    running_max = np.maximum.accumulate(values)
    at_peak = values >= running_max
    pos = np.arange(n)
    peak_pos = np.maximum.accumulate(np.where(at_peak, pos, 0))
    under = ~at_peak
    if not under.any():
        return pd.DataFrame(
            {"peak": [], "end": [], "recovered": [], "depth": [], "bars": [], "days": []}
        )
    t_under = pos[under]
    p_under = peak_pos[under]
    last = np.r_[p_under[1:] != p_under[:-1], True]
    starts = np.r_[0, np.flatnonzero(last)[:-1] + 1]
    peaks = p_under[last]
    ends = np.minimum(t_under[last] + 1, n - 1)
    recovered = t_under[last] + 1 <= n - 1
    depth = np.minimum.reduceat(values[under] / running_max[under] - 1.0, starts)
    ns = times.asi8 if times.unit == "ns" else times.as_unit("ns").asi8
    days = (ns[ends] - ns[peaks]) / 86_400e9
    return pd.DataFrame(
        {
            "peak": peaks,
            "end": ends,
            "recovered": recovered,
            "depth": depth,
            "bars": ends - peaks,
            "days": days,
        }
    )


def _naive_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return index if index.tz is None else index.tz_convert("UTC").tz_localize(None)


def monthly_returns(equity: pd.Series, initial_value: float | None = None) -> pd.DataFrame:
    """Compounded return of each calendar month (UTC), as a years x months table.

    The first month's return is measured from the first value of the path (``initial_value`` or
    ``E_0``), so partial first/last months hold the return over the bars they contain.

    Returns
    -------
    DataFrame of shape (n_years, 12)
        Index: year (int); columns: month 1..12; NaN where the month has no bars.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-30", periods=4, freq="D", tz="UTC")
    >>> monthly_returns(pd.Series([100.0, 110.0, 121.0, 110.0], index=idx)).loc[2024, [1, 2]].round(4).tolist()
    [0.1, 0.0]
    """
    equity = check_equity(equity)
    values, _ = value_path(equity, initial_value)
    month_end = equity.groupby(_naive_utc(pd.DatetimeIndex(equity.index)).to_period("M")).last()
    previous = np.r_[values[0], month_end.to_numpy(dtype=np.float64)[:-1]]
    rets = pd.Series(month_end.to_numpy(dtype=np.float64) / previous - 1.0, index=month_end.index)
    months = pd.PeriodIndex(rets.index)
    table = pd.DataFrame({"year": months.year, "month": months.month, "r": rets.to_numpy()})
    out = table.pivot(index="year", columns="month", values="r").reindex(columns=range(1, 13))
    out.columns.name = "month"
    return out


def rolling_sharpe(
    equity: pd.Series,
    window: int,
    *,
    periods_per_year: float,
    risk_free_rate: float = 0.02,
) -> pd.Series:
    """Annualised Sharpe ratio over a trailing window of ``window`` returns (NaN until it is full).

    Same formula as :func:`compute_metrics`' ``sharpe`` applied to each window.

    Returns
    -------
    Series of shape (n_bars - 1,), indexed like :func:`returns_from_equity`.
    """
    window = check_window(window)
    ppy = check_periods_per_year(periods_per_year)
    excess = returns_from_equity(equity) - periodic_risk_free(risk_free_rate, ppy)
    roll = excess.rolling(window)
    sd = roll.std(ddof=1)
    out = roll.mean() / sd.where(sd > 0) * math.sqrt(ppy)
    return out.rename("rolling_sharpe")


def rolling_volatility(equity: pd.Series, window: int, *, periods_per_year: float) -> pd.Series:
    """Annualised volatility ``std(r, ddof=1) * sqrt(ppy)`` over a trailing window of returns.

    Returns
    -------
    Series of shape (n_bars - 1,), indexed like :func:`returns_from_equity`.
    """
    window = check_window(window)
    ppy = check_periods_per_year(periods_per_year)
    out = returns_from_equity(equity).rolling(window).std(ddof=1) * math.sqrt(ppy)
    return out.rename("rolling_volatility")
