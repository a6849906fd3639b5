"""Mean-variance net of trading costs: ``max mu'w - gamma/2 w'Sw - sum_i c_i |w_i - prev_i|``
under the bounds, ``G w <= h`` and an optional cap on ``sum |w - prev|`` (the objective of
``MPTStrategy(objective="max_utility")``), on top of the solvers of :mod:`strategies.portfolio_qp`
and :mod:`strategies.qp`.

* :func:`kinked_nb`: a primal-dual active set on the *kinked box* (each asset at a bound, at its kink
  ``prev_i``, or free on one side of it, where the cost is linear), group rows held as equalities
  when active; one LAPACK solve of the KKT system per step.
* :func:`capped_kinked_nb`: the turnover cap through its multiplier, which adds to every asset's
  cost (regula falsi on the turnover it leaves).
* :func:`max_utility_nb`: the entry point; the lifted Goldfarb-Idnani problem over ``(w, t)``,
  ``t >= |w - prev|``, when the active set does not settle.
* The other convex objectives net of costs, through it: :func:`efficient_return_net` (the return
  target as one more row), :func:`efficient_risk_net` (the volatility target through its
  multiplier, a risk aversion found by regula falsi) and :func:`net_frontier_points`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from strategies.portfolio_qp import (
    ACCURACY,
    SOLVE_TOL,
    budget_rows,
    finish,
    illinois,
    max_return,
)
from strategies.qp import INACCURATE, INFEASIBLE, OK, qp_nb

_LO, _HI, _KINK, _UP, _DOWN = 0, 1, 2, 3, 4


@nb.njit(cache=True)
def kinked_nb(Q, q, prev, cost, lo, hi, G, h, start, max_iter):
    """``min 0.5 w'Qw - q'w + sum_i cost_i |w_i - prev_i|`` over ``sum(w) = 1``, ``lo <= w <= hi``
    and ``G w <= h``, by a primal-dual active-set iteration on the kinked box.

    Each asset is at its lower bound, at its upper bound, at its kink ``prev_i``, or free above or
    below the kink (where the cost is linear, slope ``+-cost_i``); each row of ``G`` is active (held
    as an equality) or not. A step solves the stationary point over the free assets with the others
    fixed and the active rows held (one LAPACK solve of the KKT system), then moves each asset and
    row to the state its value and multiplier call for: the gradient
    ``g_i = (Qw - q)_i + nu + (G'lambda)_i`` against the marginal cost ``cost_i`` of moving. It
    starts from ``start`` (weights within the bounds and rows) and returns only when no state
    changes, so the answer meets the KKT conditions. Returns ``(weights, converged, n_iter)``.
    """
    n = q.shape[0]
    m = G.shape[0]
    state = np.empty(n, dtype=np.int64)
    for i in range(n):
        if start[i] <= lo[i] + 1e-12:
            state[i] = _LO
        elif start[i] >= hi[i] - 1e-12:
            state[i] = _HI
        elif abs(start[i] - prev[i]) <= 1e-12:
            state[i] = _KINK
        else:
            state[i] = _UP if start[i] > prev[i] else _DOWN
    row_on = np.zeros(m, dtype=np.bool_)
    for k in range(m):
        row_on[k] = G[k] @ start >= h[k] - 1e-12
    w = start.copy()
    g = np.zeros(n)
    lam = np.zeros(m)
    for it in range(max_iter):
        budget = 1.0
        n_free = 0
        for i in range(n):
            if state[i] == _LO:
                w[i] = lo[i]
            elif state[i] == _HI:
                w[i] = hi[i]
            elif state[i] == _KINK:
                w[i] = prev[i]
            else:
                n_free += 1
                continue
            budget -= w[i]
        rows = np.flatnonzero(row_on)
        n_rows = rows.shape[0]
        size = n_free + 1 + n_rows
        if n_free == 0 and abs(budget) <= 1e-12 and not row_on.any():
            # a vertex on the budget: optimal when one budget multiplier nu meets every asset's
            # condition (each gives an interval); else free the asset that breaks it most
            r = Q @ w - q
            nu_lo, nu_hi, at_lo, at_hi = -np.inf, np.inf, -1, -1
            for i in range(n):
                st = state[i]
                c_i = cost[i]
                up_ok = (st == _KINK and prev[i] < hi[i]) or (st == _LO and lo[i] < hi[i])
                down_ok = (st == _KINK and prev[i] > lo[i]) or (st == _HI and lo[i] < hi[i])
                if up_ok:  # moving up must not pay: r + nu + slope >= 0
                    slope = c_i if (st == _KINK or lo[i] >= prev[i]) else -c_i
                    if -r[i] - slope > nu_lo:
                        nu_lo, at_lo = -r[i] - slope, i
                if down_ok:  # moving down must not pay: r + nu - slope' <= 0
                    slope = c_i if (st == _KINK or hi[i] <= prev[i]) else -c_i
                    if slope - r[i] < nu_hi:
                        nu_hi, at_hi = slope - r[i], i
            if nu_lo <= nu_hi + 1e-11 * (np.max(np.abs(r)) + np.max(cost) + 1.0):
                return w, True, it + 1
            # both ends cannot hold: free the asset at the end that breaks more at the midpoint
            i = at_lo
            st = state[i]
            state[i] = _UP if (st == _KINK or lo[i] >= prev[i]) else _DOWN
            if at_hi >= 0 and at_hi != i:
                st = state[at_hi]
                state[at_hi] = _DOWN if (st == _KINK or hi[at_hi] <= prev[at_hi]) else _UP
            continue
        if n_free == 0:
            # a vertex: free the asset that moves the book toward the budget at the least
            # marginal cost (from the last step's gradient); without one, the lifted problem
            best, best_slope = -1, np.inf
            if it > 0 and abs(budget) > 1e-15:
                for i in range(n):
                    st = state[i]
                    c_i = cost[i]
                    if budget > 0.0:  # buy: an asset that can go up
                        if (st == _KINK and prev[i] < hi[i]) or (st == _LO and lo[i] < hi[i]):
                            up = g[i] + (c_i if (st == _KINK or lo[i] >= prev[i]) else -c_i)
                            if up < best_slope:
                                best, best_slope = i, up
                    elif (st == _KINK and prev[i] > lo[i]) or (st == _HI and lo[i] < hi[i]):
                        down = -g[i] + (c_i if (st == _KINK or hi[i] <= prev[i]) else -c_i)
                        if down < best_slope:
                            best, best_slope = i, down
            if best < 0:
                return w, False, it
            st = state[best]
            if budget > 0.0:
                state[best] = _UP if (st == _KINK or lo[best] >= prev[best]) else _DOWN
            else:
                state[best] = _DOWN if (st == _KINK or hi[best] <= prev[best]) else _UP
            continue
        free = np.empty(n_free, dtype=np.int64)
        f = 0
        for i in range(n):
            if state[i] == _UP or state[i] == _DOWN:
                free[f] = i
                f += 1
        # [Q_FF 1 G_AF'; 1' ; G_AF] [w_F; nu; lambda_A] = rhs
        K = np.zeros((size, size))
        rhs = np.zeros(size)
        for a in range(n_free):
            i = free[a]
            for b in range(n_free):
                K[a, b] = Q[i, free[b]]
            K[a, n_free] = 1.0
            K[n_free, a] = 1.0
            for r in range(n_rows):
                K[a, n_free + 1 + r] = G[rows[r], i]
                K[n_free + 1 + r, a] = G[rows[r], i]
            t = q[i] - (cost[i] if state[i] == _UP else -cost[i])
            for j in range(n):
                if state[j] != _UP and state[j] != _DOWN:
                    t -= Q[i, j] * w[j]
            rhs[a] = t
        rhs[n_free] = budget
        for r in range(n_rows):
            t = h[rows[r]]
            for j in range(n):
                if state[j] != _UP and state[j] != _DOWN:
                    t -= G[rows[r], j] * w[j]
            rhs[n_free + 1 + r] = t
        try:
            sol = np.linalg.solve(K, rhs)
        except Exception:
            # dependent rows (a group holding all the free assets): the least-squares solution,
            # if consistent
            sol = np.linalg.lstsq(K, rhs)[0]
            if np.max(np.abs(K @ sol - rhs)) > 1e-9 * (np.max(np.abs(rhs)) + 1.0):
                return w, False, it
        for a in range(n_free):
            w[free[a]] = sol[a]
        nu = sol[n_free]
        lam[:] = 0.0
        for r in range(n_rows):
            lam[rows[r]] = sol[n_free + 1 + r]
        for i in range(n):
            t = nu - q[i]
            for j in range(n):
                t += Q[i, j] * w[j]
            for k in range(m):
                t += lam[k] * G[k, i]
            g[i] = t
        tol = 1e-11 * (np.max(np.abs(g)) + np.max(cost) + 1.0)
        changed = False
        for i in range(n):
            st = state[i]
            new = st
            c_i = cost[i]
            if st == _UP:
                floor = max(lo[i], prev[i])
                if w[i] > hi[i] + 1e-13:
                    new = _HI
                elif w[i] < floor - 1e-13:
                    new = _KINK if prev[i] > lo[i] else _LO
            elif st == _DOWN:
                ceiling = min(hi[i], prev[i])
                if w[i] < lo[i] - 1e-13:
                    new = _LO
                elif w[i] > ceiling + 1e-13:
                    new = _KINK if prev[i] < hi[i] else _HI
            elif st == _KINK:
                if g[i] + c_i < -tol and prev[i] < hi[i]:
                    new = _UP  # moving up lowers the objective
                elif g[i] - c_i > tol and prev[i] > lo[i]:
                    new = _DOWN
            elif st == _LO and lo[i] < hi[i]:
                slope = g[i] + (c_i if lo[i] >= prev[i] else -c_i)
                if slope < -tol:
                    new = _UP if lo[i] >= prev[i] else _DOWN
            elif st == _HI and lo[i] < hi[i]:
                slope = g[i] + (c_i if hi[i] > prev[i] else -c_i)
                if slope > tol:
                    new = _UP if hi[i] > prev[i] else _DOWN
            if new != st:
                state[i] = new
                changed = True
        for k in range(m):
            if row_on[k] and lam[k] < -tol:
                row_on[k] = False
                changed = True
            elif not row_on[k] and G[k] @ w > h[k] + 1e-12:
                row_on[k] = True
                changed = True
        if not changed:
            return w, True, it + 1
    return w, False, max_iter


@nb.njit(cache=True)
def _turnover(w, prev):
    t = 0.0
    for i in range(w.shape[0]):
        t += abs(w[i] - prev[i])
    return t


@nb.njit(cache=True)
def capped_kinked_nb(Q, q, prev, cost, lo, hi, G, h, cap, start, max_iter):
    """:func:`kinked_nb` under ``sum |w - prev| <= cap`` through the cap's multiplier ``tau``:
    the cap's Lagrangian adds ``tau`` to every asset's cost, and the turnover of the solution at
    cost ``cost + tau`` does not increase with ``tau`` (piecewise linear, continuous). So ``tau``
    is found by Illinois regula falsi on ``turnover(tau) = cap`` between 0 and a bracketing
    value, each step a :func:`kinked_nb` solve started from the step before; the point where the
    turnover meets the cap (to 1e-10) is the capped optimum. Returns ``(weights, converged)``;
    not converged when even the largest cost leaves the turnover above the cap (the caller's
    general solver then reports it infeasible) or a solve does not settle."""
    w, ok, _ = kinked_nb(Q, q, prev, cost, lo, hi, G, h, start, max_iter)
    if not ok:
        return w, False
    f_lo = _turnover(w, prev) - cap
    if f_lo <= 1e-10:
        return w, True
    t_lo = 0.0
    t_hi = 0.0
    step = max(np.max(np.abs(q)), np.max(cost), 1e-12)
    f_hi = f_lo
    w_hi = w
    # a warm start from the last point can cycle where many assets sit at their kinks: a short
    # warm attempt, then the cold start from ``start``
    warm = min(max_iter, q.shape[0] + 10)
    for _ in range(60):  # bracket: a cost at which the turnover is within the cap
        t_hi = t_hi + step
        w_try, ok, _ = kinked_nb(Q, q, prev, cost + t_hi, lo, hi, G, h, w_hi, warm)
        if not ok:
            w_try, ok, _ = kinked_nb(Q, q, prev, cost + t_hi, lo, hi, G, h, start, max_iter)
        w_hi = w_try
        if not ok:
            return w_hi, False
        f_hi = _turnover(w_hi, prev) - cap
        if f_hi <= 0.0:
            break
        t_lo, f_lo = t_hi, f_hi
        step *= 4.0
    if f_hi > 0.0:
        return w_hi, False
    if f_hi >= -1e-10:
        return w_hi, True
    side = 0
    for _ in range(100):
        t = t_hi - f_hi * (t_hi - t_lo) / (f_hi - f_lo)
        w, ok, _ = kinked_nb(Q, q, prev, cost + t, lo, hi, G, h, w_hi, warm)
        if not ok:
            w, ok, _ = kinked_nb(Q, q, prev, cost + t, lo, hi, G, h, start, max_iter)
        if not ok:
            return w, False
        f = _turnover(w, prev) - cap
        if abs(f) <= 1e-10:
            return w, True
        if f > 0.0:
            t_lo, f_lo = t, f
            if side == 1:
                f_hi /= 2.0
            side = 1
        else:
            t_hi, f_hi, w_hi = t, f, w
            if side == -1:
                f_lo /= 2.0
            side = -1
    return w_hi, False


#: Curvature given to the turnover variables of :func:`max_utility_nb` (relative to unit mean
#: variance): it makes the lifted problem strictly convex, as the dual solver needs, and changes
#: the objective by at most ``LIFT / 2 * sum((w - prev)**2)``, far below the tolerances.
LIFT = 1e-6


@nb.njit(cache=True)
def max_utility_nb(mu, cov, gamma, prev, cost, max_turnover, lo, hi, G, h, max_iter):
    """Maximise ``mu'w - gamma/2 w'Sw - sum_i cost_i |w_i - prev_i|`` subject to ``sum(w) = 1``,
    the bounds, ``G w <= h`` and ``sum |w - prev| <= max_turnover`` (``inf``: no cap).

    Without costs or a cap it is the plain mean-variance QP. Otherwise the l1 terms are lifted:
    ``t_i >= |w_i - prev_i|`` with the cost ``cost' t`` and the cap ``sum(t) <= max_turnover``,
    solved over ``(w, t)`` by the dual active-set QP; at the optimum ``t = |w - prev|`` exactly (a
    larger ``t`` only costs more), and the curvature :data:`LIFT` on ``t`` moves the objective by
    less than 1e-9. Returns ``(weights, status)``.
    """
    n = mu.shape[0]
    scale = 0.0
    for i in range(n):
        scale += gamma * cov[i, i]
    scale = n / scale if scale > 0.0 else 1.0  # unit mean curvature: scale-free tolerances
    lifted = np.isfinite(max_turnover)
    for i in range(n):
        if cost[i] != 0.0:
            lifted = True
    A_w, b_w = budget_rows(lo, hi, G, h, 0)
    Qs = gamma * scale * cov
    qs = scale * mu
    x, status, _ = qp_nb(Qs, -qs, np.ones((1, n)), np.ones(1), A_w, b_w, SOLVE_TOL, max_iter)
    if not lifted:
        return finish(x, status, lo, hi, G, h)
    if status == OK:
        w, converged = capped_kinked_nb(
            Qs, qs, prev, scale * cost, lo, hi, G, h, max_turnover, x, max_iter
        )
        if converged:
            w, status = finish(w, OK, lo, hi, G, h)
            moved = 0.0
            for i in range(n):
                moved += abs(w[i] - prev[i])
            if status == OK and moved <= max_turnover + ACCURACY:
                return w, status
    m_w = A_w.shape[0]
    capped = np.isfinite(max_turnover)
    m = m_w + 2 * n + (1 if capped else 0)
    Q = np.zeros((2 * n, 2 * n))
    c = np.zeros(2 * n)
    for i in range(n):
        for j in range(n):
            Q[i, j] = gamma * scale * cov[i, j]
        Q[n + i, n + i] = LIFT
        c[i] = -scale * mu[i]
        c[n + i] = scale * cost[i]
    A_eq = np.zeros((1, 2 * n))
    A_eq[0, :n] = 1.0
    A_in = np.zeros((m, 2 * n))
    b_in = np.zeros(m)
    A_in[:m_w, :n] = A_w
    b_in[:m_w] = b_w
    for i in range(n):
        A_in[m_w + 2 * i, n + i] = 1.0  # t_i - w_i >= -prev_i
        A_in[m_w + 2 * i, i] = -1.0
        b_in[m_w + 2 * i] = -prev[i]
        A_in[m_w + 2 * i + 1, n + i] = 1.0  # t_i + w_i >= prev_i
        A_in[m_w + 2 * i + 1, i] = 1.0
        b_in[m_w + 2 * i + 1] = prev[i]
    if capped:
        A_in[m - 1, n:] = -1.0
        b_in[m - 1] = -max_turnover
    x, status, _ = qp_nb(Q, c, A_eq, np.ones(1), A_in, b_in, SOLVE_TOL, max_iter, False)
    w, status = finish(x[:n].copy(), status, lo, hi, G, h)
    if status == OK and capped:
        moved = 0.0
        for i in range(n):
            moved += abs(w[i] - prev[i])
        if not moved <= max_turnover + ACCURACY:
            return np.full(n, np.nan), INACCURATE
    return w, status


# ------------------------------------------------- the other convex objectives, net of trading costs
def efficient_return_net(mu, cov, gamma, prev, cost, max_turnover, target, lo, hi, G, h, max_iter):
    """``min gamma/2 w'Sw + sum_i cost_i |w_i - prev_i|`` subject to ``mu'w >= target``, the
    bounds, ``G w <= h`` and the turnover cap: the efficient-return portfolio net of the cost of
    reaching it (the return row joins ``G``). Returns ``(weights, status)``; ``INFEASIBLE`` when no
    portfolio within the limits (and the cap) earns ``target``."""
    G_r = np.vstack([G, -mu[None, :]])
    h_r = np.append(h, -float(target))
    return max_utility_nb(
        np.zeros_like(mu), cov, gamma, prev, cost, max_turnover, lo, hi, G_r, h_r, max_iter
    )


def efficient_risk_net(
    mu, cov, prev, cost, max_turnover, target_volatility, lo, hi, G, h, max_iter, tol=1e-10
):
    """``max mu'w - sum_i cost_i |w_i - prev_i|`` subject to ``sqrt(w'Sw) <= target_volatility``,
    the bounds, ``G w <= h`` and the turnover cap.

    The volatility constraint enters through its multiplier: the solution of
    :func:`max_utility_nb` at risk aversion ``gamma`` has a volatility that falls as ``gamma``
    rises (continuously: ``S`` is positive definite), and at the ``gamma`` where it meets the target
    it solves this problem (the KKT conditions of both coincide). ``gamma`` is found by Illinois
    regula falsi on ``log(gamma)``; the weights returned are on the side within the target.
    ``INFEASIBLE`` when the target is below the least volatility the limits (and the cap) allow.
    """

    def solve(gamma):
        w, status = max_utility_nb(mu, cov, gamma, prev, cost, max_turnover, lo, hi, G, h, max_iter)
        vol = math.sqrt(max(float(w @ cov @ w), 0.0)) if status == OK else math.nan
        return w, status, vol

    g_lo, g_hi = 1.0, 1.0
    w_lo, status, v_lo = solve(g_lo)
    if status != OK:
        return w_lo, status
    if v_lo <= target_volatility:  # find a gamma whose volatility is above the target
        w_hi, v_hi = w_lo, v_lo
        while v_lo <= target_volatility:
            if g_lo < 1e-9:
                return w_lo, OK  # the cap on risk does not bind: the best net return
            g_hi, w_hi, v_hi = g_lo, w_lo, v_lo
            g_lo /= 16.0
            w_lo, status, v_lo = solve(g_lo)
            if status != OK:
                return w_hi, OK
    else:  # and one whose volatility is within it
        w_hi, v_hi = w_lo, v_lo
        while v_hi > target_volatility:
            if g_hi > 1e12:
                return w_hi, INFEASIBLE  # below the least volatility within the limits
            g_lo, w_lo, v_lo = g_hi, w_hi, v_hi
            g_hi *= 16.0
            w_hi, status, v_hi = solve(g_hi)
            if status != OK:
                return w_hi, status

    def evaluate(x):
        w, status, v = solve(math.exp(x))
        return (v - target_volatility, w) if status == OK else None

    x_lo, x_hi = math.log(g_lo), math.log(g_hi)
    f_lo, f_hi = v_lo - target_volatility, v_hi - target_volatility  # f_lo > 0 >= f_hi
    if -f_hi <= tol * target_volatility:
        return w_hi, OK
    return illinois(evaluate, x_lo, f_lo, x_hi, f_hi, w_hi, tol * target_volatility, 1e-13), OK


def net_frontier_points(mu, cov, gamma, prev, cost, max_turnover, n_points, lo, hi, G, h, max_iter):
    """Weights of ``n_points`` portfolios of the frontier net of trading costs from the book
    ``prev``: :func:`efficient_return_net` at target returns evenly spaced from the return of the
    least-risk-and-cost portfolio to the maximum attainable return; rows that failed (a target the
    turnover cap cannot reach) are NaN."""
    n = mu.shape[0]
    out = np.full((n_points, n), np.nan)
    zero = np.zeros(n)
    w_min, status = max_utility_nb(
        zero, cov, gamma, prev, cost, max_turnover, lo, hi, G, h, max_iter
    )
    if status != OK:
        return out
    w_max, status = max_return(mu, cov, lo, hi, G, h, max_iter)
    r_min = float(mu @ w_min)
    r_max = float(mu @ w_max) if status == OK else r_min
    out[0] = w_min
    for k, target in enumerate(np.linspace(r_min, max(r_min, r_max), n_points)[1:], start=1):
        w, status = efficient_return_net(
            mu, cov, gamma, prev, cost, max_turnover, target, lo, hi, G, h, max_iter
        )
        if status == OK:
            out[k] = w
        elif k == n_points - 1 and np.abs(w_max - prev).sum() <= max_turnover:
            out[k] = w_max  # the top is the maximum-return portfolio (round-off can refuse it)
    return out
