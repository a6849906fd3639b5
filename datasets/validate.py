"""Candle validation: which rows are physically impossible, and why.

A candle is invalid when a value is not finite, a price is <= 0, volume < 0, or
``high < max(open, close)`` / ``low > min(open, close)``. Invalid candles are reported (never
silently dropped) and kept out of the panel by the loaders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close")


def invalid_candle_mask(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(bad, reason_code)`` for a long/candle frame.

    ``reason_code`` is 0 for valid rows, else 1 non-finite, 2 non-positive price, 3 negative volume,
    4 high below open/close, 5 low above open/close (the first failing rule).
    """
    n = len(frame)
    reason = np.zeros(n, dtype=np.int8)
    cols = [c for c in PRICE_COLUMNS if c in frame.columns]
    prices = frame[cols].to_numpy(dtype=np.float64) if cols else np.empty((n, 0))
    volume = frame["volume"].to_numpy(dtype=np.float64) if "volume" in frame.columns else None

    def mark(cond: np.ndarray, code: int) -> None:
        reason[(reason == 0) & cond] = code

    finite = np.asarray(np.isfinite(prices).all(axis=1), dtype=bool)
    if volume is not None:
        finite &= np.isfinite(volume) | np.isnan(volume)
    mark(~finite, 1)
    with np.errstate(invalid="ignore"):
        mark(np.asarray((prices <= 0).any(axis=1), dtype=bool), 2)
        if volume is not None:
            mark(volume < 0, 3)
        if {"open", "high", "low", "close"} <= set(frame.columns):
            o, h, lo, c = (frame[k].to_numpy(dtype=np.float64) for k in PRICE_COLUMNS)
            mark(h < np.maximum(o, c), 4)
            mark(lo > np.minimum(o, c), 5)
    return reason != 0, reason


REASONS = {
    1: "non-finite value",
    2: "price <= 0",
    3: "negative volume",
    4: "high < max(open, close)",
    5: "low > min(open, close)",
}


def split_invalid(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a candle frame into ``(valid, invalid)``; ``invalid`` gains a ``reason`` column."""
    bad, code = invalid_candle_mask(frame)
    if not bad.any():
        return frame, frame.iloc[:0].assign(reason=pd.Series(dtype=str))
    invalid = frame.loc[bad].copy()
    invalid["reason"] = [REASONS[int(c)] for c in code[bad]]
    return frame.loc[~bad], invalid
