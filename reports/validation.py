"""Input checks shared by the report modules: equity curves, ``periods_per_year``, windows, frames.

Each raises ``TypeError`` / ``ValueError`` with the parameter name, the offending value and the fix.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def check_equity(equity: object, name: str = "equity") -> pd.Series:
    """``equity`` itself when it is a Series of values > 0 on a strictly increasing DatetimeIndex;
    ``name`` is the parameter the messages name."""
    if not isinstance(equity, pd.Series):
        raise TypeError(
            f"`{name}` must be a pandas Series of portfolio values; got {type(equity).__name__}"
        )
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise TypeError(
            f"`{name}` must have a DatetimeIndex (UTC bar times); got {type(equity.index).__name__} "
            f"(set the bar times as the index)"
        )
    if not equity.index.is_monotonic_increasing or not equity.index.is_unique:
        raise ValueError(
            f"`{name}` index must be strictly increasing (sort it and drop duplicate times)"
        )
    check_values(equity.to_numpy(dtype=np.float64, na_value=np.nan), equity.index, name)
    return equity


def check_values(values: np.ndarray, index: pd.DatetimeIndex, name: str = "equity") -> np.ndarray:
    """``values`` (float64, one per bar of ``index``) itself when every one is finite and > 0: the
    value check of :func:`check_equity` for a path whose index is valid by construction."""
    if not (values > 0.0).all() or not np.isfinite(values).all():
        bad = ~np.isfinite(values) | (values <= 0)
        first = int(np.argmax(bad))
        raise ValueError(
            f"`{name}` must be finite and > 0 on every bar; got {float(values[first])!r} at "
            f"{index[first]} ({int(bad.sum())} bad bars; a wiped-out portfolio has no returns)"
        )
    return values


def check_periods_per_year(periods_per_year: float) -> float:
    """``periods_per_year`` as a float when it is finite and > 0."""
    ppy = float(periods_per_year)
    if not math.isfinite(ppy) or ppy <= 0:
        raise ValueError(
            f"`periods_per_year` must be a finite number > 0; got {periods_per_year!r} "
            f"(365 for daily crypto, 8760 for hourly crypto, 252 for daily stocks)"
        )
    return ppy


def check_window(window: int) -> int:
    """``window`` as an int when it is an integer number of bars >= 2 (not a bool)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"`window` must be an integer number of bars >= 2; got {window!r}")
    return int(window)


def check_frame(frame: object, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` itself when it is a DataFrame with every one of ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"`{name}` must be a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"`{name}` must have columns {list(columns)}; missing {missing} (got {list(frame.columns)})"
        )
    return frame
