"""A run result's metrics (read from the kernel's arrays) equal ``compute_metrics`` of its frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest import run_backtest
from backtest.costs import Costs, RiskControls
from backtest.result import rebalance_table
from datasets import synthetic_market
from reports.metrics import compute_metrics
from strategies import HRPStrategy, InverseVolatility


def frame_metrics(result) -> dict[str, float]:
    """The metrics from the result's frames, through the validating public function."""
    trades = result.trades.assign(bar=result.equity.index.get_indexer(result.trades["time"]))
    per_bar = trades.groupby("bar", sort=True)[["notional", "fee", "slippage", "impact"]].sum()
    invested = 1.0 - result.cash.to_numpy() / result.equity.to_numpy()
    out = compute_metrics(
        result.equity,
        periods_per_year=float(result.meta["periods_per_year"]),
        risk_free_rate=result.meta["risk_free_rate"],
        trades=per_bar.reset_index(),
        weights=pd.DataFrame({"invested": invested}, index=result.equity.index),
        benchmark=result.benchmark,
        rebalances=result.rebalances,
    )
    out["n_trades"] = float(len(result.trades))
    return out


@pytest.mark.parametrize(
    ("strategy", "execution", "bench", "costs", "risk"),
    [
        (HRPStrategy(lookback_days=30), "next_open", "auto", Costs(), RiskControls()),
        (
            InverseVolatility(lookback_days=20),
            "close",
            "equal_weight",
            Costs(fee_bps=25, impact_coef=0.5),
            RiskControls(stop_loss=0.1),
        ),
        (InverseVolatility(lookback_days=45), "next_open", None, Costs(fee_bps=0), RiskControls()),
    ],
)
def test_run_metrics_equal_compute_metrics_of_the_frames(strategy, execution, bench, costs, risk):
    market = synthetic_market(n_assets=6, n_bars=400, seed=3)
    result = run_backtest(
        market, strategy, "1W", costs, execution=execution, benchmark=bench, risk=risk
    )
    ours, ref = result.metrics(), frame_metrics(result)
    assert list(ours) == list(ref)
    for key, value in ref.items():
        assert (math.isnan(value) and math.isnan(ours[key])) or ours[key] == pytest.approx(
            value, rel=1e-12, abs=1e-12
        ), key


def test_rebalance_table_sums_the_rebalance_trades():
    market = synthetic_market(n_assets=4, n_bars=200, seed=2)
    result = run_backtest(market, InverseVolatility(lookback_days=20), "1M", Costs())
    run = result._run
    table = rebalance_table(
        run.decisions, market.index, run.sim.trades, run.sim.equity, run.fill_shift
    )
    assert int(table["n_trades"].sum()) == int((result.trades["reason"] == "rebalance").sum())
    np.testing.assert_allclose(
        table["fees"].sum(), result.trades.loc[result.trades["reason"] == "rebalance", "fee"].sum()
    )
