"""The live connector without network: one line naming the network and the exchange (ccxt's async
flavour raises ExchangeNotAvailable from the socket error, the same class it uses for a 5xx)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from backtest.cli import main
from datasets.connectors import BinanceConnector
from datasets.errors import ExchangeUnavailableError
from tests.cli.test_rebalance_cli import live_config
from tests.datasets.ccxt_fake import HttpError

pytestmark = pytest.mark.shared

DNS = socket.gaierror(-3, "Temporary failure in name resolution")


async def _tickers() -> object:
    async with BinanceConnector() as connector:
        return await connector.fetch_tickers(["LTC/USDT"])


def test_dns_failure_names_the_network(live_binance, no_keys):
    live_binance.fail(DNS, times=100)
    with pytest.raises(ExchangeUnavailableError) as caught:
        asyncio.run(_tickers())
    assert str(caught.value).startswith("binance ")
    assert ": network unreachable (ccxt ExchangeNotAvailable: binance GET https://" in str(
        caught.value
    )
    assert str(caught.value).endswith("; check your connection or proxy")


def test_a_5xx_is_an_outage_not_the_network(live_binance, no_keys):
    live_binance.fail(
        HttpError(503, "Service Unavailable", reason="Service Unavailable"), times=100
    )
    with pytest.raises(ExchangeUnavailableError, match=r"exchange outage or rate limit; try again"):
        asyncio.run(_tickers())


def test_rebalance_without_network_is_one_line(live_binance, keys, tmp_path, capsys):
    live_binance.fail(DNS, times=100)
    code = main(["rebalance", live_config(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("error: binance ") and "network unreachable" in line
    assert line.endswith("check your connection or proxy") and "Errno" not in out + err, line
