"""Synthetic candle frames for store tests (real data comes from the shared fixtures)."""

from __future__ import annotations

import numpy as np
import pandas as pd

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def ms(text: str) -> int:
    """UTC epoch milliseconds of a date string."""
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def candles(
    start: str, n: int, step_ms: int = HOUR, seed: int = 0, price: float = 100.0
) -> pd.DataFrame:
    """``n`` valid candles from ``start`` with 2-decimal prices and 4-decimal volumes."""
    rng = np.random.default_rng(seed)
    t0 = int(pd.Timestamp(start, tz="UTC").value // 1_000_000)
    close = np.round(price * np.exp(np.cumsum(rng.normal(0, 0.01, n))), 2)
    open_ = np.round(np.r_[price, close[:-1]], 2)
    high = np.round(np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n)), 2)
    low = np.round(np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n)), 2)
    volume = np.round(rng.uniform(1, 1000, n), 4)
    return pd.DataFrame(
        {
            "timestamp_ms": t0 + step_ms * np.arange(n, dtype=np.int64),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
