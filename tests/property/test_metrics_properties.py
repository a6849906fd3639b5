"""Invariants of reports.metrics and reports.regimes on arbitrary equity curves (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reports.metrics import compute_metrics, drawdown_durations, monthly_returns
from reports.regimes import regime_labels

# A return below 1e-9 is a flat bar: float64 equity cannot carry it to within the rounding of a
# recomputed return (reports.series.RETURN_RESOLUTION), so such draws are snapped to exactly 0
# rather than left to flip across that resolution with the equity's scale.
returns_arrays = arrays(
    np.float64,
    st.integers(3, 300),
    elements=st.floats(-0.5, 0.5, allow_nan=False, allow_infinity=False).map(
        lambda x: 0.0 if abs(x) < 1e-9 else x
    ),
)


def _equity(r: np.ndarray, start: float = 100.0) -> pd.Series:
    idx = pd.date_range("2021-03-15", periods=len(r) + 1, freq="D", tz="UTC")
    return pd.Series(start * np.cumprod(np.r_[1.0, 1.0 + r]), index=idx)


@settings(max_examples=60, deadline=None)
@given(returns_arrays, st.floats(0.01, 1e6))
def test_return_metrics_do_not_depend_on_scale(r, scale):
    a = compute_metrics(_equity(r), periods_per_year=365)
    b = compute_metrics(_equity(r, 100.0 * scale), periods_per_year=365)
    for k in (
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "var_95",
        "cvar_95",
        "hit_rate",
        "max_drawdown_duration_bars",
    ):
        if math.isnan(a[k]):
            assert math.isnan(b[k]), k
        else:
            assert math.isclose(a[k], b[k], rel_tol=1e-7, abs_tol=1e-10), k


@settings(max_examples=60, deadline=None)
@given(returns_arrays)
def test_metric_bounds_and_orderings(r):
    m = compute_metrics(_equity(r), periods_per_year=365)
    assert -1.0 <= m["max_drawdown"] <= 0.0
    assert 0 <= m["max_drawdown_duration_bars"] <= len(r)
    eps = 1e-12  # the mean of equal returns can differ from them in the last bit
    assert (
        m["worst_period"] - eps <= m["cvar_95"] <= m["var_95"] + eps <= m["best_period"] + 2 * eps
    )
    assert math.isnan(m["hit_rate"]) or 0.0 <= m["hit_rate"] <= 1.0
    assert math.isclose(1 + m["total_return"], np.prod(1 + r), rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(returns_arrays)
def test_drawdown_spells_cover_exactly_the_underwater_bars(r):
    values = _equity(r).to_numpy()
    spells = drawdown_durations(
        values, pd.date_range("2020-01-01", periods=len(values), freq="D", tz="UTC")
    )
    under = values < np.maximum.accumulate(values)
    covered = np.zeros(len(values), dtype=bool)
    for peak, end, rec in zip(spells["peak"], spells["end"], spells["recovered"], strict=True):
        covered[peak + 1 : end if rec else end + 1] = True
        assert values[peak] == np.maximum.accumulate(values)[peak]
    np.testing.assert_array_equal(covered, under)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(3, 300), elements=st.floats(-0.2, 0.2)))
def test_monthly_returns_compound_to_total(r):
    # (1 + r) near 0 loses digits to cancellation; moderate returns keep the identity exact to 1e-9
    eq = _equity(r)
    table = monthly_returns(eq)
    assert math.isclose(
        np.prod(1 + table.stack().dropna().to_numpy()), eq.iloc[-1] / eq.iloc[0], rel_tol=1e-9
    )


@settings(max_examples=30, deadline=None)
@given(
    arrays(np.float64, st.integers(30, 120), elements=st.floats(-0.3, 0.3)),
    st.integers(0, 200),
    st.floats(0.5, 2.0),
)
def test_regime_labels_never_look_ahead(r, cut, factor):
    bench = _equity(r)
    cut = cut % len(bench)
    changed = bench.copy()
    changed.iloc[cut:] = changed.iloc[cut:] * factor
    a = regime_labels(bench, ma_days=10, vol_days=5)["trend"].iloc[: cut + 1]
    b = regime_labels(changed, ma_days=10, vol_days=5)["trend"].iloc[: cut + 1]
    pd.testing.assert_series_equal(a, b)
