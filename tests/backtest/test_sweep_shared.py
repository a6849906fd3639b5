"""`walkforward.SharedWork`: allocations and windows reused across schedules change no decision."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from backtest.schedule import Schedule
from backtest.walkforward import SharedWork, walk_forward
from datasets import synthetic_market
from strategies import Allocation, Constraints, EqualWeight, HRPStrategy, InverseVolatility

MARKET = synthetic_market(n_assets=6, n_bars=400, seed=2)
CLOSE = MARKET.values("close")
LOOKBACK = 30


def _bars(every: str) -> np.ndarray:
    return Schedule(every=every).decision_bars(MARKET.index, first=LOOKBACK)


@dataclass
class Counting:
    """Wraps an allocator and counts its calls."""

    inner: object
    lookback_days: float = 30
    calls: list[int] = field(default_factory=list)

    def allocate_detailed(self, returns, constraints, previous=None):
        self.calls.append(len(returns))
        return self.inner.allocate_detailed(returns, constraints, previous=previous)


@dataclass
class PreviousTilt:
    """Half the previous weights plus half inverse volatility: its output depends on `previous` and
    says so through the method name, like the MPT ``"previous"`` fallback."""

    lookback_days: float = 30

    def allocate_detailed(self, returns, constraints, previous=None):
        inv = 1.0 / returns.std(axis=0, ddof=1)
        inv /= inv.sum()
        prev = np.zeros(len(inv)) if previous is None else np.asarray(previous)
        if prev.sum() <= 0:
            return Allocation(inv, "inverse_volatility")
        return Allocation(0.5 * prev / prev.sum() + 0.5 * inv, "previous")


@dataclass
class FailsOnShortUniverse:
    lookback_days: float = 30

    def allocate_detailed(self, returns, constraints, previous=None):
        if returns.shape[1] < 5:
            raise ValueError("too few assets")
        return Allocation(np.full(returns.shape[1], 1.0 / returns.shape[1]), "equal_weight")


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.bars, b.bars)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.methods == b.methods and a.notes == b.notes


@pytest.mark.parametrize(
    "make", [lambda: HRPStrategy(lookback_days=30), PreviousTilt, FailsOnShortUniverse]
)
def test_shared_walk_forwards_equal_separate_ones(make):
    cons = Constraints(0.0, 0.6)
    shared = SharedWork()
    for every in ("1W", "2W", "1M", "1W"):
        alone = walk_forward(CLOSE, _bars(every), make(), LOOKBACK, cons, MARKET.symbols)
        together = walk_forward(
            CLOSE, _bars(every), make(), LOOKBACK, cons, MARKET.symbols, shared=shared
        )
        _same(alone, together)


def test_allocations_at_common_bars_are_computed_once():
    counting = Counting(HRPStrategy(lookback_days=30))
    shared = SharedWork()
    weekly, fortnightly = _bars("1W"), _bars("2W")
    assert set(fortnightly) <= set(weekly)
    walk_forward(CLOSE, weekly, counting, LOOKBACK, Constraints(), MARKET.symbols, shared=shared)
    walk_forward(
        CLOSE, fortnightly, counting, LOOKBACK, Constraints(), MARKET.symbols, shared=shared
    )
    assert len(counting.calls) == len(weekly)  # the fortnightly run reused every weekly allocation
    assert set(shared.windows) == set(weekly)


def test_an_allocation_that_used_previous_weights_is_recomputed_for_other_previous_weights():
    counting = Counting(PreviousTilt())
    shared = SharedWork()
    walk_forward(
        CLOSE, _bars("1W"), counting, LOOKBACK, Constraints(), MARKET.symbols, shared=shared
    )
    first = len(counting.calls)
    walk_forward(
        CLOSE, _bars("2W"), counting, LOOKBACK, Constraints(), MARKET.symbols, shared=shared
    )
    # reused only where the previous weights agree: the first bar (empty book in both runs) and the
    # second (both runs decided at the first bar just before it); every later one is recomputed
    weekly, fortnightly = list(_bars("1W")), list(_bars("2W"))
    assert fortnightly[:2] == weekly[:2]
    assert len(counting.calls) == first + len(fortnightly) - 2


@pytest.mark.parametrize("make", [EqualWeight, InverseVolatility])
def test_compiled_baselines_with_shared_work_equal_the_protocol_path(make):
    """Equal weight and inverse volatility decide in one compiled call; with or without a
    SharedWork, they equal the same allocator called through the protocol (``allocate_detailed``
    on each window, as a wrapper is)."""
    cons = Constraints(0.0, 0.3)
    shared = SharedWork()
    for every in ("1W", "2W", "1M"):
        bars = _bars(every)
        compiled = walk_forward(CLOSE, bars, make(), LOOKBACK, cons, MARKET.symbols, shared=shared)
        protocol = walk_forward(CLOSE, bars, Counting(make()), LOOKBACK, cons, MARKET.symbols)
        assert compiled.weights.tobytes() == protocol.weights.tobytes()
        assert compiled.methods == protocol.methods and compiled.notes == protocol.notes
