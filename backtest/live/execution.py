"""The execution loop: a rebalancing plan placed as limit orders, slice by slice, watched, repriced
or canceled, and reconciled with the exchange.

:class:`ExecutionLoop` runs a :class:`~backtest.live.results.RebalancePlan` in rounds. Round ``k``
places slice ``k`` of every trade (sells first), plus what the trade's previous slice left unfilled
(partial fills carry into the next slice), then polls each order (``fetch_order``) every
``poll_seconds`` until it is final. **Buys are fitted to the cash** (the backtest kernel's rule:
sell first, then buy with what the cash pays): a buy is placed only as far as the free quote
balance pays it (the balance read before the first order, moved by every fill, minus what the
open buys reserve: their rest at the limit plus the fee estimate), in whole lots and in the plan's
order; the rest waits for the sells' proceeds and is placed in the next round, after the round's
sells are final, with further rounds for it after the last slice as long as the proceeds pay more
of it (a rest below the minimum order value is reported unfilled). An order still open ``order_timeout_seconds`` after it was
placed is canceled; its unfilled rest is placed again at a fresh limit (the last price ± the limit offset,
on the tick) up to ``max_reprices`` times per trade, else carried into the trade's next slice (or
left unfilled after the last one). ``deadline_seconds`` cancels everything still open and places
nothing more. At the end the balances are read (``fetch_balance``) and compared with the starting
holdings plus the fills.

**Crash safety.** Before an order is sent, its client order id is committed to the journal as an
``intent``; each status seen and each fill follow. A process killed mid-execution therefore leaves
a journal whose :meth:`~backtest.live.journal.Journal.open_orders` lists every order that may rest
on the exchange, and :meth:`ExecutionLoop.reconcile` (run first by :meth:`ExecutionLoop.run`)
finds each one (``fetch_open_orders``, else ``fetch_order`` by client id), cancels it if open,
records its fills and final status (``missing`` when the exchange never received it) before
anything new is placed.

Time is injectable: ``clock()`` (seconds) and ``await sleep(seconds)`` default to
``time.monotonic`` and ``asyncio.sleep``; ``now()`` stamps the journal rows (default: UTC wall
clock). Tests and the paper replay pass simulated ones. :meth:`PortfolioAnalyzer.execute
<backtest.live.PortfolioAnalyzer.execute>` (``backtest rebalance --execute``) and the paper replay
both run this loop. See docs/live.md ("The execution loop").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from backtest.live.order_rules import ExecutionSettings, affordable
from backtest.live.results import OrderReport, RebalancePlan, Trade
from backtest.trade_rules import floor_to_grid, on_grid
from datasets.errors import ExchangeAuthError, MissingCredentialsError, ReadOnlyError

log = logging.getLogger(__name__)

FINAL = ("closed", "canceled", "expired", "rejected", "missing")
_BALANCE_TOL = 1e-9


@dataclass
class _Order:
    """One order the loop placed (or found in the journal), with what it has seen so far."""

    trade: Trade | None
    cid: str
    symbol: str
    side: str
    amount: float
    limit: float
    placed_at: float
    order_id: str = ""
    status: str = "intent"
    filled: float = 0.0
    cost: float = 0.0
    fee: float = 0.0


@dataclass
class _TradeState:
    trade: Trade
    next_slice: int = 0
    carry: float = 0.0  # unfilled rest, placed with the next slice
    waiting: float = 0.0  # a buy's whole lots the cash could not pay yet, placed next round
    reprices: int = 0
    filled: float = 0.0


@dataclass
class ExecutionReport:
    """What the loop did: every order placed (reprices included), the fills, what stayed unfilled,
    the balances read at the end and their differences from the expected ones."""

    orders: list[OrderReport] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    unfilled: dict[str, float] = field(default_factory=dict)
    reconciled: list[OrderReport] = field(default_factory=list)
    balances: dict[str, float] = field(default_factory=dict)
    mismatches: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class ExecutionLoop:
    """Places, watches, reprices and reconciles the orders of a plan (see the module docstring).

    Parameters
    ----------
    exchange : ExchangeConnector
        Built with ``read_only=False``.
    journal : Journal, optional
        Where intents, statuses and fills are committed (each event its own commit).
    settings : ExecutionSettings, optional
    prefix : str, optional
        Client order ids are ``<prefix>-<n>`` (Binance: at most 36 of ``[.A-Z:/a-z0-9_-]``);
        default ``ap<yymmddHHMMSSmmm>`` from ``now()``, so that two runs never share an id.
    clock, sleep, now : callables, optional
        Seconds (``time.monotonic``), ``await sleep(seconds)`` (``asyncio.sleep``) and the
        journal's time stamp (UTC wall clock).
    commit : callable, optional
        Receives each commit's ``{table: DataFrame}`` instead of ``journal.append`` (the paper
        replay collects a decision's rows into one commit).

    Examples
    --------
    >>> loop = ExecutionLoop(exchange, journal, prefix="ap12")  # doctest: +SKIP
    >>> report = await loop.run(plan, holdings=analyzer.holdings)  # doctest: +SKIP
    """

    def __init__(
        self,
        exchange: Any,
        journal: Any = None,
        *,
        settings: ExecutionSettings | None = None,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        now: Callable[[], pd.Timestamp] | None = None,
        commit: Callable[[dict[str, pd.DataFrame]], Any] | None = None,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.settings = settings or ExecutionSettings()
        self.clock = clock or time.monotonic
        self.sleep = sleep or asyncio.sleep
        self.now = now or (lambda: pd.Timestamp.now(tz="UTC").floor("ms"))
        if prefix is None:
            start = self.now()
            prefix = f"ap{start:%y%m%d%H%M%S}{start.microsecond // 1000:03d}"
        self.prefix = prefix
        self._commit = commit or (journal.append if journal is not None else None)
        self._count = 0
        self._report = ExecutionReport()
        self._cash: dict[str, float] = {}  # quote balance: the one read at the start + the fills
        self._turnover: dict[str, float] = {}  # the scale of the cash's rounding error
        self._placed: list[_Order] = []

    # ------------------------------------------------------------------ journal rows
    def _record(self, orders: list[_Order] = (), fills: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        if self._commit is None or not (orders or fills):
            return
        now = self.now()
        tables = {}
        if orders:
            tables["orders"] = pd.DataFrame([_order_row(now, o) for o in orders])
        if fills:
            tables["fills"] = pd.DataFrame([{"time": now, **f} for f in fills])
        self._commit(tables)

    def _update(self, order: _Order, status: Any) -> list[dict[str, Any]]:
        """Take a fetched status into ``order``; returns the fill it reveals (if any)."""
        order.status = status.status
        order.order_id = order.order_id or (status.id or "")
        delta = status.filled - order.filled
        if not delta > 1e-15 * max(order.amount, 1.0):
            return []
        cost = status.average * status.filled if math.isfinite(status.average) else math.nan
        price = (cost - order.cost) / delta if math.isfinite(cost) else order.limit
        if math.isfinite(status.fee):
            fee = status.fee - order.fee
        else:
            fee = self.settings.fee_rate * delta * price
        order.filled, order.cost, order.fee = (
            status.filled,
            order.cost + delta * price,
            order.fee + fee,
        )
        quote = order.symbol.split("/")[1]
        sign = 1.0 if order.side == "sell" else -1.0
        self._cash[quote] = self._cash.get(quote, 0.0) + sign * delta * price - fee
        self._turnover[quote] = self._turnover.get(quote, 0.0) + delta * price
        fill = {
            "client_order_id": order.cid,
            "symbol": order.symbol,
            "side": order.side,
            "amount": delta,
            "price": price,
            "fee": fee,
        }
        self._report.fills.append(fill)
        return [fill]

    # ------------------------------------------------------------------ placing and watching
    async def _place(self, state: _TradeState, amount: float, limit: float) -> _Order | None:
        trade = state.trade
        self._count += 1
        order = _Order(
            trade,
            f"{self.prefix}-{self._count}",
            trade.symbol,
            trade.side,
            amount,
            limit,
            self.clock(),
        )
        self._record([order])  # the intent, committed before anything is sent
        try:
            status = await self.exchange.create_limit_order(
                trade.symbol, trade.side, amount, limit, params={"clientOrderId": order.cid}
            )
        except (ExchangeAuthError, MissingCredentialsError, ReadOnlyError):
            raise  # the account, not the order: stop (the intent is settled by the next reconcile)
        except ValueError as exc:  # refused (funds, minimum, rounds to 0): journaled as rejected
            order.status = "rejected"
            self._record([order])
            self._report.orders.append(_order_report(order, str(exc)))
            self._report.unfilled[order.symbol] = (
                self._report.unfilled.get(order.symbol, 0.0) + amount
            )
            log.warning("order %s rejected: %s", order.cid, exc)
            return None
        order.amount, order.limit = status.amount, status.price
        self._placed.append(order)
        fills = self._update(order, status)
        self._record([order], fills)
        return order

    def free_cash(self, quote: str) -> float:
        """The quote balance a new buy may use: the cash (the balance read before the first order
        plus the fills) minus what the open buys reserve (their rest at the limit, with the fee
        estimate) and a rounding margin."""
        rate = 1.0 + self.settings.fee_rate
        reserved = sum(
            (o.amount - o.filled) * o.limit * rate
            for o in self._placed
            if o.side == "buy" and o.status not in FINAL and o.symbol.split("/")[1] == quote
        )
        cash = self._cash.get(quote, 0.0)
        return cash - reserved - 1e-9 * (abs(cash) + self._turnover.get(quote, 0.0))

    async def _cancel(self, order: _Order) -> list[dict[str, Any]]:
        status = await self.exchange.cancel_order(order.symbol, order.order_id or None, order.cid)
        if status is None or status.status not in FINAL or not math.isfinite(status.average):
            status = await self.exchange.fetch_order(
                order.symbol, order.order_id or None, order.cid
            )
        if status is None:  # gone: neither open nor known; keep what was seen
            order.status = "canceled"
            return []
        return self._update(order, status)

    async def _new_limit(self, trade: Trade) -> float:
        tickers = await self.exchange.fetch_tickers([trade.symbol])
        rules = (await self.exchange.fetch_markets([trade.symbol]))[trade.symbol]
        offset = self.settings.limit_offset_bps / 10_000
        price = tickers[trade.symbol].price
        return on_grid(price * (1 + offset if trade.side == "buy" else 1 - offset), rules.tick_size)

    async def _watch(
        self,
        active: list[_Order],
        states: dict[str, _TradeState],
        t0: float,
        plan: list[_TradeState],
    ) -> None:
        """Poll ``active`` until each order is final: reprice or carry what a canceled one left;
        after a poll with fills, place what of the waiting buys (``plan``, in its order) the
        cash now pays."""
        s = self.settings
        while active:
            await self.sleep(s.poll_seconds)
            late = s.deadline_seconds is not None and self.clock() - t0 >= s.deadline_seconds
            changed, fills = [], []
            for order in list(active):
                status = await self.exchange.fetch_order(
                    order.symbol, order.order_id or None, order.cid
                )
                seen = order.status
                if status is not None:
                    fills += self._update(order, status)
                if order.status in FINAL:
                    active.remove(order)
                elif late or self.clock() - order.placed_at >= s.order_timeout_seconds:
                    fills += await self._cancel(order)
                    active.remove(order)
                if order.status != seen or order not in active:
                    changed.append(order)
            self._record(changed, fills)
            for order in changed:
                if order in active:
                    continue
                self._report.orders.append(_order_report(order))
                state = states[order.cid]
                state.filled += order.filled
                rest = order.amount - order.filled
                if rest > 1e-12 * order.amount and not late and state.reprices < s.max_reprices:
                    state.reprices += 1
                    again = await self._placeable(state, rest, await self._new_limit(state.trade))
                    if again is not None:
                        states[again.cid] = state
                        active.append(again)
                        continue
                elif rest > 1e-12 * order.amount:
                    state.carry += rest
            if fills and not late:
                active += await self._place_waiting(plan, states)

    async def _place_waiting(
        self, plan: list[_TradeState], states: dict[str, _TradeState]
    ) -> list[_Order]:
        """Place what of the waiting buys the free cash pays, in the plan's order, at a fresh
        limit (the plan's is older)."""
        placed = []
        for st in plan:
            if not st.waiting > 0 or not self.free_cash(st.trade.symbol.split("/")[1]) > 0:
                continue
            amount, st.waiting = st.waiting, 0.0
            order = await self._placeable(st, amount, await self._new_limit(st.trade))
            if order is not None:
                states[order.cid] = st
                placed.append(order)
        return placed

    async def _placeable(self, state: _TradeState, amount: float, limit: float) -> _Order | None:
        """Place ``amount`` of the trade unless it is below one lot or the minimum order value
        (then it stays unfilled, noted); of a buy only the whole lots the free cash pays
        (:func:`affordable`), the rest waiting for the next round."""
        trade = state.trade
        rules = (await self.exchange.fetch_markets([trade.symbol]))[trade.symbol]
        whole = floor_to_grid(amount, rules.lot_step) if rules.lot_step > 0 else amount
        if whole <= 0 or whole * limit < rules.min_order_value(limit):
            self._report.notes.append(
                f"{trade.symbol}: {amount:.8g} left to {trade.side} is below one lot or the "
                "minimum order value; not placed"
            )
            self._report.unfilled[trade.symbol] = (
                self._report.unfilled.get(trade.symbol, 0.0) + amount
            )
            return None
        if amount - whole > 1e-9 * amount:  # a part of a lot (not the float noise of a sum)
            state.carry += amount - whole
        if trade.side == "buy":
            cash = self.free_cash(trade.symbol.split("/")[1])
            paid = affordable(
                whole,
                cash,
                limit * (1.0 + self.settings.fee_rate),
                rules.lot_step,
                rules.min_order_value(limit) / limit,
            )
            if paid < whole:
                state.waiting += whole - paid
                log.info(
                    "%s: %.8g of %.8g to buy waits for the cash (%.8g free)",
                    trade.symbol,
                    whole - paid,
                    whole,
                    cash,
                )
            if not paid > 0:
                return None
            whole = paid
        return await self._place(state, whole, limit)

    # ------------------------------------------------------------------ the loop
    async def run(
        self, plan: RebalancePlan, *, holdings: Mapping[str, float] | None = None
    ) -> ExecutionReport:
        """Execute ``plan`` (after :meth:`reconcile`). The balances read at the end are compared
        with ``holdings`` (units before trading; default: the balances read before the first
        order) plus the fills."""
        if self.exchange.read_only:
            raise ReadOnlyError(
                f"{self.exchange!r} is read-only: build it with read_only=False to place orders"
            )
        self._report = report = ExecutionReport()
        report.reconciled = await self.reconcile()
        balances = await self.exchange.fetch_balances()
        holdings = balances if holdings is None else holdings
        self._cash, self._turnover = {plan.quote: balances.get(plan.quote, 0.0)}, {}
        self._placed = []
        t0, s = self.clock(), self.settings
        states = [_TradeState(t) for t in plan]
        by_cid: dict[str, _TradeState] = {}
        while any(st.next_slice < len(st.trade.slices) or st.waiting > 0 for st in states):
            if s.deadline_seconds is not None and self.clock() - t0 >= s.deadline_seconds:
                break
            active, sliced = [], False
            for st in states:  # the plan's order: sells first, then buys as far as the cash pays
                # what waited for the proceeds goes at a fresh limit (the plan's is a round old)
                limit = await self._new_limit(st.trade) if st.waiting > 0 else st.trade.limit_price
                if st.next_slice < len(st.trade.slices):
                    amount = st.trade.slices[st.next_slice] + st.carry + st.waiting
                    st.next_slice, st.carry, st.waiting, sliced = st.next_slice + 1, 0.0, 0.0, True
                elif st.waiting > 0:  # the slices are placed
                    amount, st.waiting = st.waiting, 0.0
                else:
                    continue
                order = await self._placeable(st, amount, limit)
                if order is not None:
                    by_cid[order.cid] = st
                    active.append(order)
            if not (active or sliced):  # nothing placed, no slice left: the cash stays as it is
                break
            await self._watch(active, by_cid, t0, states)
        for st in states:
            if st.waiting > 0:
                report.notes.append(
                    f"{st.trade.symbol}: {st.waiting:.8g} left to buy: the free {plan.quote} "
                    "balance did not pay it before the sells were done (or the deadline)"
                )
            left = st.carry + st.waiting + sum(st.trade.slices[st.next_slice :])
            if left > 0:
                report.unfilled[st.trade.symbol] = report.unfilled.get(st.trade.symbol, 0.0) + left
        await self._reconcile_balances(holdings)
        return report

    async def _reconcile_balances(self, holdings: Mapping[str, float] | None) -> None:
        report = self._report
        report.balances = await self.exchange.fetch_balances()
        if holdings is None:
            return
        expected = dict(holdings)
        for f in report.fills:
            base, quote = f["symbol"].split("/")
            sign = 1.0 if f["side"] == "buy" else -1.0
            expected[base] = expected.get(base, 0.0) + sign * f["amount"]
            expected[quote] = expected.get(quote, 0.0) - sign * f["amount"] * f["price"] - f["fee"]
        for asset in sorted(set(expected) | set(report.balances)):
            want, got = expected.get(asset, 0.0), report.balances.get(asset, 0.0)
            if abs(got - want) > _BALANCE_TOL * max(1.0, abs(want)):
                report.mismatches[asset] = (want, got)
        if report.mismatches:
            text = ", ".join(
                f"{a}: expected {w:.8g}, holds {g:.8g}" for a, (w, g) in report.mismatches.items()
            )
            report.notes.append(f"balances differ from the holdings plus the fills: {text}")
            log.warning("after execution, %s", report.notes[-1])

    async def reconcile(self) -> list[OrderReport]:
        """Settle the journal's orders that may still be open (after a crash): each is looked up
        (``fetch_open_orders`` per symbol, else ``fetch_order`` by client id), canceled if open,
        and its fills and final status recorded; an intent the exchange never received is
        recorded as ``missing``. Returns one report per order settled."""
        if self.journal is None:
            return []
        pending = self.journal.open_orders()
        if pending.empty:
            return []
        known = self.journal.fills()
        known = known.assign(value=known["amount"] * known["price"]).groupby("client_order_id")
        seen = known[["amount", "value", "fee"]].sum()
        listed: dict[str, Any] = {}
        for symbol in dict.fromkeys(pending["symbol"]):
            for status in await self.exchange.fetch_open_orders(str(symbol)):
                listed[str(status.client_order_id)] = status
        out = []
        for row in pending.itertuples():
            order = _Order(
                None,
                str(row.client_order_id),
                str(row.symbol),
                str(row.side),
                float(row.amount),
                float(row.limit_price),
                self.clock(),
                str(row.order_id or ""),
                str(row.status),
            )
            if order.cid in seen.index:
                order.filled, order.cost, order.fee = (float(v) for v in seen.loc[order.cid])
            status = listed.get(order.cid) or await self.exchange.fetch_order(
                order.symbol, None, order.cid
            )
            fills: list[dict[str, Any]] = []
            if status is None:
                order.status = "missing"
            else:
                fills = self._update(order, status)
                if order.status not in FINAL:
                    fills += await self._cancel(order)
            self._record([order], fills)
            out.append(_order_report(order))
            log.warning(
                "reconciled %s (%s %s): %s", order.cid, order.side, order.symbol, order.status
            )
        return out


def _order_row(now: pd.Timestamp, o: _Order) -> dict[str, Any]:
    return {
        "time": now,
        "client_order_id": o.cid,
        "order_id": o.order_id,
        "symbol": o.symbol,
        "side": o.side,
        "amount": float(o.amount),
        "limit_price": float(o.limit),
        "status": o.status,
        "filled": float(o.filled),
        "average": o.cost / o.filled if o.filled > 0 else math.nan,
        "fee": float(o.fee) if o.status != "intent" else math.nan,
    }


def _order_report(o: _Order, error: str | None = None) -> OrderReport:
    return OrderReport(
        o.symbol,
        o.side,
        o.amount,
        o.limit,
        o.status,
        order_id=o.order_id or None,
        filled=o.filled,
        error=error,
        client_order_id=o.cid,
    )
