"""The allocator protocol, weight constraints and input validation.

Allocators are pure math on arrays: ``allocate(returns, constraints)`` takes an ``(n_obs, n_assets)``
array of simple returns (NaN-free) and returns a weight vector of shape ``(n_assets,)`` that sums to 1.
:meth:`Allocator.allocate_detailed` also reports which method produced the weights (after fallbacks)
and any notes; the walk-forward engine records these diagnostics in the backtest result. The engine
calls the built-in allocators through :meth:`BaseAllocator.allocate_array`, which skips the checks
its prepare stage has already made once for every window.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from strategies.errors import ConstraintError, InputError, NoFreedomWarning

_TOL = 1e-12


@dataclass(frozen=True)
class Constraints:
    """Long-only weight constraints.

    Parameters
    ----------
    min_weight, max_weight : float or sequence of float
        Bounds on each weight, global (a float) or per asset (a sequence of length ``n_assets``).
    groups : mapping of str to (sequence of int, float, float), optional
        Named groups of asset indices with ``(members, min_total, max_total)``; e.g.
        ``{"layer1": ([0, 1], 0.0, 0.5)}`` keeps at most 50% in assets 0 and 1.
    A, b : array-like, optional
        Extra linear inequality constraints ``A @ w <= b`` (``A`` of shape ``(n_constraints, n_assets)``).
    budget : float
        The share of the book these limits are for (1 unless the real limits cannot fill the book:
        :func:`strategies.limits.universe_limits` then gives the allocator the limits divided by
        the budget, and an objective that is not scale-invariant, max utility, uses it).

    Examples
    --------
    >>> Constraints(min_weight=0.05, max_weight=0.40).bounds(5)
    (array([0.05, 0.05, 0.05, 0.05, 0.05]), array([0.4, 0.4, 0.4, 0.4, 0.4]))
    """

    min_weight: float | Sequence[float] = 0.0
    max_weight: float | Sequence[float] = 1.0
    groups: Mapping[str, tuple[Sequence[int], float, float]] = field(default_factory=dict)
    A: Any = None
    b: Any = None
    budget: float = 1.0

    @classmethod
    def coerce(
        cls, value: Constraints | Mapping[str, Any] | None, symbols: Sequence[str] | None = None
    ) -> Constraints:
        """Accept a :class:`Constraints`, a dict such as ``{'min_weight': 0.05, 'max_weight': 0.4}``
        or None. A dict may name assets by symbol (``bounds``, groups with ``symbols``:
        :func:`strategies.by_symbol.resolve_constraints`), resolved against ``symbols``."""
        if value is None:
            return cls()
        if isinstance(value, Constraints):
            return value
        if isinstance(value, Mapping):
            from strategies.by_symbol import KEYS, is_named, resolve_constraints

            unknown = set(value) - set(KEYS)
            if unknown:
                raise ConstraintError(
                    f"unknown constraint key(s) {sorted(unknown)}; allowed: {', '.join(KEYS)}"
                )
            if is_named(value):
                if symbols is None:
                    raise ConstraintError(
                        "constraints that name symbols (`bounds`, groups with `symbols`) need the "
                        "market's symbols: pass them through run_backtest or the live analyzer"
                    )
                return resolve_constraints(value, symbols)
            return cls(**{k: v for k, v in value.items() if k != "bounds"})  # no budget: internal
        raise ConstraintError(
            f"`constraints` must be a Constraints or a dict; got {type(value).__name__}"
        )

    @property
    def has_linear(self) -> bool:
        """True when group limits or ``A @ w <= b`` constraints are present."""
        return bool(self.groups) or self.A is not None

    def bounds(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-asset ``(lower, upper)`` arrays, validated for feasibility.

        Raises
        ------
        ConstraintError
            When a bound is outside [0, 1], lower > upper, or the bounds cannot sum to 1.
        """
        if isinstance(self.min_weight, float | int) and isinstance(self.max_weight, float | int):
            lo_s, hi_s = float(self.min_weight), float(self.max_weight)
            if 0 <= lo_s <= hi_s <= 1 and n_assets * lo_s < 1 - 1e-9 and n_assets * hi_s > 1 + 1e-9:
                return np.full(n_assets, lo_s), np.full(
                    n_assets, hi_s
                )  # fast path: valid, with freedom
        lo, hi = self.per_asset(n_assets)
        if lo.sum() > 1 + 1e-9:
            raise ConstraintError(
                f"`min_weight` = {_fmt(self.min_weight)} with {n_assets} assets needs {lo.sum():.4g} > 100% of "
                f"the portfolio; `min_weight` must be <= 1/{n_assets} = {1 / n_assets:.4g}"
            )
        if hi.sum() < 1 - 1e-9:
            raise ConstraintError(
                f"`max_weight` = {_fmt(self.max_weight)} with {n_assets} assets leaves "
                f"{(1 - hi.sum()):.0%} unallocatable; `max_weight` must be >= 1/{n_assets} = {1 / n_assets:.4g}"
            )
        if n_assets > 1 and (abs(lo.sum() - 1) <= 1e-9 or abs(hi.sum() - 1) <= 1e-9):
            warnings.warn(
                f"bounds leave a single feasible portfolio (min_weight={_fmt(self.min_weight)}, "
                f"max_weight={_fmt(self.max_weight)}, {n_assets} assets): the optimiser has no freedom",
                NoFreedomWarning,
                stacklevel=3,
            )
        return lo, hi

    def per_asset(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-asset ``(lower, upper)`` arrays, checked to lie in [0, 1] with lower <= upper.

        Unlike :meth:`bounds`, the totals are not checked: a universe whose caps cannot fill the
        book is :func:`strategies.limits.universe_limits`' business.
        """
        lo_s, hi_s = self.min_weight, self.max_weight
        if (
            isinstance(lo_s, float | int)  # the common scalar case, without array checks
            and isinstance(hi_s, float | int)
            and 0 <= lo_s <= hi_s + _TOL
            and hi_s <= 1 + _TOL
        ):
            return np.full(n_assets, float(lo_s)), np.full(n_assets, float(hi_s))
        lo = broadcast_bound(self.min_weight, n_assets, "min_weight")
        hi = broadcast_bound(self.max_weight, n_assets, "max_weight")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ConstraintError(
                f"`min_weight` and `max_weight` must be finite numbers; "
                f"got min_weight={self.min_weight}, max_weight={self.max_weight}"
            )
        if np.any(lo < 0) or np.any(hi > 1 + _TOL):
            raise ConstraintError(
                f"weights are long-only and at most 1: `min_weight` must be >= 0 and `max_weight` <= 1; "
                f"got min_weight={self.min_weight}, max_weight={self.max_weight}"
            )
        if np.any(lo > hi + _TOL):
            raise ConstraintError(
                f"`min_weight` must be <= `max_weight`; got min_weight={self.min_weight} > max_weight={self.max_weight}"
            )
        return lo, hi

    def linear(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
        """All inequality constraints as ``(G, h)`` with ``G @ w <= h`` (groups and ``A``/``b``)."""
        rows: list[np.ndarray] = []
        rhs: list[float] = []
        for name, spec in self.groups.items():
            try:
                members, gmin, gmax = spec
            except (TypeError, ValueError):
                raise ConstraintError(
                    f"group {name!r} must be (members, min_total, max_total); got {spec!r}"
                ) from None
            idx = np.asarray(list(members), dtype=np.int64)
            if idx.size == 0 or idx.min() < 0 or idx.max() >= n_assets:
                raise ConstraintError(
                    f"group {name!r} members must be indices in [0, {n_assets}); got {list(members)}"
                )
            if not 0 <= gmin <= gmax <= 1:
                raise ConstraintError(
                    f"group {name!r} needs 0 <= min_total <= max_total <= 1; got {gmin}, {gmax}"
                )
            row = np.zeros(n_assets)
            row[idx] = 1.0
            rows += [row, -row]
            rhs += [float(gmax), -float(gmin)]
        if self.A is not None:
            A = np.atleast_2d(np.asarray(self.A, dtype=np.float64))
            b = np.atleast_1d(np.asarray(self.b, dtype=np.float64))
            if A.shape[1] != n_assets or b.shape != (A.shape[0],):
                raise ConstraintError(
                    f"`A` must have shape (n_constraints, {n_assets}) and `b` shape (n_constraints,); "
                    f"got A {A.shape}, b {b.shape}"
                )
            rows += list(A)
            rhs += list(b)
        if not rows:
            return np.zeros((0, n_assets)), np.zeros(0)
        return np.vstack(rows), np.asarray(rhs)


def broadcast_bound(value: float | Sequence[float], n_assets: int, name: str) -> np.ndarray:
    """``value`` (a float or a length-``n_assets`` sequence) as a float64 array of shape ``(n_assets,)``."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n_assets, float(arr))
    if arr.shape != (n_assets,):
        raise ConstraintError(
            f"per-asset `{name}` must have length {n_assets}; got {arr.shape[0] if arr.ndim else 0}"
        )
    return arr.copy()


def _fmt(value: float | Sequence[float]) -> str:
    return f"{value:g}" if np.ndim(value) == 0 else "per-asset"


def check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    """Raise ``ValueError("`name` must be one of ...; got 'x' (did you mean 'y'?)")`` for a bad choice."""
    if value in allowed:
        return
    import difflib

    close = difflib.get_close_matches(str(value), list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"`{name}` must be one of {', '.join(map(repr, allowed))}; got {value!r}{hint}"
    )


def check_positive(**values: float) -> None:
    """Raise ``ValueError`` naming each parameter that is not a number > 0."""
    bad = {k: v for k, v in values.items() if not (isinstance(v, int | float) and v > 0)}
    if bad:
        names = ", ".join(f"`{k}`" for k in bad)
        got = ", ".join(f"{k}={v!r}" for k, v in bad.items())
        raise ValueError(f"{names} must be > 0; got {got}")


def validate_returns(returns: np.ndarray, symbols: Sequence[str] | None = None) -> np.ndarray:
    """Check an ``(n_obs, n_assets)`` returns array: 2-D, at least 2 rows, finite, > -100%.

    Returns a C-contiguous float64 array. The error names the first offending asset.
    """
    arr = np.ascontiguousarray(returns, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(
            f"`returns` must be a 2-D array of shape (n_obs, n_assets); got shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise InputError("`returns` has no assets (shape (n_obs, 0))")
    if arr.shape[0] < 2:
        raise InputError(f"`returns` needs at least 2 observations; got {arr.shape[0]}")
    bad = ~np.isfinite(arr)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        name = symbols[j] if symbols is not None else f"asset {j}"
        kind = "NaN" if np.isnan(arr[:, j]).any() else "inf"
        raise InputError(
            f"`returns` contains {kind} for {name} (column {j}, {int(bad[:, j].sum())} cells); "
            "drop the asset or fill its window before allocating"
        )
    if (arr <= -1).any():
        j = int(np.flatnonzero((arr <= -1).any(axis=0))[0])
        name = symbols[j] if symbols is not None else f"asset {j}"
        raise InputError(
            f"`returns` are simple returns and must be > -1; {name} has {arr[:, j].min():g}"
        )
    return arr


@dataclass(frozen=True)
class Allocation:
    """What an allocator produced.

    Attributes
    ----------
    weights : ndarray of shape (n_assets,)
    method : str
        The method that produced the weights (differs from the strategy's when a fallback fired).
    notes : tuple of str
        Why a fallback fired, shrinkage applied, etc.
    extras : dict
        Method-specific outputs for reports (e.g. ``linkage`` for HRP).
    """

    weights: np.ndarray
    method: str
    notes: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def fallback(self) -> bool:
        return bool(self.notes)


@runtime_checkable
class Allocator(Protocol):
    """What the walk-forward engine needs from a strategy."""

    @property
    def name(self) -> str: ...

    lookback_days: float

    def allocate(self, returns: np.ndarray, constraints: Constraints) -> np.ndarray: ...

    def allocate_detailed(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None = None
    ) -> Allocation: ...


class BaseAllocator:
    """Shared plumbing: validation, constraint coercion, and the pandas-friendly wrapper.

    Subclasses are dataclasses holding their parameters and implement :meth:`_allocate`, which receives
    validated returns and per-asset bounds.
    """

    name: ClassVar[str] = "base"
    lookback_days: float

    def allocate(
        self, returns: np.ndarray, constraints: Constraints | Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """Weights of shape ``(n_assets,)`` for ``returns`` of shape ``(n_obs, n_assets)``."""
        return self.allocate_detailed(returns, constraints).weights

    def allocate_detailed(
        self,
        returns: np.ndarray,
        constraints: Constraints | Mapping[str, Any] | None = None,
        previous: np.ndarray | None = None,
        *,
        symbols: Sequence[str] | None = None,
    ) -> Allocation:
        """Like :meth:`allocate`, with the method used, fallback notes and report extras.

        Parameters
        ----------
        returns : ndarray of shape (n_obs, n_assets)
            Simple returns (a DataFrame is accepted; its columns name the assets in error messages).
        constraints : Constraints or dict, optional
        previous : ndarray of shape (n_assets,), optional
            Weights of the previous rebalance (used by the ``"previous"`` fallback of some strategies).
        symbols : sequence of str, optional
            Asset names for error messages.
        """
        if symbols is None and hasattr(returns, "columns"):
            symbols = [str(c) for c in returns.columns]
        arr = validate_returns(returns, symbols)
        cons = Constraints.coerce(constraints)
        return self._allocate(arr, cons, previous)

    def allocate_array(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None = None
    ) -> Allocation:
        """:meth:`allocate_detailed` without validation, the walk-forward engine's entry point.

        No validation: the caller guarantees a finite 2-D float64 window of shape
        ``(n_obs, n_assets)`` with ``n_obs >= 2`` and returns > -1 (the engine's universe rule and
        its prepare stage do), and a :class:`Constraints` (not a dict).

        Examples
        --------
        >>> from strategies import EqualWeight
        >>> EqualWeight().allocate_array(np.zeros((5, 2)), Constraints()).weights
        array([0.5, 0.5])
        """
        return self._allocate(returns, constraints, previous)

    def allocate_frame(
        self, returns: Any, constraints: Constraints | Mapping[str, Any] | None = None
    ) -> Any:
        """pandas wrapper: a DataFrame of returns (columns = assets) -> a Series of weights."""
        import pandas as pd

        weights = self.allocate_detailed(returns, constraints).weights
        return pd.Series(weights, index=returns.columns, name=self.name)

    def for_symbols(self, symbols: Sequence[str]) -> BaseAllocator:
        """This allocator with its parameters given by symbol (e.g. ``risk_budget =
        {"BTC/USDT": 2}``) resolved to one entry per asset of ``symbols``, the market's assets in
        order; itself when it has none. The engine calls it once, in its prepare stage."""
        return self

    def for_universe(self, members: np.ndarray, n_assets: int) -> BaseAllocator:
        """This allocator for the universe ``members`` (increasing indices into the ``n_assets``
        it was resolved for): its per-asset parameters restricted to them; itself when it has none.
        The walk-forward calls it once per distinct universe."""
        return self

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        raise NotImplementedError


def project_to_bounds(
    weights: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_iter: int = 100
) -> np.ndarray:
    """Closest-in-spirit feasible weights: clip to ``[lo, hi]`` and redistribute the excess.

    Iteratively clips and spreads the surplus (or deficit) over the assets that still have room, in
    proportion to their current weights (equally when they are all zero). Exact for box constraints.
    """
    w = np.clip(np.asarray(weights, dtype=np.float64), lo, hi)
    for _ in range(max_iter):
        gap = 1.0 - w.sum()
        if abs(gap) <= 1e-14:
            break
        room = (hi - w) if gap > 0 else (w - lo)
        free = room > 1e-15
        if not free.any():
            break
        base = w[free] if gap < 0 else np.where(w[free] > 0, w[free], 0)
        share = base / base.sum() if base.sum() > 0 else np.full(free.sum(), 1.0 / free.sum())
        step = np.minimum(np.abs(gap) * share, room[free])
        w[free] += np.sign(gap) * step
    return w
