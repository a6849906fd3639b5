"""The cost / tracking-error frontier: each row equals a plain backtest of its policy, the reference
is the costless every-bar rebalance, the efficient flags are the Pareto set, and on the real daily
pairs the cost-aware band is cheaper than each calendar policy at equal or lower tracking error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import Costs, run_backtest
from backtest.cli import main
from backtest.cost_frontier import COLUMNS, Policy, cost_frontier, efficient, policy_grid
from backtest.errors import EngineError
from backtest.pipeline import prepare, price_trades
from backtest.schedule import Schedule
from datasets import synthetic_market
from strategies import HRPStrategy, InverseVolatility, MPTStrategy

ROOT = Path(__file__).resolve().parents[2]
GRID = [
    Policy.calendar("1W"),
    Policy.calendar("1M"),
    Policy.drift(0.02),
    Policy.drift(0.05, refresh="1W"),
    Policy.cost(1.0),
    Policy.cost(10.0, refresh="1W"),
]


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_assets=6, n_bars=500, seed=3)


def _returns(result):
    equity = result.equity.to_numpy()
    return equity[1:] / equity[:-1] - 1.0


@pytest.mark.parametrize(
    "strategy",
    [
        InverseVolatility(lookback_days=40),
        MPTStrategy(objective="max_utility", lookback_days=40, transaction_cost="costs"),
    ],
    ids=["stateless", "uses_previous"],
)
def test_each_row_equals_a_plain_backtest_of_its_policy(market, strategy):
    """Shared decisions change nothing: cost, turnover and Sharpe are those of `run_backtest` with
    the policy's schedule, the tracking error is against `run_backtest` every bar without costs
    (an allocator that reads the previous weights is re-decided per refresh, not reused; a
    cost-aware one keeps the scenario's cost in its objective in the reference too)."""
    costs = Costs(fee_bps=10, slippage_bps=5)
    cons = {"max_weight": 0.5}
    frontier = cost_frontier(market, strategy, costs, policies=GRID, constraints=cons)
    reference = run_backtest(
        market, price_trades(prepare(market, strategy, cons), costs, 1e5).strategy,
        Schedule(every=None, bars=1), Costs(fee_bps=0, slippage_bps=0),
        constraints=cons, benchmark=None,
    )  # fmt: skip
    ppy = market.periods_per_year
    assert list(frontier.table.columns) == list(COLUMNS)
    for policy, row in zip(GRID, frontier.table.itertuples(), strict=True):
        plain = run_backtest(
            market, strategy, policy.schedule, costs, constraints=cons, benchmark=None
        )
        m = plain.metrics()
        assert row.annual_cost == pytest.approx(m["cost_drag_bps"] / 1e4, rel=1e-12)
        assert row.turnover == pytest.approx(m["turnover"], rel=1e-12)
        assert row.sharpe == pytest.approx(m["sharpe"], rel=1e-12)
        active = _returns(plain) - _returns(reference)
        te = np.std(active, ddof=1) * math.sqrt(ppy)
        assert row.tracking_error == pytest.approx(te, rel=1e-10)
    np.testing.assert_array_equal(frontier.reference.to_numpy(), reference.equity.to_numpy())


def test_without_costs_every_bar_and_the_cost_band_are_the_reference(market):
    """No cost: the every-bar policy is the reference and the cost band has no region (it trades
    every target in full), so both track it exactly and cost nothing."""
    grid = [Policy.calendar("bar"), Policy.cost(1.0), Policy.calendar("1M")]
    free = Costs(fee_bps=0, slippage_bps=0)
    table = cost_frontier(market, HRPStrategy(lookback_days=40), free, policies=grid).table
    assert table["tracking_error"].tolist()[:2] == [0.0, 0.0]
    assert table["annual_cost"].tolist() == [0.0, 0.0, 0.0]
    assert table["tracking_error"].iloc[2] > 0.01  # a monthly book drifts away
    assert table["efficient"].tolist() == [True, True, False]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=25))
def test_efficient_is_the_pareto_set(points):
    """No efficient policy is dominated; every other one is dominated by an efficient one (ties in
    both coordinates are efficient together)."""
    cost = np.array([p[0] for p in points], dtype=float)
    te = np.array([p[1] for p in points], dtype=float)
    flags = efficient(cost, te)

    def dominates(j, i):
        return cost[j] <= cost[i] and te[j] <= te[i] and (cost[j] < cost[i] or te[j] < te[i])

    n = len(points)
    for i in range(n):
        dominated = any(dominates(j, i) for j in range(n))
        assert flags[i] == (not dominated)
        if dominated:
            assert any(flags[j] and dominates(j, i) for j in range(n))


def test_nan_is_never_efficient():
    flags = efficient(np.array([1.0, np.nan, 2.0]), np.array([1.0, 0.0, np.nan]))
    assert flags.tolist() == [True, False, False]


def test_the_default_grid_follows_the_bar_length(market):
    names = [p.name for p in policy_grid(market.index)]
    assert names[:6] == ["every bar", "every 2D", "every 1W", "every 2W", "every 1M", "every 1Q"]
    assert "every 1D" not in names and "every 4H" not in names  # not longer than a daily bar
    assert "1W + cost g=1" in names and "bar + drift 0.02" in names
    assert len(names) == 6 + 6 * (5 + 7)
    hourly = pd.date_range("2024-01-01", periods=24 * 60, freq="h", tz="UTC")
    assert [p.name for p in policy_grid(hourly)][:3] == ["every bar", "every 4H", "every 12H"]


def test_bad_grids_are_named(market):
    with pytest.raises(ValueError, match="calendar period"):
        policy_grid(market.index, every=["fortnight"])
    with pytest.raises(ValueError, match=r"`rebalance.drift_band` must be in \(0, 1\)"):
        policy_grid(market.index, drift_bands=[1.5])
    with pytest.raises(ValueError, match="must be a positive number"):
        policy_grid(market.index, risk_aversions=[-1.0])
    with pytest.raises(EngineError, match="the policies repeat"):
        policy_grid(market.index, every=["1W", "1W"], drift_bands=[], risk_aversions=[])
    assert [
        p.name for p in policy_grid(market.index, every=[], drift_bands=[], risk_aversions=[])
    ] == ["every bar"]


# ---------------------------------------------------------------------------- the real daily data
CALENDAR = ["1W", "2W", "1M", "1Q"]


@pytest.fixture(scope="module")
def binance(daily_csv):
    from backtest.config import load_config
    from backtest.experiment import load_market

    return load_market(load_config(ROOT / "examples" / "binance_daily.toml"))


@pytest.mark.parametrize(
    "strategy",
    [HRPStrategy(lookback_days=90), MPTStrategy(objective="max_sharpe", lookback_days=90)],
    ids=["hrp", "max_sharpe"],
)
def test_the_cost_band_is_cheaper_than_each_calendar_policy_as_close(binance, strategy):
    """20 real pairs, 2020-02 to 2023-01, fee 10 + slippage 5 bps (docs/engine.md has the table):
    for each calendar policy some cost band at equal or lower tracking error costs less."""
    grid = policy_grid(binance.index, every=CALENDAR, drift_bands=[])
    frontier = cost_frontier(
        binance, strategy, Costs(fee_bps=10, slippage_bps=5), policies=grid,
        constraints={"max_weight": 0.3},
    )  # fmt: skip
    versus = frontier.against_calendar()
    assert versus["calendar"].tolist() == [f"every {e}" for e in ["bar", *CALENDAR]]
    found = versus[versus["calendar"] != "every bar"]
    assert (found["band"] != "").all()
    assert (found["band_tracking_error"] <= found["calendar_tracking_error"]).all()
    assert (found["band_cost"] < 0.95 * found["calendar_cost"]).all(), versus.to_string()


# --------------------------------------------------------------------------------------- the CLI
def test_cli_writes_the_table_and_the_page(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at the terminal's width
    out = tmp_path / "frontier"
    demo = ROOT / "examples" / "demo.toml"
    args = ["cost-frontier", str(demo), "--out", str(out), "--every", "1W,1M"]
    assert main([*args, "--bands", "0.05", "--risk-aversion", "1,10"]) == 0
    printed = capsys.readouterr().out
    assert "every 1W: cost" in printed and "cost_frontier.html" in printed
    table = pd.read_parquet(out / "cost_frontier.parquet")
    assert table["policy"].tolist() == [
        "every bar", "every 1W", "every 1M",
        "bar + drift 0.05", "bar + cost g=1", "bar + cost g=10",
        "1W + drift 0.05", "1W + cost g=1", "1W + cost g=10",
        "1M + drift 0.05", "1M + cost g=1", "1M + cost g=10",
    ]  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_csv(out / "cost_frontier.csv"), table, check_dtype=False)
    assert table["efficient"].any() and (table["annual_cost"] > 0).all()
    page = (out / "cost_frontier.html").read_text()
    assert (
        "SYNTHETIC DATA" in page and 'id="policy-table"' in page and 'id="comparison-table"' in page
    )
    assert list(pd.read_csv(out / "comparison.csv")["calendar"]) == [
        "every bar",
        "every 1W",
        "every 1M",
    ]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--bands", "0.01,x", "`--bands` must be comma-separated numbers"),
        ("--risk-aversion", "0", "`rebalance.risk_aversion` must be a positive number"),
        ("--every", "5X", "must be a calendar period"),
    ],
)
def test_cli_bad_grids_exit_2_naming_the_option(tmp_path, capsys, option, value, message):
    demo = ROOT / "examples" / "demo.toml"
    assert main(["cost-frontier", str(demo), "--out", str(tmp_path / "x"), option, value]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written, nothing computed


def test_cost_band_from_toml_runs_and_a_conflicting_band_is_named(tmp_path, capsys):
    text = (ROOT / "examples" / "demo.toml").read_text()
    good = tmp_path / "band.toml"
    good.write_text(
        text.replace('every = "1W"', 'every = "1W"\nband_mode = "cost"\nrisk_aversion = 4.0')
    )
    assert main(["run", str(good), "--out", str(tmp_path / "run"), "--no-html"]) == 0
    meta = (tmp_path / "run" / "result.json").read_text()
    assert "cost band (risk aversion 4, trade to edge)" in meta
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace('every = "1W"', 'every = "1W"\nband_mode = "cost"\ndrift_band = 0.05')
    )
    assert main(["run", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert "drop `drift_band`" in capsys.readouterr().err
