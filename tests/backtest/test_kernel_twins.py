"""The numba kernels against their pure-NumPy twins (tests/backtest/twins.py): random small panels
and parameters (hypothesis), and the real daily Binance data.

Both sides get the same market arrays (``backtest.simulate.prepare_market``) and the same parameter
records (``backtest.simulate.simulation_params``); equity, cash, units, traded notional, the trade
ledger and the cost totals must agree to 1e-9 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.costs import Costs, RiskControls
from backtest.records import REASON_BAND, REASON_DELIST, REASON_STOP, SIZING_NET
from backtest.schedule import Schedule
from backtest.simulate import (
    SimulationOutput,
    fill_params,
    prepare_market,
    simulate_batch,
    simulate_scenario,
    simulation_params,
)
from backtest.trade_rules import plan_trades
from tests.backtest import twins

RTOL = 1e-9
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MONEY = ("fee", "slippage", "impact")


def assert_runs_agree(kernel: SimulationOutput, twin: twins.TwinRun, scale: float) -> None:
    """Kernel and twin agree to ``RTOL`` (money to ``RTOL * scale`` absolute as well)."""
    money = RTOL * scale
    for name in ("equity", "cash", "traded"):
        np.testing.assert_allclose(
            getattr(kernel, name), getattr(twin, name), RTOL, money, err_msg=name
        )
    # a position's units to RTOL of the largest position: a trade that closes a gap of 1e-13 units
    # is the difference of two nearly equal numbers, exact to RTOL of the position, not of itself
    held = RTOL * max(1.0, np.abs(twin.units).max())
    np.testing.assert_allclose(kernel.units, twin.units, RTOL, held, err_msg="units")
    assert len(kernel.trades) == len(twin.trades), "ledger rows"
    for name in ("bar", "asset", "reason"):
        np.testing.assert_array_equal(kernel.trades[name], twin.trades[name], err_msg=name)
    for name in ("units", "price", "fill_price", *MONEY):
        floor = money if name in MONEY else held if name == "units" else 0.0
        np.testing.assert_allclose(
            kernel.trades[name], twin.trades[name], RTOL, floor, err_msg=name
        )
    for name in ("fees", "slippage", "impact", "traded_notional"):
        want = float(twin.totals[0][name])
        assert getattr(kernel.totals, name) == pytest.approx(want, rel=RTOL, abs=money), name
    assert kernel.totals.skipped_trades == int(twin.totals[0]["skipped_trades"])


# ----------------------------------------------------------------------------------- generators
@st.composite
def panels(draw):
    """OHLCV arrays of a small random market: late listings, delistings, gaps through stop levels."""
    n_bars, n = draw(st.integers(3, 40)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    vol = draw(st.sampled_from([0.01, 0.05, 0.15]))
    close = np.exp(np.cumsum(rng.normal(0, vol, (n_bars, n)), axis=0)) * rng.uniform(0.05, 5e4, n)
    open_ = close * np.exp(rng.normal(0, vol / 2, close.shape))
    high = np.fmax(open_, close) * np.exp(np.abs(rng.normal(0, vol / 2, close.shape)))
    low = np.fmin(open_, close) * np.exp(-np.abs(rng.normal(0, vol / 2, close.shape)))
    # quote volume of 1e6..1e9 per bar: impact stays a fraction of the price (the documented domain,
    # where the net-sizing fixed point contracts)
    volume = rng.uniform(1e6, 1e9, close.shape) / close
    arrays = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    for j in range(n):
        life = draw(st.sampled_from(["full", "full", "late", "delisted"]))
        cut = draw(st.integers(1, n_bars - 1))
        rows = slice(0, cut) if life == "late" else slice(cut, None) if life == "delisted" else None
        if rows is not None:
            for a in arrays.values():
                a[rows, j] = np.nan
    return arrays, [f"S{j}/USDT" for j in range(n)]


@st.composite
def setups(draw, symbols):
    """Costs, risk controls, schedule, execution and cash: every switch of the kernel."""
    costs = Costs(
        fee_bps=draw(st.sampled_from([0.0, 10.0, 75.0])),
        slippage_bps=draw(st.sampled_from([0.0, 5.0, 40.0])),
        impact_coef=draw(st.sampled_from([0.0, 0.0, 0.3, 1.0])),
        participation=draw(st.sampled_from([0.0, 0.0, 0.02, 0.3])),
        min_trade_value=draw(st.sampled_from([0.0, 10.0, 250.0])),
        lot_size={s: draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0])) for s in symbols},
        min_notional={s: draw(st.sampled_from([0.0, 5.0, 100.0])) for s in symbols},
        sizing=draw(st.sampled_from(["net", "vectorbt"])),
    )
    risk = RiskControls(
        stop_loss=draw(st.sampled_from([0.0, 0.03, 0.1, 0.25])),
        liquidity_cap=draw(st.sampled_from([0.0, 0.0, 0.3])),
        liquidity_window_days=draw(st.sampled_from([1.0, 3.0])),
    )
    mode = draw(st.sampled_from(["absolute", "relative", "cost"]))
    if mode == "cost":
        schedule = Schedule(
            every="1D", band_mode="cost", risk_aversion=draw(st.sampled_from([0.05, 1.0, 20.0]))
        )
    else:
        schedule = Schedule(
            every="1D",
            drift_band=draw(st.sampled_from([None, 0.01, 0.05, 0.2])),
            band_mode=mode,
            band_target=draw(st.sampled_from(["full", "edge"])),
        )
    execution = draw(st.sampled_from(["next_open", "close"]))
    cash = draw(st.sampled_from([50.0, 1e4, 3e6]))
    return costs, risk, schedule, execution, cash


@st.composite
def target_rows(draw, n_bars, n):
    """Order rows: weights summing to <= 1, some zero (exits), some NaN (keep the position)."""
    targets = np.full((n_bars, n), np.nan)
    rows = draw(st.sets(st.integers(0, n_bars - 1), min_size=1, max_size=n_bars))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for r in rows:
        w = rng.dirichlet(np.ones(n)) * draw(st.sampled_from([1.0, 0.95, 0.5]))
        w[rng.random(n) < 0.2] = 0.0
        w[rng.random(n) < 0.1] = np.nan
        targets[r] = w
    return targets


def _both(arrays, symbols, targets, costs, risk, schedule, execution, cash):
    market = prepare_market(arrays, symbols, 1.0, costs, risk, execution)
    kernel = simulate_scenario(
        market,
        targets,
        costs=costs,
        risk=risk,
        schedule=schedule,
        initial_cash=cash,
        execution=execution,
    )
    params = simulation_params(
        costs=costs, risk=risk, schedule=schedule, initial_cash=cash, execution=execution
    )
    return market, kernel, twins.simulate(market, targets, params)


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Compile the kernels before hypothesis times anything."""
    arrays = {k: np.full((3, 2), 10.0) for k in ("open", "high", "low", "close", "volume")}
    targets = np.array([[0.5, 0.5], [np.nan, np.nan], [1.0, 0.0]])
    _both(arrays, ["A", "B"], targets, Costs(), RiskControls(), Schedule(), "close", 100.0)


# ---------------------------------------------------------------------------------------- tests
@SETTINGS
@given(data=st.data())
def test_simulate_core_agrees_with_its_twin(data):
    """Every rule at once on random small panels: fills, costs, lots, minimums, caps, sizing, bands,
    stops and delistings."""
    arrays, symbols = data.draw(panels())
    n_bars, n = arrays["close"].shape
    costs, risk, schedule, execution, cash = data.draw(setups(symbols))
    targets = data.draw(target_rows(n_bars, n))
    _, kernel, twin = _both(arrays, symbols, targets, costs, risk, schedule, execution, cash)
    assert_runs_agree(kernel, twin, cash)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_simulate_batch_agrees_with_the_twin(data):
    """The batched kernel: each scenario (own costs, band and cash) equals the twin's run."""
    arrays, symbols = data.draw(panels())
    n_bars, n = arrays["close"].shape
    costs, risk, schedule, execution, _ = data.draw(setups(symbols))
    scenarios = []
    for _ in range(data.draw(st.integers(2, 3))):
        own = Costs(
            fee_bps=data.draw(st.sampled_from([0.0, 20.0])),
            slippage_bps=data.draw(st.sampled_from([0.0, 10.0])),
            impact_coef=data.draw(st.sampled_from([0.0, 1.0])),
            participation=costs.participation,
            min_trade_value=data.draw(st.sampled_from([0.0, 50.0])),
            lot_size=costs.lot_size,
            min_notional=costs.min_notional,
            sizing=costs.sizing,
        )
        if schedule.band_mode == "cost":
            band = Schedule(
                every="1D", band_mode="cost", risk_aversion=data.draw(st.sampled_from([0.1, 4.0]))
            )
        else:
            band = Schedule(
                every="1D",
                drift_band=data.draw(st.sampled_from([None, 0.05])),
                band_mode=schedule.band_mode,
                band_target=schedule.band_target,
            )
        scenarios.append(
            (own, band, data.draw(st.sampled_from([100.0, 1e5])), data.draw(target_rows(n_bars, n)))
        )
    market = prepare_market(arrays, symbols, 1.0, Costs(impact_coef=1.0), risk, execution)
    outs = simulate_batch(
        market,
        [t for *_, t in scenarios],
        costs=[c for c, *_ in scenarios],
        risk=risk,
        schedules=[s for _, s, *_ in scenarios],
        initial_cash=[x for _, _, x, _ in scenarios],
        execution=execution,
    )
    for (c, s, x, t), out in zip(scenarios, outs, strict=True):
        params = simulation_params(
            costs=c, risk=risk, schedule=s, initial_cash=x, execution=execution
        )
        assert_runs_agree(out, twins.simulate(market, t, params), x)


@st.composite
def books(draw):
    """One rebalance: holdings, prices (NaN = not tradable), targets (NaN = keep), cash, caps."""
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    prices = rng.uniform(0.01, 5e4, n)
    units = np.where(rng.random(n) < 0.6, rng.uniform(0, 5e4, n) / prices, 0.0)
    val_prices = prices * rng.uniform(0.8, 1.2, n)
    prices[(rng.random(n) < 0.15) & (units == 0)] = np.nan
    prices[rng.random(n) < 0.1] = np.nan  # held without a price now: valued at val_prices
    weights = rng.dirichlet(np.ones(n)) * draw(st.sampled_from([1.0, 0.9]))
    weights[rng.random(n) < 0.2] = 0.0
    weights[rng.random(n) < 0.1] = np.nan
    extra = {
        "lot_step": rng.choice([0.0, 1e-4, 0.01, 1.0], n),
        "min_notional": rng.choice([0.0, 5.0, 80.0], n),
        "liquidity": rng.choice([0.0, 1e7, 1e9], n),
        "sigma": rng.choice([0.0, 0.02, 0.1], n),
        "max_value": rng.choice([np.inf, np.inf, 3e3, 0.0], n),
    }
    cash = draw(st.sampled_from([0.0, 100.0, 1e4, 1e6]))
    return units, prices, val_prices, weights, cash, extra


@SETTINGS
@given(book=books(), costs=setups(["x"]).map(lambda s: s[0]))
def test_trade_rules_agree_with_their_twin(book, costs):
    """`plan_trades_nb` + `fill_orders_nb` (through `backtest.trade_rules.plan_trades`) against the
    twin's `plan_trades` + `fill_orders` on one rebalance."""
    units, prices, val_prices, weights, cash, extra = book
    got = plan_trades(units, prices, weights, cash, costs=costs, val_prices=val_prices, **extra)
    rates = fill_params(costs)
    plan = twins.plan_trades(units, prices, val_prices, weights, cash, rates=rates, **extra)
    twin = twins.Book(cash=cash, units=units.copy())
    twins.fill_orders(
        twin,
        plan.deltas,
        prices,
        rates=rates,
        liquidity=extra["liquidity"],
        sigma=extra["sigma"],
        lot_step=extra["lot_step"],
        min_notional=extra["min_notional"],
        order_value=plan.order_value,
        bar=0,
        reason=0,
    )
    np.testing.assert_allclose(got.planned, plan.deltas, RTOL, 0.0)
    np.testing.assert_array_equal(got.skipped, plan.skipped)
    ledger = twin.ledger()
    np.testing.assert_array_equal(got.ledger["asset"], ledger["asset"])
    for name in ("units", "price", "fill_price", *MONEY):
        np.testing.assert_allclose(got.ledger[name], ledger[name], RTOL, RTOL * 1e-6, err_msg=name)
    np.testing.assert_allclose(got.units_after, twin.units, RTOL, 0.0)
    assert got.cash_after == pytest.approx(twin.cash, rel=RTOL, abs=RTOL * max(cash, 1.0))
    if rates.sizing == SIZING_NET and not np.isnan(prices).any() and not got.skipped.any():
        assert got.cash_after >= 0.0


def test_the_real_daily_data_agrees_with_the_twin(daily_csv):
    """Real Binance candles (a ragged universe: 8 pairs list during the window; one is cut short to
    exercise the delisting sale), weekly random targets, two full setups."""
    from datasets import load_csv

    symbols = [
        "BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT", "LTC/USDT",
        "LINK/USDT", "SOL/USDT", "DOT/USDT", "AVAX/USDT", "UNI/USDT", "AAVE/USDT", "NEAR/USDT",
        "SHIB/USDT", "ICP/USDT",
    ]  # fmt: skip
    market = load_csv(daily_csv, symbols=symbols, start="2019-06-01")
    arrays = {k: v.copy() for k, v in market.arrays.items()}
    for a in arrays.values():
        a[-200:, symbols.index("LTC/USDT")] = np.nan  # delisted 200 days before the end
    n_bars, n = arrays["close"].shape
    rng = np.random.default_rng(15)
    targets = np.full((n_bars, n), np.nan)
    for t in range(10, n_bars, 7):
        listed = np.isfinite(arrays["close"][t])
        targets[t] = np.where(listed, rng.dirichlet(np.ones(n)), 0.0) * 0.98
    lots = {"BTC/USDT": 1e-5, "ETH/USDT": 1e-4, "BNB/USDT": 1e-3, "SHIB/USDT": 1.0}
    setups = [
        (
            Costs(
                fee_bps=10,
                slippage_bps=5,
                impact_coef=0.5,
                participation=0.001,
                min_trade_value=20,
                lot_size=lots,
                min_notional=dict.fromkeys(symbols, 10.0),
            ),
            RiskControls(stop_loss=0.15, liquidity_cap=0.02),
            Schedule(every="1W", drift_band=0.3, band_mode="relative", band_target="edge"),
            "next_open",
        ),
        (
            Costs(fee_bps=10, slippage_bps=5, sizing="vectorbt"),
            RiskControls(stop_loss=0.25),
            Schedule(every="1W", drift_band=0.03),
            "close",
        ),
    ]
    for costs, risk, schedule, execution in setups:
        _, kernel, twin = _both(
            arrays, symbols, targets, costs, risk, schedule, execution, 100_000.0
        )
        reasons = set(kernel.trades["reason"].tolist())
        assert {REASON_BAND, REASON_STOP, REASON_DELIST} <= reasons, reasons  # every trade kind
        assert_runs_agree(kernel, twin, 100_000.0)
