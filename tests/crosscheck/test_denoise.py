"""Marchenko-Pastur denoising (and detoning) against a plain NumPy reference of the published
algorithm (Lopez de Prado 2020, snippets 2.1-2.6: scikit-learn's KernelDensity, bandwidth 0.01,
L-BFGS-B from 0.5) and against skfolio's DenoiseCovariance / DetoneCovariance, on windows of the
real Binance daily data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from strategies import HRPStrategy
from strategies.denoise import denoise, mp_fit_error_nb
from strategies.estimators import covariance

KernelDensity = pytest.importorskip("sklearn.neighbors").KernelDensity

ENDS = [150, 400, 700, 1000, 1138]


@pytest.fixture(scope="module")
def windows(daily_market):
    returns = daily_market.close.pct_change()
    return [returns.iloc[end - 119 : end + 1].dropna(axis=1).to_numpy() for end in ENDS]


def reference(cov: np.ndarray, n_obs: int, detone: bool = False) -> tuple[np.ndarray, int]:
    """The published algorithm, written out with NumPy, scipy and scikit-learn."""
    std = np.sqrt(np.diag(cov))
    corr = cov / np.outer(std, std)
    e_val, e_vec = np.linalg.eigh(corr)
    idx = e_val.argsort()[::-1]
    e_val, e_vec = e_val[idx], e_vec[:, idx]
    q = n_obs / cov.shape[0]

    def error(x):
        var = x[0]
        e_min, e_max = var * (1 - (1 / q) ** 0.5) ** 2, var * (1 + (1 / q) ** 0.5) ** 2
        grid = np.linspace(e_min, e_max, 1000)
        with np.errstate(invalid="ignore"):
            mp = q / (2 * np.pi * var * grid) * ((e_max - grid) * (grid - e_min)) ** 0.5
        mp = np.nan_to_num(mp)
        kde = KernelDensity(kernel="gaussian", bandwidth=0.01).fit(e_val.reshape(-1, 1))
        return np.sum((np.exp(kde.score_samples(grid.reshape(-1, 1))) - mp) ** 2)

    var = minimize(error, x0=0.5, bounds=((1e-5, 1 - 1e-5),)).x[0]
    n_facts = e_val.shape[0] - e_val[::-1].searchsorted(var * (1 + (1 / q) ** 0.5) ** 2)
    kept = e_val.copy()
    kept[n_facts:] = kept[n_facts:].sum() / float(kept.shape[0] - n_facts)
    c = e_vec @ np.diag(kept) @ e_vec.T
    d = np.sqrt(np.diag(c))
    c = c / np.outer(d, d)
    if detone:
        v, w = np.linalg.eigh(c)
        top = np.argmax(v)
        c = c - v[top] * np.outer(w[:, top], w[:, top])
        d = np.sqrt(np.diag(c))
        c = c / np.outer(d, d)
    return c * np.outer(std, std), int(n_facts)


def test_the_density_error_equals_scikit_learns_kde(windows):
    cov = np.cov(windows[0], rowvar=False)
    std = np.sqrt(np.diag(cov))
    e_val = np.linalg.eigvalsh(cov / np.outer(std, std))[::-1].copy()
    q = windows[0].shape[0] / cov.shape[0]
    for var in (0.2, 0.5, 0.9):
        e_min, e_max = var * (1 - (1 / q) ** 0.5) ** 2, var * (1 + (1 / q) ** 0.5) ** 2
        grid = np.linspace(e_min, e_max, 1000)
        mp = np.nan_to_num(q / (2 * np.pi * var * grid) * ((e_max - grid) * (grid - e_min)) ** 0.5)
        kde = KernelDensity(kernel="gaussian", bandwidth=0.01).fit(e_val.reshape(-1, 1))
        want = np.sum((np.exp(kde.score_samples(grid.reshape(-1, 1))) - mp) ** 2)
        assert mp_fit_error_nb(var, q, e_val, 0.01, 1000) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("detone", [False, True])
def test_denoising_equals_the_published_algorithm(windows, detone):
    for returns in windows:
        cov = np.cov(returns, rowvar=False)
        got, n_factors = denoise(cov, returns.shape[0], detone=detone)
        want, n_want = reference(cov, returns.shape[0], detone)
        assert n_factors == n_want
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(np.diag(got), np.diag(cov), rtol=1e-12)  # variances kept
        if not detone:
            assert np.linalg.eigvalsh(got).min() > 0


@pytest.mark.parametrize("detone", [False, True])
def test_denoising_equals_skfolio(windows, detone):
    pytest.importorskip("skfolio")
    from skfolio.moments import DenoiseCovariance, DetoneCovariance, EmpiricalCovariance

    for returns in windows:
        denoised = DenoiseCovariance(covariance_estimator=EmpiricalCovariance(), nearest=False)
        peer = (
            DetoneCovariance(covariance_estimator=denoised, nearest=False) if detone else denoised
        )
        want = peer.fit(returns).covariance_
        method = "detoned" if detone else "denoised"
        np.testing.assert_allclose(covariance(returns, method, 1.0), want, rtol=1e-9, atol=1e-15)


def test_allocators_take_the_denoised_covariance(windows):
    got = HRPStrategy(covariance="denoised").allocate_detailed(windows[1])
    want = denoise(np.cov(windows[1], rowvar=False), windows[1].shape[0])[0] * 365
    np.testing.assert_allclose(got.extras["covariance"], want, rtol=1e-12)
