"""`PortfolioAnalyzer` end to end against ccxt's real Binance class, offline: the recorded balance and
exchangeInfo payloads, tickers at the last real daily close (2023-01-09), history through the Parquet
store from klines of the real candles, and order placement."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from backtest import PortfolioAnalyzer
from backtest.live import Journal, LiveError
from datasets import BinanceConnector, load_csv
from datasets.connectors import MissingCredentialsError, ReadOnlyError
from datasets.errors import ExchangeError
from strategies import HRPStrategy, MPTStrategy
from strategies.errors import ConstraintError
from tests.live.ccxt_fixtures import (
    ACCOUNT_PATH,
    ORDER_PATH,
    TICKER_PATH,
    FakeOrderBook,
    SimulatedClock,
    balance_payload,
    form,
    recorded_ticker,
    tickers_route,
)

pytestmark = pytest.mark.shared

LTC, ETH, BTC, XRP, ADA = (
    81.62,
    1320.39,
    17178.26,
    0.349,
    0.3168,
)  # closes of 2023-01-09 (the tickers)
UNIVERSE = ["BTC", "ETH", "LTC", "XRP", "ADA"]
KLINES = "/api/v3/klines"


def run(coro):
    return asyncio.run(coro)


async def _allocation(analyzer):
    async with analyzer.exchange:
        return await analyzer.get_current_allocation()


async def _execute(analyzer, plan, journal=None):
    clock = SimulatedClock()
    async with analyzer.exchange:
        return await analyzer.execute(plan, journal, clock=clock, sleep=clock.sleep)


async def _analysis(analyzer, constraints=None):
    async with analyzer.exchange:
        return await analyzer.analyze_portfolio(constraints)


def _with_balances(server, fixtures, balances):
    server.route(ACCOUNT_PATH, balance_payload(fixtures, balances))


# ---------------------------------------------------------------------------------- current allocation
def test_current_allocation_of_the_recorded_balance_by_hand(live_binance, keys):
    analyzer = PortfolioAnalyzer(
        exchange=BinanceConnector(), strategy=MPTStrategy(), lookback_days=30
    )
    weights = run(_allocation(analyzer))
    # recorded: BTC 0, LTC 0.919741, ETH 0.02229833, no USDT; valued at the tickers' last prices
    ltc, eth = 0.919741 * 81.62, 0.02229833 * 1320.39  # 75.06926042, 29.4424919487
    total = ltc + eth
    assert list(weights) == ["LTC", "ETH", "USDT"]
    assert weights["LTC"] == pytest.approx(75.06926042 / 104.5117523687, rel=1e-12)
    assert weights["ETH"] == pytest.approx(29.4424919487 / 104.5117523687, rel=1e-12)
    assert weights["USDT"] == 0.0
    assert (
        analyzer.total_value
        == pytest.approx(total, rel=1e-15)
        == pytest.approx(104.5117523687, rel=1e-12)
    )
    assert analyzer.holdings == {"LTC": 0.919741, "ETH": 0.02229833, "USDT": 0.0}


def test_current_allocation_with_cash_dust_and_an_unlisted_asset(
    live_binance, keys, exchange_fixtures
):
    _with_balances(
        live_binance,
        exchange_fixtures,
        {"BTC": "0.00150000", "USDT": "50.00000000", "DOGE": "10.00000000", "LDBTC": "1.00000000"},
    )
    tickers = dict(
        live_binance.tickers, BTCUSDT=recorded_ticker(exchange_fixtures)
    )  # recorded: last 73369.84
    live_binance.route(TICKER_PATH, tickers_route(tickers))
    analyzer = PortfolioAnalyzer(exchange=BinanceConnector(), lookback_days=30)
    weights = run(_allocation(analyzer))
    btc, ltc, eth, cash = 0.0015 * 73369.84, 0.919741 * 81.62, 0.02229833 * 1320.39, 50.0
    total = btc + ltc + eth + cash  # DOGE is worth 0.7566 < the 1 USDT dust threshold
    assert total == pytest.approx(264.5665123687, rel=1e-12)
    assert weights == pytest.approx(
        {"BTC": btc / total, "LTC": ltc / total, "USDT": cash / total, "ETH": eth / total},
        rel=1e-12,
    )
    assert list(weights) == ["BTC", "LTC", "ETH", "USDT"]  # largest first, cash last
    assert analyzer.ignored == {
        "LDBTC": "no LDBTC/USDT market to value it",
        "DOGE": "dust: worth 0.7566 USDT < 1",
    }


def test_balances_need_keys(live_binance, no_keys):
    with pytest.raises(MissingCredentialsError, match="fetching balances needs API keys"):
        run(_allocation(PortfolioAnalyzer(exchange=BinanceConnector())))


# ---------------------------------------------------------------------------------- trades
@pytest.fixture
def funded(live_binance, keys, exchange_fixtures):
    """Recorded balance plus 1000 USDT, and an analyzer that has read it."""
    _with_balances(live_binance, exchange_fixtures, {"USDT": "1000.00000000"})
    analyzer = PortfolioAnalyzer(
        exchange=BinanceConnector(read_only=False), lookback_days=30, universe=UNIVERSE
    )
    current = run(_allocation(analyzer))

    async def refresh():
        async with analyzer.exchange:
            await analyzer.refresh_market_data(UNIVERSE)

    run(refresh())
    return analyzer, current


TARGET = {"BTC": 0.30, "ETH": 0.30, "LTC": 0.0, "XRP": 0.395, "ADA": 0.005}  # ADA: ~5.5 USDT


def test_trades_respect_lot_steps_minimums_and_come_sells_first(funded):
    analyzer, current = funded
    plan = analyzer.get_rebalancing_trades(
        current, TARGET, total_value=analyzer.total_value, min_trade_value=10
    )
    steps = {
        "BTC": "0.00001",
        "ETH": "0.0001",
        "LTC": "0.001",
        "XRP": "1",
        "ADA": "0.1",
    }  # LOT_SIZE
    ticks = {
        "BTC": "0.01",
        "ETH": "0.01",
        "LTC": "0.01",
        "XRP": "0.0001",
        "ADA": "0.0001",
    }  # PRICE_FILTER
    assert [t.asset for t in plan] == [
        "LTC",
        "XRP",
        "BTC",
        "ETH",
    ]  # sells first, then buys by value
    assert [t.side for t in plan] == ["sell", "buy", "buy", "buy"]
    for t in plan:
        assert Decimal(repr(t.amount)) % Decimal(steps[t.asset]) == 0, t
        assert Decimal(repr(t.limit_price)) % Decimal(ticks[t.asset]) == 0, t
        assert t.value >= max(10.0, 5.0 / (1 - 5e-4)) and t.value == pytest.approx(
            t.amount * t.price
        )
        assert t.symbol == f"{t.asset}/USDT" and t.slices == (t.amount,)
    ltc = plan[0]
    assert ltc.amount == 0.919 and ltc.weight_change == pytest.approx(
        -current["LTC"]
    )  # whole lots of 0.919741
    assert ltc.limit_price == 81.58  # 81.62 * (1 - 5 bps) on the 0.01 tick
    assert plan.skipped == ("ADA",)  # 5.5 USDT < min_trade_value
    assert any("0.000741 stays as dust" in n for n in plan.notes)
    btc = plan[2]
    assert btc.weight_change == pytest.approx(0.30) and btc.limit_price == 17186.85
    # net-of-cost sizing: 30% of the book after this rebalance's costs, on the 0.00001 lot
    assert (
        btc.amount == 0.01925
        and abs(btc.amount - 0.3 * (analyzer.total_value - plan.estimated_cost) / BTC) < 1e-5
    )


def test_score_and_estimated_cost_by_hand(funded):
    analyzer, current = funded
    plan = analyzer.get_rebalancing_trades(
        current, TARGET, total_value=analyzer.total_value, min_trade_value=10
    )
    score = 0.5 * (
        abs(0.30 - 0)
        + abs(0.30 - current["ETH"])
        + abs(0 - current["LTC"])
        + 0.395
        + 0.005
        + abs(0 - current["USDT"])
    )
    assert plan.score == pytest.approx(score, rel=1e-12)
    f, s = 0.001, 0.0005  # default Costs: 10 bps fee, 5 bps slippage (the kernel's fill model)
    cost = sum(t.value * s + t.value * (1 - s if t.side == "sell" else 1 + s) * f for t in plan)
    assert plan.estimated_cost == pytest.approx(cost, rel=1e-9)
    assert plan.fees == pytest.approx(
        sum(t.value * (1 - s if t.side == "sell" else 1 + s) * f for t in plan)
    )
    frame = plan.to_frame()
    assert list(frame["symbol"]) == [t.symbol for t in plan] and "n_slices" in frame


def test_large_orders_are_split_by_value_and_by_volume_share(funded):
    analyzer, current = funded
    analyzer.settings = analyzer.settings.model_copy(update={"max_slice_value": 100.0})
    plan = analyzer.get_rebalancing_trades(
        current, TARGET, total_value=analyzer.total_value, min_trade_value=10
    )
    eth = next(t for t in plan if t.asset == "ETH")  # ~ 0.30 * 1104 - 29 = 302 USDT
    assert len(eth.slices) == 4 and sum(map(Decimal, map(repr, eth.slices))) == Decimal(
        repr(eth.amount)
    )
    assert all(
        x * ETH <= 100.0 and x * ETH >= 5.0 and Decimal(repr(x)) % Decimal("0.0001") == 0
        for x in eth.slices
    )
    assert max(eth.slices) - min(eth.slices) <= 0.0001 + 1e-12
    # 24 h quote volume of the tickers is 1e8 USDT: a share of 5e-7 caps slices at 50 USDT
    analyzer.settings = analyzer.settings.model_copy(
        update={"max_slice_value": None, "max_volume_share": 5e-7}
    )
    plan = analyzer.get_rebalancing_trades(
        current, TARGET, total_value=analyzer.total_value, min_trade_value=10
    )
    eth = next(t for t in plan if t.asset == "ETH")
    assert len(eth.slices) == 7 and all(x * ETH <= 50.0 for x in eth.slices)


# ---------------------------------------------------------------------------------- target
def test_analyze_portfolio_mpt_through_the_store(live_binance, keys, live_store, daily_csv):
    analyzer = PortfolioAnalyzer(
        exchange=BinanceConnector(),
        strategy=MPTStrategy(),
        lookback_days=30,
        universe=UNIVERSE,
        store=live_store,
    )
    result = run(_analysis(analyzer, {"min_weight": 0.05, "max_weight": 0.40}))
    w = np.array([result.weights[a] for a in UNIVERSE])
    assert w.sum() == pytest.approx(1.0) and w.min() >= 0.05 - 1e-9 and w.max() <= 0.40 + 1e-9
    assert result.weights["USDT"] == 0.0 and result.method == "max_sharpe"
    # the window: 31 daily closes 2022-12-10 .. 2023-01-09 of the real candles, fetched into the store
    assert (result.diagnostics["n_obs"], result.diagnostics["window_end"]) == (
        30,
        "2023-01-09 00:00",
    )
    assert len(live_binance.requests_to(KLINES)) == 5
    real = load_csv(
        daily_csv, symbols=[f"{a}/USDT" for a in UNIVERSE], start="2022-12-10", end="2023-01-09"
    )
    stored = live_store.load(
        "binance", [f"{a}/USDT" for a in UNIVERSE], "1d", "2022-12-10", "2023-01-09"
    )
    assert np.array_equal(stored.values("close"), real.values("close"))
    returns = real.close.pct_change().iloc[1:].to_numpy()
    mu, cov = returns.mean(axis=0) * 365, np.cov(returns.T, ddof=1) * 365
    assert result.expected_return == pytest.approx(w @ mu, rel=1e-9)
    assert result.volatility == pytest.approx(np.sqrt(w @ cov @ w), rel=1e-9)
    assert result.sharpe_ratio == pytest.approx((w @ mu - 0.02) / np.sqrt(w @ cov @ w), rel=1e-9)
    frontier = result.frontier
    assert isinstance(frontier, pd.DataFrame) and list(frontier.columns) == [
        "return",
        "volatility",
        "sharpe",
        *UNIVERSE,
    ]
    assert 2 <= len(frontier) <= 20 and frontier[UNIVERSE].to_numpy().min() >= 0.05 - 1e-9
    assert (
        frontier["sharpe"].max() <= result.sharpe_ratio + 1e-6
    )  # the max-Sharpe portfolio tops the frontier
    # a second analysis reads the window from the store: no new kline request
    run(_analysis(analyzer, {"min_weight": 0.05, "max_weight": 0.40}))
    assert len(live_binance.requests_to(KLINES)) == 5


def test_analyze_portfolio_hrp_and_cash_reserve(live_binance, keys, live_store):
    analyzer = PortfolioAnalyzer(
        exchange=BinanceConnector(),
        strategy=HRPStrategy(),
        lookback_days=30,
        store=live_store,
        settings={"cash_reserve": 0.1},
    )
    result = run(_analysis(analyzer))
    assert set(result.weights) == {"LTC", "ETH", "USDT"}  # the assets held
    assert result.weights["USDT"] == 0.1 and result.weights["LTC"] + result.weights[
        "ETH"
    ] == pytest.approx(0.9)
    assert result.method == "hrp" and result.frontier is None and "linkage" in result.extras
    assert result.current_weights["LTC"] == pytest.approx(0.7182848, rel=1e-6)


# ---------------------------------------------------------------------------------- bad input
def test_bad_weights_and_values_are_clear_errors(funded):
    analyzer, current = funded
    total = analyzer.total_value
    with pytest.raises(
        LiveError, match=r"`target_weights` must sum to 1 \(cash as 'USDT'\); they sum to 0.8"
    ):
        analyzer.get_rebalancing_trades(current, {"BTC": 0.5, "ETH": 0.3}, total_value=total)
    with pytest.raises(
        LiveError, match=r"`total_value` must be > 0 \(the book's value in USDT\); got -100000"
    ):
        analyzer.get_rebalancing_trades(current, TARGET, total_value=-100000)
    with pytest.raises(LiveError, match="`total_value` must be a number > 0"):
        analyzer.get_rebalancing_trades(current, TARGET, total_value="a lot")
    with pytest.raises(
        LiveError, match=r"`target_weights` must be finite and >= 0 \(long only\); ETH has -0.1"
    ):
        analyzer.get_rebalancing_trades(current, {"BTC": 1.1, "ETH": -0.1}, total_value=total)
    with pytest.raises(
        LiveError,
        match="`target_weights` has 'BTC/BUSD', quoted in BUSD; this account is valued in USDT",
    ):
        analyzer.get_rebalancing_trades(current, {"BTC/BUSD": 1.0}, total_value=total)
    with pytest.raises(LiveError, match="`min_trade_value` must be >= 0"):
        analyzer.get_rebalancing_trades(current, TARGET, total_value=total, min_trade_value=-1)


def test_a_symbol_without_a_market_is_a_clear_error(funded):
    analyzer, current = funded
    with pytest.raises(
        LiveError, match=r"no market data for FOO/USDT: .* run `await analyzer.refresh_market_data"
    ):
        analyzer.get_rebalancing_trades(current, {"FOO": 1.0}, total_value=analyzer.total_value)

    async def refresh():
        async with analyzer.exchange:
            await analyzer.refresh_market_data(["FOO"])

    with pytest.raises(ExchangeError, match=r"unknown symbol 'FOO/USDT' on binance"):
        run(refresh())
    # "BTC/USDT" keys are accepted as well as "BTC"
    plan = analyzer.get_rebalancing_trades(
        current, {"BTC/USDT": 1.0}, total_value=analyzer.total_value
    )
    assert {t.asset for t in plan} == {"LTC", "ETH", "BTC"}


def test_caps_that_cannot_fill_the_book_hold_with_the_rest_in_cash(live_binance, keys, live_store):
    """Two assets at max_weight 0.4 (the cash reserve counted in the book): each at its cap, 20%
    cash, said in the notes; the frontier holds the same budget."""
    two = PortfolioAnalyzer(
        BinanceConnector(),
        universe=["BTC", "ETH"],
        store=live_store,
        settings={"cash_reserve": 0.1},
    )
    result = run(_analysis(two, {"min_weight": 0.05, "max_weight": 0.40}))
    assert result.weights["BTC"] == pytest.approx(0.4, abs=1e-12)
    assert result.weights["ETH"] == pytest.approx(0.4, abs=1e-12)
    assert max(result.weights["BTC"], result.weights["ETH"]) <= 0.4
    assert result.weights["USDT"] == pytest.approx(0.2, abs=1e-12)
    assert (
        "universe of 2 assets at max_weight=0.4 each: every asset at its cap, 20% held in cash"
        in (result.notes)
    )
    if result.frontier is not None:
        held = result.frontier[["BTC", "ETH"]].to_numpy()
        assert held.max() <= 0.4 and held.sum(axis=1) == pytest.approx(0.8)


def test_bad_analysis_inputs(live_binance, keys, live_store, exchange_fixtures):
    with pytest.raises(LiveError, match="`lookback_days` must be > 0"):
        PortfolioAnalyzer(BinanceConnector(), lookback_days=0)
    with pytest.raises(
        LiveError, match=r"`settings.quote` \(BUSD\) must match the connector's quote \(USDT\)"
    ):
        PortfolioAnalyzer(BinanceConnector(), settings={"quote": "BUSD"})
    with pytest.raises(ExchangeError, match="unknown symbol 'FOO/USDT' on binance"):
        run(
            _analysis(
                PortfolioAnalyzer(BinanceConnector(), universe=["BTC", "FOO"], store=live_store)
            )
        )
    two = PortfolioAnalyzer(BinanceConnector(), universe=["BTC", "ETH"], store=live_store)
    with pytest.raises(
        ConstraintError, match=r"`min_weight` needs 1\.2 > 100% of the book for a universe of 2"
    ):
        run(_analysis(two, {"min_weight": 0.6}))
    _with_balances(
        live_binance, exchange_fixtures, {"LTC": "0.00000000", "ETH": "0.00000000", "USDT": "10.0"}
    )
    with pytest.raises(
        LiveError, match="nothing to allocate: the account holds only USDT; pass `universe="
    ):
        run(_analysis(PortfolioAnalyzer(BinanceConnector(), store=live_store)))


# ---------------------------------------------------------------------------------- orders
FUNDED = {"USDT": 1000.0, "LTC": 0.919741, "ETH": 0.02229833}  # the recorded balance + 1000 USDT
FILLED = {m: [[1.0]] for m in ("LTCUSDT", "XRPUSDT", "BTCUSDT", "ETHUSDT")}  # at the first query


def test_execute_places_the_limit_orders_sells_first(
    funded, live_binance, exchange_fixtures, tmp_path
):
    analyzer, current = funded
    book = FakeOrderBook(FUNDED, FILLED).install(live_binance, exchange_fixtures)
    plan = analyzer.get_rebalancing_trades(
        current, TARGET, total_value=analyzer.total_value, min_trade_value=10
    )
    journal = Journal(tmp_path, "acct")
    report = run(_execute(analyzer, plan, journal))
    posts = [r for r in live_binance.requests_to(ORDER_PATH) if r.method == "POST"]
    sent = [
        (
            form(r)["symbol"],
            form(r)["side"],
            form(r)["type"],
            form(r)["timeInForce"],
            form(r)["quantity"],
            form(r)["price"],
        )
        for r in posts
    ]
    # the buys cost more than the 1000 USDT held: ETH gets what is left of them (1000 - 436.2
    # - 331.2 with the fee = 232.6 USDT: 0.1758 ETH), its rest waits for the LTC sell's proceeds
    assert sent == [
        ("LTCUSDT", "SELL", "LIMIT", "GTC", "0.919", "81.58"),
        ("XRPUSDT", "BUY", "LIMIT", "GTC", "1248", "0.3492"),
        ("BTCUSDT", "BUY", "LIMIT", "GTC", "0.01925", "17186.85"),
        ("ETHUSDT", "BUY", "LIMIT", "GTC", "0.1758", "1321.05"),
        ("ETHUSDT", "BUY", "LIMIT", "GTC", "0.0524", "1321.05"),
    ]
    assert all(r.method == "POST" and r.host == "api.binance.com" for r in posts)
    # watched to the end: each filled at its first poll (the execution loop, not one shot)
    assert [(r.symbol, r.status, r.order_id, r.filled) for r in report.orders] == [
        ("LTC/USDT", "closed", "2000", 0.919),
        ("XRP/USDT", "closed", "2001", 1248.0),
        ("BTC/USDT", "closed", "2002", 0.01925),
        ("ETH/USDT", "closed", "2003", 0.1758),
        ("ETH/USDT", "closed", "2004", 0.0524),
    ]
    assert [o["status"] for o in book.orders] == ["FILLED"] * 5
    assert book.min_balance >= 0
    assert not report.unfilled and not report.mismatches and not report.reconciled
    assert report.balances["LTC"] == pytest.approx(0.000741)
    assert report.balances["BTC"] == pytest.approx(0.01925)
    # the journal: each order's intent before its answer, then its statuses and its fill
    orders = journal.orders()
    assert (
        orders.groupby("client_order_id", sort=False)["status"].agg(list).tolist()
        == [["intent", "open", "closed"]] * 5
    )
    assert journal.fills()["amount"].tolist() == [0.919, 1248.0, 0.01925, 0.1758, 0.0524]
    assert journal.open_orders().empty


def test_a_rejected_order_is_reported_and_the_rest_go_on(
    funded, live_binance, exchange_fixtures, tmp_path
):
    analyzer, current = funded
    book = FakeOrderBook(FUNDED, FILLED).install(live_binance, exchange_fixtures)
    book.rejects["BTCUSDT"] = {
        "code": -2010,
        "msg": "Account has insufficient balance for requested action.",
    }
    plan = analyzer.get_rebalancing_trades(
        current, TARGET, total_value=analyzer.total_value, min_trade_value=10
    )
    journal = Journal(tmp_path, "acct")
    report = run(_execute(analyzer, plan, journal))
    status = {r.symbol: r.status for r in report.orders}
    assert status == {
        "LTC/USDT": "closed",
        "XRP/USDT": "closed",
        "BTC/USDT": "rejected",
        "ETH/USDT": "closed",
    }
    (rejected,) = [r for r in report.orders if r.status == "rejected"]
    assert "InsufficientFunds" in rejected.error and "insufficient balance" in rejected.error
    assert report.unfilled == {"BTC/USDT": 0.01925}  # not retried: what it left is reported
    posts = [r for r in live_binance.requests_to(ORDER_PATH) if r.method == "POST"]
    assert len(posts) == 4  # the rest went on, nothing resent
    last = journal.orders().drop_duplicates("client_order_id", keep="last")
    assert last.set_index("symbol")["status"].to_dict() == status and journal.open_orders().empty


def test_read_only_analyzer_places_nothing(live_binance, keys, exchange_fixtures):
    _with_balances(live_binance, exchange_fixtures, {"USDT": "1000.00000000"})
    analyzer = PortfolioAnalyzer(exchange=BinanceConnector(), lookback_days=30)
    current = run(_allocation(analyzer))
    plan = analyzer.get_rebalancing_trades(
        current, {"LTC": 0.5, "USDT": 0.5}, total_value=analyzer.total_value
    )
    with pytest.raises(ReadOnlyError, match="read-only"):
        run(_execute(analyzer, plan))
    assert not live_binance.requests_to(ORDER_PATH)


def test_limits_by_symbol_hold_in_the_live_target(live_binance, keys, live_store):
    """The TOML's `[constraints]` (a group and bounds named by symbol) bind the live target as
    they bind a backtest's; an unknown symbol is refused before any order is planned."""
    analyzer = PortfolioAnalyzer(
        BinanceConnector(), strategy=MPTStrategy(), universe=UNIVERSE, store=live_store
    )
    spec = {
        "max_weight": 0.5,
        "groups": {"majors": {"symbols": ["BTC/USDT", "ETH/USDT"], "max": 0.3}},
        "bounds": {"LTC/USDT": [0.1, 0.2]},
    }
    result = run(_analysis(analyzer, spec))
    assert result.weights["BTC"] + result.weights["ETH"] <= 0.3 + 1e-9
    assert 0.1 - 1e-9 <= result.weights["LTC"] <= 0.2 + 1e-9
    assert max(result.weights[a] for a in UNIVERSE) <= 0.5 + 1e-9
    bad = {"groups": {"majors": {"symbols": ["BTC/USDC"], "max": 0.3}}}
    with pytest.raises(ValueError, match="'BTC/USDC', which is not a symbol of the data"):
        run(_analysis(analyzer, bad))


def test_the_cost_aware_objective_plans_live_from_the_account(live_binance, keys, live_store):
    """`max_utility` with `transaction_cost = "costs"` takes the analyzer's fee + slippage and the
    account's weights as the book: a higher cost moves the target no further from the book."""
    from backtest.costs import Costs

    moved = []
    for fee in (10.0, 2000.0):
        analyzer = PortfolioAnalyzer(
            BinanceConnector(),
            strategy=MPTStrategy(
                objective="max_utility", risk_aversion=5.0, transaction_cost="costs"
            ),
            universe=UNIVERSE,
            store=live_store,
            costs=Costs(fee_bps=fee, slippage_bps=5),
        )
        result = run(_analysis(analyzer, {"max_weight": 0.5}))
        assert result.method == "max_utility"
        moved.append(
            sum(abs(result.weights[a] - result.current_weights.get(a, 0.0)) for a in UNIVERSE)
        )
    assert moved[1] <= moved[0] + 1e-9


def test_the_live_decision_prices_market_impact_as_a_backtest_does(live_binance, keys, live_store):
    """With `impact_coef` the live decision's cost per asset is the backtest's rule
    (:func:`backtest.pipeline.price_trades`) on the same history, the reference trade an equal
    share of the account's value: fee + slippage + k sigma sqrt(value / m / quote volume)."""
    from backtest.costs import Costs
    from backtest.simulate import impact_inputs

    costs = Costs(fee_bps=10, slippage_bps=5, impact_coef=0.5)
    analyzer = PortfolioAnalyzer(
        BinanceConnector(),
        strategy=MPTStrategy(objective="max_utility", risk_aversion=5.0, transaction_cost="costs"),
        universe=UNIVERSE,
        store=live_store,
        costs=costs,
    )

    async def analysis_and_history():
        async with analyzer.exchange:
            result = await analyzer.analyze_portfolio({"max_weight": 0.5})
            return result, await analyzer.load_history(UNIVERSE)

    result, market = run(analysis_and_history())
    sigma, volume = impact_inputs(market.values("close"), market.values("volume"), 1.0)
    m = len(UNIVERSE)
    want = 0.0015 + 0.5 * sigma[-1] * np.sqrt(analyzer.total_value / m / volume[-1])
    np.testing.assert_allclose(result.extras["transaction_cost"], want, rtol=1e-12)
    assert (want > 0.0015).all() and result.method == "max_utility"
