"""fetch_ohlcv / ensure_history against ccxt's real Binance class with the HTTP layer replaced.

ccxt builds the requests (URL, ``startTime``, ``limit``), maps HTTP errors to exceptions and parses
the raw klines itself; the fake server (tests/datasets/ccxt_fake.py) serves pages of the real
Binance candles from ../shared/data and the recorded payloads.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import ccxt
import numpy as np
import pandas as pd
import pytest

from datasets import OHLCVStore, ensure_history, fetch_ohlcv, make_exchange
from datasets.errors import DataError, ExchangeError
from tests.datasets.candles import HOUR, ms
from tests.datasets.ccxt_fake import HttpError

pytestmark = pytest.mark.shared

KLINES = "/api/v3/klines"


def _starts(server) -> list[int]:
    return [r.int_param("startTime") for r in server.requests_to(KLINES) if r.failed is None]


def _served(server, market_id: str, lo: int, hi: int, interval: str = "1h"):
    ts, ohlcv = server.candles[(market_id, interval)]
    keep = (ts >= lo) & (ts <= hi)
    return ts[keep], ohlcv[keep]


def _assert_store_equals_source(store, server, symbol: str, lo: int, hi: int) -> None:
    back = store.read("binance", "1h", symbol)
    ts, ohlcv = _served(server, symbol.replace("/", ""), lo, hi)
    assert np.array_equal(back["timestamp_ms"].to_numpy(), ts)
    assert np.array_equal(back[["open", "high", "low", "close", "volume"]].to_numpy(), ohlcv)


def test_multi_page_fetch_is_exact_and_drops_the_open_candle(fake_binance, store):
    fake_binance.now_ms = ms("2023-01-10 16:20")  # BTC's last candle (16:00) is still open
    report = fetch_ohlcv(make_exchange("binance"), "BTC/USDT", "1h", "2022-01-01", store=store)
    n = len(_served(fake_binance, "BTCUSDT", ms("2022-01-01"), ms("2023-01-10 15:00"))[0])
    assert report.rows == n and report.dropped_open == 1 and report.retries == 0
    assert report.requests == math.ceil((n + 1) / 1000) == len(fake_binance.requests_to(KLINES))
    assert {r.params["limit"] for r in fake_binance.requests_to(KLINES)} == {
        "1000"
    }  # Binance's page size
    assert store.last_timestamp("binance", "1h", "BTC/USDT") == ms("2023-01-10 15:00")
    _assert_store_equals_source(
        store, fake_binance, "BTC/USDT", ms("2022-01-01"), ms("2023-01-10 15:00")
    )
    # every page starts one bar after the previous page's last candle
    starts = _starts(fake_binance)
    assert starts[0] == ms("2022-01-01") and np.all(np.diff(starts) == 1000 * HOUR)


def test_incremental_second_fetch_requests_only_new_candles(fake_binance, store):
    fake_binance.now_ms = ms("2023-01-05 00:00")
    ex = make_exchange("binance")
    fetch_ohlcv(ex, "ETH/USDT", "1h", "2022-10-01", store=store)
    last = store.last_timestamp("binance", "1h", "ETH/USDT")
    assert last == ms("2023-01-04 23:00")
    fake_binance.now_ms = ms("2023-01-10 12:00")  # five and a half days later
    fake_binance.requests.clear()
    report = fetch_ohlcv(ex, "ETH/USDT", "1h", "2022-10-01", store=store)
    assert [r.path for r in fake_binance.requests] == [KLINES]  # markets cached, one page
    assert _starts(fake_binance) == [last + HOUR]
    assert report.rows == 5 * 24 + 12 and report.frame["timestamp_ms"].iloc[0] == last + HOUR
    _assert_store_equals_source(
        store, fake_binance, "ETH/USDT", ms("2022-10-01"), ms("2023-01-10 11:00")
    )
    fake_binance.requests.clear()
    assert fetch_ohlcv(ex, "ETH/USDT", "1h", "2022-10-01", store=store).requests == 0
    assert fake_binance.requests == []


@pytest.mark.parametrize(
    "failure",
    [
        ccxt.RateLimitExceeded("binance 429 too many requests"),
        HttpError(
            429,
            {
                "code": -1003,
                "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE.",
            },
        ),
        HttpError(400, {"code": -1003, "msg": "Too much request weight used."}),
        HttpError(503, "Service Unavailable", reason="Service Unavailable"),
    ],
    ids=["ratelimit", "http429", "code-1003", "http503"],
)
def test_failures_mid_pagination_are_retried_with_backoff(fake_binance, store, failure):
    fake_binance.fail(failure, path=KLINES, after=3, times=2)  # pages 4 and 5 fail twice in a row
    waits: list[float] = []
    report = fetch_ohlcv(
        make_exchange("binance"),
        "XRP/USDT",
        "1h",
        "2022-01-01",
        "2022-12-31 23:00",
        store=store,
        sleep=waits.append,
        backoff_s=0.5,
    )
    failed = [r for r in fake_binance.requests_to(KLINES) if r.failed]
    assert len(failed) == 2 and report.retries == 2 and waits == [0.5, 1.0]
    starts = _starts(fake_binance)
    assert len(starts) == len(set(starts)) == 9  # nothing asked twice once it succeeded
    assert failed[0].int_param("startTime") == failed[1].int_param("startTime") == starts[3]
    _assert_store_equals_source(
        store, fake_binance, "XRP/USDT", ms("2022-01-01"), ms("2022-12-31 23:00")
    )


def test_rate_limit_error_mapping_is_ccxts(fake_binance):
    fake_binance.fail(
        HttpError(400, {"code": -1003, "msg": "Too much request weight used."}), path=KLINES
    )
    ex = make_exchange("binance")
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.fetch_ohlcv("BTC/USDT", "1h", since=ms("2022-01-01"), limit=10)


def test_exhausted_retries_keep_the_pages_and_the_next_fetch_resumes(fake_binance, store):
    fake_binance.fail(ccxt.ExchangeNotAvailable("maintenance"), path=KLINES, after=4, times=10)
    ex = make_exchange("binance")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        fetch_ohlcv(
            ex,
            "ADA/USDT",
            "1h",
            "2022-01-01",
            "2022-12-31 23:00",
            store=store,
            max_retries=3,
            sleep=lambda s: None,
        )
    stored = store.last_timestamp("binance", "1h", "ADA/USDT")
    assert (
        stored == _served(fake_binance, "ADAUSDT", ms("2022-01-01"), ms("2023-01-01"))[0][3999]
    )  # 4 good pages
    fake_binance.requests.clear()
    fake_binance._failures.clear()
    fetch_ohlcv(
        ex, "ADA/USDT", "1h", "2022-01-01", "2022-12-31 23:00", store=store, sleep=lambda s: None
    )
    assert _starts(fake_binance)[0] == stored + HOUR
    _assert_store_equals_source(
        store, fake_binance, "ADA/USDT", ms("2022-01-01"), ms("2022-12-31 23:00")
    )


def test_ctrl_c_mid_fetch_leaves_a_consistent_store_that_resumes(fake_binance, store):
    fake_binance.fail(KeyboardInterrupt, path=KLINES, after=5)
    ex = make_exchange("binance")
    with pytest.raises(KeyboardInterrupt):
        fetch_ohlcv(ex, "LTC/USDT", "1h", "2021-06-01", store=store, flush_rows=2000)
    assert store.verify().empty
    stored = store.last_timestamp("binance", "1h", "LTC/USDT")
    assert (
        stored == _served(fake_binance, "LTCUSDT", ms("2021-06-01"), ms("2023-01-10"))[0][4999]
    )  # 5 pages
    fake_binance.requests.clear()
    fetch_ohlcv(ex, "LTC/USDT", "1h", "2021-06-01", store=store)
    assert _starts(fake_binance)[0] == stored + HOUR
    _assert_store_equals_source(
        store, fake_binance, "LTC/USDT", ms("2021-06-01"), ms("2023-01-10 16:00")
    )


def test_an_interrupted_backfill_leaves_no_silent_hole(fake_binance, store):
    """A fetch that extends history backwards and stops half-way leaves candles on both sides of
    what it did not get; the store remembers the unfinished range, so the next fetch fills it."""
    ex = make_exchange("binance")
    fetch_ohlcv(ex, "LTC/USDT", "1h", "2022-01-01", "2022-12-31 23:00", store=store)
    fake_binance.fail(KeyboardInterrupt, path=KLINES, after=3)
    with pytest.raises(KeyboardInterrupt):
        fetch_ohlcv(
            ex, "LTC/USDT", "1h", "2018-01-01", "2022-12-31 23:00", store=store, flush_rows=1000
        )
    fake_binance._failures.clear()
    got = _served(fake_binance, "LTCUSDT", ms("2018-01-01"), ms("2022-12-31 23:00"))[0]
    assert store.first_timestamp("binance", "1h", "LTC/USDT") == got[0]
    reached = got[2999]  # 3 pages of 1000 candles written before Ctrl-C
    assert store.covered("binance", "1h", "LTC/USDT") == [
        (ms("2018-01-01"), reached + HOUR - 1),  # up to the last page written
        (ms("2022-01-01"), ms("2023-01-01") - 1),  # whole bars: to the end of the last one
    ]
    assert store.missing_ranges(
        "binance", "1h", "LTC/USDT", ms("2018-01-01"), ms("2022-12-31 23:00")
    ) == [(reached + HOUR, ms("2021-12-31 23:00"))]
    fake_binance.requests.clear()
    fetch_ohlcv(ex, "LTC/USDT", "1h", "2018-01-01", "2022-12-31 23:00", store=store)
    assert _starts(fake_binance)[0] == reached + HOUR
    _assert_store_equals_source(
        store, fake_binance, "LTC/USDT", ms("2018-01-01"), ms("2022-12-31 23:00")
    )
    assert store.covered("binance", "1h", "LTC/USDT") == [(ms("2018-01-01"), ms("2023-01-01") - 1)]
    assert (
        store.missing_ranges("binance", "1h", "LTC/USDT", ms("2018-01-01"), ms("2022-12-31 23:00"))
        == []
    )


def test_interrupted_fetches_inside_an_unfinished_range_leave_no_hole(fake_binance, store):
    """Two backfills stopped at different places, then windows fetched apart: every bar the
    exchange has between them is fetched in the end, and nothing stored is asked for twice."""
    ex = make_exchange("binance")
    fetch_ohlcv(ex, "LTC/USDT", "1h", "2022-06-01", "2022-12-31 23:00", store=store)
    for since in ("2018-01-01", "2020-01-01"):
        fake_binance.fail(KeyboardInterrupt, path=KLINES, after=2)
        with pytest.raises(KeyboardInterrupt):
            fetch_ohlcv(
                ex, "LTC/USDT", "1h", since, "2022-12-31 23:00", store=store, flush_rows=500
            )
        fake_binance._failures.clear()
    fetch_ohlcv(ex, "LTC/USDT", "1h", "2019-03-01", "2019-03-31 23:00", store=store)  # a window
    stored_before = set(store.read("binance", "1h", "LTC/USDT")["timestamp_ms"].tolist())
    fake_binance.requests.clear()
    fetch_ohlcv(ex, "LTC/USDT", "1h", "2018-01-01", "2022-12-31 23:00", store=store)
    _assert_store_equals_source(
        store, fake_binance, "LTC/USDT", ms("2018-01-01"), ms("2022-12-31 23:00")
    )
    starts = _starts(fake_binance)  # no request starts at a bar that was already stored
    assert starts and len(starts) == len(set(starts)) and not stored_before & set(starts)
    assert (
        store.missing_ranges("binance", "1h", "LTC/USDT", ms("2018-01-01"), ms("2022-12-31 23:00"))
        == []
    )
    fake_binance.requests.clear()
    fetch_ohlcv(ex, "LTC/USDT", "1h", "2018-01-01", "2022-12-31 23:00", store=store)
    assert _starts(fake_binance) == []


def test_a_failed_write_is_not_counted_as_held(fake_binance, store, monkeypatch):
    """The last flush fails (disk full) and so does its retry on the way out: the range must not
    be recorded as held, so the next fetch asks for it again."""
    ex = make_exchange("binance")
    real_write = OHLCVStore.write
    calls = []

    def failing_write(self, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError("disk full")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(OHLCVStore, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        fetch_ohlcv(ex, "ADA/USDT", "1h", "2022-01-01", "2022-03-01", store=store, flush_rows=1000)
    monkeypatch.setattr(OHLCVStore, "write", real_write)
    served = _served(fake_binance, "ADAUSDT", ms("2022-01-01"), ms("2022-03-01"))[0]
    assert store.missing_ranges(
        "binance", "1h", "ADA/USDT", ms("2022-01-01"), ms("2022-03-01")
    ) == [(served[1000], ms("2022-03-01"))]
    fetch_ohlcv(ex, "ADA/USDT", "1h", "2022-01-01", "2022-03-01", store=store)
    _assert_store_equals_source(store, fake_binance, "ADA/USDT", ms("2022-01-01"), ms("2022-03-01"))


CRASH_CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    import datasets.store.format as store_format
    from datasets import OHLCVStore, fetch_ohlcv, make_exchange
    from tests.datasets.ccxt_fake import binance_server, install

    calls = []
    real_replace = os.replace
    def dying_replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:      # the third partition write: temp file complete, never renamed
            os._exit(9)          # the process dies here (like kill -9 or a power cut)
        real_replace(src, dst)
    store_format.os.replace = dying_replace
    with install(binance_server(Path({shared!r}))):
        fetch_ohlcv(make_exchange("binance"), "DOGE/USDT", "1h", "2020-06-01", "2022-12-31 23:00",
                    store=OHLCVStore({root!r}), flush_rows=3000)
""")


def test_crash_mid_write_keeps_the_store_consistent_and_the_fetch_resumes(
    fake_binance, store, shared_data
):
    from tests.conftest import ROOT

    code = CRASH_CHILD.format(repo=str(ROOT), shared=str(shared_data), root=str(store.root))
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 9, child.stderr
    problems = store.verify()
    assert problems["problem"].tolist() == ["temporary file left by an interrupted write"]
    stored = store.last_timestamp("binance", "1h", "DOGE/USDT")
    store.read("binance", "1h", "DOGE/USDT")  # what is there is readable
    assert not store.verify(repair=True).empty and store.verify().empty
    fake_binance.requests.clear()
    fetch_ohlcv(
        make_exchange("binance"), "DOGE/USDT", "1h", "2020-06-01", "2022-12-31 23:00", store=store
    )
    assert _starts(fake_binance)[0] == stored + HOUR
    _assert_store_equals_source(
        store, fake_binance, "DOGE/USDT", ms("2020-06-01"), ms("2022-12-31 23:00")
    )


def test_fetch_without_store_returns_the_candles(fake_binance):
    report = fetch_ohlcv(make_exchange("binance"), "BTC/USDT", "1d", "2022-12-01", "2022-12-31")
    ts, ohlcv = _served(fake_binance, "BTCUSDT", ms("2022-12-01"), ms("2022-12-31"), "1d")
    assert np.array_equal(report.frame["timestamp_ms"], ts)
    assert np.array_equal(
        report.frame[["open", "high", "low", "close", "volume"]].to_numpy(), ohlcv
    )
    assert "31 candles (2022-12-01 00:00 .. 2022-12-31 00:00), 1 requests" in str(report)


def test_invalid_candles_from_the_exchange_are_reported_stored_and_kept_out(fake_binance, store):
    ts, ohlcv = fake_binance.candles[("ETHUSDT", "1d")]
    bad = ohlcv.copy()
    k = int(np.searchsorted(ts, ms("2022-12-10")))
    bad[k, 1] = bad[k, 3] - 1.0  # high below close
    fake_binance.add_candles("ETHUSDT", "1d", ts, bad)
    report = fetch_ohlcv(
        make_exchange("binance"), "ETH/USDT", "1d", "2022-12-01", "2022-12-31", store=store
    )
    assert report.invalid == 1 and len(store.read("binance", "1d", "ETH/USDT")) == 31
    market = store.load("binance", ["ETH/USDT"], "1d")
    assert np.isnan(market.close.loc["2022-12-10"].iloc[0])
    assert market.notes[0].startswith("1 invalid candles kept out of the panel (ETH/USDT: 1;")


def test_bad_input_errors(fake_binance, store):
    ex = make_exchange("binance")
    with pytest.raises(
        ExchangeError, match=r"unknown symbol 'BTC/USDX' on binance; did you mean 'BTC/USDT'"
    ):
        fetch_ohlcv(ex, "BTC/USDX", "1h", "2022-01-01")
    with pytest.raises(
        ExchangeError, match=r"`timeframe` '7m' is not offered by binance; choose one of 1s, 1m, 3m"
    ):
        fetch_ohlcv(ex, "BTC/USDT", "7m", "2022-01-01")
    with pytest.raises(
        DataError,
        match=r"`since` \(2023-01-01 00:00\) must not be after `until` \(2022-01-01 00:00\)",
    ):
        fetch_ohlcv(ex, "BTC/USDT", "1h", "2023-01-01", "2022-01-01")
    assert fake_binance.requests_to(KLINES) == []


def test_ensure_history_fetches_missing_then_works_offline(fake_binance, tmp_path):
    store = OHLCVStore(tmp_path / "s")
    market = ensure_history(
        store, "binance", ["BTC/USDT", "SOL/USDT"], "1d", "2017-01-01", "2022-12-31"
    )
    assert market.symbols == ("BTC/USDT", "SOL/USDT") and market.source == "store:binance"
    assert market.index[0] == pd.Timestamp("2017-08-17", tz="UTC") and market.index[
        -1
    ] == pd.Timestamp("2022-12-31", tz="UTC")
    assert np.isnan(market.close["SOL/USDT"].iloc[0]) and not market.gaps().shape[0]
    assert store.covered("binance", "1d", "BTC/USDT")[0][0] == ms("2017-01-01")
    fake_binance.requests.clear()
    again = ensure_history(
        store, "binance", ["BTC/USDT", "SOL/USDT"], "1d", "2017-01-01", "2022-12-31"
    )
    assert fake_binance.requests == [] and again.fingerprint() == market.fingerprint()
    more = ensure_history(store, "binance", ["BTC/USDT"], "1d", "2017-01-01", "2023-01-09")
    assert [r.int_param("startTime") for r in fake_binance.requests_to(KLINES)] == [
        ms("2023-01-01")
    ]
    assert more.index[-1] == pd.Timestamp("2023-01-09", tz="UTC")


def test_async_ccxt_class_runs_on_the_same_harness(fake_binance):
    import asyncio

    async def main():
        ex = make_exchange("binance", async_=True)
        try:
            rows = await ex.fetch_ohlcv("BTC/USDT", "1h", since=ms("2022-01-01"), limit=5)
            ticker = await ex.fetch_ticker("BTC/USDT")
        finally:
            await ex.close()
        return rows, ticker

    rows, ticker = asyncio.run(main())
    ts, ohlcv = _served(fake_binance, "BTCUSDT", ms("2022-01-01"), ms("2022-01-01 04:00"))
    assert [r[0] for r in rows] == ts.tolist() and np.array_equal(
        np.array([r[1:] for r in rows]), ohlcv
    )
    assert ticker["last"] == 73369.84
