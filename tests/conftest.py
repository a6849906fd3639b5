"""Shared fixtures. Tests that need ../shared/data skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples on every run (a red build is reproducible, never a lucky draw);
# local runs keep hypothesis' random exploration and its failure database.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs the shared reference data at {path} (absent on this machine)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real Binance candles, US stocks, ccxt fixtures)."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def daily_csv(shared_data: Path) -> Path:
    return _require(shared_data / "binance_spot_usdt_1d.csv.gz")


@pytest.fixture(scope="session")
def hourly_csv(shared_data: Path) -> Path:
    return _require(shared_data / "binance_spot_usdt_1h.csv.gz")


@pytest.fixture(scope="session")
def exchange_fixtures(shared_data: Path) -> Path:
    return _require(shared_data / "exchange-fixtures")


@pytest.fixture(scope="session")
def daily_market(daily_csv: Path):
    """The 26 pairs fully listed from 2019-11-28 onward, through the end of the daily file."""
    from datasets import load_csv

    return load_csv(daily_csv, start="2019-11-28").drop_empty()
