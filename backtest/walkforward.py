"""Walk-forward decisions: at each decision bar, call the allocator on the trailing window only.

At decision bar ``t`` the allocator sees the simple returns of bars ``t-L+1 .. t`` (computed from the
closes of bars ``t-L .. t``) of the assets with a complete window there (the point-in-time
universe); every other asset gets weight 0. No array row after ``t`` is read, by construction: the
window is rows ``t-L .. t-1`` of the returns panel (:func:`returns_panel`, row ``i`` from the
closes of bars ``i`` and ``i + 1``).

The user's limits are promises: the allocator solves under the limits of that universe
(:func:`strategies.universe_limits`: per-asset bounds and groups restricted to it, and a budget
below 1 with the rest in cash when its caps cannot fill the book), and every target is checked
against them (:meth:`strategies.UniverseLimits.apply`); a breach stops the run with
:class:`strategies.LimitError`, floors that need more than the book with ``ConstraintError``.

The allocator's ``previous`` is the book it would trade from: the last target drifted with the
closes to this decision bar (:meth:`ReturnsPanel.drifted`; cash is what is left, all cash before
the first decision or the account's weights live). The fills at the next open, the fees and the lots
make the real book differ from it by a few basis points. A fallback to ``"previous"`` therefore holds
the book instead of trading back to the old target, and a cost-aware objective
(``MPTStrategy(objective="max_utility")``) prices its trades from where the book is.

Speed: the returns panel is computed once (in the prepare stage), a window is a view of it when
the universe is every asset (one gather otherwise), the limits are computed once per universe, and
a built-in allocator (:class:`strategies.base.BaseAllocator`) is called through its array entry
point, :meth:`~strategies.base.BaseAllocator.allocate_array`, without per-call validation. Equal
weight and inverse volatility under box limits decide every bar in one numba call
(:mod:`backtest.decide_kernels`), bit-identical to the Python loop. A user's allocator (the
:class:`strategies.Allocator` protocol) is called through ``allocate_detailed``.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from backtest import decide_kernels as dk
from strategies import (
    Allocation,
    Allocator,
    Constraints,
    EqualWeight,
    HRPStrategy,
    InverseVolatility,
    UniverseLimits,
    universe_limits,
)
from strategies.base import BaseAllocator
from strategies.errors import ConstraintError, NoFreedomWarning

if TYPE_CHECKING:
    from backtest.trade_pricing import TradeCosts

log = logging.getLogger(__name__)


@dataclass
class Decisions:
    """Target weights per decision bar and what produced them."""

    bars: np.ndarray  # (K,) decision bar indices
    weights: np.ndarray  # (K, N) target weights, 0 outside the universe
    universe: np.ndarray  # (K, N) bool
    methods: list[str] = field(default_factory=list)
    notes: list[tuple[str, ...]] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)  # share of the book the limits let it invest
    last_extras: dict[str, Any] = field(default_factory=dict)


class ReturnsPanel:
    """The returns of a close panel and the window rule at one lookback, each computed once and
    only when asked for.

    Nothing per bar is stored up front: the universe at the decision bars and the range of the
    closes come from one read of the closes (:func:`~backtest.decide_kernels.full_windows_nb`);
    the validity check from that range, and column by column only when the range does not settle
    it; the returns on first read (an allocator that needs none, equal weight, never pays for
    them).

    Attributes
    ----------
    returns : ndarray of shape (n_bars - 1, n_assets)
        Simple returns, row ``i`` from the closes of bars ``i`` and ``i + 1`` (read-only); the
        window of decision bar ``t`` is ``returns[t - L : t]``.
    lookback : int
    clean : bool
        Every return whose two closes are finite is finite and > -1 (no zero or negative close),
        so a universe's window needs no check; False sends every window through the allocator's
        validating entry point (``allocate_detailed``).
    """

    def __init__(self, close: np.ndarray, lookback: int):
        self._close = np.ascontiguousarray(close, dtype=np.float64)
        self.lookback = lookback
        self._range: tuple[float, float] | None = None  # smallest, largest non-NaN close

    @cached_property
    def returns(self) -> np.ndarray:
        close = self._close
        out = np.empty((max(close.shape[0] - 1, 0), close.shape[1]))
        if close.shape[0] > 1:
            dk.returns_nb(close, out)
        out.flags.writeable = False
        return out

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_bars, n_assets)`` of the closes."""
        return self._close.shape

    def drifted(self, weights: np.ndarray, start: int, end: int) -> np.ndarray:
        """``weights`` held from the close of bar ``start`` to the close of ``end``: each asset's
        weight grown by its price relative, over the book's value (cash is ``1 - sum``; an asset
        without both closes keeps its value, as the simulation values it at its last close)."""
        return dk.drifted_nb(self._close, weights, start, end)

    @cached_property
    def clean(self) -> bool:
        close = self._close
        if close.size == 0:
            return True
        if self._range is None:  # (read with the universe when that came first)
            self._range = (np.fmin.reduce(close, axis=None), np.fmax.reduce(close, axis=None))
        lo, hi = self._range
        # every close > 0 and within 1e15 of each other: no return rounds to -1 or overflows
        # (an infinity or a panel without a close goes column by column)
        if lo > 0.0 and hi < dk.CLOSE_RANGE * lo:
            return True
        return bool(dk.returns_clean_nb(close))

    def universe(self, bars: np.ndarray) -> np.ndarray:
        """Bool (n_decisions, n_assets): the closes of bars ``t-L .. t`` are all finite, at each
        decision bar ``t`` of ``bars`` (increasing, each >= lookback): the point-in-time
        universe."""
        bars = np.ascontiguousarray(bars, dtype=np.int64)
        if bars.size and (bars[0] < self.lookback or bars[-1] >= self.shape[0]):
            raise ValueError(
                f"decision bars must be in [{self.lookback}, {self.shape[0]}); "
                f"got {bars[0]}..{bars[-1]}"
            )
        if bars.size > 1 and np.any(bars[1:] <= bars[:-1]):
            raise ValueError("decision bars must be increasing")
        out = np.empty((bars.size, self.shape[1]), dtype=np.bool_)
        self._range = dk.full_windows_nb(self._close, bars, self.lookback, out)
        return out

    def window(self, t: int, members: np.ndarray) -> np.ndarray:
        """What the allocator sees at decision bar ``t``: the returns of bars ``t-L+1 .. t`` of
        the assets ``members`` (a new, writable array)."""
        return self.returns[t - self.lookback : t].take(members, axis=1)


def returns_panel(close: np.ndarray, lookback: int) -> ReturnsPanel:
    """The returns panel of ``close`` of shape (n_bars, n_assets) at ``lookback``.

    Examples
    --------
    >>> panel = returns_panel(np.array([[1.0, 2.0], [1.1, 2.0], [1.21, np.nan]]), 1)
    >>> panel.returns.round(12).tolist(), panel.universe(np.array([1, 2])).tolist(), panel.clean
    ([[0.1, 0.0], [0.1, nan]], [[True, True], [True, False]], True)
    """
    return ReturnsPanel(close, lookback)


@dataclass
class SharedWork:
    """Work that walk-forwards over the same closes and lookback can share (parameter sweeps).

    ``windows`` maps a decision bar to the universe's returns window there; it depends only on the
    closes and the lookback, so one dict may serve every allocator and constraint set. ``allocations``
    maps a decision bar to ``(allocation or exception, previous weights it was computed with)`` and
    ``limits`` a universe (its member indices as bytes) to its :class:`~strategies.UniverseLimits`;
    both are valid for one allocator and one constraint set, and are reused across schedules and
    cost models.
    An allocation that consulted the previous weights (the ``"previous"`` fallback, or an allocator
    with ``uses_previous = True``) is reused only for the same previous weights. Allocators must not
    modify the returns they are given (the allocator protocol already asks for pure functions).
    """

    windows: dict[int, np.ndarray] = field(default_factory=dict)
    allocations: dict[int, tuple[Any, np.ndarray]] = field(default_factory=dict)
    limits: dict[bytes, UniverseLimits] = field(default_factory=dict)


def _used_previous(allocator: Allocator, outcome: Any) -> bool:
    if getattr(allocator, "uses_previous", False):
        return True
    if not isinstance(outcome, Allocation):
        return False
    return "previous" in outcome.method or any("previous" in note for note in outcome.notes)


def _entry_point(allocator: Allocator, fast: bool) -> Callable[..., Allocation]:
    """``allocate_array`` (no checks) when ``fast``: a built-in allocator on checked windows;
    else the protocol's ``allocate_detailed``."""
    if fast:
        return allocator.allocate_array  # type: ignore[attr-defined]
    return lambda returns, constraints, previous: allocator.allocate_detailed(
        returns, constraints, previous=previous
    )


def _allocate(
    allocator: Allocator,
    call: Callable[..., Allocation],
    returns: np.ndarray,
    constraints: Constraints,
    previous: np.ndarray,
    t: int,
    shared: SharedWork | None,
) -> Allocation:
    """``call(returns, constraints, previous)``, through the shared memo when one is given."""
    if shared is None:
        return call(returns, constraints, previous)
    hit = shared.allocations.get(t)
    if hit is not None and (
        not _used_previous(allocator, hit[0]) or np.array_equal(hit[1], previous)
    ):
        outcome = hit[0]
    else:
        try:
            outcome = call(returns, constraints, previous)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            outcome = exc
        shared.allocations[t] = (outcome, previous.copy())
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@dataclass
class _Universe:
    """One point-in-time universe of a walk-forward: its members and (once computed) its limits
    and the allocator for it (per-asset parameters restricted to the members) with its entry point."""

    members: np.ndarray
    full: bool
    limits: UniverseLimits | None = None
    allocator: Allocator | None = None
    call: Callable[..., Allocation] | None = None

    def names(self, symbols: Sequence[str]) -> list[str]:
        return [symbols[int(j)] for j in self.members]


def _limits(
    constraints: Constraints,
    universe: _Universe,
    n_assets: int,
    symbols: Sequence[str],
    shared: SharedWork | None,
    invest: float,
) -> UniverseLimits:
    """The limits of ``universe``, computed once per walk-forward (and memoised in ``shared``)."""
    if universe.limits is not None:
        return universe.limits
    members = universe.members
    key = members.tobytes()
    if shared is not None and key in shared.limits:
        universe.limits = shared.limits[key]
        return universe.limits
    try:
        limits = universe_limits(constraints, members, n_assets, symbols, invest=invest)
    except ConstraintError as exc:
        names = ", ".join(symbols[int(j)] for j in members[:5]) + (
            ", ..." if members.size > 5 else ""
        )
        raise ConstraintError(f"{exc} (universe {names})") from None
    if shared is not None:
        shared.limits[key] = limits
    universe.limits = limits
    return limits


def _universes(universe: np.ndarray) -> tuple[np.ndarray, list[_Universe | None]]:
    """The distinct universes in order of first use (None for the empty one) and the index of
    each decision's universe in that list."""
    if not universe.shape[0]:
        return np.zeros(0, dtype=np.int64), []
    ids, first = dk.universe_ids_nb(np.ascontiguousarray(universe))
    distinct: list[_Universe | None] = []
    n = universe.shape[1]
    for k in first.tolist():
        members = np.flatnonzero(universe[k])
        distinct.append(_Universe(members, members.size == n) if members.size else None)
    return ids, distinct


def walk_forward(
    close: np.ndarray,
    decision_bars: np.ndarray,
    allocator: Allocator,
    lookback: int,
    constraints: Constraints,
    symbols: Sequence[str],
    progress: Callable[[int], None] | None = None,
    *,
    shared: SharedWork | None = None,
    previous: np.ndarray | None = None,
    invest: float = 1.0,
    panel: ReturnsPanel | None = None,
    trade_costs: TradeCosts | None = None,
) -> Decisions:
    """Target weights at each decision bar (see the module docstring for the timing rule).

    Parameters
    ----------
    close : ndarray of shape (n_bars, n_assets)
    decision_bars : ndarray of int, shape (n_decisions,)
        Bars at whose close the allocator is called; each must be >= ``lookback``.
    allocator : Allocator
        A :class:`~strategies.base.BaseAllocator` is called as
        ``allocator.allocate_array(returns, constraints, previous)`` on clean windows, any other
        as ``allocator.allocate_detailed(returns, constraints, previous=...)``.
    lookback : int
        Window length L in bars (returns), so L + 1 closes.
    shared : SharedWork, optional
        Windows and allocations reused across calls that share ``close`` and ``lookback`` (and, for
        the allocations, the allocator and constraints): parameter sweeps. Results are unchanged.
    previous : ndarray of shape (n_assets,), optional
        Weights held before the first decision (default: all cash; the live analyzer passes the
        account's).
    invest : float
        Share of the book the limits apply to (``1 - cash reserve`` live; 1 in a backtest).
    panel : ReturnsPanel, optional
        :func:`returns_panel` of ``close`` and ``lookback`` (the prepare stage computes it once);
        computed here when omitted.
    trade_costs : TradeCosts, optional
        Trading cost rates per bar and asset (:func:`backtest.pipeline.price_trades`): at each
        decision the allocator gets its members' rates as ``transaction_cost`` (a copy made with
        ``dataclasses.replace`` for that decision only) and the decision their notes.
    """
    n_bars, n = close.shape
    bars = np.asarray(decision_bars, dtype=np.int64)
    if bars.size and (bars.min() < lookback or bars.max() >= n_bars):
        raise ValueError(
            f"decision bars must lie in [{lookback}, {n_bars}); got {bars.min()}..{bars.max()}"
        )
    if panel is None or panel.lookback != lookback or panel.shape != close.shape:
        panel = returns_panel(close, lookback)
    universe = panel.universe(bars) if bars.size else np.zeros((0, n), dtype=bool)
    previous = np.zeros(n) if previous is None else np.asarray(previous, dtype=np.float64)
    uid, distinct = _universes(universe)
    args = (allocator, lookback, constraints, symbols, shared, invest)
    out = _decide_compiled(panel, bars, universe, uid, distinct, *args)
    if out is None:
        per_decision = [distinct[i] for i in uid.tolist()]
        out = _decide_loop(
            panel, bars, universe, per_decision, previous, *args, progress, trade_costs
        )
    elif progress is not None:
        for k, i in enumerate(uid.tolist()):
            if distinct[i] is not None:
                progress(k)
    return out


def _decide_loop(
    panel: ReturnsPanel,
    bars: np.ndarray,
    universe: np.ndarray,
    per_decision: list[_Universe | None],
    previous: np.ndarray,
    allocator: Allocator,
    lookback: int,
    constraints: Constraints,
    symbols: Sequence[str],
    shared: SharedWork | None,
    invest: float,
    progress: Callable[[int], None] | None,
    trade_costs: TradeCosts | None = None,
) -> Decisions:
    """The decisions one by one in Python, any allocator."""
    n = universe.shape[1]
    weights = np.zeros((bars.size, n))
    out = Decisions(bars=bars, weights=weights, universe=universe)
    # the array entry point only where allocate_detailed is the base class's (a subclass that
    # overrides it is called through it, as a user's protocol allocator is)
    fast = (
        panel.clean
        and lookback >= 2  # one return per window: validation names the problem
        and isinstance(allocator, BaseAllocator)
        and type(allocator).allocate_detailed is BaseAllocator.allocate_detailed
    )
    call = _entry_point(allocator, fast)
    returns_all = panel.returns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoFreedomWarning)
        for k, t in enumerate(bars.tolist()):
            u = per_decision[k]
            if u is None:
                out.methods.append("cash")
                out.notes.append(("no asset has a full lookback window: all cash",))
                out.budgets.append(0.0)
                previous = weights[k]
                continue
            members = u.members
            if shared is not None and t in shared.windows:
                returns = shared.windows[t]
                # built-ins read the shared (read-only) window; anything else gets its own copy
                returns = np.ascontiguousarray(returns) if fast else np.array(returns)
            else:
                rows = returns_all[t - lookback : t]
                if fast:  # C-contiguous, as validation made it: a view, or one gather
                    returns = rows if u.full else rows.take(members, axis=1)
                else:  # what the protocol has always been given
                    returns = rows[:, members]
                if shared is not None:
                    shared.windows[t] = returns
            limits = _limits(constraints, u, n, symbols, shared, invest)
            own, own_call = u.allocator, u.call
            if own is None or own_call is None:
                restrict = None if u.full else getattr(allocator, "for_universe", None)
                own = restrict(members, n) if restrict is not None else allocator
                own_call = call if own is allocator else _entry_point(own, fast)
                u.allocator, u.call = own, own_call
            priced: tuple[str, ...] = ()
            if trade_costs is not None:  # this decision's cost rates (impact varies by bar)
                rates, priced = trade_costs.at(t, members)
                own = dataclasses.replace(own, transaction_cost=rates)  # type: ignore[type-var]
                own_call = _entry_point(own, fast)
            try:
                allocation = _allocate(
                    own,
                    own_call,
                    returns,
                    limits.constraints,
                    (previous if u.full else previous[members]) / limits.budget,
                    t,
                    shared,
                )
                w = np.asarray(allocation.weights, dtype=np.float64)
                method, notes = allocation.method, tuple(allocation.notes)
                if k == bars.size - 1:
                    # what the reports need to draw the last decision (frontier, dendrogram)
                    out.last_extras = {
                        **allocation.extras,
                        "labels": u.names(symbols),
                        "weights": w * limits.budget,
                        "decision_time_bar": t,
                    }
                    if trade_costs is not None:  # the net frontier of the last decision
                        out.last_extras["transaction_cost"] = rates
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
                log.warning("allocator failed at bar %d (%s); keeping the previous weights", t, exc)
                w = previous[members] / limits.budget
                method, notes = "previous", (f"allocator error: {exc}; previous weights kept",)
            target = limits.targets(w)  # None: non-finite, or a limit breached
            if target is None and not np.all(np.isfinite(w)):
                w, method = previous[members] / limits.budget, "previous"
                notes = (*notes, "allocator returned non-finite weights; previous weights kept")
                target = limits.targets(w)
            if target is None:
                name = getattr(allocator, "name", "allocator")
                where = f"at decision bar {t} ({name}, {method}): "
                target = limits.apply(w, u.names(symbols), where)
            if u.full:
                weights[k] = target
            else:
                weights[k, members] = target
            out.methods.append(method)
            out.notes.append((*limits.notes, *priced, *notes))
            out.budgets.append(limits.budget)
            previous = (
                panel.drifted(weights[k], t, bars[k + 1]) if k + 1 < bars.size else weights[k]
            )
            if progress is not None:
                progress(k)
    return out


_COMPILED: dict[type, int] = {
    EqualWeight: dk.EQUAL_WEIGHT,
    InverseVolatility: dk.INVERSE_VOLATILITY,
}
_HRP = -2  # HRPStrategy with single linkage and the sample covariance: decide_hrp_nb


def _compiled_code(allocator: Allocator) -> int | None:
    """The compiled loop that decides for ``allocator`` (exact types: a subclass may override
    ``_allocate``), or None."""
    if type(allocator) is HRPStrategy:
        single = allocator.linkage == "single" and allocator.covariance == "sample"
        return _HRP if single else None
    return _COMPILED.get(type(allocator))


def _decide_compiled(
    panel: ReturnsPanel,
    bars: np.ndarray,
    universe: np.ndarray,
    uid: np.ndarray,
    distinct: list[_Universe | None],
    allocator: Allocator,
    lookback: int,
    constraints: Constraints,
    symbols: Sequence[str],
    shared: SharedWork | None,
    invest: float,
) -> Decisions | None:
    """Every decision in one :func:`~backtest.decide_kernels.decide_baseline_nb` or
    :func:`~backtest.decide_kernels.decide_hrp_nb` call, or None when the Python loop must decide
    (another allocator, linear limits, an error or a fallback anywhere: the loop then raises or
    notes it as usual)."""
    code = _compiled_code(allocator)
    if code is None or not panel.clean or not bars.size or lookback < 2:
        return None  # (a one-return window: the Python loop notes the allocator's error)
    n = universe.shape[1]
    size = len(distinct)
    members = np.zeros((size, n), dtype=np.int64)
    n_members = np.zeros(size, dtype=np.int64)
    alloc_lo, alloc_hi = np.zeros((size, n)), np.zeros((size, n))
    lo, hi, budget = np.zeros((size, n)), np.zeros((size, n)), np.zeros(size)
    cash = ("no asset has a full lookback window: all cash",)
    method = allocator.name
    methods = [method] * size
    notes: list[tuple[str, ...]] = [cash] * size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoFreedomWarning)
            for i, u in enumerate(distinct):
                if u is None:
                    methods[i], n_members[i] = "cash", -1
                    continue
                limits = _limits(constraints, u, n, symbols, shared, invest)
                if limits.groups or limits.A is not None or limits.constraints.has_linear:
                    return None
                m = u.members.size
                alloc_lo[i, :m], alloc_hi[i, :m] = limits.constraints.bounds(m)
                members[i, :m], n_members[i] = u.members, m
                lo[i, :m], hi[i, :m], budget[i] = limits.lo, limits.hi, limits.budget
                notes[i] = limits.notes
    except ValueError:
        return None
    weights = np.zeros((bars.size, n))
    codes = np.zeros(bars.size, dtype=np.int64)
    zero_count = np.zeros(bars.size, dtype=np.int64)
    last_raw = np.zeros(n)
    tables = dk.UniverseTables(members, n_members, alloc_lo, alloc_hi, lo, hi, budget)
    if code == _HRP:
        ppy = float(allocator.periods_per_year)  # type: ignore[attr-defined]
        dk.decide_hrp_nb(panel.returns, lookback, bars, uid, tables, ppy, weights, codes)
    else:
        returns = np.empty((0, n)) if code == dk.EQUAL_WEIGHT else panel.returns
        dk.decide_baseline_nb(
            returns, lookback, bars, uid, tables, code, weights, codes, zero_count, last_raw
        )
    if (codes == dk.BAIL).any():
        return None
    ids = uid.tolist()
    out = Decisions(
        bars=bars,
        weights=weights,
        universe=universe,
        methods=list(map(methods.__getitem__, ids)),  # (a comprehension takes twice as long)
        notes=list(map(notes.__getitem__, ids)),
        budgets=budget[uid].tolist(),
    )
    for k in np.flatnonzero(codes == dk.ALL_ZERO_VARIANCE).tolist():
        out.methods[k] = "equal_weight"
        out.notes[k] = (*out.notes[k], "all assets have zero variance: equal weight")
    for k in np.flatnonzero(codes == dk.SOME_ZERO_VARIANCE).tolist():
        note = f"{int(zero_count[k])} zero-variance asset(s) weighted like the least volatile one"
        out.notes[k] = (*out.notes[k], note)
    last = distinct[ids[-1]]
    if last is not None and last.limits is not None:
        raw, extras = last_raw[: last.members.size], {}
        if code == _HRP:  # the reports draw the last decision: its allocation's extras
            t = int(bars[-1])
            window = panel.returns[t - lookback : t].take(last.members, axis=1)
            allocation = allocator.allocate_array(  # type: ignore[attr-defined]
                window, last.limits.constraints, None
            )
            raw, extras = allocation.weights, dict(allocation.extras)
        out.last_extras = {
            **extras,
            "labels": last.names(symbols),
            "weights": raw * last.limits.budget,
            "decision_time_bar": int(bars[-1]),
        }
    return out
