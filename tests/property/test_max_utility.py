"""Properties of the cost-aware objective (`MPTStrategy(objective="max_utility")`) on arbitrary
windows, books and costs: without costs it is the plain mean-variance optimum (cvxpy as the oracle),
a higher cost never raises the turnover, every limit holds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import MPTStrategy

cp = pytest.importorskip("cvxpy")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    n = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vol = rng.uniform(0.01, 0.06, n)
    factor = rng.normal(0, 0.02, (90, 1))
    returns = factor * rng.uniform(0.2, 1.5, n) + rng.normal(0.001, 1, (90, n)) * vol
    prev = rng.dirichlet(np.ones(n)) * draw(st.sampled_from([1.0, 0.9, 0.0]))
    hi = draw(st.sampled_from([1.0, 0.5, max(0.35, 1.5 / n)]))
    gamma = draw(st.sampled_from([0.5, 2.0, 10.0]))
    return returns, prev, hi, gamma


def _turnover(w, prev):
    return float(np.abs(w - prev).sum())


@SETTINGS
@given(problems())
def test_without_costs_it_is_the_plain_mean_variance_optimum(problem):
    returns, prev, hi, gamma = problem
    got = MPTStrategy(objective="max_utility", risk_aversion=gamma).allocate_detailed(
        returns, {"max_weight": hi}, previous=prev
    )
    mu, cov = got.extras["expected_returns"], got.extras["covariance"]
    w = cp.Variable(mu.size)
    problem_ = cp.Problem(
        cp.Maximize(mu @ w - gamma / 2 * cp.quad_form(w, cp.psd_wrap(cov))),
        [cp.sum(w) == 1, w >= 0, w <= hi],
    )
    problem_.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)

    def utility(x):
        return mu @ x - gamma / 2 * x @ cov @ x

    assert got.method == "max_utility"
    assert abs(utility(got.weights) - utility(w.value)) <= 1e-8 * max(1.0, abs(utility(w.value)))
    # the book plays no part without costs
    again = MPTStrategy(objective="max_utility", risk_aversion=gamma).allocate(
        returns, {"max_weight": hi}
    )
    np.testing.assert_allclose(again, got.weights, atol=1e-12)


@SETTINGS
@given(problems(), st.lists(st.sampled_from([0.0, 1e-4, 1e-3, 5e-3, 0.02, 0.1, 0.5]), min_size=2,
                            max_size=4, unique=True))  # fmt: skip
def test_a_higher_cost_never_raises_the_turnover(problem, costs):
    returns, prev, hi, gamma = problem
    turnover = []
    for c in sorted(costs):
        w = (
            MPTStrategy(objective="max_utility", risk_aversion=gamma, transaction_cost=c)
            .allocate_detailed(returns, {"max_weight": hi}, previous=prev)
            .weights
        )
        assert abs(w.sum() - 1) <= 1e-9 and w.min() >= -1e-12 and w.max() <= hi + 1e-12
        turnover.append(_turnover(w, prev))
    assert all(b <= a + 1e-8 for a, b in itertools.pairwise(turnover)), turnover


@SETTINGS
@given(problems(), st.sampled_from([0.05, 0.2, 0.6]))
def test_the_turnover_cap_holds_or_the_least_turnover_is_traded(problem, cap):
    """The cap holds; when no portfolio within the limits is that close to the book, the rebalance
    trades the least turnover the limits allow (an L1 projection of the book), and says so."""
    returns, prev, hi, gamma = problem
    got = MPTStrategy(
        objective="max_utility", risk_aversion=gamma, transaction_cost=1e-3, max_turnover=cap
    ).allocate_detailed(returns, {"max_weight": hi}, previous=prev)
    w, moved = got.weights, _turnover(got.weights, prev)
    assert abs(w.sum() - 1) <= 1e-9 and w.min() >= -1e-12 and w.max() <= hi + 1e-12
    # the least turnover any portfolio within the limits needs: L1 distance to the capped simplex
    v = cp.Variable(len(prev))
    least = cp.Problem(cp.Minimize(cp.sum(cp.abs(v - prev))), [cp.sum(v) == 1, v >= 0, v <= hi])
    least.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    if least.value <= cap - 1e-7:
        assert moved <= cap + 1e-9 and not any("cannot hold" in n for n in got.notes)
    elif least.value > cap + 1e-7:
        assert moved <= least.value + 1e-7
        assert any(f"max_turnover {cap:g} cannot hold from this book" in n for n in got.notes)
