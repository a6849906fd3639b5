"""The store's file format: names, the Parquet schema and column codec, atomic file I/O.

* Symbol folder names: :func:`encode_symbol` / :func:`decode_symbol` (path-safe, reversible).
* Columns: ``timestamp_ms`` int64 (UTC ms of the bar open) and ``open, high, low, close, volume``.
  Each price column is an exact decimal (Parquet ``DECIMAL(18, s)`` on INT64, delta-encoded) with
  the smallest scale ``s`` for which ``integer / 10**s`` gives back the float64 values bit for bit,
  else float64 (byte-stream-split + zstd). Readers always get float64.
* Files are written to a temp file, fsynced and ``os.replace``d (:func:`atomic_write`).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from datasets.errors import DataError, StoreCorruptError
from datasets.timeframe import timeframe_to_ms

SCHEMA_VERSION = 1
FIELDS = ("open", "high", "low", "close", "volume")
FILE_NAME = "data.parquet"
META_KEY = b"alphapulse"
REPAIR_HINT = "run `backtest data verify --repair`"
MAX_SCALE = 12
_EXACT_INT = 2**53
_WRITE_OPTIONS = {
    "use_dictionary": False,
    "store_decimal_as_integer": True,
    "write_statistics": ["timestamp_ms"],
}
_ENCODED = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+")
_PARTITION = re.compile(r"year=(\d{4})|years=(\d{4})-(\d{4})")
PARTITION_ROWS = 100_000
YEAR_MS = 365.25 * 86_400_000

Candles = tuple[
    np.ndarray, dict[str, np.ndarray]
]  # (timestamp_ms int64 (n,), field -> float64 (n,))


# ---------------------------------------------------------------------------------- names and times
def encode_symbol(symbol: str) -> str:
    """Path-safe, reversible directory name of a symbol: ``"BTC/USDT"`` -> ``"BTC_USDT"``.

    ``/`` becomes ``_``; letters, digits and ``-`` stay; every other character (``_``, ``:``,
    ``.``, ...) is percent-encoded, so ``decode_symbol(encode_symbol(s)) == s`` and no name can
    climb out of the store.

    >>> encode_symbol("BTC/USDT:USDT")
    'BTC_USDT%3AUSDT'
    """
    bad = (
        not isinstance(symbol, str)
        or not symbol
        or len(symbol) > 100
        or ".." in symbol
        or symbol[0] in "/."
        or any(ord(c) < 32 or c == "\\" for c in symbol)
    )
    if bad:
        raise DataError(f"`symbol` must be a market symbol such as 'BTC/USDT'; got {symbol!r}")
    out = []
    for ch in symbol:
        if ch == "/":
            out.append("_")
        elif ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode())
    return "".join(out)


def decode_symbol(name: str) -> str:
    """Inverse of :func:`encode_symbol`; rejects names it would never produce.

    >>> decode_symbol("BTC_USDT")
    'BTC/USDT'
    """
    try:
        symbol = (
            unquote(name.replace("_", "/"), errors="strict") if _ENCODED.fullmatch(name) else None
        )
    except UnicodeDecodeError:
        symbol = None
    if symbol is None or encode_symbol(symbol) != name:
        raise DataError(f"{name!r} is not a symbol directory written by the store")
    return symbol


def to_utc_ms(value: object, name: str = "time") -> int:
    """UTC epoch milliseconds of a date/time (str, datetime, Timestamp, or int milliseconds)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        ts = pd.Timestamp(cast(Any, value))  # any object: a bad one raises, caught below
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"`{name}` must be a date such as '2020-01-01' or '2020-01-01 12:00'; got {value!r}"
        ) from exc
    if ts is pd.NaT:
        raise DataError(f"`{name}` must be a date such as '2020-01-01'; got {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def fmt_ms(ms: int | None) -> str:
    return "-" if ms is None else f"{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M}"


def years_of(ts: np.ndarray) -> np.ndarray:
    return ts.astype("datetime64[ms]").astype("datetime64[Y]").astype(np.int64) + 1970


def year_bounds(year: int) -> tuple[int, int]:
    lo = int(np.datetime64(f"{year}-01-01", "ms").astype(np.int64))
    return lo, int(np.datetime64(f"{year + 1}-01-01", "ms").astype(np.int64)) - 1


# ---------------------------------------------------------------------------------- partitions
def partition_years(timeframe: str) -> int:
    """Calendar years per partition file of a timeframe: the longest of 10, 5, 2 and 1 years whose
    candles stay within :data:`PARTITION_ROWS` (10 for ``1h`` and longer bars, 5 for ``30m``, 2 for
    ``15m``, 1 for ``5m`` and shorter).

    Few, large files load fast (Arrow's cost per file, not per row, dominated 24 hourly series in
    yearly files); capping the rows keeps an incremental write (which rewrites the partition it
    touches) cheap.
    """
    per_year = YEAR_MS / timeframe_to_ms(timeframe)
    return next((n for n in (10, 5, 2) if n * per_year <= PARTITION_ROWS), 1)


def partition_name(first_year: int, span: int) -> str:
    """Folder of the partition starting at ``first_year``: ``year=2024`` or ``years=2020-2029``."""
    return f"year={first_year}" if span == 1 else f"years={first_year}-{first_year + span - 1}"


def parse_partition(name: str) -> tuple[int, int] | None:
    """``(first_year, last_year)`` of a partition folder name, or None when it is not one."""
    match = _PARTITION.fullmatch(name)
    if match is None:
        return None
    first, last = (int(match[1]),) * 2 if match[1] else (int(match[2]), int(match[3]))
    return (first, last) if first <= last else None


def follows_layout(name: str, span: int) -> bool:
    """True for a partition folder of the ``span``-year layout (``years=2020-2029`` for 10)."""
    years = parse_partition(name)
    return years is not None and name == partition_name(years[0] - years[0] % span, span)


def partition_of(ts: np.ndarray, span: int) -> np.ndarray:
    """First year of the partition each timestamp (UTC ms) belongs to."""
    years = years_of(ts)
    return years - (years % span)


def partition_files(series: Path) -> dict[tuple[int, int], Path]:
    """``{(first year, last year): file}`` of every partition folder of the series folder
    ``series`` that holds a file, of any span, in time order (empty when ``series`` is missing)."""
    files: dict[tuple[int, int], Path] = {}
    try:
        entries = list(os.scandir(series))
    except (FileNotFoundError, NotADirectoryError):
        return files
    for entry in entries:
        years = parse_partition(entry.name)
        if years is not None and os.path.isfile(path := Path(entry.path, FILE_NAME)):
            files[years] = path
    return dict(sorted(files.items()))


def file_span(path: Path) -> tuple[int, int | None, int | None]:
    """``(rows, first_ms, last_ms)`` of a partition file from its Parquet footer statistics (no
    data read); a `StoreCorruptError` naming the file and the repair command when unreadable."""
    try:
        md = pq.read_metadata(path)
        stats = [md.row_group(i).column(0).statistics for i in range(md.num_row_groups)]
        stats = [s for s in stats if s is not None and s.has_min_max]
        first = min((int(s.min) for s in stats), default=None)
        last = max((int(s.max) for s in stats), default=None)
        return md.num_rows, first, last
    except (OSError, pa.ArrowException) as exc:
        raise StoreCorruptError(
            f"corrupt store file {path}: {str(exc).splitlines()[0]}; {REPAIR_HINT}"
        ) from exc


# ---------------------------------------------------------------------------------- column codec
def encode_column(values: np.ndarray) -> pa.Array:
    """Exact decimal (smallest scale that round-trips bit for bit) or float64 as the fallback."""
    if len(values) and np.isfinite(values).all():
        peak = np.abs(values).max()
        for scale in range(MAX_SCALE + 1):
            if peak * 10.0**scale >= _EXACT_INT:
                break
            ints = np.rint(values * 10.0**scale).astype(np.int64)
            # the decoder's very expression, on the integers stored; bits, so -0.0 falls back
            if np.array_equal((ints / 10.0**scale).view(np.int64), values.view(np.int64)):
                buf = pa.py_buffer(ints)
                return pa.Array.from_buffers(pa.decimal64(18, scale), len(values), [None, buf])
    return pa.array(values, pa.float64())


def _single_chunk(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def column_parts(
    column: pa.ChunkedArray | pa.Array, lo: int = 0, hi: int | None = None
) -> tuple[np.ndarray, float]:
    """Rows ``[lo:hi]`` of a stored column, undecoded and without a copy: ``(unscaled int64
    decimals, 10.0**scale)``, or ``(float64 values, 0.0)`` for a float64 column."""
    arr = _single_chunk(column)
    hi = len(arr) if hi is None else hi
    kind = arr.type
    if pa.types.is_decimal(kind):
        words = np.frombuffer(arr.buffers()[1], dtype=np.int64)
        if kind.byte_width == 16:  # decimal128 from an older pyarrow: low word (little endian)
            words = words[::2]
        return words[arr.offset + lo : arr.offset + hi], 10.0**kind.scale
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)[lo:hi], 0.0


def decode_column(
    column: pa.ChunkedArray | pa.Array,
    lo: int = 0,
    hi: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """float64 values ``[lo:hi]`` of a stored column, written into ``out`` when given.

    Decimal columns decode as ``integer / 10**scale``: the exact inverse of :func:`encode_column`,
    which only chose that scale after checking this very expression gives the original floats.
    """
    raw, divisor = column_parts(column, lo, hi)
    if divisor:
        return np.divide(raw, divisor, out=out)
    if out is None:
        return raw.copy()
    out[...] = raw
    return out


def make_table(ts: np.ndarray, values: dict[str, np.ndarray], meta: dict) -> pa.Table:
    arrays = [pa.array(ts, pa.int64())] + [encode_column(values[c]) for c in FIELDS]
    fields = [
        pa.field(n, a.type, nullable=False)
        for n, a in zip(("timestamp_ms", *FIELDS), arrays, strict=True)
    ]
    schema = pa.schema(fields, metadata={META_KEY: json.dumps(meta).encode()})
    return pa.Table.from_arrays(arrays, schema=schema)


def write_options(schema: pa.Schema) -> dict:
    """Integer and decimal columns: delta-encoded, uncompressed (zstd shrinks them by ~1% more but
    costs ~40% of the read time). float64 fallback columns: byte-stream-split + zstd."""
    packed = {f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_decimal(f.type)}
    return {
        "column_encoding": {
            f.name: "DELTA_BINARY_PACKED" if f.name in packed else "BYTE_STREAM_SPLIT"
            for f in schema
        },
        "compression": {f.name: "none" if f.name in packed else "zstd" for f in schema},
        **_WRITE_OPTIONS,
    }


def atomic_write(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` in the store's encoding, atomically (:func:`write_atomic`)."""
    write_atomic(path, lambda fh: pq.write_table(table, fh, **write_options(table.schema)))


def write_atomic(path: Path, write: Callable[[Any], Any]) -> None:
    """Call ``write(fh)`` on a binary temp file beside ``path``, fsync it, ``os.replace`` it onto
    ``path`` and fsync the folder: a reader (or a crash) sees the old file or the new one, never
    half of it; the temp file is removed when ``write`` fails. Used by the store and the live
    journal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_table(path: Path, columns: Sequence[str] | None = None) -> tuple[pa.Table, dict]:
    """Read and type-check one partition file -> ``(table, metadata)``.

    Any failure is a `StoreCorruptError` naming the file and the repair command.
    """
    try:
        handle = pq.ParquetFile(
            path, pre_buffer=False
        )  # per-file buffering costs more than it saves on small files
        table = handle.read(columns=columns, use_threads=False)
        for name in columns or ("timestamp_ms", *FIELDS):
            kind = table.schema.field(name).type
            ok = (
                kind == pa.int64()
                if name == "timestamp_ms"
                else (pa.types.is_decimal(kind) or pa.types.is_floating(kind))
            )
            if not ok:
                raise TypeError(f"column {name} has type {kind}")
        return table, json.loads((handle.metadata.metadata or {}).get(META_KEY, b"{}"))
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise StoreCorruptError(f"corrupt store file {path}: {reason}; {REPAIR_HINT}") from exc


def read_meta(path: Path) -> dict:
    """The metadata of a partition file from its footer (no data read); ``{}`` when unreadable."""
    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY, b"{}")
        return json.loads(raw)
    except (OSError, pa.ArrowException, ValueError):
        return {}


def read_file(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """One whole partition file -> ``(timestamp_ms, values, metadata)``."""
    table, meta = read_table(path)
    ts = np.array(table.column("timestamp_ms").to_numpy(), dtype=np.int64)
    return ts, {c: decode_column(table.column(c)) for c in FIELDS}, meta


def dedupe(ts: np.ndarray, values: dict[str, np.ndarray]) -> Candles:
    """Sort by time; of rows with equal timestamps keep the last one given."""
    order = np.argsort(ts, kind="stable")
    ts_sorted = ts[order]
    last = np.ones(len(ts), dtype=bool)
    last[:-1] = ts_sorted[1:] != ts_sorted[:-1]
    pick = order[last]
    return ts[pick], {c: v[pick] for c, v in values.items()}


def candles_from_frame(frame: pd.DataFrame) -> Candles:
    missing = [c for c in ("timestamp_ms", *FIELDS) if c not in frame.columns]
    if missing:
        raise DataError(
            f"candle frame lacks column(s) {missing}; expected timestamp_ms, {', '.join(FIELDS)}"
        )
    ts = frame["timestamp_ms"].to_numpy()
    if not np.issubdtype(ts.dtype, np.integer):
        raise DataError(f"`timestamp_ms` must hold integer milliseconds; got dtype {ts.dtype}")
    ts = ts.astype(np.int64)
    years = years_of(ts)
    # seconds read as milliseconds land before 1970-04-27 (10**10 ms); us and ns after 9999
    bad = (years < 1000) | (years > 9999) | ((ts >= 0) & (ts < 10**10))
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(
            f"`timestamp_ms` must be UTC milliseconds of a bar in the years 1000-9999, not in "
            f"1970-01-01..1970-04-26; got {ts[k]} (year {years[k]}): are these seconds, "
            "microseconds or nanoseconds?"
        )
    values = {c: frame[c].to_numpy(dtype=np.float64) for c in FIELDS}
    return dedupe(ts, values)


def concat_candles(parts: Sequence[Candles]) -> Candles:
    ts = np.concatenate([p[0] for p in parts])
    return ts, {c: np.concatenate([p[1][c] for p in parts]) for c in FIELDS}
