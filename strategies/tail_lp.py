"""Historical CVaR and CDaR: the measures, and their minimisation as linear programmes.

Both measures average the worst ``1 - beta`` share of ``n_obs`` equally likely scenarios
(Rockafellar & Uryasev 2000), ``CVaR(L) = min_a a + sum_t max(L_t - a, 0) / ((1 - beta) n_obs)``:

* CVaR of the losses ``L_t = -r_t . w`` of the portfolio's returns;
* CDaR of its drawdowns ``L_t = D_t = max(0, max_{s <= t} P_s) - P_t`` on the uncompounded path
  ``P_t = sum_{s <= t} r_s . w`` (Chekhlov, Uryasev & Zabarankin 2005; the definition of skfolio's
  ``get_drawdowns(compounded=False)`` and Riskfolio: the peak starts at 0, so a first-day loss is a
  drawdown).

Minimising either over ``sum(w) = 1``, ``lo <= w <= hi`` and ``G w <= h`` is a linear programme.
We solve its dual with the simplex of :mod:`strategies.simplex`; the weights are the dual's row
multipliers. The dual of the CVaR programme (:func:`cvar_programme`) has ``n_assets + 1`` rows
whatever the number of scenarios and a feasible basis by construction (the ``floor((1 - beta)
n_obs)`` worst scenarios of the equal-weight portfolio at full tail weight), so no phase 1 is
needed. The CDaR programme is solved as a CVaR over (peak, trough) pairs, generated round by
round from the drawdowns of each solution (:func:`_cdar_generation`): its dual keeps
``n_assets + 1`` rows plus one per trough that needs several peaks, where the direct programme
has ``n_obs`` more. docs/allocators.md writes the programmes out.

Every solution is certified: the measure of the returned weights (computed from its definition,
:func:`cvar` / :func:`cdar`) must equal the dual objective (a lower bound on the optimum) to
:data:`GAP_TOL`. Otherwise, or when the simplex stops at its iteration limit, the primal
programme is solved by HiGHS (``scipy.optimize.linprog``) and a note says so.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from strategies.base import project_to_bounds
from strategies.errors import ConstraintError, SolverError
from strategies.simplex import MAX_ITER, OK, STATUS_TEXT, simplex_nb, unit_basis_inverse

Measure = Literal["cvar", "cdar"]
#: Largest accepted gap between the measure of the weights and the dual objective (the units of
#: the returns: 1e-10 is a millionth of a basis point).
GAP_TOL = 1e-10
#: Largest accepted breach of a limit by the weights before they are clipped onto it.
LIMIT_TOL = 1e-10
#: A drawdown above the restricted CDaR programme's by more than this adds its (peak, trough) pair.
VIOLATION_TOL = 1e-13
#: Rounds of pair generation before the CDaR minimisation falls back to HiGHS.
MAX_ROUNDS = 100


def tail_mean(losses: np.ndarray, beta: float) -> float:
    """Average of the worst ``1 - beta`` share of equally likely ``losses`` (the CVaR of losses).

    With ``K = (1 - beta) * n_obs`` the ``ceil(K) - 1`` largest losses count fully and the next
    one for the rest of ``K``; ``K <= 1`` gives the largest loss.

    Parameters
    ----------
    losses : ndarray of shape (n_obs,)
    beta : float
        Confidence level in (0, 1).

    Examples
    --------
    >>> tail_mean(np.array([1.0, 5.0, 2.0, 4.0]), 0.5)  # the worst half: (5 + 4) / 2
    4.5
    """
    losses = np.asarray(losses, dtype=np.float64)
    tail = (1.0 - beta) * losses.shape[0]
    full = max(0, int(np.ceil(tail)) - 1)
    worst = -np.sort(-losses)
    return float((worst[:full].sum() + (tail - full) * worst[full]) / tail)


def cvar(portfolio_returns: np.ndarray, beta: float = 0.95) -> float:
    """Historical CVaR of ``portfolio_returns`` (shape ``(n_obs,)``): the mean loss in the worst
    ``1 - beta`` of the scenarios, as a positive fraction (skfolio's ``measures.cvar``).

    Examples
    --------
    >>> cvar(np.array([0.01, -0.04, 0.02, -0.02]), beta=0.5)  # losses 0.04 and 0.02
    0.03
    """
    return tail_mean(-np.asarray(portfolio_returns, dtype=np.float64), beta)


def drawdowns(portfolio_returns: np.ndarray) -> np.ndarray:
    """Drawdowns ``D_t >= 0`` of the uncompounded path ``P_t = cumsum(returns)``, the peak
    starting at 0; shape ``(n_obs,)`` (minus skfolio's ``get_drawdowns(compounded=False)``).

    Examples
    --------
    >>> drawdowns(np.array([-0.01, 0.03, -0.02, -0.02, 0.05]))
    array([0.01, 0.  , 0.02, 0.04, 0.  ])
    """
    path = np.cumsum(np.asarray(portfolio_returns, dtype=np.float64))
    peak = np.maximum(np.maximum.accumulate(path), 0.0)
    return peak - path


def cdar(portfolio_returns: np.ndarray, beta: float = 0.95) -> float:
    """Historical CDaR: the mean of the worst ``1 - beta`` of the :func:`drawdowns` of
    ``portfolio_returns`` (shape ``(n_obs,)``), skfolio's ``measures.cdar``.

    Examples
    --------
    >>> round(cdar(np.array([-0.01, 0.03, -0.02, -0.02, 0.05]), beta=0.6), 12)  # (0.04 + 0.02) / 2
    0.03
    """
    return tail_mean(drawdowns(portfolio_returns), beta)


MEASURES = {"cvar": cvar, "cdar": cdar}


class Programme(NamedTuple):
    """A dual tail-risk programme in the layout of :func:`strategies.simplex.simplex_nb` (scenario
    columns, then the sparse ones) and a feasible basis with its inverse."""

    scen: np.ndarray
    gub: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    b: np.ndarray
    c: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    basis: np.ndarray
    x: np.ndarray
    Binv: np.ndarray


def _tail_start(losses: np.ndarray, k: float) -> tuple[np.ndarray, int]:
    """Tail weights ``q`` of the scenarios at a vertex of ``{0 <= q <= k, sum(q) = 1}``: the
    worst ``floor(1 / k)`` losses at ``k`` and the next one, returned to be basic, at the rest."""
    n_scen = losses.shape[0]
    n_full = min(int(np.floor(1.0 / k + 1e-12)), n_scen - 1)
    order = np.argsort(-losses, kind="stable")
    q = np.zeros(n_scen)
    q[order[:n_full]] = k
    basic = int(order[n_full])
    q[basic] = 1.0 - n_full * k
    return q, basic


def _limit_columns(lo, hi, G, h):
    """Columns ``lambda`` (budget), ``nu_lo``, ``nu_hi`` (bounds) and ``mu`` (``G w <= h``) on the
    asset rows ``1 .. n_assets``: ``(indptr, indices, data, c, lb)``."""
    n = lo.shape[0]
    rows = 1 + np.arange(n)
    m_g = G.shape[0]
    indices = np.concatenate([rows, rows, rows, np.tile(rows, m_g)])
    data = np.concatenate([np.ones(2 * n), -np.ones(n), -G.ravel()])
    counts = np.concatenate([[n], np.ones(2 * n, dtype=np.int64), np.full(m_g, n)])
    c = np.concatenate([[1.0], lo, -hi, -h])
    lb = np.zeros(c.shape[0])
    lb[0] = -np.inf
    return np.concatenate([[0], np.cumsum(counts)]), indices, data, c, lb


def cvar_programme(returns, beta, lo, hi, G, h, start, n_obs=None) -> Programme:
    """The dual of the CVaR programme and a feasible basis.

    Rows: the budget row ``sum(q) = 1`` then one row per asset,
    ``R' q + lambda + nu_lo - nu_hi - G' mu = 0``. Columns: ``q`` (one per scenario, in
    ``[0, k]``, ``k = 1 / ((1 - beta) n_obs)``), then ``lambda`` (free), ``nu_lo``, ``nu_hi``,
    ``mu`` (``>= 0``); maximise ``lambda + lo' nu_lo - hi' nu_hi - h' mu``. The multipliers of
    the rows are the VaR ``a`` and the weights.

    Parameters
    ----------
    returns : ndarray of shape (n_scen, n_assets)
        One scenario per row.
    beta : float
    lo, hi : ndarray of shape (n_assets,)
    G : ndarray of shape (n_limits, n_assets)
    h : ndarray of shape (n_limits,)
    start : ndarray of shape (n_assets,)
        Weights whose worst scenarios form the starting tail.
    n_obs : int, optional
        The number of equally likely observations (default ``n_scen``).
    """
    n_scen, n = returns.shape
    k = 1.0 / ((1.0 - beta) * (n_scen if n_obs is None else n_obs))
    q, basic = _tail_start(-(returns @ start), k)
    indptr, indices, data, l_c, l_lb = _limit_columns(lo, hi, G, h)
    # each asset row's basic column is nu_lo (sign +1) or nu_hi (sign -1), whichever is >= 0
    sign = np.where(q @ returns <= 0, 1.0, -1.0)
    basis = np.concatenate([[basic], n_scen + 1 + np.arange(n) + n * (sign < 0)])
    column = np.append(1.0, returns[basic])
    return Programme(
        np.ascontiguousarray(returns, dtype=np.float64),
        np.full(n_scen, -1, dtype=np.int64),
        indptr.astype(np.int64),
        indices.astype(np.int64),
        data,
        np.eye(1, n + 1).ravel(),
        np.concatenate([np.zeros(n_scen), l_c]),
        np.concatenate([np.zeros(n_scen), l_lb]),
        np.concatenate([np.full(n_scen, k), np.full(l_c.shape[0], np.inf)]),
        basis.astype(np.int64),
        np.concatenate([q, np.zeros(l_c.shape[0])]),
        unit_basis_inverse(np.concatenate([[1.0], sign]), column, 0),
    )


def running_peaks(portfolio_returns: np.ndarray) -> np.ndarray:
    """For each observation ``t = 1..n_obs``, the index ``s`` in ``0..t`` of the running peak of
    the uncompounded path (``P_0 = 0``), shape ``(n_obs,)``: ``D_t = P_s - P_t``."""
    path = np.concatenate([[0.0], np.cumsum(portfolio_returns)])
    at_peak = path == np.maximum.accumulate(path)
    idx = np.where(at_peak, np.arange(path.shape[0]), 0)
    return np.maximum.accumulate(idx)[1:]


class Pairs(NamedTuple):
    """The (peak, trough) pairs of a restricted CDaR programme, in column order."""

    peak: np.ndarray  # (n_pairs,) in 0..n_obs - 1
    trough: np.ndarray  # (n_pairs,) in 1..n_obs
    first: np.ndarray  # (n_obs + 1,) column of trough t's first pair (-1 at t = 0, no trough)
    gub_row: np.ndarray  # (n_obs + 1,) row of trough t's GUB constraint, -1 if it has none


def _cdar_generation(returns, beta, lo, hi, G, h, start, max_iter):
    """CDaR by generating (peak, trough) pairs: the CVaR of the losses
    ``(C_s - C_t) . w`` over the pairs (``C`` the cumulative returns, ``C_0 = 0``), at first the
    drawdowns of ``start``, then, for each trough whose drawdown under the new solution beats its
    pairs, the solution's peak, with the GUB row ``sum_s q_st <= k`` once a trough has several.
    Added columns enter at 0 and a GUB row's slack is basic, so each round continues from the last
    basis. Returns ``(status, y, programme, iterations)``."""
    n_obs, n = returns.shape
    cum = np.vstack([np.zeros((1, n)), np.cumsum(returns, axis=0)])
    troughs = np.arange(1, n_obs + 1)
    # every trough starts with a pair: its peak under ``start``, or the day before when
    # ``start`` has no drawdown there (a one-day loss never exceeds the drawdown)
    peak = np.minimum(running_peaks(returns @ start), troughs - 1)
    first = np.concatenate([[-1], np.arange(n_obs)])
    pairs = Pairs(peak, troughs, first, np.full(n_obs + 1, -1, dtype=np.int64))
    scen = cum[pairs.trough] - cum[pairs.peak]
    prog = cvar_programme(scen, beta, lo, hi, G, h, start, n_obs=n_obs)
    total, value, replace = 0, -np.inf, True
    for _ in range(MAX_ROUNDS):
        status, y, n_iter = simplex_nb(*prog, max_iter - total)
        total += n_iter
        if status != OK:
            return status, y, prog, total
        w, a = y[1 : n + 1], y[0]
        path = cum @ w  # the uncompounded path, P_0 = 0
        z = np.zeros(n_obs + 1)
        np.maximum.at(z, pairs.trough, path[pairs.peak] - path[pairs.trough] - a)
        peak = running_peaks(returns @ w)
        excess = path[peak] - path[troughs] - a - z[troughs]
        known = set(zip(pairs.peak.tolist(), pairs.trough.tolist(), strict=True))
        new = np.array(
            [t for t in troughs[excess > VIOLATION_TOL] if (peak[t - 1], t) not in known],
            dtype=np.int64,
        )
        if new.size == 0:
            return OK, y, prog, total
        # a trough's only pair, nonbasic at 0 (its constraint has no weight), is replaced by the
        # new one: the optimum cannot fall, so the rounds still converge; once a round fails to
        # raise it, pairs are only added (finite)
        before, value = value, float(prog.c @ prog.x)
        replace = replace and value > before
        if replace:
            col = pairs.first[new]
            free = (col >= 0) & (pairs.gub_row[new] < 0)
            basic = np.zeros(prog.c.shape[0], dtype=bool)
            basic[prog.basis] = True
            free[free] = (prog.x[col[free]] == 0.0) & ~basic[col[free]]
            prog.scen[col[free]] = cum[new[free]] - cum[peak[new[free] - 1]]
            pairs.peak[col[free]] = peak[new[free] - 1]
            new = new[~free]
        if new.size:
            prog, pairs = add_pairs(prog, pairs, peak[new - 1], new, cum)
    return MAX_ITER, y, prog, total


def add_pairs(prog: Programme, pairs: Pairs, peak, trough, cum):
    """``prog`` with the pairs ``(peak, trough)`` (at most one per trough) added as nonbasic
    columns at 0, and a GUB row (its slack basic) for each trough that gets its second pair; the
    basis inverse bordered."""
    n_new, m_old, n_old = peak.shape[0], prog.b.shape[0], prog.scen.shape[0]
    first, gub_row = pairs.first, pairs.gub_row.copy()
    fresh = trough[gub_row[trough] < 0]  # every trough has its first pair already
    gub_row[fresh] = m_old + np.arange(fresh.size)
    pairs = Pairs(
        np.concatenate([pairs.peak, peak]), np.concatenate([pairs.trough, trough]), first, gub_row
    )
    # the sparse columns shift right by n_new; a slack column per new GUB row goes last
    n_sparse = prog.indptr.shape[0] - 1
    basis = np.where(prog.basis >= n_old, prog.basis + n_new, prog.basis)
    basis = np.concatenate([basis, n_old + n_new + n_sparse + np.arange(fresh.size)])
    k = prog.ub[0]

    def widen(v, scen_value, slack_value):
        parts = [v[:n_old], np.full(n_new, scen_value), v[n_old:], np.full(fresh.size, slack_value)]
        return np.concatenate(parts)

    # bordered inverse: a new GUB row holds 1 for its trough's first pair when that is basic
    border = np.zeros((fresh.size, m_old))
    for g, t in enumerate(fresh):
        where = np.flatnonzero(prog.basis == first[t])
        border[g, where] = 1.0
    Binv = np.block(
        [[prog.Binv, np.zeros((m_old, fresh.size))], [-border @ prog.Binv, np.eye(fresh.size)]]
    )
    prog = Programme(
        np.vstack([prog.scen, cum[trough] - cum[peak]]),
        gub_row[pairs.trough],
        np.concatenate([prog.indptr, prog.indptr[-1] + 1 + np.arange(fresh.size)]),
        np.concatenate([prog.indices, gub_row[fresh]]),
        np.concatenate([prog.data, np.ones(fresh.size)]),
        np.concatenate([prog.b, np.full(fresh.size, k)]),
        widen(prog.c, 0.0, 0.0),
        widen(prog.lb, 0.0, 0.0),
        widen(prog.ub, k, np.inf),
        basis,
        widen(prog.x, 0.0, 0.0),
        Binv,
    )
    return prog, pairs


class TailSolution(NamedTuple):
    """The minimiser: ``weights`` (n_assets,), the measure's ``value`` there, the ``solver`` that
    found it (``"simplex"`` or ``"highs"``), simplex ``iterations`` and ``notes``."""

    weights: np.ndarray
    value: float
    solver: str
    iterations: int
    notes: tuple[str, ...]


def min_tail_risk(
    returns: np.ndarray,
    measure: Measure,
    beta: float,
    lo: np.ndarray,
    hi: np.ndarray,
    G: np.ndarray,
    h: np.ndarray,
) -> TailSolution:
    """Weights minimising the historical ``measure`` at ``beta`` over ``sum(w) = 1``,
    ``lo <= w <= hi``, ``G w <= h``.

    Parameters
    ----------
    returns : ndarray of shape (n_obs, n_assets)
    measure : {"cvar", "cdar"}
    beta : float
    lo, hi : ndarray of shape (n_assets,)
    G : ndarray of shape (n_limits, n_assets)
    h : ndarray of shape (n_limits,)

    Raises
    ------
    ConstraintError
        When no portfolio meets the limits.
    SolverError
        When neither the simplex nor HiGHS solves the programme.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> r = rng.normal(0.0, 0.02, size=(60, 4))
    >>> sol = min_tail_risk(r, "cvar", 0.9, np.zeros(4), np.full(4, 0.5), np.zeros((0, 4)), np.zeros(0))
    >>> bool(abs(sol.weights.sum() - 1) < 1e-12), bool(sol.value <= cvar(r.mean(axis=1), 0.9))
    (True, True)
    """
    n = returns.shape[1]
    start = project_to_bounds(np.full(n, 1.0 / n), lo, hi)
    max_iter = 50 * (returns.shape[0] + n + G.shape[0] + 10)
    if measure == "cvar":
        prog = cvar_programme(returns, beta, lo, hi, G, h, start)
        status, y, n_iter = simplex_nb(*prog, max_iter)
    else:
        status, y, prog, n_iter = _cdar_generation(returns, beta, lo, hi, G, h, start, max_iter)
    if status == OK:
        weights = _onto_limits(y[1 : n + 1], lo, hi, G, h)
        if weights is not None:
            value = MEASURES[measure](returns @ weights, beta)
            gap = value - float(prog.c @ prog.x)
            if gap <= GAP_TOL:
                return TailSolution(weights, value, "simplex", n_iter, ())
            why = f"its solution is {gap:.2g} above the lower bound"
        else:
            why = "its weights break a limit beyond round-off"
    elif status == MAX_ITER:
        why = STATUS_TEXT[status]
    else:
        raise ConstraintError(
            "the weight bounds and group / linear limits admit no portfolio; check the group "
            "`min`/`max` totals against the bounds"
        )
    weights = highs_min_tail_risk(returns, measure, beta, lo, hi, G, h)
    value = MEASURES[measure](returns @ weights, beta)
    note = f"the simplex did not finish ({why}); solved by HiGHS"
    return TailSolution(weights, value, "highs", n_iter, (note,))


def _onto_limits(w, lo, hi, G, h) -> np.ndarray | None:
    """``w`` clipped onto its bounds with the sum restored, or None when it breaks a bound or a
    row of ``G w <= h`` by more than :data:`LIMIT_TOL` (not round-off)."""
    if not np.all(np.isfinite(w)) or np.any(w < lo - LIMIT_TOL) or np.any(w > hi + LIMIT_TOL):
        return None
    if abs(w.sum() - 1.0) > LIMIT_TOL or (G.shape[0] and np.any(G @ w > h + LIMIT_TOL)):
        return None
    return project_to_bounds(w, lo, hi)


def highs_min_tail_risk(returns, measure, beta, lo, hi, G, h) -> np.ndarray:
    """The same minimisation as :func:`min_tail_risk`, the primal programme solved by HiGHS
    (``scipy.optimize.linprog``): the fallback, and an independent oracle in the tests.

    CVaR: variables ``(w, a, u)``, ``-R w - a - u <= 0``; CDaR: ``(w, a, d, z)``,
    ``d_{t-1} - d_t - r_t . w <= 0`` and ``d_t - a - z_t <= 0`` with ``d_0 = 0``.

    Raises
    ------
    ConstraintError
        When the limits admit no portfolio.
    SolverError
        When HiGHS fails.
    """
    import scipy.sparse as sp
    from scipy.optimize import linprog

    n_obs, n = returns.shape
    k = 1.0 / ((1.0 - beta) * n_obs)
    eye = sp.identity(n_obs, format="csr")
    ones = sp.csr_matrix(np.ones((n_obs, 1)))
    if measure == "cvar":
        blocks = [[sp.csr_matrix(-returns), -ones, -eye]]
        n_extra = n_obs
    else:
        lag = sp.eye(n_obs, k=-1, format="csr")
        zeros = sp.csr_matrix((n_obs, n_obs))
        blocks = [
            [sp.csr_matrix(-returns), sp.csr_matrix((n_obs, 1)), lag - eye, zeros],
            [sp.csr_matrix((n_obs, n)), -ones, eye, -eye],
        ]
        n_extra = 2 * n_obs
    A_ub = sp.bmat(blocks, format="csr")
    b_ub = np.zeros(A_ub.shape[0])
    if G.shape[0]:
        A_ub = sp.vstack(
            [A_ub, sp.hstack([sp.csr_matrix(G), sp.csr_matrix((G.shape[0], 1 + n_extra))])]
        )
        b_ub = np.concatenate([b_ub, h])
    c = np.concatenate([np.zeros(n), [1.0], np.zeros(n_extra - n_obs), np.full(n_obs, k)])
    bounds = np.vstack(
        [np.column_stack([lo, hi]), [[-np.inf, np.inf]], np.tile([0.0, np.inf], (n_extra, 1))]
    )
    A_eq = np.concatenate([np.ones(n), np.zeros(1 + n_extra)])[None, :]
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=bounds, method="highs")
    if res.status == 2:
        raise ConstraintError(
            "the weight bounds and group / linear limits admit no portfolio; check the group "
            "`min`/`max` totals against the bounds"
        )
    if res.status != 0:
        raise SolverError(f"HiGHS could not minimise the {measure.upper()}: {res.message}")
    return project_to_bounds(res.x[:n], lo, hi)


def max_return(mean: np.ndarray, lo, hi, G, h) -> float | None:
    """The largest ``mean @ w`` over ``sum(w) = 1``, ``lo <= w <= hi``, ``G w <= h`` (HiGHS), or
    None when the limits admit no portfolio."""
    from scipy.optimize import linprog

    res = linprog(
        -mean,
        A_ub=G if G.shape[0] else None,
        b_ub=h if G.shape[0] else None,
        A_eq=np.ones((1, mean.shape[0])),
        b_eq=[1.0],
        bounds=np.column_stack([lo, hi]),
        method="highs",
    )
    return -float(res.fun) if res.status == 0 else None
