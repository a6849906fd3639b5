"""Property: for any holdings, prices, targets, lot steps and minimums, the live trade rules (the
numba kernels `plan_trades_nb` / `fill_orders_nb`) trade what the backtest's documented rules trade:
the reference is the pure-NumPy twin of the kernel (tests/live/kernel_case.py runs it)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.costs import Costs
from backtest.trade_rules import plan_trades
from tests.live.kernel_case import analyzer_for, lots_and_mins, run_twin

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOTS = [0.0, 1e-5, 1e-3, 0.1, 1.0]


@st.composite
def cases(draw):
    n = draw(st.integers(2, 5))
    prices0 = draw(st.lists(st.floats(0.05, 5e4), min_size=n, max_size=n))
    moves = draw(st.lists(st.floats(0.7, 1.4), min_size=n, max_size=n))
    raw0 = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    raw1 = draw(
        st.lists(
            st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0]) | st.floats(0.0, 1.0),
            min_size=n,
            max_size=n,
        )
    )
    invested = draw(st.sampled_from([1.0, 0.9]))
    symbols = [f"A{i}/USDT" for i in range(n)]
    costs = Costs(
        fee_bps=draw(st.sampled_from([0.0, 10.0, 25.0])),
        slippage_bps=draw(st.sampled_from([0.0, 5.0])),
        min_trade_value=draw(st.sampled_from([0.0, 10.0, 100.0])),
        lot_size={s: draw(st.sampled_from(LOTS)) for s in symbols},
        min_notional={s: draw(st.sampled_from([0.0, 5.0, 50.0])) for s in symbols},
    )
    cash = draw(st.sampled_from([1_000.0, 25_000.0, 1_000_000.0]))

    def weights(raw):
        w = np.asarray(raw)
        return w / w.sum() * invested if w.sum() > 0 else np.full(n, invested / n)

    prices1 = [p * m for p, m in zip(prices0, moves, strict=True)]
    return prices0, prices1, weights(raw0), weights(raw1), costs, cash


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Compile the live side's kernels before hypothesis times anything."""
    plan_trades(np.ones(2), np.ones(2), np.full(2, 0.5), 1.0, costs=Costs())


@SETTINGS
@given(case=cases())
def test_live_rules_trade_what_the_twin_trades(case):
    prices0, prices1, target0, target1, costs, cash = case
    twin = run_twin(prices0, prices1, target0, target1, costs, cash)
    n = len(prices0)
    lots, mins = lots_and_mins(costs, n)

    # 1. from the same holdings (units and cash): the same ledger (the twin books cash in another
    # order, so to the last bits)
    plan = plan_trades(
        twin.units,
        twin.prices,
        twin.target,
        twin.cash,
        costs=costs,
        lot_step=lots,
        min_notional=mins,
    )
    assert np.array_equal(plan.ledger["asset"], twin.trades["asset"])
    for field in ("units", "fee", "slippage"):
        np.testing.assert_allclose(
            plan.ledger[field], twin.trades[field], rtol=1e-12, err_msg=field
        )

    # 2. from the same holdings expressed as weights of the book (the analyzer's API): the same trades,
    # up to the float noise of weights -> units, which can move a trade across a lot or a threshold
    analyzer, current, target = analyzer_for(twin, costs)
    trades = analyzer.get_rebalancing_trades(
        current, target, total_value=twin.value, min_trade_value=costs.min_trade_value
    )
    live = {int(t.asset[1:]): (t.amount if t.side == "buy" else -t.amount) for t in trades}
    expected = {int(r["asset"]): float(r["units"]) for r in twin.trades}
    for i in set(live) | set(expected):
        got, want = live.get(i, 0.0), expected.get(i, 0.0)
        if got == pytest.approx(want, rel=1e-9, abs=1e-12):
            continue
        threshold = max(costs.min_trade_value, mins[i])
        one_lot = lots[i] > 0 and abs(abs(got - want) - lots[i]) <= 1e-9 * max(1.0, abs(want))
        at_threshold = min(abs(got), abs(want)) == 0 and max(abs(got), abs(want)) * twin.prices[
            i
        ] == pytest.approx(threshold, rel=1e-6)
        assert one_lot or at_threshold, (i, got, want)
    sides = [t.side for t in trades]
    assert sides == sorted(sides, key=lambda s: s != "sell")  # sells first
