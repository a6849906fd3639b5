"""A seeded synthetic OHLCV market: the offline default for the demo and the tests.

The model, per bar: a market factor, one factor per cluster and an idiosyncratic term, each a
Student-t shock (fat tails) scaled by its own GARCH(1,1) volatility (volatility clustering). Assets
list on staggered dates (NaN before listing). Candles are built around the close path; volume is
log-normal and rises with absolute returns. Everything it makes is labelled ``synthetic``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from datasets.panel import FIELDS, MarketData
from datasets.timeframe import bars_per_day, timeframe_to_ms


def _garch_shocks(
    rng: np.random.Generator,
    n_bars: int,
    n_series: int,
    daily_vol: np.ndarray,
    bars_day: float,
    dof: float,
) -> np.ndarray:
    """GARCH(1,1) paths of Student-t shocks with long-run per-bar vol ``daily_vol / sqrt(bars_day)``."""
    alpha, beta = 0.08, 0.90
    long_var = (daily_vol**2) / bars_day
    omega = long_var * (1 - alpha - beta)
    z = rng.standard_t(dof, size=(n_bars, n_series)) / np.sqrt(dof / (dof - 2))
    out = np.empty((n_bars, n_series))
    var = long_var.copy()
    for t in range(n_bars):
        out[t] = np.sqrt(var) * z[t]
        var = omega + alpha * out[t] ** 2 + beta * var
    return out


def _exp(x: np.ndarray) -> np.ndarray:
    """``exp`` of every element through the C library. numpy's own ``exp`` takes a SIMD path on
    AVX-512 machines whose last bits differ from the C library's, and a seeded market must be the
    same on every machine (regression baselines hash it)."""
    flat = np.asarray(x, dtype=np.float64).ravel()
    return np.fromiter(map(math.exp, flat), dtype=np.float64, count=flat.size).reshape(np.shape(x))


def synthetic_market(
    n_assets: int = 12,
    n_bars: int = 1500,
    *,
    timeframe: str = "1d",
    n_clusters: int = 3,
    start: str = "2019-01-01",
    seed: int = 7,
    stagger: bool = True,
    quote: str = "USDT",
) -> MarketData:
    """Generate a reproducible synthetic market.

    Parameters
    ----------
    n_assets : int
        Number of assets (named ``SYN00/USDT``, ``SYN01/USDT``, ...).
    n_bars : int
        Number of bars.
    timeframe : str
        Bar length (``"1d"``, ``"1h"`` ...); volatilities scale with it.
    n_clusters : int
        Number of correlated groups.
    start : str
        Open time of the first bar (UTC).
    seed : int
        Seed of the random generator; the same arguments always give the same market.
    stagger : bool
        When True, about a third of the assets list later (NaN before their first bar).

    Examples
    --------
    >>> m = synthetic_market(n_assets=4, n_bars=100, seed=1)
    >>> m.synthetic, m.close.shape
    (True, (100, 4))
    """
    if n_assets < 1 or n_bars < 2:
        raise ValueError(f"`n_assets` must be >= 1 and `n_bars` >= 2; got {n_assets}, {n_bars}")
    if n_clusters < 1:
        raise ValueError(f"`n_clusters` must be >= 1; got {n_clusters}")
    rng = np.random.default_rng(seed)
    bars_day = bars_per_day(timeframe)
    cluster = np.arange(n_assets) % n_clusters
    market = _garch_shocks(rng, n_bars, 1, np.array([0.025]), bars_day, 4.0)[:, 0]
    clusters = _garch_shocks(rng, n_bars, n_clusters, np.full(n_clusters, 0.02), bars_day, 4.0)
    idio_vol = rng.uniform(0.01, 0.04, n_assets)
    idio = _garch_shocks(rng, n_bars, n_assets, idio_vol, bars_day, 3.5)
    beta = rng.uniform(0.6, 1.4, n_assets)
    drift = rng.normal(0.0004, 0.0006, n_assets) / bars_day
    log_ret = drift + beta * market[:, None] + clusters[:, cluster] + idio
    log_ret = np.clip(log_ret, -0.6, 0.6)

    start_price = _exp(rng.uniform(math.log(0.5), math.log(30_000), n_assets))
    close = start_price * _exp(np.cumsum(log_ret, axis=0))
    prev = np.vstack([start_price, close[:-1]])
    open_ = prev * _exp(rng.normal(0, 0.001, (n_bars, n_assets)))
    spread = np.abs(rng.normal(0, 1, (n_bars, n_assets))) * (idio_vol / np.sqrt(bars_day)) * 0.6
    high = np.maximum(open_, close) * _exp(spread)
    low = np.minimum(open_, close) * _exp(-np.abs(rng.normal(0, 1, (n_bars, n_assets))) * spread)
    base_volume = 5e6 / start_price / bars_day
    volume = base_volume * _exp(rng.normal(0, 0.3, (n_bars, n_assets)) + 8 * np.abs(log_ret))

    if stagger and n_assets > 2:
        late = rng.choice(np.arange(1, n_assets), size=n_assets // 3, replace=False)
        for j in late:
            first = int(rng.integers(n_bars // 10, n_bars // 2))
            for arr in (open_, high, low, close, volume):
                arr[:first, j] = np.nan

    step = timeframe_to_ms(timeframe)
    t0 = pd.Timestamp(start, tz="UTC").value // 1_000_000
    index = pd.DatetimeIndex(
        pd.to_datetime(t0 + step * np.arange(n_bars), unit="ms", utc=True), name="time"
    )
    arrays = dict(zip(FIELDS, (open_, high, low, close, volume), strict=True))
    return MarketData(
        index=index,
        symbols=tuple(f"SYN{j:02d}/{quote}" for j in range(n_assets)),
        timeframe=timeframe,
        arrays={k: np.ascontiguousarray(v) for k, v in arrays.items()},
        source=f"synthetic(seed={seed})",
        synthetic=True,
        notes=("synthetic data: generated by datasets.synthetic_market, not market prices",),
    )
