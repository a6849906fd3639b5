"""Walk-forward decisions: at each decision bar, call the allocator on the trailing window only.

At decision bar ``t`` the allocator sees the simple returns of bars ``t-L+1 .. t`` (computed from the
closes of bars ``t-L .. t``) of the assets with a complete window there (the point-in-time
universe); every other asset gets weight 0. No array row after ``t`` is read, by construction: the
window is sliced from ``close[: t + 1]``.

The user's limits are promises: the allocator solves under the limits of that universe
(:func:`strategies.universe_limits`: per-asset bounds and groups restricted to it, and a budget
below 1 with the rest in cash when its caps cannot fill the book), and every target is checked
against them (:meth:`strategies.UniverseLimits.apply`); a breach stops the run with
:class:`strategies.LimitError`, floors that need more than the book with ``ConstraintError``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strategies import Allocation, Allocator, Constraints, UniverseLimits, universe_limits
from strategies.errors import ConstraintError, NoFreedomWarning

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


def window_validity(close: np.ndarray, lookback: int) -> np.ndarray:
    """Bool (T, N): the closes of bars ``t-L .. t`` are all finite (False for ``t < L``)."""
    missing = np.cumsum(~np.isfinite(close), axis=0)
    padded = np.vstack([np.zeros((1, close.shape[1]), dtype=missing.dtype), missing])
    out = np.zeros(close.shape, dtype=bool)
    t = np.arange(lookback, close.shape[0])
    # missing in rows t-L..t = padded[t+1] - padded[t-L]
    out[lookback:] = (padded[t + 1] - padded[t - lookback]) == 0
    return out


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


def window_returns(
    close: np.ndarray,
    t: int,
    lookback: int,
    members: np.ndarray,
    shared: SharedWork | None = None,
) -> np.ndarray:
    """Simple returns of bars ``t-L+1 .. t`` of the assets ``members`` (from the closes of bars
    ``t-L .. t``): what the allocator sees at decision bar ``t``."""
    if shared is not None and t in shared.windows:
        return shared.windows[t]
    window = close[t - lookback : t + 1, members]
    returns = window[1:] / window[:-1] - 1.0
    if shared is not None:
        shared.windows[t] = returns
    return returns


def _used_previous(allocator: Allocator, outcome: Any) -> bool:
    if getattr(allocator, "uses_previous", False):
        return True
    if not isinstance(outcome, Allocation):
        return False
    return "previous" in outcome.method or any("previous" in note for note in outcome.notes)


def _allocate(
    allocator: Allocator,
    returns: np.ndarray,
    constraints: Constraints,
    previous: np.ndarray,
    t: int,
    shared: SharedWork | None,
) -> Allocation:
    """``allocator.allocate_detailed``, through the shared memo when one is given."""
    if shared is None:
        return allocator.allocate_detailed(returns, constraints, previous=previous)
    hit = shared.allocations.get(t)
    if hit is not None and (
        not _used_previous(allocator, hit[0]) or np.array_equal(hit[1], previous)
    ):
        outcome = hit[0]
    else:
        try:
            outcome = allocator.allocate_detailed(returns, constraints, previous=previous)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            outcome = exc
        shared.allocations[t] = (outcome, previous.copy())
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _limits(
    constraints: Constraints,
    members: np.ndarray,
    n_assets: int,
    symbols: Sequence[str],
    shared: SharedWork | None,
    invest: float,
) -> UniverseLimits:
    """The limits of the universe ``members``, memoised by universe in ``shared``."""
    key = members.tobytes()
    if shared is not None and key in shared.limits:
        return shared.limits[key]
    try:
        limits = universe_limits(constraints, members, n_assets, symbols, invest=invest)
    except ConstraintError as exc:
        names = ", ".join(symbols[int(j)] for j in members[:5]) + (
            ", ..." if members.size > 5 else ""
        )
        raise ConstraintError(f"{exc} (universe {names})") from None
    if shared is not None:
        shared.limits[key] = limits
    return limits


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
) -> Decisions:
    """Target weights at each decision bar (see the module docstring for the timing rule).

    Parameters
    ----------
    close : ndarray of shape (n_bars, n_assets)
    decision_bars : ndarray of int, shape (n_decisions,)
        Bars at whose close the allocator is called; each must be >= ``lookback``.
    allocator : Allocator
        Called as ``allocator.allocate_detailed(returns, constraints, previous=...)``.
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
    """
    n_bars, n = close.shape
    bars = np.asarray(decision_bars, dtype=np.int64)
    if bars.size and (bars.min() < lookback or bars.max() >= n_bars):
        raise ValueError(
            f"decision bars must lie in [{lookback}, {n_bars}); got {bars.min()}..{bars.max()}"
        )
    valid = window_validity(close, lookback)
    weights = np.zeros((bars.size, n))
    universe = valid[bars] if bars.size else np.zeros((0, n), dtype=bool)
    out = Decisions(bars=bars, weights=weights, universe=universe)
    previous = np.zeros(n) if previous is None else np.asarray(previous, dtype=np.float64)
    for k, t in enumerate(bars):
        members = np.flatnonzero(universe[k])
        if members.size == 0:
            out.methods.append("cash")
            out.notes.append(("no asset has a full lookback window: all cash",))
            out.budgets.append(0.0)
            previous = weights[k]
            continue
        returns = window_returns(close, int(t), lookback, members, shared)
        limits = _limits(constraints, members, n, symbols, shared, invest)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NoFreedomWarning)
                allocation: Allocation = _allocate(
                    allocator,
                    returns,
                    limits.constraints,
                    previous[members] / limits.budget,
                    int(t),
                    shared,
                )
            w = np.asarray(allocation.weights, dtype=np.float64)
            method, notes = allocation.method, tuple(allocation.notes)
            if k == bars.size - 1:
                # what the reports need to draw the last decision (frontier, dendrogram)
                out.last_extras = {
                    **allocation.extras,
                    "labels": [symbols[int(j)] for j in members],
                    "weights": w * limits.budget,
                    "decision_time_bar": int(t),
                }
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            log.warning("allocator failed at bar %d (%s); keeping the previous weights", t, exc)
            w = previous[members] / limits.budget
            method, notes = "previous", (f"allocator error: {exc}; previous weights kept",)
        if not np.all(np.isfinite(w)):
            w, method = previous[members] / limits.budget, "previous"
            notes = (*notes, "allocator returned non-finite weights; previous weights kept")
        where = f"at decision bar {int(t)} ({getattr(allocator, 'name', 'allocator')}, {method}): "
        weights[k, members] = limits.apply(w, [symbols[int(j)] for j in members], where)
        notes = (*limits.notes, *notes)
        out.methods.append(method)
        out.notes.append(notes)
        out.budgets.append(limits.budget)
        previous = weights[k]
        if progress is not None:
            progress(k)
    return out
