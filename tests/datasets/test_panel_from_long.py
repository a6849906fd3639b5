"""MarketData.from_long after its speed-up (categorical fast path, O(n) duplicate check, asset-major
scatter): same panel as a plain pandas pivot, same errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets import MarketData
from datasets.errors import DataError

HOUR = 3_600_000


def _pivot_oracle(frame: pd.DataFrame, field: str, symbols: list[str]) -> np.ndarray:
    wide = frame.pivot(index="timestamp_ms", columns="symbol", values=field)
    grid = np.arange(frame["timestamp_ms"].min(), frame["timestamp_ms"].max() + HOUR, HOUR)
    return wide.reindex(index=grid, columns=symbols).to_numpy(dtype=np.float64)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A/USDT", "B/USDT", "C/USDT"]), st.integers(0, 40)),
        min_size=1,
        max_size=60,
        unique=True,
    ),
    st.booleans(),
    st.booleans(),
)
def test_from_long_equals_a_pandas_pivot(cells, categorical, shuffle):
    rng = np.random.default_rng(len(cells))
    frame = pd.DataFrame(
        {"symbol": [c[0] for c in cells], "timestamp_ms": [c[1] * HOUR for c in cells]}
    )
    frame["close"] = rng.uniform(1, 2, len(frame))
    frame["volume"] = rng.uniform(0, 9, len(frame))
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=1)
    else:
        frame = frame.sort_values(["symbol", "timestamp_ms"])
    if categorical:
        frame["symbol"] = pd.Categorical(
            frame["symbol"], categories=["C/USDT", "Z/USDT", "A/USDT", "B/USDT"]
        )
    symbols = sorted(set(frame["symbol"].astype(str)))
    market = MarketData.from_long(frame, "1h")
    assert list(market.symbols) == symbols  # unused categories ("Z/USDT") are not columns
    for field in ("close", "volume"):
        assert np.array_equal(
            market.values(field), _pivot_oracle(frame, field, symbols), equal_nan=True
        )
    assert np.array_equal(market.values("open"), market.values("close"), equal_nan=True)
    assert market.values("close").flags.c_contiguous


@pytest.mark.parametrize("categorical", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_duplicates_are_refused_sorted_or_not(categorical, shuffle):
    frame = pd.DataFrame(
        {
            "symbol": ["A", "A", "A", "B"],
            "timestamp_ms": [0, HOUR, HOUR, 0],
            "close": [1.0, 2.0, 3.0, 4.0],
        }
    )
    if shuffle:
        frame = frame.iloc[[2, 3, 0, 1]]
    if categorical:
        frame["symbol"] = frame["symbol"].astype("category")
    with pytest.raises(DataError, match="duplicate"):
        MarketData.from_long(frame, "1h")


def test_symbol_subset_order_alignment_and_missing_values():
    frame = pd.DataFrame(
        {
            "symbol": pd.Categorical(["B", "A", "C"]),
            "timestamp_ms": [0, HOUR, 2 * HOUR],
            "close": [1.0, 2.0, 3.0],
        }
    )
    market = MarketData.from_long(frame, "1h", symbols=["C", "B"])
    assert market.symbols == ("C", "B") and market.n_bars == 3
    assert np.array_equal(
        market.values("close"), [[np.nan, 1.0], [np.nan, np.nan], [3.0, np.nan]], equal_nan=True
    )
    with pytest.raises(DataError, match="not aligned to the `1h` grid"):
        MarketData.from_long(frame.assign(timestamp_ms=[0, HOUR + 1, 2 * HOUR]), "1h")
    with pytest.raises(DataError, match="missing values"):
        MarketData.from_long(frame.assign(symbol=pd.Categorical(["B", None, "C"])), "1h")
