"""`OHLCVStore`: a Parquet cache of candles, hive-partitioned by exchange/timeframe/symbol/years.

Layout (``root`` is ``$ALPHAPULSE_DATA`` or ``./data``)::

    root/exchange=binance/timeframe=1h/symbol=BTC_USDT/years=2020-2029/data.parquet
                                                      /_series.json   coverage (bar ranges held completely)
                                                      /.lock          writer lock
    root/exchange=binance/timeframe=1m/symbol=BTC_USDT/year=2024/data.parquet

A partition spans 10, 5, 2 or 1 calendar years, the longest that keeps a file under ~100k candles
(:func:`~datasets.store.format.partition_years`: 10 years for 1h and longer bars, 1 year for 5m and
shorter).

Columns: ``timestamp_ms`` (int64, UTC ms of the bar open) and ``open, high, low, close, volume``.
Exchanges send prices as decimal strings, so each price column is stored as an exact decimal
(Parquet ``DECIMAL(18, s)`` on INT64, delta-encoded) with the smallest scale ``s`` that gives back
the float64 values bit for bit; a column that no scale reproduces (or with NaN) is stored as float64
(zstd). Readers always get float64. Files carry metadata (schema version, source, fetch time).
The format itself (names, codec, atomic file I/O) lives in :mod:`datasets.store.format`, the
coverage hints (``_series.json``: what the store holds completely) in :mod:`datasets.store.coverage`.

Writes are atomic (temp file + ``os.replace``) and serialised per symbol partition with a file lock;
an incremental write rewrites only the partitions it touches. Readers never lock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.errors import DataError, StoreCorruptError
from datasets.panel import MarketData
from datasets.store.coverage import (
    change_held,
    edit_hints,
    held_ranges,
    load_hints,
    missing_bar_ranges,
    whole_bars,
)
from datasets.store.format import (
    FIELDS,
    FILE_NAME,
    REPAIR_HINT,
    SCHEMA_VERSION,
    Candles,
    atomic_write,
    candles_from_frame,
    concat_candles,
    decode_symbol,
    dedupe,
    encode_symbol,
    file_span,
    fmt_ms,
    follows_layout,
    make_table,
    partition_files,
    partition_name,
    partition_of,
    partition_years,
    read_file,
    read_meta,
    read_table,
    to_utc_ms,
    years_of,
)
from datasets.store.intervals import Interval, subtract, union
from datasets.store.lock import partition_lock
from datasets.store.panel import FileSlice, concat_columns, panel_from_files, panel_from_rows
from datasets.timeframe import timeframe_to_ms
from datasets.validate import invalid_candle_mask

__all__ = ["OHLCVStore"]

log = logging.getLogger(__name__)

READ_THREADS = 2
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


# ---------------------------------------------------------------------------------- the store
class OHLCVStore:
    """Parquet OHLCV cache (see the module docstring for the layout and guarantees).

    Parameters
    ----------
    root : str or path, optional
        Store folder; default ``$ALPHAPULSE_DATA``, else ``./data``. Created on first write.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> day, jan_1 = 86_400_000, 1_704_067_200_000  # ms; 2024-01-01 00:00 UTC
    >>> candles = pd.DataFrame({"timestamp_ms": [jan_1 + k * day for k in range(3)],
    ...                         "open": 100.0, "high": 110.0, "low": 90.0,
    ...                         "close": [101.0, 102.5, 99.0], "volume": 5.0})
    >>> with tempfile.TemporaryDirectory() as root:
    ...     store = OHLCVStore(root)
    ...     store.write("binance", "1d", "BTC/USDT", candles, source="example")
    ...     market = store.load("binance", ["BTC/USDT"], "1d", start="2024-01-02")
    1
    >>> market.arrays["close"]
    array([[102.5],
           [ 99. ]])
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root if root is not None else os.environ.get("ALPHAPULSE_DATA") or "data")

    def __repr__(self) -> str:
        return f"OHLCVStore({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
    def series_dir(self, exchange: str, timeframe: str, symbol: str) -> Path:
        """Folder of one symbol partition (``.../symbol=BTC_USDT``); names are validated."""
        return self._timeframe_dir(exchange, timeframe) / f"symbol={encode_symbol(symbol)}"

    def _timeframe_dir(self, exchange: str, timeframe: str) -> Path:
        if not isinstance(exchange, str) or not _ID.fullmatch(exchange):
            raise DataError(f"`exchange` must be an id such as 'binance'; got {exchange!r}")
        timeframe_to_ms(timeframe)
        return self.root / f"exchange={exchange}" / f"timeframe={timeframe}"

    @staticmethod
    def _partitions(series: Path, timeframe: str) -> dict[int, Path]:
        """``{first year: file}`` of a symbol's partitions, in time order.

        A partition folder of another span (a store written with another layout) is an error that
        names ``backtest data verify --repair``, which moves its rows into the right partitions.
        """
        span = partition_years(timeframe)
        files: dict[int, Path] = {}
        for (first, _), path in partition_files(series).items():
            if not follows_layout(path.parent.name, span):
                raise StoreCorruptError(
                    f"store partition {path.parent} does not follow the {timeframe} layout "
                    f"({span}-year partitions such as {partition_name(2020, span)}); {REPAIR_HINT}"
                )
            files[first] = path
        return files

    # ------------------------------------------------------------------ catalogue
    def exchanges(self) -> list[str]:
        return sorted(
            p.name.removeprefix("exchange=") for p in self.root.glob("exchange=*") if p.is_dir()
        )

    def timeframes(self, exchange: str) -> list[str]:
        base = self.root / f"exchange={exchange}"
        return sorted(
            (p.name.removeprefix("timeframe=") for p in base.glob("timeframe=*") if p.is_dir()),
            key=lambda tf: (timeframe_to_ms(tf) if re.fullmatch(r"\d+[smhdw]", tf) else 0, tf),
        )

    def symbols(self, exchange: str, timeframe: str) -> list[str]:
        """Stored symbols (with at least one partition file), sorted."""
        out = []
        for series in self._timeframe_dir(exchange, timeframe).glob("symbol=*"):
            try:
                symbol = decode_symbol(series.name.removeprefix("symbol="))
            except DataError:
                log.warning("ignoring %s (not a symbol folder; see `backtest data verify`)", series)
                continue
            if self._partitions(series, timeframe):
                out.append(symbol)
        return sorted(out)

    def _check_stored(self, exchange: str, timeframe: str, symbols: Sequence[str]) -> None:
        stored = self.symbols(exchange, timeframe)
        unknown = [s for s in symbols if s not in stored]
        if unknown:
            import difflib

            near = sorted({m for s in unknown for m in difflib.get_close_matches(s, stored, n=2)})
            hint = f"; close matches: {', '.join(near)}" if near else ""
            raise DataError(
                f"no {timeframe} candles for {', '.join(unknown)} from {exchange} in the store {self.root}{hint} "
                f"(fetch them with `backtest data fetch --exchange {exchange} --symbols {','.join(unknown)} "
                f"--timeframe {timeframe} --since YYYY-MM-DD`)"
            )

    def first_timestamp(self, exchange: str, timeframe: str, symbol: str) -> int | None:
        """Open time (UTC ms) of the first stored candle, or None."""
        files = self._partitions(self.series_dir(exchange, timeframe, symbol), timeframe)
        return file_span(next(iter(files.values())))[1] if files else None

    def last_timestamp(self, exchange: str, timeframe: str, symbol: str) -> int | None:
        """Open time (UTC ms) of the last stored candle, or None: where an incremental fetch resumes."""
        files = self._partitions(self.series_dir(exchange, timeframe, symbol), timeframe)
        return file_span(files[max(files)])[2] if files else None

    def inventory(self) -> pd.DataFrame:
        """What the store holds: one row per stored series, columns ``exchange, timeframe, symbol,
        first, last, rows, files, bytes`` (``first``/``last``: UTC bar open times, from the file
        footers, no data read).

        >>> OHLCVStore("no/such/folder").inventory().empty
        True
        """
        rows = []
        for exchange in self.exchanges():
            for timeframe in self.timeframes(exchange):
                for symbol in self.symbols(exchange, timeframe):
                    files = self._partitions(
                        self.series_dir(exchange, timeframe, symbol), timeframe
                    )
                    spans = [file_span(p) for p in files.values()]
                    first, last = spans[0][1], spans[-1][2]
                    rows.append(
                        (
                            exchange,
                            timeframe,
                            symbol,
                            pd.NaT if first is None else pd.Timestamp(first, unit="ms", tz="UTC"),
                            pd.NaT if last is None else pd.Timestamp(last, unit="ms", tz="UTC"),
                            sum(s[0] for s in spans),
                            len(files),
                            sum(p.stat().st_size for p in files.values()),
                        )
                    )
        return pd.DataFrame(
            rows,
            columns=["exchange", "timeframe", "symbol", "first", "last", "rows", "files", "bytes"],
        )

    # ------------------------------------------------------------------ coverage
    # (the rules live in datasets.store.coverage; these name the series)
    def coverage(self, exchange: str, timeframe: str, symbol: str) -> dict:
        """The series' hints file (``_series.json``): ``covered``, the bar ranges ``[a, b]`` (UTC ms,
        inclusive) the store holds completely (see :meth:`covered`)."""
        return load_hints(self.series_dir(exchange, timeframe, symbol))

    def covered(self, exchange: str, timeframe: str, symbol: str) -> list[Interval]:
        """Bar ranges ``[a, b]`` (UTC ms, inclusive, sorted, disjoint) for which the store holds every
        candle the source has: the span of each write (a fetch's pages, an import) and each range a
        fetch finished, exchange outages inside included. A range a fetch was stopped in counts
        only up to the last page it wrote, so :meth:`missing_ranges` sees the rest even when it
        lies between stored candles.

        A series written before coverage was recorded: its stored span (widened by the older
        ``history_start_ms`` / ``fetched_until_ms`` hints) minus whole missing partitions."""
        return held_ranges(self.series_dir(exchange, timeframe, symbol))

    def cover(
        self, exchange: str, timeframe: str, symbol: str, lo: int, hi: int, *, locked: bool = False
    ) -> None:
        """Record that the store holds every candle of bars ``[lo, hi]`` (``locked``: the caller
        holds the series lock)."""
        series = self.series_dir(exchange, timeframe, symbol)
        change_held(series, symbol, timeframe, union, lo, hi, locked=locked)

    def uncover(
        self, exchange: str, timeframe: str, symbol: str, lo: int, hi: int, *, locked: bool = False
    ) -> None:
        """Record that bars ``[lo, hi]`` are no longer held (a quarantined partition)."""
        series = self.series_dir(exchange, timeframe, symbol)
        change_held(series, symbol, timeframe, subtract, lo, hi, locked=locked)

    def missing_ranges(
        self, exchange: str, timeframe: str, symbol: str, start_ms: int, end_ms: int
    ) -> list[Interval]:
        """Bar-open ranges ``[a, b]`` (UTC ms, inclusive, sorted, disjoint, ends on the stored bar
        grid) within ``[start_ms, end_ms]`` that the store does not hold completely
        (:meth:`covered`). Exchange outages inside a held range are not refetched (they are
        missing at the exchange too)."""
        series = self.series_dir(exchange, timeframe, symbol)
        return missing_bar_ranges(series, timeframe, start_ms, end_ms)

    # ------------------------------------------------------------------ write
    def write(
        self,
        exchange: str,
        timeframe: str,
        symbol: str,
        frame: pd.DataFrame,
        *,
        source: str = "unknown",
    ) -> int:
        """Merge candles into the store; rows with a stored timestamp replace the stored row.

        The frame is taken as every candle the source has from its first to its last bar: that
        span joins :meth:`covered` (bars missing inside it are exchange outages).

        Parameters
        ----------
        frame : DataFrame
            Columns ``timestamp_ms`` (int, UTC ms of the bar open) and ``open, high, low, close, volume``
            (float); other columns are ignored. Invalid candles are stored as received (the loader
            keeps them out of panels and reports them).
        source : str
            Provenance written into the file metadata (``"ccxt:binance"``, ``"csv:file.csv.gz"``).

        Returns
        -------
        int
            Number of partitions rewritten (only those the new rows fall in).
        """
        ts, values = candles_from_frame(frame)
        return self._write_candles(exchange, timeframe, symbol, ts, values, source)

    def _write_candles(
        self,
        exchange: str,
        timeframe: str,
        symbol: str,
        ts: np.ndarray,
        values: dict[str, np.ndarray],
        source: str,
    ) -> int:
        if not len(ts):
            return 0
        series = self.series_dir(exchange, timeframe, symbol)
        parts = partition_of(ts, partition_years(timeframe))
        self._partitions(series, timeframe)  # refuses a series with folders of another layout
        bounds = np.flatnonzero(np.diff(parts)) + 1  # ts is sorted: partitions come in runs
        with partition_lock(series):
            held = self.covered(exchange, timeframe, symbol)  # before the new rows land
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(ts)], strict=True):
                part = (ts[lo:hi], {c: v[lo:hi] for c, v in values.items()})
                self.merge_partition(
                    series, int(parts[lo]), part, (exchange, timeframe, symbol), source
                )
            now_held = union(held, int(ts[0]), int(ts[-1]))
            edit_hints(
                series,
                symbol,
                lambda meta: meta.update(covered=whole_bars(now_held, timeframe, int(ts[0]))),
                locked=True,
            )
        return len(bounds) + 1

    def merge_partition(
        self,
        series: Path,
        first_year: int,
        new: Candles,
        names: tuple[str, str, str],
        source: str,
        *,
        replace_existing: bool = False,
        new_wins: bool = True,
    ) -> None:
        """Merge ``new`` (rows of the partition starting at ``first_year``; ``names`` = exchange,
        timeframe, symbol) into its file, or replace the file's rows with them. On a timestamp
        both hold, the new row wins unless ``new_wins=False``.

        The caller holds the lock of ``series`` and keeps the coverage hints (:meth:`write` does
        both; ``verify --repair`` moves rows between partitions with it)."""
        path = series / partition_name(first_year, partition_years(names[1])) / FILE_NAME
        sources = {source}
        if path.exists() and not replace_existing:
            old = read_file(path)[:2]
            new = dedupe(*concat_candles([old, new] if new_wins else [new, old]))
            sources |= set(read_meta(path).get("source", "").split(",")) - {""}
        ts, values = new
        invalid = int(invalid_candle_mask(pd.DataFrame(values))[0].sum())
        meta = {
            "schema_version": SCHEMA_VERSION,
            "exchange": names[0],
            "timeframe": names[1],
            "symbol": names[2],
            "source": ",".join(sorted(sources)),
            "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rows": len(ts),
            "invalid": invalid,
        }
        atomic_write(make_table(ts, values, meta), path)

    def file_metadata(self, exchange: str, timeframe: str, symbol: str, year: int) -> dict:
        """The metadata written into the partition file holding ``year`` (schema version, source,
        fetched_at, rows)."""
        span = partition_years(timeframe)
        folder = partition_name(year - year % span, span)
        return read_meta(self.series_dir(exchange, timeframe, symbol) / folder / FILE_NAME)

    # ------------------------------------------------------------------ read
    def read(
        self, exchange: str, timeframe: str, symbol: str, start: object = None, end: object = None
    ) -> pd.DataFrame:
        """Stored candles of one symbol as a frame ``timestamp_ms, open, high, low, close, volume``."""
        self._check_stored(exchange, timeframe, [symbol])
        ts, values = self._read_series([symbol], exchange, timeframe, *self._bounds(start, end))[0]
        return pd.DataFrame({"timestamp_ms": ts, **values})

    @staticmethod
    def _bounds(start: object, end: object) -> tuple[int | None, int | None]:
        lo = None if start is None else to_utc_ms(start, "start")
        hi = None if end is None else to_utc_ms(end, "end")
        if lo is not None and hi is not None and lo > hi:
            raise DataError(f"`start` ({fmt_ms(lo)}) must not be after `end` ({fmt_ms(hi)})")
        return lo, hi

    def _open_files(
        self,
        symbols: Sequence[str],
        exchange: str,
        timeframe: str,
        lo: int | None,
        hi: int | None,
        fields: Sequence[str] = FIELDS,
    ) -> list[FileSlice]:
        """The partition files of ``symbols`` that overlap ``[lo, hi]``, read (``fields`` only) and
        bounded, in symbol order, then time order."""
        span = partition_years(timeframe)
        y_lo = -1 if lo is None else int(years_of(np.array([lo]))[0])
        y_hi = 10**6 if hi is None else int(years_of(np.array([hi]))[0])
        tasks = []
        for j, symbol in enumerate(symbols):
            files = self._partitions(self.series_dir(exchange, timeframe, symbol), timeframe)
            tasks += [(j, p) for y, p in files.items() if y_lo < y + span and y <= y_hi]
        columns = ["timestamp_ms", *fields]

        def open_file(task: tuple[int, Path]) -> FileSlice:
            table, meta = read_table(task[1], columns)
            ts = table.column("timestamp_ms").to_numpy()
            a = 0 if lo is None else int(np.searchsorted(ts, lo, side="left"))  # files are sorted
            b = len(ts) if hi is None else int(np.searchsorted(ts, hi, side="right"))
            return FileSlice(task[0], table, ts, a, b, meta)

        if len(tasks) < 2 * READ_THREADS:
            return [open_file(t) for t in tasks]
        # Arrow decodes the pages with the GIL released: two threads read ~20% faster here
        with ThreadPoolExecutor(READ_THREADS) as pool:
            return list(pool.map(open_file, tasks))

    def _read_series(
        self,
        symbols: Sequence[str],
        exchange: str,
        timeframe: str,
        lo: int | None,
        hi: int | None,
        fields: Sequence[str] = FIELDS,
    ) -> list[Candles]:
        cols = concat_columns(
            self._open_files(symbols, exchange, timeframe, lo, hi, fields), fields
        )
        edges = np.concatenate([[0], np.cumsum(cols.symbol_rows(len(symbols)))])
        return [
            (cols.ts[a:b], {c: v[a:b] for c, v in cols.values.items()})
            for a, b in itertools.pairwise(edges)
        ]

    def load(
        self,
        exchange: str,
        symbols: Sequence[str] | str | None,
        timeframe: str,
        start: object = None,
        end: object = None,
        *,
        max_fill_bars: int = 0,
    ) -> MarketData:
        """Load stored candles into an aligned :class:`MarketData` panel.

        Parameters
        ----------
        exchange : str
            Exchange id the data was stored under (``"binance"``).
        symbols : sequence of str, str or None
            Columns of the panel, in this order (None: every stored symbol).
        timeframe : str
            ccxt timeframe (``"1h"``, ``"1d"``).
        start, end : str, Timestamp or int ms, optional
            Inclusive UTC bounds on the bar open time.
        max_fill_bars : int
            Gap policy: 0 leaves missing bars NaN; N forward-fills gaps of at most N bars (flagged in
            ``market.filled``). The policy is recorded in ``market.notes``.

        Returns
        -------
        MarketData
            Arrays of shape ``(n_bars, n_assets)``; NaN before listing, after delisting and in gaps.
            Invalid candles are kept out and reported in ``notes``.
        """
        lo, hi = self._bounds(start, end)
        names = (
            self.symbols(exchange, timeframe)
            if symbols is None
            else ([symbols] if isinstance(symbols, str) else list(symbols))
        )
        if symbols is None and not names:
            raise DataError(
                f"no {timeframe} candles from {exchange} in the store {self.root} (see `backtest data list`)"
            )
        if not names or len(set(names)) != len(names):
            raise DataError(f"`symbols` must be a non-empty list of distinct symbols; got {names}")
        self._check_stored(exchange, timeframe, names)
        files = self._open_files(names, exchange, timeframe, lo, hi)
        per_symbol = np.bincount(
            [f.owner for f in files], weights=[f.rows for f in files], minlength=len(names)
        )
        empty = [s for s, n in zip(names, per_symbol, strict=True) if n == 0]
        if empty:
            raise DataError(
                f"no stored {timeframe} candles for {', '.join(empty)} between {fmt_ms(lo)} and "
                f"{fmt_ms(hi)} (see `backtest data list`)"
            )
        source = f"store:{exchange}"
        # each file records how many invalid candles it holds (counted when written): when every
        # file read says none, the panel comes straight from the files
        clean = all(
            f.meta.get("invalid") == 0 and f.meta.get("schema_version") == SCHEMA_VERSION
            for f in files
        )
        market = panel_from_files(files, names, timeframe, source, FIELDS) if clean else None
        if market is None:
            market = panel_from_rows(files, names, timeframe, source, FIELDS, screen=not clean)
        return market.fill_gaps(max_fill_bars)

    def gaps(
        self,
        exchange: str,
        timeframe: str,
        symbols: Sequence[str] | None = None,
        start: object = None,
        end: object = None,
    ) -> pd.DataFrame:
        """Missing bars inside each stored series: columns ``symbol, start, end, n_bars`` (bar open times)."""
        lo, hi = self._bounds(start, end)
        names = self.symbols(exchange, timeframe) if symbols is None else list(symbols)
        self._check_stored(exchange, timeframe, names)
        step = timeframe_to_ms(timeframe)
        rows = []
        for symbol, (ts, _) in zip(
            names, self._read_series(names, exchange, timeframe, lo, hi, ()), strict=True
        ):
            jumps = np.flatnonzero(np.diff(ts) > step)
            for k in jumps:
                first, last = ts[k] + step, ts[k + 1] - step
                rows.append(
                    (
                        symbol,
                        pd.Timestamp(first, unit="ms", tz="UTC"),
                        pd.Timestamp(last, unit="ms", tz="UTC"),
                        int((last - first) // step + 1),
                    )
                )
        return pd.DataFrame(rows, columns=["symbol", "start", "end", "n_bars"])

    def verify(self, repair: bool = False) -> pd.DataFrame:
        """Check every file; with ``repair=True`` fix what can be fixed.

        Returns a DataFrame ``path, problem, action`` (empty when the store is sound). See
        :mod:`datasets.store.verify` for the checks and repairs.
        """
        from datasets.store.verify import verify_store

        return verify_store(self, repair=repair)
