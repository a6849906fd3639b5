"""How a sweep's tasks run: in this process, in local worker processes, or on a Dask cluster.

Every route hands each finished task to a ``done(task, output)`` callback, so the caller saves chunks
and reports progress the same way whichever route ran. Design: docs/sweeps.md.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from backtest.errors import ConfigError
from backtest.sweep.folder import write_chunk
from backtest.sweep.grid import SweepTask
from backtest.sweep.task import TaskOutput, clear_worker_cache, execute_task, warm_kernels
from datasets import MarketData

_WORKER_MARKETS: dict[str, MarketData] = {}


def _init_worker(markets: Mapping[str, MarketData]) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    _WORKER_MARKETS.clear()
    _WORKER_MARKETS.update(markets)


def worker_task(task: SweepTask, out: Path) -> TaskOutput:
    """Run a task in a pool worker and save its chunk there (the parent does not wait on the disk)."""
    result = execute_task(_WORKER_MARKETS[task.market_key], task.market_key, task.points)
    write_chunk(out, task.task_id, result)
    result.saved = True
    return result


def run_serial(
    tasks: Sequence[SweepTask],
    markets: Mapping[str, MarketData],
    done: Callable[[SweepTask, TaskOutput], None],
) -> None:
    """Run the tasks one after the other in this process, handing each output to ``done``."""
    try:
        for task in tasks:
            done(task, execute_task(markets[task.market_key], task.market_key, task.points))
    finally:
        clear_worker_cache()


def run_processes(
    tasks: Sequence[SweepTask],
    markets: Mapping[str, MarketData],
    jobs: int,
    out: Path,
    done: Callable[[SweepTask, TaskOutput], None],
) -> None:
    """Run the tasks in ``jobs`` worker processes (each market sent once per worker)."""
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
    futures = {pool.submit(worker_task, task, out): task for task in tasks}
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


@contextlib.contextmanager
def dask_client(scheduler: str, jobs: int, warm: Callable[[], Any] | None = None) -> Iterator[Any]:
    """A Dask client: on a local cluster of ``jobs`` single-threaded worker processes
    (``"local"``), or on the scheduler at an address; closed (with the local cluster) on exit.

    On a scheduler elsewhere, ``warm`` (a call that compiles the numba kernels the work needs) runs
    on its workers one at a time first: workers sharing a numba cache must not write it at once
    (numba issue 4807). Local workers fork from a parent whose kernels are compiled already."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler == "local":
        # no dashboard; the scheduler's small HTTP server takes a free port (not 8787)
        cluster = LocalCluster(
            n_workers=max(1, jobs),
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
        if cluster is None and warm is not None:
            for address in client.scheduler_info()["workers"]:
                client.run(warm, workers=[address])
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_dask(
    tasks: Sequence[SweepTask],
    markets: Mapping[str, MarketData],
    scheduler: str,
    jobs: int,
    done: Callable[[SweepTask, TaskOutput], None],
) -> None:
    """Run the tasks on a Dask cluster (``"local"``: a local cluster of ``jobs`` workers)."""
    import functools

    from dask.distributed import as_completed

    warm = functools.partial(warm_kernels, [p for t in tasks for p in t.points[:1]])
    with dask_client(scheduler, jobs, warm) as client:
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


def choose_route(scheduler: str | None, jobs: int, n_tasks: int) -> str:
    """Where the tasks run: ``"serial"``, ``"processes"`` or ``"dask"`` (checks ``scheduler``)."""
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
