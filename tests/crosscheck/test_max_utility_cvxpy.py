"""`max_utility` (mean-variance net of linear trading costs) against the same problem in cvxpy
(Clarabel, tolerances 1e-12) on windows of the real Binance daily data, and against PyPortfolioOpt's
`max_quadratic_utility` without costs.

Both sides get the same numbers: our strategy's annualised moments (``Allocation.extras``), the same
previous weights, costs, bounds, group and turnover cap. The objective is compared to 1e-7 (ours may
only be better by round-off) and every limit is checked to 1e-9. The same for efficient return,
efficient risk and min volatility with the cost term and the cap (Clarabel's tolerances 1e-9 for
the volatility cone, where 1e-10 already reports an inaccurate solution).
"""

from __future__ import annotations

import numpy as np
import pytest

from strategies import MPTStrategy

cp = pytest.importorskip("cvxpy")

ENDS = [180, 300, 420, 540, 660, 780, 900, 1020, 1138]
CASES = [  # (risk aversion, cost, max_weight, turnover cap, group cap on the first five)
    (1.0, 0.0015, 1.0, None, None),
    (5.0, 0.0015, 0.3, None, None),
    (5.0, 0.01, 0.3, 0.25, None),
    (20.0, 0.002, 0.25, None, 0.2),
    (5.0, 0.005, 0.3, 0.4, 0.3),
    (2.0, 0.05, 0.2, None, None),
]


@pytest.fixture(scope="module")
def windows(daily_market):
    returns = daily_market.close.pct_change()
    out = []
    for end in ENDS:
        frame = returns.iloc[end - 89 : end + 1].dropna(axis=1).iloc[:, :20]
        out.append(frame.to_numpy())
    return out


def _reference(mu, cov, gamma, prev, cost, hi, cap, group):
    n = mu.size
    w = cp.Variable(n)
    objective = (
        mu @ w - gamma / 2 * cp.quad_form(w, cp.psd_wrap(cov)) - cost * cp.sum(cp.abs(w - prev))
    )
    cons = [cp.sum(w) == 1, w >= 0, w <= hi]
    if cap is not None:
        cons.append(cp.sum(cp.abs(w - prev)) <= cap)
    if group is not None:
        cons.append(cp.sum(w[:5]) <= group)
    problem = cp.Problem(cp.Maximize(objective), cons)
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return problem.status, None if w.value is None else np.asarray(w.value)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"g{c[0]}-c{c[1]}-hi{c[2]}-T{c[3]}-G{c[4]}")
def test_max_utility_equals_cvxpy_on_real_windows(windows, case):
    gamma, cost, hi, cap, group = case
    rng = np.random.default_rng(7)
    solved = 0
    for returns in windows:
        n = returns.shape[1]
        prev = rng.dirichlet(np.ones(n)) * 0.95  # a drifted book with 5% cash
        strategy = MPTStrategy(
            objective="max_utility",
            risk_aversion=gamma,
            transaction_cost=cost,
            max_turnover=cap,
            periods_per_year=365,
            fallback=(),
        )
        constraints = {"max_weight": hi}
        if group is not None:
            constraints["groups"] = {"first5": (list(range(5)), 0.0, group)}
        got = strategy.allocate_detailed(returns, constraints, previous=prev)
        mu, cov = got.extras["expected_returns"], got.extras["covariance"]
        status, want = _reference(mu, cov, gamma, prev, cost, hi, cap, group)
        if status == "infeasible":  # the cap cannot reach the bounds from this book
            assert got.method != "max_utility"
            continue
        assert got.method == "max_utility", got.notes
        w = got.weights

        def utility(x, mu=mu, cov=cov, prev=prev):
            return mu @ x - gamma / 2 * x @ cov @ x - cost * np.abs(x - prev).sum()

        assert utility(w) >= utility(want) - 1e-7
        assert utility(w) <= utility(want) + 1e-7
        assert abs(w.sum() - 1) <= 1e-9 and w.min() >= -1e-9 and w.max() <= hi + 1e-9
        if cap is not None:
            assert np.abs(w - prev).sum() <= cap + 1e-9
        if group is not None:
            assert w[:5].sum() <= group + 1e-9
        solved += 1
    assert solved >= 5


def test_without_costs_it_is_pypfopt_max_quadratic_utility(windows):
    pypfopt = pytest.importorskip("pypfopt")
    for returns in windows[:5]:
        got = MPTStrategy(objective="max_utility", risk_aversion=3.0).allocate_detailed(
            returns, {"max_weight": 0.3}, previous=np.full(returns.shape[1], 0.05)
        )
        mu, cov = got.extras["expected_returns"], got.extras["covariance"]
        ef = pypfopt.EfficientFrontier(mu, cov, weight_bounds=(0, 0.3), solver="CLARABEL")
        ef._solver_options = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}
        want = np.array(list(ef.max_quadratic_utility(risk_aversion=3.0).values()))

        def utility(x, mu=mu, cov=cov):
            return mu @ x - 1.5 * x @ cov @ x

        assert abs(utility(got.weights) - utility(want)) <= 1e-8
        np.testing.assert_allclose(got.weights, want, atol=1e-5)


# ------------------------------------------- the other convex objectives with the same cost and cap
NET_CASES = [  # (objective, cost, max_weight, turnover cap)
    ("efficient_return", 0.0015, 0.3, None),
    ("efficient_return", 0.01, 0.3, 0.5),
    ("efficient_risk", 0.0015, 0.3, None),
    ("efficient_risk", 0.01, 0.25, 0.5),
    ("min_volatility", 0.005, 0.3, 0.3),
]


def _net_reference(objective, mu, cov, gamma, prev, cost, hi, cap, target):
    n = mu.size
    w = cp.Variable(n)
    trade = cost * cp.sum(cp.abs(w - prev))
    cons = [cp.sum(w) == 1, w >= 0, w <= hi]
    if cap is not None:
        cons.append(cp.sum(cp.abs(w - prev)) <= cap)
    risk = cp.quad_form(w, cp.psd_wrap(cov))
    if objective == "efficient_risk":
        goal = cp.Maximize(mu @ w - trade)
        cons.append(risk <= target**2)
    else:
        goal = cp.Minimize(gamma / 2 * risk + trade)
        if objective == "efficient_return":
            cons.append(mu @ w >= target)
    problem = cp.Problem(goal, cons)
    tol = 1e-9 if objective == "efficient_risk" else 1e-12  # the cone's limit of accuracy
    problem.solve(solver="CLARABEL", tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
    return problem.status, None if w.value is None else np.asarray(w.value)


@pytest.mark.parametrize("case", NET_CASES, ids=lambda c: f"{c[0]}-c{c[1]}-hi{c[2]}-T{c[3]}")
def test_the_other_objectives_net_of_costs_equal_cvxpy(windows, case):
    """Efficient return (risk + cost, the return a row), efficient risk (return - cost, the
    volatility a quadratic constraint met through its multiplier) and min volatility, each with the
    cost and the turnover cap, on the real windows: objective to 1e-7, limits to 1e-9."""
    objective, cost, hi, cap = case
    gamma = 4.0
    rng = np.random.default_rng(11)
    solved = 0
    for returns in windows:
        n = returns.shape[1]
        prev = rng.dirichlet(np.ones(n)) * 0.95
        probe = MPTStrategy(objective="min_volatility", periods_per_year=365).allocate_detailed(
            returns, {"max_weight": hi}
        )
        mu, cov = probe.extras["expected_returns"], probe.extras["covariance"]
        floor = float(np.sqrt(probe.weights @ cov @ probe.weights))
        target = {  # a target inside the attainable range of each window
            "efficient_return": float(
                probe.weights @ mu + 0.3 * (np.sort(mu)[-3:].mean() - probe.weights @ mu)
            ),
            "efficient_risk": 1.3 * floor,
            "min_volatility": None,
        }[objective]
        strategy = MPTStrategy(
            objective=objective,
            risk_aversion=gamma,
            transaction_cost=cost,
            max_turnover=cap,
            target_return=target if objective == "efficient_return" else None,
            target_volatility=target if objective == "efficient_risk" else None,
            periods_per_year=365,
            fallback=(),
        )
        got = strategy.allocate_detailed(returns, {"max_weight": hi}, previous=prev)
        status, want = _net_reference(objective, mu, cov, gamma, prev, cost, hi, cap, target)
        if status == "infeasible":
            assert got.method != objective
            continue
        assert got.method == objective, got.notes
        w = got.weights

        def score(x, mu=mu, cov=cov, prev=prev):
            traded = cost * np.abs(x - prev).sum()
            if objective == "efficient_risk":
                return mu @ x - traded
            return -(gamma / 2 * x @ cov @ x + traded)

        assert abs(score(w) - score(want)) <= 1e-7, (score(w), score(want))
        assert abs(w.sum() - 1) <= 1e-9 and w.min() >= -1e-9 and w.max() <= hi + 1e-9
        if cap is not None:
            assert np.abs(w - prev).sum() <= cap + 1e-9
        if objective == "efficient_return":
            assert w @ mu >= target - 1e-9
        if objective == "efficient_risk":
            assert np.sqrt(w @ cov @ w) <= target * (1 + 1e-9)
        solved += 1
    assert solved >= 5
