"""The allocator's cost with market impact (`transaction_cost = "costs"`, `impact_coef > 0`): each
decision's rate is fee + slippage + k sigma sqrt(q_ref / V) with the simulation's own sigma and
quote volume, q_ref = initial cash / universe size; without impact nothing changes; a larger
impact never makes the allocator trade more; thinner assets cost more; a missing volume is noted."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from backtest import Costs, run_backtest
from backtest.costs import RiskControls
from backtest.errors import EngineError
from backtest.experiment import load_market, run_experiment
from backtest.pipeline import (
    Scenario,
    decide,
    decision_bars,
    market_arrays,
    prepare,
    price_trades,
    simulate,
)
from backtest.schedule import Schedule
from backtest.sweep import load_sweep, run_sweep
from backtest.sweep.grid import strategy_key
from backtest.trade_pricing import trade_costs
from strategies import MPTStrategy

SYMBOLS = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "LTC/USDT", "LINK/USDT"]
FEE, SLIP = 10.0, 5.0
BASE = (FEE + SLIP) / 1e4


@pytest.fixture(scope="module")
def market(daily_csv):
    from datasets import load_csv

    return load_csv(daily_csv, symbols=SYMBOLS, start="2020-01-01", end="2022-12-31")


PARAMS = {"risk_aversion": 5.0, "lookback_days": 60, "transaction_cost": "costs"}
SEEN: list[np.ndarray] = []  # the cost vectors _Recording was called with, in order


def _mpt(**params):
    return MPTStrategy(objective="max_utility", **{**PARAMS, **params})


class _Recording(MPTStrategy):
    """MPT that records the cost vector it is called with (the walk-forward's per-decision copy)."""

    def _allocate(self, returns, constraints, previous):
        SEEN.append(np.asarray(self.transaction_cost, dtype=float).copy())
        return super()._allocate(returns, constraints, previous)


def _decisions(market, strategy, costs, capital, cons=None, schedule=None):
    prepared = price_trades(prepare(market, strategy, cons or {"max_weight": 0.4}), costs, capital)
    bars = decision_bars(prepared, schedule or Schedule(every="1W"))
    return prepared, decide(prepared, bars)


def _sigma_and_volume(market, t, j):
    """Independently: the ddof-0 std of the 20 daily log returns through bar t, and bar t's
    quote volume."""
    close = market.values("close")[:, j]
    r = np.diff(np.log(close[t - 20 : t + 1]))
    return float(np.std(r)), float(market.values("volume")[t, j] * close[t])


# ------------------------------------------------------------------------------------ (a) formula
@pytest.mark.shared
@pytest.mark.parametrize("execution", ["next_open", "close"])
def test_each_decisions_rate_is_the_formula_on_the_simulations_own_inputs(market, execution):
    k, cash = 0.7, 250_000.0
    costs = Costs(fee_bps=FEE, slippage_bps=SLIP, impact_coef=k)
    SEEN.clear()
    prepared, decisions = _decisions(
        market, _Recording(objective="max_utility", **PARAMS), costs, cash
    )
    assert len(SEEN) == decisions.bars.size  # every decision got its own vector
    arrays = market_arrays(market, costs, RiskControls(), execution)
    shift = 1 if execution == "next_open" else 0
    checked = 0
    for d in (0, 1, 17, 60, decisions.bars.size - 2):
        t, members = int(decisions.bars[d]), np.flatnonzero(decisions.universe[d])
        m = members.size
        want = []
        for j in members:
            sigma, volume = _sigma_and_volume(market, t, j)
            # the simulation charges a fill of this decision with the same sigma and volume
            assert arrays.sigma[t + shift, j] == pytest.approx(sigma, rel=1e-9)
            assert arrays.liquidity[t + shift, j] == pytest.approx(volume, rel=1e-12)
            want.append(BASE + k * sigma * math.sqrt(cash / m / volume))
        np.testing.assert_allclose(SEEN[d], want, rtol=1e-9)
        rates, notes = prepared.trade_costs.at(t, members)
        np.testing.assert_allclose(rates, want, rtol=1e-9)
        assert notes == () and (rates > BASE).all()
        checked += 1
    assert checked == 5
    np.testing.assert_array_equal(decisions.last_extras["transaction_cost"], SEEN[-1])


@pytest.mark.shared
def test_the_reference_trade_is_an_equal_share_of_the_initial_cash(market):
    """Quadrupling the cash doubles the impact term; a universe of 4 assets instead of 7
    multiplies it by sqrt(7/4): the rate of a trade of initial_cash / m."""
    costs = Costs(fee_bps=FEE, slippage_bps=SLIP, impact_coef=0.5)
    prepared = prepare(market, _mpt())
    one, four = (price_trades(prepared, costs, c).trade_costs for c in (1e5, 4e5))
    t, seven, four_of_them = 400, np.arange(7), np.array([0, 2, 4, 6])
    np.testing.assert_allclose(four.at(t, seven)[0] - BASE, 2 * (one.at(t, seven)[0] - BASE))
    np.testing.assert_allclose(
        one.at(t, four_of_them)[0] - BASE,
        math.sqrt(7 / 4) * (one.at(t, seven)[0] - BASE)[four_of_them],
    )


# ------------------------------------------------------------------------------- (b) no impact
@pytest.mark.shared
def test_without_impact_the_weights_are_those_of_the_scalar_fee_and_slippage(market):
    costs = Costs(fee_bps=FEE, slippage_bps=SLIP, impact_coef=0.0)
    prepared = price_trades(prepare(market, _mpt()), costs, 1e5)
    assert prepared.trade_costs is None and prepared.strategy.transaction_cost == BASE
    runs = [
        run_backtest(market, _mpt(transaction_cost=c), "1W", costs, benchmark=None)
        for c in ("costs", BASE)
    ]
    for a, b in (r.target_weights.to_numpy() for r in runs), (r.equity.to_numpy() for r in runs):
        assert a.tobytes() == b.tobytes()
    assert runs[0].rebalances["notes"].tolist() == runs[1].rebalances["notes"].tolist()


@pytest.mark.shared
def test_a_number_or_a_strategy_without_a_cost_is_left_alone(market):
    costs = Costs(impact_coef=0.5)
    for strategy in (_mpt(transaction_cost=0.002), MPTStrategy(lookback_days=60)):
        prepared = prepare(market, strategy)
        assert price_trades(prepared, costs, 1e5) is prepared


# ------------------------------------------------------------------ (c) monotone, thin is costly
def _allocator_turnover(prepared, decisions):
    """Sum over decisions of |w_k - previous_k|, previous the drifted book the allocator saw."""
    w, bars = decisions.weights, decisions.bars
    total = np.abs(w[0]).sum()
    for k in range(1, bars.size):
        held = prepared.panel.drifted(w[k - 1], int(bars[k - 1]), int(bars[k]))
        total += np.abs(w[k] - held).sum()
    return float(total)


@pytest.mark.shared
def test_a_larger_impact_never_raises_the_turnover(daily_market):
    """On the 50 daily pairs: the allocator's turnover, and the simulated turnover of its
    decisions under one cost model, never rise with `impact_coef` (the metrics' turnover under
    the impact each run is charged also moves with the equity those charges take, so it is not
    the allocator's to keep monotone)."""
    cash, sched = 1e7, Schedule(every="1W")
    allocator, simulated = [], []
    for k in (0.0, 0.5, 2.0, 10.0):
        costs = Costs(fee_bps=FEE, slippage_bps=SLIP, impact_coef=k)
        prepared, decisions = _decisions(daily_market, _mpt(), costs, cash, {"max_weight": 0.3})
        allocator.append(_allocator_turnover(prepared, decisions))
        flat = Scenario(Costs(fee_bps=FEE, slippage_bps=SLIP), sched, cash)
        (sim,) = simulate(
            daily_market, decisions, [flat], risk=RiskControls(), execution="next_open"
        )
        simulated.append(float((sim.traded / sim.equity).sum()))
    for series in (allocator, simulated):
        assert (np.diff(series) <= 1e-9).all(), series
        assert series[-1] < 0.95 * series[0], series


@pytest.mark.shared
def test_a_thinner_asset_costs_more(market):
    """The same market with one asset's volume cut 100-fold: its impact term is 10 times larger at
    every decision, the others' unchanged, and the allocator trades it less."""
    j = SYMBOLS.index("LINK/USDT")
    volume = market.values("volume").copy()
    volume[:, j] /= 100.0
    thin = dataclasses.replace(market, arrays={**market.arrays, "volume": volume})
    costs = Costs(fee_bps=FEE, slippage_bps=SLIP, impact_coef=2.0)
    runs = [_decisions(m, _mpt(), costs, 1e7) for m in (market, thin)]
    (p0, d0), (p1, _) = runs
    for d in (5, 50, 120):
        t, members = int(d0.bars[d]), np.flatnonzero(d0.universe[d])
        r0, r1 = p0.trade_costs.at(t, members)[0], p1.trade_costs.at(t, members)[0]
        pos = int(np.flatnonzero(members == j)[0])
        assert r1[pos] - BASE == pytest.approx(10 * (r0[pos] - BASE), rel=1e-12)
        np.testing.assert_array_equal(np.delete(r1, pos), np.delete(r0, pos))
    traded = [_allocator_turnover_of(p, d, j) for p, d in runs]
    assert traded[1] < traded[0], traded


def _allocator_turnover_of(prepared, decisions, j):
    """Asset j's share of :func:`_allocator_turnover`."""
    w, bars = decisions.weights, decisions.bars
    total = abs(w[0, j])
    for k in range(1, bars.size):
        held = prepared.panel.drifted(w[k - 1], int(bars[k - 1]), int(bars[k]))
        total += abs(w[k, j] - held[j])
    return float(total)


# ------------------------------------------------------------------------- (d) missing volume
@pytest.mark.shared
def test_a_missing_volume_is_priced_at_fee_and_slippage_and_noted(market):
    volume = market.values("volume").copy()
    eth, ada = SYMBOLS.index("ETH/USDT"), SYMBOLS.index("ADA/USDT")
    volume[300:400, eth] = np.nan
    volume[350:360, ada] = 0.0
    holed = dataclasses.replace(market, arrays={**market.arrays, "volume": volume})
    costs = Costs(fee_bps=FEE, slippage_bps=SLIP, impact_coef=0.5)
    every_bar = Schedule(every=None, bars=1)
    prepared, decisions = _decisions(holed, _mpt(), costs, 1e5, schedule=every_bar)
    notes = dict(zip(decisions.bars.tolist(), decisions.notes, strict=True))
    members = np.arange(7)
    for t in (300, 355, 399):
        rates, _ = prepared.trade_costs.at(t, members)
        assert rates[eth] == BASE and all(rates[np.arange(7) != eth] >= BASE)
        assert any(
            n.startswith("market impact not priced for ETH/USDT") and "fee + slippage only" in n
            for n in notes[t]
        ), notes[t]
    assert prepared.trade_costs.at(355, members)[0][ada] == BASE
    assert any("ETH/USDT, ADA/USDT" in n for n in notes[355])
    assert not any("market impact" in n for n in notes[299] + notes[400])
    # end to end: the run goes on and its rebalances carry the note
    result = run_backtest(holed, _mpt(), "1W", costs, benchmark=None)
    assert result.rebalances["notes"].str.contains("market impact not priced for ETH/USDT").any()


# ---------------------------------------------------------------------------------- errors
@pytest.mark.shared
def test_bad_inputs_are_refused(market):
    prepared = prepare(market, _mpt())
    with pytest.raises(
        EngineError, match=r"`initial_cash` \(the book's value .*\) must be > 0; got 0"
    ):
        price_trades(prepared, Costs(impact_coef=0.5), 0.0)
    with pytest.raises(EngineError, match="`impact_coef` must be > 0 for a table of impact rates"):
        trade_costs(market, Costs(impact_coef=0.0), 1e5)


# --------------------------------------------------------------------------------- the sweep
SWEEP = """
name = "impact"
[data]
source = "synthetic"
n_assets = 4
n_bars = 300
seed = 2
[strategy]
name = "max_utility"
lookback_days = 40
risk_aversion = 5
transaction_cost = "costs"
max_weight = 0.6
[rebalance]
every = "1W"
[sweep]
"costs" = [{impact_coef = 0.0}, {impact_coef = 5.0}, {impact_coef = 5.0, initial_cash = 1e8}]
"""


def test_a_sweep_prices_each_point_as_its_own_backtest(tmp_path):
    """Points that differ in impact or in initial cash are decided apart (the strategy key), and
    each equals its own `run_experiment`."""
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP)
    result = run_sweep(config, tmp_path / "out", jobs=1)
    _, _, points = load_sweep(config)
    assert len({strategy_key(p.config) for p in points}) == 3
    table = result.table.set_index("point_id")
    market = load_market(points[0].config)
    turnovers = []
    for p in points:
        reference = run_experiment(p.config, market).metrics()
        assert table.loc[p.point_id, "turnover"] == pytest.approx(reference["turnover"], rel=1e-12)
        assert table.loc[p.point_id, "sharpe"] == pytest.approx(reference["sharpe"], rel=1e-12)
        turnovers.append(reference["turnover"])
    assert len(set(turnovers)) == 3
