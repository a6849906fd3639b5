"""Estimators against numpy / pandas / scikit-learn twins, and the covariance repair rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies.estimators import (
    MIN_REPAIR_SHRINKAGE,
    condition_covariance,
    cov_to_corr,
    covariance,
    expected_returns,
    ledoit_wolf,
    pivot_ratio,
)


@pytest.fixture
def returns():
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(6, 6)) * 0.3 + np.eye(6)
    return rng.normal(0.001, 0.02, size=(120, 6)) @ mix


def test_mean_and_geometric_returns(returns):
    np.testing.assert_allclose(
        expected_returns(returns, "mean", 365), returns.mean(axis=0) * 365, rtol=1e-13
    )
    geometric = np.prod(1 + returns, axis=0) ** (252 / len(returns)) - 1
    np.testing.assert_allclose(expected_returns(returns, "geometric", 252), geometric, rtol=1e-13)


def test_ewma_returns_match_pandas(returns):
    expected = pd.DataFrame(returns).ewm(span=20).mean().iloc[-1].to_numpy() * 365
    np.testing.assert_allclose(
        expected_returns(returns, "ewma", 365, span=20), expected, rtol=1e-12
    )


def test_sample_covariance_matches_numpy(returns):
    np.testing.assert_allclose(
        covariance(returns, "sample", 8760), np.cov(returns, rowvar=False) * 8760, rtol=1e-12
    )


def test_ewma_covariance_matches_pandas_formula(returns):
    demeaned = pd.DataFrame(returns - returns.mean(axis=0))
    n = returns.shape[1]
    expected = (
        np.array(
            [
                [(demeaned[i] * demeaned[j]).ewm(span=30).mean().iloc[-1] for j in range(n)]
                for i in range(n)
            ]
        )
        * 365
    )
    np.testing.assert_allclose(
        covariance(returns, "ewma", 365, span=30), expected, rtol=1e-12, atol=1e-14
    )


def test_ledoit_wolf_matches_sklearn(returns):
    sklearn_cov = pytest.importorskip("sklearn.covariance")
    expected, shrinkage = sklearn_cov.ledoit_wolf(returns)
    ours, ours_shrinkage = ledoit_wolf(returns, periods_per_year=1)
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    assert ours_shrinkage == pytest.approx(shrinkage, rel=1e-12)
    np.testing.assert_allclose(covariance(returns, "ledoit_wolf", 365), expected * 365, rtol=1e-12)


def test_unknown_method_names_the_parameter(returns):
    with pytest.raises(
        ValueError,
        match=r"`covariance` must be one of 'sample', 'ewma', 'ledoit_wolf', 'oas', 'denoised', 'detoned'; got 'shrunk'",
    ):
        covariance(returns, "shrunk")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`expected_returns` must be one of .*; got 'median'"):
        expected_returns(returns, "median")  # type: ignore[arg-type]


def test_well_conditioned_covariance_is_left_alone(returns):
    cov = covariance(returns)
    repaired, notes = condition_covariance(cov, returns)
    assert repaired is cov and notes == ()
    assert 0 < pivot_ratio(cov) <= 1


def test_fewer_observations_than_assets_is_shrunk(returns):
    window = returns[:4]
    cov = covariance(window)
    repaired, notes = condition_covariance(cov, window)
    assert notes and "fewer observations (4) than assets (6)" in notes[0]
    assert np.linalg.eigvalsh(repaired).min() > 0
    assert pivot_ratio(repaired) > 1e-10


def test_zero_variance_asset_is_named_and_shrunk(returns):
    window = returns.copy()
    window[:, 2] = 0.0
    cov = covariance(window)
    repaired, notes = condition_covariance(cov, window)
    assert "zero-variance asset(s) at column(s) [2]" in notes[0]
    assert repaired[2, 2] > 0 and np.linalg.eigvalsh(repaired).min() > 0


def test_collinear_assets_are_shrunk_with_at_least_the_minimum_intensity(returns):
    window = np.column_stack([returns, returns[:, 0] * 2.0])
    cov = covariance(window)
    _, notes = condition_covariance(cov, window)
    assert "ill-conditioned covariance" in notes[0]
    intensity = float(notes[0].rsplit("intensity ", 1)[1].rstrip(")"))
    assert intensity >= MIN_REPAIR_SHRINKAGE


def test_cov_to_corr_handles_zero_variance():
    cov = np.array([[4.0, 2.0, 0.0], [2.0, 9.0, 0.0], [0.0, 0.0, 0.0]])
    corr = cov_to_corr(cov)
    np.testing.assert_allclose(corr, [[1, 1 / 3, 0], [1 / 3, 1, 0], [0, 0, 1]])
