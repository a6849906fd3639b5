"""make_exchange (ids, keys, redaction) and the fidelity of the offline ccxt harness."""

from __future__ import annotations

import logging

import ccxt
import ccxt.async_support as accxt
import pytest

from datasets.errors import ExchangeError
from datasets.exchange import check_exchange_id, check_symbol, check_timeframe, make_exchange
from tests.datasets.ccxt_fake import FakeExchangeServer, fake_exchange_class, recorded_cases

KEY, SECRET = "k3y-AAAABBBBCCCC", "s3cr3t-DDDDEEEEFFFF"


@pytest.mark.parametrize(
    ("given", "suggestion"), [("binanse", "'binance'"), ("krakn", "'kraken'"), ("BINANCE", None)]
)
def test_exchange_ids(given, suggestion):
    if suggestion is None:
        assert check_exchange_id(given) == "binance"
        return
    with pytest.raises(
        ExchangeError, match=rf"unknown exchange id '{given}'; did you mean {suggestion}"
    ):
        make_exchange(given)


def test_unknown_id_without_close_match_still_helps():
    with pytest.raises(
        ExchangeError, match=r"unknown exchange id 'zzzz' \(ccxt knows \d+ exchanges; list them"
    ):
        make_exchange("zzzz")


def test_public_exchange_has_rate_limit_and_no_keys(monkeypatch):
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("EXCHANGE_API_SECRET", raising=False)
    ex = make_exchange("binance")
    assert isinstance(ex, ccxt.binance) and ex.enableRateLimit and not ex.apiKey


def test_keys_from_environment_are_used_and_never_shown(monkeypatch, caplog):
    monkeypatch.setenv("EXCHANGE_API_KEY", KEY)
    monkeypatch.setenv("EXCHANGE_API_SECRET", SECRET)
    with caplog.at_level(logging.DEBUG):
        ex = make_exchange("binance")
        # what ccxt's own fetch() logs at DEBUG: the request headers, which carry the key
        logging.getLogger("ccxt.base.exchange").debug(
            "GET %s, Request: %s", "https://x", {"X-MBX-APIKEY": KEY}
        )
    assert (ex.apiKey, ex.secret) == (KEY, SECRET)
    for text in (repr(ex), str(ex), caplog.text):
        assert KEY not in text and SECRET not in text
    assert "'X-MBX-APIKEY': '***'" in caplog.text


def test_arguments_override_environment_and_pairs_must_be_complete(monkeypatch):
    monkeypatch.setenv("EXCHANGE_API_KEY", KEY)
    monkeypatch.delenv("EXCHANGE_API_SECRET", raising=False)
    with pytest.raises(
        ExchangeError, match=r"`EXCHANGE_API_KEY` is set but `EXCHANGE_API_SECRET` is not"
    ) as err:
        make_exchange("binance")
    assert KEY not in str(err.value)
    ex = make_exchange("binance", api_key="a", api_secret="b")
    assert (ex.apiKey, ex.secret) == ("a", "b")


def test_async_exchange():
    import asyncio

    ex = make_exchange("binance", async_=True)
    assert isinstance(ex, accxt.binance) and ex.enableRateLimit
    asyncio.run(ex.close())


@pytest.mark.shared
def test_symbol_and_timeframe_checks(fake_binance):
    ex = make_exchange("binance")
    ex.load_markets()
    assert check_symbol(ex, "ETH/USDT") == "ETH/USDT" and check_timeframe(ex, "4h") == "4h"
    with pytest.raises(
        ExchangeError, match=r"unknown symbol 'ETH/USD' on binance; did you mean 'ETH/USDT'"
    ):
        check_symbol(ex, "ETH/USD")
    with pytest.raises(
        ExchangeError, match=r"`timeframe` '2d' is not offered by binance; choose one of 1s, .*, 1M"
    ):
        check_timeframe(ex, "2d")


# ---------------------------------------------------------------------------------- harness fidelity
@pytest.mark.shared
def test_recorded_klines_parse_like_ccxts_static_test(exchange_fixtures, fake_binance):
    case = recorded_cases(exchange_fixtures, "fetchOHLCV")[0]
    fake_binance.route("/api/v3/klines", case["httpResponse"])
    ex = make_exchange("binance")
    assert ex.fetch_ohlcv(*case["input"]) == case["parsedResponse"]
    request = fake_binance.requests_to("/api/v3/klines")[0]
    assert request.host == "api.binance.com"
    assert request.params == {
        "interval": "1h",
        "limit": "3",
        "symbol": "BTCUSDT",
        "startTime": "1706628191000",
    }


@pytest.mark.shared
def test_recorded_public_endpoints(exchange_fixtures, fake_binance):
    ex = make_exchange("binance")
    ticker = recorded_cases(exchange_fixtures, "fetchTicker")[0]["parsedResponse"]
    got = ex.fetch_ticker("BTC/USDT")
    assert {k: got[k] for k in ("symbol", "last", "bid", "ask", "baseVolume", "timestamp")} == {
        k: ticker[k] for k in ("symbol", "last", "bid", "ask", "baseVolume", "timestamp")
    }
    book = recorded_cases(exchange_fixtures, "fetchOrderBook")[0]["parsedResponse"]
    got = ex.fetch_order_book("BTC/USDT", 2)
    assert (got["bids"], got["asks"]) == (book["bids"], book["asks"])
    trades = recorded_cases(exchange_fixtures, "fetchTrades")[0]["parsedResponse"]
    got = ex.fetch_trades("BTC/USDT", None, 1)
    assert [(t["price"], t["amount"], t["timestamp"]) for t in got] == [
        (t["price"], t["amount"], t["timestamp"]) for t in trades
    ]


@pytest.mark.shared
def test_recorded_signed_balance(exchange_fixtures, fake_binance):
    ex = make_exchange("binance", api_key=KEY, api_secret=SECRET)
    balance = ex.fetch_balance()
    expected = recorded_cases(exchange_fixtures, "fetchBalance")[0]["parsedResponse"]
    for asset in ("BTC", "LTC", "ETH"):
        assert balance[asset] == expected[asset]
    account = fake_binance.requests_to("/api/v3/account")[0]
    assert account.headers["X-MBX-APIKEY"] == KEY and {"timestamp", "signature"} <= set(
        account.params
    )


@pytest.mark.shared
def test_markets_come_from_the_recorded_exchange_info(fake_binance, exchange_fixtures):
    import json

    ex = make_exchange("binance")
    ex.load_markets()
    recorded = json.loads((exchange_fixtures / "binance_markets_spot_subset.json").read_text())[
        "markets"
    ]
    for symbol, market in recorded.items():
        assert ex.markets[symbol]["limits"]["amount"]["min"] == market["limits"]["amount"]["min"]
        assert ex.markets[symbol]["limits"]["cost"]["min"] == market["limits"]["cost"]["min"]
    assert ex.markets["SOL/USDT"]["info"]["derived"] is True  # pairs only in the candle files
    assert [r.path for r in fake_binance.requests] == [
        "/api/v3/exchangeInfo",
        "/fapi/v1/exchangeInfo",
        "/dapi/v1/exchangeInfo",
    ]


def test_unrouted_request_fails_loudly_and_replay_answers_once():
    server = FakeExchangeServer()
    server.markets = []
    ex = fake_exchange_class(server)()
    ex.load_markets()
    with pytest.raises(LookupError, match=r"no answer for GET api.binance.com/api/v3/avgPrice"):
        ex.publicGetAvgPrice({"symbol": "BTCUSDT"})
    server.replay({"httpResponse": {"mins": 5, "price": "9.35"}})
    assert ex.publicGetAvgPrice({"symbol": "BTCUSDT"}) == {"mins": 5, "price": "9.35"}
    with pytest.raises(LookupError):
        ex.publicGetAvgPrice({"symbol": "BTCUSDT"})
