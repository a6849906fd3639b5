"""The four stages every run composes: prepare, decide, simulate, assemble.

``run_backtest``, the sweep (per point and batched), regression baselines and the live analyzer are
compositions of these functions, so a rule written here holds in all of them:

* :func:`prepare` validates once: the strategy against the market (annualisation), the lookback
  (``> 0``, in bars, and shorter than the history), the constraints;
* :func:`decision_bars` and :func:`decide`: the bars at whose close the allocator is called, and the
  walk-forward decisions there (the point-in-time universe and its limits, see
  :mod:`backtest.walkforward`);
* :func:`simulate` turns decisions into order targets and runs the kernel, one scenario or a batch
  of scenarios that share the market arrays;
* :func:`assemble` wraps one simulation in a :class:`~backtest.result.BacktestResult` whose pandas
  objects are built on first access (a sweep that reads metrics pays for nothing else).

See docs/architecture.md for what each stage takes and returns.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtest.costs import Costs, RiskControls
from backtest.errors import EngineError
from backtest.records import MarketArrays
from backtest.result import BacktestResult, RunArrays
from backtest.schedule import Schedule
from backtest.simulate import (
    Execution,
    Orders,
    SimulationOutput,
    fill_shift,
    prepare_market,
    simulate_batch,
    simulate_scenario,
)
from backtest.trade_pricing import TradeCosts, trade_costs
from backtest.walkforward import Decisions, ReturnsPanel, SharedWork, returns_panel, walk_forward
from datasets import MarketData
from datasets.timeframe import days_to_bars
from strategies import Allocator, Constraints

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- prepare
@dataclass(frozen=True)
class Prepared:
    """A market and an allocator checked against each other, ready for decisions.

    Attributes
    ----------
    market : MarketData
    strategy : Allocator
        The allocator, annualised with the market's ``periods_per_year`` where it has one.
    constraints : Constraints
    lookback : int
        The allocator's window in bars (returns): a decision at bar ``t`` sees bars ``t-L .. t``.
    lookback_days : float
    close : ndarray of shape (n_bars, n_assets)
    panel : ReturnsPanel
        The returns of every bar and the universe rule at this lookback, computed and checked once
        (:func:`backtest.walkforward.returns_panel`); every decision reads its window from it.
    trade_costs : TradeCosts or None
        The allocator's cost rates per decision bar and asset when its ``transaction_cost =
        "costs"`` includes market impact (set by :func:`price_trades`); None otherwise.
    """

    market: MarketData
    strategy: Allocator
    constraints: Constraints
    lookback: int
    lookback_days: float
    close: np.ndarray
    panel: ReturnsPanel
    trade_costs: TradeCosts | None = None


def prepare(
    market: MarketData,
    strategy: Allocator,
    constraints: Constraints | Mapping[str, Any] | None = None,
    lookback_days: float | None = None,
    *,
    bars_after: int = 1,
) -> Prepared:
    """Check the inputs once and derive what every later stage needs.

    Parameters
    ----------
    lookback_days : float, optional
        Overrides the strategy's ``lookback_days``.
    bars_after : int
        Bars the history needs after the first full window: 1 for a backtest (a decision trades on
        a later bar), 0 for a live decision on the last bar.

    Examples
    --------
    >>> from datasets import synthetic_market
    >>> from strategies import EqualWeight
    >>> prepare(synthetic_market(n_assets=3, n_bars=100), EqualWeight(lookback_days=20)).lookback
    20
    """
    days = lookback_days if lookback_days is not None else getattr(strategy, "lookback_days", 30)
    if isinstance(days, bool) or not isinstance(days, int | float) or not days > 0:
        raise EngineError(f"`lookback_days` must be > 0; got {days!r}")
    # on an observed (trading-day) calendar a "day" is one daily bar, as in the continuous case
    lookback = days_to_bars(days, market.timeframe)
    if lookback + bars_after >= market.n_bars:
        raise EngineError(
            f"`lookback_days` = {days} is {lookback} bars but the data has only "
            f"{market.n_bars} bars; shorten the lookback or load more history"
        )
    close = market.values("close")
    return Prepared(
        market=market,
        strategy=align_strategy(strategy, market),
        constraints=Constraints.coerce(constraints, market.symbols),
        lookback=lookback,
        lookback_days=float(days),
        close=close,
        panel=returns_panel(close, lookback),
    )


def price_trades(prepared: Prepared, costs: Costs, capital: float) -> Prepared:
    """``prepared`` with a strategy's ``transaction_cost = "costs"`` resolved from ``costs``.

    The strategy's cost becomes the scalar ``fee_rate + slippage_rate``. With market impact
    (``costs.impact_coef > 0``) the prepared run also gets the per-bar table of
    :func:`backtest.trade_pricing.trade_costs`: at each decision the walk-forward hands the
    allocator one rate per member, fee + slippage + the square-root impact of an equal share of
    ``capital`` (a backtest's initial cash; the account's value live), with the simulation's own
    volatility and quote volume of that decision's fill. Every route (``run_backtest``, sweeps,
    the cost frontier, the live and paper decision) calls this one function.

    Parameters
    ----------
    prepared : Prepared
    costs : Costs
    capital : float
        The book's reference value in the quote currency (sizes the reference trade).

    Examples
    --------
    >>> from datasets import synthetic_market
    >>> from strategies import MPTStrategy
    >>> mpt = MPTStrategy(objective="max_utility", transaction_cost="costs", lookback_days=20)
    >>> prepared = prepare(synthetic_market(n_assets=3, n_bars=100), mpt)
    >>> flat = price_trades(prepared, Costs(fee_bps=10, slippage_bps=5), 1e5)
    >>> flat.strategy.transaction_cost, flat.trade_costs is None
    (0.0015, True)
    >>> price_trades(prepared, Costs(impact_coef=0.5), 1e5).trade_costs.impact.shape
    (100, 3)
    """
    strategy = prepared.strategy
    if getattr(strategy, "transaction_cost", None) != "costs":
        return prepared
    rate = costs.linear_rate
    priced = dataclasses.replace(strategy, transaction_cost=rate)  # type: ignore[type-var]
    table = trade_costs(prepared.market, costs, capital) if costs.impact_coef > 0 else None
    return dataclasses.replace(prepared, strategy=priced, trade_costs=table)


def align_strategy(strategy: Allocator, market: MarketData) -> Allocator:
    """The strategy with its parameters by symbol resolved against the market's symbols
    (``for_symbols``) and the market's ``periods_per_year`` (annualisation follows the data)."""
    resolve = getattr(strategy, "for_symbols", None)
    if resolve is not None:
        strategy = resolve(market.symbols)
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


# ------------------------------------------------------------------------------------------ decide
def decision_bars(prepared: Prepared, schedule: Schedule, first: int | None = None) -> np.ndarray:
    """The bars at whose close the allocator is called: from the first full window (or ``first``,
    when later) on, as the schedule says."""
    n_bars = prepared.market.n_bars
    if first is not None and not 0 <= first < n_bars:
        raise EngineError(f"`first_decision` must be a bar index in [0, {n_bars}); got {first}")
    bars = schedule.decision_bars(prepared.market.index, first=max(prepared.lookback, first or 0))
    if bars.size == 0:
        raise EngineError("the schedule has no decision bar after the first lookback window")
    return bars


def decide(
    prepared: Prepared,
    bars: np.ndarray,
    *,
    shared: SharedWork | None = None,
    previous: np.ndarray | None = None,
    invest: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> Decisions:
    """The walk-forward decisions at ``bars`` (:func:`backtest.walkforward.walk_forward`), each
    with its trading cost rates when :func:`price_trades` set ``prepared.trade_costs``."""
    total = int(bars.size)
    return walk_forward(
        prepared.close,
        bars,
        prepared.strategy,
        prepared.lookback,
        prepared.constraints,
        prepared.market.symbols,
        progress=(lambda k: progress(k + 1, total)) if progress else None,
        shared=shared,
        previous=previous,
        invest=invest,
        panel=prepared.panel,
        trade_costs=prepared.trade_costs,
    )


# ---------------------------------------------------------------------------------------- simulate
@dataclass(frozen=True)
class Scenario:
    """What varies between simulations of the same decisions: costs, schedule (drift band) and cash."""

    costs: Costs
    schedule: Schedule
    initial_cash: float


def market_arrays(
    market: MarketData, costs: Costs, risk: RiskControls, execution: Execution
) -> MarketArrays:
    """The kernel's per-bar arrays of ``market`` (fill prices, liquidity, lots) for these costs."""
    return prepare_market(
        market.arrays,
        market.symbols,
        market.periods_per_year / market.days_per_year,
        costs,
        risk,
        execution,
    )


def decision_orders(decisions: Decisions, n_bars: int, execution: Execution) -> Orders:
    """The orders of ``decisions``: a decision at bar t fills at t+1 (``next_open``) or at t
    (``close``); a decision on the last bar with ``next_open`` has no fill."""
    rows = decisions.bars + fill_shift(execution)
    keep = rows < n_bars
    return Orders(rows[keep], decisions.weights[keep])


def simulate(
    market: MarketData,
    decisions: Decisions,
    scenarios: Sequence[Scenario],
    *,
    risk: RiskControls,
    execution: Execution,
    arrays: MarketArrays | None = None,
) -> list[SimulationOutput]:
    """Simulate ``decisions`` under each scenario: one kernel call for all of them.

    Scenarios of one call share the market arrays (so the liquidity inputs), the risk controls,
    participation, sizing, lot sizes and band mode (:func:`backtest.simulate.simulate_batch` checks
    it). ``arrays`` may be given when already derived for these costs (sweeps cache them).
    """
    if not scenarios:
        raise EngineError("`scenarios` must hold at least one scenario")
    orders = decision_orders(decisions, market.n_bars, execution)
    arrays = (
        arrays if arrays is not None else market_arrays(market, scenarios[0].costs, risk, execution)
    )
    if len(scenarios) == 1:
        only = scenarios[0]
        return [
            simulate_scenario(
                arrays,
                orders,
                costs=only.costs,
                risk=risk,
                schedule=only.schedule,
                initial_cash=only.initial_cash,
                execution=execution,
            )
        ]
    return simulate_batch(
        arrays,
        [orders] * len(scenarios),
        costs=[s.costs for s in scenarios],
        risk=risk,
        schedules=[s.schedule for s in scenarios],
        initial_cash=[s.initial_cash for s in scenarios],
        execution=execution,
    )


# ---------------------------------------------------------------------------------------- assemble
def resolve_benchmark(
    market: MarketData, benchmark: str | None, start: int, initial_cash: float
) -> tuple[str | None, pd.Series | None]:
    """The benchmark's name (``"auto"``: BTC when present, else the equal-weight basket) and its
    equity from bar ``start`` on (None for no benchmark)."""
    if benchmark == "auto":
        btc = [s for s in market.symbols if s.split("/")[0] == "BTC"]
        benchmark = btc[0] if btc else "equal_weight"
    return benchmark, benchmark_equity(market, benchmark, start, initial_cash)


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
                f"`benchmark` {benchmark!r} is not a symbol of the market; use one of "
                f"{list(market.symbols)} or 'equal_weight'"
            )
        col = pd.Series(close[:, market.symbols.index(benchmark)]).ffill().to_numpy()
        first = np.flatnonzero(np.isfinite(col))
        if first.size == 0:
            return None
        values = initial_cash * col / col[first[0]]
        values[: first[0]] = initial_cash
        name = f"{benchmark} buy & hold"
    return pd.Series(values, index=market.index[start:], name=name)


def _run_info(
    prepared: Prepared,
    scenario: Scenario,
    *,
    risk: RiskControls,
    execution: Execution,
    benchmark: str | None,
    risk_free_rate: float | None,
    meta: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What a result records about how it was made (its ``meta``, before the data's fields)."""
    strategy, cons = prepared.strategy, prepared.constraints
    rf = risk_free_rate if risk_free_rate is not None else getattr(strategy, "risk_free_rate", 0.02)
    costs = {  # shallow: asdict's deep copies cost more than the rest of this record
        k: dict(v) if isinstance(v, Mapping) else v
        for k, v in _fields(scenario.costs).items()
        if not isinstance(v, Mapping) or v
    }
    return {
        "strategy": getattr(strategy, "name", type(strategy).__name__),
        "strategy_params": _params(strategy),
        "lookback_bars": prepared.lookback,
        "schedule": scenario.schedule.describe(),
        "execution": execution,
        "initial_cash": float(scenario.initial_cash),
        "risk_free_rate": float(rf),
        "costs": costs,
        "risk": _fields(risk),
        "constraints": {
            "min_weight": _plain(cons.min_weight),
            "max_weight": _plain(cons.max_weight),
            "groups": {
                k: [list(map(int, m)), float(lo), float(hi)]
                for k, (m, lo, hi) in cons.groups.items()
            },
        },
        "benchmark": benchmark,
        **dict(meta or {}),
    }


def assemble(
    prepared: Prepared,
    decisions: Decisions,
    sim: SimulationOutput,
    scenario: Scenario,
    *,
    risk: RiskControls,
    execution: Execution,
    benchmark: tuple[str | None, pd.Series | None],
    risk_free_rate: float | None,
    meta: Mapping[str, Any] | None = None,
) -> BacktestResult:
    """The result of one simulation of ``scenario``, from the first decision bar on; pandas
    objects are built when first read. ``benchmark`` is what :func:`resolve_benchmark` returned;
    ``meta`` adds fields to what the result records about how it was made."""
    market = prepared.market
    start = int(decisions.bars[0])
    index = market.index
    name, series = benchmark
    info = _run_info(
        prepared,
        scenario,
        risk=risk,
        execution=execution,
        benchmark=name,
        risk_free_rate=risk_free_rate,
        meta=meta,
    )
    meta = {
        **info,
        "data_source": market.source,
        "synthetic": bool(market.synthetic),
        "timeframe": market.timeframe,
        "periods_per_year": float(market.periods_per_year),
        "symbols": list(market.symbols),
        "start": index[start].isoformat(),
        "end": index[-1].isoformat(),
        "bar_ms": int((index[1] - index[0]).total_seconds() * 1000)
        if len(index) > 1
        else 86_400_000,
        "gap_policy": next(
            (n for n in market.notes if n.startswith("gap policy")), "gap policy: leave NaN"
        ),
    }
    run = RunArrays(
        market=market, decisions=decisions, sim=sim, start=start, fill_shift=fill_shift(execution)
    )
    return BacktestResult.from_run(run, benchmark=series, meta=meta)


def _fields(record: Any) -> dict[str, Any]:
    """A flat dataclass's fields by name (``dataclasses.asdict`` without its deep copies)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _params(strategy: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(strategy) and not isinstance(strategy, type):
        return {f.name: _plain(getattr(strategy, f.name)) for f in dataclasses.fields(strategy)}
    return {}


def _plain(value: Any) -> Any:
    to_plain = getattr(value, "to_plain", None)  # e.g. resolved views: back to what was written
    if callable(to_plain):
        return to_plain()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
