"""EqualWeight and InverseVolatility with bounds and group constraints."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import Constraints, EqualWeight, InverseVolatility


def test_equal_weight_with_a_group_cap():
    w = EqualWeight().allocate(np.zeros((5, 4)), Constraints(groups={"g": ([0, 1, 2], 0.0, 0.6)}))
    np.testing.assert_allclose(w, [0.2, 0.2, 0.2, 0.4], atol=1e-12)


def test_inverse_volatility_weights_and_bounds():
    rng = np.random.default_rng(0)
    returns = rng.normal(0, [0.01, 0.02, 0.04], size=(200, 3))
    w = InverseVolatility().allocate(returns)
    inv = 1 / returns.std(axis=0, ddof=1)
    np.testing.assert_allclose(w, inv / inv.sum(), rtol=1e-12)
    w = InverseVolatility().allocate(returns, {"max_weight": 0.5})
    assert w.max() == pytest.approx(0.5) and w.sum() == pytest.approx(1.0)


def test_inverse_volatility_zero_variance_rule():
    rng = np.random.default_rng(1)
    returns = np.column_stack([rng.normal(0, 0.01, 50), rng.normal(0, 0.02, 50), np.zeros(50)])
    allocation = InverseVolatility().allocate_detailed(returns)
    assert allocation.weights[2] == pytest.approx(allocation.weights[0])
    assert "zero-variance" in allocation.notes[0]
