"""Offline ccxt harness: ccxt's real exchange classes with the HTTP layer replaced.

ccxt builds every REST call in ``fetch2`` (rate limiter, ``sign``: URL, query string, headers,
signature) and then calls ``self.fetch(url, method, headers, body)``, the one method that talks HTTP.
:func:`fake_exchange_class` subclasses a real ccxt class (sync or async) and overrides only ``fetch``
(and the clock): requests go to a :class:`FakeExchangeServer`, which answers from

* recorded Binance payloads (``../shared/data/exchange-fixtures``: balances, ticker, order book,
  trades, and the exchangeInfo entries of six spot markets),
* kline pages generated from the real candles (``binance_spot_usdt_1d/1h.csv.gz``), honouring
  ``symbol``, ``interval``, ``startTime``, ``endTime`` and ``limit`` like Binance does,
* routes a test adds (:meth:`FakeExchangeServer.route`) or one-off replays of a recorded case.

Everything ccxt does after ``fetch`` (error mapping, parsing, unified structures) is its own code.
The server keeps a request log, can inject failures (ccxt exceptions, HTTP errors that ccxt maps
itself, or ``KeyboardInterrupt``) and has a settable clock (``now_ms``) that decides which candle is
still open.

Usage::

    server = binance_server(shared_data_dir)            # recorded routes + real candles
    with install(server):                                # ccxt.binance is the fake now
        ex = datasets.exchange.make_exchange("binance")
        ex.fetch_ohlcv("BTC/USDT", "1h", since=..., limit=1000)
    server.requests_to("/api/v3/klines")                 # what ccxt asked for
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

STEP_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
BINANCE_INTERVALS = (
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
    "1M",
)
DEFAULT_NOW_MS = 1673371800000  # 2023-01-10 17:30 UTC: the 17:00 hourly candle is still open


@dataclass
class Request:
    """One HTTP request ccxt made: parsed URL, query parameters, headers and body."""

    method: str
    url: str
    host: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any
    failed: str | None = None  # the injected failure, if any

    def int_param(self, name: str) -> int | None:
        value = self.params.get(name)
        return None if value is None else int(value)


@dataclass
class HttpError:
    """An HTTP error answer; ccxt's own ``handle_errors``/``httpExceptions`` map it to an exception."""

    status: int
    body: Any = None
    reason: str = "Error"


@dataclass
class _Failure:
    error: BaseException | type[BaseException] | HttpError
    path: str | None
    after: int
    times: int
    seen: int = 0


@dataclass
class FakeExchangeServer:
    """Answers ccxt's HTTP requests offline; see the module docstring.

    Parameters
    ----------
    now_ms : int
        Exchange clock (UTC ms); candles opening after it are not served, the one containing it
        is served as the still-open candle.
    rate_limit_ms : float
        ccxt ``rateLimit`` of fake instances (small, so rate limiting stays on but tests stay fast).
    """

    now_ms: int = DEFAULT_NOW_MS
    rate_limit_ms: float = 1.0
    requests: list[Request] = field(default_factory=list)
    routes: dict[tuple[str, str], Any] = field(default_factory=dict)
    candles: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    markets: list[dict] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _replays: list[Any] = field(default_factory=list)

    # ------------------------------------------------------------------ configuration
    def route(self, path: str, answer: Any, method: str = "GET") -> None:
        """Answer ``method path`` with ``answer`` (JSON-like, an `HttpError`, or ``callable(request)``)."""
        self.routes[(method.upper(), path)] = answer

    def replay(self, case: dict) -> None:
        """Answer the next request that no route matches with a recorded case's ``httpResponse``."""
        self._replays.append(case["httpResponse"])

    def fail(
        self,
        error: BaseException | type[BaseException] | HttpError,
        *,
        path: str | None = None,
        after: int = 0,
        times: int = 1,
    ) -> None:
        """Fail ``times`` requests to ``path`` (any path if None) after letting ``after`` of them pass.

        ``error`` may be a ccxt exception (instance or class), an `HttpError` (ccxt maps the status
        and body itself: 429 -> DDoSProtection, 503 -> ExchangeNotAvailable, Binance code -1003 ->
        RateLimitExceeded), or ``KeyboardInterrupt`` to simulate Ctrl-C mid-request.
        """
        self._failures.append(_Failure(error, path, after, times))

    def add_candles(self, market_id: str, interval: str, ts: np.ndarray, ohlcv: np.ndarray) -> None:
        """Serve candles: ``ts`` int64 (n,) bar open times, ``ohlcv`` float64 (n, 5), sorted by time."""
        self.candles[(market_id, interval)] = (
            np.asarray(ts, dtype=np.int64),
            np.asarray(ohlcv, dtype=np.float64),
        )

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    # ------------------------------------------------------------------ serving
    def handle(self, method: str, url: str, headers: dict | None, body: Any) -> Any:
        parts = urlsplit(url)
        request = Request(
            method.upper(),
            url,
            parts.netloc,
            parts.path,
            dict(parse_qsl(parts.query)),
            dict(headers or {}),
            body,
        )
        self.requests.append(request)
        failure = self._due_failure(request)
        if failure is not None:
            request.failed = (
                type(failure).__name__ if not isinstance(failure, type) else failure.__name__
            )
            return failure
        answer = self.routes.get((request.method, request.path))
        if answer is None:
            answer = self._builtin(request)
        if callable(answer):
            answer = answer(request)
        return copy.deepcopy(answer)

    def _due_failure(self, request: Request) -> Any:
        for rule in self._failures:
            if rule.path is not None and rule.path != request.path:
                continue
            rule.seen += 1
            if rule.after < rule.seen <= rule.after + rule.times:
                return rule.error
        return None

    def _builtin(self, request: Request) -> Any:
        path = request.path
        if path == "/api/v3/exchangeInfo":
            return {
                "timezone": "UTC",
                "serverTime": self.now_ms,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": self.markets,
            }
        if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            return {
                "timezone": "UTC",
                "serverTime": self.now_ms,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [],
            }
        if path in (
            "/sapi/v1/capital/config/getall",
            "/sapi/v1/margin/allPairs",
            "/sapi/v1/margin/isolated/allPairs",
        ):
            return []
        if path == "/api/v3/time":
            return {"serverTime": self.now_ms}
        if path == "/api/v3/klines":
            return self._klines(request)
        if self._replays:
            return self._replays.pop(0)
        raise LookupError(
            f"the fake exchange has no answer for {request.method} {request.host}{path} "
            f"{request.params}; add one with server.route({path!r}, payload)"
        )

    def _klines(self, request: Request) -> Any:
        """Binance ``GET /api/v3/klines``: at most ``limit`` (default 500, max 1000) candles with
        ``startTime <= open <= endTime``, oldest first; without ``startTime`` the latest ones."""
        params = request.params
        interval = params.get("interval")
        if interval not in BINANCE_INTERVALS:
            return HttpError(400, {"code": -1120, "msg": "Invalid interval."})
        if not any(key[0] == params.get("symbol") for key in self.candles) and not any(
            m["symbol"] == params.get("symbol") for m in self.markets
        ):
            return HttpError(400, {"code": -1121, "msg": "Invalid symbol."})
        limit = request.int_param("limit") or 500
        if not 1 <= limit <= 1000:
            return HttpError(
                400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
            )
        ts, ohlcv = self.candles.get(
            (params["symbol"], interval), (np.empty(0, np.int64), np.empty((0, 5)))
        )
        step = STEP_MS.get(interval, 0)
        lo = int(np.searchsorted(ts, request.int_param("startTime") or 0, side="left"))
        end = min(request.int_param("endTime") or self.now_ms, self.now_ms)
        hi = int(np.searchsorted(ts, end, side="right"))
        pick = (
            slice(lo, min(hi, lo + limit))
            if "startTime" in params
            else slice(max(lo, hi - limit), hi)
        )
        return [_kline(int(t), row, step) for t, row in zip(ts[pick], ohlcv[pick], strict=True)]


def _num(value: float) -> str:
    """Binance style number string (8 decimals) when that is exact, else the shortest repr."""
    text = f"{value:.8f}"
    return text if float(text) == value else repr(float(value))


def _kline(ts: int, row: np.ndarray, step: int) -> list:
    """Raw 12-field Binance kline. Fields 7-11 (quote volume, trades, taker volumes) are not in the
    source candles: quote volume is volume * close, the others are zero."""
    o, h, lo, c, v = (float(x) for x in row)
    return [
        ts,
        _num(o),
        _num(h),
        _num(lo),
        _num(c),
        _num(v),
        ts + step - 1,
        _num(v * c),
        0,
        "0",
        "0",
        "0",
    ]


# ---------------------------------------------------------------------------------- ccxt classes
def fake_exchange_class(
    server: FakeExchangeServer, exchange_id: str = "binance", async_: bool = False
) -> type:
    """A subclass of ccxt's real ``exchange_id`` class whose HTTP and clock are ``server``'s."""
    if async_:
        import ccxt.async_support as module
    else:
        import ccxt as module
    base = getattr(module, exchange_id)

    def init(self: Any, config: dict | None = None) -> None:
        base.__init__(self, {**(config or {}), "rateLimit": server.rate_limit_ms})

    def milliseconds(self: Any) -> int:
        return server.now_ms

    def answer(self: Any, url: str, method: str, headers: Any, body: Any) -> Any:
        result = server.handle(method, url, headers, body)
        if isinstance(result, HttpError):
            text = result.body if isinstance(result.body, str) else json.dumps(result.body)
            parsed = result.body if isinstance(result.body, (dict, list)) else None
            self.handle_errors(
                result.status, result.reason, url, method, {}, text, parsed, headers, body
            )
            self.handle_http_status_code(result.status, result.reason, url, method, text)
            import ccxt

            raise ccxt.ExchangeError(f"{self.id} {method} {url} {result.status}")
        if isinstance(result, BaseException) or (
            isinstance(result, type) and issubclass(result, BaseException)
        ):
            raise result
        return result

    if async_:

        async def fetch(
            self: Any, url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            return answer(self, url, method, headers, body)
    else:

        def fetch(
            self: Any, url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            return answer(self, url, method, headers, body)

    namespace = {
        "__init__": init,
        "fetch": fetch,
        "milliseconds": milliseconds,
        "fake_server": server,
    }
    return type(f"Fake{base.__name__}", (base,), namespace)


@contextlib.contextmanager
def install(
    server: FakeExchangeServer, exchange_id: str = "binance"
) -> Iterator[FakeExchangeServer]:
    """Make ``ccxt.<id>`` and ``ccxt.async_support.<id>`` the fake classes while the block runs
    (so :func:`datasets.exchange.make_exchange` and any ``getattr(ccxt, id)`` use them)."""
    import ccxt
    import ccxt.async_support as accxt

    saved = getattr(ccxt, exchange_id), getattr(accxt, exchange_id)
    setattr(ccxt, exchange_id, fake_exchange_class(server, exchange_id))
    setattr(accxt, exchange_id, fake_exchange_class(server, exchange_id, async_=True))
    try:
        yield server
    finally:
        setattr(ccxt, exchange_id, saved[0])
        setattr(accxt, exchange_id, saved[1])


# ---------------------------------------------------------------------------------- recorded data
def recorded_cases(fixtures_dir: Path, method: str) -> list[dict]:
    """Recorded ccxt static-test cases of one unified method (``"fetchTicker"``, ``"fetchBalance"``)."""
    data = json.loads((Path(fixtures_dir) / f"binance_{method}.json").read_text())
    return data["methods"][method]


def recorded_routes(fixtures_dir: Path) -> dict[str, Any]:
    """Routes for the recorded spot payloads, keyed by the Binance path ccxt requests them from."""
    first = {
        m: recorded_cases(fixtures_dir, m)[0]["httpResponse"]
        for m in ("fetchBalance", "fetchTicker", "fetchOrderBook", "fetchTrades")
    }
    return {
        "/api/v3/account": first["fetchBalance"],
        "/api/v3/ticker/24hr": first["fetchTicker"],
        "/api/v3/depth": first["fetchOrderBook"],
        "/api/v3/aggTrades": first["fetchTrades"],
    }


def exchange_info_symbols(fixtures_dir: Path, extra_market_ids: list[str] = ()) -> list[dict]:
    """The six recorded exchangeInfo entries, plus entries for ``extra_market_ids`` (``"SOLUSDT"``)
    derived from the BTCUSDT entry with the symbol and base asset replaced (marked ``"derived"``)."""
    symbols = json.loads(
        (Path(fixtures_dir) / "binance_exchangeInfo_symbols_subset.json").read_text()
    )["symbols"]
    known = {s["symbol"] for s in symbols}
    template = next(s for s in symbols if s["symbol"] == "BTCUSDT")
    for market_id in extra_market_ids:
        if market_id not in known and market_id.endswith("USDT"):
            entry = copy.deepcopy(template)
            entry.update(symbol=market_id, baseAsset=market_id.removesuffix("USDT"), derived=True)
            symbols.append(entry)
    return symbols


@functools.lru_cache(maxsize=4)
def _csv_candles(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from datasets.csvimport import read_long_csv

    frame = read_long_csv(path)
    out = {}
    for symbol, rows in frame.groupby("symbol", sort=True):
        out[symbol.replace("/", "")] = (
            rows["timestamp_ms"].to_numpy(np.int64),
            rows[["open", "high", "low", "close", "volume"]].to_numpy(np.float64),
        )
    return out


def binance_server(
    shared_data: Path, intervals: tuple[str, ...] = ("1d", "1h"), *, now_ms: int = DEFAULT_NOW_MS
) -> FakeExchangeServer:
    """A Binance spot server: recorded routes, exchangeInfo for every pair in the candle files, and
    klines from ``binance_spot_usdt_<interval>.csv.gz`` for each interval in ``intervals``."""
    fixtures = Path(shared_data) / "exchange-fixtures"
    server = FakeExchangeServer(now_ms=now_ms)
    ids: set[str] = set()
    for interval in intervals:
        for market_id, (ts, ohlcv) in _csv_candles(
            str(Path(shared_data) / f"binance_spot_usdt_{interval}.csv.gz")
        ).items():
            server.add_candles(market_id, interval, ts, ohlcv)
            ids.add(market_id)
    server.markets = exchange_info_symbols(fixtures, sorted(ids))
    for path, payload in recorded_routes(fixtures).items():
        server.route(path, payload)
    return server


def kline_window(
    server: FakeExchangeServer, market_id: str, interval: str
) -> Callable[[int, int], np.ndarray]:
    """Helper for assertions: ``window(lo, hi)`` -> served open times in ``[lo, hi]``."""
    ts = server.candles[(market_id, interval)][0]
    return lambda lo, hi: ts[(ts >= lo) & (ts <= hi)]
