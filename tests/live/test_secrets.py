"""API key and secret never appear in a log record (ccxt's debug log and its ``verbose`` output
included), printed output, an exception (message, repr, traceback, chain) or a repr, also when the
exchange rejects the keys (HTTP 401) and when its error body echoes them."""

from __future__ import annotations

import asyncio
import logging
import traceback

import pytest

from backtest.live import PortfolioAnalyzer
from datasets import BinanceConnector
from datasets.connectors import ExchangeAuthError
from tests.datasets.ccxt_fake import HttpError
from tests.live.ccxt_fixtures import ACCOUNT_PATH, ORDER_PATH
from tests.live.conftest import API_KEY, API_SECRET

pytestmark = pytest.mark.shared

REJECTED = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


def _texts(caplog, capsys, *objects) -> list[str]:
    out, err = capsys.readouterr()
    texts = [out, err, caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), str(record.msg), str(record.args)]
    for obj in objects:
        texts += [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            texts.append("".join(traceback.format_exception(obj)))
    return texts


def _assert_clean(texts: list[str]) -> None:
    for text in texts:
        assert API_KEY not in text and API_SECRET not in text, text[:500]


async def _session(connector, *calls):
    async with connector:
        for call in calls:
            await call(connector)


def test_no_secret_in_logs_verbose_output_or_reprs(live_binance, keys, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    connector = BinanceConnector(read_only=False, config={"verbose": True})
    analyzer = PortfolioAnalyzer(exchange=connector, lookback_days=30)
    asyncio.run(
        _session(
            connector,
            lambda c: c.fetch_balances(),
            lambda c: c.create_limit_order("LTC/USDT", "buy", 0.2, 50),
        )
    )
    # ccxt did log and print the signed requests (the key travels in a header): masked, not absent
    masked = [r for r in caplog.records if "***" in r.getMessage()]
    assert any(r.name == "ccxt.base.exchange" for r in masked)  # ccxt's debug log
    assert any(
        r.name == "datasets.connectors" and "fetch Request" in r.getMessage() for r in masked
    )  # verbose
    assert (
        live_binance.requests_to(ORDER_PATH)[0].headers["X-MBX-APIKEY"] == API_KEY
    )  # it was really sent
    _assert_clean(_texts(caplog, capsys, connector, analyzer))


@pytest.mark.parametrize(
    "body",
    [REJECTED, {"code": -2015, "msg": f"Invalid API-key {API_KEY} / {API_SECRET}"}],
    ids=["binance-401", "401-echoing-the-keys"],
)
def test_authentication_error_is_clear_and_clean(live_binance, keys, caplog, capsys, body):
    caplog.set_level(logging.DEBUG)
    live_binance.route(ACCOUNT_PATH, HttpError(401, body, reason="Unauthorized"))
    connector = BinanceConnector(config={"verbose": True})
    with pytest.raises(
        ExchangeAuthError,
        match=r"binance rejected the API keys during fetch_balance .*-2015.*"
        r"check EXCHANGE_API_KEY / EXCHANGE_API_SECRET",
    ) as info:
        asyncio.run(_session(connector, lambda c: c.fetch_balances()))
    error = info.value
    assert error.__context__ is None and error.__cause__ is None  # ccxt's exception is not chained
    assert any(
        "-2015" in r.getMessage() for r in caplog.records
    )  # the response was logged (masked)
    _assert_clean(_texts(caplog, capsys, error, connector))


def test_analyzer_errors_and_results_hold_no_secret(live_binance, keys, caplog, capsys, live_store):
    caplog.set_level(logging.DEBUG)
    connector = BinanceConnector()
    analyzer = PortfolioAnalyzer(connector, lookback_days=30, store=live_store)

    async def scenario():
        async with connector:
            current = await analyzer.get_current_allocation()
            result = await analyzer.analyze_portfolio()
            return current, result

    current, result = asyncio.run(scenario())
    plan = analyzer.get_rebalancing_trades(current, result.weights, analyzer.total_value)
    _assert_clean(
        _texts(caplog, capsys, analyzer, result, plan, plan.as_dict(), result.diagnostics)
    )
