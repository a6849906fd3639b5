"""The user's weight limits as they apply to one universe, and the promise that they hold.

A walk-forward (or the live analyzer) allocates over the assets that have a full window at the
decision bar, a subset of the configured ones. :func:`universe_limits` restricts the constraints to
that subset (per-asset bounds and ``A`` columns picked, groups re-indexed) and works out the share
of the book they let it hold:

* the bounds can fill the book (``sum(lo) <= 1 <= max sum(w)``): the allocator solves the usual
  problem, budget 1;
* they cannot (``n * max_weight < 1``, a group cap over most of the universe): the allocator solves
  the **budget < 1** problem ``sum(w) = B`` with ``B`` the largest share the limits allow, and the
  rest is held in cash. It is solved by scaling: the allocator gets the bounds ``lo / B``,
  ``hi / B`` and group limits ``/ B`` (a full-budget problem) and its weights are multiplied by
  ``B``. Every allocator's objective is scale-invariant in this sense (the Sharpe ratio and the
  risk contributions of ``B * v`` are those of ``v``), so the answer is the allocator's optimum
  under the real limits. With box bounds only, ``B = sum(hi)`` and the only such portfolio holds
  every asset at its cap;
* floors that need more than the whole book (``sum(lo) > 1``), or limits that admit no portfolio
  at all, raise :class:`~strategies.errors.ConstraintError`: the run stops, nothing is relaxed.

:meth:`UniverseLimits.apply` turns the allocator's answer into target weights and checks them:
a weight outside its bounds or a group outside its limits by more than round-off raises
:class:`~strategies.errors.LimitError`; round-off is clipped, so ``max(w) <= max_weight`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from strategies.base import Constraints
from strategies.errors import ConstraintError, LimitError

#: Largest breach of a limit accepted as solver round-off (then clipped away).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class UniverseLimits:
    """Limits of one universe.

    Attributes
    ----------
    constraints : Constraints
        What the allocator is given: the limits scaled to a full book (see the module docstring).
    budget : float
        Share of the book the limits let the universe hold (1 unless they cannot fill it).
    lo, hi : ndarray of shape (n_members,)
        The real per-asset bounds.
    groups : dict of str to (list of int, float, float)
        The real group limits ``(positions in the universe, min_total, max_total)``.
    A, b : ndarray or None
        The real extra limits ``A @ w <= b`` (columns of the universe).
    notes : tuple of str
        What the user should know (cash held, groups skipped).
    """

    constraints: Constraints
    budget: float
    lo: np.ndarray
    hi: np.ndarray
    groups: dict[str, tuple[list[int], float, float]]
    A: np.ndarray | None
    b: np.ndarray | None
    notes: tuple[str, ...]

    def apply(self, weights: np.ndarray, symbols: Any = None, where: str = "") -> np.ndarray:
        """Target weights (unscaled, the rest in cash) from the allocator's ``weights``.

        Raises
        ------
        LimitError
            When a weight or a group breaks a limit by more than :data:`TOLERANCE`, or the weights
            are not finite, negative or sum to more than 1.
        """
        target = self.targets(weights)
        if target is not None:
            return target
        w = self.budget * np.asarray(weights, dtype=np.float64)
        breach = self.breach(w, symbols) or "limits breached"
        raise LimitError(f"{where}{breach}" if where else breach)

    def targets(self, weights: np.ndarray) -> np.ndarray | None:
        """What :meth:`apply` returns, or None where it would raise (the engine's hot path: the
        message is built only for a breach)."""
        raw = np.asarray(weights, dtype=np.float64)
        if self.groups or self.A is not None or raw.shape != self.lo.shape or raw.ndim != 1:
            w = self.budget * raw
            return None if self.breach(w) else np.clip(w, self.lo, self.hi)
        out = np.empty(raw.shape[0])
        return out if box_targets_nb(raw, self.budget, self.lo, self.hi, out) else None

    def breach(self, w: np.ndarray, symbols: Any = None) -> str | None:
        """The first limit ``w`` breaks beyond round-off, as a sentence, or None."""
        if w.shape != self.lo.shape or not np.all(np.isfinite(w)):
            return f"target weights must be {self.lo.shape[0]} finite numbers; got {w!r}"

        def name(j: int) -> str:
            return str(symbols[j]) if symbols is not None else f"asset {j}"

        over = w - self.hi
        if over.max(initial=-np.inf) > TOLERANCE:
            j = int(np.argmax(over))
            return f"{name(j)} would hold {w[j]:.6g} above its max_weight {self.hi[j]:.6g}"
        under = self.lo - w
        if under.max(initial=-np.inf) > TOLERANCE:
            j = int(np.argmax(under))
            return f"{name(j)} would hold {w[j]:.6g} below its min_weight {self.lo[j]:.6g}"
        if w.sum() > 1 + TOLERANCE:
            return f"target weights sum to {w.sum():.6g} > 1 (no leverage)"
        for group, (idx, gmin, gmax) in self.groups.items():
            total = float(w[idx].sum())
            if total > gmax + TOLERANCE or total < gmin - TOLERANCE:
                return f"group {group!r} would hold {total:.6g} outside its limits [{gmin:g}, {gmax:g}]"
        if self.A is not None and self.b is not None:
            excess = self.A @ w - self.b
            k = int(np.argmax(excess))
            if excess[k] > TOLERANCE:
                return f"row {k} of `A @ w <= b` broken: {self.A[k] @ w:.6g} > {self.b[k]:.6g}"
        return None


@nb.njit(cache=True)
def box_targets_nb(
    weights: np.ndarray, budget: float, lo: np.ndarray, hi: np.ndarray, out: np.ndarray
) -> bool:
    """:meth:`UniverseLimits.apply` for box limits, into ``out``: False on a breach.

    ``budget * weights``, checked against ``lo`` and ``hi`` and the no-leverage sum (each to
    :data:`TOLERANCE`), then clipped; the sum is NumPy's pairwise sum, so the result is
    bit-identical to the NumPy expression (``np.clip(budget * w, lo, hi)``). Also called inside
    the compiled decide loop (:mod:`backtest.decide_kernels`).
    """
    m = weights.shape[0]
    for j in range(m):
        x = budget * weights[j]
        out[j] = x
        if not np.isfinite(x) or x - hi[j] > TOLERANCE or lo[j] - x > TOLERANCE:
            return False
    if pairwise_sum_nb(out) > 1 + TOLERANCE:
        return False
    for j in range(m):
        out[j] = min(max(out[j], lo[j]), hi[j])
    return True


@nb.njit(cache=True)
def pairwise_sum_nb(a: np.ndarray) -> float:
    """``a.sum()`` exactly as NumPy sums a contiguous 1-D float64 array (pairwise: halves down to
    blocks of 128 summed with eight accumulators); iterative, since numba's cache cannot load a
    caller of a recursive function."""
    n = a.shape[0]
    if n <= 128:
        return _block_sum_nb(a, 0, n)
    starts = np.empty(128, dtype=np.int64)
    sizes = np.empty(128, dtype=np.int64)
    joins = np.zeros(128, dtype=np.bool_)
    values = np.empty(128)
    top, n_values = 1, 0
    starts[0], sizes[0] = 0, n
    while top > 0:
        top -= 1
        s, m, join = starts[top], sizes[top], joins[top]
        if join:  # both halves summed: left + right
            n_values -= 1
            values[n_values - 1] = values[n_values - 1] + values[n_values]
        elif m <= 128:
            values[n_values] = _block_sum_nb(a, s, m)
            n_values += 1
        else:
            half = m // 2
            half -= half % 8
            joins[top] = True  # revisit after both halves
            starts[top + 1], sizes[top + 1], joins[top + 1] = s + half, m - half, False
            starts[top + 2], sizes[top + 2], joins[top + 2] = s, half, False
            top += 3
    return values[0]


@nb.njit(cache=True)
def _block_sum_nb(a: np.ndarray, start: int, n: int) -> float:
    """NumPy's pairwise sum of at most 128 elements: eight accumulators, then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


def single_portfolio(
    lo: np.ndarray, hi: np.ndarray, G: np.ndarray | None = None, h: np.ndarray | None = None
) -> np.ndarray | None:
    """The only portfolio the bounds allow (one asset, ``sum(lo) = 1`` or ``sum(hi) = 1`` to 1e-9),
    checked against the linear limits ``G w <= h``; None when the bounds leave freedom.

    Raises
    ------
    ConstraintError
        When that portfolio breaks a linear limit (a group) by more than :data:`TOLERANCE`.

    Examples
    --------
    >>> single_portfolio(np.zeros(3), np.array([0.5, 0.3, 0.2]))
    array([0.5, 0.3, 0.2])
    >>> single_portfolio(np.zeros(3), np.array([0.5, 0.3, 0.2]), np.array([[1.0, 1.0, 0.0]]), np.array([0.6]))
    Traceback (most recent call last):
    ...
    strategies.errors.ConstraintError: the bounds leave a single portfolio, [0.5, 0.3, 0.2], and it breaks a group / linear limit: row 0 totals 0.8 > 0.6; relax the bounds or the limit
    """
    if lo.shape[0] == 1:
        fixed = np.ones(1)
    elif abs(lo.sum() - 1.0) <= 1e-9:
        fixed = lo / lo.sum()
    elif abs(hi.sum() - 1.0) <= 1e-9:
        fixed = hi / hi.sum()
    else:
        return None
    if G is not None and h is not None and G.shape[0]:
        excess = G @ fixed - h
        k = int(np.argmax(excess))
        if excess[k] > TOLERANCE:
            raise ConstraintError(
                f"the bounds leave a single portfolio, {[round(float(x), 6) for x in fixed]}, and "
                f"it breaks a group / linear limit: row {k} totals {float(G[k] @ fixed):.6g} > "
                f"{float(h[k]):.6g}; relax the bounds or the limit"
            )
    return fixed


def universe_limits(
    constraints: Constraints,
    members: np.ndarray,
    n_assets: int,
    symbols: Any = None,
    invest: float = 1.0,
) -> UniverseLimits:
    """The limits of the universe ``members`` (indices into ``n_assets`` configured assets).

    Parameters
    ----------
    constraints : Constraints
        The user's constraints over all ``n_assets`` (per-asset bounds and group members index them).
    members : ndarray of int, shape (n_members,)
        The universe at this decision, in increasing order.
    symbols : sequence of str, optional
        Names of all ``n_assets``, for notes and errors.
    invest : float, default 1
        Share of the book the universe may hold at most (``1 - cash_reserve`` live): the budget is
        ``min(invest, largest share the limits allow)`` and the limits apply to the whole book.

    Examples
    --------
    >>> lim = universe_limits(Constraints(0.0, 0.3), np.array([0, 2, 3]), 5)
    >>> round(lim.budget, 12), lim.notes
    (0.9, ('universe of 3 assets at max_weight=0.3 each: every asset at its cap, 10% held in cash',))
    >>> lim.apply(np.full(3, 1 / 3))
    array([0.3, 0.3, 0.3])
    """
    members = np.asarray(members, dtype=np.int64)
    n = members.size
    uniform = _uniform_box(constraints)  # the same bounds for every asset: those of n assets
    lo_all, hi_all = constraints.per_asset(n if uniform else n_assets)
    lo: Any = lo_all if uniform else lo_all[members]  # (Any: Constraints takes them as bounds)
    hi: Any = hi_all if uniform else hi_all[members]
    if constraints.has_linear:
        groups, skipped = _restrict_groups(constraints, members, n_assets, symbols)
        A, b = _restrict_linear(constraints, members, n_assets)
        restricted = Constraints(lo, hi, groups, A, b)
        G, h = restricted.linear(n)
    else:  # bounds only: nothing to restrict
        groups, skipped, A, b = {}, [], None, None
        restricted = None
        G, h = np.zeros((0, n)), np.zeros(0)
    book = "100% of the book" if invest >= 1 else f"the {_percent(invest)} of the book invested"
    if lo.sum() > invest + TOLERANCE:
        raise ConstraintError(
            f"`min_weight` needs {lo.sum():.4g} > {book} for a universe of {n} assets; "
            f"`min_weight` must be <= {invest:g}/{n} = {invest / n:.4g}"
        )
    low, high = _share_range(lo, hi, G, h)
    if low > invest + TOLERANCE:
        raise ConstraintError(
            f"the group minima need {low:.4g} > {book} for a universe of {n} assets; "
            "lower the group `min` totals"
        )
    budget = min(invest, high)
    notes = list(skipped)
    if budget < invest - TOLERANCE:
        notes.append(_cash_note(constraints, n, budget))
    if budget < 1 - TOLERANCE:
        sub = _scaled(lo, hi, groups, A, b, budget)
    else:
        budget = 1.0
        if uniform:
            sub = Constraints(constraints.min_weight, constraints.max_weight)
        else:
            sub = restricted if restricted is not None else Constraints(lo, hi)
    return UniverseLimits(sub, budget, lo, hi, groups, A, b, tuple(notes))


def _restrict_groups(
    constraints: Constraints, members: np.ndarray, n_assets: int, symbols: Any
) -> tuple[dict[str, tuple[list[int], float, float]], list[str]]:
    """Groups re-indexed to positions in ``members``; a group with no member is skipped (noted)."""
    constraints.linear(n_assets)  # validates every group against the configured assets
    position = {int(j): k for k, j in enumerate(members)}
    out: dict[str, tuple[list[int], float, float]] = {}
    skipped: list[str] = []
    for name, (group, gmin, gmax) in constraints.groups.items():
        idx = [position[int(j)] for j in group if int(j) in position]
        if idx:
            out[name] = (idx, float(gmin), float(gmax))
        else:
            skipped.append(f"group {name!r} has no member in this universe: skipped")
    return out, skipped


def _restrict_linear(
    constraints: Constraints, members: np.ndarray, n_assets: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if constraints.A is None:
        return None, None
    A = np.atleast_2d(np.asarray(constraints.A, dtype=np.float64))
    b = np.atleast_1d(np.asarray(constraints.b, dtype=np.float64))
    if A.shape[1] != n_assets:
        Constraints(A=A, b=b).linear(n_assets)  # raises the shape error
    return A[:, members], b


def _share_range(
    lo: np.ndarray, hi: np.ndarray, G: np.ndarray, h: np.ndarray
) -> tuple[float, float]:
    """The smallest and largest ``sum(w)`` over ``lo <= w <= hi, G w <= h``.

    Box bounds alone give ``(sum(lo), sum(hi))``; linear limits need a linear programme (HiGHS).
    """
    if G.shape[0] == 0:
        return float(lo.sum()), float(hi.sum())
    from scipy.optimize import linprog

    bounds = list(zip(lo, hi, strict=True))
    ones = np.ones(lo.size)
    shares = []
    for sign in (1.0, -1.0):
        res = linprog(sign * ones, A_ub=G, b_ub=h, bounds=bounds, method="highs")
        if res.status == 2:
            raise ConstraintError(
                "the weight bounds and group / linear limits admit no portfolio for this universe; "
                "check the group `min`/`max` totals against the bounds"
            )
        if res.status != 0:
            raise ConstraintError(f"could not check the limits' feasibility: {res.message}")
        shares.append(sign * float(res.fun))
    return shares[0], shares[1]


def _scaled(lo, hi, groups, A, b, budget: float) -> Constraints:
    scaled_groups = {
        name: (idx, min(gmin / budget, 1.0), min(gmax / budget, 1.0))
        for name, (idx, gmin, gmax) in groups.items()
    }
    return Constraints(
        np.minimum(lo / budget, 1.0),
        np.minimum(hi / budget, 1.0),
        scaled_groups,
        A,
        None if b is None else b / budget,
        budget=budget,
    )


def _cash_note(constraints: Constraints, n: int, budget: float) -> str:
    cash = _percent(1.0 - budget)
    if _uniform_box(constraints):
        return (
            f"universe of {n} assets at max_weight={float(constraints.max_weight):g} each: "  # type: ignore[arg-type]
            f"every asset at its cap, {cash} held in cash"
        )
    return (
        f"the weight limits let this universe of {n} assets hold {_percent(budget)} of the book: "
        f"allocated under the limits with that budget, {cash} held in cash"
    )


def _uniform_box(constraints: Constraints) -> bool:
    """One scalar min and max for every asset, no linear limits."""
    lo, hi = constraints.min_weight, constraints.max_weight
    return (
        not constraints.has_linear
        and (isinstance(lo, float | int) or np.ndim(lo) == 0)
        and (isinstance(hi, float | int) or np.ndim(hi) == 0)
    )


def _percent(x: float) -> str:
    """``0.1 -> '10%'``, ``0.004 -> '0.4%'``: enough digits to be non-zero and exact-looking."""
    text = f"{100 * x:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"
