"""Shared fixtures. Tests that need the shared reference data skip with a clear reason when it is
absent, and the terminal summary counts them.

The data folder is found by one rule, :func:`datasets.shared_data_dir` (``$ALPHAPULSE_SHARED_DATA``,
else ``../shared/data``), which the benchmarks use too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from datasets import shared_data_dir

# CI explores the same examples on every run (a red build is reproducible, never a lucky draw);
# local runs keep hypothesis' random exploration and its failure database.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = shared_data_dir()
# what the fixtures and the offline exchange harness read from the folder
SHARED_FILES = ("binance_spot_usdt_1d.csv.gz", "binance_spot_usdt_1h.csv.gz", "exchange-fixtures")
MISSING_DATA = "needs the shared reference data"  # every such skip reason starts with this


def _require(*names: str) -> Path:
    """The shared data folder, or skip naming what is missing and where it was looked for."""
    where = SHARED_DATA or "../shared/data"
    missing = [n for n in names if SHARED_DATA is None or not (SHARED_DATA / n).exists()]
    if missing:
        pytest.skip(
            f"{MISSING_DATA} ({', '.join(missing)}) in {where}: "
            "set ALPHAPULSE_SHARED_DATA to the folder that holds it"
        )
    assert SHARED_DATA is not None
    return SHARED_DATA


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("shared") is not None:
        _require(*SHARED_FILES)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if isinstance(r.longrepr, tuple) and MISSING_DATA in str(r.longrepr[2])
    ]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} tests skipped for missing shared data (looked in "
            f"{SHARED_DATA or '../shared/data'}; set ALPHAPULSE_SHARED_DATA to the data folder)",
            yellow=True,
        )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (real Binance candles, US stocks, ccxt fixtures)."""
    return _require(*SHARED_FILES)


@pytest.fixture(scope="session")
def daily_csv(shared_data: Path) -> Path:
    return shared_data / "binance_spot_usdt_1d.csv.gz"


@pytest.fixture(scope="session")
def hourly_csv(shared_data: Path) -> Path:
    return shared_data / "binance_spot_usdt_1h.csv.gz"


@pytest.fixture(scope="session")
def exchange_fixtures(shared_data: Path) -> Path:
    return shared_data / "exchange-fixtures"


@pytest.fixture(scope="session")
def daily_market(daily_csv: Path):
    """The 26 pairs fully listed from 2019-11-28 onward, through the end of the daily file."""
    from datasets import load_csv

    return load_csv(daily_csv, start="2019-11-28").drop_empty()
