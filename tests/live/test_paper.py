"""The paper account: fills by hand on a hand-made market, partial fills, no look-ahead, ccxt's
own Binance class (precision rounding, unified structures) over the book, and the error paths."""

from __future__ import annotations

import asyncio

import ccxt
import numpy as np
import pandas as pd
import pytest

from backtest.config import parse_config
from backtest.costs import Costs
from backtest.live import LiveError
from backtest.live.paper import PaperBook, PaperConnector, derived_market, paper_exchange_class
from datasets import MarketData

# bar:            0      1      2      3      4
OPEN = np.array([100.0, 101.0, 99.0, 104.0, 100.0])
HIGH = np.array([102.0, 103.0, 100.0, 106.0, 101.0])
LOW = np.array([99.0, 100.0, 97.0, 103.0, 98.0])
CLOSE = np.array([101.0, 99.5, 98.0, 105.0, 99.0])
VOLUME = np.array([10.0, 10.0, 10.0, 10.0, 10.0])


def _market() -> MarketData:
    two = lambda a: np.ascontiguousarray(np.column_stack([a, a * 10]))  # noqa: E731
    return MarketData(
        index=pd.date_range("2022-01-01", periods=5, freq="D", tz="UTC"),
        symbols=("AAA/USDT", "BBB/USDT"),
        timeframe="1d",
        arrays={
            "open": two(OPEN),
            "high": two(HIGH),
            "low": two(LOW),
            "close": two(CLOSE),
            "volume": two(VOLUME),
        },
    )


def _book(**kw) -> PaperBook:
    kw.setdefault("costs", Costs(fee_bps=10, slippage_bps=50))
    return PaperBook(_market(), {"USDT": 1000.0, "AAA": 5.0}, **kw)


def test_buy_fills_at_the_slipped_open_when_the_bar_opens_below_the_limit():
    book = _book(now=0)
    order = book.place("AAA/USDT", "buy", 2.0, 102.0, "b1")
    book.advance(1)  # open 101 <= 102: min(102, 101 * 1.005) = 101.505
    assert order.status == "closed" and order.cost == pytest.approx(2 * 101.505, rel=1e-15)
    assert order.fee == pytest.approx(0.001 * 2 * 101.505, rel=1e-15)
    assert book.balances["USDT"] == pytest.approx(1000 - 203.01 - 0.20301, rel=1e-15)
    assert book.balances["AAA"] == 7.0
    assert book.fills[0]["time_ms"] == pd.Timestamp("2022-01-03", tz="UTC").value // 10**6


def test_buy_fills_at_the_limit_when_the_low_crosses_it_and_waits_otherwise():
    book = _book(now=0)
    order = book.place("AAA/USDT", "buy", 1.0, 99.5, "b1")
    book.advance(1)  # low 100 > 99.5: nothing
    assert order.status == "open" and order.filled == 0 and not book.fills
    book.advance(2)  # open 99 <= 99.5: min(99.5, 99 * 1.005 = 99.495)
    assert order.cost == pytest.approx(99.495, rel=1e-15)
    order = book.place("AAA/USDT", "buy", 1.0, 103.5, "b2")
    book.advance(3)  # open 104 > 103.5, low 103 <= 103.5: at the limit
    assert order.cost == 103.5


def test_sell_mirrors_the_buy():
    book = _book(now=0)
    order = book.place("AAA/USDT", "sell", 1.0, 100.0, "s1")
    book.advance(1)  # open 101 >= 100: max(100, 101 * 0.995 = 100.495)
    assert order.cost == pytest.approx(100.495, rel=1e-15)
    order = book.place("AAA/USDT", "sell", 1.0, 99.5, "s2")
    book.advance(2)  # high 100 >= 99.5, open 99 < 99.5: at the limit
    assert order.cost == 99.5 and book.balances["AAA"] == 3.0


def test_partial_fills_carry_over_bars_until_filled_or_canceled():
    book = _book(now=0, fill_share=0.1)  # 1 AAA per bar
    order = book.place("AAA/USDT", "sell", 2.5, 90.0, "s1")
    book.advance(2)
    assert order.filled == 2.0 and order.status == "open" and len(book.fills) == 2
    assert book.free("AAA") == pytest.approx(2.5)  # 3 held, 0.5 still on sale
    book.cancel(order.id)
    book.advance(4)
    assert order.status == "canceled" and order.filled == 2.0 and book.free("AAA") == 3.0


def test_a_buy_the_free_cash_cannot_pay_is_refused_as_the_exchange_refuses_it():
    book = _book(now=0)  # 1000 USDT; the fee, 10 bps, is paid in USDT
    with pytest.raises(
        ccxt.InsufficientFunds,
        match=r"buy 10\.0 AAA at 100\.0 costs 1001 USDT with the fee but only 1000 is free",
    ):
        book.place("AAA/USDT", "buy", 10.0, 100.0, "b1")
    order = book.place("AAA/USDT", "buy", 6.0, 100.0, "b2")  # reserves 600.6
    assert book.free("USDT") == pytest.approx(399.4)
    with pytest.raises(ccxt.InsufficientFunds, match=r"but only 399\.4 is free"):
        book.place("AAA/USDT", "buy", 4.0, 100.0, "b3")
    book.cancel(order.id)
    book.place("AAA/USDT", "buy", 4.0, 100.0, "b4")
    assert book.balance()["used"]["USDT"] == pytest.approx(400.4)


def _long_market(n_bars: int = 30) -> MarketData:
    flat = np.ones(n_bars)
    return MarketData(
        index=pd.date_range("2022-01-01", periods=n_bars, freq="D", tz="UTC"),
        symbols=("AAA/USDT", "BBB/USDT"),
        timeframe="1d",
        arrays={
            "open": np.column_stack([100 * flat, 1000 * flat]),
            "high": np.column_stack([101 * flat, 1010 * flat]),
            "low": np.column_stack([99 * flat, 990 * flat]),
            "close": np.column_stack([100 * flat, 1000 * flat]),
            "volume": np.column_stack([10 * flat, 10 * flat]),
        },
    )


def test_with_partial_fills_the_loops_buys_wait_for_the_sells_and_the_cash_stays_above_zero():
    """50 USDT and 5 AAA; sell 4 AAA and buy 0.44 BBB (440 USDT) with the proceeds, 1 AAA and
    1 BBB filling per bar (`fill_share`): the buy is placed as far as the cash pays it, more after
    each bar's AAA fill (placed together, the buy would fill in the first bar, the sell in four,
    and the cash would fall to -291); everything fills and the cash never goes below zero."""
    from backtest.live.execution import ExecutionLoop, ExecutionSettings
    from backtest.live.results import RebalancePlan, Trade

    book = PaperBook(_long_market(), {"USDT": 50.0, "AAA": 5.0}, Costs(fee_bps=10), fill_share=0.1)
    cash = [book.balances["USDT"]]
    apply_fill = book.apply_fill

    def booked(*args):
        apply_fill(*args)
        cash.append(book.balances["USDT"])

    book.apply_fill = booked  # type: ignore[method-assign]
    sell = Trade("AAA/USDT", "AAA", "sell", 4.0, 100.0, 400.0, 0, 0, 0, 0, 0, 99.0, (4.0,))
    buy = Trade("BBB/USDT", "BBB", "buy", 0.44, 1000.0, 440.0, 0, 0, 0, 0, 0, 1010.0, (0.44,))
    plan = RebalancePlan(trades=(sell, buy), score=0.3, total_value=550.0, quote="USDT")
    paper = PaperConnector(book)
    settings = ExecutionSettings(poll_seconds=1, order_timeout_seconds=10, fee_rate=0.001)

    async def bar(seconds):
        book.advance(book.now + 1)

    async def go():
        async with paper:
            loop = ExecutionLoop(
                paper, settings=settings, prefix="p", clock=lambda: book.now, sleep=bar
            )
            return await loop.run(plan)

    report = asyncio.run(go())
    placed = [(r.symbol, r.amount) for r in report.orders]
    # 50 / (1010 * 1.001) = 0.0494 BBB first; then about 0.1 BBB (at the fresh limit 1000.5) for
    # each AAA sold, the last one with the sell closed
    assert placed == [("BBB/USDT", q) for q in (0.049, 0.1, 0.1)] + [
        ("AAA/USDT", 4.0),
        ("BBB/USDT", 0.1),
        ("BBB/USDT", 0.091),
    ]
    assert [r.status for r in report.orders] == ["closed"] * 6
    assert not report.unfilled and not report.mismatches
    assert len(cash) == 1 + 4 + 5  # 4 AAA fills, 5 BBB fills
    # fills at the open -/+ 5 bps of slippage (the Costs default), 10 bps of fee
    assert cash[-1] == pytest.approx(50 + 4 * 99.95 * 0.999 - 0.44 * 1000.5 * 1.001, abs=1e-9)
    assert min(cash) == cash[-1] > 0  # the proceeds come before the buys they pay
    assert book.balances["BBB"] == pytest.approx(0.44) and book.balances["AAA"] == 1.0


def test_no_look_ahead_in_tickers_candles_and_history():
    book = _book(now=2)
    assert book.ticker("AAA/USDT")["last"] == 98.0
    candles = book.ohlcv("AAA/USDT")
    assert [c[4] for c in candles] == [101.0, 99.5, 98.0]
    far = pd.Timestamp("2030-01-01", tz="UTC").value // 10**6
    history = book.history(["BBB/USDT"], 0, far)
    assert history.n_bars == 3 and history.values("close")[-1, 0] == 980.0
    assert book.now_ms == pd.Timestamp("2022-01-04", tz="UTC").value // 10**6


def test_through_ccxts_binance_class_amounts_round_to_the_lot_and_structures_are_unified():
    book = _book(now=0)
    markets = [derived_market("AAA/USDT", 100.0), derived_market("BBB/USDT", 1000.0)]
    paper = PaperConnector(book, markets=markets)
    assert isinstance(paper._exchange, ccxt.async_support.binance)

    async def flow():
        async with paper:
            status = await paper.create_limit_order(
                "AAA/USDT", "buy", 1.23456, 101.23456, params={"clientOrderId": "c-1"}
            )
            rules = await paper.fetch_markets(["AAA/USDT"])
            book.advance(1)
            ex = await paper._client()
            order = await ex.fetch_order(status.id, "AAA/USDT")
            return status, rules, order, await paper.fetch_balances()

    status, rules, order, balances = asyncio.run(flow())
    assert rules["AAA/USDT"].lot_step == 0.01 and rules["AAA/USDT"].min_notional == 5.0
    assert status.amount == 1.23 and status.price == 101.2346  # lot 0.01, tick 0.0001
    assert status.client_order_id == "c-1" and status.status == "open"
    assert order["status"] == "closed" and order["filled"] == 1.23
    assert balances["AAA"] == pytest.approx(6.23)


def test_paper_mode_in_the_config():
    cfg = parse_config({"live": {"mode": "paper", "fill_share": 0.5, "account": "p1"}})
    assert cfg.live.mode == "paper" and cfg.live.fill_share == 0.5


def test_errors():
    book = _book(now=1)
    with pytest.raises(LiveError, match=r"no paper market for 'CCC/USDT'; the market has AAA/USDT"):
        book.place("CCC/USDT", "buy", 1, 1, "x")
    with pytest.raises(ccxt.InsufficientFunds, match=r"sell 6\.0 AAA but only 5\.0 is free"):
        book.place("AAA/USDT", "sell", 6.0, 100, "x")
    book.place("AAA/USDT", "buy", 1, 1, "dup")
    with pytest.raises(ccxt.InvalidOrder, match="duplicate clientOrderId 'dup'"):
        book.place("AAA/USDT", "buy", 1, 1, "dup")
    with pytest.raises(LiveError, match=r"`to` must be in \[1, 5\); got 0"):
        book.advance(0)
    with pytest.raises(LiveError, match=r"`bar` must be in \[0, 5\); got 9"):
        book.set_now(9)
    with pytest.raises(ccxt.OrderNotFound, match="no order id=77"):
        book.find("77")
    book.cancel("1")
    with pytest.raises(ccxt.OrderNotFound, match="order 1 is canceled"):
        book.cancel("1")
    exchange = paper_exchange_class()({})
    exchange.book = book
    with pytest.raises(ccxt.InvalidOrder, match="only limit orders; got 'market'"):
        asyncio.run(exchange.create_order("AAA/USDT", "market", "buy", 1.0))
    with pytest.raises(LiveError, match="reads its history from its book"):
        PaperConnector(book).history_exchange()
