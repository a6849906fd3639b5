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
from backtest.sweep.grid import GridPoint, SweepTask
from backtest.sweep.task import TaskOutput, clear_worker_cache, execute_task, warm_kernels
from datasets import MarketData

_WORKER_MARKETS: dict[str, MarketData] = {}

#: Dask chunks: about four tasks each (they share the worker's caches and one scheduler round
#: trip; a stopped sweep loses no more than the chunks running), and at least four per worker (the
#: workers finish together).
TASKS_PER_CHUNK = 4
CHUNKS_PER_WORKER = 4


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


#: What the forkserver of local Dask workers imports once: the main module (which spawn would
#: import again in every worker), Dask's worker side and the engine (:mod:`backtest.sweep.preload`).
WORKER_PRELOAD = ["__main__", "distributed", "backtest.sweep.preload"]
#: Set to "1" in the environment the forkserver starts with: the preload then warms and freezes.
WORKER_SERVER_FLAG = "ALPHAPULSE_WORKER_SERVER"


def local_cluster(jobs: int) -> Any:
    """A ``LocalCluster`` of ``jobs`` single-threaded worker processes on 127.0.0.1, no dashboard.

    Where the platform has a forkserver (Linux, macOS) the workers fork from it: a server process
    that imported :data:`WORKER_PRELOAD` once, started with the first cluster of this process and
    reused by later ones. Elsewhere Dask spawns fresh interpreters (its default).
    """
    import multiprocessing as mp
    import os

    import dask
    from dask.distributed import LocalCluster

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    flag = os.environ.get(WORKER_SERVER_FLAG)
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        if method == "forkserver":
            from distributed.utils import get_mp_context

            get_mp_context()  # Dask sets its own preload list on first use; ours replaces it
            mp.get_context("forkserver").set_forkserver_preload(WORKER_PRELOAD)
            os.environ[WORKER_SERVER_FLAG] = "1"  # read by the server if this cluster starts it
        try:
            # no dashboard; the scheduler's small HTTP server takes a free port (not 8787)
            return LocalCluster(
                n_workers=max(1, jobs),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",
                scheduler_kwargs={"dashboard": False},
                silence_logs=logging.ERROR,
            )
        finally:
            if flag is None:
                os.environ.pop(WORKER_SERVER_FLAG, None)
            else:
                os.environ[WORKER_SERVER_FLAG] = flag


@contextlib.contextmanager
def dask_client(scheduler: str, jobs: int, warm: Callable[[], Any] | None = None) -> Iterator[Any]:
    """A Dask client: on a local cluster of ``jobs`` worker processes (``"local"``,
    :func:`local_cluster`), or on the scheduler at an address; closed (with the local cluster) on exit.

    ``warm`` is a call that compiles the numba kernels the work needs. Workers that compile the same
    cached kernel at once can corrupt the cache (numba issue 4807), so it runs in this process
    before a local cluster starts (its workers then only read the cache), and on a scheduler
    elsewhere on its workers one at a time.
    """
    from dask.distributed import Client

    cluster = None
    if scheduler == "local":
        if warm is not None:
            warm()
        cluster = local_cluster(jobs)
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


def chunk_tasks(tasks: Sequence[SweepTask], n_chunks: int) -> list[list[SweepTask]]:
    """The tasks in about ``n_chunks`` chunks of similar size (points), one market per chunk.

    Chunks keep the planner's order and are cut, where the size allows, between tasks of different
    lookbacks: tasks with the same market and lookback share the worker's returns windows.

    Parameters
    ----------
    tasks : sequence of SweepTask
        In the planner's order (:func:`~backtest.sweep.grid.plan_tasks`).
    n_chunks : int
        The number of chunks aimed at; a task is never split, so there may be fewer.

    Returns
    -------
    list of list of SweepTask
        Every task once, in order within each market.

    Examples
    --------
    >>> from backtest.config import ExperimentConfig
    >>> def task(i, lookback):
    ...     cfg = ExperimentConfig.model_validate({"strategy": {"lookback_days": lookback}})
    ...     return SweepTask(str(i), "m", (GridPoint(str(i), {}, cfg),) * 25)
    >>> tasks = [task(i, lb) for i, lb in enumerate([90, 90, 90, 90, 60, 60, 60, 60])]
    >>> [[t.task_id for t in c] for c in chunk_tasks(tasks, 2)]
    [['0', '1', '2', '3'], ['4', '5', '6', '7']]
    >>> [[t.task_id for t in c] for c in chunk_tasks(tasks, 4)]
    [['0', '1'], ['2', '3'], ['4', '5'], ['6', '7']]
    """
    by_market: dict[str, list[SweepTask]] = {}
    for task in tasks:
        by_market.setdefault(task.market_key, []).append(task)
    target = sum(len(t.points) for t in tasks) / max(1, n_chunks)
    chunks: list[list[SweepTask]] = []
    for group in by_market.values():
        current: list[SweepTask] = []
        size = 0
        for task in group:
            new_lookback = bool(current) and _lookback(task) != _lookback(current[-1])
            if current and (size >= target or (new_lookback and size >= target / 2)):
                chunks.append(current)
                current, size = [], 0
            current.append(task)
            size += len(task.points)
        chunks.append(current)
    return chunks


def _lookback(task: SweepTask) -> Any:
    return task.points[0].config.strategy.lookback_days


def execute_chunk(
    market: MarketData, market_key: str, points: Sequence[Sequence[GridPoint]]
) -> list[TaskOutput]:
    """Run the tasks of a chunk (their points) one after the other in a worker."""
    return [execute_task(market, market_key, pts) for pts in points]


def run_dask(
    tasks: Sequence[SweepTask],
    markets: Mapping[str, MarketData],
    scheduler: str,
    jobs: int,
    done: Callable[[SweepTask, TaskOutput], None],
) -> None:
    """Run the tasks on a Dask cluster (``"local"``: a local cluster of ``jobs`` workers) in chunks
    of about :data:`TASKS_PER_CHUNK` tasks, at least :data:`CHUNKS_PER_WORKER` per worker
    (:func:`chunk_tasks`)."""
    import functools
    import math

    from dask.distributed import as_completed

    warm = functools.partial(warm_kernels, [p for t in tasks for p in t.points[:1]])
    with dask_client(scheduler, jobs, warm) as client:
        n_workers = len(client.scheduler_info()["workers"]) or jobs
        n_chunks = max(CHUNKS_PER_WORKER * n_workers, math.ceil(len(tasks) / TASKS_PER_CHUNK))
        remote = {k: client.scatter(m, broadcast=True) for k, m in markets.items()}
        futures = {
            client.submit(
                execute_chunk,
                remote[chunk[0].market_key],
                chunk[0].market_key,
                [t.points for t in chunk],
                pure=False,
            ): chunk
            for chunk in chunk_tasks(tasks, n_chunks)
        }
        try:
            for future in as_completed(futures):
                for task, output in zip(futures[future], future.result(), strict=True):
                    done(task, output)
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
