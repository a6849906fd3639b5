"""Load the long CSV format (``symbol,timestamp_ms,open,high,low,close,volume``) into a panel.

This is the format of the real data in ``../shared/data`` (Binance candles, and close-only US stock
files with ``symbol,timestamp_ms,close``). Gzip is read transparently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from datasets.errors import DataError
from datasets.panel import Calendar, MarketData, _utc
from datasets.validate import split_invalid

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
    if p.exists():
        return p
    shared = shared_data_dir()
    if shared is not None and not p.is_absolute() and (shared / p).exists():
        return shared / p
    raise DataError(
        f"CSV file not found: {str(path)!r} (looked here and in the shared data folder {shared})"
    )


def read_long_csv(
    path: str | os.PathLike[str], symbols: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a long CSV into a DataFrame (float64 prices, int64 ``timestamp_ms``), optionally filtered."""
    p = resolve_csv_path(path)
    try:
        table = pacsv.read_csv(
            p,
            convert_options=pacsv.ConvertOptions(
                column_types={"symbol": pa.string(), "timestamp_ms": pa.int64()}
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {p}: {exc}") from exc
    missing = {"symbol", "timestamp_ms", "close"} - set(table.column_names)
    if missing:
        raise DataError(
            f"{p} lacks column(s) {sorted(missing)}; expected symbol,timestamp_ms,open,high,low,close,volume"
        )
    if symbols is not None:
        table = table.filter(
            pc.is_in(table["symbol"], value_set=pa.array(list(symbols), pa.string()))
        )
    frame = table.to_pandas()
    for col in ("open", "high", "low", "close", "volume"):
        if col in frame.columns:
            frame[col] = frame[col].astype(np.float64)
    return frame


def infer_timeframe(frame: pd.DataFrame) -> str:
    """The most common step between consecutive timestamps of one symbol, as a ccxt timeframe."""
    steps = frame.groupby("symbol")["timestamp_ms"].diff().dropna()
    if steps.empty:
        raise DataError(
            "cannot infer the timeframe from a single candle per symbol; pass `timeframe`"
        )
    step = int(steps.mode().iloc[0])
    if step in _TIMEFRAME_BY_STEP:
        return _TIMEFRAME_BY_STEP[step]
    # weekday calendars: the mode is one day, but be tolerant of weekend steps
    raise DataError(f"cannot map a step of {step} ms to a timeframe; pass `timeframe` explicitly")


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
    ...                   start="2021-01-01")  # doctest: +SKIP
    """
    frame = read_long_csv(path, symbols)
    if symbols is not None:
        unknown = sorted(set(symbols) - set(frame["symbol"].unique()))
        if unknown:
            raise DataError(f"unknown symbol(s) {unknown} in {path}")
    if start is not None:
        frame = frame[frame["timestamp_ms"] >= _utc(start).value // 1_000_000]
    if end is not None:
        frame = frame[frame["timestamp_ms"] <= _utc(end).value // 1_000_000]
    if frame.empty:
        raise DataError(f"no rows in {path} for symbols={symbols} between {start} and {end}")
    close_only = "open" not in frame.columns
    calendar = calendar or ("observed" if close_only else "continuous")
    timeframe = timeframe or ("1d" if close_only else infer_timeframe(frame))
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
