"""Load the long CSV format (``symbol,timestamp_ms,open,high,low,close,volume``) into a panel.

This is the format of the real data in ``../shared/data`` (Binance candles, and close-only US stock
files with ``symbol,timestamp_ms,close``). Gzip is read transparently.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from datasets.errors import DataError
from datasets.panel import Calendar, MarketData, utc_timestamp
from datasets.store.format import FIELDS, candles_from_frame, dedupe, fmt_ms
from datasets.timeframe import timeframe_to_ms
from datasets.validate import REASONS, invalid_candle_mask, split_invalid

if TYPE_CHECKING:
    from datasets.store import OHLCVStore

log = logging.getLogger(__name__)

_TIMEFRAME_BY_STEP = {
    60_000: "1m",
    300_000: "5m",
    900_000: "15m",
    1_800_000: "30m",
    3_600_000: "1h",
    14_400_000: "4h",
    86_400_000: "1d",
    604_800_000: "1w",
}


def shared_data_dir() -> Path | None:
    """The folder with the project's reference data: ``$ALPHAPULSE_SHARED_DATA`` or ``../shared/data``."""
    env = os.environ.get("ALPHAPULSE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[2] / "shared" / "data",
    ]
    return next((c for c in candidates if c.is_dir()), None)


def resolve_csv_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself if it exists, else the file of that name in :func:`shared_data_dir`."""
    p = Path(path)
    shared = shared_data_dir()
    if not p.exists() and shared is not None and not p.is_absolute() and (shared / p).exists():
        p = shared / p
    if p.is_dir():
        raise DataError(f"{str(path)!r} is a folder; give the path of a CSV file")
    if not p.exists():
        raise DataError(
            f"CSV file not found: {str(path)!r} (looked here and in the shared data folder "
            f"{shared}); check the path"
        )
    return p


def read_long_csv(
    path: str | os.PathLike[str],
    symbols: Sequence[str] | None = None,
    required: Sequence[str] = ("symbol", "timestamp_ms", "close"),
) -> pd.DataFrame:
    """Read a long CSV into a DataFrame (float64 prices, int64 ``timestamp_ms``), optionally filtered.

    The index holds each row's position among the file's data rows (blank lines skipped), so
    :func:`csv_line` can name the line of a row. A cell that does not parse, a missing
    ``required`` column or an unknown symbol raises :class:`DataError` naming the file, the column
    and the line (``bad.csv: column 'close', row 18: 'n/a' is not a number``).
    """
    p = resolve_csv_path(path)
    table = _read_table(p)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(
            f"{p.name}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}; found "
            f"{', '.join(table.column_names)}; the header must name {','.join(required)}"
        )
    rows = np.arange(table.num_rows)
    if symbols is not None:
        keep = pc.is_in(table["symbol"], value_set=pa.array(list(symbols), pa.string()))
        rows = rows[np.asarray(keep, dtype=bool)]
        table = table.filter(keep)
        unknown = sorted(set(symbols) - set(pc.unique(table["symbol"]).to_pylist()))
        if unknown:
            raise DataError(
                f"{p.name} has no rows for symbol(s) {', '.join(unknown)}; check `--symbols`"
            )
    frame = table.to_pandas()
    frame.index = rows
    return frame


def _read_table(p: Path) -> pa.Table:
    """The file as an Arrow table with the candle columns typed; any cell that does not parse
    fails with the line found by :func:`_first_bad_cell`."""
    try:
        table = pacsv.read_csv(p, convert_options=_CONVERT)
    except pa.ArrowInvalid as exc:
        raise DataError(_first_bad_cell(p) or f"{p.name}: {_reason(exc)}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {p.name}: {_reason(exc)}") from exc
    if "symbol" in table.column_names and pc.any(pc.equal(table["symbol"], "")).as_py():
        raise DataError(_first_bad_cell(p) or f"{p.name}: a row has no symbol")
    return table


_TYPES = {
    "symbol": pa.string(),
    "timestamp_ms": pa.int64(),
    **{c: pa.float64() for c in FIELDS},
}
# no value stands for a missing one: 'n/a' or an empty cell is an error, not a silent NaN
_CONVERT = pacsv.ConvertOptions(
    column_types=_TYPES, null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False
)


def _records(p: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank line (the header first), as Arrow reads them."""
    with (
        gzip.open(p, "rt", newline="", encoding="utf-8", errors="replace")
        if p.suffix == ".gz"
        else open(p, newline="", encoding="utf-8", errors="replace") as f
    ):
        reader = csv.reader(f)
        for fields in reader:
            if fields:
                yield reader.line_num, fields


def csv_line(path: Path, row: int) -> int:
    """Line number (1-based, the header is line 1) of data row ``row`` (0-based) of ``path``."""
    return next(itertools.islice(_records(path), row + 1, None))[0]


def _first_bad_cell(p: Path) -> str | None:
    """Where the file first fails to parse: the empty file, a row of the wrong width, or the first
    cell of a candle column that is not a value of its type (None when this reader finds none)."""
    try:
        records = _records(p)
        header = next(records, None)
        if header is None:
            return f"{p.name} is empty; it needs a header line such as {','.join(_TYPES)}"
        names = header[1]
        for line, fields in records:
            if len(fields) != len(names):
                return f"{p.name}: row {line} has {len(fields)} fields, the header has {len(names)}"
            for name, value in zip(names, fields, strict=True):
                problem = _cell_problem(name, value)
                if problem:
                    return f"{p.name}: column {name!r}, row {line}: {value!r} {problem}"
    except (OSError, EOFError) as exc:
        return f"cannot read {p.name}: {_reason(exc)}"
    return None


def _cell_problem(column: str, value: str) -> str | None:
    if column == "symbol":
        return None if value else "is empty; every row needs a symbol"
    parse = {"timestamp_ms": int, **dict.fromkeys(FIELDS, float)}
    if column not in parse:
        return None
    try:
        parse[column](value)
    except ValueError:
        if column == "timestamp_ms":
            return "is not an integer (UTC milliseconds of the bar open, e.g. 1609459200000)"
        return "is not a number"
    return None


def _reason(exc: BaseException) -> str:
    """An error's message without the ``[Errno N]`` noise of the OS."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return re.sub(r"\s*\[errno \d+\]\s*", " ", str(exc).splitlines()[0], flags=re.I).strip()


def infer_timeframe(frame: pd.DataFrame, name: str = "the file") -> str:
    """The most common step between consecutive timestamps of one symbol, as a ccxt timeframe.

    Rows may come in any order; duplicate timestamps are not steps.
    """
    codes = pd.factorize(frame["symbol"])[0]
    ts = frame["timestamp_ms"].to_numpy(dtype=np.int64)
    order = np.lexsort((ts, codes))
    steps = np.diff(ts[order])[codes[order][1:] == codes[order][:-1]]
    steps = steps[steps > 0]
    if not len(steps):
        raise DataError(
            f"{name} has one candle per symbol, too few to infer the timeframe; "
            "pass it with --timeframe, e.g. --timeframe 1d"
        )
    values, counts = np.unique(steps, return_counts=True)
    step = int(values[np.argmax(counts)])
    if step in _TIMEFRAME_BY_STEP:
        return _TIMEFRAME_BY_STEP[step]
    raise DataError(
        f"{name}: the most common step between candles, {step} ms, is not a timeframe this "
        "importer knows; pass it with --timeframe, e.g. --timeframe 2h"
    )


def load_csv(
    path: str | os.PathLike[str],
    symbols: Sequence[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    timeframe: str | None = None,
    calendar: Calendar | None = None,
) -> MarketData:
    """Load a long CSV (optionally gzipped) into an aligned :class:`MarketData` panel.

    Parameters
    ----------
    path : str or path
        The file; a bare name is also looked up in the shared data folder (``$ALPHAPULSE_SHARED_DATA``
        or ``../shared/data``).
    symbols : sequence of str, optional
        Keep these symbols in this order (default: all, sorted).
    start, end : str or Timestamp, optional
        Inclusive UTC bounds on the bar open time.
    timeframe : str, optional
        Inferred from the timestamps when omitted.
    calendar : {"continuous", "observed"}, optional
        Default: ``"observed"`` for close-only files (exchange calendars such as US stocks),
        ``"continuous"`` otherwise.

    Examples
    --------
    >>> market = load_csv("binance_spot_usdt_1d.csv.gz", symbols=["BTC/USDT", "ETH/USDT"],
    ...                   start="2021-01-01")  # a bare name: found in the shared data folder
    >>> market.symbols, market.timeframe, str(market.index[0])
    (('BTC/USDT', 'ETH/USDT'), '1d', '2021-01-01 00:00:00+00:00')
    """
    frame = read_long_csv(path, symbols)
    if start is not None:
        frame = frame[frame["timestamp_ms"] >= utc_timestamp(start).value // 1_000_000]
    if end is not None:
        frame = frame[frame["timestamp_ms"] <= utc_timestamp(end).value // 1_000_000]
    if frame.empty:
        raise DataError(f"no rows in {path} for symbols={symbols} between {start} and {end}")
    close_only = "open" not in frame.columns
    calendar = calendar or ("observed" if close_only else "continuous")
    timeframe = timeframe or ("1d" if close_only else infer_timeframe(frame, Path(path).name))
    valid, invalid = split_invalid(frame)
    market = MarketData.from_long(
        valid, timeframe, symbols=symbols, calendar=calendar, source=f"csv:{Path(path).name}"
    )
    if len(invalid):
        note = f"{len(invalid)} invalid candles kept out of the panel ({', '.join(sorted(set(invalid['reason'])))})"
        log.warning(note)
        market = _with_note(market, note)
    return market


def _with_note(market: MarketData, note: str) -> MarketData:
    from dataclasses import replace

    return replace(market, notes=(*market.notes, note))


# ------------------------------------------------------------------ import into the store
@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_csv` wrote: ``candles`` distinct candles (what the store now holds from
    this file), ``duplicates`` rows dropped for a repeated (symbol, timestamp)."""

    file: str
    target: Path
    timeframe: str
    inferred: bool
    candles: int
    symbols: int
    files: int
    duplicates: int = 0
    invalid: int = 0
    first_invalid: str = ""

    def lines(self) -> list[str]:
        out = []
        if self.duplicates:
            out.append(
                f"{_count(self.duplicates, 'duplicate row')} dropped (same symbol and timestamp; "
                "the last row in the file won)"
            )
        if self.invalid:
            out.append(
                f"{_count(self.invalid, 'invalid candle')} stored as received and kept out of "
                f"panels when loaded; first: {self.first_invalid}"
            )
        how = " (timeframe inferred from the rows)" if self.inferred else ""
        out.append(
            f"imported {_count(self.candles, f'{self.timeframe} candle')}{how} of "
            f"{_count(self.symbols, 'symbol')} from {self.file} into {self.target} "
            f"({_count(self.files, 'partition file')} written)"
        )
        return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def import_csv(
    path: str | os.PathLike[str],
    store: OHLCVStore,
    exchange: str,
    timeframe: str | None = None,
    symbols: Sequence[str] | None = None,
) -> ImportReport:
    """Write a long OHLCV CSV into ``store``; every check runs before the first write.

    Rows may come in any order. ``timeframe`` is inferred from the rows only when omitted (which
    needs two candles of one symbol); every timestamp must lie on its grid. Of rows with the same
    symbol and timestamp the last one in the file wins. Invalid candles (price <= 0, high below
    open/close, ...) are stored as received, like fetched ones, and reported.

    Examples
    --------
    >>> import tempfile
    >>> from datasets import OHLCVStore
    >>> with tempfile.TemporaryDirectory() as root:
    ...     report = import_csv("binance_spot_usdt_1d.csv.gz", OHLCVStore(root), "binance",
    ...                         symbols=["BTC/USDT", "ETH/USDT"])
    >>> report.symbols, report.timeframe, report.inferred
    (2, '1d', True)
    """
    p = resolve_csv_path(path)
    frame = read_long_csv(p, symbols, required=("symbol", "timestamp_ms", *FIELDS))
    if frame.empty:
        raise DataError(f"{p.name} has a header but no rows; nothing to import")
    try:
        candles_from_frame(frame)  # the store's timestamp checks, before anything is written
    except DataError as exc:
        raise DataError(f"{p.name}: {exc}") from exc
    inferred = timeframe is None
    timeframe = infer_timeframe(frame, p.name) if timeframe is None else timeframe
    _check_grid(p, frame, timeframe)
    held = []
    for symbol, rows in frame.groupby("symbol", sort=True):
        try:  # refuses bad names before any write
            store.series_dir(exchange, timeframe, str(symbol))
        except DataError as exc:
            line = csv_line(p, int(rows.index[0]))
            raise DataError(f"{p.name}: column 'symbol', row {line}: {exc}") from exc
        _, kept = dedupe(rows["timestamp_ms"].to_numpy(np.int64), {"row": rows.index.to_numpy()})
        held.append((str(symbol), frame.loc[kept["row"]]))
    invalid, first_invalid = _invalid(p, pd.concat([rows for _, rows in held]))
    files = sum(
        store.write(exchange, timeframe, s, rows, source=f"csv:{p.name}") for s, rows in held
    )
    candles = sum(len(rows) for _, rows in held)
    return ImportReport(
        file=p.name,
        target=store.root / f"exchange={exchange}" / f"timeframe={timeframe}",
        timeframe=timeframe,
        inferred=inferred,
        candles=candles,
        symbols=len(held),
        files=files,
        duplicates=len(frame) - candles,
        invalid=invalid,
        first_invalid=first_invalid,
    )


def _invalid(p: Path, frame: pd.DataFrame) -> tuple[int, str]:
    """How many rows of ``frame`` are invalid candles, and the first one in the file."""
    bad, code = invalid_candle_mask(frame)
    if not bad.any():
        return 0, ""
    k = int(np.argmin(np.where(bad, frame.index, np.iinfo(np.int64).max)))
    where = f"row {csv_line(p, int(frame.index[k]))} ({frame['symbol'].iloc[k]})"
    return int(bad.sum()), f"{where}: {REASONS[int(code[k])]}"


def _check_grid(p: Path, frame: pd.DataFrame, timeframe: str) -> None:
    """Every timestamp lies on the ``timeframe`` grid through the file's earliest bar (``frame``
    in file order)."""
    step = timeframe_to_ms(timeframe)
    ts = frame["timestamp_ms"].to_numpy(dtype=np.int64)
    anchor = int(ts.min())
    off = np.flatnonzero((ts - anchor) % step)
    if len(off):
        value = int(ts[off[0]])
        raise DataError(
            f"{p.name}: column 'timestamp_ms', row {csv_line(p, int(frame.index[off[0]]))}: {value} "
            f"({fmt_ms(value)}) is not on the {timeframe} grid of the earliest candle "
            f"({fmt_ms(anchor)}); check `--timeframe`"
        )
