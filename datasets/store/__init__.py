"""The Parquet OHLCV store: one folder per exchange, timeframe and symbol, decade partition files.

Modules: :mod:`~datasets.store.ohlcv` (the :class:`OHLCVStore` itself: catalogue, writes, reads),
:mod:`~datasets.store.format` (file layout, schema, codecs, symbol names, atomic writes),
:mod:`~datasets.store.coverage` (the ``_series.json`` hints: which bars are held completely, what
a fetch still needs), :mod:`~datasets.store.panel` (the fast multi-file panel reader),
:mod:`~datasets.store.verify` (verify and repair), :mod:`~datasets.store.lock` (writer locks) and
:mod:`~datasets.store.intervals` (bar-range arithmetic for coverage). Layout: docs/data.md.
"""

from datasets.store.coverage import SERIES_META
from datasets.store.format import (
    FILE_NAME,
    SCHEMA_VERSION,
    decode_symbol,
    encode_symbol,
    to_utc_ms,
)
from datasets.store.ohlcv import OHLCVStore

__all__ = [
    "FILE_NAME",
    "SCHEMA_VERSION",
    "SERIES_META",
    "OHLCVStore",
    "decode_symbol",
    "encode_symbol",
    "to_utc_ms",
]
