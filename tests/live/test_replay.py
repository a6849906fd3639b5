"""Replay on the real daily data: the paper account against the backtest of the same config, a
replay stopped and killed midway then resumed against an uninterrupted one, the CLI."""

from __future__ import annotations

import pandas as pd
import pytest

from backtest.cli import main
from backtest.config import parse_config
from backtest.live import LiveError
from backtest.live import journal as journal_module
from backtest.live.journal import TABLES, Journal
from backtest.live.replay import backtest_beside, replay

pytestmark = pytest.mark.shared

SYMBOLS_20 = [
    "BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT", "LTC/USDT",
    "LINK/USDT", "TRX/USDT", "ATOM/USDT", "XLM/USDT", "ETC/USDT", "BCH/USDT", "XMR/USDT",
    "EOS/USDT", "VET/USDT", "ALGO/USDT", "MATIC/USDT", "THETA/USDT", "ZEC/USDT",
]  # fmt: skip


def _config(daily_csv, symbols, every="1W", **strategy):
    return parse_config(
        {
            "name": "paper-test",
            "data": {
                "source": "csv",
                "path": str(daily_csv),
                "symbols": symbols,
                "start": "2021-06-01",
                "end": "2022-06-30",
            },
            "strategy": {
                "name": "mpt",
                "objective": "max_sharpe",
                "lookback_days": 90,
                "max_weight": 0.3,
                **strategy,
            },
            "rebalance": {"every": every},
            "costs": {
                "fee_bps": 10,
                "slippage_bps": 5,
                "min_trade_value": 10,
                "initial_cash": 100_000,
            },
            "live": {"mode": "paper"},
        }
    )


def test_paper_growth_is_within_1_5_percent_of_the_backtest(daily_csv, tmp_path):
    cfg = _config(daily_csv, SYMBOLS_20)
    result = replay(cfg, "2022-01-01", "2022-06-30", Journal(tmp_path, "paper"))
    equity = backtest_beside(cfg, "2022-01-01", "2022-06-30").equity
    bt_growth = equity.iloc[-1] / equity.iloc[0] - 1
    assert result.finished and result.steps == 27
    assert result.values.iloc[0] == 100_000.0
    assert bt_growth == pytest.approx(-0.6335, abs=5e-4)  # the market fell: BTC -57%
    assert abs(result.growth - bt_growth) < 0.015
    assert abs(result.growth - bt_growth) < 0.006  # measured: 0.49 percentage points
    # the same bar closes: the journal's times are closes, the backtest's index bar opens
    step = pd.Timedelta(days=1)
    paired = equity.reindex(result.values.index - step).to_numpy()
    # at most 1.4 % apart (measured): 2022-06-13, an XLM sell filled in the bar, not at its open,
    # and the buy its proceeds paid followed a bar later, after that day's fall
    assert abs(result.values.to_numpy() / paired - 1).max() < 0.015
    fills = result.journal.fills()
    assert len(fills) > 0 and (fills["fee"] > 0).all()


def test_each_decision_is_executed_by_the_execution_loop_in_one_commit(daily_csv, tmp_path):
    """The live execution loop on the book's clock: each order's intent at its decision's close
    (the sells, and the buys once the sells' proceeds pay them: the first poll is the next bar's
    open, the same instant), the paper exchange's answer, its final status and its fill at that
    open or one bar later, at the plan's limit; nothing left open; a decision's rows in one commit,
    with a mark at every bar close up to the next decision and none at a decision."""
    cfg = _config(daily_csv, ["BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT"])
    result = replay(cfg, "2022-01-01", "2022-02-28", Journal(tmp_path, "paper"))
    journal = result.journal
    snaps, plans, orders, fills = (journal.read(t) for t in TABLES)
    decisions = snaps.query("kind == 'rebalance'").groupby("step")["time"].first()
    assert len(journal.commits()) == result.steps == len(decisions) == 10
    assert snaps.groupby("time")["kind"].nunique().max() == 1  # no mark at a decision
    day = pd.Timedelta(days=1)
    marks = snaps.query("kind == 'mark'").groupby("step")["time"].agg(["min", "max"])
    between = decisions.shift(-1) - decisions  # to the next decision
    assert (marks["min"] == decisions[marks.index] + day).all()
    assert (marks["max"] - marks["min"] == between[marks.index] - 2 * day).iloc[:-1].all()
    assert set(between.dropna().dt.days) == {1, 7} and 1 not in marks.index  # 1: no bar between
    events = orders.groupby("client_order_id", sort=False)
    assert events["status"].agg(list).tolist() == [["intent", "open", "closed"]] * events.ngroups
    first, last = events.first(), events.last()
    decided = decisions[first["step"]].to_numpy()
    assert (first["time"].to_numpy() == decided).all()  # the intent, before the order is sent
    at_open = last["time"].to_numpy() == decided  # filled at the next bar's open
    assert (at_open | (last["time"].to_numpy() == decided + day)).all()  # else in that bar
    assert at_open[(first["side"] == "sell").to_numpy()].mean() > 0.5
    prefixes = [f"p{t:%Y%m%d%H%M}" for t in decided]
    assert [c.rsplit("-", 1)[0] for c in first.index] == prefixes
    planned = plans.set_index(["step", "symbol"])["limit_price"]
    keys = list(zip(first["step"], first["symbol"], strict=True))
    assert (first["limit_price"].to_numpy() == planned[keys].to_numpy()).all()
    assert fills["client_order_id"].tolist() == first.index.tolist()
    assert (fills["time"].to_numpy() == last["time"].to_numpy()).all()
    assert journal.open_orders().empty
    assert snaps.query("asset == 'USDT'")["holding"].min() >= 0


def test_with_partial_fills_the_cash_never_goes_below_zero(daily_csv, tmp_path, monkeypatch):
    """Q1 2022, 5 assets, at most 3e-5 of a bar's volume per order and bar: sells fill over days
    and the buys wait for their proceeds (before the fix the cash fell to -6,132 USDT)."""
    from backtest.live.paper import PaperBook

    low, apply_fill = [100_000.0], PaperBook.apply_fill

    def booked(book, *args):  # every fill the book takes, the journal's replayed ones included
        apply_fill(book, *args)
        low.append(min(low[-1], book.balances["USDT"]))

    monkeypatch.setattr(PaperBook, "apply_fill", booked)
    cfg = _config(daily_csv, ["BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT"])
    cfg = cfg.model_copy(update={"live": cfg.live.model_copy(update={"fill_share": 3e-5})})
    result = replay(cfg, "2022-01-01", "2022-03-31", Journal(tmp_path, "paper"))
    orders = result.journal.orders().drop_duplicates("client_order_id", keep="last")
    n_fills = len(result.journal.fills())
    assert result.finished and n_fills > 70 and len(low) == 1 + n_fills
    assert (orders["status"] == "canceled").sum() >= 10  # partial fills, canceled and repriced
    assert "rejected" not in set(orders["status"])  # no buy the cash could not pay was sent
    assert 0 <= low[-1] < 1  # never below zero; the buys spend what the sells brought in


def _tables(journal: Journal) -> dict[str, pd.DataFrame]:
    return {t: journal.read(t) for t in TABLES}


def test_stopped_and_killed_then_resumed_gives_the_same_journal(daily_csv, tmp_path, monkeypatch):
    cfg = _config(daily_csv, ["BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT"])
    whole = replay(cfg, "2022-01-01", "2022-03-31", Journal(tmp_path, "whole"))
    assert whole.finished and whole.steps == 14

    parts = Journal(tmp_path, "parts")
    first = replay(cfg, "2022-01-01", "2022-03-31", parts, stop_after=4)
    assert not first.finished and first.steps == 4
    real, written = journal_module._atomic_parquet, []

    def killed_in_a_later_commit(frame, path):  # dies between two tables of a commit after the 6th
        seq = int(path.name.split("-")[1])
        if seq >= 7 and seq in written:
            raise KeyboardInterrupt("kill -9")
        written.append(seq)
        real(frame, path)

    monkeypatch.setattr(journal_module, "_atomic_parquet", killed_in_a_later_commit)
    with pytest.raises(KeyboardInterrupt, match="kill -9"):
        replay(cfg, "2022-01-01", "2022-03-31", parts)
    monkeypatch.setattr(journal_module, "_atomic_parquet", real)
    killed_at = written[-1]
    assert len(parts.commits()) == killed_at - 1 and killed_at >= 7
    assert (parts.path / "snapshots" / f"part-{killed_at:06d}-0.parquet").exists()  # the orphan
    rest = replay(cfg, "2022-01-01", "2022-03-31", parts)
    assert rest.finished and rest.steps == 14 - killed_at + 1
    for table, frame in _tables(whole.journal).items():
        pd.testing.assert_frame_equal(_tables(parts)[table], frame, obj=table, check_exact=True)
    again = replay(cfg, "2022-01-01", "2022-03-31", parts)  # nothing left: nothing duplicated
    assert again.steps == 0 and len(parts.commits()) == 14


def test_replay_errors(daily_csv, tmp_path):
    cfg = _config(daily_csv, ["BTC/USDT", "ETH/USDT"])
    journal = Journal(tmp_path, "x")
    with pytest.raises(LiveError, match=r"START \(2022-03-01\) must be before END \(2022-02-01\)"):
        replay(cfg, "2022-03-01", "2022-02-01", journal)
    with pytest.raises(LiveError, match="START 2022-06-30 is at or after the data's last bar"):
        replay(cfg, "2022-06-30", "2022-07-30", journal)
    with pytest.raises(LiveError, match="`start` must be a date such as 2022-01-01; got 'soon'"):
        replay(cfg, "soon", "2022-07-30", journal)


def _toml(tmp_path, daily_csv, mode="paper"):
    path = tmp_path / "paper.toml"
    path.write_text(
        f"""
[data]
source = "csv"
path = "{daily_csv}"
symbols = ["BTC/USDT", "ETH/USDT", "BNB/USDT"]
start = "2021-10-01"
end = "2022-03-01"
[strategy]
name = "hrp"
lookback_days = 60
[rebalance]
every = "1M"
[live]
mode = "{mode}"
"""
    )
    return str(path)


def test_cli_replays_then_continues_without_duplicating(daily_csv, tmp_path, capsys):
    args = ["paper", _toml(tmp_path, daily_csv), "--replay", "2022-01-01:2022-02-28"]
    args += ["--journal", str(tmp_path / "j")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 decision(s) replayed; paper growth" in out and "backtest" in out
    assert main(args) == 0
    assert "0 decision(s) replayed" in capsys.readouterr().out
    assert len(Journal(tmp_path / "j", "binance-paper").commits()) == 2


def test_cli_errors(daily_csv, tmp_path, capsys):
    config = _toml(tmp_path, daily_csv)
    assert main(["paper", config, "--replay", "2022-01-01"]) == 2
    assert "`--replay` must be START:END" in capsys.readouterr().err
    assert main(["paper", _toml(tmp_path, daily_csv, mode="live"), "--replay", "a:b"]) == 2
    assert 'live.mode: `backtest paper` needs [live] mode = "paper"' in capsys.readouterr().err
