"""The decide stage's fast paths change no decision.

* The compiled loop of equal weight and inverse volatility (``backtest/decide_kernels.py``) against
  the Python loop (a subclass of the allocator takes it: the compiled loop serves exact types only),
  bit for bit, notes and methods too; its NumPy-twin helpers against NumPy itself.
* ``allocate_array`` (no validation) against ``allocate_detailed``.
* The returns panel against the per-decision window rule, written out here as the oracle.
* A user's allocator (the protocol only) still works; a panel with a zero close sends every window
  through the validating entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from backtest import decide_kernels as dk
from backtest.walkforward import returns_panel, walk_forward
from datasets import synthetic_market
from strategies import (
    Allocation,
    Constraints,
    EqualWeight,
    HRPStrategy,
    InverseVolatility,
    MPTStrategy,
    RiskParity,
)
from strategies.errors import LimitError
from strategies.limits import pairwise_sum_nb


def window_validity(close: np.ndarray, lookback: int) -> np.ndarray:
    """The universe rule by its definition: bool (T, N), the closes of bars ``t-L .. t`` are all
    finite (False for ``t < L``)."""
    finite = np.isfinite(close)
    out = np.zeros(close.shape, dtype=bool)
    for t in range(lookback, close.shape[0]):
        out[t] = finite[t - lookback : t + 1].all(axis=0)
    return out


def window_returns(close: np.ndarray, t: int, lookback: int, members: np.ndarray) -> np.ndarray:
    """The window rule by its definition: returns of bars ``t-L+1 .. t`` from closes ``t-L .. t``."""
    window = close[t - lookback : t + 1, members]
    return window[1:] / window[:-1] - 1.0


@dataclass
class PyEqualWeight(EqualWeight):
    """Equal weight through the Python loop."""


@dataclass
class PyInverseVolatility(InverseVolatility):
    """Inverse volatility through the Python loop."""


@dataclass
class PyHRP(HRPStrategy):
    """HRP through the Python loop."""


def _market(n_assets=8, n_bars=500, seed=4):
    market = synthetic_market(n_assets=n_assets, n_bars=n_bars, seed=seed)
    arrays = {k: v.copy() for k, v in market.arrays.items()}
    for v in arrays.values():
        v[:120, 2] = np.nan  # late listing
        v[300:, 5] = np.nan  # delisting
        v[200:204, 6] = np.nan  # a gap
    close = arrays["close"]
    close[250:320, 7] = close[249, 7]  # a constant price: zero variance for a while
    close[260:330, 3] = close[259, 3]
    return replace(market, arrays=arrays)


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.bars, b.bars)
    np.testing.assert_array_equal(a.universe, b.universe)
    assert a.weights.tobytes() == b.weights.tobytes()
    assert a.methods == b.methods
    assert a.notes == b.notes
    assert a.budgets == b.budgets
    assert a.last_extras.keys() == b.last_extras.keys()
    for key, value in a.last_extras.items():
        np.testing.assert_array_equal(value, b.last_extras[key])


CONSTRAINTS = [
    Constraints(),
    Constraints(0.0, 0.3),
    Constraints(0.02, 0.2),
    Constraints(0.0, 0.12),  # caps that cannot fill small universes: budget < 1
    Constraints(0.0, [0.5, 0.1, 0.3, 0.2, 0.25, 0.15, 0.4, 0.05]),
    Constraints(0.1, 1.0),
]


@pytest.mark.parametrize("constraints", CONSTRAINTS)
@pytest.mark.parametrize(
    ("fast", "slow"),
    [(EqualWeight, PyEqualWeight), (InverseVolatility, PyInverseVolatility), (HRPStrategy, PyHRP)],
)
def test_compiled_loop_equals_the_python_loop(fast, slow, constraints):
    market = _market()
    close = market.values("close")
    bars = np.arange(30, market.n_bars, 3)
    args = (30, constraints, market.symbols)
    ours = walk_forward(close, bars, fast(lookback_days=30), *args)
    oracle = walk_forward(close, bars, slow(lookback_days=30), *args)
    _same(ours, oracle)
    assert ours.weights.sum() > 0


def test_hrp_with_another_linkage_or_covariance_takes_the_python_loop():
    close = _market().values("close")
    bars = np.arange(30, 400, 9)
    for params in ({"linkage": "ward"}, {"covariance": "ewma"}):
        args = (30, Constraints(), [f"A{j}" for j in range(8)])
        ours = walk_forward(close, bars, HRPStrategy(**params), *args)
        _same(ours, walk_forward(close, bars, PyHRP(**params), *args))


@pytest.mark.parametrize("constraints", [Constraints(0.0, 0.2), Constraints(0.0, 0.05)])
def test_compiled_hrp_runs_on_the_real_daily_pairs(daily_market, monkeypatch, constraints):
    """Every monthly decision of the 26 real pairs in the compiled loop (the Python loop is not
    entered), bit for bit the Python loop's, the last decision's linkage and covariance included;
    caps of 5% leave cash in small universes (budget < 1)."""
    import backtest.walkforward as wf

    close = daily_market.values("close")
    bars = np.arange(90, daily_market.n_bars, 30)
    args = (90, constraints, daily_market.symbols)
    python_loop = wf._decide_loop
    monkeypatch.setattr(wf, "_decide_loop", None)  # calling it would fail
    ours = walk_forward(close, bars, HRPStrategy(lookback_days=90), *args)
    monkeypatch.setattr(wf, "_decide_loop", python_loop)
    oracle = walk_forward(close, bars, PyHRP(lookback_days=90), *args)
    _same(ours, oracle)
    assert {"linkage", "order", "covariance"} <= set(ours.last_extras)


@pytest.mark.parametrize(
    ("fast", "slow"), [(InverseVolatility, PyInverseVolatility), (HRPStrategy, PyHRP)]
)
def test_compiled_loop_covers_the_zero_variance_notes(fast, slow):
    """A constant price: inverse volatility notes it in the kernel; HRP's repair sends the whole
    walk-forward through the Python loop. The same decisions and notes either way."""
    market = _market()
    close = market.values("close")
    bars = np.arange(290, 330)
    ours = walk_forward(close, bars, fast(), 30, Constraints(), market.symbols)
    oracle = walk_forward(close, bars, slow(), 30, Constraints(), market.symbols)
    _same(ours, oracle)
    assert any("zero-variance" in note for notes in ours.notes for note in notes)


def test_compiled_loop_records_empty_universes_as_cash():
    close = _market().values("close")
    close = close.copy()
    close[100:140] = np.nan
    bars = np.arange(120, 200, 5)
    ours = walk_forward(close, bars, EqualWeight(), 10, Constraints(), [f"A{j}" for j in range(8)])
    oracle = walk_forward(
        close, bars, PyEqualWeight(), 10, Constraints(), [f"A{j}" for j in range(8)]
    )
    _same(ours, oracle)
    assert ours.methods[0] == "cash"


def test_a_breach_in_the_kernel_is_reported_not_written():
    returns = np.zeros((40, 2))
    tables = dict(
        members=np.array([[0, 1]]),
        n_members=np.array([2]),
        alloc_lo=np.zeros((1, 2)),
        alloc_hi=np.ones((1, 2)),
        lo=np.zeros((1, 2)),
        hi=np.full((1, 2), 0.1),  # real caps below the allocator's 50%
        budget=np.ones(1),
    )
    weights, codes = np.zeros((1, 2)), np.zeros(1, dtype=np.int64)
    dk.decide_baseline_nb(
        returns, 30, np.array([35]), np.zeros(1, dtype=np.int64), dk.UniverseTables(**tables),
        dk.EQUAL_WEIGHT, weights, codes, np.zeros(1, dtype=np.int64), np.zeros(2),
    )  # fmt: skip
    assert codes[0] == dk.BAIL and not weights.any()


def test_a_bail_out_reruns_the_python_loop(monkeypatch):
    market = _market()
    close = market.values("close")
    bars = np.arange(30, 400, 7)
    oracle = walk_forward(close, bars, PyEqualWeight(), 30, Constraints(0, 0.3), market.symbols)

    def bails(*args):
        args[-3][:] = dk.BAIL

    monkeypatch.setattr(dk, "decide_baseline_nb", bails)
    ours = walk_forward(close, bars, EqualWeight(), 30, Constraints(0, 0.3), market.symbols)
    _same(ours, oracle)


def test_a_user_limit_breach_stops_the_run():
    close = _market().values("close")
    with pytest.raises(LimitError, match="above its max_weight"):
        walk_forward(
            close, np.arange(40, 60), _Breaking(), 30, Constraints(0.0, 0.5), list("ABCDEFGH")
        )


@dataclass
class _Breaking(EqualWeight):
    def _allocate(self, returns, constraints, previous):
        return Allocation(np.full(returns.shape[1], 0.9), "equal_weight")


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 63, 128, 129, 300, 1000])
def test_pairwise_sum_is_numpys(n):
    a = np.random.default_rng(n).lognormal(0, 3, n)
    assert pairwise_sum_nb(a) == a.sum()
    assert pairwise_sum_nb(a[1:]) == a[1:].sum()


@pytest.mark.parametrize("n_members", [1, 2, 5, 40])
@pytest.mark.parametrize("n_obs", [2, 9, 720])
def test_column_std_is_numpys(n_members, n_obs):
    rng = np.random.default_rng(n_members * n_obs)
    returns = rng.normal(0, 0.02, (n_obs + 7, 50))
    members = np.sort(rng.choice(50, n_members, replace=False)).astype(np.int64)
    out = np.empty(n_members)
    dk.column_std_nb(returns, 3, n_obs, members, out)
    expected = returns[3 : 3 + n_obs].take(members, axis=1).std(axis=0, ddof=1)  # C order
    assert out.tobytes() == expected.tobytes()


@pytest.mark.parametrize("seed", range(20))
def test_project_to_bounds_twin_is_bit_identical(seed):
    from strategies.base import project_to_bounds

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    lo = rng.uniform(0, 0.5 / n, n) * rng.integers(0, 2, n)
    hi = np.maximum(lo, rng.uniform(0.5 / n, 3 / n, n))
    weights = rng.dirichlet(np.full(n, 0.3))
    w = weights.copy()
    dk.project_to_bounds_nb(w, lo, hi, np.empty(n))
    assert w.tobytes() == project_to_bounds(weights, lo, hi).tobytes()


@pytest.mark.parametrize(
    "allocator",
    [
        EqualWeight(),
        InverseVolatility(),
        RiskParity(),
        HRPStrategy(),
        MPTStrategy(periods_per_year=365),
    ],
    ids=lambda a: a.name,
)
def test_allocate_array_equals_allocate_detailed(allocator):
    returns = np.random.default_rng(3).normal(0.001, 0.02, (60, 6))
    cons = Constraints(0.0, 0.4)
    a = allocator.allocate_array(returns, cons, None)
    b = allocator.allocate_detailed(returns, cons)
    assert a.weights.tobytes() == b.weights.tobytes()
    assert (a.method, a.notes) == (b.method, b.notes)


def test_the_panel_windows_are_the_window_rule():
    market = _market()
    close = market.values("close")
    panel = returns_panel(close, 30)
    assert panel.clean and not panel.returns.flags.writeable
    bars = np.arange(30, 500)
    np.testing.assert_array_equal(panel.universe(bars), window_validity(close, 30)[bars])
    with np.errstate(invalid="ignore"):
        assert panel.returns.tobytes() == (close[1:] / close[:-1] - 1.0).tobytes()
    for t in (30, 130, 299, 499):
        members = np.flatnonzero(panel.universe(np.array([t]))[0])
        window = panel.returns[t - 30 : t][:, members]
        assert window.tobytes() == window_returns(close, t, 30, members).tobytes()


@dataclass
class ProtocolOnly:
    """A user's allocator: the protocol's methods only, no BaseAllocator."""

    lookback_days: float = 30
    name: str = "mine"

    def allocate(self, returns, constraints):
        return self.allocate_detailed(returns, constraints).weights

    def allocate_detailed(self, returns, constraints, previous=None):
        assert returns.ndim == 2 and np.isfinite(returns).all()
        return Allocation(np.full(returns.shape[1], 1.0 / returns.shape[1]), "mine")


def test_a_protocol_allocator_still_decides():
    market = _market()
    close = market.values("close")
    bars = np.arange(30, 400, 10)
    mine = walk_forward(close, bars, ProtocolOnly(), 30, Constraints(), market.symbols)
    ew = walk_forward(close, bars, EqualWeight(), 30, Constraints(), market.symbols)
    np.testing.assert_array_equal(mine.weights, ew.weights)
    assert set(mine.methods) == {"mine"}


def test_a_zero_close_is_checked_by_the_validating_entry_point():
    close = _market().values("close").copy()
    close[100, 1] = 0.0  # a return of -100%, then inf: the allocator must not see it unchecked
    panel = returns_panel(close, 30)
    assert not panel.clean
    decisions = walk_forward(
        close, np.arange(90, 140, 5), PyEqualWeight(), 30, Constraints(), list("ABCDEFGH")
    )
    assert "previous" in decisions.methods
    assert any("must be > -1" in note or "inf" in note for n in decisions.notes for note in n)


@dataclass
class Layout:
    """Records the memory layout and entry point of each window it is given."""

    lookback_days: float = 30
    seen: list = None  # type: ignore[assignment]

    def allocate_detailed(self, returns, constraints, previous=None):
        self.seen = [*(self.seen or []), returns.flags.c_contiguous]
        return Allocation(np.full(returns.shape[1], 1.0 / returns.shape[1]), "mine")


def test_the_protocol_gets_the_windows_it_always_got_and_built_ins_c_order(monkeypatch):
    market = _market()
    close = market.values("close")
    bars = np.array([60, 200])  # asset 2 lists at bar 120 and asset 6 has a gap at 200-203:
    members = np.flatnonzero(returns_panel(close, 30).universe(bars)[0])  # partial universes
    assert members.size < close.shape[1]
    layout = Layout()
    walk_forward(close, bars, layout, 30, Constraints(), market.symbols)
    assert layout.seen[0] == window_returns(close, 60, 30, members).flags.c_contiguous
    seen = []
    original = PyInverseVolatility._allocate

    def spy(self, returns, constraints, previous):
        seen.append(returns.flags.c_contiguous)
        return original(self, returns, constraints, previous)

    monkeypatch.setattr(PyInverseVolatility, "_allocate", spy)
    walk_forward(close, bars, PyInverseVolatility(), 30, Constraints(), market.symbols)
    assert seen == [True, True]


# ------------------------------------------------------------------ what a review of the fast path found
CLOSE = np.cumprod(1 + np.random.default_rng(0).normal(0, 0.02, (40, 3)), axis=0)


@dataclass
class Tilted(HRPStrategy):
    """A user's tweak of a built-in through the public method."""

    def allocate_detailed(self, returns, constraints=None, previous=None, **kw):
        base = super().allocate_detailed(returns, constraints, previous, **kw)
        w = np.zeros_like(base.weights)
        w[0] = 1.0
        return Allocation(w, "tilted", ("user override",))


class Centring:
    """A protocol allocator that works in place on its input and takes `previous` by keyword."""

    name, lookback_days = "centring", 10

    def allocate(self, returns, constraints):
        return self.allocate_detailed(returns, constraints).weights

    def allocate_detailed(self, returns, constraints, *, previous=None):
        returns = np.asarray(returns)
        returns -= returns.mean(axis=0)
        return Allocation(np.full(returns.shape[1], 1 / returns.shape[1]), "centring")


def test_a_subclass_that_overrides_allocate_detailed_is_called_through_it():
    d = walk_forward(CLOSE, np.arange(10, 40, 10), Tilted(), 10, Constraints(), list("ABC"))
    assert d.methods == ["tilted"] * 3 and d.weights[0].tolist() == [1.0, 0.0, 0.0]


def test_a_protocol_allocator_gets_previous_by_keyword_and_a_window_of_its_own():
    from backtest.walkforward import SharedWork

    shared = SharedWork()
    bars = np.arange(10, 40, 5)
    walk_forward(CLOSE, bars, HRPStrategy(), 10, Constraints(), list("ABC"), shared=shared)
    again = SharedWork(windows=shared.windows)  # read-only views of the panel from the built-in
    d = walk_forward(CLOSE, bars, Centring(), 10, Constraints(), list("ABC"), shared=again)
    assert d.methods == ["centring"] * bars.size and not any(d.notes)


def test_max_sharpe_and_min_volatility_do_not_depend_on_the_previous_weights():
    returns = np.random.default_rng(3).normal(0.001, 0.02, (60, 4))
    returns[:, 1] = returns[:, 0] + 1e-6 * np.random.default_rng(4).normal(size=60)  # collinear
    for objective in ("min_volatility", "max_sharpe"):
        s = MPTStrategy(objective=objective, periods_per_year=365)
        cold = s.allocate_detailed(returns, Constraints(max_weight=0.6)).weights
        for prev in ([0, 0.2, 0.3, 0.5], [0.2, 0, 0.3, 0.5]):
            warm = s.allocate_detailed(
                returns, Constraints(max_weight=0.6), previous=np.array(prev)
            )
            assert warm.weights.tolist() == cold.tolist()


def drifted_twin(close, weights, start, end):
    """The book drifted by its definition (NumPy): each weight times its price relative (1 where a
    close is missing), over the grown book plus the cash."""
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = close[end] / close[start]
    grown = weights * np.where(np.isfinite(relative), relative, 1.0)
    value = grown.sum() + (1.0 - weights.sum())
    return grown / value if value > 0 else weights


def test_drifted_book_equals_its_twin():
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 30))
        close = rng.lognormal(0.0, 0.3, size=(2, n))
        close[rng.random((2, n)) < 0.1] = np.nan
        close[rng.random((2, n)) < 0.03] = 0.0
        weights = rng.dirichlet(np.ones(n)) * rng.choice([1.0, 0.7, 0.0])
        got = dk.drifted_nb(close, weights, 0, 1)
        np.testing.assert_allclose(got, drifted_twin(close, weights, 0, 1), rtol=1e-14, atol=0)
        assert got is not weights
