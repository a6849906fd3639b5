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
from typing import Any

import numpy as np
import pandas as pd

from backtest.errors import EngineError
from backtest.sweep.grid import GridPoint, _key, _strategy_key
from datasets import MarketData


@dataclass
class TaskOutput:
    """Rows (one dict per point) and per-bar returns (one Series per point that ran)."""

    rows: list[dict[str, Any]]
    returns: dict[str, pd.Series] = field(default_factory=dict)
    saved: bool = False  # its chunk is already on disk


_CACHE: dict[str, OrderedDict[Any, Any]] = {"windows": OrderedDict(), "arrays": OrderedDict()}
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
    """Drop the per-process caches (returns windows, simulation arrays)."""
    for store in _CACHE.values():
        store.clear()


def execute_task(market: MarketData, market_key: str, points: Sequence[GridPoint]) -> TaskOutput:
    """Run the points of one task on ``market``; a point whose parameters fail gets an ``error`` row.

    Points may mix strategies (they are grouped again); the planner gives one strategy per task.
    """
    out = TaskOutput(rows=[])
    groups: dict[str, list[GridPoint]] = {}
    for p in points:
        groups.setdefault(_strategy_key(p.config), []).append(p)
    for pts in groups.values():
        _run_strategy(market, market_key, pts, out)
    return out


def _run_strategy(
    market: MarketData, market_key: str, points: list[GridPoint], out: TaskOutput
) -> None:
    from backtest.engine import align_strategy, lookback_bars
    from backtest.experiment import build_strategy
    from backtest.walkforward import SharedWork, walk_forward
    from strategies import Constraints

    scfg = points[0].config.strategy
    try:
        strategy = align_strategy(build_strategy(scfg, market.periods_per_year), market)
        lookback = lookback_bars(strategy, market)
        if lookback >= market.n_bars - 1:
            raise EngineError(
                f"`lookback_days` = {scfg.lookback_days} is {lookback} bars but the data has only "
                f"{market.n_bars} bars; shorten the lookback or load more history"
            )
    except ValueError as exc:
        out.rows += [_error_row(p, exc) for p in points]
        return
    cons = Constraints.coerce({"min_weight": scfg.min_weight, "max_weight": scfg.max_weight})
    shared = SharedWork(windows=_cached("windows", (market_key, lookback), dict))
    close = market.values("close")
    by_bars: dict[tuple[Any, Any], list[tuple[GridPoint, Any]]] = {}
    for p in points:
        sched = p.config.rebalance.schedule()
        by_bars.setdefault((sched.every, sched.bars), []).append((p, sched))
    for pts in by_bars.values():
        bars = pts[0][1].decision_bars(market.index, first=lookback)
        if bars.size == 0:
            err = EngineError("the schedule has no decision bar after the first lookback window")
            out.rows += [_error_row(p, err) for p, _ in pts]
            continue
        decisions = walk_forward(
            close, bars, strategy, lookback, cons, market.symbols, shared=shared
        )
        batches: dict[tuple[Any, ...], list[tuple[GridPoint, Any]]] = {}
        for p, sched in pts:
            batches.setdefault(_batch_key(market_key, p, sched), []).append((p, sched))
        for batch in batches.values():
            _run_batch(market, market_key, batch, decisions, int(bars[0]), out)


def _batch_key(market_key: str, point: GridPoint, schedule: Any) -> tuple[Any, ...]:
    """Points with equal keys share the kernel's market arrays and fixed parameters: one batch call."""
    cfg = point.config
    costs = cfg.costs
    return (
        market_key,
        cfg.backtest.execution,
        _key(cfg.risk),
        costs.impact_coef > 0 or costs.participation > 0,
        costs.participation,
        costs.sizing,
        json.dumps([costs.lot_size, costs.min_notional], sort_keys=True),
        schedule.band_mode,
        schedule.band_target,
    )


def _run_batch(
    market: MarketData,
    market_key: str,
    batch: list[tuple[GridPoint, Any]],
    decisions: Any,
    start: int,
    out: TaskOutput,
) -> None:
    """Simulate the points of one batch on shared decisions in one kernel call (the same steps as
    ``run_backtest``), then compute each point's metrics."""
    from backtest.costs import RiskControls
    from backtest.engine import benchmark_equity, decision_targets, default_benchmark
    from backtest.simulate import prepare_market, simulate_batch

    first = batch[0][0].config
    execution = first.backtest.execution
    risk = RiskControls(**first.risk.model_dump())
    runnable: list[tuple[GridPoint, Any, Any]] = []
    for p, sched in batch:
        try:
            runnable.append((p, sched, p.config.costs.costs()))
        except ValueError as exc:
            out.rows.append(_error_row(p, exc))
    if not runnable:
        return
    costs0 = runnable[0][2]
    akey = (
        market_key,
        execution,
        _key(first.risk),
        costs0.impact_coef > 0 or costs0.participation > 0,
        json.dumps([dict(costs0.lot_size), dict(costs0.min_notional)], sort_keys=True),
    )
    arrays = _cached(
        "arrays",
        akey,
        lambda: prepare_market(
            market.arrays,
            market.symbols,
            market.periods_per_year / market.days_per_year,
            costs0,
            risk,
            execution,
        ),
    )
    targets, rows = decision_targets(decisions, market.n_bars, market.n_assets, execution)
    try:
        sims = simulate_batch(
            arrays,
            [targets] * len(runnable),
            costs=[c for _, _, c in runnable],
            risk=risk,
            schedules=[sc for _, sc, _ in runnable],
            initial_cash=[p.config.costs.initial_cash for p, _, _ in runnable],
            execution=execution,
            order_rows=[rows] * len(runnable),
            store_units=False,
        )
    except ValueError as exc:
        out.rows += [_error_row(p, exc) for p, _, _ in runnable]
        return
    for (p, _, _), sim in zip(runnable, sims, strict=True):
        cfg = p.config
        bench_name = (
            default_benchmark(market)
            if cfg.backtest.benchmark == "auto"
            else cfg.backtest.benchmark
        )
        try:
            bench = benchmark_equity(market, bench_name, start, cfg.costs.initial_cash)
        except ValueError as exc:
            out.rows.append(_error_row(p, exc))
            continue
        metrics = point_metrics(
            market.index,
            sim,
            decisions,
            start,
            execution,
            market.periods_per_year,
            cfg.strategy.risk_free_rate,
            bench,
        )
        out.rows.append({"point_id": p.point_id, **p.columns(), **metrics, "error": ""})
        e = sim.equity[start:]
        out.returns[p.point_id] = pd.Series(
            e[1:] / e[:-1] - 1.0, index=market.index[start + 1 :], name=p.point_id
        )


def point_metrics(
    index: pd.DatetimeIndex,
    sim: Any,
    decisions: Any,
    start: int,
    execution: str,
    periods_per_year: float,
    risk_free_rate: float,
    benchmark: pd.Series | None,
) -> dict[str, float]:
    """``compute_metrics`` of one simulation from bar ``start`` on, fed lean inputs.

    The ledger is summed per bar (turnover, fees and cost drag are sums over trades, so per-bar sums
    give the same values up to rounding) and the exposure comes from the cash path (the invested share
    ``1 - cash / equity`` is the sum of the realised weights). ``n_trades`` is the ledger length. The
    rebalance table is the result's own (``backtest.result``), so the per-rebalance metrics match.
    """
    from backtest.result import _rebalance_table
    from backtest.simulate import fill_shift
    from reports.metrics import compute_metrics

    equity = pd.Series(sim.equity[start:], index=index[start:], name="equity")
    ledger = sim.trades
    bars, where = np.unique(ledger["bar"] - start, return_inverse=True)
    notional = np.abs(ledger["units"]) * ledger["price"]
    trades = pd.DataFrame(
        {"bar": bars.astype(np.int64)}
        | {
            name: np.bincount(where, weights=values, minlength=bars.size)
            for name, values in (
                ("notional", notional),
                ("fee", ledger["fee"]),
                ("slippage", ledger["slippage"]),
                ("impact", ledger["impact"]),
            )
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        invested = 1.0 - sim.cash[start:] / sim.equity[start:]
    weights = pd.DataFrame({"invested": invested}, index=equity.index)
    rebalances = _rebalance_table(decisions, index, ledger, sim.equity, fill_shift(execution))
    out = compute_metrics(
        equity,
        periods_per_year=float(periods_per_year),
        risk_free_rate=risk_free_rate,
        trades=trades,
        weights=weights,
        benchmark=benchmark,
        rebalances=rebalances,
    )
    out["n_trades"] = float(len(ledger))
    return out


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
