"""Download candles with ccxt into the store: pagination, rate limits, retries with backoff, resume.

The loop uses ccxt's synchronous API (one request at a time; ``enableRateLimit`` spaces them):

1. load the markets and check the symbol and timeframe (clear errors with close matches);
2. ask the store which bar ranges it does not hold completely (:meth:`OHLCVStore.covered`): a
   second fetch resumes one bar after the last page written and requests only new candles, also
   inside a range an earlier fetch was stopped in;
3. page through each range with ``since`` = last open time + one bar and the exchange's page limit;
4. retry rate limits (``RateLimitExceeded``, ``DDoSProtection``) and exchange outages
   (``ExchangeNotAvailable``: HTTP 5xx, maintenance) with exponential backoff, resuming at the page
   that failed; a request that got no answer (no network, DNS, proxy, timeout) stops at once with
   one line naming the network (:func:`datasets.exchange.network_down`);
5. drop the still-open candle (open time + timeframe > exchange clock), de-duplicate, sort, count
   invalid candles (kept in the store, reported, and kept out of panels by the loader);
6. flush to the store every ``flush_rows`` candles and when stopping for any reason (error,
   Ctrl-C): the store stays consistent and the next fetch continues where this one stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from datasets.errors import DataError, ExchangeError
from datasets.exchange import (
    check_symbol,
    check_timeframe,
    make_exchange,
    network_down,
    network_error,
)
from datasets.panel import MarketData
from datasets.store import OHLCVStore
from datasets.store.format import FIELDS, dedupe, fmt_ms, to_utc_ms
from datasets.timeframe import timeframe_to_ms
from datasets.validate import invalid_candle_mask

log = logging.getLogger(__name__)

DEFAULT_PAGE_LIMIT = 500


@dataclass(frozen=True)
class FetchProgress:
    """State handed to a ``progress`` callback after every page."""

    symbol: str
    timeframe: str
    start_ms: int
    stop_ms: int
    cursor_ms: int
    rows: int
    requests: int

    @property
    def fraction(self) -> float:
        span = max(self.stop_ms - self.start_ms, 1)
        return float(min(max((self.cursor_ms - self.start_ms) / span, 0.0), 1.0))


@dataclass
class FetchReport:
    """What one :func:`fetch_ohlcv` call did.

    ``frame`` holds the closed candles received in this call (columns ``timestamp_ms`` and OHLCV),
    ``ranges`` the bar-open ranges requested, ``invalid`` how many of the candles fail validation.
    """

    exchange: str
    symbol: str
    timeframe: str
    ranges: list[tuple[int, int]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    invalid: int = 0
    dropped_open: int = 0
    frame: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["timestamp_ms", *FIELDS])
    )

    @property
    def rows(self) -> int:
        return len(self.frame)

    def __str__(self) -> str:
        span = (
            f"{fmt_ms(int(self.frame['timestamp_ms'].iloc[0]))} .. {fmt_ms(int(self.frame['timestamp_ms'].iloc[-1]))}"
            if self.rows
            else "nothing new"
        )
        return (
            f"{self.exchange} {self.symbol} {self.timeframe}: {self.rows} candles ({span}), "
            f"{self.requests} requests, {self.retries} retries, {self.invalid} invalid"
        )


def page_limit(exchange: Any, market_type: str = "spot") -> int:
    """Candles per ``fetch_ohlcv`` request: ccxt's ``features`` entry for the exchange (1000 on
    Binance spot), else 500."""
    features = getattr(exchange, "features", None) or {}
    entry = (features.get(market_type) or {}).get("fetchOHLCV") or {}
    limit = entry.get("limit")
    return int(limit) if limit else DEFAULT_PAGE_LIMIT


def call_with_retries(
    call: Callable[[], Any],
    *,
    what: str,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException], None] | None = None,
) -> Any:
    """Run ``call``; on a rate limit or an exchange outage (ccxt ``NetworkError`` subclasses) wait
    ``backoff_s * 2**attempt`` seconds (at most ``max_backoff_s``) and try again, ``max_retries`` times.

    Without an answer at all (no network, DNS, proxy, timeout: :func:`~datasets.exchange.network_down`)
    it raises `ExchangeUnavailableError` at once, naming ``what`` and the network. Other ccxt errors
    (bad symbol, authentication, ...) are not retried: they become `ExchangeError`.
    """
    import ccxt

    for attempt in range(max_retries + 1):
        try:
            return call()
        except ccxt.NetworkError as exc:
            if network_down(exc):
                raise network_error(what, exc) from exc
            if attempt == max_retries:
                log.error("%s failed after %d retries: %s", what, max_retries, exc)
                raise
            delay = min(max_backoff_s, backoff_s * 2**attempt)
            log.warning(
                "%s: %s: %s; retry %d/%d in %.1f s",
                what,
                type(exc).__name__,
                exc,
                attempt + 1,
                max_retries,
                delay,
            )
            if on_retry is not None:
                on_retry(exc)
            sleep(delay)
        except ccxt.BaseError as exc:
            raise ExchangeError(
                f"{what}: the exchange refused the request: {type(exc).__name__}: {exc}"
            ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def prepare_exchange(exchange: Any, symbols: Sequence[str], timeframe: str, **retry: Any) -> Any:
    """Build the exchange from an id if needed, load markets (with retries), check symbols and timeframe."""
    if isinstance(exchange, str):
        exchange = make_exchange(exchange)
    check_timeframe(exchange, timeframe)
    call_with_retries(exchange.load_markets, what=f"{exchange.id} load_markets", **retry)
    for symbol in symbols:
        check_symbol(exchange, symbol)
    return exchange


def fetch_ohlcv(
    exchange: Any,
    symbol: str,
    timeframe: str,
    since: object,
    until: object = None,
    *,
    store: OHLCVStore | None = None,
    progress: Callable[[FetchProgress], None] | None = None,
    max_retries: int = 5,
    backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    limit: int | None = None,
    flush_rows: int = 50_000,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchReport:
    """Fetch closed candles of one symbol in ``[since, until]`` (bar open times, UTC), paginated.

    Parameters
    ----------
    exchange : ccxt.Exchange or str
        A synchronous ccxt exchange (see :func:`datasets.exchange.make_exchange`) or its id.
    symbol, timeframe : str
        ccxt symbol (``"BTC/USDT"``) and a timeframe the exchange offers (``"1h"``).
    since, until : str, Timestamp or int ms
        First and last bar open time wanted; ``until`` defaults to now (the exchange clock).
    store : OHLCVStore, optional
        Fetch only what the store lacks and write what arrives (every ``flush_rows`` candles and on
        exit, also on errors and Ctrl-C). Without a store the candles are only returned.
    progress : callable, optional
        Called with a :class:`FetchProgress` after every page.
    max_retries, backoff_s, max_backoff_s : int, float, float
        Retries per request on network errors, with delays ``backoff_s * 2**attempt`` capped.
    limit : int, optional
        Candles per request; default the exchange's page limit (:func:`page_limit`).
    sleep : callable
        Used for the backoff waits (tests pass a recorder).

    Returns
    -------
    FetchReport
        Requests made, retries, candles received (``report.frame``), invalid count.

    Examples
    --------
    >>> from datasets import OHLCVStore
    >>> report = fetch_ohlcv("binance", "BTC/USDT", "1d", "2020-01-01", store=OHLCVStore())  # needs the network  # doctest: +SKIP
    """
    start = to_utc_ms(since, "since")
    until_ms = to_utc_ms(until, "until") if until is not None else None
    if until_ms is not None and start > until_ms:
        raise DataError(f"`since` ({fmt_ms(start)}) must not be after `until` ({fmt_ms(until_ms)})")
    step = timeframe_to_ms(timeframe)
    retry: dict[str, Any] = {
        "max_retries": max_retries,
        "backoff_s": backoff_s,
        "max_backoff_s": max_backoff_s,
        "sleep": sleep,
    }
    exchange = prepare_exchange(exchange, [symbol], timeframe, **retry)
    now = int(exchange.milliseconds())
    stop = min(until_ms if until_ms is not None else now, now - step)  # closed bars only
    report = FetchReport(exchange.id, symbol, timeframe)
    if start > stop:
        return report
    report.ranges = (
        store.missing_ranges(exchange.id, timeframe, symbol, start, stop)
        if store is not None
        else [(start, stop)]
    )
    page = limit or page_limit(exchange, (exchange.markets.get(symbol) or {}).get("type") or "spot")
    received: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    progress_of: dict[str, int] = {}  # the range being fetched: lo, hi, cursor (all before: done)

    def flush() -> None:
        if store is None:
            return
        if pending:
            rows = np.concatenate(pending)
            store.write(exchange.id, timeframe, symbol, _frame(rows), source=f"ccxt:{exchange.id}")
            pending.clear()  # only once written: a failed write is retried on the way out
        if progress_of and progress_of["cursor"] > progress_of["lo"]:
            # every bar before the cursor is written now (outages included): held
            hi = min(progress_of["cursor"] - 1, progress_of["hi"])
            store.cover(exchange.id, timeframe, symbol, progress_of["lo"], hi)

    def count_retry(_: BaseException) -> None:
        report.retries += 1

    try:
        for lo, hi in report.ranges:
            cursor, complete = lo, False
            progress_of.update(lo=lo, hi=hi, cursor=lo)
            while cursor <= hi:

                def request(since_ms: int = cursor) -> Any:
                    return exchange.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=page)

                candles = call_with_retries(
                    request,
                    what=f"{exchange.id} fetch_ohlcv {symbol} {timeframe} since {fmt_ms(cursor)}",
                    on_retry=count_retry,
                    **retry,
                )
                report.requests += 1
                rows = _rows(candles)
                if not len(rows) or rows[:, 0].max() < cursor:
                    complete = True  # the exchange has nothing at or after `cursor`
                    break
                open_now = rows[:, 0] + step > now
                report.dropped_open += int(open_now.sum())
                keep = rows[(rows[:, 0] >= lo) & (rows[:, 0] <= hi) & ~open_now]
                received.append(keep)
                pending.append(keep)
                cursor = int(rows[:, 0].max()) + step
                progress_of["cursor"] = cursor
                if progress is not None:
                    progress(
                        FetchProgress(
                            symbol,
                            timeframe,
                            report.ranges[0][0],
                            stop,
                            min(cursor, stop),
                            sum(len(r) for r in received),
                            report.requests,
                        )
                    )
                if sum(len(r) for r in pending) >= flush_rows:
                    flush()
            if complete or cursor > hi:  # the exchange has nothing more in [lo, hi]
                progress_of["cursor"] = hi + 1
                flush()
            progress_of.clear()
    finally:
        flush()
    frame = _frame(np.concatenate(received) if received else np.empty((0, 6)))
    report.frame = frame
    report.invalid = int(invalid_candle_mask(frame)[0].sum()) if len(frame) else 0
    if report.invalid:
        log.warning(
            "%s %s %s: %d invalid candles received (kept in the store, kept out of panels)",
            exchange.id,
            symbol,
            timeframe,
            report.invalid,
        )
    log.info("%s", report)
    return report


def _rows(candles: Any) -> np.ndarray:
    """ccxt candles ``[[ts, o, h, l, c, v], ...]`` -> float array (n, 6); None values become NaN."""
    if not candles:
        return np.empty((0, 6))
    return np.array([row[:6] for row in candles], dtype=np.float64)


def _frame(rows: np.ndarray) -> pd.DataFrame:
    """Sorted, de-duplicated (last wins) candle frame from an (n, 6) array."""
    ts, values = dedupe(
        rows[:, 0].astype(np.int64), {c: rows[:, k + 1] for k, c in enumerate(FIELDS)}
    )
    return pd.DataFrame({"timestamp_ms": ts, **values})


def ensure_history(
    store: OHLCVStore | str | None,
    exchange_id: str,
    symbols: Sequence[str],
    timeframe: str,
    start: object,
    end: object = None,
    *,
    exchange: Any = None,
    max_fill_bars: int = 0,
    progress: Callable[[FetchProgress], None] | None = None,
    **fetch_options: Any,
) -> MarketData:
    """Fetch what the store lacks for ``symbols`` in ``[start, end]``, then load the panel.

    The exchange is contacted only when something is missing (a fully cached range works offline).
    Used by experiment configs with ``source = "ccxt"`` and by the live analyzer.

    Parameters
    ----------
    store : OHLCVStore, str or None
        The store (or its root; None: the default root).
    exchange_id : str
        ccxt id; also the store's exchange partition.
    exchange : ccxt.Exchange, optional
        A ready exchange object (default: :func:`~datasets.exchange.make_exchange` ``(exchange_id)``).
    max_fill_bars : int
        Gap policy passed to :meth:`OHLCVStore.load`.
    **fetch_options
        Passed to :func:`fetch_ohlcv` (``max_retries``, ``backoff_s``, ...).

    Returns
    -------
    MarketData
        Panel of shape ``(n_bars, len(symbols))``.
    """
    store = store if isinstance(store, OHLCVStore) else OHLCVStore(store)
    start_ms = to_utc_ms(start, "start")
    step = timeframe_to_ms(timeframe)
    end_ms = to_utc_ms(end, "end") if end is not None else int(time.time() * 1000) - step
    if start_ms > end_ms:
        raise DataError(f"`start` ({fmt_ms(start_ms)}) must not be after `end` ({fmt_ms(end_ms)})")
    missing = [
        s for s in symbols if store.missing_ranges(exchange_id, timeframe, s, start_ms, end_ms)
    ]
    if missing:
        exchange = exchange if exchange is not None else make_exchange(exchange_id)
        for symbol in missing:
            fetch_ohlcv(
                exchange,
                symbol,
                timeframe,
                start_ms,
                end_ms,
                store=store,
                progress=progress,
                **fetch_options,
            )
    return store.load(
        exchange_id, symbols, timeframe, start_ms, end_ms, max_fill_bars=max_fill_bars
    )
