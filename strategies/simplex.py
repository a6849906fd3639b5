"""A bounded-variable primal simplex in numba for the dual tail-risk programmes of
:mod:`strategies.tail_lp`.

Solves

    maximise    c' x
    subject to  A x = b
                lb <= x <= ub        (entries of lb may be -inf, of ub +inf)

from a feasible basis the caller supplies together with its inverse (the tail-risk programmes
have one by construction, so there is no phase 1). The columns of ``A`` come in two blocks:

* scenario columns ``j < n_scen``: ``1`` on row 0, the scenario's returns ``scen[j]`` on rows
  ``1 .. n_assets`` and, when ``gub[j] >= 0``, ``1`` on row ``gub[j]`` -- stored densely, so that
  pricing them is one matrix-vector product;
* the other columns, stored sparse by column (CSC arrays ``indptr``, ``indices``, ``data``).

The basis inverse is a dense ``(m, m)`` array with one rank-one update per pivot, so an iteration
costs ``O(m**2 + n_scen * n_assets)``. Pricing is Devex (approximate steepest edge, the weights
reset when one passes :data:`DEVEX_RESET`) with the reduced costs updated from the pivot row; the ratio test is Harris' two-pass test with bound
flips; a run of :data:`BLAND_AFTER` degenerate pivots switches to Bland's rule until the
objective moves again (Harris' pass still picks the leaving row by the largest pivot, so cycling
is not ruled out in theory: the iteration limit and the checked HiGHS fallback bound it). Before reporting an optimum, the basic values and
the row multipliers ``y`` (``B' y = c_B``) get two steps of iterative refinement and optimality
is checked again on the refined values. Nonbasic variables sit exactly on a bound (a free one at
0), so the vertex is exact up to the round-off of the basic solve.

:func:`simplex_twin` is the slow pure-NumPy twin used as the test oracle: the same rules on a
dense ``A``, with the inverse, multipliers and reduced costs recomputed from scratch at every
iteration.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: Status codes of :func:`simplex_nb`.
OK, UNBOUNDED, MAX_ITER = 0, 1, 2
STATUS_TEXT = {
    OK: "optimal",
    UNBOUNDED: "unbounded (the programme it is the dual of has no feasible point)",
    MAX_ITER: "iteration limit reached",
}
#: Reduced costs beyond this are improving.
OPT_TOL = 1e-11
#: Basic values may cross a bound by this much inside the Harris ratio test.
FEAS_TOL = 1e-10
#: Smaller pivots are never taken.
PIVOT_TOL = 1e-10
#: Degenerate pivots in a row before Bland's rule takes over.
BLAND_AFTER = 200
#: A Devex weight beyond this resets them all to 1.
DEVEX_RESET = 1e6


@nb.njit(cache=True)
def _dot(scen, gub, indptr, indices, data, j, v):
    """``a_j . v`` for column ``j`` of ``A``."""
    n_scen, n = scen.shape
    if j < n_scen:
        s = v[0]
        for k in range(n):
            s += scen[j, k] * v[k + 1]
        if gub[j] >= 0:
            s += v[gub[j]]
        return s
    s = 0.0
    j -= n_scen
    for p in range(indptr[j], indptr[j + 1]):
        s += data[p] * v[indices[p]]
    return s


@nb.njit(cache=True)
def _axpy_column(scen, gub, indptr, indices, data, j, scale, out):
    """``out += scale * a_j``."""
    n_scen, n = scen.shape
    if j < n_scen:
        out[0] += scale
        for k in range(n):
            out[k + 1] += scale * scen[j, k]
        if gub[j] >= 0:
            out[gub[j]] += scale
        return
    j -= n_scen
    for p in range(indptr[j], indptr[j + 1]):
        out[indices[p]] += scale * data[p]


@nb.njit(cache=True)
def _ftran(scen, gub, indptr, indices, data, Binv, j, alpha):
    """``alpha = Binv a_j``, row by row (contiguous reads of ``Binv``)."""
    m = Binv.shape[0]
    for i in range(m):
        alpha[i] = _dot(scen, gub, indptr, indices, data, j, Binv[i])


@nb.njit(cache=True)
def _row_prices(scen, gub, indptr, indices, data, v, out):
    """``out[j] = a_j . v`` for every column (the scenario block as one matrix-vector product)."""
    n_scen, n = scen.shape
    if n_scen:
        out[:n_scen] = np.dot(scen, v[1 : n + 1]) + v[0]
        for j in range(n_scen):
            if gub[j] >= 0:
                out[j] += v[gub[j]]
    for j in range(n_scen, out.shape[0]):
        out[j] = _dot(scen, gub, indptr, indices, data, j, v)


@nb.njit(cache=True)
def _refine(scen, gub, indptr, indices, data, b, c, basis, x, Binv, y, d):
    """Basic values from ``A x = b`` and multipliers from ``B' y = c_B`` (two refinement steps
    each, with the current inverse), then every reduced cost ``d = c - A' y``."""
    m = b.shape[0]
    r = np.empty(m)
    for _ in range(2):
        r[:] = b
        for j in range(c.shape[0]):
            if x[j] != 0.0:
                _axpy_column(scen, gub, indptr, indices, data, j, -x[j], r)
        x_b = np.dot(Binv, r)
        for i in range(m):
            x[basis[i]] += x_b[i]
    for _ in range(2):
        for k in range(m):
            r[k] = c[basis[k]] - _dot(scen, gub, indptr, indices, data, basis[k], y)
        y += np.dot(r, Binv)
    _row_prices(scen, gub, indptr, indices, data, y, d)
    for j in range(c.shape[0]):
        d[j] = c[j] - d[j]
    for k in range(m):
        d[basis[k]] = 0.0


@nb.njit(cache=True)
def _entering(d, x, lb, ub, pos, ref, bland):
    """Index of the entering column (-1 at an optimum): the largest improving ``d_j**2 / ref_j``
    (Devex), or the first improving one under Bland's rule."""
    q = -1
    best = 0.0
    for j in range(d.shape[0]):
        if pos[j] >= 0:
            continue
        dj = d[j]
        if (dj > OPT_TOL and x[j] < ub[j]) or (dj < -OPT_TOL and x[j] > lb[j]):
            score = dj * dj / ref[j]
            if score > best:
                q = j
                best = score
                if bland:
                    return q
    return q


@nb.njit(cache=True)
def _ratio_test(alpha, direction, basis, x, lb, ub, flip):
    """Harris' two-pass ratio test: ``(row, step)``; row -1 for a bound flip of the entering
    variable, -2 when nothing blocks (unbounded)."""
    m = alpha.shape[0]
    bound = flip
    for i in range(m):
        delta = -direction * alpha[i]
        k = basis[i]
        if delta < -PIVOT_TOL:
            bound = min(bound, (x[k] - lb[k] + FEAS_TOL) / -delta)
        elif delta > PIVOT_TOL:
            bound = min(bound, (ub[k] - x[k] + FEAS_TOL) / delta)
    if bound == np.inf:
        return -2, 0.0
    if flip <= bound:
        return -1, flip
    row = -1
    size = 0.0
    step = 0.0
    for i in range(m):
        delta = -direction * alpha[i]
        k = basis[i]
        if delta < -PIVOT_TOL:
            ratio = (x[k] - lb[k]) / -delta
        elif delta > PIVOT_TOL:
            ratio = (ub[k] - x[k]) / delta
        else:
            continue
        if ratio <= bound and abs(delta) > size:
            row, size, step = i, abs(delta), ratio
    return row, max(step, 0.0)


@nb.njit(cache=True)
def _pivot(Binv, alpha, d, pos, ref, prices, row, q):
    """Reduced costs, Devex weights and the basis inverse after column ``q`` replaces the basic
    one of ``row``; ``prices[j]`` holds ``a_j`` times the pivot row of the old inverse."""
    m = alpha.shape[0]
    a_r = alpha[row]
    d_q = d[q]
    ref_q = ref[q]
    for j in range(d.shape[0]):
        a_rj = prices[j]
        if pos[j] < 0 and j != q and a_rj != 0.0:
            ratio = a_rj / a_r
            d[j] -= d_q * ratio
            ref[j] = max(ref[j], ratio * ratio * ref_q)
    for k in range(m):
        Binv[row, k] /= a_r
    for i in range(m):
        a_i = alpha[i]
        if i != row and a_i != 0.0:
            for k in range(m):
                Binv[i, k] -= a_i * Binv[row, k]


@nb.njit(cache=True)
def simplex_nb(scen, gub, indptr, indices, data, b, c, lb, ub, basis, x, Binv, max_iter):
    """Maximise ``c' x`` over ``A x = b, lb <= x <= ub`` from a feasible basis.

    Parameters
    ----------
    scen : ndarray of shape (n_scen, n_assets)
        Scenario columns (C-contiguous; see the module docstring).
    gub : ndarray of int64, shape (n_scen,)
        Extra row of each scenario column, -1 for none.
    indptr, indices, data : ndarray
        The other columns in CSC form (int64, int64, float64).
    b : ndarray of shape (m,)
    c, lb, ub : ndarray of shape (n_cols,)
        ``n_cols = n_scen + len(indptr) - 1``.
    basis : ndarray of int64, shape (m,)
        The basic column of each row position (updated in place).
    x : ndarray of shape (n_cols,)
        Nonbasic values on a bound (0 for a free variable); basic values are recomputed. Updated in
        place to the solution.
    Binv : ndarray of shape (m, m)
        Inverse of the basis matrix (updated in place).
    max_iter : int

    Returns
    -------
    status : int
        :data:`OK`, :data:`UNBOUNDED` or :data:`MAX_ITER`.
    y : ndarray of shape (m,)
        Multipliers of the rows (at an optimum, the solution of the programme this one is the dual
        of).
    n_iter : int
    """
    m = b.shape[0]
    n_cols = c.shape[0]
    pos = np.full(n_cols, -1, dtype=np.int64)
    for i in range(m):
        pos[basis[i]] = i
    y = np.zeros(m)
    d = np.empty(n_cols)
    prices = np.empty(n_cols)
    ref = np.ones(n_cols)
    alpha = np.empty(m)
    _refine(scen, gub, indptr, indices, data, b, c, basis, x, Binv, y, d)
    degenerate = 0
    n_iter = 0
    while n_iter < max_iter:
        q = _entering(d, x, lb, ub, pos, ref, degenerate >= BLAND_AFTER)
        if q < 0:
            _refine(scen, gub, indptr, indices, data, b, c, basis, x, Binv, y, d)
            q = _entering(d, x, lb, ub, pos, ref, degenerate >= BLAND_AFTER)
            if q < 0:
                return OK, y, n_iter
        n_iter += 1
        direction = 1.0 if d[q] > 0 else -1.0
        _ftran(scen, gub, indptr, indices, data, Binv, q, alpha)
        row, step = _ratio_test(alpha, direction, basis, x, lb, ub, ub[q] - lb[q])
        if row == -2:
            return UNBOUNDED, y, n_iter
        degenerate = degenerate + 1 if step <= 1e-14 else 0
        x[q] += direction * step
        for i in range(m):
            x[basis[i]] -= direction * step * alpha[i]
        if row == -1:  # bound flip: the basis stays
            x[q] = ub[q] if direction > 0 else lb[q]
            continue
        leaving = basis[row]
        x[leaving] = lb[leaving] if direction * alpha[row] > 0 else ub[leaving]
        _row_prices(scen, gub, indptr, indices, data, Binv[row], prices)
        d_q = d[q]
        _pivot(Binv, alpha, d, pos, ref, prices, row, q)
        y += d_q * Binv[row]  # d_q / alpha_r times the old pivot row
        ref[leaving] = max(ref[q] / (alpha[row] * alpha[row]), 1.0)
        ref[q] = 1.0
        if ref[leaving] > DEVEX_RESET:  # the reference framework has drifted: start it afresh
            ref[:] = 1.0
        d[leaving] = -d_q / alpha[row]
        d[q] = 0.0
        basis[row] = q
        pos[q] = row
        pos[leaving] = -1
    return MAX_ITER, y, n_iter


def dense_matrix(scen, gub, indptr, indices, data, m) -> np.ndarray:
    """``A`` of shape ``(m, n_cols)`` as a dense array (for :func:`simplex_twin` and the tests).

    Examples
    --------
    >>> A = dense_matrix(np.array([[0.1, -0.2]]), np.array([-1]), np.array([0, 1]), np.array([1]),
    ...                  np.array([1.0]), 3)
    >>> A
    array([[ 1. ,  0. ],
           [ 0.1,  1. ],
           [-0.2,  0. ]])
    """
    n_scen, n = scen.shape
    A = np.zeros((m, n_scen + len(indptr) - 1))
    A[0, :n_scen] = 1.0
    A[1 : n + 1, :n_scen] = scen.T
    has = gub >= 0
    A[gub[has], np.flatnonzero(has)] = 1.0
    for j in range(len(indptr) - 1):
        A[indices[indptr[j] : indptr[j + 1]], n_scen + j] = data[indptr[j] : indptr[j + 1]]
    return A


def simplex_twin(A, b, c, lb, ub, basis, x, max_iter):
    """Pure-NumPy twin of :func:`simplex_nb` on a dense ``A``: ``(status, x, y, basis, n_iter)``."""
    A = np.asarray(A, dtype=np.float64)
    basis = np.array(basis, dtype=np.int64)
    x = np.array(x, dtype=np.float64)
    ref = np.ones(A.shape[1])
    degenerate = 0
    for n_iter in range(max_iter + 1):
        Binv = np.linalg.inv(A[:, basis])
        nonbasic = np.ones(A.shape[1], dtype=bool)
        nonbasic[basis] = False
        x[basis] = Binv @ (b - A[:, nonbasic] @ x[nonbasic])
        y = c[basis] @ Binv
        d = np.where(nonbasic, c - A.T @ y, 0.0)
        eligible = nonbasic & (((d > OPT_TOL) & (x < ub)) | ((d < -OPT_TOL) & (x > lb)))
        if not eligible.any():
            return OK, x, y, basis, n_iter
        if n_iter == max_iter:
            return MAX_ITER, x, y, basis, n_iter
        score = np.where(eligible, d * d / ref, 0.0)
        q = int(np.argmax(eligible)) if degenerate >= BLAND_AFTER else int(np.argmax(score))
        direction = 1.0 if d[q] > 0 else -1.0
        alpha = Binv @ A[:, q]
        row, step = _ratio_test_twin(alpha, direction, basis, x, lb, ub, ub[q] - lb[q])
        if row == -2:
            return UNBOUNDED, x, y, basis, n_iter
        degenerate = degenerate + 1 if step <= 1e-14 else 0
        x[q] += direction * step
        x[basis] -= direction * step * alpha
        if row == -1:
            x[q] = ub[q] if direction > 0 else lb[q]
            continue
        leaving = basis[row]
        x[leaving] = lb[leaving] if direction * alpha[row] > 0 else ub[leaving]
        ratio = (Binv[row] @ A) / alpha[row]
        ref = np.where(nonbasic & (ratio != 0), np.maximum(ref, ratio**2 * ref[q]), ref)
        ref[leaving] = max(ref[q] / alpha[row] ** 2, 1.0)
        ref[q] = 1.0
        if ref[leaving] > DEVEX_RESET:
            ref[:] = 1.0
        basis[row] = q
    raise AssertionError("unreachable")


def _ratio_test_twin(alpha, direction, basis, x, lb, ub, flip):
    delta = -direction * alpha
    xb, lo, hi = x[basis], lb[basis], ub[basis]
    down, up = delta < -PIVOT_TOL, delta > PIVOT_TOL
    with np.errstate(divide="ignore", invalid="ignore"):
        loose = np.where(down, (xb - lo + FEAS_TOL) / -delta, np.inf)
        loose = np.where(up, (hi - xb + FEAS_TOL) / delta, loose)
        tight = np.where(down, (xb - lo) / -delta, np.inf)
        tight = np.where(up, (hi - xb) / delta, tight)
    bound = min(flip, float(loose.min(initial=np.inf)))
    if bound == np.inf:
        return -2, 0.0
    if flip <= bound:
        return -1, flip
    candidates = (down | up) & (tight <= bound)
    row = int(np.argmax(np.where(candidates, np.abs(delta), -1.0)))
    return row, max(float(tight[row]), 0.0)


def unit_basis_inverse(sign: np.ndarray, column: np.ndarray, row: int) -> np.ndarray:
    """Inverse of a basis whose positions hold ``sign[i] * e_i`` except position ``row``, which
    holds ``column`` (with ``column[row] == 1``): ``diag(sign)`` with column ``row`` replaced.

    Examples
    --------
    >>> B = np.array([[1.0, 0.0, 0.0], [2.0, -1.0, 0.0], [3.0, 0.0, 1.0]])
    >>> Binv = unit_basis_inverse(np.array([1.0, -1.0, 1.0]), B[:, 0], 0)
    >>> bool(np.allclose(Binv @ B, np.eye(3)))
    True
    """
    Binv = np.diag(np.asarray(sign, dtype=np.float64))
    Binv[:, row] = -sign * column
    Binv[row, row] = 1.0
    return Binv
