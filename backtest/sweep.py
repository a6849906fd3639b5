"""Parameter sweeps: grid expansion, a planner that shares work, local processes or Dask, resume.

A sweep is the product of the lists in a config's ``[sweep]`` table (dotted config paths); every grid
point is an ordinary experiment config and gets one row (parameters, ``compute_metrics`` metrics and a
``point_id``) equal to ``run_experiment(...).metrics()`` (tested). Shared work: the market once per
universe, allocations across schedules / costs / execution (``walkforward.SharedWork``), returns
windows and simulation arrays cached per worker. Points that share the market arrays and the kernel's
fixed parameters (execution, risk controls, sizing, band mode) are simulated together in one
``simulate_batch`` call: the batched kernel keeps each scenario's ledger and cash path, which the trade
count, cost drag and exposure need. Design and formulas: docs/sweeps.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config import ExperimentConfig, apply_overrides, load_config, parse_config
from backtest.errors import ConfigError, EngineError
from datasets import MarketData

log = logging.getLogger(__name__)

TABLE, TABLE_CSV, RETURNS, MANIFEST, CHUNKS = (
    "sweep.parquet",
    "sweep.csv",
    "returns.parquet",
    "sweep.json",
    "chunks",
)
Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class GridPoint:
    """One point of the grid: its id, its parameters (dotted path -> value) and its resolved config."""

    point_id: str
    params: dict[str, Any]
    config: ExperimentConfig

    def columns(self) -> dict[str, Any]:
        """The parameters as table cells: lists and tables as JSON text, dates as ISO text."""
        return {k: _cell(v) for k, v in self.params.items()}


def _cell(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def point_id(params: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit id of a parameter set: sha256 of its canonical JSON (sorted keys).

    >>> point_id({"strategy.lookback_days": 30, "strategy.name": "hrp"})
    '6a3408513bf1e32c'
    """
    text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(key: str, value: Any) -> dict[str, Any]:
    """A table value (``"costs" = [{fee_bps = 10}]``) becomes dotted keys, merged into the base."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{key}.{k}", v))
        return out
    return {key: value}


def check_sweep(sweep: Any) -> dict[str, list[Any]]:
    """The ``[sweep]`` table, checked: a non-empty table of non-empty lists without repeats."""
    if not isinstance(sweep, Mapping) or not sweep:
        raise ConfigError(
            [
                (
                    "sweep",
                    "the config has no [sweep] table; add one, e.g. [sweep] "
                    '"strategy.lookback_days" = [30, 90, 180]',
                )
            ]
        )
    out = {}
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                [(f"sweep.{key}", f"must be a non-empty list of values; got {values!r}")]
            )
        texts = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(texts)) < len(texts):
            dup = next(v for v, t in zip(values, texts, strict=True) if texts.count(t) > 1)
            raise ConfigError(
                [(f"sweep.{key}", f"lists {dup!r} more than once (each grid point must be unique)")]
            )
        if key.split(".")[0] == "sweep":
            raise ConfigError([(f"sweep.{key}", "a sweep cannot sweep itself")])
        out[str(key)] = values
    return out


def expand_grid(data: Mapping[str, Any]) -> list[GridPoint]:
    """All grid points of a parsed TOML document (its ``[sweep]`` lists multiplied out, the last key
    varying fastest), each validated as a config and a strategy; a :class:`ConfigError` names the
    point that fails."""
    from backtest.experiment import build_strategy

    sweep = check_sweep(data.get("sweep"))
    base = {k: v for k, v in data.items() if k != "sweep"}
    keys = list(sweep)
    points = []
    for combo in itertools.product(*(sweep[k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        overrides: dict[str, Any] = {}
        for k, v in params.items():
            overrides.update(_flatten(k, v))
        where = ", ".join(f"{k}={v!r}" for k, v in params.items())
        try:
            cfg = parse_config(apply_overrides(base, overrides))
        except ConfigError as exc:
            raise ConfigError(
                [(loc, f"{msg} (sweep point {where})") for loc, msg in exc.errors]
            ) from None
        try:  # the strategy's own parameter checks, before anything runs
            build_strategy(cfg.strategy, 365.0)
        except ValueError as exc:
            raise ConfigError([("strategy", f"{exc} (sweep point {where})")]) from None
        points.append(GridPoint(point_id(params), params, cfg))
    return points


def load_sweep(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], ExperimentConfig, list[GridPoint]]:
    """Read a sweep config: ``(raw TOML dict, validated base config, grid points)``."""
    base = load_config(path)  # file, TOML and schema errors, as for `backtest run`
    data = tomllib.loads(Path(path).read_text())
    return data, base, expand_grid(data)


# --------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class SweepTask:
    """Points that run together in one worker call: same universe and strategy (incl. lookback and
    bounds), so their walk-forwards share allocations; they differ in schedule, costs, risk, execution."""

    task_id: str
    market_key: str
    points: tuple[GridPoint, ...]


def data_key(cfg: ExperimentConfig) -> str:
    """Key of the universe a point loads (its ``[data]`` table)."""
    return _key(cfg.data)


def _strategy_key(cfg: ExperimentConfig) -> str:
    return _key(cfg.strategy)


def _key(section: Any) -> str:
    return json.dumps(section.model_dump(mode="json"), sort_keys=True)


def plan_tasks(points: Sequence[GridPoint], market_keys: Mapping[str, str]) -> list[SweepTask]:
    """Group points into tasks (one per universe x strategy config), longest lookbacks first.

    ``market_keys`` maps :func:`data_key` to the key of the loaded market.
    """
    groups: dict[tuple[str, str], list[GridPoint]] = {}
    for p in points:
        groups.setdefault((market_keys[data_key(p.config)], _strategy_key(p.config)), []).append(p)
    tasks = []
    for (mkey, _), pts in groups.items():
        pts = sorted(pts, key=lambda p: p.point_id)
        tid = hashlib.sha256("".join(p.point_id for p in pts).encode()).hexdigest()[:16]
        tasks.append(SweepTask(tid, mkey, tuple(pts)))
    s = lambda t: t.points[0].config.strategy  # noqa: E731
    return sorted(tasks, key=lambda t: (-s(t).lookback_days, s(t).name, t.task_id))


# --------------------------------------------------------------------------------------- one task
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
            exc = EngineError("the schedule has no decision bar after the first lookback window")
            out.rows += [_error_row(p, exc) for p, _ in pts]
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
    targets = decision_targets(decisions, market.n_bars, market.n_assets, execution)
    rows = decisions.bars + (1 if execution == "next_open" else 0)
    rows = rows[rows < market.n_bars]
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
    rebalances = _rebalance_table(
        decisions, index, ledger, sim.equity, 1 if execution == "next_open" else 0
    )
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


# --------------------------------------------------------------------------------------- outputs
def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename over ``path``: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_chunk(out: Path, task_id: str, result: TaskOutput) -> None:
    """Save one finished task: its returns (``.npz``), then its rows (``.json``, the completion mark).

    Both are written atomically; rows are JSON so that they read back exactly as computed (floats
    round-trip, NaN included).
    """
    folder = out / CHUNKS
    folder.mkdir(parents=True, exist_ok=True)
    frame = (
        pd.concat(result.returns.values(), axis=1)
        if result.returns
        else pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"))
    )
    index = pd.DatetimeIndex(frame.index)

    def save(path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(
                fh,
                values=frame.to_numpy(dtype=np.float64),
                index=index.asi8,
                columns=np.asarray(frame.columns, dtype=str),
                unit=np.asarray(index.unit),
            )

    _write_atomic(folder / f"{task_id}.returns.npz", save)
    _write_atomic(folder / f"{task_id}.json", lambda p: p.write_text(json.dumps(result.rows)))


def load_chunks(out: Path) -> list[TaskOutput]:
    """The finished chunks of a sweep folder (a chunk without its ``.json`` never finished)."""
    folder = out / CHUNKS
    outputs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with np.load(path.with_name(f"{path.stem}.returns.npz")) as npz:
            index = pd.DatetimeIndex(npz["index"].view(f"datetime64[{npz['unit']}]")).tz_localize(
                "UTC"
            )
            returns = {
                str(c): pd.Series(npz["values"][:, j], index=index, name=str(c))
                for j, c in enumerate(npz["columns"])
            }
        outputs.append(TaskOutput(json.loads(path.read_text()), returns, saved=True))
    return outputs


def combine(outputs: Sequence[TaskOutput]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (one per point) and returns (bars x points) of several task outputs, unsorted."""
    rows = [r for t in outputs for r in t.rows]
    series = [s for t in outputs for s in t.returns.values()]
    return _as_table(pd.DataFrame(rows)), (
        pd.concat(series, axis=1, sort=True) if series else pd.DataFrame()
    )


def read_chunks(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All finished chunks of a sweep folder as ``(rows, returns)`` (empty frames when none)."""
    return combine(load_chunks(out))


def _as_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns mixing numbers and text (e.g. a swept list [30, "auto"]) become text for Parquet."""
    for col in frame.columns:
        if frame[col].dtype == object:
            kinds = {
                type(v)
                for v in frame[col]
                if v is not None and not (isinstance(v, float) and math.isnan(v))
            }
            if len(kinds) > 1 and not kinds <= {int, float}:
                frame[col] = frame[col].astype(str)
    return frame


def assemble(
    rows: pd.DataFrame, returns: pd.DataFrame, param_keys: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy table (sorted by ``point_id``; params, metrics, diagnostics) and the returns matrix."""
    from reports.metrics import METRICS

    table = rows.drop_duplicates("point_id", keep="last").sort_values("point_id", kind="mergesort")
    metric_cols = [m for m in METRICS if m in table.columns]
    order = ["point_id", *param_keys, *metric_cols, "error"]
    table = table.reindex(
        columns=[c for c in order if c in table.columns]
        + [c for c in table.columns if c not in order]
    ).reset_index(drop=True)
    if "error" in table:
        table["error"] = table["error"].fillna("").astype(str)
    ran = [p for p in table["point_id"] if p in returns.columns]
    returns = returns.reindex(columns=ran)
    if isinstance(returns.index, pd.DatetimeIndex):
        returns.index = pd.DatetimeIndex(
            returns.index, freq=None, name="time"
        )  # as read back from disk
    return table, returns


# --------------------------------------------------------------------------------------- routes
_WORKER_MARKETS: dict[str, MarketData] = {}


def _init_worker(markets: Mapping[str, MarketData]) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    _WORKER_MARKETS.clear()
    _WORKER_MARKETS.update(markets)


def _worker_task(task: SweepTask, out: Path) -> TaskOutput:
    """Run a task in a pool worker and save its chunk there (the parent does not wait on the disk)."""
    result = execute_task(_WORKER_MARKETS[task.market_key], task.market_key, task.points)
    write_chunk(out, task.task_id, result)
    result.saved = True
    return result


def _run_serial(
    tasks: Sequence[SweepTask],
    markets: Mapping[str, MarketData],
    done: Callable[[SweepTask, TaskOutput], None],
) -> None:
    try:
        for task in tasks:
            done(task, execute_task(markets[task.market_key], task.market_key, task.points))
    finally:
        clear_worker_cache()


def _run_processes(
    tasks: Sequence[SweepTask],
    markets: Mapping[str, MarketData],
    jobs: int,
    out: Path,
    done: Callable[[SweepTask, TaskOutput], None],
) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork: workers inherit the loaded market and the compiled kernels (no re-import, no cache race)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=mp.get_context(method),
        initializer=_init_worker,
        initargs=(dict(markets),),
    )
    futures = {pool.submit(_worker_task, task, out): task for task in tasks}
    handled = set()
    try:
        for future in as_completed(futures):
            done(futures[future], future.result())
            handled.add(future)
    except BaseException:
        for future, task in futures.items():  # keep what finished before the failure
            if (
                future not in handled
                and future.done()
                and not future.cancelled()
                and future.exception() is None
            ):
                done(task, future.result())
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:  # stop tasks already running (Ctrl-C, or a sibling crashed)
            proc.terminate()
        raise
    pool.shutdown(wait=True)


def _run_dask(
    tasks: Sequence[SweepTask],
    markets: Mapping[str, MarketData],
    scheduler: str,
    jobs: int,
    done: Callable[[SweepTask, TaskOutput], None],
) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler == "local":
        # no dashboard; the scheduler's small HTTP server takes a free port (not 8787)
        cluster = LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="20s")
    try:
        if cluster is None:  # workers elsewhere may compile: one at a time, so no numba cache race
            warm = [p for t in tasks for p in t.points[:1]]
            for address in client.scheduler_info()["workers"]:
                client.run(warm_kernels, warm, workers=[address])
        remote = {k: client.scatter(m, broadcast=True) for k, m in markets.items()}
        futures = {
            client.submit(
                execute_task,
                remote[t.market_key],
                t.market_key,
                t.points,
                key=f"sweep-{t.task_id}",
                pure=False,
            ): t
            for t in tasks
        }
        try:
            for future in as_completed(futures):
                done(futures[future], future.result())
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """What :func:`run_sweep` produced (also on disk in ``out``)."""

    table: pd.DataFrame
    returns: pd.DataFrame
    out: Path
    config: ExperimentConfig
    param_keys: list[str]
    n_points: int
    n_resumed: int
    route: str
    periods_per_year: float
    markets: dict[str, MarketData] = field(default_factory=dict, repr=False)


def _config_hash(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_folder(out: Path, digest: str, resume: bool) -> None:
    manifest = out / MANIFEST
    finished = list((out / CHUNKS).glob("*.json")) if (out / CHUNKS).is_dir() else []
    if resume:
        if manifest.exists() and json.loads(manifest.read_text()).get("config_hash") != digest:
            raise ConfigError(
                [
                    (
                        "",
                        f"--resume: {out} holds a sweep of a different config (or grid); use "
                        "another --out, or remove the folder to start over",
                    )
                ]
            )
    elif finished or manifest.exists():
        raise ConfigError(
            [
                (
                    "",
                    f"{out} already holds a sweep ({len(finished)} finished chunks); pass "
                    "--resume to continue it, or choose another --out",
                )
            ]
        )


def run_sweep(
    config: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> SweepResult:
    """Run the grid of a config's ``[sweep]`` table; write the tidy table, returns and chunks to ``out``.

    Parameters
    ----------
    config : path
        TOML experiment config with a ``[sweep]`` table.
    out : path
        Output folder: ``sweep.parquet`` / ``sweep.csv`` (one row per grid point), ``returns.parquet``
        (bars x points), ``chunks/`` (one file pair per finished task), ``sweep.json``, ``config.toml``.
    jobs : int, optional
        Local worker processes (default: all cores); 1 runs in this process. With ``scheduler="local"``
        the number of Dask workers.
    scheduler : {"local", "tcp://host:port"}, optional
        Run on Dask: a new ``LocalCluster`` (processes on loopback) or an existing scheduler.
    resume : bool
        Skip the points already finished in ``out`` (same config required).
    progress : callable, optional
        Called as ``progress(points_done, points_total)``.

    Returns
    -------
    SweepResult
        ``table`` has one row per grid point sorted by ``point_id``; the same whichever route ran it.
    """
    from backtest.experiment import load_market

    out = Path(out)
    data, base, points = load_sweep(config)
    digest = _config_hash(data)
    _check_folder(out, digest, resume)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(
        out / MANIFEST,
        lambda p: p.write_text(
            json.dumps(
                {
                    "config": str(config),
                    "config_hash": digest,
                    "n_points": len(points),
                    "keys": list(data["sweep"]),
                },
                indent=2,
            )
        ),
    )
    import tomli_w

    (out / "config.toml").write_text(tomli_w.dumps(base.resolved()))
    outputs = load_chunks(out) if resume else []
    finished = {r["point_id"] for t in outputs for r in t.rows}
    todo = [p for p in points if p.point_id not in finished]
    markets, keys = {}, {}
    for p in points:
        dkey = data_key(p.config)
        if dkey not in keys:
            market = load_market(p.config)
            keys[dkey] = (
                f"{hashlib.sha256(dkey.encode()).hexdigest()[:12]}-{market.fingerprint()[:12]}"
            )
            markets[keys[dkey]] = market
    tasks = plan_tasks(todo, keys)
    n_total, n_done = len(points), len(points) - len(todo)
    if progress:
        progress(n_done, n_total)

    def done(task: SweepTask, result: TaskOutput) -> None:
        nonlocal n_done
        if not result.saved:
            write_chunk(out, task.task_id, result)
        outputs.append(result)
        n_done += len(task.points)
        if progress:
            progress(n_done, n_total)

    jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
    route = _route(scheduler, jobs, len(tasks))
    log.info(
        "sweep: %d points (%d to run) in %d tasks via %s", n_total, len(todo), len(tasks), route
    )
    try:
        if tasks and route == "serial":
            _run_serial(tasks, markets, done)
        elif tasks:
            warm_kernels([t.points[0] for t in tasks])
            if route == "processes":
                _run_processes(tasks, markets, min(jobs, len(tasks)), out, done)
            else:
                _run_dask(tasks, markets, scheduler or "local", jobs, done)
    except Exception as exc:
        raise RuntimeError(
            f"the sweep stopped ({type(exc).__name__}: {exc}); {n_done} of {n_total} points are "
            f"saved in {out}; rerun with --resume to finish the others"
        ) from exc
    table, returns = assemble(*combine(outputs), list(data["sweep"]))
    _write_atomic(out / TABLE, lambda p: table.to_parquet(p, index=False))
    _write_atomic(out / TABLE_CSV, lambda p: table.to_csv(p, index=False))
    _write_atomic(out / RETURNS, returns.to_parquet)
    ppy = next(iter(markets.values())).periods_per_year
    return SweepResult(
        table,
        returns,
        out,
        base,
        list(data["sweep"]),
        n_total,
        len(points) - len(todo),
        route,
        ppy,
        markets,
    )


def _route(scheduler: str | None, jobs: int, n_tasks: int) -> str:
    if scheduler is not None:
        if scheduler != "local" and not scheduler.startswith(("tcp://", "tls://", "inproc://")):
            raise ConfigError(
                [
                    (
                        "",
                        f"`--scheduler` must be 'local' or a Dask address such as "
                        f"'tcp://host:8786'; got {scheduler!r}",
                    )
                ]
            )
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            raise ConfigError(
                [("", "`--scheduler` needs Dask: pip install 'alphapulse-backtest[cluster]'")]
            )
        return f"dask:{scheduler}"
    return "serial" if jobs <= 1 or n_tasks <= 1 else "processes"
