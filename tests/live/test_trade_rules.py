"""The live trade rules are the backtest's: same holdings, prices and targets -> same trades.

Reference: the pure-NumPy twin of the kernel (``tests/backtest/twins.py``, written from
docs/engine.md) on a two-bar market whose bar 0 buys into the holdings and whose bar 1 rebalances
(tests/live/kernel_case.py); the live side runs the numba kernels ``plan_trades_nb`` and
``fill_orders_nb``.
"""

from __future__ import annotations

import numpy as np
import pytest

from backtest.costs import Costs
from backtest.errors import EngineError
from backtest.trade_rules import floor_to_grid, on_grid, plan_trades, slice_cap, split_order
from tests.live.kernel_case import analyzer_for, lots_and_mins, run_twin

COSTS = Costs(
    fee_bps=10,
    slippage_bps=5,
    min_trade_value=10,
    lot_size={"A0/USDT": 0.001, "A1/USDT": 0.0001, "A2/USDT": 1.0, "A3/USDT": 0.1},
    min_notional={"A0/USDT": 5.0, "A1/USDT": 5.0, "A2/USDT": 5.0, "A3/USDT": 50.0},
)
PRICES0 = [81.62, 1320.39, 0.3490, 17.25]
PRICES1 = [84.10, 1290.55, 0.3551, 17.31]
TARGET0 = [0.30, 0.40, 0.20, 0.10]
# A0 exits fully, A1 and A2 grow, A3 moves by ~0.3% of the book: below its 50 USDT minimum notional
TARGET1 = [0.00, 0.55, 0.34, 0.103]


@pytest.fixture(scope="module")
def case():
    return run_twin(PRICES0, PRICES1, TARGET0, TARGET1, COSTS, 10_000.0)


def test_plan_trades_reproduces_the_twin_ledger(case):
    """The numba trade rules against the twin's, from the same holdings: the same ledger (to the
    last bits: the twin books cash in another order)."""
    lots, mins = lots_and_mins(COSTS, 4)
    plan = plan_trades(
        case.units,
        case.prices,
        case.target,
        case.cash,
        costs=COSTS,
        lot_step=lots,
        min_notional=mins,
    )
    assert len(case.trades) == 3  # A0 sold out, A1 and A2 bought, A3 skipped
    assert np.array_equal(plan.ledger["asset"], case.trades["asset"])
    for field in ("units", "price", "fill_price", "fee", "slippage", "impact"):
        np.testing.assert_allclose(
            plan.ledger[field], case.trades[field], rtol=1e-12, err_msg=field
        )
    np.testing.assert_allclose(plan.units_after, case.units_after, rtol=1e-12)
    assert plan.cash_after == pytest.approx(case.cash_after, rel=1e-12)
    assert plan.skipped.tolist() == [False, False, False, True]
    assert plan.ledger["units"][0] < 0 < plan.ledger["units"][1]  # sells first


def test_live_analyzer_lists_the_twins_trades(case):
    analyzer, current, target = analyzer_for(case, COSTS)
    trades = analyzer.get_rebalancing_trades(
        current, target, total_value=case.value, min_trade_value=COSTS.min_trade_value
    )
    twin = {f"A{int(r['asset'])}": float(r["units"]) for r in case.trades}
    live = {t.asset: (t.amount if t.side == "buy" else -t.amount) for t in trades}
    assert live.keys() == twin.keys() == {"A0", "A1", "A2"}
    lots, _ = lots_and_mins(COSTS, 4)
    for asset, units in twin.items():
        assert live[asset] == pytest.approx(units, rel=1e-12, abs=0), asset
        step = lots[int(asset[1])]
        assert live[asset] == on_grid(live[asset], step)  # exactly on the exchange's lot grid
    fees = {f"A{int(r['asset'])}": float(r["fee"]) for r in case.trades}
    assert {t.asset: t.fee for t in trades} == pytest.approx(fees, rel=1e-9)
    assert trades.skipped == ("A3",)
    assert [t.side for t in trades] == ["sell", "buy", "buy"]


def test_full_exit_of_an_odd_amount_is_truncated_to_the_lot():
    """The backtest sells a whole position; an exchange can only sell whole lots: the rest is dust."""
    costs = Costs(
        fee_bps=10, slippage_bps=5, lot_size={"A0/USDT": 0.001}, min_notional={"A0/USDT": 5.0}
    )
    case = run_twin([81.62, 80.0], [81.62, 80.0], [0.9, 0.1], [0.0, 1.0], costs, 100.0)
    case.units[0] = 0.919741  # the recorded LTC balance, not a multiple of the 0.001 step
    analyzer, current, target = analyzer_for(case, costs)
    trades = analyzer.get_rebalancing_trades(
        current, target, total_value=case.value, min_trade_value=0
    )
    sell = next(t for t in trades if t.asset == "A0")
    assert sell.amount == 0.919 and sell.side == "sell"
    assert any("0.000741 stays as dust" in note for note in trades.notes)


def test_plan_trades_validates_its_arrays():
    ok = {"costs": Costs()}
    with pytest.raises(EngineError, match=r"`prices` must have shape \(2,\) like `units`"):
        plan_trades(np.ones(2), np.ones(3), np.full(2, 0.5), 0.0, **ok)
    with pytest.raises(EngineError, match="`units` must be finite and >= 0"):
        plan_trades(np.array([1.0, -1.0]), np.ones(2), np.full(2, 0.5), 0.0, **ok)
    with pytest.raises(EngineError, match=r"`target_weights` sum to 1.2 > 1"):
        plan_trades(np.ones(2), np.ones(2), np.array([0.6, 0.6]), 0.0, **ok)
    with pytest.raises(EngineError, match="`prices` must be > 0"):
        plan_trades(np.ones(2), np.array([1.0, 0.0]), np.full(2, 0.5), 0.0, **ok)
    with pytest.raises(EngineError, match=r"held assets at positions \[1\] have no price"):
        plan_trades(np.ones(2), np.array([1.0, np.nan]), np.full(2, 0.5), 0.0, **ok)
    with pytest.raises(EngineError, match="`lot_step` must be finite and >= 0"):
        plan_trades(np.ones(2), np.ones(2), np.full(2, 0.5), 0.0, lot_step=-1.0, **ok)


@pytest.mark.parametrize(
    ("amount", "price", "lot", "cap", "floor", "expected"),
    [
        (1.0, 100.0, 0.1, 30.0, 0.0, (0.3, 0.3, 0.2, 0.2)),
        (1.0, 100.0, 0.1, None, 0.0, (1.0,)),
        (1.0, 100.0, 0.1, 100.0, 0.0, (1.0,)),  # exactly at the cap: one order
        (0.919, 70.0, 0.001, 20.0, 5.0, (0.23, 0.23, 0.23, 0.229)),
        (0.6, 100.0, 0.1, 10.0, 20.0, (0.2, 0.2, 0.2)),  # one-lot slices would be below the minimum
        (0.5, 100.0, 0.1, 10.0, 25.0, (0.5,)),  # the minimum wins over the cap
        (
            3.0,
            100.0,
            1.0,
            50.0,
            0.0,
            (1.0, 1.0, 1.0),
        ),  # a lot worth more than the cap: one lot each
        (1.0, 100.0, 0.0, 30.0, 0.0, (0.25, 0.25, 0.25, 0.25)),
    ],
)
def test_split_order(amount, price, lot, cap, floor, expected):
    slices = split_order(amount, price, lot, cap, floor)
    assert slices == expected
    assert on_grid(sum(slices), lot or 1e-12) == pytest.approx(amount)


def test_grid_helpers_and_slice_cap():
    assert on_grid(0.30000000000000004, 0.1) == 0.3 and on_grid(55.324242343, 0.01) == 55.32
    assert floor_to_grid(0.919741, 0.001) == 0.919 and floor_to_grid(0.9999999999999, 0.1) == 1.0
    assert (
        slice_cap(1000.0, 0.01, 50_000.0) == 500.0 and slice_cap(None, 0.01, float("nan")) is None
    )
    assert slice_cap(None, None, 1e6) is None and slice_cap(200.0, None, None) == 200.0
