"""Primal-dual active-set front end for the QP solver (Hintermueller, Ito and Kunisch, 2002).

For ``min 0.5 x'Qx + c'x`` s.t. ``A_eq x = b_eq`` and ``A_in x >= b_in`` it guesses the active set,
solves the equality-constrained KKT system for that guess, and updates the guess with the rule
``active = {i : lambda_i + (b_i - A_i x) > 0}`` (a semismooth Newton step). Active rows that are unit
vectors (weight bounds) fix their variable and are eliminated, so each step solves a system of the
size of the free variables plus the active general rows -- small for portfolios, where most weights
sit at a bound. The result is accepted only when it satisfies the KKT conditions (primal and dual
feasibility within the tolerance); otherwise the caller runs Goldfarb-Idnani from scratch.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def lu_solve_nb(K: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, bool]:
    """Solve ``K x = rhs`` by Gaussian elimination with partial pivoting; ``(x, ok)``."""
    m = K.shape[0]
    A = K.copy()
    x = rhs.copy()
    scale = 0.0
    for i in range(m):
        for j in range(m):
            scale = max(scale, abs(A[i, j]))
    if scale == 0.0:
        return x, m == 0
    for col in range(m):
        piv = col
        for i in range(col + 1, m):
            if abs(A[i, col]) > abs(A[piv, col]):
                piv = i
        if abs(A[piv, col]) <= 1e-13 * scale:
            return x, False
        if piv != col:
            for j in range(m):
                A[col, j], A[piv, j] = A[piv, j], A[col, j]
            x[col], x[piv] = x[piv], x[col]
        for i in range(col + 1, m):
            f = A[i, col] / A[col, col]
            if f != 0.0:
                for j in range(col, m):
                    A[i, j] -= f * A[col, j]
                x[i] -= f * x[col]
    for i in range(m - 1, -1, -1):
        t = x[i]
        for j in range(i + 1, m):
            t -= A[i, j] * x[j]
        x[i] = t / A[i, i]
    return x, True


@nb.njit(cache=True)
def _solve_guess(Q, c, A_eq, b_eq, A_in, b_in, unit, sign, active, x, lam):
    """Solve the KKT system with the rows in ``active`` as equalities; fill x and lam (all rows)."""
    n = Q.shape[0]
    me = A_eq.shape[0]
    mi = A_in.shape[0]
    fixed = np.full(n, -1, dtype=np.int64)  # row fixing each variable
    x[:] = 0.0
    n_gen = 0
    for i in range(mi):
        if not active[i]:
            continue
        if unit[i] >= 0:
            j = unit[i]
            value = b_in[i] / sign[i]
            if fixed[j] >= 0 and abs(x[j] - value) > 1e-14 * (1.0 + abs(value)):
                return False
            if fixed[j] < 0:
                fixed[j] = i
                x[j] = value
        else:
            n_gen += 1
    free = np.empty(n, dtype=np.int64)
    nf = 0
    for j in range(n):
        if fixed[j] < 0:
            free[nf] = j
            nf += 1
    gen = np.empty(n_gen, dtype=np.int64)
    k = 0
    for i in range(mi):
        if active[i] and unit[i] < 0:
            gen[k] = i
            k += 1
    m = nf + me + n_gen
    K = np.zeros((m, m))
    rhs = np.zeros(m)
    for a in range(nf):
        ja = free[a]
        t = -c[ja]
        for j in range(n):
            if fixed[j] >= 0:
                t -= Q[ja, j] * x[j]
        rhs[a] = t
        for b in range(nf):
            K[a, b] = Q[ja, free[b]]
    for e in range(me + n_gen):
        row = A_eq[e] if e < me else A_in[gen[e - me]]
        target = b_eq[e] if e < me else b_in[gen[e - me]]
        for j in range(n):
            if fixed[j] >= 0:
                target -= row[j] * x[j]
        rhs[nf + e] = -target
        for a in range(nf):
            K[nf + e, a] = -row[free[a]]
            K[a, nf + e] = -row[free[a]]
    sol, ok = lu_solve_nb(K, rhs)
    if not ok:
        return False
    for a in range(nf):
        x[free[a]] = sol[a]
    # gradient minus the equality and general-row terms gives the bound multipliers
    grad = Q @ x + c
    for e in range(me):
        for j in range(n):
            grad[j] -= sol[nf + e] * A_eq[e, j]
    lam[:] = 0.0
    for g in range(n_gen):
        i = gen[g]
        lam[i] = sol[nf + me + g]
        for j in range(n):
            grad[j] -= lam[i] * A_in[i, j]
    for j in range(n):
        if fixed[j] >= 0:
            lam[fixed[j]] = grad[j] / sign[fixed[j]]
    return True


@nb.njit(cache=True)
def pdas_nb(Q, c, A_eq, b_eq, A_in, b_in, unit, sign, tol, max_steps):
    """Returns ``(x, converged)``; rows of A_in normalised, ``unit``/``sign`` from ``_unit_rows``."""
    n = Q.shape[0]
    mi = A_in.shape[0]
    x = np.zeros(n)
    lam = np.zeros(mi)
    active = np.zeros(mi, dtype=np.bool_)
    nxt = np.zeros(mi, dtype=np.bool_)
    lam_scale = 1.0
    for _ in range(max_steps):
        if not _solve_guess(Q, c, A_eq, b_eq, A_in, b_in, unit, sign, active, x, lam):
            return x, False
        for i in range(mi):
            lam_scale = max(lam_scale, abs(lam[i]))
        optimal = True
        changed = False
        for i in range(mi):
            if unit[i] >= 0:
                slack = sign[i] * x[unit[i]] - b_in[i]
            else:
                slack = -b_in[i]
                for j in range(n):
                    slack += A_in[i, j] * x[j]
            if active[i]:
                nxt[i] = lam[i] - slack > 0.0
                if lam[i] < -tol * lam_scale:
                    optimal = False
            else:
                nxt[i] = slack < -tol
                if nxt[i]:
                    optimal = False
            changed = changed or nxt[i] != active[i]
        if optimal:
            return x, True
        if not changed:
            return x, False
        active[:] = nxt
    return x, False
