"""Parameter sweeps: grid expansion, a planner that shares work, local processes or Dask, resume.

A sweep is the product of the lists in a config's ``[sweep]`` table (dotted config paths); every grid
point is an ordinary experiment config and gets one row (parameters, ``compute_metrics`` metrics and a
``point_id``) equal to ``run_experiment(...).metrics()`` (tested). Shared work: the market once per
universe, allocations across schedules / costs / execution (``walkforward.SharedWork``), returns
windows, simulation arrays and benchmark equities cached per worker. Points that share the market
arrays and the kernel's fixed parameters (execution, risk controls, sizing, band mode) are simulated
together in one ``simulate_batch`` call: the batched kernel keeps each scenario's ledger and cash path,
which the trade count, cost drag and exposure need; each point's metrics are then read from the arrays
(no ledger or weights frame). Design and formulas: docs/sweeps.md.

The work is split by what it does: :mod:`backtest.sweep.grid` (grid, planner),
:mod:`backtest.sweep.task` (one task), :mod:`backtest.sweep.folder` (the folder: chunks, resume, table)
and :mod:`backtest.sweep.routes` (serial, processes, Dask); their public names are importable from here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from backtest.config import ExperimentConfig
from backtest.sweep.folder import (
    CHUNKS,
    MANIFEST,
    RETURNS,
    TABLE,
    TABLE_CSV,
    check_folder,
    combine,
    config_hash,
    load_chunks,
    read_chunks,
    sweep_table,
    write_atomic,
    write_chunk,
)
from backtest.sweep.grid import (
    GridPoint,
    SweepTask,
    check_sweep,
    data_key,
    expand_grid,
    load_sweep,
    plan_tasks,
    point_id,
)
from backtest.sweep.routes import choose_route, run_dask, run_processes, run_serial
from backtest.sweep.task import (
    TaskOutput,
    clear_worker_cache,
    execute_task,
    warm_kernels,
)
from datasets import MarketData

__all__ = [
    "CHUNKS",
    "MANIFEST",
    "RETURNS",
    "TABLE",
    "TABLE_CSV",
    "GridPoint",
    "Progress",
    "SweepResult",
    "SweepTask",
    "TaskOutput",
    "check_sweep",
    "clear_worker_cache",
    "combine",
    "data_key",
    "execute_task",
    "expand_grid",
    "load_chunks",
    "load_sweep",
    "plan_tasks",
    "point_id",
    "read_chunks",
    "run_sweep",
    "sweep_table",
    "warm_kernels",
    "write_chunk",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


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
    grid_keys = list(check_sweep(data["sweep"]))  # the grid keys (not the validation options)
    digest = config_hash(data)
    check_folder(out, digest, resume)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(
        out / MANIFEST,
        lambda p: p.write_text(
            json.dumps(
                {
                    "config": str(config),
                    "config_hash": digest,
                    "n_points": len(points),
                    "keys": grid_keys,
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
    route = choose_route(scheduler, jobs, len(tasks))
    log.info(
        "sweep: %d points (%d to run) in %d tasks via %s", n_total, len(todo), len(tasks), route
    )
    try:
        if tasks and route == "serial":
            run_serial(tasks, markets, done)
        elif tasks:
            warm_kernels([t.points[0] for t in tasks])
            if route == "processes":
                run_processes(tasks, markets, min(jobs, len(tasks)), out, done)
            else:
                run_dask(tasks, markets, scheduler or "local", jobs, done)
    except Exception as exc:
        raise RuntimeError(
            f"the sweep stopped ({type(exc).__name__}: {exc}); {n_done} of {n_total} points are "
            f"saved in {out}; rerun with --resume to finish the others"
        ) from exc
    table, returns = sweep_table(*combine(outputs), grid_keys)
    write_atomic(out / TABLE, lambda p: table.to_parquet(p, index=False))
    write_atomic(out / TABLE_CSV, lambda p: table.to_csv(p, index=False))
    write_atomic(out / RETURNS, returns.to_parquet)
    ppy = next(iter(markets.values())).periods_per_year
    return SweepResult(
        table,
        returns,
        out,
        base,
        grid_keys,
        n_total,
        len(points) - len(todo),
        route,
        ppy,
        markets,
    )
