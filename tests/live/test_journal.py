"""`Journal`: append-only atomic commits, readers, the writer lock, error messages, no secrets."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.live import LiveError
from backtest.live import journal as journal_module
from backtest.live.journal import TABLES, Journal, config_hash, plan_frame, snapshot_frame
from backtest.live.results import RebalancePlan, Trade

T0 = pd.Timestamp("2022-01-03", tz="UTC")


def _snapshot(time=T0, btc=0.5, strategy="hrp"):
    return snapshot_frame(
        time,
        {"BTC": btc, "USDT": 100.0},
        {"BTC": 200.0},
        {"BTC": 0.5, "USDT": 0.5},
        {"BTC": 0.6, "USDT": 0.4},
        score=0.1,
        strategy=strategy,
        config_hash="c0ffee",
    )


def _order(cid="a1", status="intent", time=T0):
    return pd.DataFrame(
        [
            {
                "time": time,
                "client_order_id": cid,
                "order_id": "",
                "symbol": "BTC/USDT",
                "side": "buy",
                "amount": 0.1,
                "limit_price": 200.1,
                "status": status,
                "filled": 0.0,
                "average": np.nan,
                "fee": np.nan,
            }
        ]
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_snapshot_rows_value_weights_and_cash_by_hand():
    rows = _snapshot()
    assert list(rows["asset"]) == ["BTC", "USDT"]
    assert list(rows["value"]) == [100.0, 100.0]
    assert (rows["total_value"] == 200.0).all() and (rows["price"] == [200.0, 1.0]).all()
    assert list(rows["target_weight"]) == [0.6, 0.4]


def test_append_and_read_in_commit_order(tmp_path):
    journal = Journal(tmp_path, "acct")
    assert journal.read("snapshots").columns.tolist() == list(TABLES["snapshots"])
    assert journal.last_time() is None
    assert journal.append({"snapshots": _snapshot()}) == 1
    later = T0 + pd.Timedelta(days=1)
    assert journal.append({"snapshots": _snapshot(later, btc=0.7), "orders": _order()}) == 2
    snaps = journal.snapshots()
    assert snaps["step"].tolist() == [1, 1, 2, 2]
    assert snaps["holding"].tolist() == [0.5, 100.0, 0.7, 100.0]
    assert journal.last_time() == later
    assert journal.orders()["step"].tolist() == [2]
    assert [c["seq"] for c in journal.commits()] == [1, 2]
    assert journal.fills().empty


def test_old_parts_are_never_rewritten(tmp_path):
    journal = Journal(tmp_path, "acct")
    journal.append({"snapshots": _snapshot()})
    before = _files(journal.path)
    journal.append({"snapshots": _snapshot(T0 + pd.Timedelta(days=1))})
    after = _files(journal.path)
    assert all(after[name] == data for name, data in before.items() if name != ".lock")
    assert len(after) == len(before) + 2  # one part and one manifest


def test_a_commit_killed_midway_is_invisible_and_the_next_one_goes_beside_it(tmp_path, monkeypatch):
    journal = Journal(tmp_path, "acct")
    journal.append({"snapshots": _snapshot()})
    real = journal_module._atomic_parquet
    calls = []

    def dies_on_second(frame, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        real(frame, path)

    monkeypatch.setattr(journal_module, "_atomic_parquet", dies_on_second)
    with pytest.raises(KeyboardInterrupt, match="killed"):
        journal.append({"snapshots": _snapshot(T0 + pd.Timedelta(days=1)), "orders": _order()})
    monkeypatch.setattr(journal_module, "_atomic_parquet", real)
    assert (journal.path / "snapshots" / "part-000002-0.parquet").exists()  # the orphan
    assert journal.snapshots()["step"].tolist() == [1, 1] and journal.orders().empty
    assert not list(journal.path.rglob("*.tmp"))
    journal.append({"snapshots": _snapshot(T0 + pd.Timedelta(days=2))})
    assert journal.commits()[-1]["parts"] == {"snapshots": "snapshots/part-000002-1.parquet"}
    assert journal.snapshots()["time"].iloc[-1] == T0 + pd.Timedelta(days=2)


def test_two_writers_do_not_interleave(tmp_path):
    journals = [Journal(tmp_path, "acct"), Journal(tmp_path, "acct")]

    def write(j: Journal, k: int) -> None:
        for i in range(15):
            j.append({"orders": _order(cid=f"w{k}-{i}"), "snapshots": _snapshot()})

    threads = [threading.Thread(target=write, args=(j, k)) for k, j in enumerate(journals)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    commits = journals[0].commits()
    assert [c["seq"] for c in commits] == list(range(1, 31))
    orders = journals[0].orders()
    assert len(orders) == 30 and orders["step"].tolist() == list(range(1, 31))
    assert sorted(orders["client_order_id"]) == sorted(
        f"w{k}-{i}" for k in (0, 1) for i in range(15)
    )


def test_open_orders_are_the_last_events_not_final(tmp_path):
    journal = Journal(tmp_path, "acct")
    journal.append({"orders": pd.concat([_order("a"), _order("b"), _order("c")])})
    journal.append({"orders": pd.concat([_order("a", "open"), _order("b", "closed")])})
    open_ = journal.open_orders()
    assert open_["client_order_id"].tolist() == ["a", "c"]
    assert open_["status"].tolist() == ["open", "intent"]


def test_plan_rows_one_per_trade():
    trade = Trade(
        "BTC/USDT", "BTC", "buy", 0.1, 200.0, 20.0, 0.1, 0.5, 0.6, 0.02, 0.01, 200.1, (0.05, 0.05)
    )
    plan = RebalancePlan(trades=(trade,), score=0.1, total_value=200.0, quote="USDT")
    rows = plan_frame(T0, plan)
    assert rows["estimated_cost"].tolist() == [pytest.approx(0.03)]
    assert rows["n_slices"].tolist() == [2] and rows["limit_price"].tolist() == [200.1]


def test_secrets_are_masked_in_every_text_cell_and_absent_from_the_files(tmp_path, monkeypatch):
    key, secret = "kEyXYZ0123456789abcdef", "sEcReT9876543210fedcba"
    monkeypatch.setenv("EXCHANGE_API_KEY", key)
    monkeypatch.setenv("EXCHANGE_API_SECRET", secret)
    journal = Journal(tmp_path, "acct", redact=lambda s: s.replace("other-token", "***"))
    journal.append(
        {
            "snapshots": _snapshot(strategy=f"hrp {key} other-token"),
            "orders": _order(cid=f"x-{secret}"),
        }
    )
    assert journal.snapshots()["strategy"].iloc[0] == "hrp *** ***"
    assert journal.orders()["client_order_id"].iloc[0] == "x-***"
    for data in _files(journal.path).values():
        assert key.encode() not in data and secret.encode() not in data
        assert b"other-token" not in data


def test_config_hash_ignores_key_order_and_changes_with_values():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert len(config_hash({"a": 1})) == 16


@pytest.mark.parametrize("account", ["", ".hidden", "a/b", "../up", "x" * 101, 3])
def test_bad_account_names(tmp_path, account):
    with pytest.raises(LiveError, match="`account` must be a folder name"):
        Journal(tmp_path, account)


def test_unknown_table(tmp_path):
    with pytest.raises(LiveError, match=r"`table` must be one of \['fills', 'orders'"):
        Journal(tmp_path, "acct").read("trades")


def test_missing_and_unknown_columns(tmp_path):
    journal = Journal(tmp_path, "acct")
    with pytest.raises(LiveError, match=r"missing \['kind'\], unknown \['extra'\]"):
        journal.append({"snapshots": _snapshot().drop(columns="kind").assign(extra=1)})
    with pytest.raises(LiveError, match="`orders` rows must be a DataFrame; got dict"):
        journal.append({"orders": {"a": 1}})
    assert journal.commits() == []
