"""reports.regimes: labels use only past data, windows scale with the bar length, stats per regime."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.regimes import regime_labels, regime_performance


def _series(values, freq="D") -> pd.Series:
    return pd.Series(
        np.asarray(values, dtype=float),
        index=pd.date_range("2021-01-01", periods=len(values), freq=freq, tz="UTC"),
    )


def test_trend_label_of_bar_t_uses_prices_up_to_t_minus_1():
    bench = _series([10, 11, 12, 13, 9, 8, 20])
    labels = regime_labels(bench, ma_days=3, vol_days=2)
    # MA(3) at bar 2 = 11 (< 12) -> the return over bar 3 is labelled "above".
    assert labels["trend"].tolist() == [
        None,
        None,
        None,
        "above 3d MA",
        "above 3d MA",
        "below 3d MA",
        "below 3d MA",
    ]
    # Changing the last price changes no label (the label of bar t ignores bar t).
    changed = bench.copy()
    changed.iloc[-1] = 1.0
    pd.testing.assert_frame_equal(regime_labels(changed, ma_days=3, vol_days=2), labels)


def test_windows_in_days_scale_to_hourly_bars():
    rng = np.random.default_rng(0)
    bench = _series(100 * np.cumprod(1 + rng.normal(0, 0.01, 24 * 6)), freq="h")
    labels = regime_labels(bench, ma_days=2, vol_days=1)
    assert labels["trend"].iloc[:48].isna().all() and labels["trend"].iloc[48:].notna().all()
    assert (
        labels["volatility"].iloc[:25].isna().all() and labels["volatility"].iloc[25:].notna().all()
    )


def test_volatility_regime_splits_at_the_median():
    rng = np.random.default_rng(1)
    bench = _series(100 * np.cumprod(1 + rng.normal(0, 0.02, 500)))
    vol = regime_labels(bench, vol_days=20)["volatility"].dropna()
    assert abs((vol == "high vol").sum() - (vol == "low vol").sum()) <= 1


def test_regime_performance_chains_returns_within_regime():
    bench = _series([100, 110, 121, 110, 99, 108.9])
    strat = _series([100, 101, 102.01, 101, 100, 101])
    table = regime_performance({"s": strat}, bench, periods_per_year=365, ma_days=2, vol_days=2)
    row = table[(table.strategy == "s") & (table.regime == "above 2d MA")].iloc[0]
    r = strat.pct_change().to_numpy()[1:]
    labels = regime_labels(bench, ma_days=2, vol_days=2)["trend"].iloc[1:].to_numpy()
    mask = labels == "above 2d MA"
    assert row.n_periods == mask.sum()
    assert row.total_return == pytest.approx(np.prod(1 + r[mask]) - 1)
    assert row.ann_return == pytest.approx((1 + row.total_return) ** (365 / mask.sum()) - 1)
    assert row.volatility == pytest.approx(np.std(r[mask], ddof=1) * np.sqrt(365))
    assert set(table.strategy) == {"s", "benchmark"}
    assert list(table.columns) == [
        "strategy",
        "regime_type",
        "regime",
        "n_periods",
        "share",
        "total_return",
        "ann_return",
        "volatility",
        "max_drawdown",
    ]
    all_row = table[(table.strategy == "s") & (table.regime_type == "all")].iloc[0]
    assert all_row.total_return == pytest.approx(0.01) and all_row.share == 1.0


def test_regime_max_drawdown_of_chained_curve():
    bench = _series([100, 101, 102, 103, 104, 105, 106])  # always above its MA
    strat = _series([100, 90, 99, 80, 100, 100, 100])
    table = regime_performance(
        {"s": strat}, bench, periods_per_year=365, ma_days=1, vol_days=2, include_benchmark=False
    )
    row = table[table.regime == "above 1d MA"].iloc[0]
    # windows are at least 2 bars: the MA exists from bar 1, so the labelled returns are bars 2..6
    r = strat.pct_change().to_numpy()[2:]
    path = np.r_[1, np.cumprod(1 + r)]
    assert row.max_drawdown == pytest.approx(np.min(path / np.maximum.accumulate(path) - 1))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda b: regime_performance({}, b, periods_per_year=365),
            r"`equity_by_strategy` must be a non-empty",
        ),
        (
            lambda b: regime_performance({"x": b.iloc[:-1]}, b, periods_per_year=365),
            r"`equity_by_strategy\['x'\]` must have the benchmark's index",
        ),
        (lambda b: regime_labels(b, ma_days=0), r"`ma_days` must be a number of days > 0; got 0"),
        (
            lambda b: regime_labels(b, vol_days=-1.0),
            r"`vol_days` must be a number of days > 0; got -1.0",
        ),
    ],
)
def test_regime_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(_series(np.linspace(100, 120, 30)))
