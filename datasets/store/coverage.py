"""Coverage of a stored series: the bar ranges the store holds completely, kept in ``_series.json``.

Every write adds the span of its candles, a fetch adds each range it finished (exchange outages
inside included) and ``verify --repair`` takes out a partition it quarantined; a fetch then asks
the exchange only for :func:`missing_bar_ranges`. Ranges are ``[a, b]`` in UTC ms (inclusive,
sorted, disjoint; :mod:`datasets.store.intervals`), stored as whole bars: from a bar's open to one
ms before the next bar, so neighbouring ranges merge.

The hints file of a series folder (``.../symbol=BTC_USDT/_series.json``)::

    {"covered": [[a, b], ...], "symbol": "BTC/USDT", "schema_version": 1}

A series written before coverage was recorded has no ``covered``: it holds its stored span (widened
by the older ``history_start_ms`` / ``fetched_until_ms`` hints) minus whole missing partitions.
:class:`~datasets.store.OHLCVStore` exposes these as ``coverage``, ``covered``, ``cover``,
``uncover`` and ``missing_ranges``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from datasets.errors import StoreCorruptError
from datasets.store.format import SCHEMA_VERSION, file_span, partition_files, year_bounds
from datasets.store.intervals import Interval, gaps, normalise, subtract
from datasets.store.lock import partition_lock
from datasets.timeframe import timeframe_to_ms

__all__ = [
    "SERIES_META",
    "change_held",
    "edit_hints",
    "grid_anchor",
    "held_ranges",
    "load_hints",
    "missing_bar_ranges",
    "read_hints",
    "whole_bars",
]

log = logging.getLogger(__name__)

SERIES_META = "_series.json"

Change = Callable[[Sequence[Interval], int, int], list[Interval]]  # intervals.union or .subtract


def read_hints(path: Path) -> dict | None:
    """The hints file ``path`` (``_series.json``), or None when it is unreadable or malformed:
    ``covered`` must be a list of ``[a, b]`` integer pairs and the older hints integers."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None

    def is_int(x: object) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    ok = isinstance(meta, dict) and all(
        is_int(meta[k]) for k in ("history_start_ms", "fetched_until_ms") if k in meta
    )
    covered = meta.get("covered", []) if ok else None
    ok = ok and isinstance(covered, list)
    ok = ok and all(
        isinstance(r, list) and len(r) == 2 and all(is_int(x) for x in r) and r[0] <= r[1]
        for r in covered or ()
    )
    return meta if ok else None


def load_hints(series: Path) -> dict:
    """The hints of the series folder ``series``: ``{}`` when it has none, ``{"covered": []}`` when
    they are unreadable (so the next fetch rechecks every bar it asks for)."""
    path = series / SERIES_META
    if not path.exists():
        return {}
    meta = read_hints(path)
    if meta is None:
        # holes inside the stored span are recorded nowhere else: hold nothing, so the next
        # fetch rechecks every bar it asks for (`backtest data verify --repair` resets it)
        log.warning("unreadable %s: treating every bar as not held", path)
        return {"covered": []}
    return meta


def held_ranges(series: Path, hints: dict | None = None) -> list[Interval]:
    """Bar ranges the series folder ``series`` holds completely, from ``hints`` (default: its
    hints file); a series without ``covered`` holds its stored span minus whole missing
    partitions."""
    hints = load_hints(series) if hints is None else hints
    if "covered" in hints:
        return normalise(hints["covered"])
    folders = partition_files(series)
    spans = []
    for path in folders.values():
        with contextlib.suppress(StoreCorruptError):  # verify deals with unreadable files
            spans.append(file_span(path))
    firsts = [f for _, f, _ in spans if f is not None]
    lasts = [last for _, _, last in spans if last is not None]
    if not firsts or not lasts:
        return []
    first, last = min(firsts), max(lasts)
    held = [
        (
            min(first, int(hints.get("history_start_ms", first))),
            max(last, int(hints.get("fetched_until_ms", last))),
        )
    ]
    years = list(folders)
    for a, b in gaps(years, years[0][0], years[-1][1]):  # whole years no partition holds
        held = subtract(held, year_bounds(a)[0], year_bounds(b)[1])
    return held


def grid_anchor(series: Path) -> int | None:
    """A stored bar open time (the grid's phase), from any readable file of any layout."""
    for path in partition_files(series).values():
        with contextlib.suppress(StoreCorruptError):
            first = file_span(path)[1]
            if first is not None:
                return first
    return None


def _bars_within(a: int, b: int, anchor: int, step: int) -> Interval:
    """First and last bar open in ``[a, b]`` on the grid ``anchor + k * step`` (first > last
    when none)."""
    return a + (anchor - a) % step, b - (b - anchor) % step


def whole_bars(held: Iterable[Interval], timeframe: str, anchor: int) -> list[Interval]:
    """Held bar-open ranges as the time their bars span (grid ``anchor + k * step``): from the
    first bar open inside to one ms before the bar after the last, so neighbours merge.

    >>> whole_bars([(0, 7_200_000), (10_800_000, 10_800_000)], "1h", anchor=0)
    [(0, 14399999)]
    """
    step = timeframe_to_ms(timeframe)
    bars = (_bars_within(a, b, anchor, step) for a, b in held)
    return normalise((first, last + step - 1) for first, last in bars)


def missing_bar_ranges(series: Path, timeframe: str, start_ms: int, end_ms: int) -> list[Interval]:
    """Bar-open ranges within ``[start_ms, end_ms]`` that ``series`` does not hold completely,
    snapped to the stored bar grid (the window as given when no candle is stored)."""
    if start_ms > end_ms:
        return []
    held = gaps(held_ranges(series), start_ms, end_ms)
    anchor = grid_anchor(series)
    if anchor is None:
        return held
    step = timeframe_to_ms(timeframe)
    bars = (_bars_within(a, b, anchor, step) for a, b in held)  # whole bars of the grid
    return [(a, b) for a, b in bars if a <= b]


def edit_hints(
    series: Path, symbol: str, edit: Callable[[dict], None], *, locked: bool = False
) -> None:
    """Apply ``edit`` to the hints of ``series`` and write them atomically (``locked``: the caller
    holds the series lock)."""
    with contextlib.nullcontext() if locked else partition_lock(series):
        meta = {**load_hints(series), "symbol": symbol, "schema_version": SCHEMA_VERSION}
        edit(meta)
        tmp = series / f".{SERIES_META}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "w") as fh:
            fh.write(json.dumps(meta, indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, series / SERIES_META)


def change_held(
    series: Path,
    symbol: str,
    timeframe: str,
    change: Change,
    lo: int,
    hi: int,
    *,
    locked: bool = False,
) -> None:
    """Record ``change(held, lo, hi)`` (``intervals.union``: now held; ``intervals.subtract``: no
    longer held) as whole bars of the stored grid."""

    def edit(meta: dict) -> None:
        held = change(held_ranges(series, meta), lo, hi)
        anchor = grid_anchor(series)
        # with no candle stored the grid is unknown: keep the bounds as given (the first
        # write snaps them onto the grid of its candles)
        meta["covered"] = held if anchor is None else whole_bars(held, timeframe, anchor)

    edit_hints(series, symbol, edit, locked=locked)
