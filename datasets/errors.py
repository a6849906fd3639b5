"""Exceptions of the `datasets` package (one flat module)."""

from __future__ import annotations


class DataError(ValueError):
    """Market data is missing, malformed or does not cover what was asked for."""


class StoreCorruptError(DataError):
    """A file in the Parquet store cannot be read or is inconsistent; run `backtest data verify --repair`."""


class ExchangeError(DataError):
    """An exchange id, symbol or timeframe is not available, or the exchange refused a request."""


class MissingCredentialsError(ExchangeError):
    """A private endpoint (balances, orders) was called without API keys."""


class ExchangeAuthError(ExchangeError):
    """The exchange rejected the API keys (or their permissions / IP whitelist)."""


class ReadOnlyError(ExchangeError):
    """An order was requested from a read-only connector."""


class ExchangeUnavailableError(ConnectionError):
    """A network error, timeout or exchange outage (retry later; not a problem with the input)."""
