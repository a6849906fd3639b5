"""Stationary block bootstrap of a market panel (Politis and Romano, 1994).

A resampled market is a new path of the same market: its bar ``t`` takes the returns (all assets at
once, so the cross-section is kept) of a source bar ``s(t)``. Sources come in blocks: ``s(t) =
s(t-1) + 1`` with probability ``1 - 1/L``, a fresh uniform draw otherwise, so blocks have a
geometric length of mean ``L`` and the series' short-range dependence (volatility clusters) is kept
inside them. The listing pattern is kept too: an asset has a return at ``t`` in the sample exactly
when it has one at ``t`` in the data (listings, delistings and gaps stay where they were), and a
source is only eligible for ``t`` when every asset with a return at ``t`` has one at the source.
Bar ``t`` itself always is, so a draw never fails.

Prices are rebuilt from the drawn returns: an asset starts at its first real price, then compounds
the drawn close-to-close returns; open, high and low keep their ratio to the close in the source
bar, and the volume keeps the source bar's quote value (impact and liquidity caps read it).

The block length is given or chosen by :func:`optimal_block_length` (Politis and White, 2004, with
the correction of Patton, Politis and White, 2009), the rule ``arch`` implements.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numba as nb
import numpy as np

from datasets import MarketData


def optimal_block_length(x: np.ndarray) -> float:
    """The stationary bootstrap's optimal mean block length of the series ``x`` (Politis and White,
    2004; Patton, Politis and White, 2009).

    ``m`` is the first lag after which ``k_n = max(5, log10 n)`` autocorrelations in a row fall
    inside ``+-2 sqrt(log10(n) / n)`` (at most ``ceil(sqrt n) + k_n``); with the flat-top window
    ``h(x) = min(1, 2 (1 - |x|))`` over lags up to ``M = 2m``, ``G = sum h(k/M) |k| g_k`` and
    ``s2 = sum h(k/M) g_k`` (``g_k`` the autocovariances), the length is
    ``(2 G^2 / (2 s2^2))^(1/3) n^(1/3)``, capped at ``min(3 sqrt n, n / 3)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(optimal_block_length(rng.normal(size=2000)), 2) < 2  # no dependence: short blocks
    True
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 8:
        raise ValueError(f"`x` needs at least 8 observations to choose a block length; got {n}")
    eps = x - x.mean()
    cap = math.ceil(min(3.0 * math.sqrt(n), n / 3.0))
    kn = max(5, int(np.log10(n)))
    m_max = math.ceil(math.sqrt(n)) + kn
    band = 2.0 * math.sqrt(math.log10(n) / n)
    acv = np.empty(m_max + 1)
    small = np.empty(m_max + 1, dtype=np.bool_)
    m = None
    for k in range(m_max + 1):
        head, tail = eps[k + 1 :], eps[: n - k - 1]
        cross = eps[k:] @ eps[: n - k]
        acv[k] = cross / n
        small[k] = abs(cross) / math.sqrt((head @ head) * (tail @ tail)) < band
        if m is None and k >= kn and small[k - kn : k].all():
            m = k - kn
    big_m = min(2 * max(m, 1), m_max) if m is not None else m_max
    lags = np.arange(1, big_m + 1)
    h = np.minimum(1.0, 2.0 * (1.0 - lags / big_m))
    g = 2.0 * float(np.sum(h * lags * acv[1 : big_m + 1]))
    s2 = acv[0] + 2.0 * float(np.sum(h * acv[1 : big_m + 1]))
    length = (2.0 * g * g / (2.0 * s2 * s2)) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return float(min(length, cap))


def market_block_length(market: MarketData) -> float:
    """The block length for ``market``: :func:`optimal_block_length` of its equal-weight return
    and of that return's square (volatility clusters), the larger, at least 1."""
    returns = _returns(market.arrays["close"])
    ew = np.nanmean(np.where(np.isfinite(returns), returns, np.nan)[1:], axis=1)
    ew = ew[np.isfinite(ew)]
    return max(1.0, optimal_block_length(ew), optimal_block_length(ew * ew))


def _returns(close: np.ndarray) -> np.ndarray:
    out = np.full_like(close, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:] = close[1:] / close[:-1] - 1.0
    return out


class SourcePools:
    """For each bar, the source bars eligible for it: those where every asset with a return at the
    bar has one too. Bars share a pool when they share a pattern of available returns."""

    def __init__(self, available: np.ndarray) -> None:
        patterns, pattern_of = np.unique(available, axis=0, return_inverse=True)
        # pattern p may draw from the bars of every pattern q that covers it (q >= p assetwise)
        covers = ~np.any(
            patterns[:, None, :] & ~patterns[None, :, :], axis=2
        )  # [p, q]: q has all of p
        order = np.argsort(pattern_of, kind="stable")
        counts = np.bincount(pattern_of, minlength=len(patterns))
        bars_of = np.split(order, np.cumsum(counts)[:-1])
        pools = [
            np.sort(np.concatenate([bars_of[q] for q in np.flatnonzero(row)])) for row in covers
        ]
        self.pattern_of = np.ascontiguousarray(pattern_of.ravel(), dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum([len(p) for p in pools])]).astype(np.int64)
        self.bars = np.concatenate(pools).astype(np.int64)
        eligible = np.zeros((len(patterns), available.shape[0]), dtype=np.bool_)
        for p, pool in enumerate(pools):
            eligible[p, pool] = True
        self.eligible = eligible


@nb.njit(cache=True)
def stationary_sources_nb(pattern_of, offsets, bars, eligible, stay, u_stay, u_pick):
    """Source bar of every bar: continue the block (``u_stay < stay``) when the next source bar is
    eligible, else a uniform draw (``u_pick``) from the bar's pool."""
    n = pattern_of.shape[0]
    src = np.empty(n, dtype=np.int64)
    for t in range(n):
        p = pattern_of[t]
        nxt = src[t - 1] + 1 if t > 0 else n
        if t > 0 and u_stay[t] < stay and nxt < n and eligible[p, nxt]:
            src[t] = nxt
        else:
            size = offsets[p + 1] - offsets[p]
            k = min(int(u_pick[t] * size), size - 1)
            src[t] = bars[offsets[p] + k]
    return src


@nb.njit(cache=True)
def rebuild_prices_nb(open_, high, low, close, volume, src):
    """The OHLCV arrays of the path whose bar ``t`` takes the close-to-close returns of bar
    ``src[t]`` (module docstring). Inputs of shape ``(n_bars, n_assets)``, NaN where not listed."""
    n, m = close.shape
    o = np.full((n, m), np.nan)
    hi = np.full((n, m), np.nan)
    lo = np.full((n, m), np.nan)
    c = np.full((n, m), np.nan)
    v = np.full((n, m), np.nan)
    for j in range(m):
        last = -1  # the last bar with a price, in the data and in the path
        for t in range(n):
            if not np.isfinite(close[t, j]):
                continue
            s = t
            if t > 0 and np.isfinite(close[t - 1, j]) and last == t - 1:
                s = src[t]
                c[t, j] = c[t - 1, j] * (close[s, j] / close[s - 1, j])
            elif last >= 0:  # after a gap: the data's move across it
                c[t, j] = c[last, j] * (close[t, j] / close[last, j])
            else:
                c[t, j] = close[t, j]
            scale = c[t, j] / close[s, j]
            o[t, j] = open_[s, j] * scale
            hi[t, j] = high[s, j] * scale
            lo[t, j] = low[s, j] * scale
            v[t, j] = volume[s, j] / scale
            last = t
    return o, hi, lo, c, v


def bootstrap_sources(
    pools: SourcePools, block_length: float, rng: np.random.Generator
) -> np.ndarray:
    """One stationary bootstrap draw of source bars, of shape ``(n_bars,)``."""
    n = pools.pattern_of.shape[0]
    u_stay, u_pick = rng.random(n), rng.random(n)
    return stationary_sources_nb(
        pools.pattern_of,
        pools.offsets,
        pools.bars,
        pools.eligible,
        1.0 - 1.0 / block_length,
        u_stay,
        u_pick,
    )


def resample_market(market: MarketData, sources: np.ndarray, label: str = "") -> MarketData:
    """``market`` along the path of ``sources`` (one source bar per bar, eligible for it: see
    :class:`SourcePools`).

    Raises
    ------
    ValueError
        When ``sources`` is not one integer bar per bar, or names a bar out of range or one where
        an asset with a return at its bar has none (the kernel would read another bar's prices).
    """
    src = np.asarray(sources)
    n = market.n_bars
    if src.shape != (n,) or not np.issubdtype(src.dtype, np.integer):
        raise ValueError(
            f"`sources` must be one integer bar per bar, shape ({n},); got {src.dtype} {src.shape}"
        )
    src = src.astype(np.int64)
    if n and (src.min() < 0 or src.max() >= n):
        raise ValueError(f"`sources` must be bars in [0, {n}); got {src.min()}..{src.max()}")
    available = available_returns(market)
    bad = np.flatnonzero(np.any(available & ~available[src], axis=1))
    if bad.size:
        t = int(bad[0])
        raise ValueError(
            f"`sources` bar {int(src[t])} is not eligible for bar {t}: it lacks a return of an "
            "asset that has one there (draw sources with bootstrap_sources)"
        )
    a = {k: np.ascontiguousarray(market.arrays[k], dtype=np.float64) for k in market.arrays}
    o, h, lo, c, v = rebuild_prices_nb(a["open"], a["high"], a["low"], a["close"], a["volume"], src)
    note = f"stationary block bootstrap of the data{': ' + label if label else ''}"
    return replace(
        market,
        arrays={"open": o, "high": h, "low": lo, "close": c, "volume": v},
        source=f"bootstrap:{market.source}",
        filled=None,
        notes=(*market.notes, note),
    )


def available_returns(market: MarketData) -> np.ndarray:
    """``(n_bars, n_assets)`` bool: where the close-to-close return exists (both closes known)."""
    return np.isfinite(_returns(np.asarray(market.arrays["close"], dtype=np.float64)))
