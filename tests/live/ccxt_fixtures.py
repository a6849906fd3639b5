"""Offline ccxt for the live analyzer: ccxt's *real* async fetch, with aiohttp replaced.

The datasets harness (``tests/datasets/ccxt_fake.py``) replaces ccxt's ``fetch`` method. Here the
async exchange keeps ccxt's own ``fetch`` (so its debug logging, ``verbose`` output, header
preparation and HTTP-status mapping all run) and only the aiohttp session underneath is replaced by
:class:`FakeSession`, which hands every request to the same :class:`FakeExchangeServer` (routes,
request log, failure injection). The synchronous class used for history is the datasets harness's.

Payloads added here, beyond the recorded ones in ``../shared/data/exchange-fixtures``:

* :func:`derived_ticker`: a ``/api/v3/ticker/24hr`` entry built from the recorded BTCUSDT ticker
  with the symbol and prices replaced (the recording has only BTCUSDT); marked ``"derived": true``;
* :func:`order_answer`: Binance's documented ``POST /api/v3/order`` answer (``newOrderRespType=FULL``,
  status ``NEW``, no fills) echoing the request's parameters; constructed, not recorded.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tests.datasets.ccxt_fake import (
    FakeExchangeServer,
    HttpError,
    Request,
    fake_exchange_class,
    recorded_cases,
)

ORDER_PATH = "/api/v3/order"
TICKER_PATH = "/api/v3/ticker/24hr"
ACCOUNT_PATH = "/api/v3/account"


class _Response:
    def __init__(self, status: int, text: str, reason: str) -> None:
        self.status = status
        self.reason = reason
        self.headers = {"Content-Type": "application/json"}
        self._text = text
        self.content = text.encode()

    async def text(self, errors: str = "strict") -> str:
        return self._text

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None


class FakeSession:
    """Stands in for ``aiohttp.ClientSession``: ``session.get/post/put/delete(url, data=..., headers=...)``."""

    def __init__(self, server: FakeExchangeServer) -> None:
        self.server = server
        self.closed = False
        self.headers: dict[str, str] = {}  # aiohttp's default headers (ccxt merges them)

    def _request(self, method: str):
        def call(url: Any, data: Any = None, headers: Any = None, **_: Any) -> _Response:
            body = data.decode() if isinstance(data, bytes) else data
            answer = self.server.handle(method, str(url), dict(headers or {}), body)
            if isinstance(answer, BaseException) or (
                isinstance(answer, type) and issubclass(answer, BaseException)
            ):
                raise answer
            if isinstance(answer, HttpError):
                text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
                return _Response(answer.status, text, answer.reason)
            return _Response(200, json.dumps(answer), "OK")

        return call

    def __getattr__(self, name: str) -> Any:
        if name in ("get", "post", "put", "delete", "patch"):
            return self._request(name.upper())
        raise AttributeError(name)

    async def close(self) -> None:
        self.closed = True


def live_exchange_class(server: FakeExchangeServer, exchange_id: str = "binance") -> type:
    """ccxt's real async ``exchange_id`` class whose aiohttp session is a :class:`FakeSession`."""
    import ccxt.async_support as accxt

    base = getattr(accxt, exchange_id)

    def init(self: Any, config: dict | None = None) -> None:
        base.__init__(self, {**(config or {}), "rateLimit": server.rate_limit_ms})
        self.session = FakeSession(server)

    return type(f"Live{base.__name__}", (base,), {"__init__": init, "fake_server": server})


@contextlib.contextmanager
def install_live(
    server: FakeExchangeServer, exchange_id: str = "binance"
) -> Iterator[FakeExchangeServer]:
    """``ccxt.async_support.<id>`` -> :func:`live_exchange_class`; ``ccxt.<id>`` (history) -> the
    datasets harness's fake sync class; both answered by ``server``."""
    import ccxt
    import ccxt.async_support as accxt

    saved = getattr(ccxt, exchange_id), getattr(accxt, exchange_id)
    setattr(ccxt, exchange_id, fake_exchange_class(server, exchange_id))
    setattr(accxt, exchange_id, live_exchange_class(server, exchange_id))
    try:
        yield server
    finally:
        setattr(ccxt, exchange_id, saved[0])
        setattr(accxt, exchange_id, saved[1])


# ---------------------------------------------------------------------------------- payloads
def form(request: Request) -> dict[str, str]:
    """Parameters of a request: the query string and, for a form-encoded body, the body."""
    params = dict(request.params)
    if isinstance(request.body, str) and request.body:
        params.update(parse_qsl(request.body, keep_blank_values=True))
    return params


def recorded_ticker(fixtures_dir: Path) -> dict:
    """The recorded raw ``/api/v3/ticker/24hr`` payload (BTCUSDT, last 73369.84)."""
    return copy.deepcopy(recorded_cases(fixtures_dir, "fetchTicker")[0]["httpResponse"])


def derived_ticker(
    fixtures_dir: Path, market_id: str, last: float, quote_volume: float = 1e8
) -> dict:
    """A 24h ticker for ``market_id`` with ``lastPrice`` (and bid/ask/open/high/low) = ``last``."""
    entry = recorded_ticker(fixtures_dir)
    price = f"{last:.8f}"
    entry.update(
        symbol=market_id,
        lastPrice=price,
        bidPrice=price,
        askPrice=price,
        openPrice=price,
        highPrice=price,
        lowPrice=price,
        prevClosePrice=price,
        weightedAvgPrice=price,
        priceChange="0.00000000",
        priceChangePercent="0.000",
        volume=f"{quote_volume / last:.8f}",
        quoteVolume=f"{quote_volume:.8f}",
        derived=True,
    )
    return entry


def tickers_route(tickers: dict[str, dict]):
    """A route for ``GET /api/v3/ticker/24hr``: ``symbol=X`` -> one entry, ``symbols=[...]`` -> a list."""

    def answer(request: Request) -> Any:
        if "symbol" in request.params:
            found = tickers.get(request.params["symbol"])
            return (
                found
                if found is not None
                else HttpError(400, {"code": -1121, "msg": "Invalid symbol."})
            )
        wanted = (
            json.loads(request.params["symbols"]) if "symbols" in request.params else list(tickers)
        )
        missing = [s for s in wanted if s not in tickers]
        if missing:
            return HttpError(400, {"code": -1121, "msg": "Invalid symbol."})
        return [tickers[s] for s in wanted]

    return answer


def order_answer(request: Request, order_id: int = 28, transact_ms: int = 1673371800000) -> dict:
    """Binance's ``POST /api/v3/order`` answer for a resting limit order (FULL response, no fills)."""
    p = form(request)
    return {
        "symbol": p["symbol"],
        "orderId": order_id,
        "orderListId": -1,
        "clientOrderId": p.get("newClientOrderId", "x-test"),
        "transactTime": transact_ms,
        "price": p.get("price", "0"),
        "origQty": p["quantity"],
        "executedQty": "0.00000000",
        "cummulativeQuoteQty": "0.00000000",
        "status": "NEW",
        "timeInForce": p.get("timeInForce", "GTC"),
        "type": p["type"],
        "side": p["side"],
        "workingTime": transact_ms,
        "fills": [],
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def order_route(start_id: int = 1000):
    """A route for ``POST /api/v3/order`` answering each order with a new id."""
    counter = iter(range(start_id, start_id + 1_000_000))

    def answer(request: Request) -> Any:
        return order_answer(request, order_id=next(counter))

    return answer


def balance_payload(fixtures_dir: Path, balances: dict[str, str] | None = None) -> dict:
    """The recorded spot ``/api/v3/account`` payload, with ``balances`` (asset -> free) replacing or
    adding entries when given."""
    payload = copy.deepcopy(recorded_cases(fixtures_dir, "fetchBalance")[0]["httpResponse"])
    if balances:
        rows = {row["asset"]: row for row in payload["balances"]}
        for asset, free in balances.items():
            rows[asset] = {"asset": asset, "free": free, "locked": "0.00000000"}
        payload["balances"] = list(rows.values())
    return payload


# ---------------------------------------------------------------------------------- order status
OPEN_ORDERS_PATH = "/api/v3/openOrders"
_OPEN = ("NEW", "PARTIALLY_FILLED")
INSUFFICIENT = {"code": -2010, "msg": "Account has insufficient balance for requested action."}


class FakeOrderBook:
    """Binance's spot order endpoints with state, as Binance documents them (``POST``, ``GET`` and
    ``DELETE /api/v3/order``, ``GET /api/v3/openOrders``, statuses ``NEW``, ``PARTIALLY_FILLED``,
    ``FILLED``, ``CANCELED``), and the account's balances moved by the fills.

    Fills are scripted: ``scripts[market_id]`` is a list with one entry per order placed on that
    market (in order; the last entry repeats), each a list of the executed share of the order's
    quantity at its successive ``GET`` queries (the last value repeats), filled at the limit
    price. ``[[0.0], [1.0]]``: the first order never fills, the second fills at its first query.
    Unknown orders answer ``-2013 Order does not exist.``, canceling a closed one ``-2011 Unknown
    order sent.``. ``kill_after_post = n``: the n-th order is stored, then the request dies with
    ``KeyboardInterrupt`` (the order rests on the exchange, its answer never arrives).
    ``rejects[market_id]``: Binance's error body answering every order on that market (e.g.
    ``-2010`` insufficient balance); nothing is stored. Fills pay ``fee_rate`` of their value in
    the quote currency (Binance charges the received asset or BNB; the quote keeps the balance
    arithmetic of the tests simple).

    Funds are checked as Binance checks them: an order the free balance cannot cover is answered
    ``-2010 Account has insufficient balance for requested action.`` (ccxt's
    ``InsufficientFunds``) and not stored. A sell needs its quantity free in the base asset; a
    buy its ``quantity * price`` and, since the fee is charged in the quote here, the fee too, free
    in the quote (the balance minus what the open orders lock: the rest of open sells, the rest of
    open buys at their price with the fee). ``min_balance`` is the lowest quote balance after any
    fill.
    """

    def __init__(
        self,
        balances: dict[str, float],
        scripts: dict[str, list[list[float]]] | None = None,
        fee_rate: float = 0.001,
    ):
        self.balances = dict(balances)
        self.fee_rate = fee_rate
        self.scripts = scripts or {}
        self.orders: list[dict] = []
        self.kill_after_post: int | None = None
        self.rejects: dict[str, dict] = {}
        self._queries: dict[int, int] = {}
        self.min_balance = self.balances.get("USDT", 0.0)

    def install(self, server: FakeExchangeServer, fixtures_dir: Path) -> FakeOrderBook:
        server.route(ORDER_PATH, self._post, method="POST")
        server.route(ORDER_PATH, self._get, method="GET")
        server.route(ORDER_PATH, self._delete, method="DELETE")
        server.route(OPEN_ORDERS_PATH, self._open, method="GET")
        server.route(ACCOUNT_PATH, lambda r: self._account(fixtures_dir))
        return self

    # -------------------------------------------------------------- state
    def _find(self, request: Request) -> dict | None:
        p = form(request)
        for order in self.orders:
            if order["symbol"] != p.get("symbol"):
                continue
            if str(order["orderId"]) == p.get("orderId") or (
                p.get("origClientOrderId") and order["clientOrderId"] == p["origClientOrderId"]
            ):
                return order
        return None

    def fill_to(self, order: dict, share: float) -> None:
        qty, price = float(order["origQty"]), float(order["price"])
        done = float(order["executedQty"])
        target = min(qty, round(qty * share, 8))
        if target <= done or order["status"] not in _OPEN:
            return
        delta = target - done
        base, quote = order["base"], order["quote"]
        sign = 1.0 if order["side"] == "BUY" else -1.0
        self.balances[base] = self.balances.get(base, 0.0) + sign * delta
        fee = self.fee_rate * delta * price  # charged in the quote currency (our convention)
        self.balances[quote] = self.balances.get(quote, 0.0) - sign * delta * price - fee
        order["executedQty"] = f"{target:.8f}"
        order["cummulativeQuoteQty"] = f"{target * price:.8f}"
        order["status"] = "FILLED" if target >= qty else "PARTIALLY_FILLED"
        self.min_balance = min(self.min_balance, self.balances[quote])

    def locked(self, asset: str) -> float:
        """What the open orders lock of ``asset``: the rest of sells of it, the rest of buys quoted
        in it at their price with the fee."""
        held = 0.0
        for o in self.orders:
            if o["status"] not in _OPEN:
                continue
            rest = float(o["origQty"]) - float(o["executedQty"])
            if o["side"] == "SELL" and o["base"] == asset:
                held += rest
            elif o["side"] == "BUY" and o["quote"] == asset:
                held += rest * float(o["price"]) * (1 + self.fee_rate)
        return held

    def _refused(self, p: dict[str, str], base: str) -> bool:
        qty, price = float(p["quantity"]), float(p.get("price", "0"))
        asset, need = (base, qty) if p["side"] == "SELL" else ("USDT", qty * price)
        if p["side"] == "BUY":
            need *= 1 + self.fee_rate
        return need > self.balances.get(asset, 0.0) - self.locked(asset) + 1e-9

    # -------------------------------------------------------------- routes
    def _post(self, request: Request) -> Any:
        p = form(request)
        market = p["symbol"]
        if market in self.rejects:
            return HttpError(400, self.rejects[market])
        base = market[: -len("USDT")] if market.endswith("USDT") else market
        if self._refused(p, base):
            return HttpError(400, INSUFFICIENT)
        answer = order_answer(request, order_id=2000 + len(self.orders))
        order = {
            **{
                k: answer[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId", "price")
            },
            "origQty": answer["origQty"],
            "executedQty": "0.00000000",
            "cummulativeQuoteQty": "0.00000000",
            "status": "NEW",
            "timeInForce": answer["timeInForce"],
            "type": answer["type"],
            "side": answer["side"],
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": answer["transactTime"],
            "updateTime": answer["transactTime"],
            "isWorking": True,
            "workingTime": answer["transactTime"],
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "base": base,
            "quote": "USDT",
        }
        order["n_on_market"] = sum(o["symbol"] == market for o in self.orders)
        self.orders.append(order)
        if self.kill_after_post is not None and len(self.orders) >= self.kill_after_post:
            self.kill_after_post = None
            raise KeyboardInterrupt("kill -9 while the order was on its way back")
        return answer

    def _get(self, request: Request) -> Any:
        order = self._find(request)
        if order is None:
            return HttpError(400, {"code": -2013, "msg": "Order does not exist."})
        if order["status"] in _OPEN:
            script = self.scripts.get(order["symbol"]) or [[0.0]]
            shares = script[min(order["n_on_market"], len(script) - 1)]
            k = self._queries.get(order["orderId"], 0)
            self._queries[order["orderId"]] = k + 1
            self.fill_to(order, shares[min(k, len(shares) - 1)])
        return self._clean(order)

    def _delete(self, request: Request) -> Any:
        order = self._find(request)
        if order is None or order["status"] not in _OPEN:
            return HttpError(400, {"code": -2011, "msg": "Unknown order sent."})
        order["status"] = "CANCELED"
        return self._clean(order)

    def _open(self, request: Request) -> Any:
        market = request.params.get("symbol")
        return [
            self._clean(o)
            for o in self.orders
            if o["status"] in _OPEN and market in (None, o["symbol"])
        ]

    def _clean(self, order: dict) -> dict:
        return {k: v for k, v in order.items() if k not in ("base", "quote", "n_on_market")}

    def _account(self, fixtures_dir: Path) -> dict:
        return balance_payload(fixtures_dir, {a: f"{v:.8f}" for a, v in self.balances.items()})


class SimulatedClock:
    """A clock for the execution loop: ``clock()`` seconds, ``await clock.sleep(s)`` moves it."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
