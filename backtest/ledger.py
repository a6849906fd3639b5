"""Sums over the trade ledger: per traded bar (the metrics' turnover and costs) and per decision (the
rebalance table), each in one compiled pass.

The ledger is the kernel's :data:`backtest.records.TRADE_DTYPE` array, in bar order; a loaded
result's trade frame gives the same columns (sorted here when it is not in bar order).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from backtest.records import REASON_REBALANCE
from backtest.walkforward import Decisions

#: The per-trade columns the sums read (the notional is ``|units| * price``).
COLUMNS = ("units", "price", "fee", "slippage", "impact")
#: The sums, in the order the kernels return them.
SUMS = ("notional", "fee", "slippage", "impact")


@njit(cache=True)
def per_bar_sums_nb(position, units, price, fee, slippage, impact):
    """For ``position`` (int64, non-decreasing) and the columns of each trade: the distinct
    positions, and the notional ``|units| * price``, fee, slippage and impact summed per position,
    shape (4, n_distinct)."""
    n = position.shape[0]
    k = 0
    for i in range(n):
        if i == 0 or position[i] != position[i - 1]:
            k += 1
    bars = np.empty(k, dtype=np.int64)
    sums = np.empty((4, k))
    k = -1
    a = b = c = d = 0.0  # the running sums of the current bar (stores only when it ends)
    for i in range(n):
        if i == 0 or position[i] != position[i - 1]:
            if k >= 0:
                sums[0, k], sums[1, k], sums[2, k], sums[3, k] = a, b, c, d
            k += 1
            bars[k] = position[i]
            a = b = c = d = 0.0
        a += abs(units[i]) * price[i]
        b += fee[i]
        c += slippage[i]
        d += impact[i]
    if k >= 0:
        sums[0, k], sums[1, k], sums[2, k], sums[3, k] = a, b, c, d
    return bars, sums


@njit(cache=True)
def decision_sums_nb(bar, reason, units, price, fee, slippage, impact, fills):
    """Per decision (``fills``: its fill bar, strictly increasing): the notional, fee, slippage and
    impact of the rebalance trades filled at that bar, shape (4, n_decisions), and their count."""
    n_dec = fills.shape[0]
    sums = np.zeros((4, n_dec))
    count = np.zeros(n_dec, dtype=np.int64)
    j = 0
    i = 0
    n = bar.shape[0]
    while i < n and j < n_dec:
        if bar[i] < fills[j]:
            i += 1
        elif bar[i] > fills[j]:
            j += 1
        else:  # the trades of fill bar fills[j]: a run of the ledger
            a = b = c = d = 0.0
            m = 0
            while i < n and bar[i] == fills[j]:
                if reason[i] == REASON_REBALANCE:
                    a += abs(units[i]) * price[i]
                    b += fee[i]
                    c += slippage[i]
                    d += impact[i]
                    m += 1
                i += 1
            sums[0, j], sums[1, j], sums[2, j], sums[3, j] = a, b, c, d
            count[j] = m
            j += 1
    return sums, count


def per_bar(position: np.ndarray, trades: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The bars that traded (sorted, int64) and the :data:`SUMS` per bar, from ``position`` (the
    bar of each trade) and ``trades`` with the :data:`COLUMNS` (the ledger, or a trade frame)."""
    position = np.asarray(position, dtype=np.int64)
    cols = [np.asarray(trades[c], dtype=np.float64) for c in COLUMNS]
    if np.any(position[1:] < position[:-1]):  # a ledger is in bar order; a frame may not be
        order = np.argsort(position, kind="stable")
        position, cols = position[order], [c[order] for c in cols]
    bars, sums = per_bar_sums_nb(position, *cols)
    return bars, dict(zip(SUMS, sums, strict=True))


def rebalance_columns(
    decisions: Decisions,
    n_bars: int,
    ledger: np.ndarray,
    equity: np.ndarray,
    exec_shift: int,
) -> dict[str, np.ndarray]:
    """Per decision: the fill bar (``at``), whether it fills (``ok``), and the turnover (notional
    over the equity at the fill bar), costs and trade count of the rebalance trades filled for it
    (the numbers of the rebalance table)."""
    fill = decisions.bars + exec_shift
    ok = fill < n_bars
    at = np.where(ok, fill, n_bars - 1)
    sums, count = decision_sums_nb(
        ledger["bar"],
        ledger["reason"],
        ledger["units"],
        ledger["price"],
        ledger["fee"],
        ledger["slippage"],
        ledger["impact"],
        fill,
    )
    ref = equity[at]
    with np.errstate(invalid="ignore", divide="ignore"):
        turnover = np.where(ok & (ref > 0), sums[0] / ref, 0.0)
    return {
        "at": at,
        "ok": ok,
        "turnover": turnover,
        "fees": sums[1],
        "slippage": sums[2],
        "impact": sums[3],
        "n_trades": count,
    }
