"""A dense, exact quadratic-programming solver in numba (Goldfarb-Idnani dual active set).

Solves

    minimise    0.5 x' Q x + c' x
    subject to  A_eq x  = b_eq
                A_in x >= b_in

for a symmetric positive definite ``Q`` of a few hundred variables at most. The dual method starts at
the unconstrained minimum and adds the most violated constraint at each step, keeping a QR-like
factorisation ``J' N = [R; 0]`` of the active constraint normals up to date with Givens rotations; it
needs no feasible starting point and ends on an exact vertex of the active set (no interior-point
tolerance). Reference: D. Goldfarb and A. Idnani (1983), "A numerically stable dual method for solving
strictly convex quadratic programs", Math. Programming 27. The problem builders for portfolios
(minimum variance, homogenised maximum Sharpe, target return, maximum return, projection) live in
:mod:`strategies.portfolio_qp`.

Implementation notes: ``J`` is stored transposed (``T = J'``, initially ``L^{-1}`` for ``Q = L L'``)
so that the Givens rotations and the primal step are contiguous row operations. (A special O(1) path
for unit-vector rows was tried and removed: its branches made the loops 2.6 times slower.)
Kernels follow the project's numba practice: ``cache=True``, no ``fastmath``, arrays in and out; the
public :func:`solve_qp` validates and calls them.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from strategies.errors import SolverError
from strategies.pdas import pdas_nb

#: Solver status codes returned by the kernels.
OK, INFEASIBLE, MAX_ITER, NOT_POSITIVE_DEFINITE, DEPENDENT_EQUALITIES, INACCURATE = 0, 1, 2, 3, 4, 5
STATUS_TEXT = {
    OK: "optimal",
    INFEASIBLE: "infeasible constraints",
    MAX_ITER: "iteration limit reached",
    NOT_POSITIVE_DEFINITE: "matrix not positive definite",
    DEPENDENT_EQUALITIES: "linearly dependent equality constraints",
    INACCURATE: "solution violates the constraints beyond round-off (ill-conditioned problem)",
}

_EPS = 2.220446049250313e-16
#: Active-set guesses tried by the primal-dual front end before Goldfarb-Idnani takes over.
PDAS_STEPS = 30


@nb.njit(cache=True)
def cholesky_nb(Q: np.ndarray, L: np.ndarray) -> float:
    """Lower Cholesky factor ``Q = L L'`` into ``L``; returns the smallest pivot ratio.

    The pivot ratio of row ``j`` is ``L[j, j]**2 / Q[j, j]`` (1 minus the R^2 of regressing asset ``j``
    on the assets before it); a value near 0 flags a singular or ill-conditioned ``Q``. Returns -1.0
    when the factorisation breaks down (``Q`` not positive definite).
    """
    n = Q.shape[0]
    min_ratio = 1.0
    for j in range(n):
        s = Q[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not (s > 0.0) or Q[j, j] <= 0.0:
            return -1.0
        min_ratio = min(min_ratio, s / Q[j, j])
        ljj = math.sqrt(s)
        L[j, j] = ljj
        for i in range(j + 1, n):
            t = Q[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / ljj
        for i in range(j):
            L[i, j] = 0.0
    return min_ratio


@nb.njit(cache=True)
def cholesky_inverse_nb(Q: np.ndarray, T: np.ndarray) -> float:
    """Write ``T = L^{-1}`` (so ``T' T = Q^{-1}``) for ``Q = L L'``; return the smallest pivot ratio
    (see :func:`cholesky_nb`), or -1.0 when ``Q`` is not positive definite."""
    n = Q.shape[0]
    L = np.empty((n, n))
    ratio = cholesky_nb(Q, L)
    if ratio < 0.0:
        return ratio
    for i in range(n):
        for col in range(n):
            T[i, col] = 0.0
        for col in range(i):
            t = 0.0
            for k in range(col, i):
                t -= L[i, k] * T[k, col]
            T[i, col] = t / L[i, i]
        T[i, i] = 1.0 / L[i, i]
    return ratio


@nb.njit(cache=True)
def _unit_rows(A):
    """For each row: the index of its single non-zero entry and that entry, or (-1, 0)."""
    m, n = A.shape
    idx = np.full(m, -1, dtype=np.int64)
    val = np.zeros(m)
    for r in range(m):
        found = -1
        count = 0
        for k in range(n):
            if A[r, k] != 0.0:
                count += 1
                found = k
        if count == 1:
            idx[r] = found
            val[r] = A[r, found]
    return idx, val


@nb.njit(cache=True)
def _directions(T, R, normal, iq, d, z, r):
    """d = J' n; z = J[:, iq:] d[iq:] (primal step); r = R^{-1} d[:iq] (dual step)."""
    n = T.shape[0]
    for i in range(n):
        t = 0.0
        for k in range(n):
            t += T[i, k] * normal[k]
        d[i] = t
    z[:] = 0.0
    for i in range(iq, n):
        di = d[i]
        for k in range(n):
            z[k] += T[i, k] * di
    for i in range(iq - 1, -1, -1):
        t = d[i]
        for k in range(i + 1, iq):
            t -= R[i, k] * r[k]
        r[i] = t / R[i, i]


@nb.njit(cache=True)
def _rotate_rows(M, a, b, cc, ss, start, stop):
    """Apply the Givens reflection (cc, ss) to rows a and b of M, columns start..stop-1."""
    xny = ss / (1.0 + cc)
    for k in range(start, stop):
        t1 = M[a, k]
        t2 = M[b, k]
        M[a, k] = t1 * cc + t2 * ss
        M[b, k] = xny * (t1 + M[a, k]) - t2


@nb.njit(cache=True)
def _add_constraint(R, T, d, iq, r_norm):
    """Rotate ``d`` into ``[d1; 0]`` (updating J) and append it to R; return (ok, iq, r_norm)."""
    n = T.shape[0]
    for j in range(n - 1, iq, -1):
        cc = d[j - 1]
        ss = d[j]
        h = math.hypot(cc, ss)
        if h == 0.0:
            continue
        d[j] = 0.0
        ss /= h
        cc /= h
        if cc < 0.0:
            cc = -cc
            ss = -ss
            d[j - 1] = -h
        else:
            d[j - 1] = h
        _rotate_rows(T, j - 1, j, cc, ss, 0, n)
    iq += 1
    for i in range(iq):
        R[i, iq - 1] = d[i]
    if abs(d[iq - 1]) <= _EPS * r_norm:
        return False, iq, r_norm
    return True, iq, max(r_norm, abs(d[iq - 1]))


@nb.njit(cache=True)
def _delete_constraint(R, T, active, u, me, iq, constraint):
    """Drop ``constraint`` from the active set and restore the triangular R with Givens rotations."""
    n = T.shape[0]
    qq = -1
    for i in range(me, iq):
        if active[i] == constraint:
            qq = i
            break
    if qq < 0:
        return iq
    for i in range(qq, iq - 1):
        active[i] = active[i + 1]
        u[i] = u[i + 1]
        for j in range(n):
            R[j, i] = R[j, i + 1]
    active[iq - 1] = active[iq]
    u[iq - 1] = u[iq]
    active[iq] = 0
    u[iq] = 0.0
    for j in range(iq):
        R[j, iq - 1] = 0.0
    iq -= 1
    for j in range(qq, iq):
        cc = R[j, j]
        ss = R[j + 1, j]
        h = math.hypot(cc, ss)
        if h == 0.0:
            continue
        cc /= h
        ss /= h
        R[j + 1, j] = 0.0
        if cc < 0.0:
            R[j, j] = -h
            cc = -cc
            ss = -ss
        else:
            R[j, j] = h
        _rotate_rows(R, j, j + 1, cc, ss, j + 1, iq)
        _rotate_rows(T, j, j + 1, cc, ss, 0, n)
    return iq


@nb.njit(cache=True)
def _slack(A_in, b_in, x, i):
    t = -b_in[i]
    for k in range(x.shape[0]):
        t += A_in[i, k] * x[k]
    return t


@nb.njit(cache=True)
def _add_by_id(T, R, A_eq, A_in, cid, iq, r_norm, d, z, r):
    me = A_eq.shape[0]
    normal = A_eq[cid] if cid < me else A_in[cid - me]
    _directions(T, R, normal, iq, d, z, r)
    return _add_constraint(R, T, d, iq, r_norm)


@nb.njit(cache=True)
def gi_solve_nb(T, c, A_eq, b_eq, A_in, b_in, x, tol, max_iter):
    """Goldfarb-Idnani on a factorised problem. ``T = L^{-1}`` (from :func:`cholesky_inverse_nb`) is
    overwritten; the solution is written to ``x``. Returns ``(status, n_iter)``.

    Constraint rows should be scaled to unit norm so that ``tol`` is a distance.
    """
    n = T.shape[0]
    me = A_eq.shape[0]
    mi = A_in.shape[0]
    T0 = T.copy()
    R = np.zeros((n, n))
    d = np.zeros(n)
    z = np.zeros(n)
    r = np.zeros(n + 1)
    u = np.zeros(n + 1)
    active = np.zeros(n + 1, dtype=np.int64)
    # unconstrained minimum x = -J J' c = -T' T c
    x[:] = 0.0
    for i in range(n):
        t = 0.0
        for k in range(n):
            t += T[i, k] * c[k]
        for k in range(n):
            x[k] -= T[i, k] * t
    iq = 0
    r_norm = 1.0
    if me > n:
        return DEPENDENT_EQUALITIES, 0
    for i in range(me):
        normal = A_eq[i]
        _directions(T, R, normal, iq, d, z, r)
        zn = 0.0
        zz = 0.0
        nx = 0.0
        for k in range(n):
            zn += z[k] * normal[k]
            zz += z[k] * z[k]
            nx += normal[k] * x[k]
        t2 = 0.0
        if zz > _EPS * _EPS:
            t2 = (b_eq[i] - nx) / zn
        for k in range(n):
            x[k] += t2 * z[k]
        u[iq] = t2
        for k in range(iq):
            u[k] -= t2 * r[k]
        active[iq] = i
        ok, iq, r_norm = _add_constraint(R, T, d, iq, r_norm)
        if not ok:
            return DEPENDENT_EQUALITIES, 0
    inactive = np.ones(mi, dtype=np.bool_)
    allowed = np.ones(mi, dtype=np.bool_)
    s = np.zeros(mi)
    x_old = x.copy()
    u_old = u.copy()
    active_old = active.copy()
    n_iter = 0
    while True:  # step 1: a new outer iteration from a primal-dual optimal pair
        n_iter += 1
        if n_iter > max_iter:
            return MAX_ITER, n_iter
        inactive[:] = True
        for i in range(me, iq):
            inactive[active[i] - me] = False
        for i in range(mi):
            s[i] = _slack(A_in, b_in, x, i)
        x_old[:] = x
        u_old[:] = u
        active_old[:] = active
        iq_old = iq
        while True:  # step 2: choose the most violated allowed constraint
            ip = -1
            worst = -tol
            for i in range(mi):
                if inactive[i] and allowed[i] and s[i] < worst:
                    worst = s[i]
                    ip = i
            if ip < 0:
                return OK, n_iter
            normal = A_in[ip]
            u[iq] = 0.0
            active[iq] = me + ip
            added = False
            while True:  # step 2a-2c: step towards satisfying constraint ip
                n_iter += 1
                if n_iter > max_iter:
                    return MAX_ITER, n_iter
                _directions(T, R, normal, iq, d, z, r)
                t1 = np.inf
                drop = -1
                for k in range(me, iq):
                    if r[k] > 0.0 and u[k] / r[k] < t1:
                        t1 = u[k] / r[k]
                        drop = active[k]
                zz = 0.0
                dd = 0.0
                zn = 0.0
                for k in range(n):
                    zz += z[k] * z[k]
                    dd += d[k] * d[k]
                    zn += z[k] * normal[k]
                t2 = np.inf
                if iq < n and zz > 1e-20 * dd and zn > 0.0:
                    t2 = -s[ip] / zn
                t = min(t1, t2)
                if t == np.inf:
                    return INFEASIBLE, n_iter
                if t2 == np.inf:  # dual step only: drop a constraint
                    for k in range(iq):
                        u[k] -= t * r[k]
                    u[iq] += t
                    inactive[drop - me] = True
                    iq = _delete_constraint(R, T, active, u, me, iq, drop)
                    continue
                for k in range(n):
                    x[k] += t * z[k]
                for k in range(iq):
                    u[k] -= t * r[k]
                u[iq] += t
                if t2 <= t1:  # full step: constraint ip becomes active
                    ok, iq, r_norm = _add_constraint(R, T, d, iq, r_norm)
                    if ok:
                        inactive[ip] = False
                        added = True
                        break
                    # numerically dependent: restore the last optimal pair and exclude ip
                    allowed[ip] = False
                    x[:] = x_old
                    u[:] = u_old
                    active[:] = active_old
                    T[:, :] = T0
                    R[:, :] = 0.0
                    r_norm = 1.0
                    iq = 0
                    for i in range(iq_old):
                        _ok, iq, r_norm = _add_by_id(
                            T, R, A_eq, A_in, active[i], iq, r_norm, d, z, r
                        )
                    inactive[:] = True
                    for i in range(me, iq):
                        inactive[active[i] - me] = False
                    for i in range(mi):
                        s[i] = _slack(A_in, b_in, x, i)
                    break
                # partial step: drop the blocking constraint and retry
                inactive[drop - me] = True
                iq = _delete_constraint(R, T, active, u, me, iq, drop)
                s[ip] = _slack(A_in, b_in, x, ip)
            if added:
                break


def solve_qp(
    Q: np.ndarray,
    c: np.ndarray,
    A_eq: np.ndarray | None = None,
    b_eq: np.ndarray | None = None,
    A_in: np.ndarray | None = None,
    b_in: np.ndarray | None = None,
    tol: float = 1e-12,
    max_iter: int | None = None,
) -> np.ndarray:
    """Minimise ``0.5 x'Qx + c'x`` subject to ``A_eq x = b_eq`` and ``A_in x >= b_in``.

    Parameters
    ----------
    Q : ndarray of shape (n, n)
        Symmetric positive definite.
    c : ndarray of shape (n,)
    A_eq, b_eq : ndarray of shape (m_eq, n) and (m_eq,), optional
    A_in, b_in : ndarray of shape (m_in, n) and (m_in,), optional
    tol : float
        Feasibility tolerance on the (row-normalised) inequality constraints.
    max_iter : int, optional
        Defaults to ``10 * (n + m_in) + 50``.

    Returns
    -------
    x : ndarray of shape (n,)

    Raises
    ------
    SolverError
        When the problem is infeasible, ``Q`` is not positive definite, or the iteration limit is hit.

    Examples
    --------
    >>> x = solve_qp(np.eye(2), np.array([-1.0, -1.0]), A_in=np.eye(2), b_in=np.array([0.0, 2.0]))
    >>> np.round(x, 12)
    array([1., 2.])
    """
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    n = Q.shape[0]
    if Q.shape != (n, n):
        raise ValueError(f"`Q` must be square; got shape {Q.shape}")
    c = np.ascontiguousarray(c, dtype=np.float64).reshape(n)
    A_eq, b_eq = _rows(A_eq, b_eq, n, "A_eq")
    A_in, b_in = _rows(A_in, b_in, n, "A_in")
    x, status, _ = solve_qp_arrays(Q, c, A_eq, b_eq, A_in, b_in, tol, max_iter)
    if status != OK:
        raise SolverError(f"quadratic program not solved: {STATUS_TEXT[status]}")
    return x


def solve_qp_arrays(Q, c, A_eq, b_eq, A_in, b_in, tol=1e-12, max_iter=None):
    """Thin wrapper without validation: returns ``(x, status, n_iter)``."""
    limit = int(max_iter) if max_iter is not None else 10 * (Q.shape[0] + A_in.shape[0]) + 50
    x, status, n_iter = qp_nb(Q, c, A_eq, b_eq, A_in, b_in, float(tol), limit)
    return x, int(status), int(n_iter)


@nb.njit(cache=True)
def qp_nb(Q, c, A_eq, b_eq, A_in, b_in, tol, max_iter, try_pdas=True):
    """Normalise constraint rows, factorise ``Q``, try the primal-dual active-set front end
    (:mod:`strategies.pdas`, when ``try_pdas``) and fall back to Goldfarb-Idnani; returns
    ``(x, status, n_iter)`` with ``n_iter = 0`` when the front end converged. The front end suits
    problems whose inequalities are mostly unit rows (weight bounds); it is skipped for the
    homogenised maximum-Sharpe problem, whose dense upper-bound rows make its bulk guesses
    infeasible."""
    n = Q.shape[0]
    A_eq_n, b_eq_n = _normalise_rows_nb(A_eq, b_eq)
    A_in_n, b_in_n = _normalise_rows_nb(A_in, b_in)
    T = np.empty((n, n))
    x = np.full(n, np.nan)
    if cholesky_inverse_nb(Q, T) < 0.0:
        return x, NOT_POSITIVE_DEFINITE, 0
    if try_pdas:
        unit, sign = _unit_rows(A_in_n)
        guess, converged = pdas_nb(
            Q, c, A_eq_n, b_eq_n, A_in_n, b_in_n, unit, sign, tol, PDAS_STEPS
        )
        if converged:
            return guess, OK, 0
    status, n_iter = gi_solve_nb(T, c, A_eq_n, b_eq_n, A_in_n, b_in_n, x, tol, max_iter)
    return x, status, n_iter


@nb.njit(cache=True)
def _normalise_rows_nb(A, b):
    m, n = A.shape
    A_out = np.empty((m, n))
    b_out = np.empty(m)
    for i in range(m):
        t = 0.0
        for k in range(n):
            t += A[i, k] * A[i, k]
        norm = math.sqrt(t) if t > 0.0 else 1.0
        for k in range(n):
            A_out[i, k] = A[i, k] / norm
        b_out[i] = b[i] / norm
    return A_out, b_out


def _rows(A, b, n, name):
    if A is None:
        return np.zeros((0, n)), np.zeros(0)
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    if A.shape[1] != n or b.shape != (A.shape[0],):
        raise ValueError(
            f"`{name}` must have shape (m, {n}) with a right-hand side of shape (m,); "
            f"got {A.shape} and {b.shape}"
        )
    return A, b
