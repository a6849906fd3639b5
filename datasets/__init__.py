"""Market data: the Parquet OHLCV store, ccxt fetching, CSV import and synthetic markets.

This is AlphaPulse Backtest's ``datasets`` package, not the Hugging Face ``datasets`` library.
Nothing here knows about strategies or the engine.
"""

from datasets.connectors import BinanceConnector, ExchangeConnector
from datasets.csvimport import load_csv, shared_data_dir
from datasets.errors import DataError, ExchangeError, StoreCorruptError
from datasets.exchange import make_exchange
from datasets.fetch import FetchReport, ensure_history, fetch_ohlcv
from datasets.panel import MarketData
from datasets.store import OHLCVStore
from datasets.synthetic import synthetic_market
from datasets.timeframe import days_to_bars, periods_per_year, timeframe_to_ms

__all__ = [
    "BinanceConnector",
    "DataError",
    "ExchangeConnector",
    "ExchangeError",
    "FetchReport",
    "MarketData",
    "OHLCVStore",
    "StoreCorruptError",
    "days_to_bars",
    "ensure_history",
    "fetch_ohlcv",
    "load_csv",
    "make_exchange",
    "periods_per_year",
    "shared_data_dir",
    "synthetic_market",
    "timeframe_to_ms",
]
