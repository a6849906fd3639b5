"""`backtest rebalance` through the real entry point against the offline Binance (tests/live/)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from backtest.cli import main
from tests.datasets.ccxt_fake import HttpError
from tests.live.ccxt_fixtures import ACCOUNT_PATH, ORDER_PATH, balance_payload
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


@pytest.fixture
def funded_binance(request, exchange_fixtures):
    server = request.getfixturevalue("live_binance")
    server.route(
        ACCOUNT_PATH,
        balance_payload(exchange_fixtures, {"USDT": "200.00000000", "BTC": "0.05000000"}),
    )
    return server


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
    assert not funded_binance.requests_to(ORDER_PATH)
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
    posts = funded_binance.requests_to(ORDER_PATH)
    assert (
        len(posts) == n_slices > len(saved["plan"]["trades"])
    )  # max_slice_value = 200 splits some
    orders = json.loads((out_dir / "orders.json").read_text())
    assert [o["status"] for o in orders] == ["open"] * n_slices
    sides = [o["side"] for o in orders]
    assert sides == sorted(sides, key=lambda side: side != "sell") and "sell" in sides
    assert "orders" in out and "dry run" not in out


@pytest.mark.parametrize(("answer", "code", "placed"), [("n\n", 1, False), ("y\n", 0, True)])
@pytest.mark.usefixtures("keys")
def test_execute_asks_for_confirmation(
    funded_binance, tmp_path, capsys, monkeypatch, answer, code, placed
):
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    got, out, err = _run(capsys, "rebalance", live_config(tmp_path), "--execute")
    assert got == code
    assert "Place " in out and "limit order(s) on binance" in out
    assert bool(funded_binance.requests_to(ORDER_PATH)) is placed
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
    ],
)
@pytest.mark.usefixtures("keys")
def test_bad_input_is_one_line_and_exit_2(funded_binance, tmp_path, capsys, kwargs, message):
    code, out, err = _run(capsys, "rebalance", live_config(tmp_path, **kwargs))
    assert code == 2, out + err
    assert err.startswith(message), err
    assert "Traceback" not in err and not funded_binance.requests_to(ORDER_PATH)


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
