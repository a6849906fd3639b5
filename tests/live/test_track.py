"""`track`: the tables of a hand-made journal by hand, of a small replay against its backtest, the
`backtest track` command, secrets kept out of the outputs, and the error paths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main
from backtest.config import parse_config
from backtest.live import LiveError
from backtest.live.journal import Journal
from backtest.live.replay import backtest_beside, replay
from backtest.live.track import REBALANCE_COLUMNS, track, write_track
from reports.track import write_track_report
from tests.live.conftest import API_KEY, API_SECRET
from tests.live.track_case import CASH_AFTER, T0, T1, T2, T3, TARGET, hand_journal


def test_values_weights_and_drift_by_hand(tmp_path):
    result = track(hand_journal(tmp_path))
    v1 = 550.0 + 220.0 + CASH_AFTER
    assert result.values["value"].tolist() == pytest.approx(
        [1000.0, v1, 600.0 + 200.0 + CASH_AFTER, 500.0 + 200.0 + CASH_AFTER], rel=1e-15
    )
    assert list(result.values.index) == [T0, T1, T2, T3]
    assert result.values["backtest"].isna().all()
    w1 = {"BTC": 550.0 / v1, "ETH": 220.0 / v1, "USDT": CASH_AFTER / v1}
    assert result.weights.loc[T1].to_dict() == pytest.approx(w1, rel=1e-14)
    assert result.weights.loc[T0].to_dict() == {"USDT": 1.0, "BTC": 0.0, "ETH": 0.0}
    drift1 = 0.5 * sum(abs(w1[a] - TARGET[a]) for a in TARGET)
    assert np.isnan(result.drift[T0]) and result.drift[T1] == pytest.approx(drift1, rel=1e-14)
    # the dry run's target at T2 is not a target the book was traded to: T3 drifts from T0's
    w3 = result.weights.loc[T3]
    assert result.drift[T3] == pytest.approx(0.5 * sum(abs(w3[a] - TARGET[a]) for a in TARGET))
    assert "no config given" in result.notes[0]


def test_costs_and_shortfall_by_hand(tmp_path):
    r = track(hand_journal(tmp_path)).rebalances
    assert list(r.columns) == list(REBALANCE_COLUMNS)
    assert r["time"].tolist() == [T0, T2] and r["dry_run"].tolist() == [False, True]
    first = r.iloc[0]
    assert first["planned_value"] == 800.0 and first["estimated_cost"] == pytest.approx(1.2)
    assert first["fees"] == pytest.approx(0.7009, rel=1e-14)
    assert first["slippage"] == pytest.approx(5 * 0.1 + 20 * 0.02, rel=1e-12)  # vs decision prices
    assert first["realised_cost"] == pytest.approx(1.6009, rel=1e-12)
    assert first["unfilled_value"] == pytest.approx(100.0)  # 10 ETH at 10
    assert first["opportunity_cost"] == pytest.approx(10.0)  # ETH went to 11 at the next snapshot
    assert first["shortfall"] == pytest.approx(11.6009, rel=1e-12)
    assert first["shortfall_bps"] == pytest.approx(11.6009 / 800 * 1e4, rel=1e-12)
    dry = r.iloc[1]
    assert dry["fees"] == 0 and dry["estimated_cost"] == pytest.approx(0.045)
    assert dry["opportunity_cost"] == 0.0  # ETH at 10 at T2 and T3


def test_summary_counts_executed_decisions_only(tmp_path):
    s = track(hand_journal(tmp_path)).summary
    assert s["n_rebalances"] == 1 and s["n_dry_runs"] == 1
    assert s["realised_cost"] == pytest.approx(1.6009) and s["estimated_cost"] == pytest.approx(1.2)
    assert s["growth"] == pytest.approx((700.0 + CASH_AFTER) / 1000 - 1, rel=1e-14)
    assert np.isnan(s["backtest_growth"])


def test_secrets_absent_from_the_tables_and_the_page(tmp_path, monkeypatch):
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    journal = hand_journal(tmp_path / "j", account="acct", asset_name=API_KEY)  # no key set: kept
    assert API_KEY in set(journal.snapshots()["asset"])
    monkeypatch.setenv("EXCHANGE_API_KEY", API_KEY)
    monkeypatch.setenv("EXCHANGE_API_SECRET", API_SECRET)
    paths = write_track(track(journal), tmp_path / "out")
    assert set(paths) == {"values", "weights", "rebalances", "summary", "html"}
    for path in paths.values():
        text = path.read_text()
        assert API_KEY not in text and API_SECRET not in text, path.name
    assert "***" in paths["weights"].read_text().splitlines()[0]


def test_track_errors(tmp_path):
    with pytest.raises(LiveError, match="has no snapshot to track"):
        track(Journal(tmp_path, "empty"))
    frame = track(hand_journal(tmp_path)).rebalances
    with pytest.raises(
        ValueError, match=r"`rebalances` must have the columns .* missing \['drift'\]"
    ):
        write_track_report(
            tmp_path, pd.DataFrame({"value": [1.0]}), None, None, frame.drop(columns="drift")
        )
    with pytest.raises(ValueError, match="`values` must be a non-empty frame"):
        write_track_report(tmp_path, pd.DataFrame(), None, None, frame)


def test_cli_refuses_a_folder_that_is_not_a_journal(tmp_path, capsys):
    assert main(["track", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "is not an account journal (no _commits folder)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- a small replay
def _config(daily_csv, **extra):
    return parse_config(
        {
            "name": "track-test",
            "data": {
                "source": "csv",
                "path": str(daily_csv),
                "symbols": ["BTC/USDT", "ETH/USDT", "BNB/USDT"],
                "start": "2021-10-01",
                "end": "2022-03-01",
            },
            "strategy": {"name": "hrp", "lookback_days": 60, **extra},
            "rebalance": {"every": "1M"},
            "live": {"mode": "paper"},
        }
    )


@pytest.fixture(scope="module")
def small_replay(tmp_path_factory, request):
    daily_csv = request.getfixturevalue("daily_csv")
    cfg = _config(daily_csv)
    journal = Journal(tmp_path_factory.mktemp("track"), "paper")
    replay(cfg, "2022-01-01", "2022-02-28", journal)
    return cfg, journal


@pytest.mark.shared
def test_a_replay_tracked_beside_its_backtest(small_replay):
    cfg, journal = small_replay
    result = track(journal, cfg)
    fills, plans = journal.fills(), journal.plans()
    r = result.rebalances
    assert len(r) == 2 and not r["dry_run"].any()
    for (time, step), row in zip(
        plans.groupby(["time", "step"]).groups, r.itertuples(), strict=True
    ):
        assert row.time == time and row.step == step
        done = fills[fills["step"] == step].merge(plans[plans["step"] == step], on="symbol")
        sign = np.where(done["side_x"] == "buy", 1.0, -1.0)
        assert row.fees == pytest.approx(done["fee_x"].sum(), rel=1e-12)
        expected = (sign * (done["price_x"] - done["price_y"]) * done["amount_x"]).sum()
        assert row.slippage == pytest.approx(expected, rel=1e-12)
        assert row.unfilled_value == 0.0  # every order of this replay filled in its bar
    bt = backtest_beside(cfg, "2022-01-01", "2022-02-28")
    equity = bt.equity.set_axis(bt.equity.index + pd.Timedelta(days=1))
    assert result.values["backtest"].to_numpy() == pytest.approx(
        equity.reindex(result.values.index).to_numpy(), rel=1e-12
    )  # paper and backtest both start from 100,000
    costs = (bt.rebalances["fees"] + bt.rebalances["slippage"] + bt.rebalances["impact"]).to_numpy()
    assert r["backtest_cost"].to_numpy() == pytest.approx(costs, rel=1e-12)
    s = result.summary
    assert s["backtest_growth"] == pytest.approx(equity.iloc[-1] / equity.iloc[0] - 1, rel=1e-12)
    assert abs(s["difference"]) < 1e-3  # measured: +0.006 percentage points
    assert s["realised_cost"] == pytest.approx(r["realised_cost"].sum())


@pytest.mark.shared
def test_a_config_that_is_not_the_journals_is_refused(small_replay, daily_csv):
    _, journal = small_replay
    with pytest.raises(LiveError, match=r"the config's hash \w+ is not the journal's"):
        track(journal, _config(daily_csv, lookback_days=30))


@pytest.mark.shared
def test_cli_writes_the_tables_and_the_page(small_replay, tmp_path, capsys):
    cfg, journal = small_replay
    config = tmp_path / "paper.toml"
    config.write_text(_toml(cfg))
    out = tmp_path / "out"
    assert main(["track", str(journal.path), "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "paper: 2022-01-02 00:00 to 2022-03-01 00:00, 2 rebalance(s); growth" in printed
    assert "backtest" in printed and f"report: {out / 'track.html'}" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_rebalances"] == 2 and summary["backtest_growth"] is not None
    values = pd.read_csv(out / "values.csv", index_col=0)
    assert list(values.columns) == ["value", "backtest", "drift"] and len(values) == 59
    assert len(pd.read_csv(out / "rebalances.csv")) == 2


def _toml(cfg) -> str:
    d = cfg.data
    return f"""name = "track-test"
[data]
source = "csv"
path = "{d.path}"
symbols = ["BTC/USDT", "ETH/USDT", "BNB/USDT"]
start = "2021-10-01"
end = "2022-03-01"
[strategy]
name = "hrp"
lookback_days = 60
[rebalance]
every = "1M"
[live]
mode = "paper"
"""
