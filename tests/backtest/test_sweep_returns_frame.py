"""The sweep's returns matrix: ``returns_frame`` equals ``pd.concat(axis=1, sort=True)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.sweep.folder import returns_frame


def test_returns_frame_equals_concat_for_shared_and_distinct_indexes():
    index = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    rng = np.random.default_rng(4)
    shared = index[5:]
    series = [
        pd.Series(rng.normal(size=25), index=shared, name="a"),
        pd.Series(rng.normal(size=25), index=shared, name="b"),  # the same index object
        pd.Series(rng.normal(size=10), index=index[:10], name="c"),
        pd.Series(rng.normal(size=8), index=index[20:28].copy(), name="d"),
    ]
    expected = pd.concat(series, axis=1, sort=True)
    got = returns_frame(series)
    pd.testing.assert_frame_equal(got, expected, check_freq=False)
    assert got.isna().sum().tolist() == [5, 5, 20, 22]
