"""`backtest rebalance` through the real entry point against the offline Binance (tests/live/)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from backtest.cli import main
from tests.datasets.ccxt_fake import HttpError
from tests.live.ccxt_fixtures import ACCOUNT_PATH, ORDER_PATH, FakeOrderBook, form
from tests.live.conftest import API_KEY, API_SECRET, keys, live_binance, no_keys  # noqa: F401 (fixtures)

pytestmark = pytest.mark.shared

CONFIG = """
name = "live-test"

[data]
source = "ccxt"
exchange = "{exchange}"
symbols = {symbols}
timeframe = "1d"
store_root = "{store}"

[strategy]
name = "mpt"
lookback_days = 30
min_weight = 0.05
max_weight = 0.4

[costs]
fee_bps = 10
slippage_bps = 5

[live]
min_trade_value = 10
max_slice_value = 200
poll_seconds = 0.01
order_timeout_seconds = 0.05
{live_extra}
"""
SYMBOLS = '["BTC/USDT", "ETH/USDT", "LTC/USDT", "XRP/USDT", "ADA/USDT"]'


def live_config(
    tmp_path: Path, exchange: str = "binance", symbols: str = SYMBOLS, live_extra: str = ""
) -> str:
    path = tmp_path / "live.toml"
    path.write_text(
        CONFIG.format(
            exchange=exchange, symbols=symbols, store=tmp_path / "store", live_extra=live_extra
        )
    )
    return str(path)


MARKETS = ("BTCUSDT", "ETHUSDT", "LTCUSDT", "XRPUSDT", "ADAUSDT")


@pytest.fixture
def funded_binance(request, exchange_fixtures):
    """The recorded balance plus 200 USDT and 0.05 BTC, on Binance's order endpoints with state:
    every order fills at its first query (``funded_binance.book``)."""
    server = request.getfixturevalue("live_binance")
    balances = {"USDT": 200.0, "BTC": 0.05, "LTC": 0.919741, "ETH": 0.02229833}
    server.book = FakeOrderBook(balances, {m: [[1.0]] for m in MARKETS})
    server.book.install(server, exchange_fixtures)
    return server


def _posts(server):
    return [r for r in server.requests_to(ORDER_PATH) if r.method == "POST"]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_rebalance(capsys):
    code, out, _ = _run(capsys, "rebalance", "--help")
    assert code == 0 and "--execute" in out and "--yes" in out and "--out" in out


@pytest.mark.usefixtures("keys")
def test_dry_run_shows_allocation_target_trades_and_cost(funded_binance, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "rebalance", live_config(tmp_path), "--out", str(out_dir))
    assert code == 0, err
    for text in (
        "live-test: binance account, 1,163.42 USDT",
        "asset",
        "current",
        "target",
        "target: mpt (max_sharpe) on 30 1d returns to 2023-01-09",
        "Sharpe",
        "rebalancing trades (sells first)",
        "│ sell │ BTC/USDT",
        "rebalancing score",
        "estimated cost",
        "dry run: no orders placed (add --execute to place them)",
    ):
        assert text in out, text
    assert not _posts(funded_binance)
    saved = json.loads((out_dir / "plan.json").read_text())
    sides = [t["side"] for t in saved["plan"]["trades"]]
    assert sides == sorted(sides, key=lambda side: side != "sell") and sides[0] == "sell"
    assert saved["plan"]["score"] > 0
    assert abs(sum(saved["analysis"]["target_weights"].values()) - 1) < 1e-9
    assert (out_dir / "trades.csv").read_text().startswith("symbol,asset,side,amount")
    assert (out_dir / "frontier.csv").exists()
    assert API_KEY not in out + err + (out_dir / "plan.json").read_text()


@pytest.mark.usefixtures("keys")
def test_execute_with_yes_places_every_slice_and_reports_status(funded_binance, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = _run(
        capsys, "rebalance", live_config(tmp_path), "--execute", "--yes", "--out", str(out_dir)
    )
    assert code == 0, err
    saved = json.loads((out_dir / "plan.json").read_text())
    n_slices = sum(len(t["slices"]) for t in saved["plan"]["trades"])
    posts = _posts(funded_binance)
    assert n_slices > len(saved["plan"]["trades"])  # max_slice_value = 200 splits some
    # a buy the cash cannot pay yet is split: what the cash pays, the rest once the sells filled
    assert len(posts) > n_slices
    orders = json.loads((out_dir / "orders.json").read_text())
    # the execution loop's outcome: each order watched until it filled, the cash never below 0
    assert [o["status"] for o in orders] == ["closed"] * len(posts)
    assert [o["filled"] for o in orders] == [o["amount"] for o in orders]
    assert [o["status"] for o in funded_binance.book.orders] == ["FILLED"] * len(posts)
    assert 0 <= funded_binance.book.min_balance < 200
    planned = {t["symbol"]: t["amount"] for t in saved["plan"]["trades"]}
    done: dict[str, float] = {}
    for o in orders:
        done[o["symbol"]] = done.get(o["symbol"], 0.0) + o["filled"]
    assert done == pytest.approx(planned)
    # round k places slice k of every sell, first; the buys follow as far as the cash pays
    trades = saved["plan"]["trades"]
    rounds = [
        (t["symbol"].replace("/", ""), "SELL")
        for k in range(max(len(t["slices"]) for t in trades))
        for t in trades
        if len(t["slices"]) > k and t["side"] == "sell"
    ]
    sent = [(form(r)["symbol"], form(r)["side"]) for r in posts]
    assert [s for s in sent if s[1] == "SELL"] == rounds and sent[0] == rounds[0]
    assert trades[0]["side"] == "sell"
    assert "orders" in out and "closed" in out and "dry run" not in out and "not filled" not in out


@pytest.mark.parametrize(("answer", "code", "placed"), [("n\n", 1, False), ("y\n", 0, True)])
@pytest.mark.usefixtures("keys")
def test_execute_asks_for_confirmation(
    funded_binance, tmp_path, capsys, monkeypatch, answer, code, placed
):
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    got, out, err = _run(capsys, "rebalance", live_config(tmp_path), "--execute")
    assert got == code
    assert "Place " in out and "limit order(s) on binance" in out
    assert bool(_posts(funded_binance)) is placed
    if not placed:
        assert "aborted" in err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exchange": "binanse"}, "error: unknown exchange id 'binanse'; did you mean 'binance'"),
        ({"symbols": '["BTC/USDT", "FOO/USDT"]'}, "error: unknown symbol 'FOO/USDT' on binance"),
        (
            {"live_extra": 'api_key = "abc"'},
            "error: live: api_key: API keys never go in config files",
        ),
        (
            {"live_extra": "max_volume_share = 2"},
            "error: live.max_volume_share: Input should be less than or equal to 1",
        ),
        (
            {"live_extra": "max_reprices = -1"},
            "error: live: `max_reprices` must be an integer >= 0; got -1",
        ),
        (
            {"live_extra": "deadline_seconds = 0.001"},
            "error: live: `deadline_seconds` = 0.001 is shorter than `poll_seconds` = 0.01",
        ),
    ],
)
@pytest.mark.usefixtures("keys")
def test_bad_input_is_one_line_and_exit_2(funded_binance, tmp_path, capsys, kwargs, message):
    code, out, err = _run(capsys, "rebalance", live_config(tmp_path, **kwargs))
    assert code == 2, out + err
    assert err.startswith(message), err
    assert "Traceback" not in err and not _posts(funded_binance)


@pytest.mark.usefixtures("no_keys")
def test_missing_keys_exit_2(funded_binance, tmp_path, capsys):
    code, _, err = _run(capsys, "rebalance", live_config(tmp_path))
    assert code == 2
    assert err.startswith(
        "error: reading the account's balances needs API keys: set EXCHANGE_API_KEY and "
        "EXCHANGE_API_SECRET in the environment"
    )
    assert not funded_binance.requests


@pytest.mark.usefixtures("keys")
def test_rejected_keys_exit_2_without_showing_them(funded_binance, tmp_path, capsys):
    funded_binance.route(
        ACCOUNT_PATH, HttpError(401, {"code": -2015, "msg": f"Invalid API-key {API_KEY}"})
    )
    code, out, err = _run(capsys, "rebalance", live_config(tmp_path))
    assert code == 2
    assert err.startswith("error: binance rejected the API keys during fetch_balance")
    assert API_KEY not in out + err and API_SECRET not in out + err


@pytest.mark.usefixtures("keys")
def test_the_example_config_runs(funded_binance, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALPHAPULSE_DATA", str(tmp_path / "store"))
    example = Path(__file__).resolve().parents[2] / "examples" / "live.toml"
    code, out, err = _run(capsys, "rebalance", str(example))
    assert code == 0, err
    assert "live-binance-mpt: binance account" in out and "BNB" in out and "dry run" in out
