"""`datasets.store.intervals` against a brute-force set of integers."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from datasets.store.intervals import gaps, normalise, subtract, union

spans = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=6)
bounds = st.tuples(st.integers(-5, 65), st.integers(-5, 65))


def _points(intervals) -> set[int]:
    return {x for a, b in intervals for x in range(a, b + 1)}


def _canonical(intervals) -> bool:
    pairs = list(intervals)
    return all(a <= b for a, b in pairs) and all(
        b1 + 1 < a2 for (_, b1), (a2, _) in itertools.pairwise(pairs)
    )


@given(spans, bounds)
def test_union_subtract_gaps_match_sets(held, lohi):
    lo, hi = lohi
    base = _points(normalise(held))
    assert _points(held) == base and _canonical(normalise(held))
    wanted = set(range(lo, hi + 1))
    assert _points(union(held, lo, hi)) == base | wanted and _canonical(union(held, lo, hi))
    assert _points(subtract(held, lo, hi)) == base - wanted and _canonical(subtract(held, lo, hi))
    assert _points(gaps(held, lo, hi)) == wanted - base and _canonical(gaps(held, lo, hi))
