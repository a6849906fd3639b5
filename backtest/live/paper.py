"""Paper trading: ccxt's own Binance class with simulated balances, orders and fills.

* :class:`PaperBook` is the simulated account and market: balances, resting limit orders, the fill
  log and a clock (``now``, a bar of a :class:`~datasets.MarketData`). Market data never goes past
  ``now``: tickers are the close of bar ``now`` and candles end with it.
* A limit order rests until a later bar crosses its price: a buy fills when the bar's low reaches
  the limit, at ``min(limit, open * (1 + slippage))`` when the bar opens at or below the limit and at
  the limit otherwise; a sell mirrors it (``max(limit, open * (1 - slippage))``). The fee is the cost
  model's rate on the fill value, in the quote currency (the backtest kernel's convention). With
  ``fill_share`` an order fills at most that share of a bar's volume per bar (partial fills).
* Funds are checked as the exchange checks them: a sell beyond the free base balance, or a buy
  whose cost with the fee is beyond the free quote balance (the balance minus what open buys
  reserve), is refused with ``ccxt.InsufficientFunds``, so the cash never goes below zero.
* :func:`paper_exchange_class` subclasses ``ccxt.async_support.binance`` and answers the unified
  calls (``fetch_markets``, ``fetch_balance``, ``fetch_ticker(s)``, ``fetch_ohlcv``,
  ``create_order``, ``fetch_order``, ``fetch_open_orders``, ``cancel_order``) from a book, so ccxt's
  market handling and precision rounding run unchanged and nothing goes to the network.
* :class:`PaperConnector` is an :class:`~datasets.connectors.ExchangeConnector` over it: no keys,
  orders allowed, history for the analyzer from the book.

Market rules: the ``markets`` given (ccxt unified markets, e.g. the exchange's), else rules derived
from each symbol's first close (:func:`derived_market`). See docs/live.md ("Paper mode").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backtest.costs import Costs
from backtest.errors import LiveError
from datasets import MarketData
from datasets.connectors import ExchangeConnector

_FINAL = ("closed", "canceled", "rejected")


@dataclass
class PaperOrder:
    """A simulated limit order (amounts in base units, prices in the quote currency)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    amount: float
    price: float
    timestamp: int
    filled: float = 0.0
    cost: float = 0.0
    fee: float = 0.0
    status: str = "open"

    @property
    def remaining(self) -> float:
        return self.amount - self.filled

    def unified(self) -> dict[str, Any]:
        """The order as ccxt's unified order structure."""
        return {
            "id": self.id,
            "clientOrderId": self.client_order_id,
            "symbol": self.symbol,
            "type": "limit",
            "side": self.side,
            "amount": self.amount,
            "price": self.price,
            "filled": self.filled,
            "remaining": self.remaining,
            "cost": self.cost,
            "average": self.cost / self.filled if self.filled > 0 else None,
            "status": self.status,
            "timestamp": self.timestamp,
            "fee": {"cost": self.fee, "currency": self.symbol.split("/")[1]},
            "info": {},
        }


@dataclass
class PaperBook:
    """The simulated account: balances, limit orders and fills against a market's bars.

    Parameters
    ----------
    market : MarketData
        Bars the simulation walks through; symbols ``"BTC/USDT"`` quoted in ``quote``.
    balances : mapping of str to float
        Starting units per asset (``{"USDT": 100_000}``).
    costs : Costs
        Slippage and fee of fills (``fee_rate``, ``slippage_rate``).
    fill_share : float, optional
        At most this share of a bar's volume fills per order and bar (None: no cap).
    now : int
        Index of the last closed bar.
    first_id : int
        Id of the first order placed (a resumed account continues its numbering).

    Examples
    --------
    >>> from datasets import synthetic_market
    >>> market = synthetic_market(n_assets=2, n_bars=10, seed=1)
    >>> book = PaperBook(market, {"USDT": 1000.0}, Costs(fee_bps=10, slippage_bps=0), now=3)
    >>> symbol = market.symbols[0]
    >>> price = book.last(symbol) * 1.5  # a buy limit well above the market
    >>> order = book.place(symbol, "buy", 1.0, price, "c1")
    >>> book.advance(4)
    >>> order.status, round(order.cost, 6) == round(float(market.values("open")[4, 0]), 6)
    ('closed', True)
    """

    market: MarketData
    balances: dict[str, float]
    costs: Costs = field(default_factory=Costs)
    fill_share: float | None = None
    now: int = 0
    first_id: int = 1
    orders: dict[str, PaperOrder] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    opened: int = -1  # the bar whose open :meth:`open_next` matched
    _at_open: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.balances = {a: float(v) for a, v in self.balances.items()}
        self._column = {s: j for j, s in enumerate(self.market.symbols)}
        self._arrays = {
            f: self.market.values(f) for f in ("open", "high", "low", "close", "volume")
        }
        self._step_ms = int(self.market.index[1].value - self.market.index[0].value) // 1_000_000
        self.set_now(self.now)

    # ------------------------------------------------------------------ clock and prices
    def set_now(self, bar: int) -> None:
        """Move the clock to ``bar`` without matching (only forward, or at the start)."""
        if not 0 <= bar < self.market.n_bars:
            raise LiveError(f"`bar` must be in [0, {self.market.n_bars}); got {bar}")
        self.now = int(bar)
        self.opened, self._at_open = -1, {}

    @property
    def now_ms(self) -> int:
        """The simulated time: the close of bar ``now`` (= the open of the next bar), UTC ms."""
        return int(self.market.index[self.now].value // 1_000_000) + self._step_ms

    def bar(self, symbol: str, t: int | None = None) -> dict[str, float]:
        t = self.now if t is None else t
        j = self._col(symbol)
        return {f: float(a[t, j]) for f, a in self._arrays.items()}

    def last(self, symbol: str) -> float:
        """Close of the last closed bar (NaN when the asset has no candle there)."""
        return self.bar(symbol)["close"]

    def _col(self, symbol: str) -> int:
        if symbol not in self._column:
            raise LiveError(
                f"no paper market for {symbol!r}; the market has {', '.join(self.market.symbols)}"
            )
        return self._column[symbol]

    def history(self, symbols: Sequence[str], start_ms: int, end_ms: int) -> MarketData:
        """Bars of ``symbols`` opening in ``[start_ms, end_ms]`` and at most bar ``now``."""
        import pandas as pd

        end = min(end_ms, int(self.market.index[self.now].value // 1_000_000))
        market = self.market.select(list(symbols))
        return market.between(
            pd.Timestamp(start_ms, unit="ms", tz="UTC"), pd.Timestamp(end, unit="ms", tz="UTC")
        )

    # ------------------------------------------------------------------ orders
    def place(
        self, symbol: str, side: str, amount: float, price: float, client_order_id: str
    ) -> PaperOrder:
        """Rest a limit order; refuses, as the exchange does (``ccxt.InsufficientFunds``), a sell
        beyond the free base balance and a buy whose cost (``amount * price`` plus the fee) is
        beyond the free quote balance; refuses a duplicate client id."""
        import ccxt

        self._col(symbol)
        if any(o.client_order_id == client_order_id for o in self.orders.values()):
            raise ccxt.InvalidOrder(f"duplicate clientOrderId {client_order_id!r}")
        base, quote = symbol.split("/")
        if side == "sell" and amount > self.free(base) * (1 + 1e-12):
            raise ccxt.InsufficientFunds(
                f"paper: sell {amount} {base} but only {self.free(base)} is free"
            )
        cost = self.reserve(amount, price)
        if side == "buy" and cost > self.free(quote) * (1 + 1e-12):
            raise ccxt.InsufficientFunds(
                f"paper: buy {amount} {base} at {price} costs {cost:.8g} {quote} with the fee "
                f"but only {self.free(quote):.8g} is free"
            )
        order = PaperOrder(
            id=str(self.first_id + len(self.orders)),
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            amount=float(amount),
            price=float(price),
            timestamp=self.now_ms,
        )
        self.orders[order.id] = order
        return order

    def find(self, order_id: str | None = None, client_order_id: str | None = None) -> PaperOrder:
        import ccxt

        for order in self.orders.values():
            if order.id == order_id or (
                client_order_id and order.client_order_id == client_order_id
            ):
                return order
        raise ccxt.OrderNotFound(f"paper: no order id={order_id} clientOrderId={client_order_id}")

    def cancel(self, order_id: str) -> PaperOrder:
        import ccxt

        order = self.find(order_id)
        if order.status != "open":
            raise ccxt.OrderNotFound(f"paper: order {order_id} is {order.status}")
        order.status = "canceled"
        return order

    def reserve(self, amount: float, price: float) -> float:
        """What a buy of ``amount`` at the limit ``price`` holds of the quote balance while it
        rests: its value plus the fee (a fill is never dearer: it is at the limit or better)."""
        return amount * price * (1.0 + float(self.costs.fee_rate))

    def free(self, asset: str) -> float:
        """Balance minus what open orders hold: the rest of open sells of ``asset``, and the
        :meth:`reserve` of the rest of open buys quoted in ``asset``."""
        held = 0.0
        for o in self.orders.values():
            if o.status != "open":
                continue
            base, quote = o.symbol.split("/")
            if o.side == "sell" and base == asset:
                held += o.remaining
            elif o.side == "buy" and quote == asset:
                held += self.reserve(o.remaining, o.price)
        return self.balances.get(asset, 0.0) - held

    def open_next(self) -> None:
        """Match the resting orders that the open of bar ``now + 1`` crosses, at the open (with
        the slippage), without moving the clock: the instant the next bar opens, when an order
        placed next can still fill in that bar (:meth:`advance` then matches the rest of the bar,
        within what is left of an order's ``fill_share``). Once per bar."""
        t = self.now + 1
        if not t < self.market.n_bars:
            raise LiveError(f"no bar after {self.now}: the market ends there")
        if self.opened == t:
            return
        self.opened, self._at_open = t, {}
        for order in list(self.orders.values()):
            if order.status == "open":
                self._match(order, t, at_open=True)

    def advance(self, to: int) -> None:
        """Walk bars ``now + 1 .. to``, filling the resting orders each bar crosses (in placement
        order), and end with ``now = to``."""
        if not self.now <= to < self.market.n_bars:
            raise LiveError(f"`to` must be in [{self.now}, {self.market.n_bars}); got {to}")
        for t in range(self.now + 1, to + 1):
            self.now = t
            for order in list(self.orders.values()):
                if order.status == "open":
                    self._match(order, t)

    def _match(self, order: PaperOrder, t: int, at_open: bool = False) -> None:
        bar = self.bar(order.symbol, t)
        if not np.isfinite(bar["open"]):
            return
        if at_open:  # only what the open itself crosses
            bar = {**bar, "low": bar["open"], "high": bar["open"]}
        slip = float(self.costs.slippage_rate)
        if order.side == "buy":
            if not bar["low"] <= order.price:
                return
            price = (
                min(order.price, bar["open"] * (1 + slip))
                if bar["open"] <= order.price
                else order.price
            )
        else:
            if not bar["high"] >= order.price:
                return
            price = (
                max(order.price, bar["open"] * (1 - slip))
                if bar["open"] >= order.price
                else order.price
            )
        amount = order.remaining
        if self.fill_share is not None:
            used = self._at_open.get(order.id, 0.0) if t == self.opened else 0.0
            amount = min(amount, self.fill_share * bar["volume"] - used)
        if not amount > 0:
            return
        if at_open:
            self._at_open[order.id] = amount
        fee = float(self.costs.fee_rate) * amount * price
        self.apply_fill(order.symbol, order.side, amount, price, fee)
        order.filled += amount
        order.cost += amount * price
        order.fee += fee
        if order.remaining <= 1e-12 * order.amount:
            order.status = "closed"
        self.fills.append(
            {
                "time_ms": self.now_ms,
                "client_order_id": order.client_order_id,
                "symbol": order.symbol,
                "side": order.side,
                "amount": amount,
                "price": price,
                "fee": fee,
            }
        )

    def apply_fill(self, symbol: str, side: str, amount: float, price: float, fee: float) -> None:
        """Book one fill: base units in or out, its value and the fee out of or into the quote."""
        base, quote = symbol.split("/")
        sign = 1.0 if side == "buy" else -1.0
        self.balances[base] = _zero_dust(self.balances.get(base, 0.0) + sign * amount, amount)
        self.balances[quote] = _zero_dust(
            self.balances.get(quote, 0.0) - sign * amount * price - fee, amount * price
        )

    # ------------------------------------------------------------------ ccxt structures
    def balance(self) -> dict[str, Any]:
        """ccxt's unified balance structure."""
        out: dict[str, Any] = {"free": {}, "used": {}, "total": {}, "info": {}}
        for asset, total in self.balances.items():
            free = self.free(asset)
            out[asset] = {"free": free, "used": total - free, "total": total}
            out["free"][asset], out["used"][asset], out["total"][asset] = free, total - free, total
        return out

    def ticker(self, symbol: str) -> dict[str, Any]:
        """ccxt's unified ticker: the close of bar ``now``; 24 h quote volume of the last day."""
        bar = self.bar(symbol)
        last = bar["close"] if np.isfinite(bar["close"]) else None
        per_day = max(1, round(86_400_000 / self._step_ms))
        t0, j = max(0, self.now - per_day + 1), self._col(symbol)
        value = (
            self._arrays["close"][t0 : self.now + 1, j]
            * self._arrays["volume"][t0 : self.now + 1, j]
        )
        return {
            "symbol": symbol,
            "timestamp": self.now_ms,
            "last": last,
            "close": last,
            "bid": last,
            "ask": last,
            "open": bar["open"],
            "high": bar["high"],
            "low": bar["low"],
            "quoteVolume": float(np.nansum(value)),
            "info": {},
        }

    def ohlcv(self, symbol: str, since: int | None = None, limit: int | None = None) -> list[list]:
        """Closed candles of ``symbol`` up to bar ``now`` (``[ms, o, h, l, c, v]``)."""
        j = self._col(symbol)
        ms = self.market.index[: self.now + 1].as_unit("ms").asi8
        rows = [
            [
                int(ms[t]),
                *(float(self._arrays[f][t, j]) for f in ("open", "high", "low", "close", "volume")),
            ]
            for t in range(self.now + 1)
            if (since is None or ms[t] >= since) and np.isfinite(self._arrays["close"][t, j])
        ]
        return rows[:limit] if limit else rows


def _zero_dust(balance: float, traded: float) -> float:
    """0 for a balance that is rounding noise of the trade that left it (a full exit leaves
    ``1e-12``-sized remainders in floating point), else ``balance``.

    >>> _zero_dust(3e-13, 0.5), _zero_dust(0.25, 0.5)
    (0.0, 0.25)
    """
    return 0.0 if abs(balance) <= 1e-9 * abs(traded) else balance


def derived_market(symbol: str, price: float, min_notional: float = 5.0) -> dict[str, Any]:
    """A ccxt unified spot market for ``symbol`` with Binance-like rules scaled to ``price``: a lot
    worth 0.1-1 quote units, a tick of about 6 significant digits, ``min_notional`` (Binance's 5 USDT).

    >>> m = derived_market("BTC/USDT", 46_000.0)
    >>> m["precision"]["amount"], m["precision"]["price"]
    (1e-05, 0.01)
    """
    base, quote = symbol.split("/")
    lot = 10.0 ** math.floor(math.log10(1.0 / price)) if price > 0 else 1e-8
    tick = 10.0 ** (math.floor(math.log10(price)) - 6) if price > 0 else 1e-8
    lot, tick = float(f"{min(lot, 1.0):.0e}"), float(f"{tick:.0e}")
    return {
        "id": f"{base}{quote}",
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "type": "spot",
        "spot": True,
        "active": True,
        "taker": None,
        "maker": None,
        "precision": {"amount": lot, "price": tick},
        "limits": {"amount": {"min": lot}, "cost": {"min": min_notional}, "price": {}},
        "info": {
            "filters": [
                {"filterType": "LOT_SIZE", "stepSize": f"{lot:.8f}", "minQty": f"{lot:.8f}"},
                {"filterType": "NOTIONAL", "minNotional": f"{min_notional:.8f}"},
                {"filterType": "PRICE_FILTER", "tickSize": f"{tick:.10f}"},
            ]
        },
    }


@functools.cache
def paper_exchange_class() -> type:
    """``ccxt.async_support.binance`` with the account and market calls answered by a
    :class:`PaperBook` (``exchange.book``) and ``exchange.paper_markets`` (unified markets)."""
    import ccxt.async_support as accxt

    base = accxt.binance

    class PaperBinance(base):  # type: ignore[misc, valid-type]
        book: PaperBook
        paper_markets: list[dict[str, Any]]

        async def fetch_currencies(self, params: Any = None) -> Any:
            return None

        async def fetch_markets(self, params: Any = None) -> list[dict[str, Any]]:
            return [self.safe_market_structure(dict(m)) for m in self.paper_markets]

        async def fetch_balance(self, params: Any = None) -> dict[str, Any]:
            return self.book.balance()

        async def fetch_ticker(self, symbol: str, params: Any = None) -> dict[str, Any]:
            return self.book.ticker(symbol)

        async def fetch_tickers(self, symbols: Any = None, params: Any = None) -> dict[str, Any]:
            return {s: self.book.ticker(s) for s in symbols or self.book.market.symbols}

        async def fetch_ohlcv(
            self,
            symbol: str,
            timeframe: str = "1m",
            since: Any = None,
            limit: Any = None,
            params: Any = None,
        ) -> list:
            return self.book.ohlcv(symbol, since, limit)

        async def fetch_time(self, params: Any = None) -> int:
            return self.book.now_ms

        async def create_order(
            self,
            symbol: str,
            type: str,
            side: str,
            amount: float,
            price: Any = None,
            params: Any = None,
        ) -> dict[str, Any]:
            import ccxt

            if type != "limit":
                raise ccxt.InvalidOrder(f"paper: only limit orders; got {type!r}")
            params = params or {}
            cid = (
                params.get("clientOrderId")
                or params.get("newClientOrderId")
                or f"paper-{len(self.book.orders) + 1}"
            )
            return self.book.place(symbol, side, float(amount), float(price), str(cid)).unified()

        async def fetch_order(
            self, id: Any, symbol: Any = None, params: Any = None
        ) -> dict[str, Any]:
            cid = (params or {}).get("clientOrderId") or (params or {}).get("origClientOrderId")
            return self.book.find(id, cid).unified()

        async def fetch_open_orders(
            self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = None
        ) -> list:
            return [
                o.unified()
                for o in self.book.orders.values()
                if o.status == "open" and symbol in (None, o.symbol)
            ]

        async def cancel_order(
            self, id: Any, symbol: Any = None, params: Any = None
        ) -> dict[str, Any]:
            cid = (params or {}).get("clientOrderId") or (params or {}).get("origClientOrderId")
            return self.book.cancel(self.book.find(id, cid).id).unified()

    return PaperBinance


class PaperConnector(ExchangeConnector):
    """An :class:`~datasets.connectors.ExchangeConnector` on a :class:`PaperBook`: no keys, orders
    allowed, nothing sent anywhere.

    Parameters
    ----------
    book : PaperBook
    quote : str
    markets : sequence of dict, optional
        ccxt unified markets (default: :func:`derived_market` from each symbol's first close).

    Examples
    --------
    >>> import asyncio
    >>> from datasets import synthetic_market
    >>> market = synthetic_market(n_assets=2, n_bars=10, seed=1)
    >>> book = PaperBook(market, {"USDT": 1000.0}, now=5)
    >>> paper = PaperConnector(book, quote=market.symbols[0].split("/")[1])
    >>> async def cash():
    ...     async with paper:
    ...         return await paper.fetch_balances()
    >>> asyncio.run(cash())
    {'USDT': 1000.0}
    """

    def __init__(
        self,
        book: PaperBook,
        *,
        quote: str = "USDT",
        markets: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.book = book
        if markets is None:
            close = book.market.values("close")
            markets = []
            for j, s in enumerate(book.market.symbols):
                listed = close[np.isfinite(close[:, j]), j]
                markets.append(derived_market(s, float(listed[0]) if listed.size else 1.0))
        self.paper_markets = [dict(m) for m in markets]
        super().__init__("binance", quote=quote, read_only=False)

    def _build(self, api_key: str | None, api_secret: str | None) -> Any:
        exchange = paper_exchange_class()(
            {"enableRateLimit": False, "options": {"fetchCurrencies": False}}
        )
        exchange.book = self.book
        exchange.paper_markets = self.paper_markets
        return exchange

    @property
    def has_credentials(self) -> bool:
        return True

    def require_keys(self, what: str) -> None:
        return None

    def __repr__(self) -> str:
        return f"PaperConnector(quote={self.quote!r}, now={self.book.now}, assets={len(self.book.market.symbols)})"

    def history_exchange(self) -> Any:
        raise LiveError(
            "a paper account reads its history from its book (PaperConnector.load_history)"
        )

    def now_ms(self) -> int:
        """The simulated clock (ms): the close of the last closed bar."""
        return self.book.now_ms

    async def load_history(self, symbols: Sequence[str], start_ms: int, end_ms: int) -> MarketData:
        """The book's bars of ``symbols`` in ``[start_ms, end_ms]``, never past the clock."""
        return self.book.history(symbols, start_ms, end_ms)
