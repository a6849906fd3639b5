"""Equal risk contribution."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import Constraints, RiskParity
from strategies.risk_parity import erc_nb, risk_contributions


@pytest.fixture
def returns():
    rng = np.random.default_rng(11)
    mix = np.eye(5) + 0.4 * rng.normal(size=(5, 5))
    return rng.normal(0, [0.01, 0.02, 0.03, 0.04, 0.05], size=(200, 5)) @ mix


def test_risk_contributions_are_equal(returns):
    allocation = RiskParity().allocate_detailed(returns)
    rc = risk_contributions(allocation.weights, np.cov(returns, rowvar=False))
    np.testing.assert_allclose(rc, 0.2, atol=1e-10)
    assert allocation.method == "risk_parity" and allocation.notes == ()


def test_diagonal_covariance_gives_inverse_volatility():
    cov = np.diag([0.01, 0.04, 0.09])
    w, _, converged = erc_nb(cov, np.full(3, 1 / 3), 1e-28, 100)
    assert converged
    np.testing.assert_allclose(
        w, np.array([1 / 0.1, 1 / 0.2, 1 / 0.3]) / (10 + 5 + 1 / 0.3), rtol=1e-12
    )


def test_custom_risk_budget(returns):
    budget = [0.4, 0.3, 0.1, 0.1, 0.1]
    w = RiskParity(risk_budget=budget).allocate(returns)
    np.testing.assert_allclose(
        risk_contributions(w, np.cov(returns, rowvar=False)), budget, atol=1e-10
    )


def test_binding_bounds_are_noted(returns):
    allocation = RiskParity().allocate_detailed(
        returns, Constraints(min_weight=0.15, max_weight=0.3)
    )
    assert np.all(allocation.weights >= 0.15 - 1e-12) and np.all(allocation.weights <= 0.3 + 1e-12)
    assert "risk contributions are not equal" in allocation.notes[-1]


def test_degenerate_windows(returns):
    allocation = RiskParity().allocate_detailed(returns[:3])
    assert "fewer observations (3) than assets (5)" in allocation.notes[0]
    assert allocation.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert RiskParity().allocate_detailed(np.zeros((5, 2))).method == "equal_weight"


def test_invalid_parameters():
    with pytest.raises(
        ValueError, match=r"`risk_budget` entries must be finite and > 0; got \[1, 0\]"
    ):
        RiskParity(risk_budget=[1, 0])
    with pytest.raises(
        ValueError, match=r"`risk_budget` must have one entry per asset \(3\); got 2"
    ):
        RiskParity(risk_budget=[1, 1]).allocate(
            np.random.default_rng(0).normal(size=(10, 3)) * 0.01
        )


def test_near_singular_window_converges():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.02, size=(8, 1))
    returns = base + rng.normal(0, 0.002, size=(8, 5)) * [1, 2, 3, 4, 5]
    allocation = RiskParity().allocate_detailed(returns)
    assert not any("did not converge" in note for note in allocation.notes)
    rc = risk_contributions(allocation.weights, allocation.extras["covariance"])
    np.testing.assert_allclose(rc, 0.2, atol=1e-10)
