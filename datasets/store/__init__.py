"""The Parquet OHLCV store: one folder per exchange, timeframe and symbol, decade partition files.

Modules: :mod:`~datasets.store.ohlcv` (the :class:`OHLCVStore` itself: writes, reads, coverage),
:mod:`~datasets.store.format` (file layout, schema, codecs, symbol names, atomic writes),
:mod:`~datasets.store.panel` (the fast multi-file panel reader), :mod:`~datasets.store.verify`
(verify and repair), :mod:`~datasets.store.lock` (writer locks) and
:mod:`~datasets.store.intervals` (bar-range arithmetic for coverage). Layout: docs/data.md.
"""

from datasets.store.format import (
    FILE_NAME,
    SCHEMA_VERSION,
    decode_symbol,
    encode_symbol,
    to_utc_ms,
)
from datasets.store.ohlcv import SERIES_META, OHLCVStore, read_hints

__all__ = [
    "FILE_NAME",
    "SCHEMA_VERSION",
    "SERIES_META",
    "OHLCVStore",
    "decode_symbol",
    "encode_symbol",
    "read_hints",
    "to_utc_ms",
]
