"""Market data: the Parquet OHLCV store, ccxt fetching, CSV import and synthetic markets.

This is AlphaPulse Backtest's ``datasets`` package, not the Hugging Face ``datasets`` library.
Nothing here knows about strategies or the engine.
"""

from datasets.csvimport import load_csv, shared_data_dir
from datasets.errors import DataError, ExchangeError, StoreCorruptError
from datasets.panel import MarketData
from datasets.synthetic import synthetic_market
from datasets.timeframe import days_to_bars, periods_per_year, timeframe_to_ms

__all__ = [
    "DataError",
    "ExchangeError",
    "MarketData",
    "StoreCorruptError",
    "days_to_bars",
    "load_csv",
    "periods_per_year",
    "shared_data_dir",
    "synthetic_market",
    "timeframe_to_ms",
]
