"""`run_backtest` behaviours: universe, delistings, impact, caps, fallbacks, errors."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from backtest import Costs, run_backtest
from backtest.costs import RiskControls
from backtest.errors import EngineError
from datasets import synthetic_market
from strategies import Allocation, EqualWeight, InverseVolatility
from strategies.base import BaseAllocator


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_assets=5, n_bars=300, seed=11, stagger=False)


def test_late_listing_enters_only_with_a_full_window(market):
    arrays = {k: v.copy() for k, v in market.arrays.items()}
    for v in arrays.values():
        v[:150, 4] = np.nan  # asset 4 lists at bar 150
    late = replace(market, arrays=arrays)
    result = run_backtest(late, EqualWeight(lookback_days=20), "1W")
    weights = result.target_weights.iloc[:, 4]
    assert (weights[weights.index < late.index[170]] == 0).all()
    assert (weights[weights.index >= late.index[171]] > 0).all()
    assert any("+SYN04/USDT" in change for change in result.diagnostics["universe_changes"])


def test_asset_whose_data_ends_is_sold_at_its_last_close(market):
    arrays = {k: v.copy() for k, v in market.arrays.items()}
    for v in arrays.values():
        v[200:, 2] = np.nan  # asset 2 stops trading after bar 199
    gone = replace(market, arrays=arrays)
    result = run_backtest(gone, EqualWeight(lookback_days=20), "1M")
    exits = result.trades[result.trades["reason"] == "delisting"]
    assert exits["symbol"].tolist() == ["SYN02/USDT"]
    assert exits["bar"].tolist() == [199]
    assert exits["price"].iloc[0] == gone.values("close")[199, 2]
    assert result.weights.iloc[-1, 2] == 0


def test_impact_is_charged_and_lowers_equity(market):
    base = run_backtest(market, InverseVolatility(lookback_days=30), "1W", Costs(fee_bps=10))
    hit = run_backtest(
        market, InverseVolatility(lookback_days=30), "1W", Costs(fee_bps=10, impact_coef=5.0)
    )
    assert base.costs["impact"] == 0
    assert hit.costs["impact"] > 0
    assert hit.trades["impact"].sum() == pytest.approx(hit.costs["impact"], rel=1e-12)
    assert hit.equity.iloc[-1] < base.equity.iloc[-1]


def test_liquidity_cap_limits_positions(market):
    arrays = {k: v.copy() for k, v in market.arrays.items()}
    arrays["volume"][:, 0] *= 1e-4  # asset 0 barely trades
    thin = replace(market, arrays=arrays)
    risk = RiskControls(liquidity_cap=0.5, liquidity_window_days=10)
    result = run_backtest(thin, EqualWeight(lookback_days=20), "1W", risk=risk)
    # at each fill (the open after a decision), the position is at most 0.5 x the average daily
    # quote volume known at the decision
    quote = thin.volume.iloc[:, 0] * thin.close.iloc[:, 0]
    cap = 0.5 * quote.rolling(10, min_periods=1).mean().shift(1)
    fills = result.rebalances["fill_time"].dropna()
    units = (
        result.weights.iloc[:, 0]
        * result.equity
        / thin.close.iloc[:, 0].reindex(result.equity.index)
    )
    held_at_open = units.loc[fills] * thin.open.iloc[:, 0].loc[fills]
    assert (held_at_open <= cap.loc[fills] * (1 + 1e-9)).all()
    assert (held_at_open > 0.9 * cap.loc[fills]).mean() > 0.5  # the cap binds
    assert result.weights.iloc[-1, 0] < 0.05


@dataclass
class Exploding(BaseAllocator):
    lookback_days: float = 20
    name: ClassVar[str] = "exploding"
    calls: int = 0

    def _allocate(self, returns, constraints, previous) -> Allocation:
        self.calls += 1
        if self.calls > 2:
            raise np.linalg.LinAlgError("singular matrix")
        n = returns.shape[1]
        return Allocation(np.full(n, 1.0 / n), self.name)


def test_allocator_failure_keeps_previous_weights_and_is_recorded(market):
    """A failing allocator keeps the book as it is: the target is the last target drifted with
    the closes to this decision (the costless book), so the rebalance trades only what the fills
    at the next open and the fees moved (about 0.1% here), not back to the old target."""
    result = run_backtest(market, Exploding(), "1W")
    assert result.diagnostics["n_fallbacks"] >= 1
    methods = result.rebalances["method"].tolist()
    assert methods[:2] == ["exploding", "exploding"] and set(methods[2:]) == {"previous"}
    assert "singular matrix" in result.rebalances["notes"].iloc[-1]
    close = market.close.loc[result.target_weights.index]
    held = result.target_weights.iloc[1].to_numpy() * (close.iloc[2] / close.iloc[1]).to_numpy()
    np.testing.assert_allclose(result.target_weights.iloc[2], held / held.sum(), rtol=1e-12)
    assert result.rebalances["turnover"].iloc[3:].max() < 3e-3


def test_tiny_universe_holds_the_rest_in_cash(market):
    two = market.select(list(market.symbols[:2]))
    result = run_backtest(two, EqualWeight(lookback_days=20), "1W", constraints={"max_weight": 0.3})
    np.testing.assert_allclose(result.target_weights.sum(axis=1), 0.6)
    assert "held in cash" in result.rebalances["notes"].iloc[0]


def test_engine_errors_name_the_parameter(market):
    with pytest.raises(EngineError, match="`lookback_days`"):
        run_backtest(market, EqualWeight(lookback_days=400), "1W")
    with pytest.raises(EngineError, match="`execution`"):
        run_backtest(market, EqualWeight(lookback_days=20), "1W", execution="open")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="`benchmark`"):
        run_backtest(market, EqualWeight(lookback_days=20), "1W", benchmark="DOGE/USDT")
    with pytest.raises(ValueError, match="`fee_bps` must be >= 0"):
        Costs(fee_bps=-1)


def test_a_result_builds_its_frames_only_when_read(market):
    result = run_backtest(market, EqualWeight(lookback_days=20), "1W")
    built = ("equity", "cash", "close", "weights", "target_weights", "trades", "rebalances")
    assert not any(name in vars(result) for name in built)
    metrics = result.metrics()  # from the arrays: not even the equity Series is built
    assert not any(name in vars(result) for name in built)
    # the same numbers from the frames as from the arrays: a saved and loaded result agrees
    assert metrics["n_trades"] == len(result.trades) and metrics["fees"] == pytest.approx(
        result.trades["fee"].sum(), rel=1e-12
    )
    assert metrics["exposure"] == pytest.approx(result.weights.sum(axis=1).mean(), rel=1e-12)
    assert metrics["mean_rebalance_turnover"] == result.rebalances["turnover"].mean()


def test_a_loaded_result_keeps_its_close_panel_and_metrics(market, tmp_path):
    from backtest import BacktestResult

    result = run_backtest(market, InverseVolatility(lookback_days=20), "1W", Costs(fee_bps=10))
    loaded = BacktestResult.load(result.save(tmp_path / "run"))
    assert loaded.close.equals(result.close)
    pd.testing.assert_series_equal(pd.Series(loaded.metrics()), pd.Series(result.metrics()))
    value = loaded.to_vectorbt().value().to_numpy()  # no `close` argument needed after a load
    np.testing.assert_allclose(value, result.equity.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("allocator", [EqualWeight, InverseVolatility])
def test_the_compiled_decide_loop_gives_the_python_loops_backtest(market, allocator):
    """Equal weight and inverse volatility decide in one numba call (exact types only); a subclass
    decides in the Python loop: same targets, same equity, same notes."""

    class InPython(allocator):  # type: ignore[misc, valid-type]
        pass

    cons = {"min_weight": 0.0, "max_weight": 0.3}
    fast = run_backtest(market, allocator(lookback_days=20), "1D", constraints=cons)
    slow = run_backtest(market, InPython(lookback_days=20), "1D", constraints=cons)
    assert fast.target_weights.to_numpy().tobytes() == slow.target_weights.to_numpy().tobytes()
    assert fast.equity.to_numpy().tobytes() == slow.equity.to_numpy().tobytes()
    assert fast.diagnostics["allocator_fallbacks"] == slow.diagnostics["allocator_fallbacks"]
    assert fast.rebalances.equals(slow.rebalances)


def test_a_fresh_and_a_loaded_result_refuse_the_same_bad_benchmark(tmp_path):
    from backtest import BacktestResult

    base = synthetic_market(n_assets=3, n_bars=160, seed=5, stagger=False)
    close = base.values("close").copy()
    close[110:, 2] = 0.0  # the benchmark symbol is wiped out
    arrays = {**base.arrays, "close": close}
    market = replace(base, arrays=arrays)
    result = run_backtest(market, EqualWeight(lookback_days=20), "1W", benchmark=market.symbols[2])
    with pytest.raises(ValueError, match="`benchmark` must be finite and > 0") as fresh:
        result.metrics()
    loaded = BacktestResult.load(result.save(tmp_path / "r"))
    with pytest.raises(ValueError, match="`benchmark` must be finite and > 0") as again:
        loaded.metrics()
    assert str(fresh.value) == str(again.value)
