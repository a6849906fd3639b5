"""Invariants of the walk-forward engine and the kernel, as hypothesis properties."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest import Costs, run_backtest
from backtest.costs import RiskControls
from backtest.schedule import Schedule
from backtest.simulate import prepare_market, simulate_scenario
from datasets import synthetic_market
from strategies import EqualWeight, InverseVolatility

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Compile the kernels once before hypothesis times anything."""
    run_backtest(synthetic_market(n_assets=3, n_bars=80), EqualWeight(lookback_days=5), "1W")


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    cut=st.integers(60, 230),
    factor=st.floats(0.2, 5.0),
    execution=st.sampled_from(["next_open", "close"]),
)
def test_no_look_ahead(seed, cut, factor, execution):
    """Changing any price after the decision bar changes no decision up to it and no fill before t+1."""
    market = synthetic_market(n_assets=5, n_bars=240, seed=seed)
    arrays = {k: v.copy() for k, v in market.arrays.items()}
    rng = np.random.default_rng(seed)
    for name in ("open", "high", "low", "close"):
        arrays[name][cut + 1 :] *= factor * rng.uniform(0.9, 1.1, arrays[name][cut + 1 :].shape)
    arrays["high"] = np.fmax(arrays["high"], np.fmax(arrays["open"], arrays["close"]))
    arrays["low"] = np.fmin(arrays["low"], np.fmin(arrays["open"], arrays["close"]))
    arrays["volume"][cut + 1 :] *= 3.0
    future = replace(market, arrays=arrays)
    kwargs = dict(
        rebalance="1W",
        costs=Costs(fee_bps=10, slippage_bps=5, impact_coef=0.5),
        execution=execution,
        risk=RiskControls(stop_loss=0.2),
    )
    a = run_backtest(market, InverseVolatility(lookback_days=20), **kwargs)
    b = run_backtest(future, InverseVolatility(lookback_days=20), **kwargs)
    t_cut = market.index[cut]
    pd_a = a.target_weights.loc[:t_cut]
    pd_b = b.target_weights.loc[:t_cut]
    assert pd_a.equals(pd_b)
    # fills at or before the decision bar (close) / before t+1 (next_open) are identical
    ta = a.trades[a.trades["bar"] <= cut].reset_index(drop=True)
    tb = b.trades[b.trades["bar"] <= cut].reset_index(drop=True)
    assert ta.equals(tb)
    if execution == "next_open":
        assert a.equity.loc[:t_cut].equals(b.equity.loc[:t_cut])


def _random_case(seed, n_assets=4, n_bars=60):
    rng = np.random.default_rng(seed)
    close = np.exp(np.cumsum(rng.normal(0, 0.04, (n_bars, n_assets)), axis=0)) * rng.uniform(
        1, 100, n_assets
    )
    open_ = close * np.exp(rng.normal(0, 0.01, close.shape))
    arrays = {
        "open": open_,
        "close": close,
        "high": np.maximum(open_, close) * 1.01,
        "low": np.minimum(open_, close) * 0.99,
        "volume": rng.uniform(1e3, 1e5, close.shape),
    }
    return rng, arrays


def _sim(arrays, targets, costs, execution="close", schedule=None, cash=10_000.0):
    risk = RiskControls()
    symbols = [f"S{i}" for i in range(arrays["close"].shape[1])]
    market = prepare_market(arrays, symbols, 1.0, costs, risk, execution)
    return simulate_scenario(
        market,
        targets,
        costs=costs,
        risk=risk,
        schedule=schedule or Schedule(every="1D"),
        initial_cash=cash,
        execution=execution,
    )


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    fee=st.floats(0, 50),
    slip=st.floats(0, 50),
    sizing=st.sampled_from(["net", "vectorbt"]),
    band=st.sampled_from([None, 0.03]),
)
def test_accounting_invariants(seed, fee, slip, sizing, band):
    """equity = cash + sum(units * price); ledger fees sum to the totals; cash never negative."""
    rng, arrays = _random_case(seed)
    targets = np.full(arrays["close"].shape, np.nan)
    rows = rng.choice(60, size=12, replace=False)
    targets[rows] = rng.dirichlet(np.ones(4), size=12) * rng.uniform(0.5, 1.0, (12, 1))
    schedule = Schedule(every="1D", drift_band=band)
    out = _sim(
        arrays,
        targets,
        Costs(fee_bps=fee, slippage_bps=slip, min_trade_value=5, sizing=sizing),
        schedule=schedule,
    )
    np.testing.assert_allclose(
        out.equity, out.cash + (out.units * arrays["close"]).sum(axis=1), rtol=1e-12
    )
    assert out.cash.min() >= 0
    assert (out.units >= -1e-12).all()
    assert out.trades["fee"].sum() == pytest.approx(out.totals.fees, rel=1e-12, abs=1e-12)
    assert out.trades["slippage"].sum() == pytest.approx(out.totals.slippage, rel=1e-12, abs=1e-12)


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_zero_costs_every_bar_is_the_weighted_return(seed):
    rng, arrays = _random_case(seed)
    w = rng.dirichlet(np.ones(4))
    targets = np.tile(w, (60, 1))
    out = _sim(arrays, targets, Costs(fee_bps=0, slippage_bps=0))
    close = arrays["close"]
    port = out.equity[1:] / out.equity[:-1] - 1
    assets = (close[1:] / close[:-1] - 1) @ w
    np.testing.assert_allclose(port, assets, rtol=1e-10, atol=1e-13)


@SETTINGS
@given(seed=st.integers(0, 10_000), fee=st.floats(1, 40), slip=st.floats(0, 40))
def test_costs_compound_as_cost_shares(seed, fee, slip):
    """When every rebalance reaches its targets exactly ("net" sizing, no minimums), equity with costs
    equals equity without costs times the product of (1 - cost share) over the rebalances."""
    rng, arrays = _random_case(seed)
    targets = np.full(arrays["close"].shape, np.nan)
    rows = np.sort(rng.choice(60, size=8, replace=False))
    targets[rows] = rng.dirichlet(np.ones(4), size=8)
    costly = _sim(arrays, targets, Costs(fee_bps=fee, slippage_bps=slip))
    free = _sim(arrays, targets, Costs(fee_bps=0, slippage_bps=0))
    factor = np.ones(60)
    for r in rows:
        before = (
            costly.cash[r - 1] + costly.units[r - 1] @ arrays["close"][r] if r > 0 else 10_000.0
        )
        paid = costly.trades[costly.trades["bar"] == r]
        share = (paid["fee"].sum() + paid["slippage"].sum() + paid["impact"].sum()) / before
        factor[r:] *= 1 - share
    np.testing.assert_allclose(costly.equity, free.equity * factor, rtol=1e-9)
