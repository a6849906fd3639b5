"""Rebalance schedules: which bars are decision bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.schedule import Schedule, period_labels


def _days(n: int, start: str = "2024-01-01") -> pd.DatetimeIndex:  # 2024-01-01 is a Monday
    return pd.date_range(start, periods=n, freq="D", tz="UTC")


def test_weekly_decides_on_the_last_bar_of_each_monday_week():
    idx = _days(21)
    bars = Schedule(every="1W").decision_bars(idx)
    assert [idx[b].day_name() for b in bars[1:]] == ["Sunday", "Sunday"]
    assert bars.tolist() == [0, 6, 13]  # the last week is still open: no decision on its last bar


def test_weekly_anchor_moves_the_week_end():
    idx = _days(21)
    bars = Schedule(every="W-FRI").decision_bars(idx, first=1)
    assert {idx[b].day_name() for b in bars[1:]} == {"Thursday"}  # weeks start Friday


def test_monthly_and_quarterly():
    idx = _days(200)
    monthly = Schedule(every="1M").decision_bars(idx)
    assert [idx[b].strftime("%m-%d") for b in monthly[1:4]] == ["01-31", "02-29", "03-31"]
    quarterly = Schedule(every="Q").decision_bars(idx)
    assert [idx[b].strftime("%m-%d") for b in quarterly[1:]] == ["03-31", "06-30"]


def test_every_n_bars_and_intraday_periods():
    idx = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    assert Schedule(every=None, bars=10).decision_bars(idx, first=5).tolist() == [5, 15, 25, 35, 45]
    four_hourly = Schedule(every="4h").decision_bars(idx)
    assert all(idx[b].hour % 4 == 3 for b in four_hourly[1:])


def test_first_decision_is_the_first_full_window():
    idx = _days(30)
    assert Schedule(every="1W").decision_bars(idx, first=9)[0] == 9


def test_period_labels_two_week_multiple():
    # two-week periods count from the Monday of 1970-01-05; 2024-01-01 starts one
    _, counts = np.unique(period_labels(_days(28), "2W"), return_counts=True)
    assert counts.tolist() == [14, 14]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": "fortnightly"}, "calendar period"),
        ({"every": None, "bars": 0}, "`rebalance.bars` must be >= 1"),
        ({"every": "1W", "bars": 5}, "either `rebalance.every` or `rebalance.bars`"),
        ({"every": "1W", "drift_band": 1.5}, r"`rebalance.drift_band` must be in \(0, 1\)"),
        ({"every": None}, "needs `every`, `bars`, `drift_band` or `band_mode = 'cost'`"),
        (
            {"band_mode": "cost", "drift_band": 0.05},
            r"`rebalance.drift_band` \(0.05\) is the width of an absolute or relative band",
        ),
        ({"band_mode": "cost", "band_target": "full"}, "drop `rebalance.band_target`"),
        ({"band_mode": "cost", "risk_aversion": 0.0}, "must be a positive number; got 0.0"),
        ({"drift_band": 0.05, "risk_aversion": 2.0}, "needs `band_mode = 'cost'`"),
    ],
)
def test_bad_schedules_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)


def test_the_cost_band_scale_is_the_small_cost_no_trade_region():
    """Half-width (3 c w^2 (1-w)^2 / (2 g))^(1/3): the kernel gets (1.5 c / g)^(1/3) and multiplies
    it by (w (1 - w))^(2/3)."""
    band = Schedule(band_mode="cost", risk_aversion=2.0)
    c, w = 0.0015, 0.05
    assert band.band_scale(c) == pytest.approx((0.75 * c) ** (1 / 3), rel=1e-15)
    half_width = band.band_scale(c) * (w * (1 - w)) ** (2 / 3)
    assert half_width == pytest.approx((3 * c * w**2 * (1 - w) ** 2 / 4.0) ** (1 / 3), rel=1e-12)
    assert band.band_scale(0.0) == 0.0  # no cost, no region
    assert band.banded and band.to_edge
    assert Schedule(drift_band=0.05).band_scale(0.01) == 0.05
    assert "cost band (risk aversion 2, trade to edge)" in band.describe()


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(-(10**9), 2 * 10**9),  # seconds since the epoch, before 1970 too
    step=st.sampled_from([60, 3_600, 14_400, 86_400, 90_000]),
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
    every=st.sampled_from(["1H", "4H", "1D", "3D", "1W", "W-FRI", "2W", "1M", "2M", "1Q"]),
)
def test_period_labels_split_where_the_calendar_does(start, step, unit, every):
    """Bars share a label exactly when pandas puts them in the same calendar period (UTC), for
    every unit of the index."""
    idx = pd.DatetimeIndex(
        pd.to_datetime(start + step * np.arange(200), unit="s", utc=True)
    ).as_unit(unit)
    labels = period_labels(idx, every)
    naive = idx.tz_convert(None)
    mult = int(every[0]) if every[0].isdigit() else 1
    kind = every.lstrip("0123456789")
    if kind == "H":  # hours count from the epoch, as pandas' floor("4h") does
        key = naive.as_unit("ns").asi8 // (3_600 * 10**9 * mult)
    else:  # weeks from Monday (W-SUN: weeks ending Sunday) or Friday (W-THU), months, quarters
        freq = {"D": "D", "W": "W-SUN", "W-FRI": "W-THU", "M": "M", "Q": "Q"}[kind]
        ordinal = naive.to_period(freq).asi8  # periods since 1970 (weeks: the first is 1)
        key = (ordinal - kind.startswith("W")) // mult  # multiples from the week of 1970-01-05
    np.testing.assert_array_equal(labels[1:] != labels[:-1], key[1:] != key[:-1])
