"""Caps hold for every registered allocator on small universes, in the walk-forward and the sweep."""

from __future__ import annotations

import numpy as np
import pytest

from backtest import run_backtest
from backtest.experiment import load_market, run_experiment
from backtest.sweep import load_sweep, run_sweep
from datasets import synthetic_market
from strategies import STRATEGIES, Constraints, build_strategy


@pytest.fixture(scope="module")
def three():
    return synthetic_market(n_assets=3, n_bars=200, seed=11, stagger=False)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_cap_the_universe_cannot_fill_holds_for_every_allocator(name, three):
    """3 assets at max_weight 0.2: each at 0.2, 40% cash, for every allocator."""
    strategy = build_strategy(name, lookback_days=30)
    result = run_backtest(three, strategy, 10, constraints=Constraints(0.0, 0.2), benchmark=None)
    targets = result.target_weights.to_numpy()
    assert targets.max() <= 0.2
    np.testing.assert_allclose(targets, 0.2, atol=1e-12)
    assert (
        result.rebalances["notes"]
        .str.contains("every asset at its cap, 40% held in cash", regex=False)
        .all()
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_caps_and_a_group_cap_hold_for_every_allocator(name):
    """5 assets at max_weight 0.3 with assets 0-2 capped at 50% together: the book is full (the other
    two take at most 0.6), every cap holds."""
    market = synthetic_market(n_assets=5, n_bars=200, seed=3, stagger=False)
    constraints = Constraints(0.02, 0.3, {"majors": ([0, 1, 2], 0.0, 0.5)})
    strategy = build_strategy(name, lookback_days=30)
    result = run_backtest(market, strategy, 10, constraints=constraints, benchmark=None)
    targets = result.target_weights.to_numpy()
    assert targets.max() <= 0.3 and targets.min() >= 0.02
    assert targets[:, :3].sum(axis=1).max() <= 0.5 + 1e-9
    assert targets.sum(axis=1) == pytest.approx(1.0)  # the group (0.5) and two at 0.3 can fill it


SWEEP = """
name = "caps"
[data]
source = "synthetic"
n_assets = 12
n_bars = 300
seed = 7
[strategy]
name = "hrp"
lookback_days = 40
[rebalance]
every = "1W"
[backtest]
benchmark = "none"
[sweep]
"strategy.name" = ["mpt", "hrp", "risk_parity"]
"strategy.max_weight" = [0.05, 0.15]
"""


def test_a_sweep_keeps_every_cap(tmp_path):
    """Each sweep point (shared windows, memoised limits) equals its own run, whose targets keep the cap."""
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP)
    result = run_sweep(config, tmp_path / "out", jobs=1)
    _, _, points = load_sweep(config)
    assert (result.table["error"] == "").all()
    market = load_market(points[0].config)
    for p in points:
        reference = run_experiment(p.config, market)
        cap = p.config.strategy.max_weight
        assert reference.target_weights.to_numpy().max() <= cap
        np.testing.assert_allclose(
            result.returns[p.point_id].dropna().to_numpy(),
            reference.returns.iloc[1:].to_numpy(),
            rtol=1e-13,
            atol=0,
        )


def test_a_sweep_keeps_a_group_cap_named_by_symbol(tmp_path):
    """`[constraints.groups]` in a sweep's config binds every point (the sweep's returns equal each
    point's own run, whose targets keep the group's cap)."""
    config = tmp_path / "sweep.toml"
    config.write_text(
        SWEEP.replace('"strategy.max_weight" = [0.05, 0.15]', '"strategy.lookback_days" = [30, 40]')
        + '[constraints.groups.first3]\nsymbols = ["SYN00/USDT", "SYN01/USDT", "SYN02/USDT"]\n'
        "max = 0.1\n"
    )
    result = run_sweep(config, tmp_path / "out", jobs=1)
    _, _, points = load_sweep(config)
    assert (result.table["error"] == "").all() and len(points) == 6
    market = load_market(points[0].config)
    for p in points:
        reference = run_experiment(p.config, market)
        held = reference.target_weights[["SYN00/USDT", "SYN01/USDT", "SYN02/USDT"]]
        assert held.sum(axis=1).max() <= 0.1 + 1e-9
        np.testing.assert_allclose(
            result.returns[p.point_id].dropna().to_numpy(),
            reference.returns.iloc[1:].to_numpy(),
            rtol=1e-13,
            atol=0,
        )
