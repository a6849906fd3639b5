"""Pure-Python/NumPy twins of the simulation kernels: slow, obvious loops written from the kernel's
documented semantics (docs/engine.md, "The kernel"), used as test oracles.

Nothing here calls a numba function: the twins read the kernels' parameter records (plain
``NamedTuple``s from ``backtest.records``) and write ledgers of the same dtype, so a test can hand
both sides the same inputs and compare the outputs field by field. They are written for clarity, one
asset and one trade at a time, with the book as a small object; the tolerances they share with the
kernels are the documented ones (``docs/engine.md``, "Tolerances").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backtest.records import (
    BAND_COST,
    BAND_RELATIVE,
    COST_DTYPE,
    REASON_BAND,
    REASON_DELIST,
    REASON_REBALANCE,
    REASON_STOP,
    SIZING_NET,
    SIZING_VECTORBT,
    TRADE_DTYPE,
    FillParams,
    MarketArrays,
    SimulationParams,
)

LOT_TOLERANCE = 1e-9  # in lots: 2.9999999999 lots of a trade count as 3
CASH_TOLERANCE = 1e-12  # relative: a buy that needs up to cash * (1 + 1e-12) is affordable
BAND_TOLERANCE = 1e-12  # in weight: a weight on the band edge is inside
NOISE = 1e-12  # relative to the position: a smaller trade is rounding noise, not a trade
DUST = 1e-12  # relative to the sale: what is left of a position after selling (almost) all of it


def _has(x: float) -> bool:
    """A usable positive number (NaN and <= 0 are not)."""
    return bool(x > 0.0)


def lots_toward_zero(units: float, lot: float) -> float:
    """``units`` rounded toward zero to a whole number of ``lot`` (``lot <= 0``: unchanged)."""
    if not lot > 0.0:
        return units
    whole = math.floor(abs(units) / lot + LOT_TOLERANCE)
    return math.copysign(whole * lot, units) if whole else 0.0


def impact(notional: float, liquidity: float, sigma: float, coef: float) -> float:
    """Square-root impact, a fraction of the price: ``coef * sigma * sqrt(notional / liquidity)``,
    zero without a coefficient, a volume or a volatility."""
    if not (coef > 0.0 and _has(liquidity) and _has(sigma)):
        return 0.0
    return coef * sigma * math.sqrt(notional / liquidity)


def trade_cost(notional: float, sell: bool, rates: FillParams, liquidity: float, sigma: float):
    """Slippage + impact + fee of a trade of ``notional`` (quote) at the reference price."""
    m = impact(notional, liquidity, sigma, rates.impact_coef)
    s = rates.slippage_rate
    adverse = notional * (s + m)
    fill_notional = notional * (1.0 - s - m) if sell else notional * (1.0 + s + m)
    return adverse + rates.fee_rate * fill_notional


def book_value(units, prices, val_prices, cash: float) -> float:
    """Cash plus every holding at its fill price, or at its valuation price when it has none."""
    total = cash
    for i, held in enumerate(units):
        if held == 0.0:
            continue
        price = prices[i] if _has(prices[i]) else val_prices[i]
        if _has(price):
            total += held * price
    return total


def net_equity(units, prices, weights, value: float, rates: FillParams, liquidity, sigma) -> float:
    """The post-trade equity ``V_net = V - sum_i cost_i(|w_i V_net - h_i p_i|)``, by iterating the
    map ``v -> V - cost(v)`` until it stops moving (it contracts: costs are a small fraction)."""
    v = value
    for _ in range(100):
        cost = 0.0
        for i in range(len(units)):
            if not _has(prices[i]) or math.isnan(weights[i]):
                continue
            gap = weights[i] * v - units[i] * prices[i]
            cost += trade_cost(abs(gap), gap < 0.0, rates, liquidity[i], sigma[i])
        nxt = value - cost
        if abs(nxt - v) <= 1e-15 * abs(value):
            return nxt
        v = nxt
    return v


@dataclass
class Plan:
    deltas: np.ndarray  # unit trades wanted, before the cash limit
    skipped: np.ndarray  # a trade was wanted but fell below the lot step or a minimum
    order_value: np.ndarray  # w_i V - h_i p_i: vectorbt's buy order


def plan_trades(
    units,
    prices,
    val_prices,
    weights,
    cash,
    *,
    lot_step,
    min_notional,
    max_value,
    liquidity,
    sigma,
    rates: FillParams,
) -> Plan:
    """The trade rules of one rebalance (docs/engine.md, steps 1-3), one asset at a time."""
    n = len(units)
    plan = Plan(np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n))
    value = book_value(units, prices, val_prices, cash)
    if not value > 0.0:
        return plan
    if rates.sizing == SIZING_NET:
        value = net_equity(units, prices, weights, value, rates, liquidity, sigma)
    for i in range(n):
        p, w = prices[i], weights[i]
        if not _has(p) or math.isnan(w):
            continue  # no price now, or no target: the position stays
        plan.order_value[i] = w * value - units[i] * p
        target = min(w * value, max_value[i]) / p
        trade = target - units[i]
        if abs(trade) <= NOISE * max(target, units[i]):
            continue  # already on target, up to rounding
        exit_all = target == 0.0 and trade < 0.0
        if rates.participation > 0.0 and _has(liquidity[i]):
            most = rates.participation * liquidity[i] / p
            if abs(trade) > most:
                trade, exit_all = math.copysign(most, trade), False
        if not exit_all:
            trade = lots_toward_zero(trade, lot_step[i])
        if trade == 0.0 or abs(trade) * p < max(rates.min_trade_value, min_notional[i]):
            plan.skipped[i] = target != units[i]
            continue
        plan.deltas[i] = trade
    return plan


@dataclass
class Book:
    """Cash, holdings, the ledger and the cost totals of one portfolio."""

    cash: float
    units: np.ndarray
    rows: list[tuple] = field(default_factory=list)
    fees: float = 0.0
    slippage: float = 0.0
    impact: float = 0.0
    traded_notional: float = 0.0
    skipped_trades: int = 0

    def _book(self, bar, i, q, p, fill, fee, m, rates, reason) -> None:
        slip_cost, imp_cost = abs(q) * p * rates.slippage_rate, abs(q) * p * m
        self.rows.append((bar, i, q, p, fill, fee, slip_cost, imp_cost, reason))
        self.fees += fee
        self.slippage += slip_cost
        self.impact += imp_cost
        self.traded_notional += abs(q) * p

    def sell(self, bar, i, q, p, rates, liquidity, sigma, reason) -> None:
        """Sell ``q`` units at ``p (1 - s - m)`` (never below 0), paying the fee on the proceeds."""
        m = impact(q * p, liquidity, sigma, rates.impact_coef)
        fill = max(p * (1.0 - rates.slippage_rate - m), 0.0)
        fee = q * fill * rates.fee_rate
        self.cash += q * fill - fee
        left = self.units[i] - q
        self.units[i] = 0.0 if abs(left) < DUST * q else left
        self._book(bar, i, -q, p, fill, fee, m, rates, reason)

    def buy(self, bar, i, q, p, rates, liquidity, sigma, lot, reason) -> None:
        """Buy ``q`` units at ``p (1 + s + m)`` plus the fee; short of cash, buy what the cash pays
        for (whole lots) at the same fill price."""
        m = impact(q * p, liquidity, sigma, rates.impact_coef)
        fill = p * (1.0 + rates.slippage_rate + m)
        if q * fill * (1.0 + rates.fee_rate) > self.cash * (1.0 + CASH_TOLERANCE):
            if self.cash <= 0.0:
                return
            affordable = lots_toward_zero(self.cash / (1.0 + rates.fee_rate) / fill, lot)
            if affordable <= NOISE * q:
                return  # no cash, or only its rounding residue
            q = affordable
        fee = q * fill * rates.fee_rate
        self.units[i] += q
        self.cash = max(self.cash - q * fill - fee, 0.0)
        self._book(bar, i, q, p, fill, fee, m, rates, reason)

    def ledger(self) -> np.ndarray:
        return np.array(self.rows, dtype=TRADE_DTYPE)

    def totals(self) -> np.ndarray:
        out = np.zeros(1, dtype=COST_DTYPE)
        for name in COST_DTYPE.names or ():
            out[name][0] = getattr(self, name)
        return out


def fill_orders(
    book: Book,
    deltas,
    prices,
    *,
    rates: FillParams,
    liquidity,
    sigma,
    lot_step,
    min_notional,
    order_value,
    bar: int,
    reason: int,
) -> list[int]:
    """Docs step 4-5: every sell, then the buys limited by the cash. Returns the executed buys."""
    for i in range(len(deltas)):
        if deltas[i] < 0.0:
            book.sell(bar, i, -deltas[i], prices[i], rates, liquidity[i], sigma[i], reason)
    buys = [i for i in range(len(deltas)) if deltas[i] > 0.0]
    if rates.sizing == SIZING_VECTORBT:
        buys.sort(key=lambda i: order_value[i])  # stable: ties keep column order
    scale = 1.0
    if rates.sizing != SIZING_VECTORBT:
        need = 0.0
        for i in buys:
            notional = deltas[i] * prices[i]
            m = impact(notional, liquidity[i], sigma[i], rates.impact_coef)
            need += notional * (1.0 + rates.slippage_rate + m) * (1.0 + rates.fee_rate)
        if need > book.cash * (1.0 + CASH_TOLERANCE):
            scale = book.cash / need if book.cash > 0.0 else 0.0
            scale = 0.0 if scale <= NOISE else scale  # residue cash buys nothing
    done = []
    for i in buys:
        q = deltas[i] * scale
        if scale < 1.0:
            q = lots_toward_zero(q, lot_step[i])
            if q <= 0.0 or q * prices[i] < max(rates.min_trade_value, min_notional[i]):
                continue
        before = len(book.rows)
        book.buy(bar, i, q, prices[i], rates, liquidity[i], sigma[i], lot_step[i], reason)
        if len(book.rows) > before:
            done.append(i)
    return done


def band_width(band: float, mode: int, goal: float) -> float:
    """The band's half-width around the target weight ``goal`` (docs/engine.md, "Drift bands")."""
    if mode == BAND_RELATIVE:
        return band * goal
    if mode == BAND_COST:  # (3 c w^2 (1-w)^2 / (2 g))^(1/3) = band (w (1-w))^(2/3)
        return float(band * np.cbrt((goal * (1.0 - goal)) ** 2))
    return band


def band_breached(units, prices, val_prices, goal, cash, band, mode, to_edge):
    """Whether a weight left ``goal +- width`` (:func:`band_width`); with ``to_edge`` the goal becomes
    the nearest edge for breached assets and NaN (leave alone) for the others."""
    value = book_value(units, prices, val_prices, cash)
    if not value > 0.0:
        return False, goal
    breached, edges = False, goal.copy()
    for i in range(len(units)):
        if not _has(prices[i]) or math.isnan(goal[i]):
            continue
        weight = units[i] * prices[i] / value
        width = band_width(band, mode, goal[i])
        if weight > goal[i] + width + BAND_TOLERANCE:
            breached, edges[i] = True, goal[i] + width
        elif weight < goal[i] - width - BAND_TOLERANCE:
            breached, edges[i] = True, max(goal[i] - width, 0.0)
        else:
            edges[i] = np.nan
    return breached, (edges if to_edge else goal)


@dataclass
class TwinRun:
    equity: np.ndarray
    cash: np.ndarray
    units: np.ndarray
    traded: np.ndarray
    trades: np.ndarray
    totals: np.ndarray  # (1,) COST_DTYPE


def at_bar(per_bar: np.ndarray, t: int) -> np.ndarray:
    """Row ``t`` of a per-bar market array, or its only row (one row for every bar)."""
    return per_bar[t] if len(per_bar) > 1 else per_bar[0]


def simulate(market: MarketArrays, targets: np.ndarray, params: SimulationParams) -> TwinRun:
    """One scenario, bar by bar: orders (a row of ``targets`` with a finite entry), the trailing
    stop, delistings, the valuation at the close (docs/engine.md, "The kernel")."""
    n_bars, n = targets.shape
    rates = params.fills
    book = Book(cash=params.initial_cash, units=np.zeros(n))
    last_close = np.zeros(n)  # valuation of an asset without a candle now
    high_since_entry = np.zeros(n)
    stopped = np.zeros(n, dtype=bool)  # out until the next target refresh
    entry_bar = np.full(n, -1)
    standing = None
    equity, cash, traded = np.zeros(n_bars), np.zeros(n_bars), np.zeros(n_bars)
    holdings = np.zeros((n_bars, n))
    for t in range(n_bars):
        traded_before = book.traded_notional
        is_order = bool(np.isfinite(targets[t]).any())
        if is_order:
            standing, stopped[:] = targets[t].copy(), False
        if standing is not None and (is_order or params.band > 0.0):
            prices = market.fill_price[t]
            goal = np.where(stopped, np.nan, standing)
            trade, reason = is_order, REASON_REBALANCE
            if params.band > 0.0:
                trade, goal = band_breached(
                    book.units,
                    prices,
                    last_close,
                    goal,
                    book.cash,
                    params.band,
                    params.band_mode,
                    params.band_to_edge,
                )
                reason = REASON_REBALANCE if is_order else REASON_BAND
            if trade:
                lots, mins = market.lot_step, market.min_notional
                liq, sig = at_bar(market.liquidity, t), at_bar(market.sigma, t)
                plan = plan_trades(
                    book.units,
                    prices,
                    last_close,
                    goal,
                    book.cash,
                    lot_step=lots,
                    min_notional=mins,
                    max_value=at_bar(market.max_value, t),
                    liquidity=liq,
                    sigma=sig,
                    rates=rates,
                )
                book.skipped_trades += int(plan.skipped.sum())
                bought = fill_orders(
                    book,
                    plan.deltas,
                    prices,
                    rates=rates,
                    liquidity=liq,
                    sigma=sig,
                    lot_step=lots,
                    min_notional=mins,
                    order_value=plan.order_value,
                    bar=t,
                    reason=reason,
                )
                for i in range(n):
                    if book.units[i] == 0.0:
                        high_since_entry[i] = 0.0  # flat: the next entry starts afresh
                for i in bought:
                    high_since_entry[i] = max(high_since_entry[i], prices[i])
                    if params.fill_at_close:
                        entry_bar[i] = t
        if params.stop_loss > 0.0:
            for i in range(n):
                if entry_bar[i] == t or not book.units[i] > 0.0:
                    continue
                low = market.low[t, i]
                level = high_since_entry[i] * (1.0 - params.stop_loss)
                if low <= level:  # NaN low: no candle, no stop
                    gap_open = market.open[t, i]
                    price = gap_open if gap_open < level else level  # gapped through: the open
                    book.sell(
                        t,
                        i,
                        book.units[i],
                        price,
                        rates,
                        at_bar(market.liquidity, t)[i],
                        at_bar(market.sigma, t)[i],
                        REASON_STOP,
                    )
                    stopped[i], high_since_entry[i] = True, 0.0
                elif market.high[t, i] > high_since_entry[i]:
                    high_since_entry[i] = market.high[t, i]
        for i in range(n):
            if market.delist_bar[i] == t and book.units[i] > 0.0:
                book.sell(
                    t,
                    i,
                    book.units[i],
                    market.close[t, i],
                    rates,
                    at_bar(market.liquidity, t)[i],
                    at_bar(market.sigma, t)[i],
                    REASON_DELIST,
                )
        for i in range(n):
            if not math.isnan(market.close[t, i]):
                last_close[i] = market.close[t, i]
        equity[t] = book.cash + float(np.dot(book.units, last_close))
        cash[t] = book.cash
        holdings[t] = book.units
        traded[t] = book.traded_notional - traded_before
    return TwinRun(equity, cash, holdings, traded, book.ledger(), book.totals())
