"""Partition files -> candles or an aligned panel (the loader's hot path; :mod:`datasets.store`
finds and opens the files).

:func:`panel_from_files` copies the files' raw columns (bar open times and unscaled decimal
integers, undecoded) into one ``(1 + fields, rows)`` int64 block, then builds the
``(n_bars, n_assets)`` arrays in one numba pass that divides by ``10**scale`` (the exact inverse of
the encoder) as it writes. The pass walks the bar grid in blocks of :data:`BLOCK` bars so the cells
it scatters each symbol's rows into stay in cache. (Decoding into long float arrays first, then
scattering with NumPy and transposing, took half as long again; handing numba the per-file Arrow
buffers as typed lists saved the copy but compiled list code in every new process, ~0.3 s.)
Anything unexpected -- a timestamp off the grid, out of order, duplicated -- makes the kernel
return False and the caller falls back to :func:`panel_from_rows` (through
:meth:`MarketData.from_long`, which says what is wrong), as it does for files that hold invalid
candles.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
from numba import njit

from datasets.panel import MarketData
from datasets.store.format import column_parts, decode_column
from datasets.timeframe import timeframe_to_ms
from datasets.validate import split_invalid

log = logging.getLogger(__name__)

BLOCK = 1024  # bars per block: 1024 x 24 assets x 5 fields x 8 bytes ~ 1 MB, an L2 cache


class FileSlice(NamedTuple):
    """One opened partition file: ``owner`` (the symbol's position), the Arrow ``table``, its
    timestamps ``ts``, the rows ``lo:hi`` inside the requested bounds and its ``meta``data."""

    owner: int
    table: pa.Table
    ts: np.ndarray
    lo: int
    hi: int
    meta: dict

    @property
    def rows(self) -> int:
        return self.hi - self.lo


class Columns(NamedTuple):
    """Candles of several files concatenated in symbol order, then time order: ``owners`` and
    ``sizes`` per file (symbol position, rows), ``ts`` and ``values`` per row."""

    owners: np.ndarray
    sizes: np.ndarray
    ts: np.ndarray
    values: dict[str, np.ndarray]

    def symbol_rows(self, n_symbols: int) -> np.ndarray:
        """Rows per symbol (int64, length ``n_symbols``)."""
        return np.bincount(self.owners, weights=self.sizes, minlength=n_symbols).astype(np.int64)


def concat_columns(files: Sequence[FileSlice], fields: Sequence[str]) -> Columns:
    """Decode ``fields`` of every file into one long array each (for reads and gap listings)."""
    sizes = np.array([f.rows for f in files], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ts = np.empty(int(offsets[-1]), dtype=np.int64)
    values = {c: np.empty(len(ts)) for c in fields}
    for f, o in zip(files, offsets[:-1], strict=True):
        ts[o : o + f.rows] = f.ts[f.lo : f.hi]
        for c in fields:
            decode_column(f.table.column(c), f.lo, f.hi, out=values[c][o : o + f.rows])
    return Columns(np.array([f.owner for f in files], dtype=np.int64), sizes, ts, values)


@njit(cache=True, nogil=True)
def align_nb(raw, floats, starts, divisors, bounds, first_ms, step, out):
    """Write every file's candles into ``out`` (one ``(n_bars, n_assets)`` array per field).

    File ``f`` is columns ``starts[f]:starts[f + 1]`` of ``raw``; files ``bounds[j]:bounds[j + 1]``
    hold symbol ``j``'s rows, in time order. ``raw[0]`` are the bar open times, which must lie on
    the grid ``first_ms + t * step``, strictly increasing per symbol; field ``k`` is
    ``raw[1 + k] / divisors[f, k]`` (unscaled decimals), or ``floats[k]`` where
    ``divisors[f, k] == 0``. Cells without a candle are NaN. Returns False when a timestamp is off
    the grid, unsorted or duplicated (``out`` is then incomplete).
    """
    n_bars, n_assets = out[0].shape
    n_fields = len(out)
    cur = bounds[:-1].copy()  # file being read, per symbol
    pos = starts[cur]  # next row, per symbol
    last = np.full(n_assets, -1, dtype=np.int64)  # last bar written, per symbol
    rows = np.empty(BLOCK, dtype=np.int64)
    for b0 in range(0, n_bars, BLOCK):
        b1 = min(b0 + BLOCK, n_bars)
        for k in range(n_fields):
            out[k][b0:b1] = np.nan
        for j in range(n_assets):
            f, p = cur[j], pos[j]
            while f < bounds[j + 1]:
                end = starts[f + 1]
                n = 0
                while p + n < end and n < BLOCK:
                    offset = raw[0, p + n] - first_ms
                    t = offset // step
                    if t >= b1:
                        break
                    if t * step != offset or t <= last[j]:
                        return False
                    rows[n] = t
                    last[j] = t
                    n += 1
                for k in range(n_fields):
                    d = divisors[f, k]
                    col = out[k]
                    if d != 0.0:
                        for i in range(n):
                            col[rows[i], j] = raw[1 + k, p + i] / d
                    else:
                        for i in range(n):
                            col[rows[i], j] = floats[k, p + i]
                p += n
                if p < end:
                    break  # the file goes on in the next block
                f += 1
            cur[j], pos[j] = f, p
    return bool(np.all(cur >= bounds[1:]))  # False: rows left over beyond the grid


def panel_from_files(
    files: Sequence[FileSlice],
    names: Sequence[str],
    timeframe: str,
    source: str,
    fields: Sequence[str],
) -> MarketData | None:
    """The panel of ``files`` (each symbol's files in time order, every symbol with rows), or None
    when the kernel finds rows off the ``timeframe`` grid, unsorted or duplicated."""
    step = timeframe_to_ms(timeframe)
    firsts = [int(f.ts[f.lo]) for f in files if f.rows]
    lasts = [int(f.ts[f.hi - 1]) for f in files if f.rows]
    first = min(firsts)
    n_bars = (max(lasts) - first) // step + 1
    sizes = np.array([f.rows for f in files], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    raw = np.empty((1 + len(fields), int(starts[-1])), dtype=np.int64)
    floats = np.empty((len(fields), 0))  # float64 columns are rare: allocated when one comes
    divisors = np.zeros((len(files), len(fields)))
    for i, (f, a, b) in enumerate(zip(files, starts[:-1], starts[1:], strict=True)):
        raw[0, a:b] = f.ts[f.lo : f.hi]
        for k, c in enumerate(fields):
            values, divisors[i, k] = column_parts(f.table.column(c), f.lo, f.hi)
            if divisors[i, k]:
                raw[1 + k, a:b] = values
            else:
                if not floats.size:
                    floats = np.empty((len(fields), raw.shape[1]))
                floats[k, a:b] = values
    bounds = np.searchsorted([f.owner for f in files], np.arange(len(names) + 1))
    out = tuple(np.empty((n_bars, len(names))) for _ in fields)
    if not align_nb(raw, floats, starts, divisors, bounds, first, step, out):
        return None
    grid = first + step * np.arange(n_bars, dtype=np.int64)
    index = pd.DatetimeIndex(pd.to_datetime(grid, unit="ms", utc=True), name="time")
    return MarketData(
        index=index,
        symbols=tuple(names),
        timeframe=timeframe,
        arrays=dict(zip(fields, out, strict=True)),
        source=source,
    )


def panel_from_rows(
    files: Sequence[FileSlice],
    names: Sequence[str],
    timeframe: str,
    source: str,
    fields: Sequence[str],
    *,
    screen: bool,
) -> MarketData:
    """The panel through :meth:`MarketData.from_long`, which says what is wrong with rows the fast
    path refused; with ``screen``, invalid candles are kept out and noted in ``market.notes``."""
    cols = concat_columns(files, fields)
    codes = np.repeat(cols.owners.astype(np.int32), cols.sizes)
    frame = pd.DataFrame(
        {
            "symbol": pd.Categorical.from_codes(codes, categories=pd.Index(names)),
            "timestamp_ms": cols.ts,
            **cols.values,
        },
        copy=False,
    )
    if not screen:
        return MarketData.from_long(frame, timeframe, symbols=names, source=source)
    valid, invalid = split_invalid(frame)
    market = MarketData.from_long(valid, timeframe, symbols=names, source=source)
    if len(invalid):
        counts = invalid["symbol"].value_counts()
        per = ", ".join(f"{s}: {n}" for s, n in counts[counts > 0].items())
        note = (
            f"{len(invalid)} invalid candles kept out of the panel ({per}; "
            f"{', '.join(sorted(set(invalid['reason'])))})"
        )
        log.warning(note)
        market = replace(market, notes=(*market.notes, note))
    return market
