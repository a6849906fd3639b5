"""`panel_from_files`: the loader's numba kernel equals `MarketData.from_long` and refuses bad rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets import MarketData
from datasets.store.format import FIELDS, make_table
from datasets.store.panel import BLOCK, FileSlice, concat_columns, panel_from_files

HOUR = 3_600_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % HOUR


def _file(owner: int, bars: np.ndarray, rng: np.random.Generator, *, lo=0, hi=None, floats=False):
    """A partition file of symbol ``owner`` holding ``bars`` (grid positions), as the store would
    write it: exact decimals, or float64 columns that no decimal scale reproduces."""
    ts = T0 + HOUR * bars.astype(np.int64)
    values = {c: np.round(rng.uniform(1, 1000, len(bars)), 2) for c in FIELDS}
    if floats:
        values["volume"] = rng.uniform(0, 1, len(bars)) / 3
    table = make_table(ts, values, {})
    return FileSlice(owner, table, ts, lo, len(ts) if hi is None else hi, {})


def _reference(files, names) -> MarketData:
    cols = concat_columns(files, FIELDS)
    frame = pd.DataFrame(
        {
            "symbol": [names[o] for o in np.repeat(cols.owners, cols.sizes)],
            "timestamp_ms": cols.ts,
            **cols.values,
        }
    )
    return MarketData.from_long(frame, "1h", symbols=names)


def _assert_same(market: MarketData | None, expected: MarketData) -> None:
    assert market is not None
    assert market.index.equals(expected.index) and market.symbols == expected.symbols
    for field in FIELDS:
        got, want = market.values(field), expected.values(field)
        assert got.flags.c_contiguous
        assert np.array_equal(got.view(np.int64), want.view(np.int64)), field  # bit for bit


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_symbols=st.integers(1, 5),
    n_bars=st.integers(1, 3 * BLOCK + 7),
    seed=st.integers(0, 2**32 - 1),
)
def test_panel_equals_from_long(data, n_symbols, n_bars, seed):
    """Ragged listings, gaps, several files per symbol, bounds inside files, float columns, blocks."""
    rng = np.random.default_rng(seed)
    names = [f"S{j}/USDT" for j in range(n_symbols)]
    files = []
    for j in range(n_symbols):
        density = data.draw(st.sampled_from([1.0, 0.9, 0.3]))
        bars = np.flatnonzero(rng.random(n_bars) < density)
        if not len(bars):
            bars = np.array([int(rng.integers(n_bars))])
        n_files = data.draw(st.integers(1, min(3, len(bars))))
        cuts = (
            np.sort(rng.choice(np.arange(1, len(bars)), n_files - 1, replace=False))
            if n_files > 1
            else []
        )
        for part in np.split(bars, cuts):
            lo = int(rng.integers(0, 2)) if len(part) > 2 else 0  # a bound that drops a row
            files.append(_file(j, part, rng, lo=lo, floats=bool(rng.integers(0, 2))))
    files = [f for f in files if f.rows] or files[:1]
    names = [names[j] for j in sorted({f.owner for f in files})]
    remap = {o: i for i, o in enumerate(sorted({f.owner for f in files}))}
    files = [f._replace(owner=remap[f.owner]) for f in files]
    _assert_same(panel_from_files(files, names, "1h", "test", FIELDS), _reference(files, names))


def test_off_grid_unsorted_and_duplicated_rows_are_refused():
    rng = np.random.default_rng(1)
    names = ["A/USDT", "B/USDT"]
    good = [_file(0, np.arange(0, 50), rng), _file(1, np.arange(10, 60), rng)]
    assert panel_from_files(good, names, "1h", "t", FIELDS) is not None

    off_grid = _file(1, np.arange(10, 60), rng)
    ts = off_grid.ts.copy()
    ts[5] += 60_000  # a candle at hh:01
    assert panel_from_files([good[0], off_grid._replace(ts=ts)], names, "1h", "t", FIELDS) is None

    unsorted = ts.copy()
    unsorted[[3, 4]] = off_grid.ts[[4, 3]]
    unsorted[5] = off_grid.ts[5]
    assert (
        panel_from_files([good[0], off_grid._replace(ts=unsorted)], names, "1h", "t", FIELDS)
        is None
    )

    overlap = [good[0], _file(1, np.arange(10, 40), rng), _file(1, np.arange(39, 60), rng)]
    assert panel_from_files(overlap, names, "1h", "t", FIELDS) is None  # bar 39 twice
