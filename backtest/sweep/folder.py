"""The sweep folder: atomic writes, per-task chunks (resume), the manifest check and the tidy table.

Layout: ``sweep.parquet`` / ``sweep.csv`` (one row per grid point), ``returns.parquet`` (bars x
points), ``chunks/`` (one ``.returns.npz`` + ``.json`` pair per finished task), ``sweep.json``.
Re-exported by :mod:`backtest.sweep`. Design: docs/sweeps.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from backtest.errors import ConfigError
from backtest.sweep.task import TaskOutput

TABLE, TABLE_CSV, RETURNS, MANIFEST, CHUNKS = (
    "sweep.parquet",
    "sweep.csv",
    "returns.parquet",
    "sweep.json",
    "chunks",
)


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` then rename over ``path``: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_chunk(out: Path, task_id: str, result: TaskOutput) -> None:
    """Save one finished task: its returns (``.npz``), then its rows (``.json``, the completion mark).

    Both are written atomically; rows are JSON so that they read back exactly as computed (floats
    round-trip, NaN included).
    """
    folder = out / CHUNKS
    folder.mkdir(parents=True, exist_ok=True)
    frame = (
        returns_frame(list(result.returns.values()))
        if result.returns
        else pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"))
    )
    index = pd.DatetimeIndex(frame.index)

    def save(path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(
                fh,
                values=frame.to_numpy(dtype=np.float64),
                index=index.asi8,
                columns=np.asarray(frame.columns, dtype=str),
                unit=np.asarray(index.unit),
            )

    write_atomic(folder / f"{task_id}.returns.npz", save)
    write_atomic(folder / f"{task_id}.json", lambda p: p.write_text(json.dumps(result.rows)))


def load_chunks(out: Path) -> list[TaskOutput]:
    """The finished chunks of a sweep folder (a chunk without its ``.json`` never finished)."""
    folder = out / CHUNKS
    outputs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with np.load(path.with_name(f"{path.stem}.returns.npz")) as npz:
            index = pd.DatetimeIndex(npz["index"].view(f"datetime64[{npz['unit']}]")).tz_localize(
                "UTC"
            )
            returns = {
                str(c): pd.Series(npz["values"][:, j], index=index, name=str(c))
                for j, c in enumerate(npz["columns"])
            }
        outputs.append(TaskOutput(json.loads(path.read_text()), returns, saved=True))
    return outputs


def combine(outputs: Sequence[TaskOutput]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (one per point) and returns (bars x points) of several task outputs, unsorted."""
    rows = [r for t in outputs for r in t.rows]
    series = [s for t in outputs for s in t.returns.values()]
    return _as_table(pd.DataFrame(rows)), (returns_frame(series) if series else pd.DataFrame())


def returns_frame(series: Sequence[pd.Series]) -> pd.DataFrame:
    """The series side by side on the sorted union of their indexes, NaN where a series has no
    value (``pd.concat(series, axis=1, sort=True)``, aligning each distinct index object once:
    the returns of one batch share theirs)."""
    distinct: dict[int, pd.Index] = {}
    for s in series:
        distinct.setdefault(id(s.index), s.index)
    indexes = list(distinct.values())
    index = indexes[0]
    for other in indexes[1:]:
        if not other.equals(index):
            index = index.union(other, sort=True)
    if not index.is_monotonic_increasing:
        index = index.sort_values()
    where = {key: index.get_indexer(ix) for key, ix in distinct.items()}
    values = np.full((len(index), len(series)), np.nan)
    for j, s in enumerate(series):
        values[where[id(s.index)], j] = s.to_numpy(dtype=np.float64)
    return pd.DataFrame(values, index=index, columns=pd.Index([s.name for s in series]))


def read_chunks(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All finished chunks of a sweep folder as ``(rows, returns)`` (empty frames when none)."""
    return combine(load_chunks(out))


def _as_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns mixing numbers and text (e.g. a swept list [30, "auto"]) become text for Parquet."""
    for col in frame.columns:
        if frame[col].dtype == object:
            kinds = {
                type(v)
                for v in frame[col]
                if v is not None and not (isinstance(v, float) and math.isnan(v))
            }
            if len(kinds) > 1 and not kinds <= {int, float}:
                frame[col] = frame[col].astype(str)
    return frame


def sweep_table(
    rows: pd.DataFrame, returns: pd.DataFrame, param_keys: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy table (sorted by ``point_id``; params, metrics, diagnostics) and the returns matrix."""
    from reports.metrics import METRICS

    table = rows.drop_duplicates("point_id", keep="last").sort_values("point_id", kind="mergesort")
    metric_cols = [m for m in METRICS if m in table.columns]
    order = ["point_id", *param_keys, *metric_cols, "error"]
    table = table.reindex(
        columns=[c for c in order if c in table.columns]
        + [c for c in table.columns if c not in order]
    ).reset_index(drop=True)
    if "error" in table:
        table["error"] = table["error"].fillna("").astype(str)
    ran = [p for p in table["point_id"] if p in returns.columns]
    returns = returns.reindex(columns=ran)
    if isinstance(returns.index, pd.DatetimeIndex):
        returns.index = pd.DatetimeIndex(
            returns.index,
            freq=cast(Any, None),  # None drops the freq; the stubs do not list it
            name="time",
        )  # as read back from disk
    return table, returns


# --------------------------------------------------------------------------------------- resume
def config_hash(data: Mapping[str, Any]) -> str:
    """Short sha256 of a sweep config: a folder holds the results of one config only."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_folder(out: Path, digest: str, resume: bool) -> None:
    """Refuse an output folder that holds another sweep, or this one without ``resume``."""
    manifest = out / MANIFEST
    finished = list((out / CHUNKS).glob("*.json")) if (out / CHUNKS).is_dir() else []
    if resume:
        if manifest.exists() and json.loads(manifest.read_text()).get("config_hash") != digest:
            raise ConfigError(
                [
                    (
                        "",
                        f"--resume: {out} holds a sweep of a different config (or grid); use "
                        "another --out, or remove the folder to start over",
                    )
                ]
            )
    elif finished or manifest.exists():
        raise ConfigError(
            [
                (
                    "",
                    f"{out} already holds a sweep ({len(finished)} finished chunks); pass "
                    "--resume to continue it, or choose another --out",
                )
            ]
        )
