"""The same sweep run in this process, with `--jobs 2`, on a real Dask LocalCluster (two worker
processes on loopback) and on an already running cluster reached by its tcp:// address gives
identical tables: `backtest sweep` through the real entry point."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.cli import main

CONFIG = """
name = "routes"
[data]
source = "synthetic"
n_assets = 6
n_bars = 400
seed = 11
[strategy]
name = "hrp"
max_weight = 0.6
[costs]
fee_bps = 10
slippage_bps = 5
[sweep]
"strategy.name" = ["hrp", "mpt"]
"strategy.lookback_days" = [30, 60]
"rebalance.every" = ["1W", "1M"]
"costs.fee_bps" = [10, 30]
"""


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("routes")
    config = folder / "sweep.toml"
    config.write_text(CONFIG)
    from dask.distributed import LocalCluster

    outs = {}
    # an existing cluster, reached over tcp
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        scheduler_kwargs={"dashboard": False},
    ) as running:
        for name, args in {
            "serial": ["--jobs", "1"],
            "jobs2": ["--jobs", "2"],
            "dask": ["--scheduler", "local", "--jobs", "2"],
            "tcp": ["--scheduler", running.scheduler_address],
        }.items():
            outs[name] = folder / name
            assert (
                main(["sweep", str(config), "--out", str(outs[name]), "--no-html", *args]) == 0
            ), name
    return outs


def test_serial_processes_and_dask_give_identical_tables(tables):
    serial = pd.read_parquet(tables["serial"] / "sweep.parquet")
    assert len(serial) == 16 and (serial["error"] == "").all()
    for route in ("jobs2", "dask", "tcp"):
        other = pd.read_parquet(tables[route] / "sweep.parquet")
        pd.testing.assert_frame_equal(other, serial, check_exact=True)
        assert (tables[route] / "sweep.csv").read_bytes() == (
            tables["serial"] / "sweep.csv"
        ).read_bytes()
        pd.testing.assert_frame_equal(
            pd.read_parquet(tables[route] / "returns.parquet"),
            pd.read_parquet(tables["serial"] / "returns.parquet"),
            check_exact=True,
        )


def test_the_route_is_recorded_and_overfitting_statistics_are_written(tables):
    import json

    stats = {route: json.loads((tables[route] / "overfit.json").read_text()) for route in tables}
    assert stats["serial"] == stats["jobs2"] == stats["dask"] == stats["tcp"]
    assert 0.0 <= stats["serial"]["pbo"]["pbo"] <= 1.0 and stats["serial"]["dsr"]["n_trials"] == 16


def _task(i: int, market: str, lookback: int, n_points: int = 10):
    from backtest.config import ExperimentConfig
    from backtest.sweep import GridPoint, SweepTask

    cfg = ExperimentConfig.model_validate({"strategy": {"lookback_days": lookback}})
    return SweepTask(f"{market}{lookback}-{i}", market, (GridPoint(str(i), {}, cfg),) * n_points)


def test_dask_chunks_keep_every_task_once_one_market_each_cut_between_lookbacks():
    from backtest.sweep.routes import chunk_tasks

    tasks = [_task(i, m, lb) for lb in (90, 60, 30) for m in ("a", "b") for i in range(2)]
    by_lookback = chunk_tasks(tasks, 6)  # 20 points per chunk: one lookback of one market each
    assert [[t.task_id for t in c] for c in by_lookback] == [
        [f"{m}{lb}-0", f"{m}{lb}-1"] for m in ("a", "b") for lb in (90, 60, 30)
    ]
    fewer = chunk_tasks(tasks, 2)  # 60 points: cut at the first lookback change past 30 points
    assert [[t.task_id for t in c] for c in fewer] == [
        [f"{m}{lb}-{i}" for lb in lbs for i in range(2)]
        for m in ("a", "b")
        for lbs in ((90, 60), (30,))
    ]
    assert [len(c) for c in chunk_tasks(tasks, 100)] == [1] * len(tasks)  # a task is never split
    for chunks in (by_lookback, fewer):
        assert sorted(t.task_id for c in chunks for t in c) == sorted(t.task_id for t in tasks)


@pytest.mark.skipif(
    "forkserver" not in __import__("multiprocessing").get_all_start_methods(),
    reason="local Dask workers fork from a preloaded server only where there is a forkserver",
)
def test_local_workers_fork_from_the_preloaded_server(tables):
    import gc
    import os
    import sys

    from backtest.sweep.routes import WORKER_SERVER_FLAG, dask_client

    def state():
        return gc.get_freeze_count(), "backtest.sweep.task" in sys.modules, os.getppid()

    with dask_client("local", 2) as client:
        states = list(client.run(state).values())
    frozen, imported, parents = zip(*states, strict=True)
    # the engine imported and the server's objects frozen before the worker's first task; both
    # workers are children of the same server process (not of this one)
    assert all(n > 10_000 for n in frozen) and all(imported)
    assert len(set(parents)) == 1 and parents[0] != os.getpid()
    assert WORKER_SERVER_FLAG not in os.environ  # the flag was for the server's start only
