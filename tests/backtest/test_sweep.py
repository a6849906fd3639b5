"""Sweeps: grid expansion, shared work equal to per-point runs, error rows, resume after an interruption."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.errors import ConfigError
from backtest.experiment import load_market, run_experiment
from backtest.sweep import expand_grid, load_sweep, point_id, read_chunks, run_sweep, sweep_table
from backtest.sweep.routes import worker_task as _real_worker_task

BASE = """
name = "t"
[data]
source = "synthetic"
n_assets = 5
n_bars = 360
seed = 5
[strategy]
name = "hrp"
lookback_days = 40
[rebalance]
every = "1W"
[costs]
fee_bps = 10
slippage_bps = 5
min_trade_value = 50
"""

# every grid dimension the planner shares work across: strategies and bounds (own tasks), schedules
# incl. a drift band, a cost-aware band and an every-N-bars rule, cost models incl. impact, execution, a stop-loss
RICH = (
    BASE
    + """
[risk]
stop_loss = 0.2
[sweep]
"strategy.name" = ["mpt", "hrp"]
"strategy.max_weight" = [0.5, 1.0]
"rebalance" = [
    {every = "1W"}, {every = "1M", drift_band = 0.05}, {bars = 10},
    {every = "1W", band_mode = "cost", risk_aversion = 5.0},
]
"costs" = [{fee_bps = 10}, {fee_bps = 25, slippage_bps = 10, impact_coef = 0.5}]
"backtest.execution" = ["next_open", "close"]
"""
)


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_point_id_is_a_stable_hash_of_the_params():
    assert point_id({"strategy.lookback_days": 30, "strategy.name": "hrp"}) == "6a3408513bf1e32c"
    assert point_id({"strategy.name": "hrp", "strategy.lookback_days": 30}) == "6a3408513bf1e32c"
    assert point_id({"strategy.lookback_days": 60, "strategy.name": "hrp"}) != "6a3408513bf1e32c"


def test_grid_is_the_product_of_the_lists_in_order():
    import tomllib

    data = tomllib.loads(
        BASE
        + '[sweep]\n"strategy.lookback_days" = [20, 40]\n"rebalance.every" = ["1W", "1M", "1Q"]\n'
    )
    points = expand_grid(data)
    assert [(p.params["strategy.lookback_days"], p.params["rebalance.every"]) for p in points] == [
        (20, "1W"),
        (20, "1M"),
        (20, "1Q"),
        (40, "1W"),
        (40, "1M"),
        (40, "1Q"),
    ]
    assert (
        points[4].config.strategy.lookback_days == 40 and points[4].config.rebalance.every == "1M"
    )
    assert points[4].config.costs.min_trade_value == 50  # the rest of the base config is kept
    assert len({p.point_id for p in points}) == 6


def test_a_table_value_is_merged_into_the_base_table():
    import tomllib

    data = tomllib.loads(
        BASE + '[sweep]\n"costs" = [{fee_bps = 25}, {fee_bps = 40, slippage_bps = 0}]\n'
    )
    a, b = expand_grid(data)
    assert (
        a.config.costs.fee_bps,
        a.config.costs.slippage_bps,
        a.config.costs.min_trade_value,
    ) == (25, 5, 50)
    assert (b.config.costs.fee_bps, b.config.costs.slippage_bps) == (40, 0)
    assert a.columns()["costs"] == '{"fee_bps": 25}'


@pytest.mark.parametrize(
    ("sweep", "match"),
    [
        ("", r"sweep: the config has no \[sweep\] table"),
        (
            '[sweep]\n"strategy.lookback_days" = []\n',
            r"sweep.strategy.lookback_days: must be a non-empty list",
        ),
        (
            '[sweep]\n"strategy.lookback_days" = 30\n',
            r"sweep.strategy.lookback_days: Input should be a valid list; got 30",
        ),
        ('[sweep]\n"strategy.lookback_days" = [30, 60, 30]\n', r"lists 30 more than once"),
        (
            '[sweep]\n"strategy.lookbak_days" = [30]\n',
            r"strategy.lookbak_days: unknown key .*sweep point strategy.lookbak_days=30",
        ),
        (
            '[sweep]\n"strategy.name" = ["hrp", "mtp"]\n',
            r"unknown strategy 'mtp'.*sweep point strategy.name='mtp'",
        ),
        (
            '[sweep]\n"strategy.name" = ["hrp", "mpt"]\n"strategy.linkage" = ["ward"]\n',
            r"strategy: `linkage` is not a parameter of strategy 'mpt'.*\(sweep point strategy.name='mpt', strategy.linkage='ward'\)",
        ),
    ],
)
def test_bad_sweep_tables_are_config_errors(tmp_path, sweep, match):
    with pytest.raises(ConfigError, match=match):
        load_sweep(write(tmp_path, BASE + sweep))


def test_every_point_equals_run_experiment(tmp_path):
    """The shared-work planner (allocations reused across schedules, costs and execution; windows and
    market arrays cached) gives the metrics of running each point on its own, to 1e-12."""
    config = write(tmp_path, RICH)
    result = run_sweep(config, tmp_path / "out", jobs=1)
    _, _, points = load_sweep(config)
    assert len(result.table) == len(points) == 64
    assert (result.table["error"] == "").all()
    table = result.table.set_index("point_id")
    market = load_market(points[0].config)
    for p in points:
        reference = run_experiment(p.config, market)
        for name, value in reference.metrics().items():
            got = table.loc[p.point_id, name]
            assert (math.isnan(value) and math.isnan(got)) or got == pytest.approx(
                value, rel=1e-12, abs=1e-12
            ), (p.params, name)
        ours = result.returns[p.point_id].dropna()
        np.testing.assert_allclose(
            ours.to_numpy(), reference.returns.iloc[1:].to_numpy(), rtol=1e-13, atol=0
        )


def test_outputs_table_csv_returns_and_manifest(tmp_path):
    config = write(
        tmp_path,
        BASE
        + '[sweep]\n"strategy.lookback_days" = [20, 40, 5000]\n"rebalance.every" = ["1W", "1M"]\n',
    )
    result = run_sweep(config, tmp_path / "out", jobs=2)
    out = tmp_path / "out"
    assert (result.table["error"] != "").sum() == 2  # the 5000-day lookback
    table = pd.read_parquet(out / "sweep.parquet")
    pd.testing.assert_frame_equal(table, result.table)
    assert list(table.columns[:3]) == ["point_id", "strategy.lookback_days", "rebalance.every"]
    assert {"sharpe", "cagr", "max_drawdown", "turnover", "n_trades", "error"} <= set(table.columns)
    assert table["point_id"].is_monotonic_increasing
    csv = pd.read_csv(out / "sweep.csv")
    np.testing.assert_array_equal(csv["sharpe"].to_numpy(), table["sharpe"].to_numpy())
    returns = pd.read_parquet(out / "returns.parquet")
    assert list(returns.columns) == list(
        table.loc[table["error"] == "", "point_id"]
    )  # points that ran
    assert (out / "sweep.json").exists() and (out / "config.toml").exists()
    assert len(list((out / "chunks").glob("*.json"))) == 3  # one task per lookback
    # the table assembled in memory equals the one rebuilt from the chunks on disk (what --resume reads)
    from_disk = sweep_table(*read_chunks(out), result.param_keys)
    pd.testing.assert_frame_equal(from_disk[0], result.table, check_exact=True)
    pd.testing.assert_frame_equal(from_disk[1], result.returns, check_exact=True)


def test_a_failing_point_gets_an_error_row_and_the_others_run(tmp_path):
    config = write(tmp_path, BASE + '[sweep]\n"strategy.lookback_days" = [20, 5000]\n')
    table = run_sweep(config, tmp_path / "out", jobs=1).table.set_index("strategy.lookback_days")
    assert table.loc[20, "error"] == "" and np.isfinite(table.loc[20, "sharpe"])
    assert (
        "`lookback_days` = 5000.0 is 5000 bars but the data has only 360 bars"
        in table.loc[5000, "error"]
    )
    assert np.isnan(table.loc[5000, "sharpe"])


def test_interrupted_sweep_keeps_finished_points_and_resumes(tmp_path):
    text = (
        BASE
        + '[sweep]\n"strategy.lookback_days" = [20, 30, 40]\n"rebalance.every" = ["1W", "1M"]\n'
    )
    config = write(tmp_path, text)
    reference = run_sweep(config, tmp_path / "ref", jobs=1).table
    calls = []

    def ctrl_c(done: int, total: int) -> None:
        calls.append(done)
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, tmp_path / "out", jobs=1, progress=ctrl_c)
    rows, _ = read_chunks(tmp_path / "out")
    assert len(rows) == 2  # the task that finished before Ctrl-C is on disk
    with pytest.raises(
        ConfigError, match=r"already holds a sweep \(1 finished chunks\); pass --resume"
    ):
        run_sweep(config, tmp_path / "out", jobs=1)
    seen = []
    result = run_sweep(
        config, tmp_path / "out", jobs=1, resume=True, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (2, 6) and seen[-1] == (6, 6) and result.n_resumed == 2
    pd.testing.assert_frame_equal(result.table, reference, check_exact=True)


def test_resume_refuses_a_different_config(tmp_path):
    config = write(tmp_path, BASE + '[sweep]\n"strategy.lookback_days" = [20]\n')
    run_sweep(config, tmp_path / "out", jobs=1)
    other = write(tmp_path, BASE + '[sweep]\n"strategy.lookback_days" = [20, 30]\n', "other.toml")
    with pytest.raises(ConfigError, match="holds a sweep of a different config"):
        run_sweep(other, tmp_path / "out", jobs=1, resume=True)


def _die_on_shortest_lookback(task, out):
    import time

    if task.points[0].config.strategy.lookback_days == 20:  # planned last (longest lookbacks first)
        time.sleep(1.0)
        os._exit(3)  # a worker process crashing hard (segfault, OOM kill)
    return _real_worker_task(task, out)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash is injected through fork")
def test_crashed_worker_keeps_finished_points_and_resume_completes(tmp_path, monkeypatch):
    import backtest.sweep.routes as sw

    config = write(tmp_path, BASE + '[sweep]\n"strategy.lookback_days" = [20, 30, 40]\n')
    reference = run_sweep(config, tmp_path / "ref", jobs=1).table
    monkeypatch.setattr(sw, "worker_task", _die_on_shortest_lookback)
    with pytest.raises(
        RuntimeError, match=r"the sweep stopped \(BrokenProcessPool.*rerun with --resume"
    ):
        run_sweep(config, tmp_path / "out", jobs=2)
    monkeypatch.undo()
    rows, _ = read_chunks(tmp_path / "out")
    assert sorted(rows["strategy.lookback_days"]) == [30, 40]  # the tasks that finished are kept
    result = run_sweep(config, tmp_path / "out", jobs=2, resume=True)
    pd.testing.assert_frame_equal(result.table, reference, check_exact=True)
