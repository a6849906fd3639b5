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
