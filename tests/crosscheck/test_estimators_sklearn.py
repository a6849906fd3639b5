"""The shrinkage covariances against scikit-learn on windows of the real Binance daily data: OAS
(`sklearn.covariance.OAS`, ddof=0, then annualised) to 1e-12 in the matrix and the intensity, and
Ledoit-Wolf (`sklearn.covariance.LedoitWolf`) the same way."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import HRPStrategy, MPTStrategy
from strategies.estimators import covariance, ledoit_wolf, oas

sklearn_covariance = pytest.importorskip("sklearn.covariance")

ENDS = [120, 400, 700, 1000, 1138]


@pytest.fixture(scope="module")
def windows(daily_market):
    returns = daily_market.close.pct_change()
    return [returns.iloc[end - 89 : end + 1].dropna(axis=1).to_numpy() for end in ENDS]


@pytest.mark.parametrize("n_assets", [1, 2, 5, 20, 26])
def test_oas_equals_sklearn(windows, n_assets):
    for returns in windows:
        r = returns[:, :n_assets]
        peer = sklearn_covariance.OAS().fit(r)
        cov, shrinkage = oas(r, 365)
        np.testing.assert_allclose(cov, peer.covariance_ * 365, rtol=1e-12, atol=1e-15)
        assert shrinkage == pytest.approx(float(peer.shrinkage_), rel=1e-12, abs=1e-15)
        np.testing.assert_array_equal(covariance(r, "oas", 365), cov)


def test_oas_with_a_constant_column_and_more_assets_than_days(windows):
    r = windows[-1][:30].copy()  # 30 days, 26 assets
    r[:, 3] = 0.0
    peer = sklearn_covariance.OAS().fit(r)
    cov, shrinkage = oas(r, 365)
    np.testing.assert_allclose(cov, peer.covariance_ * 365, rtol=1e-12, atol=1e-15)
    assert shrinkage == pytest.approx(float(peer.shrinkage_), rel=1e-12)
    assert np.linalg.eigvalsh(cov).min() > 0  # shrinkage makes it positive definite


def test_ledoit_wolf_equals_sklearn(windows):
    for returns in windows:
        peer = sklearn_covariance.LedoitWolf().fit(returns)
        cov, shrinkage = ledoit_wolf(returns, 365)
        np.testing.assert_allclose(cov, peer.covariance_ * 365, rtol=1e-12, atol=1e-15)
        assert shrinkage == pytest.approx(float(peer.shrinkage_), rel=1e-12)


@pytest.mark.parametrize("strategy", [HRPStrategy, MPTStrategy])
def test_allocators_take_the_oas_covariance(windows, strategy):
    got = strategy(covariance="oas").allocate_detailed(windows[2], {"max_weight": 0.3})
    np.testing.assert_allclose(
        got.extras["covariance"], oas(windows[2], 365)[0], rtol=1e-12
    )  # the moments the allocator used
    assert abs(got.weights.sum() - 1) < 1e-9
