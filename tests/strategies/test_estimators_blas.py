"""The BLAS/LAPACK branches of the estimators (``n_assets >= BLAS_MIN_ASSETS``) against NumPy,
scikit-learn and the plain-loop Cholesky they replace."""

from __future__ import annotations

import numpy as np
import pytest

from strategies.estimators import (
    BLAS_MIN_ASSETS,
    condition_stats_nb,
    ledoit_wolf_nb,
    pivot_ratio,
    sample_cov_nb,
)
from strategies.qp import cholesky_nb


@pytest.fixture(params=[BLAS_MIN_ASSETS, 150])
def returns(request):
    rng = np.random.default_rng(request.param)
    n = request.param
    return rng.normal(0.001, 0.02, size=(2 * n, n)) @ (np.eye(n) + 0.1 * rng.normal(size=(n, n)))


def test_sample_covariance_matches_numpy_and_is_symmetric(returns):
    cov = sample_cov_nb(returns, 1)
    np.testing.assert_allclose(cov, np.cov(returns, rowvar=False, ddof=1), rtol=1e-12, atol=1e-18)
    assert np.array_equal(cov, cov.T)
    np.testing.assert_allclose(
        sample_cov_nb(returns, 0), np.cov(returns, rowvar=False, ddof=0), rtol=1e-12, atol=1e-18
    )


def test_pivot_ratio_matches_the_loop_cholesky(returns):
    cov = np.cov(returns, rowvar=False)
    std = np.sqrt(np.diag(cov))
    corr = cov / np.outer(std, std)
    expected = cholesky_nb(corr, np.empty_like(corr))
    assert pivot_ratio(cov) == pytest.approx(expected, rel=1e-9)


def test_pivot_ratio_flags_a_singular_large_covariance():
    n = BLAS_MIN_ASSETS + 6
    returns = np.random.default_rng(0).normal(size=(n // 2, n))  # fewer observations than assets
    assert pivot_ratio(np.cov(returns, rowvar=False)) < 1e-10
    assert condition_stats_nb(np.ones((n, n)))[2] == -1.0


def test_ledoit_wolf_matches_scikit_learn(returns):
    sklearn_cov = pytest.importorskip("sklearn.covariance")
    cov, shrinkage = ledoit_wolf_nb(returns)
    expected_cov, expected_shrinkage = sklearn_cov.ledoit_wolf(returns)
    assert shrinkage == pytest.approx(expected_shrinkage, rel=1e-10)
    np.testing.assert_allclose(cov, expected_cov, rtol=1e-10, atol=1e-18)
