"""Numba simulation loops: arrays in, arrays out. Imports numpy and numba only (and the records of
``backtest.records`` and the fills of ``backtest.fills``).

The kernel simulates a long-only, unlevered portfolio with cash in the quote currency. The rows of
``targets`` are *orders*, one per order bar (``order_row[t]``: the row of bar ``t``, -1 for none): at
that bar, the book is valued at the fill prices and traded toward the target weights (NaN: leave the
asset alone) under the trade rules of :mod:`backtest.fills` (sells before buys, cash never negative). Inputs are validated by the wrapper in ``backtest.simulate``; the kernel
assumes C-contiguous float64 arrays of matching shapes.

Per bar ``t``: a new target row replaces the standing target; drift bands (``band > 0``) are checked
at every bar against the standing target and a target row is traded only when a band is breached
(``band_to_edge`` trades back to the band edge instead of the target); then the trailing stop-loss
inside the bar, the sale of delisted assets at their last close, and the valuation at the close.

Parameters come as named records (:mod:`backtest.records`): ``market`` a ``MarketArrays``,
``params`` a ``SimulationParams`` (or ``BatchParams``), ``out`` preallocated ``SimulationBuffers``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.fills import (
    book_value_nb,
    fill_orders_nb,
    liquidate_nb,
    plan_trades_nb,
    units_after_sale_nb,
)
from backtest.records import (
    BAND_COST,
    BAND_RELATIVE,
    COST_DTYPE,
    REASON_BAND,
    REASON_DELIST,
    REASON_REBALANCE,
    REASON_STOP,
    TRADE_DTYPE,
    FillParams,
    SimulationBuffers,
    SimulationParams,
)


@njit(cache=True, error_model="numpy")
def band_check_nb(units, prices, val_prices, target, cash, band, mode, to_edge):
    """Whether some weight is outside ``target +- width``: ``width`` is ``band`` (``BAND_ABSOLUTE``),
    ``band * target`` (``BAND_RELATIVE``) or ``band * (target (1 - target)) ** (2/3)`` (``BAND_COST``,
    the cost-aware no-trade region of ``backtest.schedule``).

    With ``to_edge``, ``target`` is rewritten in place to the trade that only goes back to the band
    edge: breached assets get the nearest edge, the others NaN (left alone).
    """
    n = units.shape[0]
    value = book_value_nb(units, prices, val_prices, cash)
    if not (value > 0.0):
        return False
    breached = False
    for i in range(n):
        if not (prices[i] > 0.0) or target[i] != target[i]:
            continue
        w = units[i] * prices[i] / value
        if mode == BAND_RELATIVE:
            width = band * target[i]
        elif mode == BAND_COST:
            spread = target[i] * (1.0 - target[i])
            width = band * (spread * spread) ** (1.0 / 3.0) if spread > 0.0 else 0.0
        else:
            width = band
        if w > target[i] + width + 1e-12:
            breached = True
            edge = target[i] + width
        elif w < target[i] - width - 1e-12:
            breached = True
            edge = max(target[i] - width, 0.0)
        else:
            edge = np.nan  # inside the band: leave it
        if to_edge:
            target[i] = edge
    return breached


@njit(cache=True, error_model="numpy")
def _track_entries_nb(units, held, prices, peak, entered, bar, fill_at_close):
    """The trailing stop's high since entry after the fills of ``bar`` (``held``: units before).

    A flat position forgets it (a later entry starts afresh); an executed buy counts its fill
    reference price and, at the close, makes ``bar`` an entry bar (its low and high came before
    the fill: no stop check there).
    """
    for i in range(units.shape[0]):
        if units[i] == 0.0:
            peak[i] = 0.0
        elif units[i] > held[i]:
            if peak[i] < prices[i]:
                peak[i] = prices[i]
            if fill_at_close:
                entered[i] = bar


@njit(cache=True, inline="always")
def _at(per_bar, t):
    """Row ``t`` of a per-bar array, or its only row when it holds one row for every bar."""
    return per_bar[t] if per_bar.shape[0] > 1 else per_bar[0]


@njit(cache=True, error_model="numpy")
def simulate_core_nb(market, targets, order_row, params, out) -> int | np.integer:
    """One scenario. Fills ``out`` (``equity``/``cash``/``traded`` (T,), ``units`` (T, N) when
    ``params.store_units``, the ``trades`` ledger when ``params.record_trades``, ``totals``
    accumulated); returns the number of ledger rows.

    ``targets`` is (K, N), one row per order; ``order_row`` (T,) the row of ``targets`` that bar
    ``t`` trades to (-1: none) and ``market.delist_row[t]`` whether some asset stops trading at bar
    ``t`` (both precomputed by the wrapper).
    """
    n_bars, n = market.fill_price.shape
    fills = params.fills
    band = params.band
    totals = out.totals[0]
    units = np.zeros(n)
    last_val = np.zeros(n)  # last close seen; 0 before the first (units are 0 there)
    peak = np.zeros(n)
    stopped = np.zeros(n, dtype=np.bool_)
    entered = np.full(n, -1, dtype=np.int64)
    standing = np.full(n, np.nan)
    has_standing = False
    cash = params.initial_cash
    n_trades = np.int64(0)  # not a literal: callees compile once
    goal = np.empty(n)
    skipped = np.zeros(n, dtype=np.bool_)
    order_value = np.zeros(n)
    deltas = np.zeros(n)
    work_idx = np.zeros(n, dtype=np.int64)
    held = np.zeros(n)  # units before this bar's fills
    rebalance_reason = np.int64(REASON_REBALANCE)
    band_reason = np.int64(REASON_BAND)
    delist_reason = np.int64(REASON_DELIST)
    stop_reason = np.int64(REASON_STOP)
    for t in range(n_bars):
        before = totals["traded_notional"]
        k = order_row[t]
        new_row = k >= 0
        if new_row:
            for i in range(n):
                standing[i] = targets[k, i]
                stopped[i] = False
            has_standing = True
        if has_standing and (new_row or band > 0.0):
            prices = market.fill_price[t]
            sigma, liquidity = _at(market.sigma, t), _at(market.liquidity, t)
            trade_now = new_row
            reason = rebalance_reason
            for i in range(n):
                goal[i] = standing[i]
                if stopped[i]:
                    goal[i] = 0.0 if units[i] > 0.0 else np.nan
            if band > 0.0:
                trade_now = band_check_nb(
                    units,
                    prices,
                    last_val,
                    goal,
                    cash,
                    band,
                    params.band_mode,
                    params.band_to_edge,
                )
                if trade_now and not new_row:
                    reason = band_reason
            if trade_now:
                for i in range(n):
                    skipped[i] = False
                plan_trades_nb(
                    units,
                    prices,
                    last_val,
                    goal,
                    cash,
                    market.lot_step,
                    market.min_notional,
                    _at(market.max_value, t),
                    liquidity,
                    sigma,
                    fills,
                    skipped,
                    order_value,
                    deltas,
                )
                totals["skipped_trades"] += skipped.sum()
                if params.stop_loss > 0.0:
                    for i in range(n):
                        held[i] = units[i]
                cash, n_trades = fill_orders_nb(
                    deltas,
                    units,
                    prices,
                    cash,
                    fills,
                    sigma,
                    liquidity,
                    market.lot_step,
                    market.min_notional,
                    order_value,
                    work_idx,
                    t,
                    reason,
                    out.trades,
                    n_trades,
                    params.record_trades,
                    out.totals,
                )
                if params.stop_loss > 0.0:
                    _track_entries_nb(units, held, prices, peak, entered, t, params.fill_at_close)
        # trailing stop-loss inside the bar (not on a bar whose close was the entry); inline: a
        # per-bar helper taking the records costs ~35% (reference counts of every array it gets)
        if params.stop_loss > 0.0:
            for i in range(n):
                if entered[i] == t:
                    continue
                if units[i] > 0.0 and market.low[t, i] == market.low[t, i]:
                    level = peak[i] * (1.0 - params.stop_loss)
                    if market.low[t, i] <= level:
                        px = market.open[t, i] if market.open[t, i] < level else level
                        cash, n_trades = liquidate_nb(
                            i,
                            px,
                            cash,
                            units,
                            fills,
                            _at(market.sigma, t)[i],
                            _at(market.liquidity, t)[i],
                            t,
                            stop_reason,
                            out.trades,
                            n_trades,
                            params.record_trades,
                            out.totals,
                        )
                        stopped[i] = True
                        peak[i] = 0.0
                if units[i] > 0.0 and market.high[t, i] > peak[i]:
                    peak[i] = market.high[t, i]
        # delisted assets are sold at their last close
        if market.delist_row[t]:
            for i in range(n):
                if market.delist_bar[i] == t and units[i] > 0.0:
                    cash, n_trades = liquidate_nb(
                        i,
                        market.close[t, i],
                        cash,
                        units,
                        fills,
                        _at(market.sigma, t)[i],
                        _at(market.liquidity, t)[i],
                        t,
                        delist_reason,
                        out.trades,
                        n_trades,
                        params.record_trades,
                        out.totals,
                    )
        # valuation at the close (the last close for an asset without a candle now)
        value = cash
        for i in range(n):
            c = market.close[t, i]
            lv = c if c == c else last_val[i]
            last_val[i] = lv
            value += units[i] * lv
        if params.store_units:
            for i in range(n):
                out.units[t, i] = units[i]
        out.equity[t] = value
        out.cash[t] = cash
        out.traded[t] = totals["traded_notional"] - before
    return n_trades


@njit(cache=True, error_model="numpy")
def simulate_batch_nb(market, targets, order_rows, params, capacity):
    """Many scenarios on one market in one call, for sweeps.

    ``targets`` is (S, K, N) with ``order_rows`` (S, T) (per scenario as in
    :func:`simulate_core_nb`; scenarios with fewer orders pad ``targets``); ``params`` a ``BatchParams`` whose array
    fields hold one value per scenario. Returns ``(out, n_trades)``: ``SimulationBuffers`` with a
    leading scenario axis (``units`` (S, 1, N) unless ``params.store_units``; ``trades``
    (S, capacity) when ``params.record_trades``; ``totals`` (S,)) and ``n_trades`` (S,) ledger rows
    per scenario.
    """
    n_scen, n_bars = order_rows.shape
    n = targets.shape[2]
    out = SimulationBuffers(
        equity=np.empty((n_scen, n_bars)),
        cash=np.empty((n_scen, n_bars)),
        units=np.empty((n_scen, n_bars if params.store_units else 1, n)),
        traded=np.empty((n_scen, n_bars)),
        trades=np.empty((n_scen, capacity if params.record_trades else 0), dtype=TRADE_DTYPE),
        totals=np.zeros(n_scen, dtype=COST_DTYPE),
    )
    n_trades = np.zeros(n_scen, dtype=np.int64)
    for s in range(n_scen):
        one = SimulationParams(
            fills=FillParams(
                fee_rate=params.fee_rate[s],
                slippage_rate=params.slippage_rate[s],
                impact_coef=params.impact_coef[s],
                participation=params.participation,
                min_trade_value=params.min_trade_value[s],
                sizing=params.sizing,
            ),
            initial_cash=params.initial_cash[s],
            band=params.band[s],
            band_mode=params.band_mode,
            band_to_edge=params.band_to_edge,
            stop_loss=params.stop_loss,
            fill_at_close=params.fill_at_close,
            record_trades=params.record_trades,
            store_units=params.store_units,
        )
        buffers = SimulationBuffers(
            equity=out.equity[s],
            cash=out.cash[s],
            units=out.units[s],
            traded=out.traded[s],
            trades=out.trades[s],
            totals=out.totals[s : s + 1],
        )
        n_trades[s] = simulate_core_nb(market, targets[s], order_rows[s], one, buffers)
    return out, n_trades


@njit(cache=True)
def last_close_bar_nb(close):
    """Per asset of ``close`` (T, N): the bar of its last finite close, -1 when it has none (a scan
    back from the end of each column: no pass over the whole panel)."""
    n_bars, n = close.shape
    out = np.full(n, -1, dtype=np.int64)
    for j in range(n):
        for t in range(n_bars - 1, -1, -1):
            if np.isfinite(close[t, j]):
                out[j] = t
                break
    return out


@njit(cache=True, error_model="numpy")
def holdings_nb(bar, asset, units, n_bars, n_assets):
    """The units held at the close of every bar, (T, N), replayed from a whole ledger in its order
    (its ``bar``, ``asset`` and signed ``units`` fields; buys add, sales follow
    :func:`backtest.fills.units_after_sale_nb`): bit for bit what the kernel held, so a scenario
    need not store its (T, N) units to show its weights."""
    out = np.empty((n_bars, n_assets))
    held = np.zeros(n_assets)
    row = 0
    for t in range(n_bars):
        while row < bar.shape[0] and bar[row] == t:
            i = asset[row]
            q = units[row]
            held[i] = held[i] + q if q > 0.0 else units_after_sale_nb(held[i], -q)
            row += 1
        for i in range(n_assets):
            out[t, i] = held[i]
    return out


@njit(cache=True, error_model="numpy")
def fees_slippage_floor_nb(fill_price, close, targets, initial_cash, fee_rate, slip_rate):
    """The floor for benchmarks: a bare loop that rebalances to target weights and applies fees and
    slippage only (no bands, lots, impact, caps, ledger or stops). Returns equity (T,)."""
    n_bars, n = fill_price.shape
    units = np.zeros(n)
    cash = initial_cash
    equity = np.empty(n_bars)
    for t in range(n_bars):
        if targets[t, 0] == targets[t, 0]:
            value = cash
            for i in range(n):
                value += units[i] * fill_price[t, i]
            for i in range(n):
                d = targets[t, i] * value / fill_price[t, i] - units[i]
                if d < 0.0:
                    proceeds = -d * fill_price[t, i] * (1.0 - slip_rate)
                    cash += proceeds * (1.0 - fee_rate)
                    units[i] += d
            for i in range(n):
                d = targets[t, i] * value / fill_price[t, i] - units[i]
                if d > 0.0:
                    cost = d * fill_price[t, i] * (1.0 + slip_rate)
                    total = cost * (1.0 + fee_rate)
                    if total > cash:
                        d *= cash / total
                        cost = d * fill_price[t, i] * (1.0 + slip_rate)
                        total = cost * (1.0 + fee_rate)
                    cash -= total
                    units[i] += d
        value = cash
        for i in range(n):
            value += units[i] * close[t, i]
        equity[t] = value
    return equity
