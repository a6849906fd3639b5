"""`ExchangeConnector` / `BinanceConnector` against ccxt's real async Binance class, offline.

ccxt builds, signs and sends every request itself (its own ``fetch``); only the aiohttp session is
replaced (tests/live/ccxt_fixtures.py), so the request log holds exactly what would go on the wire.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
from urllib.parse import parse_qsl

import pytest

from datasets import BinanceConnector, ExchangeConnector
from datasets.connectors import (
    MissingCredentialsError,
    ReadOnlyError,
    parse_market_rules,
)
from datasets.errors import ExchangeError
from tests.live.ccxt_fixtures import ORDER_PATH
from tests.live.conftest import API_KEY, API_SECRET

pytestmark = pytest.mark.shared

# ccxt's own request expectations for Binance spot limit orders: ts/src/test/static/request/binance.json
# in ccxt/ccxt (commit 0094a48beb788f92ae50d788bf957e49c07dac6f), cases "Spot limit buy order" and
# "spot order with weird price/amount", without the keys that file skips (timestamp, recvWindow,
# newClientOrderId, signature).
CCXT_LIMIT_BUY = [
    ("symbol", "LTCUSDT"),
    ("side", "BUY"),
    ("newOrderRespType", "FULL"),
    ("type", "LIMIT"),
    ("quantity", "0.2"),
    ("price", "50"),
    ("timeInForce", "GTC"),
]
CCXT_WEIRD_AMOUNT = [
    ("symbol", "LTCUSDT"),
    ("side", "BUY"),
    ("newOrderRespType", "FULL"),
    ("type", "LIMIT"),
    ("quantity", "0.423"),
    ("price", "55.32"),
    ("timeInForce", "GTC"),
]
SKIP = {"timestamp", "recvWindow", "newClientOrderId", "signature"}


def run(coro):
    return asyncio.run(coro)


async def _with(connector, call):
    async with connector:
        return await call(connector)


def test_unknown_exchange_id_names_close_matches():
    with pytest.raises(
        ExchangeError, match=r"unknown exchange id 'binanse'.*did you mean 'binance'"
    ):
        ExchangeConnector("binanse")


def test_incomplete_key_pair_is_refused(no_keys, monkeypatch):
    monkeypatch.setenv("EXCHANGE_API_KEY", API_KEY)
    with pytest.raises(
        ExchangeError, match="`EXCHANGE_API_KEY` is set but `EXCHANGE_API_SECRET` is not"
    ) as info:
        BinanceConnector()
    assert API_KEY not in str(info.value)


def test_keys_default_to_the_environment(keys):
    connector = BinanceConnector()
    assert connector.has_credentials and connector.read_only
    assert repr(connector) == (
        "BinanceConnector(exchange_id='binance', quote='USDT', read_only=True, "
        "sandbox=False, keys=set)"
    )


def test_balances_need_keys(live_binance, no_keys):
    with pytest.raises(
        MissingCredentialsError,
        match="fetching balances needs API keys: set EXCHANGE_API_KEY and EXCHANGE_API_SECRET",
    ):
        run(_with(BinanceConnector(), lambda c: c.fetch_balances()))
    assert not live_binance.requests_to("/api/v3/account")


def test_balances_from_the_recorded_payload(live_binance, keys):
    balances = run(_with(BinanceConnector(), lambda c: c.fetch_balances()))
    assert balances == {"LTC": 0.919741, "ETH": 0.02229833}  # BTC 0 is left out
    (request,) = live_binance.requests_to("/api/v3/account")
    assert request.headers["X-MBX-APIKEY"] == API_KEY


def test_market_rules_from_lot_size_and_notional_filters(live_binance, no_keys):
    rules = run(
        _with(BinanceConnector(), lambda c: c.fetch_markets(["LTC/USDT", "DOGE/USDT", "BTC/USDT"]))
    )
    ltc, doge, btc = rules["LTC/USDT"], rules["DOGE/USDT"], rules["BTC/USDT"]
    assert (ltc.lot_step, ltc.min_amount, ltc.min_notional, ltc.tick_size) == (
        0.001,
        0.001,
        5.0,
        0.01,
    )
    assert (doge.lot_step, doge.min_notional, doge.tick_size) == (1.0, 5.0, 0.00001)
    assert (btc.lot_step, btc.tick_size) == (0.00001, 0.01)
    assert ltc.min_order_value(81.62) == 5.0 and doge.min_order_value(10.0) == 10.0


def test_min_notional_filter_name_of_older_exchange_info(live_binance, no_keys):
    """Before 2023 Binance sent MIN_NOTIONAL (minNotional, applyToMarket); it must be read the same way."""
    entry = next(m for m in live_binance.markets if m["symbol"] == "LTCUSDT")
    old = copy.deepcopy(entry)
    for f in old["filters"]:
        if f["filterType"] == "NOTIONAL":
            f.clear()
            f.update(
                filterType="MIN_NOTIONAL",
                minNotional="10.00000000",
                applyToMarket=True,
                avgPriceMins=5,
            )
    live_binance.markets[live_binance.markets.index(entry)] = old
    rules = run(_with(BinanceConnector(), lambda c: c.fetch_markets(["LTC/USDT"])))
    assert rules["LTC/USDT"].min_notional == 10.0 and rules["LTC/USDT"].lot_step == 0.001


def test_unified_limits_when_there_are_no_raw_filters():
    market = {
        "symbol": "ABC/EUR",
        "base": "ABC",
        "quote": "EUR",
        "taker": 0.0026,
        "precision": {"amount": 3, "price": 2},
        "limits": {"amount": {"min": 0.01}, "cost": {"min": 0.5}},
    }
    decimal_places, tick_size = 2, 4  # ccxt.DECIMAL_PLACES, ccxt.TICK_SIZE
    rules = parse_market_rules(market, decimal_places)
    assert (rules.lot_step, rules.tick_size, rules.min_amount, rules.min_notional) == (
        0.001,
        0.01,
        0.01,
        0.5,
    )
    market["precision"] = {"amount": 0.05, "price": 0.5}
    rules = parse_market_rules(market, tick_size)
    assert (rules.lot_step, rules.tick_size, rules.taker_fee) == (0.05, 0.5, 0.0026)


def test_symbol_without_a_market_is_a_clear_error(live_binance, no_keys):
    with pytest.raises(ExchangeError, match=r"unknown symbol 'FOO/USDT' on binance.*ccxt notation"):
        run(_with(BinanceConnector(), lambda c: c.fetch_markets(["FOO/USDT"])))
    with pytest.raises(
        ExchangeError, match=r"unknown symbol 'BTC/USDC' on binance; did you mean 'BTC/USDT'"
    ):
        run(_with(BinanceConnector(), lambda c: c.fetch_prices(["BTC/USDC"])))


def test_prices_and_volumes_from_tickers(live_binance, no_keys):
    tickers = run(_with(BinanceConnector(), lambda c: c.fetch_tickers(["LTC/USDT", "ETH/USDT"])))
    assert tickers["LTC/USDT"].price == 81.62 and tickers["ETH/USDT"].price == 1320.39
    assert tickers["LTC/USDT"].quote_volume == 1e8
    (request,) = live_binance.requests_to("/api/v3/ticker/24hr")  # one request for both
    assert request.params == {"symbols": '["LTCUSDT","ETHUSDT"]'}


def test_read_only_connector_places_no_order(live_binance, keys):
    with pytest.raises(ReadOnlyError, match="read-only: build it with read_only=False"):
        run(_with(BinanceConnector(), lambda c: c.create_limit_order("LTC/USDT", "buy", 0.2, 50)))
    assert not live_binance.requests_to(ORDER_PATH)


def test_orders_need_keys(live_binance, no_keys):
    with pytest.raises(MissingCredentialsError, match="placing orders needs API keys"):
        run(
            _with(
                BinanceConnector(read_only=False),
                lambda c: c.create_limit_order("LTC/USDT", "buy", 0.2, 50),
            )
        )
    assert not live_binance.requests_to(ORDER_PATH)


@pytest.mark.parametrize(
    ("amount", "price", "expected"),
    [(0.2, 50, CCXT_LIMIT_BUY), (0.4234234234, 55.324242343, CCXT_WEIRD_AMOUNT)],
)
def test_limit_order_sends_exactly_the_request_ccxt_specifies(
    live_binance, keys, amount, price, expected
):
    status = run(
        _with(
            BinanceConnector(read_only=False),
            lambda c: c.create_limit_order("LTC/USDT", "buy", amount, price),
        )
    )
    (request,) = live_binance.requests_to(ORDER_PATH)
    assert (request.method, request.host, request.path, request.params) == (
        "POST",
        "api.binance.com",
        ORDER_PATH,
        {},
    )
    assert request.headers["X-MBX-APIKEY"] == API_KEY
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    pairs = parse_qsl(request.body)
    assert [(k, v) for k, v in pairs if k not in SKIP] == expected
    assert pairs[0][0] == "timestamp" and pairs[-1][0] == "signature"
    # signed with the secret: HMAC-SHA256 of everything before "&signature="
    unsigned, signature = request.body.rsplit("&signature=", 1)
    assert signature == hmac.new(API_SECRET.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
    assert (status.symbol, status.side, status.status, status.id) == (
        "LTC/USDT",
        "buy",
        "open",
        "1000",
    )
    assert (status.amount, status.price) == (
        float(dict(expected)["quantity"]),
        float(dict(expected)["price"]),
    )


def test_orders_below_one_lot_are_refused_before_sending(live_binance, keys):
    with pytest.raises(ExchangeError, match="rounds to 0 at the market's lot step"):
        run(
            _with(
                BinanceConnector(read_only=False),
                lambda c: c.create_limit_order("LTC/USDT", "sell", 0.0004, 80),
            )
        )
    assert not live_binance.requests_to(ORDER_PATH)


def test_a_connector_survives_a_second_event_loop(live_binance, no_keys):
    connector = BinanceConnector()
    first = run(connector.fetch_prices(["LTC/USDT"]))
    second = run(_with(connector, lambda c: c.fetch_prices(["LTC/USDT"])))
    assert first == second == {"LTC/USDT": 81.62}


def test_generic_connector_quote_and_no_pickling(no_keys):
    import pickle

    connector = ExchangeConnector("kraken", quote="eur")
    assert connector.symbol("BTC") == "BTC/EUR" and not connector.has_credentials
    assert "keys=absent" in repr(connector)
    with pytest.raises(TypeError, match="holds API keys and cannot be pickled"):
        pickle.dumps(connector)
    with pytest.raises(
        ExchangeError, match="`quote` must be a currency code such as 'USDT'; got 'US/DT'"
    ):
        ExchangeConnector("binance", quote="US/DT")
