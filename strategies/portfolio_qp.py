"""Mean-variance portfolio problems on top of the dense QP solver in :mod:`strategies.qp`.

Every function takes per-asset bounds ``lo``/``hi`` of shape ``(n_assets,)`` and general linear
constraints ``G @ w <= h`` (``G`` of shape ``(n_constraints, n_assets)``, possibly with zero rows) and
returns ``(weights, status)`` with ``status`` one of the codes in :mod:`strategies.qp` (``OK`` = 0).
Weights are long-only and sum to 1. The covariance is scaled to unit mean variance before solving,
which leaves every solution unchanged and makes the tolerances scale-free.

Maximum Sharpe uses the standard homogenisation (Cornuejols and Tutuncu, 2006): with ``a = mu - rf``,

    minimise y' S y   subject to   a' y = 1,   y_i >= lo_i * sum(y),   y_i <= hi_i * sum(y),
                                   G y <= h * sum(y)

and ``w = y / sum(y)``. It is infeasible exactly when no admissible portfolio earns more than ``rf``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from strategies.errors import ConstraintError
from strategies.qp import INACCURATE, INFEASIBLE, OK, qp_nb

_TOL = 1e-12
#: Largest constraint violation of a solver result accepted as round-off.
_ACCURACY = 1e-9


@nb.njit(cache=True)
def _scaled(cov):
    n = cov.shape[0]
    scale = 0.0
    for i in range(n):
        scale += cov[i, i]
    scale /= n
    if not scale > 0.0:
        scale = 1.0
    return cov / scale


@nb.njit(cache=True)
def _budget_rows(lo, hi, G, h, extra_rows):
    """Inequalities ``A_in w >= b_in`` for the bounds and ``G w <= h``, leaving ``extra_rows`` free rows
    at the top. Upper bounds >= 1 are implied by the lower bounds and the budget and are left out."""
    n = lo.shape[0]
    n_hi = 0
    for i in range(n):
        if hi[i] < 1.0:
            n_hi += 1
    m = extra_rows + n + n_hi + G.shape[0]
    A = np.zeros((m, n))
    b = np.zeros(m)
    row = extra_rows
    for i in range(n):
        A[row, i] = 1.0
        b[row] = lo[i]
        row += 1
    for i in range(n):
        if hi[i] < 1.0:
            A[row, i] = -1.0
            b[row] = -hi[i]
            row += 1
    for k in range(G.shape[0]):
        for i in range(n):
            A[row, i] = -G[k, i]
        b[row] = -h[k]
        row += 1
    return A, b


@nb.njit(cache=True)
def _finish(x, status, lo, hi, G, h):
    """Check the solution is feasible beyond round-off, clip it into the bounds and restore the budget
    exactly (the residual goes to the assets with room, in index order)."""
    n = x.shape[0]
    w = np.full(n, np.nan)
    if status != OK:
        return w, status
    for k in range(G.shape[0]):
        t = 0.0
        for i in range(n):
            t += G[k, i] * x[i]
        if not t <= h[k] + _ACCURACY:
            return w, INACCURATE
    total = 0.0
    for i in range(n):
        if not (x[i] >= lo[i] - _ACCURACY and x[i] <= hi[i] + _ACCURACY):
            return w, INACCURATE
        w[i] = min(max(x[i], lo[i]), hi[i])
        total += w[i]
    if not abs(total - 1.0) <= _ACCURACY:
        return np.full(n, np.nan), INACCURATE
    residual = 1.0 - total
    for i in range(n):
        if residual == 0.0:
            break
        step = min(residual, hi[i] - w[i]) if residual > 0.0 else max(residual, lo[i] - w[i])
        w[i] += step
        residual -= step
    return w, status


@nb.njit(cache=True)
def min_variance_nb(cov, lo, hi, G, h, max_iter):
    """Minimum-variance weights under the bounds and ``G w <= h``."""
    n = cov.shape[0]
    A_eq = np.ones((1, n))
    b_eq = np.ones(1)
    A_in, b_in = _budget_rows(lo, hi, G, h, 0)
    x, status, _ = qp_nb(_scaled(cov), np.zeros(n), A_eq, b_eq, A_in, b_in, _TOL, max_iter)
    return _finish(x, status, lo, hi, G, h)


@nb.njit(cache=True)
def efficient_return_nb(mu, cov, target, lo, hi, G, h, max_iter):
    """Minimum variance subject to ``mu' w >= target`` (PyPortfolioOpt ``efficient_return``)."""
    n = cov.shape[0]
    A_eq = np.ones((1, n))
    b_eq = np.ones(1)
    A_in, b_in = _budget_rows(lo, hi, G, h, 1)
    scale = np.max(np.abs(mu))
    if not scale > 0.0:
        scale = 1.0
    for i in range(n):
        A_in[0, i] = mu[i] / scale
    b_in[0] = target / scale
    x, status, _ = qp_nb(_scaled(cov), np.zeros(n), A_eq, b_eq, A_in, b_in, _TOL, max_iter)
    return _finish(x, status, lo, hi, G, h)


@nb.njit(cache=True)
def max_sharpe_nb(mu, cov, risk_free_rate, lo, hi, G, h, max_iter):
    """Tangency portfolio by homogenisation (see the module docstring)."""
    n = cov.shape[0]
    a = mu - risk_free_rate
    scale = np.max(np.abs(a))
    if not scale > 0.0:
        return np.full(n, np.nan), INFEASIBLE
    A_eq = np.empty((1, n))
    for i in range(n):
        A_eq[0, i] = a[i] / scale
    b_eq = np.ones(1)
    n_hi = 0
    for i in range(n):
        if hi[i] < 1.0:
            n_hi += 1
    m = n + n_hi + G.shape[0]
    A_in = np.zeros((m, n))
    b_in = np.zeros(m)
    row = 0
    for i in range(n):  # y_i - lo_i * sum(y) >= 0
        for k in range(n):
            A_in[row, k] = -lo[i]
        A_in[row, i] += 1.0
        row += 1
    for i in range(n):  # hi_i * sum(y) - y_i >= 0
        if hi[i] < 1.0:
            for k in range(n):
                A_in[row, k] = hi[i]
            A_in[row, i] -= 1.0
            row += 1
    for j in range(G.shape[0]):  # h_j * sum(y) - G_j y >= 0
        for k in range(n):
            A_in[row, k] = h[j] - G[j, k]
        row += 1
    x, status, _ = qp_nb(_scaled(cov), np.zeros(n), A_eq, b_eq, A_in, b_in, _TOL, max_iter, False)
    if status == OK:
        total = 0.0
        for i in range(n):
            total += x[i]
        if not total > 0.0:
            return np.full(n, np.nan), INFEASIBLE
        x /= total
    return _finish(x, status, lo, hi, G, h)


@nb.njit(cache=True)
def project_nb(target, lo, hi, G, h, max_iter):
    """Euclidean projection of ``target`` onto ``{w : sum(w) = 1, lo <= w <= hi, G w <= h}``."""
    n = target.shape[0]
    A_eq = np.ones((1, n))
    b_eq = np.ones(1)
    A_in, b_in = _budget_rows(lo, hi, G, h, 0)
    x, status, _ = qp_nb(np.eye(n), -target, A_eq, b_eq, A_in, b_in, _TOL, max_iter)
    return _finish(x, status, lo, hi, G, h)


@nb.njit(cache=True)
def greedy_max_return_nb(mu, lo, hi):
    """Exact maximum-return weights under box constraints and the budget: start from ``lo`` and fill
    the highest expected returns up to ``hi`` (ties keep the lower index first)."""
    n = mu.shape[0]
    w = lo.copy()
    left = 1.0 - lo.sum()
    order = np.argsort(-mu, kind="mergesort")
    for k in range(n):
        i = order[k]
        add = min(hi[i] - lo[i], left)
        w[i] += add
        left -= add
        if left <= 0.0:
            break
    return w


def max_return(mu, cov, lo, hi, G, h, max_iter):
    """Maximum-return weights.

    Under box constraints: the exact greedy fill. With general constraints: a regularised QP
    ``min -mu'w + eps/2 |w|^2`` locates the maximum return ``r`` (to within ``eps``), then the
    minimum-variance portfolio earning ``r - 1e-9 |r|`` is returned, which meets every constraint to
    round-off (the regularised solution itself loses digits to cancellation).
    """
    if G.shape[0] == 0:
        return greedy_max_return_nb(mu, lo, hi), OK
    n = mu.shape[0]
    scale = max(float(np.max(np.abs(mu))), 1e-300)
    A_in, b_in = _budget_rows(lo, hi, G, h, 0)
    x, status, _ = qp_nb(
        1e-6 * np.eye(n), -mu / scale, np.ones((1, n)), np.ones(1), A_in, b_in, _TOL, max_iter
    )
    if status != OK:
        return np.full(n, np.nan), status
    target = float(mu @ x)
    return efficient_return_nb(mu, cov, target - 1e-9 * abs(target), lo, hi, G, h, max_iter)


def efficient_risk(mu, cov, target_volatility, lo, hi, G, h, max_iter, tol=1e-12):
    """Maximum return with volatility at most ``target_volatility`` (PyPortfolioOpt ``efficient_risk``).

    Along the efficient frontier the volatility of :func:`efficient_return_nb` increases with the
    target return, so the target return whose volatility equals ``target_volatility`` is found by
    Illinois regula falsi between the minimum-variance and the maximum-return portfolios; the
    returned weights are on the side with volatility <= target. Status ``INFEASIBLE`` when the target
    is below the minimum volatility.
    """

    def vol(w):
        return math.sqrt(max(float(w @ cov @ w), 0.0))

    w_lo, status = min_variance_nb(cov, lo, hi, G, h, max_iter)
    if status != OK:
        return w_lo, status
    v_lo = vol(w_lo)
    if target_volatility < v_lo * (1 - 1e-12):
        return w_lo, INFEASIBLE
    w_hi, status = max_return(mu, cov, lo, hi, G, h, max_iter)
    if status != OK:
        return w_lo, status
    if vol(w_hi) <= target_volatility:
        return w_hi, OK
    r_lo, r_hi = float(mu @ w_lo), float(mu @ w_hi)
    f_lo, f_hi = v_lo - target_volatility, vol(w_hi) - target_volatility
    side = 0
    for _ in range(200):
        if f_hi - f_lo <= 0 or r_hi - r_lo <= tol * max(abs(r_hi), abs(r_lo), 1e-300):
            break
        r = r_hi - f_hi * (r_hi - r_lo) / (f_hi - f_lo)
        r = min(max(r, r_lo), r_hi)
        w, status = efficient_return_nb(mu, cov, r, lo, hi, G, h, max_iter)
        if status != OK:
            break
        f = vol(w) - target_volatility
        if abs(f) <= tol * target_volatility and f <= 0:
            return w, OK
        if f <= 0:
            r_lo, f_lo, w_lo = r, f, w
            if side == -1:
                f_hi /= 2
            side = -1
        else:
            r_hi, f_hi = r, f
            if side == 1:
                f_lo /= 2
            side = 1
    return w_lo, OK


def frontier_points(mu, cov, n_points, lo, hi, G, h, max_iter):
    """Weights of ``n_points`` efficient portfolios with target returns evenly spaced from the
    minimum-variance return to the maximum attainable return; rows that failed are NaN.

    Returns
    -------
    weights : ndarray of shape (n_points, n_assets)
    """
    n = mu.shape[0]
    w_min, status = min_variance_nb(cov, lo, hi, G, h, max_iter)
    out = np.full((n_points, n), np.nan)
    if status != OK:
        return out
    w_max, status = max_return(mu, cov, lo, hi, G, h, max_iter)
    r_min = float(mu @ w_min)
    r_max = float(mu @ w_max) if status == OK else r_min
    targets = np.linspace(r_min, max(r_min, r_max), n_points)
    out[0] = w_min
    for k in range(1, n_points):
        w, status = efficient_return_nb(mu, cov, targets[k], lo, hi, G, h, max_iter)
        if status == OK:
            out[k] = w
        elif k == n_points - 1 and np.isfinite(w_max).all():
            out[k] = w_max
    return out


def feasible_weights(
    weights: np.ndarray, lo: np.ndarray, hi: np.ndarray, G: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, bool]:
    """``weights`` (within the bounds, summing to 1) if they meet ``G w <= h``; otherwise their Euclidean
    projection onto ``{sum(w) = 1, lo <= w <= hi, G w <= h}``. Returns ``(weights, projected)``.

    Raises
    ------
    ConstraintError
        When the constraints admit no portfolio at all.
    """
    if G.shape[0] == 0 or np.all(G @ weights <= h + 1e-12):
        return weights, False
    projected, status = project_nb(
        np.ascontiguousarray(weights, dtype=np.float64),
        lo,
        hi,
        np.ascontiguousarray(G),
        np.ascontiguousarray(h),
        10 * (len(weights) + len(h)) + 50,
    )
    if status != OK:
        raise ConstraintError(
            "the group / `A @ w <= b` constraints admit no portfolio within the weight "
            "bounds; relax the group limits or the bounds"
        )
    return projected, True
