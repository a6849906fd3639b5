"""Shared helpers for the benchmark scripts: the data files, timing (warm-up, median of repeats)
and table rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from datasets import shared_data_dir


def shared_file(name: str) -> Path:
    """``name`` in the shared data folder (``$ALPHAPULSE_SHARED_DATA`` or ``../shared/data``, the
    rule the tests use), or exit saying where it was looked for."""
    folder = shared_data_dir()
    if folder is None or not (folder / name).exists():
        raise SystemExit(
            f"needs the shared data file {name} in {folder or '../shared/data'}: "
            "set ALPHAPULSE_SHARED_DATA to the folder that holds it"
        )
    return folder / name


def median_time(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_times(
    fns: Sequence[Callable[[], Any]], repeats: int = 15, warmup: int = 1
) -> list[list[float]]:
    """Wall times of each of ``fns`` run back to back, ``repeats`` rounds (after ``warmup``):
    ``out[i][r]`` is ``fns[i]`` in round ``r``. On a noisy machine the ratio of two jobs timed in
    the same round is steadier than the ratio of medians timed minutes apart."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            out[i].append(time.perf_counter() - t0)
    return out


def median_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over rounds of ``a[r] / b[r]`` (from :func:`paired_times`)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def row(
    job: str,
    ours_s: float | None,
    peer: str,
    peer_s: float | None,
    target: str = "",
    ratio: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    """A result row; ``ratio`` defaults to peer time / our time (how many times faster we are)."""
    if ratio is None and ours_s and peer_s:
        ratio = peer_s / ours_s
    out = {
        "job": job,
        "ours_s": ours_s,
        "peer": peer,
        "peer_s": peer_s,
        "ratio": ratio,
        "target": target,
        "note": note,
    }
    ratio_text = f"{ratio:.1f}x" if ratio is not None else "-"
    print(
        f"{job} | {fmt_seconds(ours_s)} | {peer}: {fmt_seconds(peer_s)} | {ratio_text} | {target} {note}".rstrip(),
        flush=True,
    )
    return out
