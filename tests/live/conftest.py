"""Fixtures for the live analyzer: an offline Binance (recorded payloads + real daily candles),
test API keys in the environment, a Parquet store in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets.store import OHLCVStore
from tests.datasets.ccxt_fake import binance_server
from tests.live.ccxt_fixtures import (
    ACCOUNT_PATH,
    ORDER_PATH,
    TICKER_PATH,
    balance_payload,
    derived_ticker,
    install_live,
    order_route,
    tickers_route,
)

# distinctive strings, so a leak anywhere is easy to find
API_KEY = "tEsTkEy0vZ9qL3xW7mN1pR5sT8uY2aB4cD6eF0gH"
API_SECRET = "tEsTsEcReT4jK8lM2nP6qR0sT3uV7wX1yZ5aB9cD"


def last_close(server, market_id: str) -> float:
    """Close of the last daily candle the fake exchange serves for ``market_id`` (2023-01-09)."""
    return float(server.candles[(market_id, "1d")][1][-1, 3])


@pytest.fixture
def keys(monkeypatch) -> tuple[str, str]:
    monkeypatch.setenv("EXCHANGE_API_KEY", API_KEY)
    monkeypatch.setenv("EXCHANGE_API_SECRET", API_SECRET)
    return API_KEY, API_SECRET


@pytest.fixture
def no_keys(monkeypatch) -> None:
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("EXCHANGE_API_SECRET", raising=False)


@pytest.fixture
def live_store(tmp_path: Path) -> OHLCVStore:
    return OHLCVStore(tmp_path / "store")


@pytest.fixture
def live_binance(shared_data: Path, exchange_fixtures: Path):
    """ccxt's Binance (async: real ``fetch`` over a fake aiohttp session; sync: the datasets harness)
    answering offline: recorded balance and exchangeInfo, tickers at each pair's last daily close
    (2023-01-09), daily klines from the real candles, and order placement. Yields the server."""
    server = binance_server(shared_data, intervals=("1d",))
    tickers = {
        m["symbol"]: derived_ticker(exchange_fixtures, m["symbol"], last_close(server, m["symbol"]))
        for m in server.markets
        if (m["symbol"], "1d") in server.candles
    }
    server.route(TICKER_PATH, tickers_route(tickers))
    server.route(ACCOUNT_PATH, balance_payload(exchange_fixtures))
    server.route(ORDER_PATH, order_route(), method="POST")
    server.tickers = tickers
    with install_live(server):
        yield server
