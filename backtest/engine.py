"""`run_backtest`: market + allocator + schedule + costs -> `BacktestResult`.

The four stages of :mod:`backtest.pipeline` in order, for one scenario: the engine behind
``backtest run``, the comparison report and regression baselines (sweeps compose the same stages
for many points at once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from backtest.costs import Costs, RiskControls
from backtest.errors import EngineError
from backtest.pipeline import (
    Scenario,
    assemble,
    decide,
    decision_bars,
    prepare,
    price_trades,
    resolve_benchmark,
    simulate,
)
from backtest.result import BacktestResult
from backtest.schedule import Schedule
from backtest.simulate import Execution
from datasets import MarketData
from strategies import Allocator, Constraints


def as_schedule(rebalance: str | int | Schedule | Mapping[str, Any]) -> Schedule:
    """Accept ``"1W"``, a number of bars, a :class:`Schedule` or a dict of its fields."""
    if isinstance(rebalance, Schedule):
        return rebalance
    if isinstance(rebalance, bool):
        raise EngineError(
            f"`rebalance` must be a period string, a bar count or a Schedule; got {rebalance!r}"
        )
    if isinstance(rebalance, int):
        return Schedule(every=None, bars=rebalance)
    if isinstance(rebalance, str):
        return Schedule(every=rebalance)
    if isinstance(rebalance, Mapping):
        fields = dict(rebalance)
        banded = "drift_band" in fields or fields.get("band_mode") == "cost"
        if "bars" in fields or (banded and "every" not in fields):
            fields.setdefault("every", None)
        return Schedule(**fields)
    raise EngineError(
        f"`rebalance` must be a period string, a bar count or a Schedule; got {rebalance!r}"
    )


def run_backtest(
    market: MarketData,
    strategy: Allocator,
    rebalance: str | int | Schedule | Mapping[str, Any] = "1W",
    costs: Costs | None = None,
    *,
    initial_cash: float = 100_000.0,
    execution: Execution = "next_open",
    constraints: Constraints | Mapping[str, Any] | None = None,
    risk: RiskControls | None = None,
    lookback_days: float | None = None,
    benchmark: str | None = "auto",
    risk_free_rate: float | None = None,
    meta: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    first_decision: int | None = None,
) -> BacktestResult:
    """Walk-forward backtest of ``strategy`` on ``market``.

    Parameters
    ----------
    market : MarketData
        Aligned OHLCV panel (NaN where an asset has no candle).
    strategy : Allocator
        Any object with ``lookback_days`` and ``allocate_detailed(returns, constraints, previous)``.
    rebalance : str, int, Schedule or dict
        ``"1W"``/``"1M"``..., a number of bars, or a :class:`~backtest.schedule.Schedule`.
    costs : Costs
        Fees, slippage, impact and order rules (default ``Costs()``: 10 bps fee, 5 bps slippage).
    initial_cash : float
        Starting cash in the quote currency.
    execution : {"next_open", "close"}
        Orders decided at the close of bar t fill at the open of t+1 (default) or at the close of t.
    constraints : Constraints or dict
        Weight bounds etc. passed to the allocator.
    risk : RiskControls
        Optional trailing stop-loss and liquidity cap.
    benchmark : str
        ``"auto"`` (BTC when present, else equal weight), a symbol, ``"equal_weight"`` or None.
    risk_free_rate : float
        Annual rate for the Sharpe ratio in the metrics (default: the strategy's, else 0.02).
    first_decision : int, optional
        Bar of the first decision, when later than the first full lookback window: strategies with
        different lookbacks compared on one calendar all start there (``backtest compare``).

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> from datasets import synthetic_market
    >>> from strategies import EqualWeight
    >>> result = run_backtest(synthetic_market(n_assets=4, n_bars=200), EqualWeight(lookback_days=20))
    >>> round(float(result.equity.iloc[0]), 2)
    100000.0
    """
    scenario = Scenario(costs or Costs(), as_schedule(rebalance), initial_cash)
    risk = risk or RiskControls()
    prepared = prepare(market, strategy, constraints, lookback_days)
    prepared = price_trades(prepared, scenario.costs, initial_cash)
    bars = decision_bars(prepared, scenario.schedule, first_decision)
    decisions = decide(prepared, bars, progress=progress)
    (sim,) = simulate(market, decisions, [scenario], risk=risk, execution=execution)
    return assemble(
        prepared,
        decisions,
        sim,
        scenario,
        risk=risk,
        execution=execution,
        benchmark=resolve_benchmark(market, benchmark, int(bars[0]), initial_cash),
        risk_free_rate=risk_free_rate,
        meta=meta,
    )
