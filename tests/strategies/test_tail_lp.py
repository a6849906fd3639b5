"""The tail measures against brute force, and the tail-risk minimisation against HiGHS."""

from __future__ import annotations

import numpy as np
import pytest

import strategies.tail_lp as tail_lp
from strategies.errors import ConstraintError, SolverError
from strategies.simplex import MAX_ITER
from strategies.tail_lp import (
    cdar,
    cvar,
    drawdowns,
    highs_min_tail_risk,
    max_return,
    min_tail_risk,
    tail_mean,
)
from tests.strategies.tail_oracle import ORACLE


def rockafellar_uryasev(losses, beta):
    """``min_a a + sum(max(L - a, 0)) / ((1 - beta) n)``: piecewise linear in ``a``, so the
    minimum sits on one of the losses."""
    k = 1.0 / ((1.0 - beta) * losses.size)
    return min(a + k * np.maximum(losses - a, 0.0).sum() for a in losses)


def drawdowns_by_definition(r):
    path = np.concatenate([[0.0], np.cumsum(r)])
    return np.array([path[: t + 1].max() - path[t] for t in range(1, path.size)])


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("beta", [0.5, 0.9, 0.95, 0.99])
def test_measures_equal_their_definitions(seed, beta):
    rng = np.random.default_rng(seed)
    r = rng.standard_t(3, size=int(rng.integers(5, 120))) * 0.02
    assert tail_mean(-r, beta) == pytest.approx(rockafellar_uryasev(-r, beta), abs=1e-15)
    assert cvar(r, beta) == pytest.approx(rockafellar_uryasev(-r, beta), abs=1e-15)
    np.testing.assert_allclose(drawdowns(r), drawdowns_by_definition(r), atol=1e-15)
    assert cdar(r, beta) == pytest.approx(
        rockafellar_uryasev(drawdowns_by_definition(r), beta), abs=1e-15
    )


def test_tail_mean_edge_cases():
    losses = np.array([3.0, 1.0, 2.0])
    assert tail_mean(losses, 0.99) == 3.0  # a tail of less than one scenario: the worst loss
    assert tail_mean(losses, 1e-9) == pytest.approx(2.0)  # the whole sample: the mean
    assert tail_mean(np.array([0.05, 0.01]), 0.5) == 0.05
    assert drawdowns(np.array([-0.01]))[0] == 0.01  # the peak starts at 0


def random_problem(seed, n_obs=60, n_assets=8, group=False):
    rng = np.random.default_rng(seed)
    returns = rng.standard_t(4, size=(n_obs, n_assets)) * 0.02 + rng.normal(0, 0.002, n_assets)
    lo = np.full(n_assets, 0.01)
    hi = np.full(n_assets, 0.4)
    G, h = np.zeros((0, n_assets)), np.zeros(0)
    if group:
        G = np.zeros((2, n_assets))
        G[0, :3] = 1.0  # at most 25% in assets 0-2
        G[1, 3:5] = -1.0  # at least 20% in assets 3-4
        h = np.array([0.25, -0.2])
    return returns, lo, hi, G, h


@pytest.mark.parametrize("measure", ["cvar", "cdar"])
@pytest.mark.parametrize("seed", range(12))
def test_minimum_equals_highs(measure, seed):
    returns, lo, hi, G, h = random_problem(seed, group=seed % 2 == 1)
    sol = min_tail_risk(returns, measure, 0.9, lo, hi, G, h)
    assert sol.solver == "simplex" and sol.notes == ()
    w = sol.weights
    assert abs(w.sum() - 1) <= 1e-12 and np.all(w >= lo) and np.all(w <= hi)
    assert np.all(G @ w <= h + 1e-12)
    peer = highs_min_tail_risk(returns, measure, 0.9, lo, hi, G, h)
    measure_of = tail_lp.MEASURES[measure]
    assert sol.value == pytest.approx(ORACLE[measure](returns @ w, 0.9), rel=1e-10, abs=1e-14)
    assert sol.value <= measure_of(returns @ peer, 0.9) + 1e-12
    assert sol.value == pytest.approx(measure_of(returns @ peer, 0.9), abs=1e-9)


def test_cdar_is_no_cvar():
    """CDaR is of the path's drawdowns, not of its returns: a steady loser has the smaller daily
    CVaR, a choppy asset that goes nowhere the smaller drawdowns."""
    choppy = np.tile([0.03, -0.03], 20)
    steady = np.full(40, -0.004)
    r = np.column_stack([choppy, steady])
    lo, hi, G, h = np.zeros(2), np.ones(2), np.zeros((0, 2)), np.zeros(0)
    np.testing.assert_allclose(
        min_tail_risk(r, "cvar", 0.9, lo, hi, G, h).weights, [0, 1], atol=1e-12
    )
    np.testing.assert_allclose(
        min_tail_risk(r, "cdar", 0.9, lo, hi, G, h).weights, [1, 0], atol=1e-12
    )
    assert cdar(choppy, 0.9) == pytest.approx(0.03) and cdar(steady, 0.9) > 0.15


@pytest.mark.parametrize("measure", ["cvar", "cdar"])
def test_iteration_limit_falls_back_to_highs_with_a_note(measure, monkeypatch):
    returns, lo, hi, G, h = random_problem(3)
    expected = min_tail_risk(returns, measure, 0.9, lo, hi, G, h)

    def stuck(*args):
        return MAX_ITER, np.zeros(args[5].shape[0]), int(args[-1])

    monkeypatch.setattr(tail_lp, "simplex_nb", stuck)
    sol = min_tail_risk(returns, measure, 0.9, lo, hi, G, h)
    assert sol.solver == "highs"
    assert sol.notes == ("the simplex did not finish (iteration limit reached); solved by HiGHS",)
    assert sol.value == pytest.approx(expected.value, abs=1e-8)


def test_an_uncertified_solution_falls_back_to_highs(monkeypatch):
    returns, lo, hi, G, h = random_problem(4)
    monkeypatch.setattr(tail_lp, "GAP_TOL", -1.0)  # no gap is small enough
    sol = min_tail_risk(returns, "cvar", 0.9, lo, hi, G, h)
    assert sol.solver == "highs"
    assert sol.notes[0].startswith("the simplex did not finish (its solution is ")
    assert "above the lower bound); solved by HiGHS" in sol.notes[0]


def test_weights_off_the_limits_fall_back_to_highs(monkeypatch):
    returns, lo, hi, G, h = random_problem(5)
    monkeypatch.setattr(tail_lp, "LIMIT_TOL", -1.0)  # every weight "breaks" a limit
    sol = min_tail_risk(returns, "cdar", 0.9, lo, hi, G, h)
    assert sol.notes == (
        "the simplex did not finish (its weights break a limit beyond round-off); solved by HiGHS",
    )


@pytest.mark.parametrize("measure", ["cvar", "cdar"])
def test_limits_without_a_portfolio_are_a_constraint_error(measure):
    returns, lo, hi, _, _ = random_problem(6)
    G = np.ones((1, lo.size))
    G[0, :2] = 0.0  # the other assets hold at most 10%, assets 0 and 1 at most 80%
    with pytest.raises(ConstraintError, match="limits admit no portfolio"):
        min_tail_risk(returns, measure, 0.9, lo, hi, G, np.array([0.1]))
    with pytest.raises(ConstraintError, match="limits admit no portfolio"):
        highs_min_tail_risk(returns, measure, 0.9, lo, hi, G, np.array([0.1]))


def test_a_highs_failure_is_a_solver_error(monkeypatch):
    import scipy.optimize

    class Failed:
        status, message, x = 4, "numerical difficulties", None

    monkeypatch.setattr(scipy.optimize, "linprog", lambda *a, **k: Failed())
    returns, lo, hi, G, h = random_problem(7)
    with pytest.raises(SolverError, match="HiGHS could not minimise the CDAR: numerical"):
        highs_min_tail_risk(returns, "cdar", 0.9, lo, hi, G, h)


def test_max_return():
    mean = np.array([0.01, 0.03, 0.02])
    lo, hi = np.zeros(3), np.full(3, 0.5)
    assert max_return(mean, lo, hi, np.zeros((0, 3)), np.zeros(0)) == pytest.approx(0.025)
    assert max_return(mean, lo, hi, np.ones((1, 3)), np.array([0.5])) is None  # no portfolio


def test_added_pairs_keep_the_basis_feasible_with_a_bordered_inverse():
    """A GUB row for a trough whose first pair is basic: the bordered inverse is the inverse of
    the new basis, the old solution stays a feasible basic solution of the grown programme."""
    from strategies.simplex import dense_matrix, simplex_nb
    from strategies.tail_lp import Pairs, add_pairs, cvar_programme, running_peaks

    returns, lo, hi, G, h = random_problem(8, n_obs=40, n_assets=5)
    n_obs = returns.shape[0]
    cum = np.vstack([np.zeros((1, 5)), np.cumsum(returns, axis=0)])
    troughs = np.arange(1, n_obs + 1)
    start = np.full(5, 0.2)
    peak = np.minimum(running_peaks(returns @ start), troughs - 1)
    pairs = Pairs(peak, troughs, np.r_[-1, np.arange(n_obs)], np.full(n_obs + 1, -1))
    prog = cvar_programme(cum[troughs] - cum[peak], 0.9, lo, hi, G, h, start)
    assert simplex_nb(*prog, 1000)[0] == 0
    basic_pairs = prog.basis[prog.basis < n_obs]
    chosen = np.unique(np.r_[basic_pairs[:2] + 1, 3, 7])  # troughs, two with a basic first pair
    new_peak = np.zeros(chosen.size, dtype=np.int64)  # peak at the start: C_0 = 0
    grown, grown_pairs = add_pairs(prog, pairs, new_peak, chosen, cum)
    m = grown.b.shape[0]
    assert m == prog.b.shape[0] + chosen.size
    A = dense_matrix(*grown[:5], m)
    np.testing.assert_allclose(grown.Binv @ A[:, grown.basis], np.eye(m), atol=1e-12)
    x = grown.x.copy()
    nonbasic = np.setdiff1d(np.arange(x.size), grown.basis)
    x[grown.basis] = grown.Binv @ (grown.b - A[:, nonbasic] @ x[nonbasic])
    assert np.all(x >= grown.lb - 1e-12) and np.all(x <= grown.ub + 1e-12)
    assert grown.c @ x == pytest.approx(prog.c @ prog.x, abs=1e-15)
    assert np.all(grown_pairs.gub_row[chosen] >= prog.b.shape[0])
    # and the grown programme solves to the CDaR optimum of its pairs (no worse than before)
    assert simplex_nb(*grown, 1000)[0] == 0
    assert grown.c @ grown.x >= prog.c @ prog.x - 1e-15
