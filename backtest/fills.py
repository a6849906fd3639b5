"""Numba kernels of one rebalance: the trade rules and the fills. Imports numpy and numba only (and
the records of ``backtest.records``).

Shared by the simulation loops (``backtest.kernels``) and the live analyzer
(``backtest.trade_rules``), so that what was tested is what is traded. Per asset ``i``
(``p`` = fill reference price, ``V`` = cash + sum(units * valuation price)):

* :func:`plan_trades_nb`: target units ``w_i * V_net / p_i``, where ``V_net`` is the equity left
  after this rebalance's costs (``SIZING_NET``: the targets are reached exactly and costs are paid
  out of the rebalance, :func:`net_value_nb`), or ``w_i * V / p_i`` (``SIZING_VECTORBT``); capped by
  ``max_value[i] / p_i``; the trade ``d = target - units`` (none when ``|d|`` is within 1e-12 of the
  position: rounding noise of a target already held) is capped by
  ``participation * liquidity[i] / p`` and rounded toward zero to ``lot_step[i]`` (a full exit is
  not rounded); it is skipped when ``|d| * p < max(min_trade_value, min_notional[i])``, or when the
  asset has no price;
* :func:`fill_orders_nb`: all sells, then the buys limited by the cash. A sell fills at
  ``p * (1 - slippage - impact)``, a buy at ``p * (1 + slippage + impact)``, where
  ``impact = impact_coef * sigma[i] * sqrt(|d| * p / liquidity[i])``; the fee is
  ``fee_rate * |d| * fill price``. When cash runs short, buys are scaled by one factor
  (``SIZING_NET``) or filled in order of increasing order value with the last one partially filled
  (``SIZING_VECTORBT``, as vectorbt's ``call_seq="auto"``), so cash never goes negative.

``fills`` is a :class:`backtest.records.FillParams`; ``totals`` a ``(1,)`` array of
:data:`backtest.records.COST_DTYPE` that the fills accumulate into; ``trades`` a ledger of
:data:`backtest.records.TRADE_DTYPE` rows written when ``record`` is true.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.records import SIZING_NET, SIZING_VECTORBT


@njit(cache=True, error_model="numpy")
def round_to_lot_nb(units: float, lot: float) -> float:
    """Round ``|units|`` down to a multiple of ``lot`` (keeping the sign); ``lot <= 0`` disables."""
    if lot <= 0.0:
        return units
    n = np.floor(abs(units) / lot + 1e-9)
    return np.sign(units) * n * lot


@njit(cache=True, error_model="numpy")
def impact_fraction_nb(notional: float, liquidity: float, sigma: float, coef: float) -> float:
    """Square-root market impact as a fraction of price: ``coef * sigma * sqrt(notional / liquidity)``."""
    if coef <= 0.0 or not (liquidity > 0.0) or not (sigma > 0.0):
        return 0.0
    return coef * sigma * np.sqrt(notional / liquidity)


@njit(cache=True, error_model="numpy")
def book_value_nb(
    units: np.ndarray, prices: np.ndarray, val_prices: np.ndarray, cash: float
) -> float:
    """``cash + sum(units * price)``, valuing assets that cannot trade now at ``val_prices``."""
    value = cash
    for i in range(units.shape[0]):
        if units[i] != 0.0:
            p = prices[i] if prices[i] > 0.0 else val_prices[i]
            if p > 0.0:
                value += units[i] * p
    return value


@njit(cache=True, error_model="numpy")
def net_value_nb(units, prices, target_weights, value, fills, sigma, liquidity):
    """Post-trade equity ``V_net`` of a self-financing rebalance to ``target_weights``.

    Solves ``V_net = V - sum_i cost_i(|w_i V_net - units_i p_i|)`` by fixed-point iteration (a
    contraction: costs are a small fraction of the traded notional). A sell of notional ``x`` costs
    ``x (s + m) + f x (1 - s - m)``, a buy ``x (s + m) + f x (1 + s + m)`` (fee ``f``, slippage
    ``s``, impact ``m``).
    """
    fee_rate, slip_rate = fills.fee_rate, fills.slippage_rate
    v = value
    for _ in range(100):
        cost = 0.0
        for i in range(units.shape[0]):
            p = prices[i]
            w = target_weights[i]
            if not (p > 0.0) or w != w:
                continue
            diff = w * v - units[i] * p
            x = abs(diff)
            m = impact_fraction_nb(x, liquidity[i], sigma[i], fills.impact_coef)
            if diff < 0.0:
                cost += x * (slip_rate + m) + fee_rate * x * (1.0 - slip_rate - m)
            else:
                cost += x * (slip_rate + m) + fee_rate * x * (1.0 + slip_rate + m)
        nxt = value - cost
        if abs(nxt - v) <= 1e-15 * abs(value):
            return nxt
        v = nxt
    return v


@njit(cache=True, error_model="numpy")
def plan_trades_nb(
    units: np.ndarray,
    prices: np.ndarray,
    val_prices: np.ndarray,
    target_weights: np.ndarray,
    cash: float,
    lot_step: np.ndarray,
    min_notional: np.ndarray,
    max_value: np.ndarray,
    liquidity: np.ndarray,
    sigma: np.ndarray,
    fills,
    skipped: np.ndarray,
    order_value: np.ndarray,
    deltas: np.ndarray,
) -> None:
    """Fill ``deltas`` with the unit trades that move ``units`` toward ``target_weights`` under the
    trade rules (all arrays of shape (n_assets,)).

    ``prices`` are fill reference prices (NaN = not tradable now); ``val_prices`` value the book for
    assets that cannot trade now. NaN target weights keep the position. Buys are *not* yet limited
    by cash (see :func:`fill_orders_nb`). ``skipped[i]`` is set when a trade was wanted but fell
    below the lot step, ``min_trade_value`` or ``min_notional``; ``order_value[i]`` receives
    ``w_i * V - units_i * p_i`` (the sort key of vectorbt's auto call sequence).
    """
    n = units.shape[0]
    for i in range(n):
        deltas[i] = 0.0
    value = book_value_nb(units, prices, val_prices, cash)
    if not (value > 0.0):
        return
    if fills.sizing == SIZING_NET:
        value = net_value_nb(units, prices, target_weights, value, fills, sigma, liquidity)
    participation, min_trade_value = fills.participation, fills.min_trade_value
    for i in range(n):
        p = prices[i]
        if not (p > 0.0):
            continue
        w = target_weights[i]
        if w != w:  # NaN target: keep the position
            continue
        target = w * value / p
        order_value[i] = w * value - units[i] * p
        cap = max_value[i] / p
        if target > cap:
            target = cap
        d = target - units[i]
        if abs(d) <= 1e-12 * max(target, units[i]):
            continue  # the target is held already, up to rounding: no trade, none skipped
        full_exit = target == 0.0 and d < 0.0  # a full exit is allowed whatever the lot step
        if participation > 0.0 and liquidity[i] > 0.0:
            limit = participation * liquidity[i] / p
            if abs(d) > limit:
                d = np.sign(d) * limit
                full_exit = False
        if not full_exit:
            d = round_to_lot_nb(d, lot_step[i])
        notional = abs(d) * p
        threshold = min_trade_value if min_trade_value > min_notional[i] else min_notional[i]
        if d == 0.0 or notional < threshold:
            if target != units[i]:
                skipped[i] = True
            continue
        deltas[i] = d


@njit(cache=True, inline="always", error_model="numpy")
def _record(trades, k, bar, i, units, p, fill, fee, slip_cost, imp_cost, reason):
    rec = trades[k]
    rec["bar"] = bar
    rec["asset"] = i
    rec["units"] = units
    rec["price"] = p
    rec["fill_price"] = fill
    rec["fee"] = fee
    rec["slippage"] = slip_cost
    rec["impact"] = imp_cost
    rec["reason"] = reason


@njit(cache=True, inline="always")
def units_after_sale_nb(held, q):
    """Units left after selling ``q`` of ``held``: 0 when only rounding residue is left (the rule
    the ledger replay of :func:`backtest.kernels.holdings_nb` repeats)."""
    left = held - q
    return 0.0 if abs(left) < 1e-12 * q else left


@njit(cache=True, inline="always", error_model="numpy")
def _exec_sell(i, q, p, cash, units, fills, sigma, liq, bar, reason, trades, n_trades, record):
    """Sell ``q`` units; returns (cash, n_trades, fee, slippage cost, impact cost)."""
    slip_rate = fills.slippage_rate
    imp = impact_fraction_nb(q * p, liq, sigma, fills.impact_coef)
    fill = p * (1.0 - slip_rate - imp)
    if fill < 0.0:
        fill = 0.0
    proceeds = q * fill
    fee = proceeds * fills.fee_rate
    units[i] = units_after_sale_nb(units[i], q)
    slip_cost = q * p * slip_rate
    imp_cost = q * p * imp
    if record:
        _record(trades, n_trades, bar, i, -q, p, fill, fee, slip_cost, imp_cost, reason)
    return cash + proceeds - fee, n_trades + 1, fee, slip_cost, imp_cost


@njit(cache=True, inline="always", error_model="numpy")
def _exec_buy(i, q, p, cash, units, fills, sigma, liq, lot, bar, reason, trades, n_trades, record):
    """Buy ``q`` units, or what the cash allows (vectorbt's partial fill); returns
    (cash, n_trades, fee, slippage cost, impact cost, traded notional)."""
    slip_rate, fee_rate = fills.slippage_rate, fills.fee_rate
    imp = impact_fraction_nb(q * p, liq, sigma, fills.impact_coef)
    fill = p * (1.0 + slip_rate + imp)
    req = q * fill * (1.0 + fee_rate)
    if req > cash * (1.0 + 1e-12):
        # spend all remaining cash on this order
        if cash <= 0.0:
            return cash, n_trades, 0.0, 0.0, 0.0, 0.0
        wanted = q
        q = cash / (1.0 + fee_rate) / fill
        if lot > 0.0:
            q = round_to_lot_nb(q, lot)
        if q <= 1e-12 * wanted:  # nothing, or rounding residue of the cash
            return cash, n_trades, 0.0, 0.0, 0.0, 0.0
    cost = q * fill
    fee = cost * fee_rate
    units[i] += q
    cash -= cost + fee
    if cash < 0.0:
        cash = 0.0  # rounding residue only: req <= cash was checked
    slip_cost = q * p * slip_rate
    imp_cost = q * p * imp
    if record:
        _record(trades, n_trades, bar, i, q, p, fill, fee, slip_cost, imp_cost, reason)
    return cash, n_trades + 1, fee, slip_cost, imp_cost, q * p


@njit(cache=True, error_model="numpy")
def fill_orders_nb(
    deltas: np.ndarray,
    units: np.ndarray,
    prices: np.ndarray,
    cash: float,
    fills,
    sigma: np.ndarray,
    liquidity: np.ndarray,
    lot_step: np.ndarray,
    min_notional: np.ndarray,
    order_value: np.ndarray,
    work_idx: np.ndarray,
    bar: int | np.integer,
    reason: int | np.integer,
    trades: np.ndarray,
    n_trades: int | np.integer,
    record: bool,
    totals: np.ndarray,
):
    """Execute planned ``deltas``: all sells, then buys limited by cash. Returns ``(cash, n_trades)``.

    ``units`` is updated in place; fees, slippage, impact and the traded notional are added to
    ``totals[0]``; ledger rows go to ``trades[n_trades:]`` when ``record``. ``work_idx`` is an int64
    work array of shape (n_assets,).
    """
    fee_rate, slip_rate = fills.fee_rate, fills.slippage_rate
    fees = 0.0
    slips = 0.0
    imps = 0.0
    notional = 0.0
    for i in range(deltas.shape[0]):
        if deltas[i] < 0.0:
            cash, n_trades, f, sl, im = _exec_sell(
                i,
                -deltas[i],
                prices[i],
                cash,
                units,
                fills,
                sigma[i],
                liquidity[i],
                bar,
                reason,
                trades,
                n_trades,
                record,
            )
            fees += f
            slips += sl
            imps += im
            notional -= deltas[i] * prices[i]
    # the buys, in execution order: increasing order value for vectorbt (a stable insertion sort,
    # so ties keep column order as in vectorbt's call_seq="auto"), column order otherwise
    n_buys = 0
    for i in range(deltas.shape[0]):
        if deltas[i] > 0.0:
            j = n_buys
            while (
                fills.sizing == SIZING_VECTORBT
                and j > 0
                and order_value[work_idx[j - 1]] > order_value[i]
            ):
                work_idx[j] = work_idx[j - 1]
                j -= 1
            work_idx[j] = i
            n_buys += 1
    # net sizing: buys fit the cash by construction; when rounding, lots or skipped trades leave it
    # short, every buy is scaled by the same factor. vectorbt sizing: the last buys are partially
    # filled instead (in _exec_buy)
    scale = 1.0
    if fills.sizing != SIZING_VECTORBT:
        need = 0.0
        for k in range(n_buys):
            i = work_idx[k]
            q = deltas[i]
            imp = impact_fraction_nb(q * prices[i], liquidity[i], sigma[i], fills.impact_coef)
            need += q * prices[i] * (1.0 + slip_rate + imp) * (1.0 + fee_rate)
        if need > cash * (1.0 + 1e-12):
            scale = cash / need if cash > 0.0 else 0.0
            if scale <= 1e-12:
                scale = 0.0  # the cash left is rounding residue: no buys
    min_trade_value = fills.min_trade_value
    for k in range(n_buys):
        i = work_idx[k]
        q = deltas[i] * scale
        if scale < 1.0:
            q = round_to_lot_nb(q, lot_step[i])
            threshold = min_trade_value if min_trade_value > min_notional[i] else min_notional[i]
            if q <= 0.0 or q * prices[i] < threshold:
                continue
        cash, n_trades, f, sl, im, x = _exec_buy(
            i,
            q,
            prices[i],
            cash,
            units,
            fills,
            sigma[i],
            liquidity[i],
            lot_step[i],
            bar,
            reason,
            trades,
            n_trades,
            record,
        )
        fees += f
        slips += sl
        imps += im
        notional += x
    tot = totals[0]
    tot["fees"] += fees
    tot["slippage"] += slips
    tot["impact"] += imps
    tot["traded_notional"] += notional
    return cash, n_trades


@njit(cache=True, error_model="numpy")
def liquidate_nb(
    i, price, cash, units, fills, sigma, liq, bar, reason, trades, n_trades, record, totals
):
    """Sell all of asset ``i`` at ``price`` (a stop-loss or a delisting); returns (cash, n_trades).

    ``sigma`` and ``liq`` are the asset's scalars at this bar; costs go to ``totals[0]``.
    """
    q = units[i]
    cash, n_trades, fee, slip_cost, imp_cost = _exec_sell(
        i, q, price, cash, units, fills, sigma, liq, bar, reason, trades, n_trades, record
    )
    tot = totals[0]
    tot["fees"] += fee
    tot["slippage"] += slip_cost
    tot["impact"] += imp_cost
    tot["traded_notional"] += q * price
    return cash, n_trades
