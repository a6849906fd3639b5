"""Sets of integer intervals ``[a, b]`` (inclusive, e.g. bar open times in UTC ms), kept as sorted,
disjoint, non-adjacent lists of pairs: what the store knows it holds completely."""

from __future__ import annotations

from collections.abc import Iterable

Interval = tuple[int, int]


def normalise(intervals: Iterable[Iterable[int]]) -> list[Interval]:
    """Sorted, merged (overlapping or adjacent) intervals; empty ones (``a > b``) dropped."""
    out: list[Interval] = []
    for a, b in sorted((int(a), int(b)) for a, b in intervals):
        if a > b:
            continue
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def union(intervals: Iterable[Iterable[int]], lo: int, hi: int) -> list[Interval]:
    """``intervals`` with ``[lo, hi]`` added."""
    return normalise([*intervals, (lo, hi)])


def subtract(intervals: Iterable[Iterable[int]], lo: int, hi: int) -> list[Interval]:
    """``intervals`` without ``[lo, hi]``."""
    out: list[Interval] = []
    for a, b in normalise(intervals):
        out += [(a, min(b, lo - 1))] if a < lo else []
        out += [(max(a, hi + 1), b)] if b > hi else []
    return normalise(out)


def gaps(intervals: Iterable[Iterable[int]], lo: int, hi: int) -> list[Interval]:
    """The parts of ``[lo, hi]`` that ``intervals`` do not cover."""
    out: list[Interval] = []
    cursor = lo
    for a, b in normalise(intervals):
        if b < cursor:
            continue
        if a > hi:
            break
        if a > cursor:
            out.append((cursor, a - 1))
        cursor = max(cursor, b + 1)
    if cursor <= hi:
        out.append((cursor, hi))
    return out
