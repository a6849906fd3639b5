"""Properties of min_cvar and min_cdar on any window and limits: the weights are feasible, the
reported measure is the measure of the weights, it is no worse than equal weight's (when equal
weight is feasible) nor than HiGHS' optimum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import Constraints, MinCDaR, MinCVaR
from strategies.tail_lp import MEASURES, highs_min_tail_risk
from tests.strategies.tail_oracle import ORACLE


@st.composite
def cases(draw):
    n_assets = draw(st.integers(2, 8))
    n_obs = draw(st.integers(5, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # heavy tails, a common factor, drifts of both signs; sometimes exact ties (a repeated column)
    common = rng.standard_t(3, size=(n_obs, 1)) * rng.uniform(0.0, 0.03)
    returns = common + rng.standard_t(3, size=(n_obs, n_assets)) * rng.uniform(
        0.001, 0.05, n_assets
    )
    returns += rng.normal(0.0, 0.003, n_assets)
    if n_assets > 2 and draw(st.booleans()):
        returns[:, -1] = returns[:, 0]
    hi = draw(st.sampled_from([1.0, 0.6, 0.4, 0.3]))
    lo = draw(st.sampled_from([0.0, 0.0, 0.02, 0.05]))
    if n_assets * hi < 1 + 1e-9 or n_assets * lo > 1 - 1e-9:
        lo, hi = 0.0, 1.0
    groups = {}
    if n_assets >= 3 and draw(st.booleans()):
        members = draw(
            st.lists(st.integers(0, n_assets - 1), min_size=1, max_size=n_assets // 2, unique=True)
        )
        cap = draw(st.sampled_from([0.2, 0.5]))
        if (n_assets - len(members)) * hi + min(cap, len(members) * hi) >= 1 and cap >= len(
            members
        ) * lo:
            groups["g"] = (members, 0.0, cap)  # only limits that admit a portfolio
    beta = draw(st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]))
    cls = draw(st.sampled_from([MinCVaR, MinCDaR]))
    return np.clip(returns, -0.9, None), Constraints(lo, hi, groups), beta, cls


@settings(max_examples=150, deadline=None)
@given(cases())
def test_feasible_and_no_worse_than_equal_weight_or_highs(case):
    returns, constraints, beta, cls = case
    n = returns.shape[1]
    lo, hi = constraints.bounds(n)
    G, h = constraints.linear(n)
    got = cls(beta=beta).allocate_detailed(returns, constraints)
    w = got.weights
    assert np.all(np.isfinite(w)) and abs(w.sum() - 1) <= 1e-12
    assert np.all(w >= lo) and np.all(w <= hi) and np.all(G @ w <= h + 1e-12)
    measure = MEASURES[cls.measure]
    value = got.extras[cls.measure]
    assert value == measure(returns @ w, beta)  # the reported value is the measure's ...
    assert value == pytest.approx(ORACLE[cls.measure](returns @ w, beta), rel=1e-10, abs=1e-14)
    equal = np.full(n, 1.0 / n)
    if np.all(equal >= lo) and np.all(equal <= hi) and np.all(G @ equal <= h):
        assert value <= measure(returns @ equal, beta) + 1e-12
    peer = highs_min_tail_risk(returns, cls.measure, beta, lo, hi, G, h)
    assert value <= measure(returns @ peer, beta) + 1e-9
