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

Under weight bounds only (no ``G`` rows), minimum variance, efficient return and maximum Sharpe first
run :func:`box_frontier_nb`, a primal-dual active-set iteration on the parametric frontier problem
``min 0.5 w'Sw - t (mu - rf)'w`` that fixes the assets at a bound and solves the reduced problem over
the free ones with LAPACK (the maximum-Sharpe ``t`` solves a linear equation on each active set). It
can start from the previous rebalance's weights (the ``*_from_nb`` variants), returns only answers that
meet the KKT conditions, and hands over to the Goldfarb-Idnani problems above when it does not converge.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from strategies.errors import ConstraintError
from strategies.qp import INACCURATE, INFEASIBLE, OK, qp_nb

SOLVE_TOL = 1e-12
#: Largest constraint violation of a solver result accepted as round-off.
ACCURACY = 1e-9


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
def budget_rows(lo, hi, G, h, extra_rows):
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
def finish(x, status, lo, hi, G, h):
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
        if not t <= h[k] + ACCURACY:
            return w, INACCURATE
    total = 0.0
    for i in range(n):
        if not (x[i] >= lo[i] - ACCURACY and x[i] <= hi[i] + ACCURACY):
            return w, INACCURATE
        w[i] = min(max(x[i], lo[i]), hi[i])
        total += w[i]
    if not abs(total - 1.0) <= ACCURACY:
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


# --- Box-constrained frontier solver: reduced problem over the free assets -------------------------
#: Modes of :func:`box_frontier_nb`: fixed trade-off ``t`` (``t = target``), the tangency (max Sharpe),
#: and a target return.
MODE_FIXED, MODE_SHARPE, MODE_RETURN = 0, 1, 2
#: Failure code of :func:`box_frontier_nb` (the caller then runs the general solver).
NOT_CONVERGED = -1
#: Active-set guesses :func:`box_frontier_nb` may try before the general solver takes over.
_BOX_STEPS = 200


@nb.njit(cache=True)
def _initial_codes(start, lo, hi):
    """-1 at the lower bound, +1 at the upper bound, 0 free; all free without a usable ``start``."""
    n = lo.shape[0]
    code = np.zeros(n, dtype=np.int64)
    if start.shape[0] != n:
        return code
    for i in range(n):
        if not np.isfinite(start[i]):
            return np.zeros(n, dtype=np.int64)
        if start[i] <= lo[i] + 1e-12:
            code[i] = -1
        elif start[i] >= hi[i] - 1e-12:
            code[i] = 1
    return code


@nb.njit(cache=True)
def _affine_piece(S, a, lo, hi, code):
    """Budget-constrained stationary points ``w(t) = P + t Q`` of ``0.5 w'Sw - t a'w`` with the assets
    of ``code != 0`` fixed at their bound: one LAPACK solve with the free block ``S_FF``.
    Returns ``(P, Q, ok)``."""
    n = S.shape[0]
    free = np.flatnonzero(code == 0)
    f = free.shape[0]
    P = np.zeros(n)
    Q = np.zeros(n)
    budget = 1.0
    for i in range(n):
        if code[i] != 0:
            P[i] = lo[i] if code[i] < 0 else hi[i]
            budget -= P[i]
    if f == 0:
        if abs(budget) <= ACCURACY:
            return P, Q, True
        # every asset at a bound and the budget missed: release the best asset of the side that
        # overshoots (the highest excess return at its lower bound, the lowest at its upper bound)
        best = -1
        for i in range(n):
            overshoots = (budget > 0.0 and code[i] < 0) or (budget < 0.0 and code[i] > 0)
            if overshoots and (best < 0 or (a[i] - a[best]) * budget > 0.0):
                best = i
        if best < 0:
            return P, Q, False
        code[best] = 0
        return _affine_piece(S, a, lo, hi, code)
    K = np.empty((f, f))
    rhs = np.empty((f, 3))
    for p in range(f):
        i = free[p]
        for q in range(f):
            K[p, q] = S[i, free[q]]
        t = 0.0
        for k in range(n):
            if code[k] != 0:
                t += S[i, k] * P[k]
        rhs[p, 0] = 1.0
        rhs[p, 1] = a[i]
        rhs[p, 2] = t
    try:
        sol = np.linalg.solve(K, rhs)  # LAPACK gesv
    except Exception:  # a singular block: the general solver decides
        return P, Q, False
    sx = sol[:, 0].sum()
    sy = sol[:, 1].sum()
    sz = sol[:, 2].sum()
    if not sx > 0.0:
        return P, Q, False
    nu0 = (budget + sz) / sx
    for p in range(f):
        i = free[p]
        P[i] = nu0 * sol[p, 0] - sol[p, 2]
        Q[i] = sol[p, 1] - sy / sx * sol[p, 0]
    return P, Q, True


@nb.njit(cache=True)
def _trade_off(mode, target, S, a, mu, P, Q, t_prev):
    """The ``t`` of this piece: given, the tangency ``t = w'Sw / a'w``, or the target return."""
    if mode == MODE_FIXED:
        return target
    if mode == MODE_RETURN:
        slope = mu @ Q
        gap = target - mu @ P
        if gap <= 0.0:
            return 0.0
        return gap / slope if slope > 0.0 else 2.0 * max(t_prev, 1.0)
    SP = S @ P
    psp = P @ SP
    denom = a @ P - 2.0 * (SP @ Q)
    if denom > 0.0 and psp > 0.0:
        return psp / denom
    return 2.0 * max(t_prev, 1.0)  # no positive tangency on this piece: move up the frontier


@nb.njit(cache=True)
def _update_codes(g, w, lo, hi, code):
    """The primal-dual active-set update: free assets outside their bounds are fixed there, bound
    assets whose multiplier (the gradient ``g`` minus the budget's ``nu``) has the wrong sign are
    freed. Returns whether the guess changed (if not, ``w`` meets the KKT conditions)."""
    n = g.shape[0]
    nu = 0.0
    n_free = 0
    for i in range(n):
        if code[i] == 0:
            nu += g[i]
            n_free += 1
    if n_free:
        nu /= n_free
    else:  # a vertex: any nu between the largest upper-bound and smallest lower-bound gradient
        g_hi = -np.inf
        g_lo = np.inf
        for i in range(n):
            if code[i] > 0:
                g_hi = max(g_hi, g[i])
            else:
                g_lo = min(g_lo, g[i])
        nu = g_hi if g_lo == np.inf else (g_lo if g_hi == -np.inf else 0.5 * (g_lo + g_hi))
    tol = 1e-11 * (np.max(np.abs(g)) + 1.0)
    changed = False
    for i in range(n):
        r = g[i] - nu
        if code[i] == 0:
            if w[i] < lo[i] - 1e-13:
                code[i] = -1
                changed = True
            elif w[i] > hi[i] + 1e-13:
                code[i] = 1
                changed = True
        elif lo[i] < hi[i] and ((code[i] < 0 and r < -tol) or (code[i] > 0 and r > tol)):
            code[i] = 0  # an asset with lo == hi stays fixed
            changed = True
    return changed


@nb.njit(cache=True)
def box_frontier_nb(mu, cov, risk_free_rate, lo, hi, mode, target, start, max_iter):
    """Frontier portfolio under ``lo <= w <= hi`` and ``sum(w) = 1`` by a primal-dual active-set
    iteration (Hintermueller, Ito and Kunisch, 2002) on the parametric problem
    ``min 0.5 w'Sw - t (mu - rf)'w``, with ``t`` fixed (``MODE_FIXED``, ``t = target``; 0 is minimum
    variance), set by the tangency condition ``t = w'Sw / (mu - rf)'w`` of the maximum Sharpe
    portfolio (``MODE_SHARPE``), or by ``mu'w >= target`` (``MODE_RETURN``). Each step fixes the
    guessed bound assets and solves the reduced problem over the free ones (one LAPACK solve); the
    guess starts from ``start`` (previous weights; all free when empty) and the answer is accepted
    only when it meets the KKT conditions. Returns ``(weights, status, n_iter)``, status ``OK`` or
    ``NOT_CONVERGED`` (the caller then runs the general solver).
    """
    n = cov.shape[0]
    S = _scaled(cov)
    a = mu - risk_free_rate
    scale = np.max(np.abs(a))
    if not scale > 0.0:
        scale = 1.0
    a = a / scale
    mu_s = mu / scale
    target_s = target / scale if mode == MODE_RETURN else target
    code = _initial_codes(start, lo, hi)
    if mode == MODE_SHARPE and start.shape[0] != n:  # cold: assets below rf start at lower bound
        for i in range(n):
            if a[i] <= 0.0:
                code[i] = -1
    t = 0.0
    w = np.full(n, np.nan)
    for it in range(max_iter):
        P, Q, ok = _affine_piece(S, a, lo, hi, code)
        if not ok:
            return np.full(n, np.nan), NOT_CONVERGED, it
        t = _trade_off(mode, target_s, S, a, mu_s, P, Q, t)
        w = P + t * Q
        changed = _update_codes(S @ w - t * a, w, lo, hi, code)
        if not changed:
            if mode == MODE_SHARPE:
                excess = a @ w
                variance = w @ S @ w
                if not (
                    t > 0.0 and excess > 0.0 and abs(t * excess - variance) <= 1e-12 * variance
                ):
                    return np.full(n, np.nan), NOT_CONVERGED, it
            if mode == MODE_RETURN and t > 0.0 and abs(mu_s @ w - target_s) > 1e-9:
                return np.full(n, np.nan), NOT_CONVERGED, it
            return w, OK, it + 1
    return np.full(n, np.nan), NOT_CONVERGED, max_iter


@nb.njit(cache=True)
def min_variance_nb(cov, lo, hi, G, h, max_iter):
    """Minimum-variance weights under the bounds and ``G w <= h``."""
    return min_variance_from_nb(cov, lo, hi, G, h, max_iter, np.empty(0))


@nb.njit(cache=True)
def min_variance_from_nb(cov, lo, hi, G, h, max_iter, start):
    """:func:`min_variance_nb` warm-started from ``start`` (e.g. the previous weights; empty for a
    cold start). Under bounds only the reduced active-set solver runs first."""
    n = cov.shape[0]
    if G.shape[0] == 0:
        w, status, _ = box_frontier_nb(
            np.zeros(n), cov, 0.0, lo, hi, MODE_FIXED, 0.0, start, min(max_iter, _BOX_STEPS)
        )
        if status == OK:
            return finish(w, status, lo, hi, G, h)
    A_eq = np.ones((1, n))
    b_eq = np.ones(1)
    A_in, b_in = budget_rows(lo, hi, G, h, 0)
    x, status, _ = qp_nb(_scaled(cov), np.zeros(n), A_eq, b_eq, A_in, b_in, SOLVE_TOL, max_iter)
    return finish(x, status, lo, hi, G, h)


@nb.njit(cache=True)
def efficient_return_nb(mu, cov, target, lo, hi, G, h, max_iter):
    """Minimum variance subject to ``mu' w >= target`` (PyPortfolioOpt ``efficient_return``)."""
    return efficient_return_from_nb(mu, cov, target, lo, hi, G, h, max_iter, np.empty(0))


@nb.njit(cache=True)
def efficient_return_from_nb(mu, cov, target, lo, hi, G, h, max_iter, start):
    """:func:`efficient_return_nb` warm-started from ``start`` (empty for a cold start)."""
    n = cov.shape[0]
    if G.shape[0] == 0:
        w, status, _ = box_frontier_nb(
            mu, cov, 0.0, lo, hi, MODE_RETURN, target, start, min(max_iter, _BOX_STEPS)
        )
        if status == OK:
            return finish(w, status, lo, hi, G, h)
    A_eq = np.ones((1, n))
    b_eq = np.ones(1)
    A_in, b_in = budget_rows(lo, hi, G, h, 1)
    scale = np.max(np.abs(mu))
    if not scale > 0.0:
        scale = 1.0
    for i in range(n):
        A_in[0, i] = mu[i] / scale
    b_in[0] = target / scale
    x, status, _ = qp_nb(_scaled(cov), np.zeros(n), A_eq, b_eq, A_in, b_in, SOLVE_TOL, max_iter)
    return finish(x, status, lo, hi, G, h)


@nb.njit(cache=True)
def max_sharpe_nb(mu, cov, risk_free_rate, lo, hi, G, h, max_iter):
    """Tangency portfolio (see the module docstring)."""
    return max_sharpe_from_nb(mu, cov, risk_free_rate, lo, hi, G, h, max_iter, np.empty(0))


@nb.njit(cache=True)
def max_sharpe_from_nb(mu, cov, risk_free_rate, lo, hi, G, h, max_iter, start):
    """:func:`max_sharpe_nb` warm-started from ``start`` (e.g. the previous rebalance's weights;
    empty for a cold start). Under bounds only the reduced active-set solver
    (:func:`box_frontier_nb`) runs first; the homogenised Goldfarb-Idnani problem is the fallback and
    the path for general constraints."""
    n = cov.shape[0]
    if G.shape[0] == 0:
        best = greedy_max_return_nb(mu, lo, hi)
        if not (mu - risk_free_rate) @ best > 0.0:
            return np.full(n, np.nan), INFEASIBLE
        w, status, _ = box_frontier_nb(
            mu, cov, risk_free_rate, lo, hi, MODE_SHARPE, 0.0, start, min(max_iter, _BOX_STEPS)
        )
        if status == OK:
            return finish(w, status, lo, hi, G, h)
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
    x, status, _ = qp_nb(
        _scaled(cov), np.zeros(n), A_eq, b_eq, A_in, b_in, SOLVE_TOL, max_iter, False
    )
    if status == OK:
        total = 0.0
        for i in range(n):
            total += x[i]
        if not total > 0.0:
            return np.full(n, np.nan), INFEASIBLE
        x /= total
    return finish(x, status, lo, hi, G, h)


@nb.njit(cache=True)
def project_nb(target, lo, hi, G, h, max_iter):
    """Euclidean projection of ``target`` onto ``{w : sum(w) = 1, lo <= w <= hi, G w <= h}``."""
    n = target.shape[0]
    A_eq = np.ones((1, n))
    b_eq = np.ones(1)
    A_in, b_in = budget_rows(lo, hi, G, h, 0)
    x, status, _ = qp_nb(np.eye(n), -target, A_eq, b_eq, A_in, b_in, SOLVE_TOL, max_iter)
    return finish(x, status, lo, hi, G, h)


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
    A_in, b_in = budget_rows(lo, hi, G, h, 0)
    x, status, _ = qp_nb(
        1e-6 * np.eye(n), -mu / scale, np.ones((1, n)), np.ones(1), A_in, b_in, SOLVE_TOL, max_iter
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
    start = [w_lo]  # each solve warm-starts from the last point within the target

    def evaluate(r):
        w, status = efficient_return_from_nb(mu, cov, r, lo, hi, G, h, max_iter, start[0])
        if status != OK:
            return None
        f = vol(w) - target_volatility
        if f <= 0:
            start[0] = w
        return f, w

    r_lo, r_hi = float(mu @ w_lo), float(mu @ w_hi)
    f_lo, f_hi = v_lo - target_volatility, vol(w_hi) - target_volatility
    x_tol = tol * max(abs(r_hi), abs(r_lo), 1e-300)
    return illinois(evaluate, r_lo, f_lo, r_hi, f_hi, w_lo, tol * target_volatility, x_tol), OK


def illinois(evaluate, a, f_a, b, f_b, best, f_tol, x_tol, max_iter=200):
    """A root of ``f`` between ``a`` and ``b`` (``f_a``, ``f_b`` of opposite signs) by Illinois
    regula falsi; returns the payload of the last point with ``f <= 0`` (``best`` until one is
    found), as soon as ``-f_tol <= f <= 0``. ``evaluate(x)`` gives ``(f, payload)``, or None to stop
    (a failed solve). The solvers that meet a target through one parameter use it: the volatility
    of :func:`efficient_risk` and of ``strategies.utility_qp.efficient_risk_net``."""
    side = 0
    for _ in range(max_iter):
        if f_a == f_b or abs(b - a) <= x_tol:
            break
        x = b - f_b * (b - a) / (f_b - f_a)
        x = min(max(x, min(a, b)), max(a, b))
        got = evaluate(x)
        if got is None:
            break
        f, payload = got
        if f <= 0:
            best = payload
            if -f <= f_tol:
                return best
        if (f > 0) == (f_b > 0):  # x replaces b; b kept twice in a row: halve a's value
            b, f_b = x, f
            if side == 1:
                f_a /= 2
            side = 1
        else:
            a, f_a = x, f
            if side == -1:
                f_b /= 2
            side = -1
    return best


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
    start = w_min
    for k in range(1, n_points):  # each point warm-starts from the one before
        w, status = efficient_return_from_nb(mu, cov, targets[k], lo, hi, G, h, max_iter, start)
        if status == OK:
            out[k] = w
            start = w
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
