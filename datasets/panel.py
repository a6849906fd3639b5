"""`MarketData`: an aligned panel of OHLCV arrays, T bars x N assets.

Every field is a C-contiguous float64 array of shape ``(n_bars, n_assets)``; NaN marks a bar where an
asset has no candle (not listed yet, delisted, or an exchange outage). Timestamps are bar **open**
times in UTC. The panel never fills prices silently: :meth:`MarketData.fill_gaps` forward-fills gaps
up to a limit and flags every filled cell in ``filled``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from datasets.errors import DataError
from datasets.timeframe import periods_per_year, timeframe_to_ms

FIELDS = ("open", "high", "low", "close", "volume")
Calendar = Literal["continuous", "observed"]


@dataclass(frozen=True, eq=False)
class MarketData:
    """Aligned OHLCV panel.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Bar open times, UTC, strictly increasing, length ``n_bars``.
    symbols : tuple of str
        Asset names (ccxt notation such as ``"BTC/USDT"``), length ``n_assets``.
    timeframe : str
        ccxt timeframe of the bars (``"1d"``, ``"1h"`` ...).
    arrays : dict of str to ndarray of shape (n_bars, n_assets)
        ``open``, ``high``, ``low``, ``close``, ``volume`` (volume in base units).
    source : str
        Where the data came from (``"synthetic"``, ``"csv:<file>"``, ``"store:binance"``).
    synthetic : bool
        True for generated data; reports label such results "synthetic".
    calendar : {"continuous", "observed"}
        ``"continuous"``: one row per timeframe step (24/7 markets; outages are NaN rows).
        ``"observed"``: one row per timestamp present in the data (exchange calendars).
    days_per_year : float
        Calendar used for annualisation (365 for crypto, 252 for an observed equity calendar).
    filled : ndarray of bool, shape (n_bars, n_assets), optional
        Cells filled by a gap policy.
    notes : tuple of str
        Human-readable data notes (gap policy, invalid candles dropped, ...), shown in reports.
    """

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    timeframe: str
    arrays: dict[str, np.ndarray]
    source: str = "unknown"
    synthetic: bool = False
    calendar: Calendar = "continuous"
    days_per_year: float = 365.0
    filled: np.ndarray | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        n_bars, n_assets = len(self.index), len(self.symbols)
        if len(set(self.symbols)) != n_assets:
            raise DataError(f"`symbols` must be unique; got {list(self.symbols)}")
        for name in FIELDS:
            arr = self.arrays.get(name)
            if arr is None:
                raise DataError(f"MarketData needs the `{name}` array")
            if arr.shape != (n_bars, n_assets):
                raise DataError(
                    f"`{name}` must have shape (n_bars, n_assets) = {(n_bars, n_assets)}; "
                    f"got {arr.shape}"
                )
        timeframe_to_ms(self.timeframe)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_long(
        cls,
        frame: pd.DataFrame,
        timeframe: str,
        *,
        symbols: Sequence[str] | None = None,
        calendar: Calendar = "continuous",
        source: str = "unknown",
        synthetic: bool = False,
        days_per_year: float | None = None,
    ) -> MarketData:
        """Build a panel from a long frame with columns ``symbol, timestamp_ms`` and OHLCV.

        Missing ``open/high/low`` columns are taken from ``close`` (close-only data such as adjusted
        stock closes); a missing ``volume`` becomes NaN. Duplicate (symbol, timestamp) rows raise.
        """
        if frame.empty:
            raise DataError("no rows to build a panel from (check the symbols and the date range)")
        sym_codes, to_name, names = _symbol_codes(frame["symbol"])
        if symbols is not None:
            missing = [s for s in symbols if s not in names]
            if missing:
                raise DataError(f"unknown symbol(s) {missing}; available: {names}")
            order = np.array([names.index(s) for s in symbols])
        else:
            order = np.arange(len(names))
        ts = frame["timestamp_ms"].to_numpy(dtype=np.int64)
        step = timeframe_to_ms(timeframe)
        if calendar == "continuous":
            start, stop = int(ts.min()), int(ts.max())
            rows = (ts - start) // step  # integer division by a scalar is fast; divmod/% are not
            if not np.array_equal(rows * step, ts - start):
                raise DataError(
                    f"timestamps are not aligned to the `{timeframe}` grid; "
                    "pass calendar='observed' for irregular calendars"
                )
            grid = np.arange(start, stop + step, step, dtype=np.int64)
        else:
            grid, rows = np.unique(ts, return_inverse=True)
        remap = np.full(len(names), -1, dtype=np.int64)
        remap[order] = np.arange(len(order))
        cols = remap[to_name][sym_codes]  # one gather: code -> sorted name -> panel column
        keep = cols >= 0
        all_kept = bool(keep.all())
        if not all_kept:
            rows, cols = rows[keep], cols[keep]
        # scatter asset-major (each asset's rows are contiguous: cache friendly), then transpose
        n_bars, n_assets = len(grid), len(order)
        flat = cols * n_bars + rows
        # duplicates: strictly increasing cells (rows sorted by symbol, then time) have none; else an
        # occupancy count (O(n), ~50x faster than np.unique on ~1e6 rows)
        sorted_unique = flat.size < 2 or bool((flat[1:] > flat[:-1]).all())
        if not sorted_unique and np.bincount(flat, minlength=n_bars * n_assets).max() > 1:
            raise DataError(
                "duplicate (symbol, timestamp) rows; de-duplicate before building a panel"
            )
        arrays: dict[str, np.ndarray] = {}
        for name in FIELDS:
            column = name if name in frame.columns else ("close" if name != "volume" else None)
            out = np.full((n_assets, n_bars), np.nan)
            if column is not None:
                values = frame[column].to_numpy(dtype=np.float64)
                out.reshape(-1)[flat] = values if all_kept else values[keep]
            arrays[name] = np.ascontiguousarray(out.T)
        index = pd.DatetimeIndex(pd.to_datetime(grid, unit="ms", utc=True), name="time")
        dpy = (
            days_per_year
            if days_per_year is not None
            else (365.0 if calendar == "continuous" else 252.0)
        )
        return cls(
            index=index,
            symbols=tuple(names[i] for i in order),
            timeframe=timeframe,
            arrays=arrays,
            source=source,
            synthetic=synthetic,
            calendar=calendar,
            days_per_year=dpy,
        )

    # ------------------------------------------------------------------ shape and access
    @property
    def n_bars(self) -> int:
        return len(self.index)

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    @property
    def periods_per_year(self) -> float:
        """Bars per year used for annualisation."""
        if self.calendar == "observed":
            return self.days_per_year * (86_400_000 / timeframe_to_ms(self.timeframe))
        return periods_per_year(self.timeframe, self.days_per_year)

    def values(self, name: str) -> np.ndarray:
        """The raw ``(n_bars, n_assets)`` float64 array of one field."""
        if name not in FIELDS:
            raise KeyError(f"field must be one of {FIELDS}; got {name!r}")
        return self.arrays[name]

    def _frame(self, name: str) -> pd.DataFrame:
        return pd.DataFrame(
            self.arrays[name], index=self.index, columns=list(self.symbols), copy=False
        )

    @property
    def open(self) -> pd.DataFrame:
        return self._frame("open")

    @property
    def high(self) -> pd.DataFrame:
        return self._frame("high")

    @property
    def low(self) -> pd.DataFrame:
        return self._frame("low")

    @property
    def close(self) -> pd.DataFrame:
        return self._frame("close")

    @property
    def volume(self) -> pd.DataFrame:
        return self._frame("volume")

    @property
    def listed(self) -> np.ndarray:
        """Bool ``(n_bars, n_assets)``: the asset has a close at this bar."""
        return np.isfinite(self.arrays["close"])

    def __repr__(self) -> str:
        span = (
            f"{self.index[0]:%Y-%m-%d %H:%M} .. {self.index[-1]:%Y-%m-%d %H:%M}"
            if self.n_bars
            else "empty"
        )
        label = " synthetic" if self.synthetic else ""
        return (
            f"<MarketData{label} {self.n_bars} bars x {self.n_assets} assets, {self.timeframe}, "
            f"{span}, source={self.source}>"
        )

    # ------------------------------------------------------------------ selection
    def select(self, symbols: Sequence[str]) -> MarketData:
        """A panel with only ``symbols``, in that order."""
        missing = [s for s in symbols if s not in self.symbols]
        if missing:
            raise DataError(f"unknown symbol(s) {missing}; available: {list(self.symbols)}")
        idx = [self.symbols.index(s) for s in symbols]
        return replace(
            self,
            symbols=tuple(symbols),
            arrays={k: np.ascontiguousarray(v[:, idx]) for k, v in self.arrays.items()},
            filled=None if self.filled is None else np.ascontiguousarray(self.filled[:, idx]),
        )

    def between(
        self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None
    ) -> MarketData:
        """Bars whose open time lies in ``[start, end]`` (inclusive; UTC; None = open-ended)."""
        lo = 0 if start is None else int(self.index.searchsorted(utc_timestamp(start), side="left"))
        hi = (
            self.n_bars
            if end is None
            else int(self.index.searchsorted(utc_timestamp(end), side="right"))
        )
        if hi <= lo:
            raise DataError(
                f"no bars between {start} and {end}; the data covers "
                f"{self.index[0]:%Y-%m-%d} .. {self.index[-1]:%Y-%m-%d}"
            )
        return replace(
            self,
            index=self.index[lo:hi],
            arrays={k: np.ascontiguousarray(v[lo:hi]) for k, v in self.arrays.items()},
            filled=None if self.filled is None else np.ascontiguousarray(self.filled[lo:hi]),
        )

    def drop_empty(self) -> MarketData:
        """Drop assets that have no close at all in the panel."""
        has_close = np.asarray(self.listed.any(axis=0), dtype=bool)
        keep = [s for s, ok in zip(self.symbols, has_close, strict=True) if ok]
        return self if len(keep) == self.n_assets else self.select(keep)

    # ------------------------------------------------------------------ gaps
    def gaps(self) -> pd.DataFrame:
        """Missing bars inside each asset's trading life (between its first and last close).

        Returns a DataFrame with columns ``symbol, start, end, n_bars`` (one row per gap).
        """
        rows = []
        listed = self.listed
        for j, sym in enumerate(self.symbols):
            ok = listed[:, j]
            if not ok.any():
                continue
            first, last = np.argmax(ok), len(ok) - 1 - np.argmax(ok[::-1])
            missing = ~ok[first : last + 1]
            if not missing.any():
                continue
            edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            for a, b in zip(starts, ends, strict=True):
                rows.append(
                    (sym, self.index[int(first + a)], self.index[int(first + b - 1)], int(b - a))
                )
        return pd.DataFrame(rows, columns=["symbol", "start", "end", "n_bars"])

    def fill_gaps(self, max_bars: int) -> MarketData:
        """Forward-fill gaps of at most ``max_bars`` bars inside an asset's life, flagged.

        A filled bar is a flat candle at the previous close with zero volume. Longer gaps stay NaN
        (the engine treats the asset as untradeable there). ``max_bars=0`` leaves everything as is.
        """
        if max_bars < 0:
            raise ValueError(f"`max_fill_bars` must be >= 0; got {max_bars}")
        filled = np.zeros((self.n_bars, self.n_assets), dtype=bool)
        if max_bars == 0:
            return replace(self, filled=filled, notes=(*self.notes, "gap policy: leave NaN"))
        close = self.arrays["close"]
        arrays = {k: v.copy() for k, v in self.arrays.items()}
        for _, gap in self.gaps().iterrows():
            if gap["n_bars"] > max_bars:
                continue
            j = self.symbols.index(gap["symbol"])
            start, end = self.index.get_loc(gap["start"]), self.index.get_loc(gap["end"])
            # a slice or a mask only if a time repeats (then int() would fail anyway)
            assert isinstance(start, int | np.integer) and isinstance(end, int | np.integer)
            a, b = int(start), int(end) + 1
            prev = close[a - 1, j]
            for name in ("open", "high", "low", "close"):
                arrays[name][a:b, j] = prev
            arrays["volume"][a:b, j] = 0.0
            filled[a:b, j] = True
        note = f"gap policy: forward-fill up to {max_bars} bars ({int(filled.sum())} cells filled, flagged)"
        return replace(self, arrays=arrays, filled=filled, notes=(*self.notes, note))

    def fingerprint(self) -> str:
        """Content hash (sha256) of symbols, timestamps and all OHLCV values."""
        import hashlib

        h = hashlib.sha256()
        h.update("|".join(self.symbols).encode())
        h.update(self.timeframe.encode())
        h.update(self.index.as_unit("ms").asi8.tobytes())
        for name in FIELDS:
            h.update(np.ascontiguousarray(self.arrays[name]).tobytes())
        return h.hexdigest()


def _symbol_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(codes, to_name, names)`` of a symbol column: ``names`` sorted, ``names[to_name[codes]]``
    the symbol of each row. A categorical column skips the hashing."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        if (codes < 0).any():
            raise DataError("the `symbol` column has missing values")
        cats = [str(c) for c in column.cat.categories]
        present = np.zeros(len(cats), dtype=bool)
        present[codes] = True
        used = np.flatnonzero(present)
        names = sorted(cats[i] for i in used)
        to_name = np.full(len(cats), -1, dtype=np.int64)
        to_name[used] = [names.index(cats[i]) for i in used]
        return codes, to_name, names
    codes, uniques = pd.factorize(column, sort=True)
    return codes, np.arange(len(uniques)), [str(s) for s in uniques]


def utc_timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    """``value`` as a UTC Timestamp: naive times are read as UTC, aware ones converted.

    >>> utc_timestamp("2024-01-01 12:00")
    Timestamp('2024-01-01 12:00:00+0000', tz='UTC')
    """
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
