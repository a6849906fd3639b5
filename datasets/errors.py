"""Exceptions of the `datasets` package (one flat module)."""

from __future__ import annotations


class DataError(ValueError):
    """Market data is missing, malformed or does not cover what was asked for."""


class StoreCorruptError(DataError):
    """A file in the Parquet store cannot be read or is inconsistent; run `backtest data verify --repair`."""


class ExchangeError(DataError):
    """An exchange id, symbol or timeframe is not available, or the exchange refused a request."""
