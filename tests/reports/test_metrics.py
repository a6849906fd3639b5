"""reports.metrics: hand-computed values, edge cases and error messages."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports.metrics import (
    METRICS,
    compute_metrics,
    drawdown,
    drawdown_durations,
    monthly_returns,
    periodic_risk_free,
    rebalance_diagnostics,
    returns_from_equity,
    rolling_sharpe,
    rolling_volatility,
)
from tests.reports.inputs import make_backtest


def _eq(values, start="2024-01-01", freq="D") -> pd.Series:
    return pd.Series(
        np.asarray(values, dtype=float),
        index=pd.date_range(start, periods=len(values), freq=freq, tz="UTC"),
    )


def _naive_spells(values: np.ndarray) -> list[tuple[int, int]]:
    """Slow twin: (peak, end) of each drawdown spell by walking the path."""
    spells, peak, start = [], values[0], 0
    in_dd = False
    for t in range(1, len(values)):
        if values[t] >= peak:
            if in_dd:
                spells.append((start, t))
                in_dd = False
            peak, start = values[t], t
        else:
            in_dd = True
    if in_dd:
        spells.append((start, len(values) - 1))
    return spells


def test_hand_computed_core_metrics():
    eq = _eq([100.0, 110.0, 99.0, 108.9, 119.79])
    r = np.array([0.1, -0.1, 0.1, 0.1])
    m = compute_metrics(eq, periods_per_year=365, risk_free_rate=0.0)
    assert m["n_periods"] == 4 and m["years"] == pytest.approx(4 / 365)
    assert m["total_return"] == pytest.approx(1.1979 - 1)
    assert m["cagr"] == pytest.approx(1.1979 ** (365 / 4) - 1)
    assert m["volatility"] == pytest.approx(np.std(r, ddof=1) * math.sqrt(365))
    assert m["sharpe"] == pytest.approx(r.mean() / np.std(r, ddof=1) * math.sqrt(365))
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt(0.01 / 4) * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["max_drawdown_duration_bars"] == 3  # peak at bar 1, back above it at bar 4
    assert m["max_drawdown_duration_days"] == 3.0
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.1)
    assert m["best_period"] == pytest.approx(0.1) and m["worst_period"] == pytest.approx(-0.1)
    assert m["hit_rate"] == 0.75
    assert m["var_95"] == pytest.approx(np.percentile(r, 5))
    assert m["cvar_95"] == pytest.approx(-0.1)  # floor(3 * 0.05) + 1 = 1 worst return
    assert list(m) == list(METRICS)
    for key in ("turnover", "fees", "n_trades", "tracking_error", "exposure", "n_rebalances"):
        assert math.isnan(m[key]), key


def test_risk_free_is_deannualised_geometrically():
    assert periodic_risk_free(0.02, 365) == pytest.approx(1.02 ** (1 / 365) - 1)
    eq = _eq(100 * np.cumprod(1 + np.tile([0.01, -0.005, 0.002], 20)))
    r = returns_from_equity(eq).to_numpy() - (1.02 ** (1 / 365) - 1)
    m = compute_metrics(eq, periods_per_year=365, risk_free_rate=0.02)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))


def test_hit_rate_ignores_flat_bars_and_constant_curve_is_nan():
    m = compute_metrics(_eq([100, 100, 100, 101, 100.5]), periods_per_year=365)
    assert m["hit_rate"] == 0.5  # one up, one down, two flat bars ignored
    flat = compute_metrics(_eq([100.0] * 5), periods_per_year=365, risk_free_rate=0.0)
    assert (
        math.isnan(flat["sharpe"]) and math.isnan(flat["sortino"]) and math.isnan(flat["hit_rate"])
    )
    assert flat["max_drawdown"] == 0.0 and math.isnan(flat["calmar"])
    assert flat["max_drawdown_duration_bars"] == 0.0


def test_initial_value_adds_first_return_and_seeds_peak():
    eq = _eq([99.0, 100.0, 102.0])
    m = compute_metrics(eq, periods_per_year=365, initial_value=100.0)
    assert m["n_periods"] == 3 and m["start_value"] == 100.0
    assert m["total_return"] == pytest.approx(0.02)
    assert m["max_drawdown"] == pytest.approx(-0.01)
    assert m["max_drawdown_duration_bars"] == 2  # from the initial value (one bar earlier) to bar 1
    assert m["max_drawdown_duration_days"] == 2.0
    assert drawdown(eq, initial_value=100.0).tolist() == pytest.approx([-0.01, 0.0, 0.0])
    assert returns_from_equity(eq, 100.0).index.equals(eq.index)


def test_unrecovered_drawdown_runs_to_last_bar_in_hours():
    eq = _eq([100, 120, 90, 95, 100, 110], freq="h")
    m = compute_metrics(eq, periods_per_year=8760)
    assert m["max_drawdown"] == pytest.approx(-0.25)
    assert m["max_drawdown_duration_bars"] == 4
    assert m["max_drawdown_duration_days"] == pytest.approx(4 / 24)


def test_drawdown_durations_match_naive_twin():
    rng = np.random.default_rng(5)
    for _ in range(20):
        values = 100 * np.cumprod(1 + rng.normal(0, 0.02, 300))
        times = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC")
        spells = drawdown_durations(values, times)
        assert list(zip(spells["peak"], spells["end"], strict=True)) == _naive_spells(values)
        assert spells["depth"].min() == pytest.approx(
            np.min(values / np.maximum.accumulate(values) - 1)
        )


def test_duration_days_follow_timestamps_with_gaps():
    idx = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-10", "2024-01-11"], tz="UTC")
    m = compute_metrics(pd.Series([100.0, 90.0, 95.0, 101.0], index=idx), periods_per_year=365)
    assert m["max_drawdown_duration_bars"] == 3
    assert m["max_drawdown_duration_days"] == 10.0


def test_trade_metrics_normalise_by_equity_at_trade_bar():
    eq = _eq([1000.0, 2000.0, 2000.0, 2000.0])
    trades = pd.DataFrame(
        {
            "time": eq.index[[0, 1]],
            "bar": [0, 1],
            "symbol": ["A", "B"],
            "side": ["buy", "sell"],
            "units": [1.0, 1.0],
            "price": [1.0, 1.0],
            "notional": [1000.0, 500.0],
            "fee": [1.0, 0.5],
            "slippage": [0.5, 0.25],
            "impact": [0.0, 0.25],
        }
    )
    m = compute_metrics(eq, periods_per_year=3, trades=trades)
    years = 3 / 3
    assert m["turnover"] == pytest.approx((1000 / 1000 + 500 / 2000) / 2 / years)
    assert m["fees"] == 1.5 and m["slippage"] == 0.75 and m["impact"] == 0.25
    assert m["total_costs"] == 2.5 and m["n_trades"] == 2
    assert m["cost_drag_bps"] == pytest.approx((1.5 / 1000 + 1.0 / 2000) * 1e4 / years)
    by_bar = compute_metrics(eq, periods_per_year=3, trades=trades.drop(columns="time"))
    assert by_bar["turnover"] == m["turnover"]
    # an engine may number bars from the market start while the curve starts later: time wins
    offset = compute_metrics(eq, periods_per_year=3, trades=trades.assign(bar=[90, 91]))
    assert offset["turnover"] == m["turnover"]
    with pytest.raises(ValueError, match=r"`trades\['time'\]` must be bar times of `equity`"):
        compute_metrics(
            eq, periods_per_year=3, trades=trades.assign(time=eq.index[[0, 1]] - pd.Timedelta("1h"))
        )
    empty = compute_metrics(eq, periods_per_year=3, trades=trades.iloc[:0])
    assert empty["n_trades"] == 0 and empty["turnover"] == 0 and empty["cost_drag_bps"] == 0


def test_benchmark_relative_metrics():
    rng = np.random.default_rng(1)
    rb = rng.normal(0.001, 0.02, 200)
    rs = 0.5 * rb + rng.normal(0.0005, 0.01, 200)
    eq = _eq(100 * np.cumprod(np.r_[1, 1 + rs]))
    bench = _eq(100 * np.cumprod(np.r_[1, 1 + rb]))
    m = compute_metrics(eq, periods_per_year=365, benchmark=bench)
    active = rs - rb
    assert m["tracking_error"] == pytest.approx(active.std(ddof=1) * math.sqrt(365))
    assert m["information_ratio"] == pytest.approx(
        active.mean() / active.std(ddof=1) * math.sqrt(365)
    )
    assert m["beta"] == pytest.approx(np.cov(rs, rb)[0, 1] / rb.var(ddof=1))
    assert m["correlation"] == pytest.approx(np.corrcoef(rs, rb)[0, 1])


def test_weights_and_rebalances_summaries():
    b = make_backtest(120, 4)
    m = compute_metrics(
        b["equity"], periods_per_year=365, weights=b["weights"], rebalances=b["rebalances"]
    )
    assert m["exposure"] == pytest.approx(b["weights"].sum(axis=1).mean())
    assert m["n_rebalances"] == len(b["rebalances"])
    assert m["n_fallbacks"] == (b["rebalances"]["notes"] != "").sum() > 0
    assert m["mean_rebalance_turnover"] == pytest.approx(b["rebalances"]["turnover"].mean())


def test_rebalance_diagnostics_table():
    b = make_backtest(120, 4)
    diag = rebalance_diagnostics(b["rebalances"], b["equity"])
    assert list(diag.columns) == [
        "time",
        "turnover",
        "costs",
        "cost_bps",
        "n_trades",
        "method",
        "notes",
        "fallback",
    ]
    reb = b["rebalances"]
    assert diag["costs"].to_numpy() == pytest.approx(
        (reb["fees"] + reb["slippage"] + reb["impact"]).to_numpy()
    )
    first_bar_equity = b["equity"].iloc[0]
    assert diag["cost_bps"].iloc[0] == pytest.approx(diag["costs"].iloc[0] / first_bar_equity * 1e4)
    assert diag["fallback"].sum() == (reb["notes"] != "").sum()


def test_monthly_returns_compound_within_month():
    idx = pd.date_range("2024-01-30", periods=5, freq="D", tz="UTC")  # Jan 30, 31, Feb 1, 2, 3
    table = monthly_returns(pd.Series([100.0, 110.0, 121.0, 133.1, 121.0], index=idx))
    assert table.shape == (1, 12)
    assert table.loc[2024, 1] == pytest.approx(0.10)
    assert table.loc[2024, 2] == pytest.approx(121.0 / 110.0 - 1)
    assert table.loc[2024, 3:].isna().all()
    with_initial = monthly_returns(pd.Series([100.0, 110.0, 121.0, 133.1, 121.0], index=idx), 50.0)
    assert with_initial.loc[2024, 1] == pytest.approx(110 / 50 - 1)


def test_rolling_helpers_match_pandas_definition():
    eq = _eq(100 * np.cumprod(1 + np.random.default_rng(2).normal(0, 0.02, 60)))
    r = eq.pct_change().dropna()
    rf = 1.02 ** (1 / 365) - 1
    expected = (r - rf).rolling(10).mean() / (r - rf).rolling(10).std() * math.sqrt(365)
    pd.testing.assert_series_equal(
        rolling_sharpe(eq, 10, periods_per_year=365), expected, check_names=False
    )
    vol = rolling_volatility(eq, 10, periods_per_year=365)
    assert vol.iloc[-1] == pytest.approx(r.iloc[-10:].std() * math.sqrt(365))
    assert vol.iloc[:9].isna().all()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"equity": [1.0, 2.0]}, TypeError, r"`equity` must be a pandas Series"),
        ({"equity": pd.Series([1.0, 2.0])}, TypeError, r"`equity` must have a DatetimeIndex"),
        ({"equity": _eq([100.0, -1.0])}, ValueError, r"`equity` must be finite and > 0.*-1\.0"),
        ({"equity": _eq([100.0, np.nan])}, ValueError, r"`equity` must be finite and > 0"),
        ({"equity": _eq([100.0])}, ValueError, r"at least 2 bars .*got 1"),
        (
            {"equity": _eq([1.0, 2.0]), "periods_per_year": 0},
            ValueError,
            r"`periods_per_year` must be .*> 0; got 0",
        ),
        (
            {"equity": _eq([1.0, 2.0]), "risk_free_rate": -2},
            ValueError,
            r"`risk_free_rate` must be .*got -2",
        ),
        (
            {"equity": _eq([1.0, 2.0]), "initial_value": 0.0},
            ValueError,
            r"`initial_value` must be .*got 0.0",
        ),
        (
            {"equity": _eq([1.0, 2.0]), "benchmark": _eq([1.0, 2.0], start="2023-01-01")},
            ValueError,
            r"`benchmark` must have the same index as `equity`",
        ),
        (
            {"equity": _eq([1.0, 2.0]), "trades": pd.DataFrame({"notional": [1.0]})},
            ValueError,
            r"`trades` must have columns .*missing \['fee', 'slippage', 'impact'\]",
        ),
        (
            {
                "equity": _eq([1.0, 2.0]),
                "trades": pd.DataFrame(
                    {
                        "bar": [5],
                        "notional": [1.0],
                        "fee": [0.0],
                        "slippage": [0.0],
                        "impact": [0.0],
                    }
                ),
            },
            ValueError,
            r"`trades\['bar'\]` must hold integer bar positions in \[0, 1\]",
        ),
        (
            {
                "equity": _eq([1.0, 2.0]),
                "trades": pd.DataFrame(
                    {
                        "bar": [0],
                        "notional": [1.0],
                        "fee": [-1.0],
                        "slippage": [0.0],
                        "impact": [0.0],
                    }
                ),
            },
            ValueError,
            r"`trades\['fee'\]` must be finite and >= 0; got -1.0",
        ),
    ],
)
def test_errors_name_the_parameter(kwargs, exc, match):
    kwargs.setdefault("periods_per_year", 365)
    equity = kwargs.pop("equity")
    with pytest.raises(exc, match=match):
        compute_metrics(equity, **kwargs)


def test_unsorted_index_and_bad_window_rejected():
    eq = _eq([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        compute_metrics(eq.iloc[::-1], periods_per_year=365)
    with pytest.raises(ValueError, match=r"`window` must be an integer number of bars >= 2; got 1"):
        rolling_sharpe(eq, 1, periods_per_year=365)
