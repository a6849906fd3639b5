"""Integrity check and repair of an :class:`~datasets.store.OHLCVStore` (``backtest data verify``).

Checks, per symbol partition:

* unreadable Parquet files (truncated, garbage, wrong column types) -> moved to ``root/_quarantine``
  (the data is refetched by the next ``data fetch``: the store then sees the missing partition);
* timestamps unsorted or duplicated -> rewritten sorted, keeping the last row of a duplicate;
* rows in the wrong partition -> moved to the right one; a partition folder whose span does not
  follow the timeframe's layout (:func:`~datasets.store.format.partition_years`, e.g. the yearly
  ``year=2024`` folders of an hourly series written before the layout changed) -> all its rows
  moved into the right partitions and the folder removed;
* file metadata that disagrees with the data (row count, symbol, schema version) -> rewritten;
* temporary files left by an interrupted write -> deleted;
* an unreadable or malformed ``_series.json`` (coverage) -> reset to hold nothing (the next fetch
  rechecks every bar it asks for); a series without one (the first release) gets the coverage its
  folders imply written down before any rows move.

Anything else (foreign files, folders that are not store partitions) is reported and left alone.
Repairs hold the partition's writer lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.errors import DataError, StoreCorruptError
from datasets.store.coverage import SERIES_META, edit_hints, held_ranges, load_hints, read_hints
from datasets.store.format import (
    FILE_NAME,
    SCHEMA_VERSION,
    decode_symbol,
    dedupe,
    follows_layout,
    parse_partition,
    partition_name,
    partition_of,
    partition_years,
    read_file,
    read_table,
    year_bounds,
)
from datasets.store.lock import LOCK_NAME, partition_lock
from datasets.store.ohlcv import OHLCVStore
from datasets.timeframe import timeframe_to_ms

log = logging.getLogger(__name__)

COLUMNS = ["path", "problem", "action"]
QUARANTINE = "_quarantine"
_NOT_REPAIRED = "none (run `backtest data verify --repair`)"


def verify_store(store: OHLCVStore, repair: bool = False) -> pd.DataFrame:
    """Check every partition of ``store``; returns a DataFrame ``path, problem, action``."""
    problems: list[tuple[str, str, str]] = []
    if not store.root.exists():
        return pd.DataFrame(problems, columns=COLUMNS)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    for ex_dir in sorted(store.root.iterdir()):
        if ex_dir.name.startswith((".", "_")):
            continue
        if not (ex_dir.is_dir() and ex_dir.name.startswith("exchange=")):
            problems.append((str(ex_dir), "not a store partition", "left alone"))
            continue
        for tf_dir in sorted(ex_dir.iterdir()):
            timeframe = tf_dir.name.removeprefix("timeframe=")
            if not (
                tf_dir.is_dir()
                and tf_dir.name.startswith("timeframe=")
                and _valid_timeframe(timeframe)
            ):
                problems.append((str(tf_dir), "not a timeframe partition", "left alone"))
                continue
            for series in sorted(tf_dir.iterdir()):
                problems += _check_series(
                    store, ex_dir.name.removeprefix("exchange="), timeframe, series, repair, stamp
                )
    for path, problem, action in problems:
        log.warning("%s: %s (%s)", path, problem, action)
    return pd.DataFrame(problems, columns=COLUMNS)


def _valid_timeframe(timeframe: str) -> bool:
    try:
        timeframe_to_ms(timeframe)
    except ValueError:
        return False
    return True


def _check_series(
    store: OHLCVStore, exchange: str, timeframe: str, series: Path, repair: bool, stamp: str
) -> list[tuple[str, str, str]]:
    try:
        if not (series.is_dir() and series.name.startswith("symbol=")):
            raise DataError("not a symbol partition")
        symbol = decode_symbol(series.name.removeprefix("symbol="))
    except DataError:
        return [(str(series), "not a symbol partition written by the store", "left alone")]
    found: list[tuple[str, str, str]] = []
    with partition_lock(series) if repair else contextlib.nullcontext():
        for tmp in sorted(series.rglob(".*.tmp")):
            found.append(
                (
                    str(tmp),
                    "temporary file left by an interrupted write",
                    _act(repair, tmp.unlink, "deleted"),
                )
            )
        meta_path = series / SERIES_META
        if meta_path.is_dir():
            found.append((str(meta_path), "a folder where the coverage file belongs", "left alone"))
        elif meta_path.exists() and read_hints(meta_path) is None:
            found.append(
                (
                    str(meta_path),
                    "unreadable coverage",
                    _act(
                        repair,
                        lambda: edit_hints(series, symbol, _hold_nothing, locked=True),
                        "reset: the next fetch rechecks every bar it asks for",
                    ),
                )
            )
        if repair and "covered" not in load_hints(series):
            # a series of the first release: its coverage, while its folders still say it
            held = held_ranges(series)
            edit_hints(series, symbol, lambda hints: hints.update(covered=held), locked=True)
        span = partition_years(timeframe)

        def order(entry: Path) -> tuple[bool, bool, str]:
            # unreadable files first (quarantined before rows move), then this layout's
            # partitions, then folders of another layout, whose rows move into them
            try:
                read_table(entry / FILE_NAME)
                readable = True
            except StoreCorruptError:
                readable = False
            return readable, not follows_layout(entry.name, span), entry.name

        for entry in sorted(series.iterdir(), key=order):
            if entry.name.startswith(".") or entry.name in (SERIES_META, LOCK_NAME):
                continue
            years = parse_partition(entry.name)
            if not (entry.is_dir() and years):
                found.append((str(entry), "not a partition folder", "left alone"))
                continue
            for item in sorted(entry.iterdir()):
                if item.name.startswith("."):
                    continue
                if item.name != FILE_NAME:
                    found.append((str(item), "unexpected file in a partition", "left alone"))
                    continue
                found += _check_file(
                    store, (exchange, timeframe, symbol), item, years, repair, stamp
                )
            if repair:
                with contextlib.suppress(OSError):
                    entry.rmdir()  # emptied by moving its rows elsewhere
    return found


def _hold_nothing(hints: dict) -> None:
    hints["covered"] = []


def _act(repair: bool, fix, done: str) -> str:
    if not repair:
        return _NOT_REPAIRED
    fix()
    return done


def _check_file(
    store: OHLCVStore,
    names: tuple[str, str, str],
    path: Path,
    years: tuple[int, int],
    repair: bool,
    stamp: str,
) -> list[tuple[str, str, str]]:
    try:
        ts, values, meta = read_file(path)
    except StoreCorruptError as exc:
        reason = str(exc).split(": ", 1)[-1].split("; run", 1)[0]

        def quarantine() -> None:
            dest = store.root / QUARANTINE / stamp / path.relative_to(store.root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            first, last = years  # the partition's bars are no longer held
            store.uncover(*names, year_bounds(first)[0], year_bounds(last)[1], locked=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()

        action = _act(
            repair,
            quarantine,
            f"moved to {QUARANTINE}/{stamp}/; refetch with `backtest data fetch "
            f"--exchange {names[0]} --symbols {names[2]} --timeframe {names[1]}`",
        )
        return [(str(path), f"unreadable: {reason}", action)]
    issues = []
    if len(ts) > 1 and not (np.diff(ts) > 0).all():
        issues.append("timestamps unsorted or duplicated")
    span = partition_years(names[1])
    first_year = years[0]
    if not follows_layout(path.parent.name, span):
        issues.append(
            f"partition folder does not follow the {names[1]} layout ({span}-year partitions "
            f"such as {partition_name(2020, span)})"
        )
        first_year = -1  # no row belongs here
    elsewhere = int((partition_of(ts, span) != first_year).sum())
    if elsewhere and first_year != -1:
        issues.append(f"{elsewhere} rows belong to other partitions")
    if (
        meta.get("schema_version") != SCHEMA_VERSION
        or meta.get("symbol") != names[2]
        or meta.get("rows") != len(ts)
    ):
        issues.append("file metadata disagrees with the data")
    if not issues:
        return []

    def rewrite() -> None:
        clean_ts, clean = dedupe(ts, values)
        parts = partition_of(clean_ts, span)
        source = meta.get("source") or "repaired"
        series = path.parent.parent
        own = parts == first_year
        # rows move out first (a row already in its partition stays: it was written later than
        # a stray or a leftover of the old layout); this file shrinks or goes only after that
        for other in np.unique(parts[~own]):
            sel = parts == other
            store.merge_partition(
                series,
                int(other),
                (clean_ts[sel], {c: v[sel] for c, v in clean.items()}),
                names,
                source,
                new_wins=False,
            )
        if own.any():
            store.merge_partition(
                series,
                first_year,
                (clean_ts[own], {c: v[own] for c, v in clean.items()}),
                names,
                source,
                replace_existing=True,
            )
        else:
            path.unlink()

    return [(str(path), "; ".join(issues), _act(repair, rewrite, "rewritten"))]
