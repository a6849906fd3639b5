"""The whole decide loop of equal weight, inverse volatility and HRP in one numba call.

:func:`decide_baseline_nb` walks every decision bar of a walk-forward whose allocator is
:class:`strategies.EqualWeight` or :class:`strategies.InverseVolatility` and whose limits are box
bounds (no groups, no ``A @ w <= b``): the allocator's weights, the projection onto the universe's
bounds (:func:`strategies.base.project_to_bounds`), and the limits' check and clip
(:meth:`strategies.UniverseLimits.apply`), decision by decision. The arithmetic repeats NumPy's
operation for operation (pairwise sums of 1-D arrays, row-by-row sums down a column), so the weights
are bit-identical to the Python loop of :func:`backtest.walkforward.walk_forward`, which is this
kernel's test oracle. Anything the Python loop would turn into a fallback or an error (non-finite
weights, a limit breached) is reported with :data:`BAIL` and the caller reruns the Python loop, so
messages and fallbacks have one source.

:func:`decide_hrp_nb` does the same for :class:`strategies.HRPStrategy` (single linkage, sample
covariance): the window's covariance (:func:`strategies.estimators.sample_cov_nb`, annualised and
scaled to unit largest variance as ``strategies.hrp.hrp_allocation`` scales it) and
:func:`strategies.hrp.hrp_single_nb`, the very functions the allocator calls; a window with a
zero-variance asset, a one-asset universe or anything else the allocator would note is a
:data:`BAIL`.

Imports numpy, numba and the numba functions of :mod:`strategies.limits` (the limits' check and
NumPy's pairwise sum), :mod:`strategies.estimators` and :mod:`strategies.hrp` (one copy of each
rule); inputs are valid by the caller's contract (C-contiguous float64).
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from strategies.estimators import ILL_CONDITIONED_RATIO, sample_cov_nb
from strategies.hrp import hrp_single_nb
from strategies.limits import box_targets_nb, pairwise_sum_nb

#: Closes all > 0 and within this factor of each other give no return that rounds to -1 or
#: overflows (:func:`returns_clean_nb`, :attr:`backtest.walkforward.ReturnsPanel.clean`).
CLOSE_RANGE = 1e15

#: Allocator codes of :func:`decide_baseline_nb`.
EQUAL_WEIGHT = 0
INVERSE_VOLATILITY = 1

#: Outcome codes per decision.
OK = 0  # the strategy's own method
ALL_ZERO_VARIANCE = 1  # inverse volatility: every asset constant, equal weight
SOME_ZERO_VARIANCE = 2  # inverse volatility: ``zero_count`` assets weighted like the least volatile
CASH = 3  # empty universe
BAIL = -1  # the Python loop must decide (fallback or error)


class UniverseTables(NamedTuple):
    """The distinct universes of a walk-forward, one row each (C-contiguous; numba passes the
    record as a tuple)."""

    members: np.ndarray  # int64 (n_universes, n_assets): member columns, the first n_members[u]
    n_members: np.ndarray  # int64 (n_universes,); -1: the empty universe (all cash)
    alloc_lo: np.ndarray  # (n_universes, n_assets): the bounds the allocator is given (the
    alloc_hi: np.ndarray  # limits scaled to a full book)
    lo: np.ndarray  # (n_universes, n_assets): the real bounds
    hi: np.ndarray
    budget: np.ndarray  # (n_universes,)


#: The tolerances of strategies.base.project_to_bounds.
GAP_TOLERANCE = 1e-14
ROOM_TOLERANCE = 1e-15
PROJECT_MAX_ITER = 100


@nb.njit(cache=True)
def project_to_bounds_nb(w: np.ndarray, lo: np.ndarray, hi: np.ndarray, buf: np.ndarray) -> None:
    """:func:`strategies.base.project_to_bounds` in place on ``w`` (``buf``: scratch of w's size)."""
    m = w.shape[0]
    for i in range(m):
        w[i] = min(max(w[i], lo[i]), hi[i])
    for _ in range(PROJECT_MAX_ITER):
        gap = 1.0 - pairwise_sum_nb(w)
        if abs(gap) <= GAP_TOLERANCE:
            break
        n_free = 0
        for i in range(m):
            room = (hi[i] - w[i]) if gap > 0 else (w[i] - lo[i])
            if room > ROOM_TOLERANCE:
                if gap < 0:
                    buf[n_free] = w[i]
                else:
                    buf[n_free] = w[i] if w[i] > 0 else 0.0
                n_free += 1
        if n_free == 0:
            break
        total = pairwise_sum_nb(buf[:n_free])
        sign = 1.0 if gap > 0 else -1.0
        k = 0
        for i in range(m):
            room = (hi[i] - w[i]) if gap > 0 else (w[i] - lo[i])
            if room > ROOM_TOLERANCE:
                share = buf[k] / total if total > 0 else 1.0 / n_free
                w[i] += sign * min(abs(gap) * share, room)
                k += 1


@nb.njit(cache=True)
def column_std_nb(
    returns: np.ndarray, first: int, n_obs: int, members: np.ndarray, out: np.ndarray
) -> None:
    """``returns[first:first + n_obs, members].std(axis=0, ddof=1)`` as NumPy computes it (rows
    summed in order for two or more columns, a pairwise sum for a single column)."""
    m = members.shape[0]
    if m == 1:
        col = returns[first : first + n_obs, members[0]].copy()
        mean = pairwise_sum_nb(col) / n_obs
        for i in range(n_obs):
            d = col[i] - mean
            col[i] = d * d
        out[0] = np.sqrt(pairwise_sum_nb(col) / (n_obs - 1))
        return
    means = np.zeros(m)
    for i in range(first, first + n_obs):
        for j in range(m):
            means[j] += returns[i, members[j]]
    for j in range(m):
        means[j] = means[j] / n_obs
        out[j] = 0.0
    for i in range(first, first + n_obs):
        for j in range(m):
            d = returns[i, members[j]] - means[j]
            out[j] += d * d
    for j in range(m):
        out[j] = np.sqrt(out[j] / (n_obs - 1))


@nb.njit(cache=True)
def _inverse_volatility_nb(vol: np.ndarray, w: np.ndarray) -> tuple[int, int]:
    """Inverse-volatility weights of ``vol`` into ``w``: (outcome code, zero-variance count)."""
    m = vol.shape[0]
    n_zero = 0
    smallest = np.inf
    for j in range(m):
        if vol[j] <= 1e-300:
            n_zero += 1
        elif vol[j] < smallest:
            smallest = vol[j]
    if n_zero == m:
        for j in range(m):
            w[j] = 1.0 / m
        return ALL_ZERO_VARIANCE, n_zero
    for j in range(m):
        w[j] = 1.0 / (smallest if vol[j] <= 1e-300 else vol[j])
    total = pairwise_sum_nb(w)
    for j in range(m):
        w[j] = w[j] / total
    return (SOME_ZERO_VARIANCE if n_zero else OK), n_zero


@nb.njit(cache=True, inline="always")
def _store_nb(w, k, u, tables, target, weights) -> bool:
    """The limits' check and clip of the allocator's weights ``w`` (universe ``u``) into row ``k``
    of ``weights``; False (nothing written) when a weight is not finite or a limit is breached."""
    m = w.shape[0]
    for j in range(m):
        if not np.isfinite(w[j]):
            return False
    if not box_targets_nb(w, tables.budget[u], tables.lo[u, :m], tables.hi[u, :m], target[:m]):
        return False
    for j in range(m):
        weights[k, tables.members[u, j]] = target[j]
    return True


@nb.njit(cache=True)
def decide_baseline_nb(
    returns: np.ndarray,
    lookback: int,
    bars: np.ndarray,
    universe_id: np.ndarray,
    tables: UniverseTables,
    allocator: int,
    weights: np.ndarray,
    codes: np.ndarray,
    zero_count: np.ndarray,
    last_raw: np.ndarray,
) -> None:
    """Every decision of an equal-weight or inverse-volatility walk-forward with box limits.

    Parameters
    ----------
    returns : ndarray of shape (n_bars - 1, n_assets)
        Simple returns, row ``i`` from the closes of bars ``i`` and ``i + 1`` (equal weight reads
        none: a (0, n_assets) array will do).
    bars : ndarray of int64, shape (n_decisions,)
    universe_id : ndarray of int64, shape (n_decisions,)
        Row of the universe tables for each decision.
    tables : UniverseTables
    allocator : int
        :data:`EQUAL_WEIGHT` or :data:`INVERSE_VOLATILITY`.
    weights : ndarray of shape (n_decisions, n_assets)
        Output, zero-initialised: the target weights.
    codes, zero_count : ndarray of int64, shape (n_decisions,)
        Output: the outcome code and the zero-variance count of each decision.
    last_raw : ndarray of shape (n_assets,)
        Output: the allocator's weights (before the budget) at the last decision.
    """
    n_assets = returns.shape[1]
    w = np.empty(n_assets)
    buf = np.empty(n_assets)
    target = np.empty(n_assets)
    for k in range(bars.shape[0]):
        u = universe_id[k]
        m = tables.n_members[u]
        if m < 0:
            codes[k] = CASH
            continue
        cols = tables.members[u, :m]
        wk = w[:m]
        if allocator == EQUAL_WEIGHT:
            for j in range(m):
                wk[j] = 1.0 / m
            code, n_zero = OK, 0
        else:
            column_std_nb(returns, bars[k] - lookback, lookback, cols, buf)
            code, n_zero = _inverse_volatility_nb(buf[:m], wk)
        project_to_bounds_nb(wk, tables.alloc_lo[u, :m], tables.alloc_hi[u, :m], buf)
        if not _store_nb(wk, k, u, tables, target, weights):
            codes[k] = BAIL
            return
        codes[k] = code
        zero_count[k] = n_zero
        if k == bars.shape[0] - 1:
            last_raw[:m] = wk


@nb.njit(cache=True)
def decide_hrp_nb(
    returns: np.ndarray,
    lookback: int,
    bars: np.ndarray,
    universe_id: np.ndarray,
    tables: UniverseTables,
    periods_per_year: float,
    weights: np.ndarray,
    codes: np.ndarray,
) -> None:
    """Every decision of a single-linkage, sample-covariance HRP walk-forward with box limits (the
    arguments as :func:`decide_baseline_nb`'s); ``codes``: :data:`OK`, :data:`CASH`, or
    :data:`BAIL` at the first decision the Python loop must take (it then decides them all)."""
    n_assets = returns.shape[1]
    target = np.empty(n_assets)
    for k in range(bars.shape[0]):
        u = universe_id[k]
        m = tables.n_members[u]
        if m < 0:
            codes[k] = CASH
            continue
        if m < 2:
            codes[k] = BAIL
            return
        window = np.empty((lookback, m))
        first = bars[k] - lookback
        for i in range(lookback):
            for j in range(m):
                window[i, j] = returns[first + i, tables.members[u, j]]
        cov = sample_cov_nb(window, 1)
        top = 0.0
        for i in range(m):
            for j in range(m):
                cov[i, j] = cov[i, j] * periods_per_year
            if cov[i, i] > top:
                top = cov[i, i]
        if not top > 0.0:
            codes[k] = BAIL  # every asset constant: the allocator's equal-weight rule
            return
        for i in range(m):
            for j in range(m):
                cov[i, j] = cov[i, j] / top
        for i in range(m):
            if (
                cov[i, i] <= ILL_CONDITIONED_RATIO
            ):  # a zero-variance asset: the allocator repairs it
                codes[k] = BAIL
                return
        w, _, _ = hrp_single_nb(cov, tables.alloc_lo[u, :m], tables.alloc_hi[u, :m])
        if not _store_nb(w, k, u, tables, target, weights):
            codes[k] = BAIL
            return
        codes[k] = OK


@nb.njit(cache=True)
def full_windows_nb(
    close: np.ndarray, bars: np.ndarray, lookback: int, out: np.ndarray
) -> tuple[float, float]:
    """One read of ``close`` of shape (n_bars, n_assets): the universe at each decision bar,
    nothing per bar stored, and the range of the closes for the validity check.

    Writes ``out[k, j]``: the closes of bars ``t - lookback .. t`` of asset ``j`` are all finite,
    ``t = bars[k]`` (increasing, each >= ``lookback``). Returns the smallest and largest close
    that is not NaN (infinities count; ``(inf, -inf)`` when there is none): the reductions
    :meth:`backtest.walkforward.ReturnsPanel.clean` needs, read in the same pass.
    """
    n_bars, n_assets = close.shape
    n_dec = bars.shape[0]
    seen = np.zeros(n_assets, dtype=np.int64)  # non-finite closes in rows 0 .. i-1
    at_start = np.zeros((n_dec, n_assets), dtype=np.int64)
    first, last = 0, 0
    lo, hi = np.inf, -np.inf
    for i in range(n_bars + 1):
        while first < n_dec and bars[first] - lookback == i:
            for j in range(n_assets):  # element by element: a row assignment compiles for seconds
                at_start[first, j] = seen[j]
            first += 1
        while last < n_dec and bars[last] + 1 == i:
            for j in range(n_assets):
                out[last, j] = seen[j] == at_start[last, j]
            last += 1
        if i == n_bars:
            break
        for j in range(n_assets):
            c = close[i, j]
            seen[j] += not np.isfinite(c)
            if c < lo:  # (False for NaN: skipped, as np.fmin skips it)
                lo = c
            if c > hi:
                hi = c
    return lo, hi


@nb.njit(cache=True, error_model="numpy")  # a zero close divides by zero, as in NumPy
def returns_clean_nb(close: np.ndarray) -> bool:
    """True when every return of two finite closes (``close[i + 1] / close[i] - 1``, as
    :func:`returns_nb` computes it) is finite and > -1.

    That holds for a column whose finite closes are all > 0 within a factor 1e15 of each other
    (every ratio of two is then in (1e-15, 1e15), so no return rounds to -1 or overflows); only
    another column is checked pair by pair.
    """
    n_bars, n_assets = close.shape
    for j in range(n_assets):
        lo, hi = np.inf, -np.inf
        for i in range(n_bars):
            c = close[i, j]
            if np.isfinite(c):  # (min/max of a conditional compile for seconds)
                if c < lo:
                    lo = c
                if c > hi:
                    hi = c
        if hi < lo or (lo > 0.0 and hi < CLOSE_RANGE * lo):
            continue  # no finite close, or every ratio of two in range
        for i in range(n_bars - 1):  # the exact check, inline (a call compiles for seconds)
            a, b = close[i, j], close[i + 1, j]
            if np.isfinite(a) and np.isfinite(b):
                r = b / a - 1.0
                if not (np.isfinite(r) and r > -1.0):
                    return False
    return True


@nb.njit(cache=True)
def universe_ids_nb(universe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of the bool ``universe`` (n_decisions, n_assets) in order of first use:
    ``(ids, first)``, the distinct row of each decision and the decision where each first appears.
    A decision is compared with the one before it, then with the distinct rows seen (universes
    change rarely, so that is about one row comparison per decision)."""
    n_dec = universe.shape[0]
    ids = np.empty(n_dec, dtype=np.int64)
    first = np.empty(n_dec, dtype=np.int64)
    n_distinct = 0
    for k in range(n_dec):
        if k and _same_row_nb(universe, k, k - 1):
            ids[k] = ids[k - 1]
            continue
        found = -1
        for d in range(n_distinct):
            if _same_row_nb(universe, k, first[d]):
                found = d
                break
        if found < 0:
            first[n_distinct] = k
            found = n_distinct
            n_distinct += 1
        ids[k] = found
    return ids, first[:n_distinct].copy()


@nb.njit(cache=True, inline="always")
def _same_row_nb(a: np.ndarray, i: int, j: int) -> bool:
    for c in range(a.shape[1]):  # noqa: SIM110 (a generator does not compile in numba)
        if a[i, c] != a[j, c]:
            return False
    return True


@nb.njit(cache=True, error_model="numpy")
def returns_nb(close: np.ndarray, returns: np.ndarray) -> None:
    """``returns[i] = close[i + 1] / close[i] - 1`` (NaN where a close is missing)."""
    n_bars, n_assets = close.shape
    for i in range(n_bars - 1):
        for j in range(n_assets):
            returns[i, j] = close[i + 1, j] / close[i, j] - 1.0


@nb.njit(cache=True, error_model="numpy")
def drifted_nb(close: np.ndarray, weights: np.ndarray, start: int, end: int) -> np.ndarray:
    """``weights`` held from the close of bar ``start`` to the close of ``end``, as a new array:
    each weight grown by its price relative (1 when a close is missing), over the book's value
    (cash ``1 - sum(weights)`` keeps its value); ``weights`` unchanged when that value is not > 0."""
    n = weights.shape[0]
    grown = np.empty(n)
    total = 0.0
    held = 0.0
    for j in range(n):
        relative = close[end, j] / close[start, j]
        if not np.isfinite(relative):
            relative = 1.0
        grown[j] = weights[j] * relative
        total += grown[j]
        held += weights[j]
    value = total + (1.0 - held)
    if not value > 0.0:
        for j in range(n):
            grown[j] = weights[j]
        return grown
    for j in range(n):
        grown[j] /= value
    return grown
