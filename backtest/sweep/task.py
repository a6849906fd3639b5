"""One sweep task: the walk-forwards and batched simulations of its points, and their metrics.

Shared work inside a worker: allocations across schedules / costs / execution
(``walkforward.SharedWork``), returns windows and simulation arrays in small per-process caches. Points
that share the market arrays and the kernel's fixed parameters run in one ``simulate_batch`` call.
Re-exported by :mod:`backtest.sweep`. Design: docs/sweeps.md.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd

from backtest.sweep.grid import GridPoint, grid_key, strategy_key
from datasets import MarketData


@dataclass
class TaskOutput:
    """Rows (one dict per point) and per-bar returns (one Series per point that ran)."""

    rows: list[dict[str, Any]]
    returns: dict[str, pd.Series] = field(default_factory=dict)
    saved: bool = False  # its chunk is already on disk


_CACHE: dict[str, OrderedDict[Any, Any]] = {
    "windows": OrderedDict(),
    "arrays": OrderedDict(),
    "benchmarks": OrderedDict(),
}
_CACHE_SIZE = 16


def _cached(kind: str, key: Any, make: Callable[[], Any]) -> Any:
    store = _CACHE[kind]
    if key in store:
        store.move_to_end(key)
        return store[key]
    value = store[key] = make()
    while len(store) > _CACHE_SIZE:
        store.popitem(last=False)
    return value


def clear_worker_cache() -> None:
    """Drop the per-process caches (returns windows, simulation arrays, benchmark equities)."""
    for store in _CACHE.values():
        store.clear()


def execute_task(market: MarketData, market_key: str, points: Sequence[GridPoint]) -> TaskOutput:
    """Run the points of one task on ``market``; a point whose parameters fail gets an ``error`` row.

    Points may mix strategies (they are grouped again); the planner gives one strategy per task.
    """
    out = TaskOutput(rows=[])
    groups: dict[str, list[GridPoint]] = {}
    for p in points:
        groups.setdefault(strategy_key(p.config), []).append(p)
    for pts in groups.values():
        _run_strategy(market, market_key, pts, out)
    return out


def _run_strategy(
    market: MarketData, market_key: str, points: list[GridPoint], out: TaskOutput
) -> None:
    """The points of one strategy: prepared once, decided once per decision calendar, simulated
    in batches (the pipeline's stages, as ``run_backtest`` composes them for one point)."""
    from backtest.experiment import strategy_from_config
    from backtest.pipeline import decide, decision_bars, prepare, price_trades
    from backtest.walkforward import SharedWork

    scfg, ccfg = points[0].config.strategy, points[0].config.costs
    try:
        prepared = prepare(
            market,
            strategy_from_config(scfg, market.periods_per_year),
            points[0].config.constraints.spec(scfg),
        )
        prepared = price_trades(prepared, ccfg.costs(), ccfg.initial_cash)
    except ValueError as exc:
        out.rows += [_error_row(p, exc) for p in points]
        return
    shared = SharedWork(windows=_cached("windows", (market_key, prepared.lookback), dict))
    by_bars: dict[tuple[Any, Any], list[tuple[GridPoint, Any]]] = {}
    schedules: dict[str, Any] = {}
    for p in points:
        rkey = grid_key(p.config.rebalance)
        if rkey not in schedules:
            schedules[rkey] = p.config.rebalance.schedule()
        sched = schedules[rkey]
        by_bars.setdefault((sched.every, sched.bars), []).append((p, sched))
    for pts in by_bars.values():
        try:
            bars = decision_bars(prepared, pts[0][1])
        except ValueError as exc:
            out.rows += [_error_row(p, exc) for p, _ in pts]
            continue
        decisions = decide(prepared, bars, shared=shared)
        batches: dict[tuple[Any, ...], list[tuple[GridPoint, Any]]] = {}
        for p, sched in pts:
            batches.setdefault(batch_key(market_key, p, sched), []).append((p, sched))
        for batch in batches.values():
            _run_batch(prepared, market_key, batch, decisions, out)


def batch_key(market_key: str, point: GridPoint, schedule: Any) -> tuple[Any, ...]:
    """Points with equal keys share the kernel's market arrays and fixed parameters: one batch call."""
    cfg = point.config
    costs = cfg.costs
    return (
        market_key,
        cfg.backtest.execution,
        grid_key(cfg.risk),
        costs.impact_coef > 0 or costs.participation > 0,
        costs.participation,
        costs.sizing,
        json.dumps([costs.lot_size, costs.min_notional], sort_keys=True),
        schedule.band_mode,
        schedule.to_edge,
    )


def _run_batch(
    prepared: Any,
    market_key: str,
    batch: list[tuple[GridPoint, Any]],
    decisions: Any,
    out: TaskOutput,
) -> None:
    """Simulate the points of one batch on shared decisions in one kernel call, then assemble each
    point's result and read its metrics (the stages and the result ``run_backtest`` returns)."""
    from backtest.costs import RiskControls
    from backtest.pipeline import (
        Scenario,
        assemble,
        market_arrays,
        resolve_benchmark,
        simulate,
    )

    market = prepared.market
    first = batch[0][0].config
    execution = first.backtest.execution
    risk = RiskControls(**first.risk.model_dump())
    runnable: list[tuple[GridPoint, Scenario]] = []
    for p, sched in batch:
        try:
            runnable.append(
                (p, Scenario(p.config.costs.costs(), sched, p.config.costs.initial_cash))
            )
        except ValueError as exc:
            out.rows.append(_error_row(p, exc))
    if not runnable:
        return
    costs0 = runnable[0][1].costs
    akey = (
        market_key,
        execution,
        grid_key(first.risk),
        costs0.impact_coef > 0 or costs0.participation > 0,
        json.dumps([dict(costs0.lot_size), dict(costs0.min_notional)], sort_keys=True),
    )
    arrays = _cached("arrays", akey, lambda: market_arrays(market, costs0, risk, execution))
    try:
        sims = simulate(
            market,
            decisions,
            [scenario for _, scenario in runnable],
            risk=risk,
            execution=execution,
            arrays=arrays,
        )
    except ValueError as exc:
        out.rows += [_error_row(p, exc) for p, _ in runnable]
        return
    start = int(decisions.bars[0])
    returns_index = market.index[start + 1 :]  # one index object shared by the batch's returns
    for (p, scenario), sim in zip(runnable, sims, strict=True):
        cfg = p.config
        bkey = (market_key, cfg.backtest.benchmark, start, float(scenario.initial_cash))
        try:
            bench = _cached(
                "benchmarks",
                bkey,
                partial(
                    resolve_benchmark, market, cfg.backtest.benchmark, start, scenario.initial_cash
                ),
            )
        except ValueError as exc:
            out.rows.append(_error_row(p, exc))
            continue
        result = assemble(
            prepared,
            decisions,
            sim,
            scenario,
            risk=risk,
            execution=execution,
            benchmark=bench,
            risk_free_rate=cfg.strategy.risk_free_rate,
        )
        out.rows.append({"point_id": p.point_id, **p.columns(), **result.metrics(), "error": ""})
        equity = sim.equity[start:]  # the values of result.equity.pct_change().iloc[1:]
        out.returns[p.point_id] = pd.Series(
            equity[1:] / equity[:-1] - 1.0, index=returns_index, name=p.point_id
        )


def _error_row(point: GridPoint, exc: BaseException) -> dict[str, Any]:
    return {
        "point_id": point.point_id,
        **point.columns(),
        "error": str(exc).splitlines()[0] or type(exc).__name__,
    }


def warm_kernels(points: Sequence[GridPoint]) -> None:
    """Compile (or load from the numba cache) every kernel the grid's strategies and costs use.

    Run it in the parent before starting worker processes: processes that compile the same cached
    kernel at once can corrupt the cache (numba issue 4807).
    """
    from datasets import synthetic_market

    market = synthetic_market(n_assets=4, n_bars=80, timeframe="1d", seed=1, stagger=False)
    seen, tiny = set(), []
    for p in points:
        cfg = p.config
        key = (
            json.dumps(
                cfg.strategy.model_dump(
                    mode="json", exclude={"lookback_days", "min_weight", "max_weight"}
                ),
                sort_keys=True,
            ),
            cfg.backtest.execution,
            cfg.costs.impact_coef > 0,
            cfg.costs.sizing,
        )
        if key in seen:
            continue
        seen.add(key)
        strategy = cfg.strategy.model_copy(
            update={"lookback_days": 10, "min_weight": 0.0, "max_weight": 1.0}
        )
        update = {
            "strategy": strategy,
            "rebalance": cfg.rebalance.model_copy(update={"every": "1W", "bars": None}),
        }
        tiny.append(GridPoint(p.point_id, {}, cfg.model_copy(update=update)))
    execute_task(market, "warm-up", tiny)
    clear_worker_cache()
