"""`backtest rebalance` writes its snapshot and plan (dry runs marked) and its orders to the journal."""

from __future__ import annotations

import pytest

from backtest.cli import main
from backtest.live import Journal
from tests.cli.test_rebalance_cli import funded_binance, live_config  # noqa: F401 (fixture)
from tests.live.conftest import API_KEY, API_SECRET, keys, live_binance, no_keys  # noqa: F401

pytestmark = pytest.mark.shared


@pytest.mark.usefixtures("keys", "funded_binance")
def test_dry_run_then_execute_are_journaled(tmp_path, capsys):
    root = tmp_path / "journal"
    config = live_config(tmp_path)
    assert main(["rebalance", config, "--journal", str(root)]) == 0
    journal = Journal(root, "binance-live")
    snaps, plans = journal.snapshots(), journal.plans()
    assert snaps["dry_run"].all() and (snaps["step"] == 1).all()
    assert snaps["total_value"].iloc[0] == pytest.approx(1163.42, abs=0.01)
    assert snaps["current_weight"].sum() == pytest.approx(1.0)
    assert snaps["target_weight"].sum() == pytest.approx(1.0)
    assert snaps["config_hash"].nunique() == 1 and len(snaps["config_hash"].iloc[0]) == 16
    assert len(plans) > 0 and plans["side"].iloc[0] == "sell"
    assert journal.orders().empty

    assert main(["rebalance", config, "--journal", str(root), "--execute", "--yes"]) == 0
    snaps = journal.snapshots()
    assert snaps.groupby("step")["dry_run"].first().tolist() == [True, False]
    orders = journal.orders()
    n_slices = int(journal.plans().query("step == 2")["n_slices"].sum())
    # the execution loop's record: each order's intent (before it was sent), its answer, its fill
    # (a slice of a buy the cash could not pay yet is two orders: before and after the sells)
    events = orders.groupby("client_order_id", sort=False)["status"].agg(list)
    assert len(events) >= n_slices
    assert events.tolist() == [["intent", "open", "closed"]] * len(events)
    assert (orders.query("status != 'intent'")["order_id"].str.len() > 0).all()
    fills = journal.fills()
    assert fills["client_order_id"].tolist() == events.index.tolist()
    assert fills.groupby("symbol")["amount"].sum().to_dict() == pytest.approx(
        journal.plans().query("step == 2").set_index("symbol")["amount"].to_dict()
    )
    assert journal.open_orders().empty
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert API_KEY.encode() not in data and API_SECRET.encode() not in data


@pytest.mark.usefixtures("keys", "funded_binance")
def test_default_journal_is_under_the_store_root(tmp_path, capsys):
    assert main(["rebalance", live_config(tmp_path, live_extra='account = "main"')]) == 0
    assert Journal(tmp_path / "store" / "journal", "main").snapshots()["dry_run"].all()


def test_journal_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    code = main(["rebalance", live_config(tmp_path), "--journal", str(tmp_path / "f")])
    assert code == 2 and "`--journal`" in capsys.readouterr().err
