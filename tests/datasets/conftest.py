"""Fixtures for the store and the offline ccxt harness (see ``tests/datasets/ccxt_fake.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets.store import OHLCVStore
from tests.datasets.ccxt_fake import FakeExchangeServer, binance_server, install


@pytest.fixture
def store(tmp_path: Path) -> OHLCVStore:
    return OHLCVStore(tmp_path / "store")


@pytest.fixture
def fake_binance(shared_data: Path, monkeypatch):
    """ccxt.binance / ccxt.async_support.binance answered offline from the recorded payloads and the
    real candles; yields the server (request log, failure injection, clock). Keys from the
    environment are hidden so tests see the public (key-less) behaviour unless they pass keys."""
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("EXCHANGE_API_SECRET", raising=False)
    server = binance_server(shared_data)
    with install(server):
        yield server


@pytest.fixture
def fake_server_factory(shared_data: Path):
    """Build extra servers (e.g. with another clock) without installing them."""

    def make(**kwargs) -> FakeExchangeServer:
        return binance_server(shared_data, **kwargs)

    return make
