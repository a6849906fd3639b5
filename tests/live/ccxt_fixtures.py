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
