"""Numba simulation kernels: arrays in, arrays out. Imports numpy and numba only.

The kernel simulates a long-only, unlevered portfolio with cash in the quote currency. Rows of
``targets`` that are not all-NaN are *orders*: at that bar, the book is valued at the fill prices and
traded toward the target weights (sells before buys). Inputs are validated by the wrapper in
``backtest.simulate``; the kernel assumes C-contiguous float64 arrays of matching shapes.

Per order bar ``t`` and asset ``i`` (``p`` = fill price, ``V`` = cash + sum(units * valuation price)):

* target units ``w_i * V_net / p_i`` where ``V_net`` is the equity left after this rebalance's costs
  (``sizing=0``, "net": the targets are reached exactly and costs are paid out of the rebalance), or
  ``w_i * V / p_i`` (``sizing=1``, vectorbt's convention); capped by ``max_value[t, i] / p_i``;
* trade ``d = target - units``, rounded toward zero to ``lot_step[i]``; skipped when
  ``|d| * p < max(min_trade_value, min_notional[i])`` or when the asset has no price;
* a sell fills at ``p * (1 - slippage - impact)``, a buy at ``p * (1 + slippage + impact)``, where
  ``impact = impact_coef * sigma[t, i] * sqrt(|d| * p / liquidity[t, i])``; the fee is
  ``fee_rate * |d| * fill price``;
* participation cap: ``|d| <= participation * liquidity[t, i] / p``;
* sells before buys; buys are scaled by one factor when rounding leaves cash short ("net"), or filled
  in order of increasing value with the last one partially filled ("vectorbt", as vectorbt's
  ``call_seq="auto"``), so cash never goes negative.

Drift bands (``band > 0``) are checked at every bar against the standing target; a new target row is
traded only when a band is breached; ``band_edge`` trades back to the band edge instead of the target.
"""

from __future__ import annotations

import numpy as np
from numba import njit

TRADE_DTYPE = np.dtype(
    [
        ("bar", np.int64),
        ("asset", np.int64),
        ("units", np.float64),  # signed: > 0 buy, < 0 sell
        ("price", np.float64),  # reference price before slippage and impact
        ("fill_price", np.float64),
        ("fee", np.float64),
        ("slippage", np.float64),  # cost in quote currency
        ("impact", np.float64),  # cost in quote currency
        ("reason", np.int64),  # 0 rebalance, 1 band, 2 stop-loss, 3 delisting
    ]
)

REASON_REBALANCE, REASON_BAND, REASON_STOP, REASON_DELIST = 0, 1, 2, 3
SIZING_NET, SIZING_VECTORBT = 0, 1


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
def net_value_nb(
    units, prices, target_weights, value, fee_rate, slip_rate, impact_coef, sigma, liquidity
):
    """Post-trade equity ``V_net`` of a self-financing rebalance to ``target_weights``.

    Solves ``V_net = V - sum_i cost_i(|w_i V_net - units_i p_i|)`` by fixed-point iteration (a
    contraction: costs are a small fraction of the traded notional). A sell of notional ``x`` costs
    ``x (s + m) + f x (1 - s - m)``, a buy ``x (s + m) + f x (1 + s + m)`` (fee ``f``, slippage
    ``s``, impact ``m``).
    """
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
            m = impact_fraction_nb(x, liquidity[i], sigma[i], impact_coef)
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
    min_trade_value: float,
    max_value: np.ndarray,
    liquidity: np.ndarray,
    participation: float,
    sigma: np.ndarray,
    fee_rate: float,
    slip_rate: float,
    impact_coef: float,
    net: bool,
    skipped: np.ndarray,
    order_value: np.ndarray,
    deltas: np.ndarray,
) -> None:
    """Fill ``deltas`` with the unit trades that move ``units`` toward ``target_weights`` under the
    trade rules.

    Shared by the simulation kernel and the live analyzer so that what was tested is what is traded.
    ``prices`` are fill reference prices (NaN = not tradable now); ``val_prices`` value the book for
    assets that cannot trade now. With ``net`` the targets are weights of the *post-trade* equity
    (costs paid out of the rebalance, see :func:`net_value_nb`); otherwise of the pre-trade equity
    (vectorbt's convention). Buys are *not* yet limited by cash (see :func:`fill_orders_nb`).
    ``skipped[i]`` is set when a trade was wanted but fell below the lot step, ``min_trade_value``
    or ``min_notional``; ``order_value[i]`` receives ``w_i * V - units_i * p_i`` (the sort key of
    vectorbt's auto call sequence).
    """
    n = units.shape[0]
    for i in range(n):
        deltas[i] = 0.0
    value = book_value_nb(units, prices, val_prices, cash)
    if not (value > 0.0):
        return
    if net:
        value = net_value_nb(
            units, prices, target_weights, value, fee_rate, slip_rate, impact_coef, sigma, liquidity
        )
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


@njit(cache=True, inline="always", error_model="numpy")
def _exec_sell(
    i,
    q,
    p,
    cash,
    units,
    fee_rate,
    slip_rate,
    impact_coef,
    sigma,
    liq,
    bar,
    reason,
    trades,
    n_trades,
    record,
):
    """Sell ``q`` units; returns (cash, n_trades, fee, slippage cost, impact cost)."""
    imp = impact_fraction_nb(q * p, liq, sigma, impact_coef)
    fill = p * (1.0 - slip_rate - imp)
    if fill < 0.0:
        fill = 0.0
    proceeds = q * fill
    fee = proceeds * fee_rate
    left = units[i] - q
    units[i] = 0.0 if abs(left) < 1e-12 * q else left
    slip_cost = q * p * slip_rate
    imp_cost = q * p * imp
    if record:
        _record(trades, n_trades, bar, i, -q, p, fill, fee, slip_cost, imp_cost, reason)
    return cash + proceeds - fee, n_trades + 1, fee, slip_cost, imp_cost


@njit(cache=True, inline="always", error_model="numpy")
def _exec_buy(
    i,
    q,
    p,
    cash,
    units,
    fee_rate,
    slip_rate,
    impact_coef,
    sigma,
    liq,
    lot,
    bar,
    reason,
    trades,
    n_trades,
    record,
):
    """Buy ``q`` units, or what the cash allows (vectorbt's partial fill); returns
    (cash, n_trades, fee, slippage cost, impact cost, traded notional)."""
    imp = impact_fraction_nb(q * p, liq, sigma, impact_coef)
    fill = p * (1.0 + slip_rate + imp)
    req = q * fill * (1.0 + fee_rate)
    if req > cash * (1.0 + 1e-12):
        # spend all remaining cash on this order
        if cash <= 0.0:
            return cash, n_trades, 0.0, 0.0, 0.0, 0.0
        q = cash / (1.0 + fee_rate) / fill
        if lot > 0.0:
            q = round_to_lot_nb(q, lot)
        if q <= 0.0:
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
    fee_rate: float,
    slip_rate: float,
    impact_coef: float,
    sigma: np.ndarray,
    liquidity: np.ndarray,
    lot_step: np.ndarray,
    min_notional: np.ndarray,
    min_trade_value: float,
    sizing: int,
    order_value: np.ndarray,
    work_idx: np.ndarray,
    bar: int | np.integer,
    reason: int | np.integer,
    trades: np.ndarray,
    n_trades: int | np.integer,
    record: bool,
    costs: np.ndarray,
):
    """Execute planned ``deltas``: all sells, then buys limited by cash. Returns ``(cash, n_trades)``.

    ``costs`` accumulates ``[fees, slippage, impact, traded notional, ...]``.
    """
    n = deltas.shape[0]
    fees = 0.0
    slips = 0.0
    imps = 0.0
    notional = 0.0
    for i in range(n):
        if deltas[i] < 0.0:
            cash, n_trades, f, sl, im = _exec_sell(
                i,
                -deltas[i],
                prices[i],
                cash,
                units,
                fee_rate,
                slip_rate,
                impact_coef,
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
    for i in range(n):
        if deltas[i] > 0.0:
            j = n_buys
            while (
                sizing == SIZING_VECTORBT
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
    if sizing != SIZING_VECTORBT:
        need = 0.0
        for k in range(n_buys):
            i = work_idx[k]
            q = deltas[i]
            imp = impact_fraction_nb(q * prices[i], liquidity[i], sigma[i], impact_coef)
            need += q * prices[i] * (1.0 + slip_rate + imp) * (1.0 + fee_rate)
        if need > cash * (1.0 + 1e-12):
            scale = cash / need if cash > 0.0 else 0.0
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
            fee_rate,
            slip_rate,
            impact_coef,
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
    costs[0] += fees
    costs[1] += slips
    costs[2] += imps
    costs[3] += notional
    return cash, n_trades


@njit(cache=True, error_model="numpy")
def _liquidate_nb(
    i,
    price,
    cash,
    units,
    fee_rate,
    slip_rate,
    impact_coef,
    sigma,
    liq,
    bar,
    reason,
    trades,
    n_trades,
    record,
    costs,
):
    """Sell all of asset ``i`` at ``price`` (a stop-loss or a delisting); returns (cash, n_trades)."""
    q = units[i]
    cash, n_trades, fee, slip_cost, imp_cost = _exec_sell(
        i,
        q,
        price,
        cash,
        units,
        fee_rate,
        slip_rate,
        impact_coef,
        sigma,
        liq,
        bar,
        reason,
        trades,
        n_trades,
        record,
    )
    costs[0] += fee
    costs[1] += slip_cost
    costs[2] += imp_cost
    costs[3] += q * price
    return cash, n_trades


@njit(cache=True, error_model="numpy")
def band_check_nb(units, prices, val_prices, target, cash, band, relative, to_edge):
    """Whether some weight is outside ``target +- band`` (``band * target`` when ``relative``).

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
        width = band * target[i] if relative else band
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
def simulate_core_nb(
    fill_price: np.ndarray,
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    open_: np.ndarray,
    targets: np.ndarray,
    order_row: np.ndarray,
    delist: np.ndarray,
    delist_row: np.ndarray,
    sigma: np.ndarray,
    liquidity: np.ndarray,
    max_value: np.ndarray,
    lot_step: np.ndarray,
    min_notional: np.ndarray,
    initial_cash: float,
    fee_rate: float,
    slip_rate: float,
    impact_coef: float,
    participation: float,
    min_trade_value: float,
    band: float,
    band_relative: bool,
    band_edge: bool,
    stop_pct: float,
    entry_at_close: bool,
    sizing: int,
    equity: np.ndarray,
    cash_out: np.ndarray,
    units_out: np.ndarray,
    store_units: bool,
    traded: np.ndarray,
    trades: np.ndarray,
    record: bool,
    costs: np.ndarray,
) -> int | np.integer:
    """One scenario. Fills ``equity``/``cash_out``/``traded`` (T,) and, when asked, ``units_out``
    (T, N) and the ``trades`` ledger; returns the number of ledger rows.

    ``order_row[t]`` says whether row ``t`` of ``targets`` holds an order and ``delist_row[t]``
    whether some asset stops trading at bar ``t`` (both precomputed by the wrapper).
    """
    n_bars, n = fill_price.shape
    units = np.zeros(n)
    last_val = np.zeros(n)  # last close seen; 0 before the first (units are 0 there)
    peak = np.zeros(n)
    stopped = np.zeros(n, dtype=np.bool_)
    entered = np.full(n, -1, dtype=np.int64)
    standing = np.full(n, np.nan)
    has_standing = False
    cash = initial_cash
    n_trades = np.int64(0)  # not a literal: callees compile once
    goal = np.empty(n)
    skipped = np.zeros(n, dtype=np.bool_)
    order_value = np.zeros(n)
    deltas = np.zeros(n)
    work_idx = np.zeros(n, dtype=np.int64)
    rebalance_reason = np.int64(REASON_REBALANCE)
    band_reason = np.int64(REASON_BAND)
    stop_reason = np.int64(REASON_STOP)
    delist_reason = np.int64(REASON_DELIST)
    for t in range(n_bars):
        before = costs[3]
        new_row = order_row[t]
        if new_row:
            for i in range(n):
                standing[i] = targets[t, i]
                stopped[i] = False
            has_standing = True
        if has_standing and (new_row or band > 0.0):
            prices = fill_price[t]
            trade_now = new_row
            reason = rebalance_reason
            for i in range(n):
                goal[i] = standing[i]
                if stopped[i]:
                    goal[i] = 0.0 if units[i] > 0.0 else np.nan
            if band > 0.0:
                trade_now = band_check_nb(
                    units, prices, last_val, goal, cash, band, band_relative, band_edge
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
                    lot_step,
                    min_notional,
                    min_trade_value,
                    max_value[t],
                    liquidity[t],
                    participation,
                    sigma[t],
                    fee_rate,
                    slip_rate,
                    impact_coef,
                    sizing == SIZING_NET,
                    skipped,
                    order_value,
                    deltas,
                )
                costs[4] += skipped.sum()
                cash, n_trades = fill_orders_nb(
                    deltas,
                    units,
                    prices,
                    cash,
                    fee_rate,
                    slip_rate,
                    impact_coef,
                    sigma[t],
                    liquidity[t],
                    lot_step,
                    min_notional,
                    min_trade_value,
                    sizing,
                    order_value,
                    work_idx,
                    t,
                    reason,
                    trades,
                    n_trades,
                    record,
                    costs,
                )
                for i in range(n):
                    if deltas[i] > 0.0 and units[i] > 0.0 and prices[i] > 0.0:
                        if peak[i] < prices[i]:
                            peak[i] = prices[i]
                        if entry_at_close:
                            entered[i] = t
        # trailing stop-loss inside the bar (not on a bar whose close was the entry)
        if stop_pct > 0.0:
            for i in range(n):
                if entered[i] == t:
                    continue
                if units[i] > 0.0 and low[t, i] == low[t, i]:
                    level = peak[i] * (1.0 - stop_pct)
                    if low[t, i] <= level:
                        px = open_[t, i] if open_[t, i] < level else level
                        cash, n_trades = _liquidate_nb(
                            i,
                            px,
                            cash,
                            units,
                            fee_rate,
                            slip_rate,
                            impact_coef,
                            sigma[t, i],
                            liquidity[t, i],
                            t,
                            stop_reason,
                            trades,
                            n_trades,
                            record,
                            costs,
                        )
                        stopped[i] = True
                        peak[i] = 0.0
                if units[i] > 0.0 and high[t, i] > peak[i]:
                    peak[i] = high[t, i]
        # delisted assets are sold at their last close
        if delist_row[t]:
            for i in range(n):
                if delist[t, i] and units[i] > 0.0:
                    cash, n_trades = _liquidate_nb(
                        i,
                        close[t, i],
                        cash,
                        units,
                        fee_rate,
                        slip_rate,
                        impact_coef,
                        sigma[t, i],
                        liquidity[t, i],
                        t,
                        delist_reason,
                        trades,
                        n_trades,
                        record,
                        costs,
                    )
        # valuation at the close (the last close for an asset without a candle now)
        value = cash
        for i in range(n):
            c = close[t, i]
            lv = c if c == c else last_val[i]
            last_val[i] = lv
            value += units[i] * lv
        if store_units:
            for i in range(n):
                units_out[t, i] = units[i]
        equity[t] = value
        cash_out[t] = cash
        traded[t] = costs[3] - before
    return n_trades


@njit(cache=True, error_model="numpy")
def simulate_batch_nb(
    fill_price,
    close,
    high,
    low,
    open_,
    targets,
    order_rows,
    delist,
    delist_row,
    sigma,
    liquidity,
    max_value,
    lot_step,
    min_notional,
    initial_cash,
    fee_rate,
    slip_rate,
    impact_coef,
    participation,
    min_trade_value,
    band,
    band_relative,
    band_edge,
    stop_pct,
    entry_at_close,
    sizing,
    capacity,
    store_units,
    record,
):
    """Many scenarios on one market in one call, for sweeps.

    ``targets`` is (S, T, N) with ``order_rows`` (S, T); ``initial_cash``, ``fee_rate``,
    ``slip_rate``, ``impact_coef``, ``min_trade_value`` and ``band`` are per scenario, shape (S,);
    the rest is shared. Returns ``equity`` (S, T), ``cash`` (S, T), ``units`` (S, T, N) (or
    (S, 1, N) when ``store_units`` is False), ``traded`` (S, T), the ledgers ``trades``
    (S, capacity) with ``n_trades`` (S,) rows each (when ``record``), and ``costs`` (S, 5) =
    fees, slippage, impact, traded notional, skipped trades.
    """
    n_scen, n_bars, n = targets.shape
    equity = np.empty((n_scen, n_bars))
    cash = np.empty((n_scen, n_bars))
    units = np.empty((n_scen, n_bars if store_units else 1, n))
    traded = np.empty((n_scen, n_bars))
    trades = np.empty((n_scen, capacity if record else 0), dtype=TRADE_DTYPE)
    n_trades = np.zeros(n_scen, dtype=np.int64)
    costs = np.zeros((n_scen, 5))
    for s in range(n_scen):
        n_trades[s] = simulate_core_nb(
            fill_price,
            close,
            high,
            low,
            open_,
            targets[s],
            order_rows[s],
            delist,
            delist_row,
            sigma,
            liquidity,
            max_value,
            lot_step,
            min_notional,
            initial_cash[s],
            fee_rate[s],
            slip_rate[s],
            impact_coef[s],
            participation,
            min_trade_value[s],
            band[s],
            band_relative,
            band_edge,
            stop_pct,
            entry_at_close,
            sizing,
            equity[s],
            cash[s],
            units[s],
            store_units,
            traded[s],
            trades[s],
            record,
            costs[s],
        )
    return equity, cash, units, traded, trades, n_trades, costs


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
