"""A hand-made account journal for the track tests: two decisions (the second a dry run), a partial
fill, marks between them; every figure of the track tables can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.live.journal import Journal, snapshot_frame

T0, T1, T2, T3 = pd.date_range("2022-01-02", periods=4, freq="D", tz="UTC")
TARGET = {"BTC": 0.5, "ETH": 0.3, "USDT": 0.2}
CASH_AFTER = 1000.0 - 5 * 100.1 - 0.5005 - 20 * 10.02 - 0.2004  # 298.399


def _plan(time, rows):
    columns = ["symbol", "asset", "side", "amount", "price", "fee", "slippage"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(
        time=time,
        value=frame["amount"] * frame["price"],
        limit_price=frame["price"] * 1.0005,
        estimated_cost=frame["fee"] + frame["slippage"],
        current_weight=0.0,
        target_weight=0.5,
        n_slices=1,
    )


def _order(time, cid, symbol, amount, status, filled=0.0, average=np.nan, fee=np.nan):
    return {
        "time": time,
        "client_order_id": cid,
        "order_id": "" if status == "intent" else cid.upper(),
        "symbol": symbol,
        "side": "buy",
        "amount": amount,
        "limit_price": 0.0,
        "status": status,
        "filled": filled,
        "average": average,
        "fee": fee,
    }


def _mark(time, prices, asset_name="BTC"):
    holdings = {asset_name: 5.0, "ETH": 20.0, "USDT": CASH_AFTER}
    prices = {asset_name: prices["BTC"], "ETH": prices["ETH"]}
    values = {a: u * prices.get(a, 1.0) for a, u in holdings.items()}
    total = sum(values.values())
    weights = {a: v / total for a, v in values.items()}
    return snapshot_frame(time, holdings, prices, weights, weights, strategy="hrp", kind="mark")


def hand_journal(root, account="hand", asset_name="BTC") -> Journal:
    """Decision at T0 (1000 USDT -> buy 5 BTC at 100 and 30 ETH at 10; the ETH order fills 20),
    marks at T1 (BTC 110, ETH 11) and T3, a dry-run decision at T2 (BTC 120, ETH 10)."""
    journal = Journal(root, account)
    first = snapshot_frame(
        T0,
        {"USDT": 1000.0},
        {"BTC": 100.0, "ETH": 10.0},
        {"USDT": 1.0},
        TARGET,
        score=0.8,
        strategy="hrp",
        config_hash="abc",
    )
    plan = _plan(
        T0,
        [
            ("BTC/USDT", "BTC", "buy", 5.0, 100.0, 0.5, 0.25),
            ("ETH/USDT", "ETH", "buy", 30.0, 10.0, 0.3, 0.15),
        ],
    )
    orders = pd.DataFrame(
        [
            _order(T0, "c1", "BTC/USDT", 5.0, "intent"),
            _order(T0, "c2", "ETH/USDT", 30.0, "intent"),
            _order(T1, "c1", "BTC/USDT", 5.0, "closed", 5.0, 100.1, 0.5005),
            _order(T1, "c2", "ETH/USDT", 30.0, "canceled", 20.0, 10.02, 0.2004),
        ]
    )
    fills = pd.DataFrame(
        {
            "time": T1,
            "client_order_id": ["c1", "c2"],
            "symbol": ["BTC/USDT", "ETH/USDT"],
            "side": "buy",
            "amount": [5.0, 20.0],
            "price": [100.1, 10.02],
            "fee": [0.5005, 0.2004],
        }
    )
    journal.append({"snapshots": first, "plans": plan, "orders": orders})
    journal.append(
        {"fills": fills, "snapshots": _mark(T1, {"BTC": 110.0, "ETH": 11.0}, asset_name)}
    )
    prices = {"BTC": 120.0, "ETH": 10.0}
    dry = _mark(T2, prices, asset_name).assign(
        kind="rebalance", dry_run=True, score=0.05, config_hash="abc"
    )
    journal.append(
        {"snapshots": dry, "plans": _plan(T2, [("ETH/USDT", "ETH", "buy", 3.0, 10.0, 0.03, 0.015)])}
    )
    journal.append({"snapshots": _mark(T3, {"BTC": 100.0, "ETH": 10.0}, asset_name)})
    return journal
