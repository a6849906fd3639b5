"""The Goldfarb-Idnani kernel against a pure-NumPy oracle (enumeration of active sets)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from strategies.errors import SolverError
from strategies.qp import (
    DEPENDENT_EQUALITIES,
    INFEASIBLE,
    NOT_POSITIVE_DEFINITE,
    OK,
    cholesky_inverse_nb,
    solve_qp,
    solve_qp_arrays,
)


def kkt_oracle(Q, c, A_eq, b_eq, A_in, b_in):
    """Slow twin: try every subset of inequalities as the active set, keep the best KKT point."""
    n = Q.shape[0]
    best, best_f = None, np.inf
    for k in range(0, min(A_in.shape[0], n - A_eq.shape[0]) + 1):
        for subset in itertools.combinations(range(A_in.shape[0]), k):
            A = np.vstack([A_eq, A_in[list(subset)]])
            b = np.concatenate([b_eq, b_in[list(subset)]])
            m = A.shape[0]
            kkt = np.block([[Q, -A.T], [A, np.zeros((m, m))]])
            try:
                sol = np.linalg.solve(kkt, np.concatenate([-c, b]))
            except np.linalg.LinAlgError:
                continue
            x, lam = sol[:n], sol[n:]
            if np.any(A_in @ x < b_in - 1e-9) or np.any(lam[A_eq.shape[0] :] < -1e-9):
                continue
            f = 0.5 * x @ Q @ x + c @ x
            if f < best_f:
                best, best_f = x, f
    return best


@pytest.mark.parametrize("seed", range(40))
def test_solver_matches_active_set_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 6))
    me = int(rng.integers(0, 2))
    mi = int(rng.integers(1, 7))
    M = rng.normal(size=(n + 3, n))
    Q = M.T @ M + 0.1 * np.eye(n)
    c = rng.normal(size=n)
    x0 = rng.normal(size=n)
    A_eq = rng.normal(size=(me, n))
    b_eq = A_eq @ x0
    A_in = rng.normal(size=(mi, n))
    b_in = A_in @ x0 - rng.uniform(0, 1, mi)
    expected = kkt_oracle(Q, c, A_eq, b_eq, A_in, b_in)
    x, status, _ = solve_qp_arrays(Q, c, A_eq, b_eq, A_in, b_in)
    assert status == OK
    np.testing.assert_allclose(x, expected, atol=1e-9)


def test_box_and_budget_problem_has_closed_form():
    # min 0.5|x|^2 - x'(3, 1, 0) with sum(x) = 1, x >= 0  -> x = (1, 0, 0)
    x = solve_qp(
        np.eye(3), -np.array([3.0, 1.0, 0.0]), np.ones((1, 3)), np.ones(1), np.eye(3), np.zeros(3)
    )
    np.testing.assert_allclose(x, [1.0, 0.0, 0.0], atol=1e-14)


def test_redundant_and_duplicate_constraints_are_harmless():
    A_in = np.vstack([np.eye(2), np.eye(2), 2 * np.eye(2)])
    x = solve_qp(np.eye(2), np.array([1.0, 1.0]), A_in=A_in, b_in=np.array([1.0, 1, 1, 1, 2, 2]))
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-14)


def test_infeasible_problem_is_reported():
    A_in = np.array([[1.0], [-1.0]])
    _, status, _ = solve_qp_arrays(
        np.eye(1), np.zeros(1), np.zeros((0, 1)), np.zeros(0), A_in, np.array([1.0, 0.0])
    )
    assert status == INFEASIBLE
    with pytest.raises(SolverError, match="infeasible constraints"):
        solve_qp(np.eye(1), np.zeros(1), A_in=A_in, b_in=np.array([1.0, 0.0]))


def test_not_positive_definite_is_reported():
    _, status, _ = solve_qp_arrays(
        np.zeros((2, 2)), np.zeros(2), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)), np.zeros(0)
    )
    assert status == NOT_POSITIVE_DEFINITE


def test_dependent_equalities_are_reported():
    A_eq = np.array([[1.0, 1.0], [2.0, 2.0]])
    _, status, _ = solve_qp_arrays(
        np.eye(2), np.zeros(2), A_eq, np.array([1.0, 2.0]), np.zeros((0, 2)), np.zeros(0)
    )
    assert status == DEPENDENT_EQUALITIES


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="`A_in` must have shape"):
        solve_qp(np.eye(2), np.zeros(2), A_in=np.ones((1, 3)), b_in=np.ones(1))
    with pytest.raises(ValueError, match="`Q` must be square"):
        solve_qp(np.ones((2, 3)), np.zeros(2))


def test_cholesky_inverse_and_pivot_ratio():
    Q = np.array([[4.0, 2.0], [2.0, 3.0]])
    T = np.empty((2, 2))
    ratio = cholesky_inverse_nb(Q, T)
    np.testing.assert_allclose(T.T @ T, np.linalg.inv(Q), atol=1e-14)
    np.testing.assert_allclose(T, np.linalg.inv(np.linalg.cholesky(Q)), atol=1e-14)
    assert ratio == pytest.approx(1 - 2.0**2 / (4 * 3))
    assert cholesky_inverse_nb(np.array([[1.0, 1.0], [1.0, 1.0]]), T) < 0
