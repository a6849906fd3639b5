"""`run_backtest`: market + allocator + schedule + costs -> `BacktestResult`.

The one engine behind ``backtest run``, the comparison report, sweeps and regression baselines.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from backtest.costs import Costs, RiskControls
from backtest.errors import EngineError
from backtest.result import BacktestResult, build_result
from backtest.schedule import Schedule
from backtest.simulate import Execution, fill_shift, prepare_market, simulate
from backtest.walkforward import Decisions, walk_forward
from datasets import MarketData
from datasets.timeframe import days_to_bars
from strategies import Constraints

log = logging.getLogger(__name__)


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
        if "bars" in fields or ("drift_band" in fields and "every" not in fields):
            fields.setdefault("every", None)
        return Schedule(**fields)
    raise EngineError(
        f"`rebalance` must be a period string, a bar count or a Schedule; got {rebalance!r}"
    )


def lookback_bars(strategy: Any, market: MarketData, lookback_days: float | None = None) -> int:
    """The allocator's window in bars, from ``lookback_days`` and the market's timeframe."""
    days = lookback_days if lookback_days is not None else getattr(strategy, "lookback_days", 30)
    if days <= 0:
        raise EngineError(f"`lookback_days` must be > 0; got {days}")
    # on an observed (trading-day) calendar a "day" is one daily bar, as in the continuous case
    return days_to_bars(days, market.timeframe)


def align_strategy(strategy: Any, market: MarketData) -> Any:
    """Give the strategy the market's ``periods_per_year`` (annualisation follows the data)."""
    ppy = getattr(strategy, "periods_per_year", None)
    if (
        ppy is not None
        and dataclasses.is_dataclass(strategy)
        and not isinstance(strategy, type)
        and abs(ppy - market.periods_per_year) > 1e-9
    ):
        log.info(
            "strategy periods_per_year %s -> %s (from the %s data)",
            ppy,
            market.periods_per_year,
            market.timeframe,
        )
        return dataclasses.replace(strategy, periods_per_year=market.periods_per_year)
    return strategy


def decision_targets(
    decisions: Decisions, n_bars: int, n_assets: int, execution: Execution
) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) order targets and their row indices: decisions at bar t fill at t+1 (``next_open``)
    or at t (``close``); a decision on the last bar with ``next_open`` has no fill."""
    targets = np.full((n_bars, n_assets), np.nan)
    rows = decisions.bars + fill_shift(execution)
    keep = rows < n_bars
    targets[rows[keep]] = decisions.weights[keep]
    return targets, rows[keep]


def benchmark_equity(
    market: MarketData, benchmark: str | None, start: int, initial_cash: float
) -> pd.Series | None:
    """Buy-and-hold of one symbol, or ``"equal_weight"``: an equal-weight, costless daily-rebalanced
    basket of the listed assets; both start at ``initial_cash`` on bar ``start``."""
    if benchmark is None or benchmark == "none":
        return None
    close = market.values("close")[start:]
    if benchmark == "equal_weight":
        with np.errstate(invalid="ignore", divide="ignore"):
            rets = close[1:] / close[:-1] - 1.0
        growth = np.nanmean(np.where(np.isfinite(rets), rets, np.nan), axis=1)
        growth = np.where(np.isfinite(growth), growth, 0.0)
        values = initial_cash * np.concatenate([[1.0], np.cumprod(1.0 + growth)])
        name = "equal weight"
    else:
        if benchmark not in market.symbols:
            raise EngineError(
                f"`benchmark` {benchmark!r} is not a symbol of the market; use one of {list(market.symbols)} or 'equal_weight'"
            )
        col = pd.Series(close[:, market.symbols.index(benchmark)]).ffill().to_numpy()
        first = np.flatnonzero(np.isfinite(col))
        if first.size == 0:
            return None
        values = initial_cash * col / col[first[0]]
        values[: first[0]] = initial_cash
        name = f"{benchmark} buy & hold"
    return pd.Series(values, index=market.index[start:], name=name)


def default_benchmark(market: MarketData) -> str:
    """``BTC/<quote>`` when present, else the equal-weight basket."""
    btc = [s for s in market.symbols if s.split("/")[0] == "BTC"]
    return btc[0] if btc else "equal_weight"


def run_backtest(
    market: MarketData,
    strategy: Any,
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
    costs = costs or Costs()
    risk = risk or RiskControls()
    schedule = as_schedule(rebalance)
    cons = Constraints.coerce(constraints)
    strategy = align_strategy(strategy, market)
    lookback = lookback_bars(strategy, market, lookback_days)
    n_bars, n = market.n_bars, market.n_assets
    if lookback >= n_bars - 1:
        raise EngineError(
            f"`lookback_days` = {lookback_days or strategy.lookback_days} is {lookback} bars but the data has only "
            f"{n_bars} bars; shorten the lookback or load more history"
        )
    close = market.values("close")
    if first_decision is not None and not 0 <= first_decision < n_bars:
        raise EngineError(
            f"`first_decision` must be a bar index in [0, {n_bars}); got {first_decision}"
        )
    bars = schedule.decision_bars(market.index, first=max(lookback, first_decision or 0))
    if bars.size == 0:
        raise EngineError("the schedule has no decision bar after the first lookback window")
    total = int(bars.size)
    decisions = walk_forward(
        close,
        bars,
        strategy,
        lookback,
        cons,
        market.symbols,
        progress=(lambda k: progress(k + 1, total)) if progress else None,
    )
    targets, order_rows = decision_targets(decisions, n_bars, n, execution)
    arrays = prepare_market(
        market.arrays,
        market.symbols,
        market.periods_per_year / market.days_per_year,
        costs,
        risk,
        execution,
    )
    sim = simulate(
        arrays,
        targets,
        costs=costs,
        risk=risk,
        schedule=schedule,
        initial_cash=initial_cash,
        execution=execution,
        order_rows=order_rows,
    )
    start = int(bars[0])
    bench_name = default_benchmark(market) if benchmark == "auto" else benchmark
    bench = benchmark_equity(market, bench_name, start, initial_cash)
    rf = risk_free_rate if risk_free_rate is not None else getattr(strategy, "risk_free_rate", 0.02)
    info = {
        "strategy": getattr(strategy, "name", type(strategy).__name__),
        "strategy_params": _params(strategy),
        "lookback_bars": lookback,
        "schedule": schedule.describe(),
        "execution": execution,
        "initial_cash": float(initial_cash),
        "risk_free_rate": float(rf),
        "costs": {
            k: v for k, v in dataclasses.asdict(costs).items() if not isinstance(v, Mapping) or v
        },
        "risk": dataclasses.asdict(risk),
        "constraints": {"min_weight": cons.min_weight, "max_weight": cons.max_weight},
        "benchmark": bench_name,
        **dict(meta or {}),
    }
    return build_result(market, decisions, targets, sim, start=start, benchmark=bench, info=info)


def _params(strategy: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(strategy) and not isinstance(strategy, type):
        return {f.name: _plain(getattr(strategy, f.name)) for f in dataclasses.fields(strategy)}
    return {}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
