"""Limits are promises: every target weight of every registered allocator honours its bounds and
group caps at every rebalance, for point-in-time universes of any size and any bounds; bounds that
cannot hold stop the run with a clear error."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import run_backtest
from backtest.walkforward import returns_panel
from datasets import synthetic_market
from strategies import STRATEGIES, ConstraintError, Constraints, build_strategy

N_BARS = 160
LOOKBACK_DAYS = 20


def staggered_market(n_assets: int, listings: list[int], delistings: list[int], seed: int):
    """A synthetic market whose asset ``j`` trades from bar ``listings[j]`` to ``delistings[j]``."""
    market = synthetic_market(n_assets=n_assets, n_bars=N_BARS, seed=seed, stagger=False)
    arrays = {k: v.copy() for k, v in market.arrays.items()}
    for j, (first, last) in enumerate(zip(listings, delistings, strict=True)):
        for arr in arrays.values():
            arr[:first, j] = np.nan
            arr[last:, j] = np.nan
    return dataclasses.replace(market, arrays=arrays)


@st.composite
def cases(draw):
    n_assets = draw(st.integers(1, 15))
    listings = draw(st.lists(st.integers(0, N_BARS - 40), min_size=n_assets, max_size=n_assets))
    delistings = [
        draw(st.sampled_from([N_BARS, N_BARS, first + 35 + draw(st.integers(0, 60))]))
        for first in listings
    ]
    max_weight = draw(st.sampled_from([0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0]))
    min_weight = draw(st.sampled_from([0.0, 0.0, 0.01, 0.02, 0.05, 0.1, 0.3]))
    min_weight = min(min_weight, max_weight)
    groups = {}
    if n_assets >= 3 and draw(st.booleans()):
        members = draw(
            st.lists(st.integers(0, n_assets - 1), min_size=1, max_size=n_assets, unique=True)
        )
        groups["g"] = (members, 0.0, draw(st.sampled_from([0.1, 0.3, 0.6])))
    name = draw(st.sampled_from(sorted(STRATEGIES)))
    return (
        n_assets,
        listings,
        delistings,
        min_weight,
        max_weight,
        groups,
        name,
        draw(st.integers(0, 99)),
    )


@settings(max_examples=120, deadline=None)
@given(cases())
def test_every_target_weight_honours_its_limits(case):
    n_assets, listings, delistings, min_weight, max_weight, groups, name, seed = case
    market = staggered_market(n_assets, listings, delistings, seed)
    constraints = Constraints(min_weight, max_weight, groups)
    strategy = build_strategy(name, lookback_days=LOOKBACK_DAYS)
    try:
        result = run_backtest(market, strategy, 10, constraints=constraints, benchmark=None)
    except ConstraintError as exc:
        # the only limits that cannot hold are floors needing more than the whole book
        assert "min_weight" in str(exc) or "group" in str(exc)
        assert n_assets * min_weight > 1 or groups
        return
    targets = result.target_weights.to_numpy()
    bars = market.index.get_indexer(result.target_weights.index)
    members = returns_panel(market.values("close"), LOOKBACK_DAYS).universe(bars)
    assert np.all(targets <= max_weight), f"a target exceeds max_weight={max_weight}"
    assert np.all(targets[~members] == 0), "an asset outside the universe has a target"
    assert np.all(targets[members] >= min_weight), f"a member is below min_weight={min_weight}"
    for idx, _gmin, gmax in groups.values():
        assert np.all(targets[:, idx].sum(axis=1) <= gmax + 1e-9), f"group cap {gmax} broken"
    cash = 1.0 - targets.sum(axis=1)
    assert np.all(cash >= -1e-12), "targets + cash must sum to 1 with cash >= 0"
    if not groups:
        # the book is filled as far as the caps allow, and no further
        n_members = members.sum(axis=1)
        expected = np.minimum(1.0, n_members * max_weight)
        expected[n_members == 0] = 0.0
        np.testing.assert_allclose(targets.sum(axis=1), expected, atol=1e-9)
