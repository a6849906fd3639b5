"""The execution loop against ccxt's real async Binance class, offline (recorded exchangeInfo,
tickers at the 2023-01-09 closes, Binance's order endpoints with state): fills, reprices, cancels,
partial fills carried into the next slice, balances reconciled, a kill mid-execution and the
restart that settles it. A simulated clock: every test runs instantly."""

from __future__ import annotations

import asyncio

import pytest

from backtest.live import LiveError
from backtest.live.execution import ExecutionLoop, ExecutionSettings
from backtest.live.journal import Journal
from backtest.live.results import RebalancePlan, Trade
from datasets import BinanceConnector
from datasets.connectors import ReadOnlyError
from tests.live.ccxt_fixtures import (
    OPEN_ORDERS_PATH,
    ORDER_PATH,
    FakeOrderBook,
    SimulatedClock,
    form,
)

pytestmark = pytest.mark.shared

LTC, BTC = 81.62, 17178.26  # the tickers: closes of 2023-01-09


def _trade(symbol, side, slices, limit):
    price = LTC if symbol == "LTC/USDT" else BTC
    amount = sum(slices)
    return Trade(
        symbol, symbol.split("/")[0], side, amount, price, amount * price, 0.0, 0.0, 0.0, 0.0, 0.0,
        limit, tuple(slices),
    )  # fmt: skip


SELL_LTC = _trade("LTC/USDT", "sell", (1.0, 1.0), 81.58)
BUY_BTC = _trade("BTC/USDT", "buy", (0.01,), 17186.85)


def _plan(*trades):
    return RebalancePlan(trades=tuple(trades), score=0.1, total_value=1e4, quote="USDT")


def _book(live_binance, exchange_fixtures, scripts):
    book = FakeOrderBook({"USDT": 10_000.0, "LTC": 5.0}, scripts)
    return book.install(live_binance, exchange_fixtures)


def _run(journal, plan, *, clock=None, read_only=False, **settings):
    clock = clock or SimulatedClock()
    options = {"poll_seconds": 1, "order_timeout_seconds": 3, "max_reprices": 1, **settings}

    async def go():
        async with BinanceConnector(read_only=read_only) as exchange:
            loop = ExecutionLoop(
                exchange,
                journal,
                settings=ExecutionSettings(**options),
                prefix="t1",
                clock=clock,
                sleep=clock.sleep,
            )
            return await loop.run(plan)

    return asyncio.run(go())


def _sent(server, method="POST"):
    return [
        (form(r)["symbol"], form(r).get("quantity"), form(r).get("price"))
        for r in server.requests
        if r.path == ORDER_PATH and r.method == method
    ]


@pytest.mark.usefixtures("keys")
def test_fills_journaled_intent_first_and_balances_reconciled(
    live_binance, exchange_fixtures, tmp_path
):
    book = _book(live_binance, exchange_fixtures, {"LTCUSDT": [[1.0]], "BTCUSDT": [[0.0, 1.0]]})
    journal = Journal(tmp_path, "acct")
    report = _run(journal, _plan(SELL_LTC, BUY_BTC))
    assert _sent(live_binance) == [
        ("LTCUSDT", "1", "81.58"),
        ("BTCUSDT", "0.01", "17186.85"),
        ("LTCUSDT", "1", "81.58"),  # the second slice, once the first round is done
    ]
    assert [(r.client_order_id, r.status, r.filled) for r in report.orders] == [
        ("t1-1", "closed", 1.0),
        ("t1-2", "closed", 0.01),
        ("t1-3", "closed", 1.0),
    ]
    orders = journal.orders()
    first = orders.drop_duplicates("client_order_id")
    assert set(first["status"]) == {"intent"} and (first["order_id"] == "").all()
    assert orders.groupby("client_order_id")["status"].last().tolist() == ["closed"] * 3
    fills = journal.fills()
    assert fills["amount"].tolist() == [1.0, 0.01, 1.0]
    assert fills["fee"].tolist() == pytest.approx([0.001 * 81.58, 0.001 * 171.8685, 0.001 * 81.58])
    assert journal.open_orders().empty and not report.unfilled
    assert [o["status"] for o in book.orders] == ["FILLED"] * 3
    assert report.balances["LTC"] == pytest.approx(3.0) and not report.mismatches


@pytest.mark.usefixtures("keys")
def test_an_order_not_filled_in_time_is_canceled_and_repriced(
    live_binance, exchange_fixtures, tmp_path
):
    _book(live_binance, exchange_fixtures, {"BTCUSDT": [[0.0], [1.0]]})
    clock = SimulatedClock()
    report = _run(Journal(tmp_path, "acct"), _plan(BUY_BTC), clock=clock)
    # the fresh limit: the last price 17178.26 * (1 + 5 bps) on the 0.01 tick
    assert _sent(live_binance) == [
        ("BTCUSDT", "0.01", "17186.85"),
        ("BTCUSDT", "0.01", "17186.85"),
    ]
    (cancel,) = _sent(live_binance, "DELETE")
    assert cancel[0] == "BTCUSDT"
    assert [r.status for r in report.orders] == ["canceled", "closed"]
    assert clock.t == 4.0  # three polls to the timeout, one to the fill


@pytest.mark.usefixtures("keys")
def test_partial_fill_is_carried_into_the_next_slice(live_binance, exchange_fixtures, tmp_path):
    _book(live_binance, exchange_fixtures, {"LTCUSDT": [[0.5], [1.0]]})
    journal = Journal(tmp_path, "acct")
    report = _run(journal, _plan(SELL_LTC), max_reprices=0)
    assert _sent(live_binance) == [("LTCUSDT", "1", "81.58"), ("LTCUSDT", "1.5", "81.58")]
    assert [(r.status, r.filled) for r in report.orders] == [("canceled", 0.5), ("closed", 1.5)]
    assert journal.fills()["amount"].tolist() == [0.5, 1.5]
    assert report.balances["LTC"] == pytest.approx(3.0) and not report.mismatches


@pytest.mark.usefixtures("keys")
def test_what_never_fills_is_canceled_and_reported_unfilled(
    live_binance, exchange_fixtures, tmp_path
):
    _book(live_binance, exchange_fixtures, {})
    journal = Journal(tmp_path, "acct")
    report = _run(journal, _plan(BUY_BTC), max_reprices=0)
    assert [r.status for r in report.orders] == ["canceled"]
    assert report.unfilled == {"BTC/USDT": 0.01} and journal.fills().empty
    assert journal.orders()["status"].tolist() == ["intent", "open", "canceled"]


@pytest.mark.usefixtures("keys")
def test_the_deadline_cancels_everything_and_places_nothing_more(
    live_binance, exchange_fixtures, tmp_path
):
    _book(live_binance, exchange_fixtures, {})
    report = _run(
        Journal(tmp_path, "acct"), _plan(SELL_LTC), order_timeout_seconds=60, deadline_seconds=2
    )
    assert len(_sent(live_binance)) == 1 and [r.status for r in report.orders] == ["canceled"]
    assert report.unfilled == {"LTC/USDT": 2.0}


@pytest.mark.usefixtures("keys")
def test_balances_that_differ_from_the_fills_are_reported(
    live_binance, exchange_fixtures, tmp_path, caplog
):
    book = _book(live_binance, exchange_fixtures, {"LTCUSDT": [[1.0]]})
    clock = SimulatedClock()

    async def sleep(seconds):  # someone else trades the account meanwhile
        book.balances["LTC"] -= 0.25
        clock.t += seconds

    clock.sleep = sleep
    report = _run(Journal(tmp_path, "acct"), _plan(SELL_LTC), clock=clock)
    assert report.mismatches == {"LTC": (pytest.approx(3.0), pytest.approx(2.5))}
    assert "balances differ from the holdings plus the fills: LTC: expected 3" in caplog.text


@pytest.mark.usefixtures("keys")
def test_killed_after_the_exchange_took_an_order_then_restarted(
    live_binance, exchange_fixtures, tmp_path
):
    book = _book(live_binance, exchange_fixtures, {})
    book.kill_after_post = 2  # the BTC order reaches the exchange; its answer never comes back
    journal = Journal(tmp_path, "acct")
    with pytest.raises(KeyboardInterrupt, match="kill -9"):
        _run(journal, _plan(SELL_LTC, BUY_BTC))
    pending = journal.open_orders()
    assert pending[["client_order_id", "status"]].values.tolist() == [
        ["t1-1", "open"],
        ["t1-2", "intent"],
    ]
    assert [o["status"] for o in book.orders] == ["NEW", "NEW"]

    book.fill_to(book.orders[0], 0.25)  # a quarter fills while the process is dead
    n_before = len(live_binance.requests)
    report = _run(journal, _plan())
    after = [(r.method, r.path) for r in live_binance.requests[n_before:]]
    assert ("POST", ORDER_PATH) not in after
    assert after.index(("GET", OPEN_ORDERS_PATH)) < after.index(("DELETE", ORDER_PATH))
    assert [(r.client_order_id, r.status, r.filled) for r in report.reconciled] == [
        ("t1-1", "canceled", 0.25),
        ("t1-2", "canceled", 0.0),
    ]
    assert [o["status"] for o in book.orders] == ["CANCELED", "CANCELED"]
    assert journal.open_orders().empty
    assert journal.fills()["amount"].tolist() == [0.25]


@pytest.mark.usefixtures("keys")
def test_killed_before_the_exchange_got_the_order_then_restarted(
    live_binance, exchange_fixtures, tmp_path
):
    _book(live_binance, exchange_fixtures, {})
    live_binance.fail(KeyboardInterrupt("kill -9"), path=ORDER_PATH)  # dies sending the first order
    journal = Journal(tmp_path, "acct")
    with pytest.raises(KeyboardInterrupt):
        _run(journal, _plan(BUY_BTC))
    assert journal.open_orders()["status"].tolist() == ["intent"]
    report = _run(journal, _plan())
    assert [(r.client_order_id, r.status) for r in report.reconciled] == [("t1-1", "missing")]
    lookups = [form(r) for r in live_binance.requests if r.method == "GET" and r.path == ORDER_PATH]
    assert lookups[-1]["origClientOrderId"] == "t1-1"
    assert journal.open_orders().empty


def test_settings_from_the_live_config():
    from backtest.config import LiveConfig

    live = LiveConfig.model_validate(
        {"poll_seconds": 2, "order_timeout_seconds": 30, "max_reprices": 0, "deadline_seconds": 600}
    )
    assert ExecutionSettings.from_config(live, 0.00075) == ExecutionSettings(
        poll_seconds=2.0,
        order_timeout_seconds=30.0,
        max_reprices=0,
        deadline_seconds=600.0,
        limit_offset_bps=5.0,
        fee_rate=0.00075,
    )
    with pytest.raises(
        ValueError, match="`order_timeout_seconds` = 1 is shorter than `poll_seconds` = 5"
    ):
        LiveConfig.model_validate({"order_timeout_seconds": 1})


@pytest.mark.usefixtures("keys")
def test_errors(live_binance, exchange_fixtures, tmp_path):
    with pytest.raises(LiveError, match="`poll_seconds` must be > 0 seconds; got 0"):
        ExecutionSettings(poll_seconds=0)
    with pytest.raises(LiveError, match="`max_reprices` must be an integer >= 0; got -1"):
        ExecutionSettings(max_reprices=-1)
    with pytest.raises(
        LiveError,
        match=r"`order_timeout_seconds` = 2 is shorter than `poll_seconds` = 5: orders are checked "
        r"once per poll, so it cannot take effect sooner; set `order_timeout_seconds` >= ",
    ):
        ExecutionSettings(poll_seconds=5, order_timeout_seconds=2)
    with pytest.raises(
        LiveError, match="`deadline_seconds` = 1 is shorter than `poll_seconds` = 5"
    ):
        ExecutionSettings(deadline_seconds=1)
    with pytest.raises(LiveError, match=r"`deadline_seconds` must be > 0 seconds \(or none"):
        ExecutionSettings(deadline_seconds=0)
    with pytest.raises(LiveError, match="`order_timeout_seconds` must be > 0 seconds; got inf"):
        ExecutionSettings(order_timeout_seconds=float("inf"))
    with pytest.raises(LiveError, match="`max_reprices` must be an integer >= 0; got True"):
        ExecutionSettings(max_reprices=True)
    with pytest.raises(ReadOnlyError, match="read-only"):
        _run(Journal(tmp_path, "acct"), _plan(BUY_BTC), read_only=True)
    assert not _sent(live_binance)


# ---------------------------------------------------------------------------------- the cash
def _cash_book(live_binance, exchange_fixtures, scripts, usdt=50.0):
    book = FakeOrderBook({"USDT": usdt, "LTC": 5.0}, scripts)
    return book.install(live_binance, exchange_fixtures)


@pytest.mark.usefixtures("keys")
def test_the_fake_exchange_refuses_what_the_free_balance_cannot_pay(
    live_binance, exchange_fixtures
):
    """The fixture answers as Binance does (-2010, ccxt's InsufficientFunds), counting what the
    open orders lock."""
    from datasets.errors import ExchangeError

    book = _cash_book(live_binance, exchange_fixtures, {})

    async def place(symbol, side, amount, price):
        async with BinanceConnector(read_only=False) as exchange:
            return await exchange.create_limit_order(symbol, side, amount, price)

    with pytest.raises(ExchangeError, match="InsufficientFunds: binance Account has insufficient"):
        asyncio.run(place("BTC/USDT", "buy", 0.01, 17186.85))  # 171.9 USDT, 50 held
    asyncio.run(place("BTC/USDT", "buy", 0.0029, 17186.85))  # 49.84 + the fee: rests
    with pytest.raises(ExchangeError, match="InsufficientFunds"):  # the first one locks the cash
        asyncio.run(place("BTC/USDT", "buy", 0.0001, 17186.85))
    asyncio.run(place("LTC/USDT", "sell", 5.0, 81.58))
    with pytest.raises(ExchangeError, match="InsufficientFunds"):
        asyncio.run(place("LTC/USDT", "sell", 0.1, 81.58))
    assert [o["side"] for o in book.orders] == ["BUY", "SELL"]


@pytest.mark.usefixtures("keys")
def test_buys_wait_for_the_sells_proceeds_and_the_cash_never_goes_below_zero(
    live_binance, exchange_fixtures, tmp_path
):
    """50 USDT, a 172 USDT buy sized with the proceeds of two LTC sells that fill by halves: the
    buy gets what the cash pays, then more after each poll that brings proceeds."""
    book = _cash_book(
        live_binance, exchange_fixtures, {"LTCUSDT": [[0.0, 0.5, 1.0]], "BTCUSDT": [[1.0]]}
    )
    journal = Journal(tmp_path, "acct")
    report = _run(journal, _plan(SELL_LTC, BUY_BTC), order_timeout_seconds=5)
    # 50 / (17186.85 * 1.001) = 0.0029063 BTC; each half LTC brings 40.75 USDT: 0.00237 more
    assert _sent(live_binance) == [
        ("LTCUSDT", "1", "81.58"),
        ("BTCUSDT", "0.0029", "17186.85"),
        ("BTCUSDT", "0.00237", "17186.85"),  # the first half of the first LTC
        ("BTCUSDT", "0.00237", "17186.85"),  # the second half
        ("LTCUSDT", "1", "81.58"),  # round 2: the second slice
        ("BTCUSDT", "0.00236", "17186.85"),  # the rest, after its first half
    ]
    assert [(r.symbol, r.status) for r in report.orders] == [
        ("BTC/USDT", "closed"),
        ("LTC/USDT", "closed"),
        ("BTC/USDT", "closed"),
        ("BTC/USDT", "closed"),
        ("LTC/USDT", "closed"),
        ("BTC/USDT", "closed"),
    ]
    assert 0 <= book.min_balance < 1  # the first buy spent nearly all of it
    assert not report.unfilled and not report.mismatches
    assert report.balances["BTC"] == pytest.approx(0.01) and report.balances["LTC"] == 3.0
    first = journal.orders().drop_duplicates("client_order_id")
    assert (first["status"] == "intent").all() and len(first) == 6  # each intent first


@pytest.mark.usefixtures("keys")
def test_a_buy_the_cash_never_pays_is_reported_unfilled(live_binance, exchange_fixtures, tmp_path):
    """The sells never fill: the buy places what the cash pays and reports the rest unfilled,
    without an order the exchange would refuse."""
    book = _cash_book(live_binance, exchange_fixtures, {"BTCUSDT": [[1.0]]})
    report = _run(Journal(tmp_path, "acct"), _plan(SELL_LTC, BUY_BTC), max_reprices=0)
    assert [s[:2] for s in _sent(live_binance)] == [
        ("LTCUSDT", "1"),
        ("BTCUSDT", "0.0029"),
        ("LTCUSDT", "2"),  # the second slice with the first one's rest
    ]
    assert "rejected" not in [r.status for r in report.orders]
    assert report.unfilled == {"LTC/USDT": 2.0, "BTC/USDT": pytest.approx(0.0071)}
    assert any(
        "BTC/USDT: 0.0071 left to buy: the free USDT balance did not pay it" in n
        for n in report.notes
    )
    assert book.min_balance >= 0


@pytest.mark.usefixtures("keys")
def test_the_deadline_reports_a_waiting_buy_unfilled(live_binance, exchange_fixtures, tmp_path):
    """The deadline ends the run with a buy still waiting: reported unfilled, nothing more sent."""
    _cash_book(live_binance, exchange_fixtures, {"BTCUSDT": [[1.0]]}, usdt=20.0)
    report = _run(
        Journal(tmp_path, "acct"), _plan(SELL_LTC, BUY_BTC), max_reprices=0, deadline_seconds=3
    )
    assert [s[0] for s in _sent(live_binance)] == ["LTCUSDT", "BTCUSDT"]
    assert report.unfilled["BTC/USDT"] == pytest.approx(0.01 - 0.00116)


def test_affordable_keeps_whole_lots_and_placeable_rests():
    from backtest.live.order_rules import affordable

    assert affordable(0.01, 1e6, 17_000.0, 1e-5, 5 / 17_000) == 0.01
    assert affordable(0.01, 50.0, 17_204.0, 1e-5, 5 / 17_000) == 0.0029  # floor(2.906) lots
    # 0.00976 is paid, but its rest 0.00024 is below 10 USDT: 0.00941, leaving 0.00059 (10.03)
    assert affordable(0.01, 168.0, 17_204.0, 1e-5, 10 / 17_000) == pytest.approx(0.00941)
    assert affordable(0.01, 4.0, 17_204.0, 1e-5, 5 / 17_000) == 0.0  # 0.00023 BTC < 5 USDT
    assert affordable(0.01, -1.0, 17_204.0, 1e-5, 0.0) == 0.0
    assert affordable(3.0, 2.5, 1.0, 0.0, 0.0) == 2.5  # no lot step
