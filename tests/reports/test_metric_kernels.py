"""The compiled metric loop (``reports.kernels.path_stats_nb`` behind ``path_metrics``) against its
NumPy twin (``tests/reports/twins.py``) on arbitrary value paths: flat spells, new highs on the last
bar, unrecovered drawdowns, constant curves, ragged calendars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reports.metrics import path_metrics
from reports.series import simple_returns
from tests.reports import twins

returns = arrays(
    np.float64,
    st.integers(1, 400),
    elements=st.one_of(
        st.just(0.0),
        st.floats(-0.3, 0.3, allow_nan=False, allow_infinity=False),
    ),
)


def _agree(got: dict[str, float], want: dict[str, float]) -> None:
    assert list(got) == list(want)
    for k, w in want.items():
        g = got[k]
        if math.isnan(w):
            assert math.isnan(g), (k, g)
        else:
            assert math.isclose(g, w, rel_tol=1e-11, abs_tol=1e-14), (k, g, w)


@settings(max_examples=200, deadline=None)
@given(
    r=returns,
    start=st.floats(1e-3, 1e7),
    ppy=st.sampled_from([252.0, 365.0, 8760.0]),
    rf=st.sampled_from([0.0, 0.02, 0.5]),
    gaps=st.integers(0, 2**32 - 1),
)
def test_path_metrics_equal_the_numpy_twin(r, start, ppy, rf, gaps):
    values = start * np.cumprod(np.r_[1.0, 1.0 + r])
    # a ragged calendar: 1 to 3 days between bars
    steps = np.random.default_rng(gaps).integers(1, 4, len(values))
    times = pd.DatetimeIndex(
        pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.cumsum(steps), unit="D")
    )
    rt = simple_returns(values)
    rf_p = (1.0 + rf) ** (1.0 / ppy) - 1.0
    _agree(
        path_metrics(values, times, rt, ppy, rf_p), twins.path_metrics(values, times, rt, ppy, rf_p)
    )


def test_path_metrics_on_a_hand_computed_path():
    """Peak 120 at bar 1, under water through bar 3, back above at bar 4; then a new spell that
    never recovers (bars 5..6)."""
    values = np.array([100.0, 120.0, 90.0, 110.0, 130.0, 125.0, 117.0])
    times = pd.date_range("2024-01-01", periods=7, freq="D", tz="UTC")
    m = path_metrics(values, times, simple_returns(values), 365.0, 0.0)
    assert m["max_drawdown"] == 90.0 / 120.0 - 1.0
    assert m["max_drawdown_duration_bars"] == 3.0  # peak at 1, recovered at 4
    assert m["max_drawdown_duration_days"] == 3.0
    assert m["best_period"] == 110.0 / 90.0 - 1.0
    assert m["worst_period"] == 90.0 / 120.0 - 1.0
    assert m["hit_rate"] == 3 / 6
    assert m["var_95"] == m["worst_period"] + 0.25 * ((117.0 / 125.0 - 1.0) - m["worst_period"])
    assert m["cvar_95"] == m["worst_period"]


@settings(max_examples=300, deadline=None)
@given(
    x=arrays(
        np.float64,
        st.integers(1, 300),
        elements=st.one_of(st.sampled_from([0.0, -0.1, 0.25]), st.floats(-1.0, 1.0)),
    ),
    data=st.data(),
)
def test_the_bucket_selection_equals_a_sort(x, data):
    """The k smallest by buckets: ties, constant arrays, k = 1 and k = n."""
    from reports.kernels import smallest_nb

    k = data.draw(st.integers(1, len(x)))
    s = np.sort(x)
    total, kth, nxt = smallest_nb(x, k, float(x.min()), float(x.max()))
    assert kth == s[k - 1]
    assert nxt == (s[k] if k < len(x) else s[k - 1])
    assert math.isclose(total, float(s[:k].sum()), rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize(
    "x",
    [
        [0.0, 5e-324, 0.0, 1e-320, 0.0] * 30,  # a subnormal span: the bucket scale overflows
        [0.0] * 100 + [5e-324],
        [-1.0] + [0.0] * 200,
        [1e300, -1e300] * 40,
    ],
)
def test_the_bucket_selection_survives_extreme_spans(x):
    from reports.kernels import smallest_nb

    x = np.asarray(x)
    s = np.sort(x)
    for k in (1, 5, len(x) // 2, len(x)):
        total, kth, nxt = smallest_nb(x, k, float(x.min()), float(x.max()))
        assert kth == s[k - 1] and nxt == (s[k] if k < len(x) else s[k - 1])
        # summed in another order: equal to round-off of the magnitudes summed
        scale = float(np.abs(s[:k]).sum())
        assert math.isclose(total, float(s[:k].sum()), rel_tol=1e-12, abs_tol=1e-12 * scale)
