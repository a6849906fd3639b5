"""The bounded simplex kernel against its pure-NumPy twin and against HiGHS."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from strategies.simplex import (
    MAX_ITER,
    OK,
    UNBOUNDED,
    dense_matrix,
    simplex_nb,
    simplex_twin,
    unit_basis_inverse,
)
from strategies.tail_lp import cvar_programme


def programme(seed, n_obs=30, n_assets=6, groups=0, target=None):
    """A CVaR dual (the kernel's real workload) with random bounds and group rows."""
    rng = np.random.default_rng(seed)
    returns = rng.standard_t(4, size=(n_obs, n_assets)) * 0.02 + 0.001
    lo = np.full(n_assets, 0.02)
    hi = rng.uniform(0.3, 0.6, n_assets)
    G = np.zeros((groups, n_assets))  # groups of at most half the assets, capped at 0.6: feasible
    for g in range(groups):
        G[g, rng.choice(n_assets, n_assets // 2, replace=False)] = 1.0
    h = np.full(groups, 0.6)
    if target is not None:
        G, h = np.vstack([G, -returns.mean(axis=0)]), np.append(h, -target)
    start = np.full(n_assets, 1.0 / n_assets)
    return cvar_programme(returns, 0.9, lo, hi, G, h, start), (returns, lo, hi, G, h)


def run_kernel(prog, max_iter=10_000):
    args = [a.copy() for a in prog]
    status, y, n_iter = simplex_nb(*args, max_iter)
    return status, y, n_iter, args[10], args[9]


def highs_dual(prog):
    A = dense_matrix(*prog[:5], prog.b.shape[0])
    bounds = np.column_stack([prog.lb, prog.ub])
    return linprog(-prog.c, A_eq=A, b_eq=prog.b, bounds=bounds, method="highs")


def twin_run(prog, max_iter=10_000):
    A = dense_matrix(*prog[:5], prog.b.shape[0])
    return simplex_twin(A, prog.b, prog.c, prog.lb, prog.ub, prog.basis, prog.x, max_iter)


@pytest.mark.parametrize("seed", range(25))
def test_kernel_reaches_its_twins_and_the_highs_optimum(seed):
    prog, _ = programme(seed, groups=seed % 3)
    status, _, _, x, basis = run_kernel(prog)
    t_status, t_x, *_ = twin_run(prog)
    assert status == t_status == OK
    assert prog.c @ x == pytest.approx(prog.c @ t_x, abs=1e-13)
    res = highs_dual(prog)
    assert prog.c @ x == pytest.approx(-res.fun, abs=1e-12)
    # a vertex: feasible, nonbasic variables exactly on a bound
    A = dense_matrix(*prog[:5], prog.b.shape[0])
    np.testing.assert_allclose(A @ x, prog.b, atol=1e-13)
    assert np.all(x >= prog.lb - 1e-12) and np.all(x <= prog.ub + 1e-12)
    nonbasic = np.setdiff1d(np.arange(x.size), basis)
    on_bound = (x[nonbasic] == prog.lb[nonbasic]) | (x[nonbasic] == prog.ub[nonbasic])
    assert np.all(on_bound | (np.isinf(prog.lb[nonbasic]) & (x[nonbasic] == 0)))


def test_kernel_takes_its_twins_path():
    """Same pivots, step for step, except where round-off breaks a near-tie of the pricing
    differently (the twin recomputes what the kernel updates)."""
    same = 0
    for seed in range(25):
        prog, _ = programme(seed, groups=seed % 3)
        _, y, n_iter, x, basis = run_kernel(prog)
        _, t_x, t_y, t_basis, t_iter = twin_run(prog)
        if n_iter == t_iter and np.array_equal(basis, t_basis):
            np.testing.assert_allclose(x, t_x, atol=1e-12)
            np.testing.assert_allclose(y, t_y, atol=1e-12)
            same += 1
    assert same >= 22, same


def test_reduced_costs_certify_the_optimum():
    """At the optimum no nonbasic column improves: ``c - A'y`` has the right sign at each bound."""
    prog, _ = programme(7, groups=2)
    status, y, _, x, basis = run_kernel(prog)
    A = dense_matrix(*prog[:5], prog.b.shape[0])
    d = prog.c - A.T @ y
    nonbasic = np.setdiff1d(np.arange(x.size), basis)
    at_lower = nonbasic[x[nonbasic] == prog.lb[nonbasic]]
    at_upper = nonbasic[x[nonbasic] == prog.ub[nonbasic]]
    assert status == OK and np.all(d[at_lower] <= 1e-11) and np.all(d[at_upper] >= -1e-11)
    np.testing.assert_allclose(d[basis], 0.0, atol=1e-12)


def test_an_unreachable_return_floor_leaves_the_dual_unbounded():
    prog, _ = programme(3, target=1.0)  # 100% per bar: no portfolio earns it
    status, *_ = run_kernel(prog)
    assert status == UNBOUNDED
    assert twin_run(prog)[0] == UNBOUNDED


def test_the_iteration_limit_is_reported():
    prog, _ = programme(5, n_obs=60, n_assets=10)
    status, _, n_iter, *_ = run_kernel(prog, max_iter=2)
    assert status == MAX_ITER and n_iter == 2
    assert twin_run(prog, 2)[0] == MAX_ITER


def test_unit_basis_inverse_is_the_inverse():
    rng = np.random.default_rng(0)
    sign = rng.choice([-1.0, 1.0], 6)
    column = rng.normal(size=6)
    column[2] = 1.0
    B = np.diag(sign)
    B[:, 2] = column
    np.testing.assert_allclose(unit_basis_inverse(sign, column, 2) @ B, np.eye(6), atol=1e-15)


def test_dense_matrix_lays_out_scenario_gub_and_sparse_columns():
    scen = np.array([[0.1, 0.2], [0.3, 0.4]])
    A = dense_matrix(
        scen, np.array([3, -1]), np.array([0, 2]), np.array([1, 2]), np.array([1.0, -1.0]), 4
    )
    expected = np.array([[1.0, 1.0, 0.0], [0.1, 0.3, 1.0], [0.2, 0.4, -1.0], [1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(A, expected)
