"""The simulation kernel on hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.costs import Costs, RiskControls
from backtest.errors import EngineError
from backtest.schedule import Schedule
from backtest.simulate import prepare_market, simulate_scenario


def _market(close, open_=None, volume=None, symbols=("A", "B")):
    close = np.asarray(close, dtype=float)
    open_ = close if open_ is None else np.asarray(open_, dtype=float)
    arrays = {
        "open": open_,
        "high": np.maximum(open_, close),
        "low": np.minimum(open_, close),
        "close": close,
        "volume": np.ones_like(close) * 1e6 if volume is None else volume,
    }
    return arrays, list(symbols)


def _run(
    close,
    targets,
    costs,
    execution="close",
    open_=None,
    schedule=None,
    risk=None,
    cash=1000.0,
    volume=None,
):
    arrays, symbols = _market(
        close, open_, volume, symbols=[f"S{i}" for i in range(np.shape(close)[1])]
    )
    risk = risk or RiskControls()
    market = prepare_market(arrays, symbols, 1.0, costs, risk, execution)
    return simulate_scenario(
        market,
        np.asarray(targets, dtype=float),
        costs=costs,
        risk=risk,
        schedule=schedule or Schedule(every="1D"),
        initial_cash=cash,
        execution=execution,
    )


def test_two_assets_three_bars_by_hand():
    """Default "net" sizing: targets are weights of the equity left after the rebalance's fees."""
    fee = 0.001
    close = [[10.0, 20.0], [11.0, 19.0], [12.0, 18.0]]
    targets = [[0.5, 0.5], [np.nan, np.nan], [1.0, 0.0]]
    out = _run(close, targets, Costs(fee_bps=10, slippage_bps=0))

    # bar 0: buying x costs x * fee, so V_net = 1000 - fee * V_net
    v0 = 1000 / (1 + fee)
    a0, b0 = 0.5 * v0 / 10, 0.5 * v0 / 20
    eq0 = a0 * 10 + b0 * 20
    # bar 1: no order, marked to market
    eq1 = a0 * 11 + b0 * 19
    # bar 2: sell all B (notional b0*18), buy A up to V_net: V_net = V - fee * (b0*18 + V_net - a0*12)
    value2 = a0 * 12 + b0 * 18
    v2 = (value2 - fee * b0 * 18 + fee * a0 * 12) / (1 + fee)
    a2 = v2 / 12
    eq2 = v2

    np.testing.assert_allclose(out.equity, [eq0, eq1, eq2], rtol=1e-12)
    np.testing.assert_allclose(out.units[-1], [a2, 0.0], rtol=1e-12)
    assert out.cash.max() < 1e-9  # fully invested, costs paid out of the rebalance
    assert out.cash.min() >= 0
    fees = out.trades["fee"].sum()
    expected_fees = v0 * fee + b0 * 18 * fee + (a2 - a0) * 12 * fee
    assert fees == pytest.approx(expected_fees, rel=1e-12)
    assert out.totals.fees == pytest.approx(fees, rel=1e-12)
    # sells come before buys within a bar
    bar2 = out.trades[out.trades["bar"] == 2]
    assert list(bar2["units"] < 0) == [True, False]


def test_vectorbt_sizing_by_hand():
    """vectorbt's convention: targets of the pre-trade equity, the last buy partially filled."""
    fee = 0.001
    close = [[10.0, 20.0], [11.0, 19.0]]
    out = _run(
        close, [[0.4, 0.6], [np.nan, np.nan]], Costs(fee_bps=10, slippage_bps=0, sizing="vectorbt")
    )
    a = 400 / 10  # the smaller order first, in full
    cash_left = 1000 - 400 * (1 + fee)
    b = cash_left / (1 + fee) / 20  # the larger one gets what is left
    np.testing.assert_allclose(out.units[0], [a, b], rtol=1e-12)
    assert out.cash[0] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(out.equity[1], a * 11 + b * 19, rtol=1e-12)


def test_slippage_is_adverse_and_charged():
    close = [[100.0], [100.0]]
    out = _run(close, [[1.0], [0.0]], Costs(fee_bps=0, slippage_bps=50))
    bought = out.trades["units"][0]
    assert out.trades["fill_price"][0] == pytest.approx(100.5)
    assert bought == pytest.approx(1000 / 100.5)  # V_net = 1000 - 0.005 V_net: all cash spent
    assert out.trades["fill_price"][1] == pytest.approx(99.5)
    assert out.equity[-1] == pytest.approx(bought * 99.5)
    assert out.totals.slippage == pytest.approx(bought * 100 * 0.005 * 2)


def test_next_open_fills_at_the_open():
    close = [[10.0], [12.0], [13.0]]
    open_ = [[9.0], [11.0], [12.5]]
    targets = [[np.nan], [1.0], [np.nan]]  # order row 1 = decision at bar 0, fills at the open of 1
    out = _run(close, targets, Costs(fee_bps=0, slippage_bps=0), execution="next_open", open_=open_)
    assert out.trades["price"][0] == 11.0
    np.testing.assert_allclose(out.equity, [1000, 1000 / 11 * 12, 1000 / 11 * 13])


def test_min_trade_value_and_lot_size():
    close = [[10.0, 10.0], [10.0, 10.0]]
    costs = Costs(fee_bps=0, slippage_bps=0, min_trade_value=200, lot_size={"S0": 3.0})
    out = _run(close, [[0.85, 0.15], [np.nan, np.nan]], costs)
    # S0: 85 units wanted -> 84 (lot 3); S1: 150 of notional < 200 -> skipped
    assert list(out.trades["asset"]) == [0]
    assert out.trades["units"][0] == 84
    assert out.totals.skipped_trades == 1  # one skipped trade recorded


def test_cash_never_negative_with_costs():
    rng = np.random.default_rng(0)
    close = np.exp(np.cumsum(rng.normal(0, 0.05, (60, 5)), axis=0)) * 10
    targets = np.full((60, 5), np.nan)
    targets[::3] = rng.dirichlet(np.ones(5), size=20)
    out = _run(close, targets, Costs(fee_bps=30, slippage_bps=20))
    assert out.cash.min() >= 0
    np.testing.assert_allclose(
        out.equity, out.cash + np.nansum(out.units * close, axis=1), rtol=1e-12
    )


def test_stop_loss_exits_at_level_or_gap_open():
    close = [[100.0], [100.0], [95.0], [70.0]]
    open_ = [[100.0], [100.0], [99.0], [80.0]]
    arrays_low = [[100.0], [99.0], [89.0], [70.0]]
    costs = Costs(fee_bps=0, slippage_bps=0)
    risk = RiskControls(stop_loss=0.1)
    arrays, symbols = _market(close, open_)
    arrays["low"] = np.asarray(arrays_low)
    arrays["high"] = np.maximum(np.asarray(open_), np.asarray(close))
    market = prepare_market(arrays, symbols[:1], 1.0, costs, risk, "next_open")
    targets = np.array([[np.nan], [1.0], [np.nan], [np.nan]])
    out = simulate_scenario(
        market,
        targets,
        costs=costs,
        risk=risk,
        schedule=Schedule(every="1D"),
        initial_cash=1000.0,
        execution="next_open",
    )
    # bought at 100 (open of bar 1); the low of bar 2 (89) breaks 90 -> exit at the stop level 90
    assert list(out.trades["reason"]) == [0, 2]
    assert out.trades["price"][1] == pytest.approx(90.0)
    assert out.equity[-1] == pytest.approx(900.0)


def _ohlc_run(bars, targets, costs, execution, stop=0.1, cash=1000.0):
    """``bars``: (open, high, low, close) per bar, one row per asset; ``targets`` as order rows."""
    ohlc = np.asarray(bars, dtype=float)  # (n_bars, n_assets, 4)
    if ohlc.ndim == 2:
        ohlc = ohlc[:, None, :]
    arrays = {k: ohlc[:, :, j] for j, k in enumerate(("open", "high", "low", "close"))}
    arrays["volume"] = np.full(arrays["close"].shape, 1e6)
    risk = RiskControls(stop_loss=stop)
    symbols = [f"S{i}" for i in range(ohlc.shape[1])]
    market = prepare_market(arrays, symbols, 1.0, costs, risk, execution)
    return simulate_scenario(
        market,
        np.asarray(targets, dtype=float),
        costs=costs,
        risk=risk,
        schedule=Schedule(every="1D"),
        initial_cash=cash,
        execution=execution,
    )


def test_stop_loss_high_starts_afresh_after_a_full_exit():
    """The stop trails the high since *this* entry: after a rebalance sold the position, the high of
    the earlier holding period no longer counts (it used to: the re-entry at 100 was stopped out at
    once against the old high of 120)."""
    bars = [
        (100, 100, 100, 100),  # bar 0: buy 10 at the open
        (110, 120, 110, 115),  # high 120
        (112, 112, 110, 110),  # sell everything at the open (target 0)
        (100, 101, 99, 100),  # buy again at 100: 10% below 120 but only 1% below the new entry
        (100, 105, 100, 105),
    ]
    targets = [[1.0], [np.nan], [0.0], [1.0], [np.nan]]
    out = _ohlc_run(bars, targets, Costs(fee_bps=0, slippage_bps=0), "next_open")
    assert list(out.trades["reason"]) == [0, 0, 0]  # no stop-loss
    assert out.equity[-1] == pytest.approx(1120 / 100 * 105, rel=1e-12)


def test_stop_loss_entry_is_an_executed_buy():
    """At the close, a bar is an entry bar (no stop check) only for an executed buy: a buy that the
    cash could not pay for left the held position exposed to its stop (it used to skip the check)."""
    # A and B bought at 100 at bar 0's close; at bar 1 A should grow (+40, bought with B's sale),
    # but B's sale is below its 50 minimum notional: no cash, no buy, and A's low of 85 breaks 90
    bars = [
        [(100, 100, 100, 100), (100, 100, 100, 100)],
        [(100, 100, 85, 100), (100, 100, 100, 100)],
        [(100, 100, 95, 100), (100, 100, 100, 100)],
    ]
    costs = Costs(fee_bps=0, slippage_bps=0, min_notional={"S1": 50.0})
    out = _ohlc_run(bars, [[0.5, 0.5], [0.54, 0.46], [np.nan, np.nan]], costs, "close")
    stops = out.trades[out.trades["reason"] == 2]
    assert stops["bar"].tolist() == [1] and stops["price"].tolist() == [90.0]
    assert out.totals.skipped_trades == 1
    assert out.equity[-1] == pytest.approx(5 * 90 + 5 * 100, rel=1e-12)


def test_a_target_already_held_is_no_trade():
    """Rebalancing a 100% position to 100% again re-derives the units only to the last bit: that
    rounding noise is no trade and no skipped trade (it used to leave a 2e-19-unit ledger row, or
    count 4 skipped trades with a minimum notional)."""
    open_ = [[36064.74809407], [35327.73968502], [37067.60063599], [37886.82046976], [34766.7308]]
    close = [[36704.86332876], [36463.2177237], [37649.70622432], [37847.69793395], [36847.4600]]
    for minimum in ({}, {"S0": 5.0}):
        costs = Costs(fee_bps=10, slippage_bps=5, min_notional=minimum)
        out = _run(close, np.ones((5, 1)), costs, "next_open", open_=open_, cash=50.0)
        assert len(out.trades) == 1 and out.totals.skipped_trades == 0


def test_band_trades_only_when_breached():
    close = np.array([[10.0, 10.0], [10.5, 9.5], [14.0, 8.0]])
    targets = np.array([[0.5, 0.5], [0.5, 0.5], [np.nan, np.nan]])
    costs = Costs(fee_bps=0, slippage_bps=0)
    out = _run(close, targets, costs, schedule=Schedule(every="1D", drift_band=0.05))
    # bar 1: weights 0.525/0.475 are inside the 5-point band -> no trade; bar 2: 0.636 -> rebalance
    assert sorted(set(out.trades["bar"].tolist())) == [0, 2]
    assert set(out.trades["reason"][out.trades["bar"] == 2]) == {1}


def test_cost_band_trades_only_the_asset_out_of_its_region_and_only_to_its_edge():
    """Fee 30 bps, risk aversion 1: half-widths (1.5 * 0.003)^(1/3) (w (1-w))^(2/3) are 6.4 points
    at w = 0.4 and 4.9 at 0.2. From cash every asset is below its region: each is bought to its
    lower edge (not to its target). A then falls 20% to 28.8% (out), B is at 36.0% and C at 16.2%
    (inside): only A is bought, back to its lower edge."""
    close = np.array([[10.0, 10.0, 10.0], [8.0, 10.0, 10.0], [8.0, 10.0, 10.0]])
    targets = np.array([[0.4, 0.4, 0.2], [np.nan] * 3, [np.nan] * 3])
    schedule = Schedule(every="1D", band_mode="cost", risk_aversion=1.0)
    out = _run(close, targets, Costs(fee_bps=30, slippage_bps=0), schedule=schedule)
    scale = (1.5 * 0.003) ** (1 / 3)
    lower = np.array([0.4, 0.4, 0.2]) - scale * (np.array([0.24, 0.24, 0.16]) ** (2 / 3))
    weights = out.units * close / out.equity[:, None]
    np.testing.assert_allclose(weights[0], lower, atol=1e-12)  # "net" sizing: after the fees
    assert out.trades["bar"].tolist() == [0, 0, 0, 1]
    assert out.trades["asset"][3] == 0 and out.trades["units"][3] > 0
    assert out.trades["reason"][3] == 1  # a band trade
    assert weights[1, 0] == pytest.approx(lower[0], abs=1e-12)
    np.testing.assert_array_equal(out.units[1, 1:], out.units[0, 1:])  # B and C untouched


def test_cost_slots_have_one_set_of_names():
    """The kernel's cost record and the result's cost totals name the same slots, in one order."""
    from backtest.records import COST_DTYPE
    from backtest.simulate import CostTotals

    assert CostTotals._fields == COST_DTYPE.names
    rec = np.array([(1.0, 2.0, 3.0, 4.0, 5)], dtype=COST_DTYPE)[0]
    assert CostTotals.from_record(rec) == CostTotals(1.0, 2.0, 3.0, 4.0, 5)
    assert type(CostTotals.from_record(rec).skipped_trades) is int


def test_targets_are_validated():
    with pytest.raises(EngineError, match="sum to"):
        _run([[1.0, 1.0], [1.0, 1.0]], [[0.8, 0.8], [np.nan, np.nan]], Costs())
    with pytest.raises(EngineError, match="shape"):
        _run([[1.0, 1.0], [1.0, 1.0]], [[0.5, 0.5]], Costs())
    with pytest.raises(EngineError, match="initial_cash"):
        _run([[1.0, 1.0], [1.0, 1.0]], [[0.5, 0.5], [np.nan, np.nan]], Costs(), cash=0)


def test_batch_equals_single_scenarios():
    """`simulate_batch` (one kernel call) gives exactly what `simulate` gives per scenario."""
    from backtest.simulate import simulate_batch

    rng = np.random.default_rng(3)
    close = np.exp(np.cumsum(rng.normal(0, 0.03, (120, 4)), axis=0)) * 50
    close[:30, 3] = np.nan  # a late listing
    open_ = close * np.exp(rng.normal(0, 0.005, close.shape))
    arrays = {
        "open": open_,
        "high": np.fmax(open_, close) * 1.01,
        "low": np.fmin(open_, close) * 0.99,
        "close": close,
        "volume": rng.uniform(1e3, 1e4, close.shape),
    }
    symbols = ["A", "B", "C", "D"]
    risk = RiskControls(stop_loss=0.15)
    scenarios = [
        (Costs(fee_bps=10, slippage_bps=5, impact_coef=0.3), Schedule(every="1D"), 1e4),
        (
            Costs(fee_bps=25, slippage_bps=0, impact_coef=0.0, min_trade_value=50),
            Schedule(every="1D", drift_band=0.04),
            5e3,
        ),
        (
            Costs(fee_bps=0, slippage_bps=20, impact_coef=1.0),
            Schedule(every="1D", drift_band=0.1),
            2e4,
        ),
    ]
    market = prepare_market(arrays, symbols, 1.0, Costs(impact_coef=1.0), risk, "next_open")
    targets = []
    for _ in scenarios:
        t = np.full(close.shape, np.nan)
        rows = np.arange(31, 120, 7)
        w = rng.dirichlet(np.ones(4), size=rows.size)
        t[rows] = w
        targets.append(t)
    batch = simulate_batch(
        market,
        targets,
        costs=[c for c, _, _ in scenarios],
        risk=risk,
        schedules=[s for _, s, _ in scenarios],
        initial_cash=[x for _, _, x in scenarios],
        execution="next_open",
    )
    for (c, s, cash), tgt, got in zip(scenarios, targets, batch, strict=True):
        one = simulate_scenario(
            market, tgt, costs=c, risk=risk, schedule=s, initial_cash=cash, execution="next_open"
        )
        np.testing.assert_array_equal(got.equity, one.equity)
        np.testing.assert_array_equal(got.cash, one.cash)
        np.testing.assert_array_equal(got.units, one.units)
        np.testing.assert_array_equal(got.trades, one.trades)
        np.testing.assert_array_equal(got.totals, one.totals)
    with pytest.raises(EngineError, match="share participation"):
        simulate_batch(
            market,
            targets[:2],
            costs=[Costs(), Costs(participation=0.1)],
            risk=risk,
            schedules=[Schedule(), Schedule()],
            initial_cash=[1.0, 1.0],
            execution="next_open",
        )


def test_compact_orders_equal_dense_targets_and_are_validated():
    """`Orders(rows, weights)` is the dense form's compact twin: the same run; bad rows are named."""
    from backtest.simulate import Orders, check_orders

    rng = np.random.default_rng(11)
    close = np.exp(np.cumsum(rng.normal(0, 0.02, (60, 3)), axis=0)) * 10
    arrays, symbols = _market(close, symbols=["A", "B", "C"])
    costs, risk = Costs(fee_bps=10, slippage_bps=5), RiskControls()
    market = prepare_market(arrays, symbols, 1.0, costs, risk, "close")
    rows = np.arange(5, 60, 7)
    weights = rng.dirichlet(np.ones(3), size=rows.size) * 0.9
    dense = np.full(close.shape, np.nan)
    dense[rows] = weights
    kw = dict(costs=costs, risk=risk, schedule=Schedule(every="1D"), initial_cash=1e4)
    a = simulate_scenario(market, dense, execution="close", **kw)
    b = simulate_scenario(market, Orders(rows, weights), execution="close", **kw)
    np.testing.assert_array_equal(a.equity, b.equity)
    np.testing.assert_array_equal(a.trades, b.trades)
    _, order_row = check_orders(Orders(rows, weights), close.shape)
    assert (
        order_row[rows].tolist() == list(range(rows.size)) and (order_row >= 0).sum() == rows.size
    )
    with pytest.raises(EngineError, match="increasing bar indices"):
        check_orders(Orders(rows[::-1], weights), close.shape)
    with pytest.raises(EngineError, match=r"in \[0, 60\)"):
        check_orders(Orders(np.array([3, 60]), weights[:2]), close.shape)
    with pytest.raises(EngineError, match=r"`weights` must have shape \(2, 3\)"):
        check_orders(Orders(np.array([3, 9]), weights[:3]), close.shape)


@pytest.mark.parametrize("risk", [RiskControls(), RiskControls(stop_loss=0.1)])
def test_holdings_replayed_from_the_ledger_equal_the_kernels_own(risk):
    """Units are not stored with the ledger: the replay (buys add, sales by the kernel's sale
    rule) gives exactly what the kernel held, through stops, bands, lots and a delisting."""
    rng = np.random.default_rng(5)
    close = np.exp(np.cumsum(rng.normal(0, 0.04, (150, 4)), axis=0)) * 30
    close[100:, 2] = np.nan  # delisted long before the end
    arrays, symbols = _market(close, symbols=["A", "B", "C", "D"])
    costs = Costs(fee_bps=10, slippage_bps=5, lot_size={"A": 0.01})
    market = prepare_market(arrays, symbols, 1.0, costs, risk, "next_open")
    targets = np.full(close.shape, np.nan)
    targets[10::9] = rng.dirichlet(np.ones(4), size=targets[10::9].shape[0])
    kw = dict(
        costs=costs,
        risk=risk,
        schedule=Schedule(every="1D", drift_band=0.05),
        initial_cash=1e4,
        execution="next_open",
    )
    replayed = simulate_scenario(market, targets, **kw)
    stored = simulate_scenario(market, targets, record=False, **kw)
    assert replayed.stored_units is None and stored.stored_units is not None
    assert (replayed.trades["reason"] == 3).any()  # the delisting sale happened
    np.testing.assert_array_equal(replayed.units, stored.units)
    np.testing.assert_array_equal(replayed.equity, stored.equity)
