"""Walk-forward decisions: at each decision bar, call the allocator on the trailing window only.

At decision bar ``t`` the allocator sees the simple returns of bars ``t-L+1 .. t`` (computed from the
closes of bars ``t-L .. t``) of the assets with a complete window there (the point-in-time
universe); every other asset gets weight 0. No array row after ``t`` is read, by construction: the
window is sliced from ``close[: t + 1]``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strategies import Allocation, Constraints
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


def _relaxed_constraints(constraints: Constraints, n: int) -> tuple[Constraints, float, str | None]:
    """Bounds that a universe of ``n`` assets can satisfy, the investable share, and a note."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoFreedomWarning)
            constraints.bounds(n)
        return constraints, 1.0, None
    except ConstraintError:
        pass
    lo = (
        np.broadcast_to(np.asarray(constraints.min_weight, dtype=float), (n,))
        if np.ndim(constraints.min_weight) == 0
        else None
    )
    hi_total = (
        float(np.sum(np.broadcast_to(np.asarray(constraints.max_weight, dtype=float), (n,))))
        if np.ndim(constraints.max_weight) == 0
        else 1.0
    )
    if lo is not None and lo.sum() > 1:
        return (
            Constraints(0.0, constraints.max_weight),
            1.0,
            (
                f"universe of {n} assets cannot hold min_weight={constraints.min_weight:g} each: floor dropped"
            ),
        )
    if hi_total < 1:
        return (
            Constraints(0.0, 1.0),
            hi_total,
            (
                f"universe of {n} assets at max_weight={constraints.max_weight:g} each: "
                f"{1 - hi_total:.0%} held in cash"
            ),
        )
    return (
        Constraints(),
        1.0,
        "constraints infeasible for this universe: unconstrained weights used",
    )


@dataclass
class SharedWork:
    """Work that walk-forwards over the same closes and lookback can share (parameter sweeps).

    ``windows`` maps a decision bar to the universe's returns window there; it depends only on the
    closes and the lookback, so one dict may serve every allocator and constraint set. ``allocations``
    maps a decision bar to ``(allocation or exception, previous weights it was computed with)`` and
    ``relaxed`` a universe size to the bounds used for it; both are valid for one allocator and one
    constraint set, and are reused across schedules and cost models.
    An allocation that consulted the previous weights (the ``"previous"`` fallback, or an allocator
    with ``uses_previous = True``) is reused only for the same previous weights. Allocators must not
    modify the returns they are given (the allocator protocol already asks for pure functions).
    """

    windows: dict[int, np.ndarray] = field(default_factory=dict)
    allocations: dict[int, tuple[Any, np.ndarray]] = field(default_factory=dict)
    relaxed: dict[int, tuple[Constraints, float, str | None]] = field(default_factory=dict)


def _window_returns(
    close: np.ndarray, t: int, lookback: int, members: np.ndarray, shared: SharedWork | None
) -> np.ndarray:
    if shared is not None and t in shared.windows:
        return shared.windows[t]
    window = close[t - lookback : t + 1, members]
    returns = window[1:] / window[:-1] - 1.0
    if shared is not None:
        shared.windows[t] = returns
    return returns


def _used_previous(allocator: Any, outcome: Any) -> bool:
    if getattr(allocator, "uses_previous", False):
        return True
    if not isinstance(outcome, Allocation):
        return False
    return "previous" in outcome.method or any("previous" in note for note in outcome.notes)


def _allocate(
    allocator: Any,
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


def walk_forward(
    close: np.ndarray,
    decision_bars: np.ndarray,
    allocator: Any,
    lookback: int,
    constraints: Constraints,
    symbols: Sequence[str],
    progress: Callable[[int], None] | None = None,
    *,
    shared: SharedWork | None = None,
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
    previous = np.zeros(n)
    for k, t in enumerate(bars):
        members = np.flatnonzero(universe[k])
        if members.size == 0:
            out.methods.append("cash")
            out.notes.append(("no asset has a full lookback window: all cash",))
            previous = weights[k]
            continue
        returns = _window_returns(close, int(t), lookback, members, shared)
        if shared is None:
            cons, investable, relax_note = _relaxed_constraints(constraints, members.size)
        else:
            if members.size not in shared.relaxed:
                shared.relaxed[members.size] = _relaxed_constraints(constraints, members.size)
            cons, investable, relax_note = shared.relaxed[members.size]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NoFreedomWarning)
                allocation: Allocation = _allocate(
                    allocator, returns, cons, previous[members], int(t), shared
                )
            w = np.asarray(allocation.weights, dtype=np.float64) * investable
            method, notes = allocation.method, tuple(allocation.notes)
            if k == bars.size - 1:
                # what the reports need to draw the last decision (frontier, dendrogram)
                out.last_extras = {
                    **allocation.extras,
                    "labels": [symbols[int(j)] for j in members],
                    "weights": np.asarray(allocation.weights, dtype=np.float64),
                    "decision_time_bar": int(t),
                }
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            log.warning("allocator failed at bar %d (%s); keeping the previous weights", t, exc)
            w = previous[members]
            method, notes = "previous", (f"allocator error: {exc}; previous weights kept",)
        if not np.all(np.isfinite(w)) or w.sum() > 1 + 1e-9 or (w < -1e-12).any():
            w, method = previous[members], "previous"
            notes = (*notes, "allocator returned invalid weights; previous weights kept")
        weights[k, members] = np.clip(w, 0.0, None)
        if relax_note:
            notes = (relax_note, *notes)
        out.methods.append(method)
        out.notes.append(notes)
        previous = weights[k]
        if progress is not None:
            progress(k)
    return out
