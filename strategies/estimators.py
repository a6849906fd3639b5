"""Expected returns and covariance estimators, annualised from the bar frequency.

All functions take ``returns`` of shape ``(n_obs, n_assets)`` (simple returns, NaN-free) and
``periods_per_year`` (365 for daily crypto bars, 252 for daily stock bars, 8760 for hourly crypto).
The definitions follow PyPortfolioOpt with ``returns_data=True`` and ``frequency=periods_per_year``:

========================  ===================================================================
``mean``                  ``returns.mean(axis=0) * periods_per_year`` (``compounding=False``)
``geometric``             ``prod(1 + r) ** (periods_per_year / n_obs) - 1`` (``compounding=True``)
``ewma`` (returns)        last value of pandas ``ewm(span).mean()`` (``adjust=True``) times
                          ``periods_per_year``
``sample`` (covariance)   ``np.cov(returns, rowvar=False, ddof=1) * periods_per_year``
``ewma`` (covariance)     ``ewm(span).mean()`` of the products of demeaned returns, as
                          ``risk_models.exp_cov``
``ledoit_wolf``           Ledoit-Wolf shrinkage towards the average variance times the identity,
                          as ``sklearn.covariance.ledoit_wolf`` (ddof=0), annualised
``oas``                   Oracle Approximating Shrinkage (Chen, Wiesel, Eldar & Hero 2010) towards
                          the same target, as ``sklearn.covariance.OAS`` (ddof=0), annualised
``denoised``              the sample covariance with its Marchenko-Pastur noise eigenvalues
                          replaced by their mean (:mod:`strategies.denoise`), as skfolio's
                          ``DenoiseCovariance``
``detoned``               ``denoised`` with its market component removed, as skfolio's
                          ``DetoneCovariance(covariance_estimator=DenoiseCovariance())``
========================  ===================================================================

:func:`condition_covariance` applies the documented rule for singular or ill-conditioned matrices.
"""

from __future__ import annotations

from typing import Literal, get_args

import numba as nb
import numpy as np

from strategies.base import check_choice
from strategies.qp import cholesky_nb

ReturnsMethod = Literal["mean", "geometric", "ewma"]
CovarianceMethod = Literal["sample", "ewma", "ledoit_wolf", "oas", "denoised", "detoned"]
RETURNS_METHODS: tuple[str, ...] = get_args(ReturnsMethod)
COVARIANCE_METHODS: tuple[str, ...] = get_args(CovarianceMethod)

#: Below this Cholesky pivot ratio (see :func:`pivot_ratio`) a covariance counts as ill-conditioned.
ILL_CONDITIONED_RATIO = 1e-10
#: Smallest shrinkage intensity used when a covariance has to be repaired.
MIN_REPAIR_SHRINKAGE = 1e-4
#: From this many assets the covariance and the Cholesky check call BLAS/LAPACK (numba's np.dot and
#: np.linalg); below it the plain loops are faster and bit-for-bit as before.
BLAS_MIN_ASSETS = 64


@nb.njit(cache=True)
def mean_nb(returns: np.ndarray) -> np.ndarray:
    n_obs, n_assets = returns.shape
    out = np.zeros(n_assets)
    for t in range(n_obs):
        for j in range(n_assets):
            out[j] += returns[t, j]
    return out / n_obs


@nb.njit(cache=True)
def sample_cov_nb(returns: np.ndarray, ddof: int) -> np.ndarray:
    """Two-pass covariance of the columns of ``returns`` (``ddof`` 1 = sample, 0 = population)."""
    n_obs, n_assets = returns.shape
    mu = mean_nb(returns)
    if n_assets >= BLAS_MIN_ASSETS:  # large universes: one BLAS product of the deviations
        dev_all = returns - mu
        cov = np.dot(dev_all.T, dev_all) / (n_obs - ddof)
        for i in range(n_assets):
            for j in range(i):
                cov[j, i] = cov[i, j]
        return cov
    cov = np.zeros((n_assets, n_assets))
    dev = np.empty(n_assets)
    for t in range(n_obs):
        for j in range(n_assets):
            dev[j] = returns[t, j] - mu[j]
        for i in range(n_assets):
            di = dev[i]
            for j in range(i + 1):
                cov[i, j] += di * dev[j]
    denom = n_obs - ddof
    for i in range(n_assets):
        for j in range(i + 1):
            cov[i, j] /= denom
            cov[j, i] = cov[i, j]
    return cov


@nb.njit(cache=True)
def ewma_weights_nb(n_obs: int, span: float) -> np.ndarray:
    """pandas ``ewm(span=span, adjust=True)`` weights of the last value, oldest first, summing to 1."""
    alpha = 2.0 / (span + 1.0)
    w = np.empty(n_obs)
    total = 0.0
    for t in range(n_obs):
        w[t] = (1.0 - alpha) ** (n_obs - 1 - t)
        total += w[t]
    return w / total


@nb.njit(cache=True)
def ewma_cov_nb(returns: np.ndarray, span: float) -> np.ndarray:
    """PyPortfolioOpt ``exp_cov``: EWMA of the products of returns demeaned by the plain mean."""
    n_obs, n_assets = returns.shape
    mu = mean_nb(returns)
    w = ewma_weights_nb(n_obs, span)
    cov = np.zeros((n_assets, n_assets))
    dev = np.empty(n_assets)
    for t in range(n_obs):
        for j in range(n_assets):
            dev[j] = returns[t, j] - mu[j]
        for i in range(n_assets):
            wi = w[t] * dev[i]
            for j in range(i + 1):
                cov[i, j] += wi * dev[j]
    for i in range(n_assets):
        for j in range(i):
            cov[j, i] = cov[i, j]
    return cov


@nb.njit(cache=True)
def ledoit_wolf_nb(returns: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf (2004) shrinkage towards ``mu * I`` as in scikit-learn; returns ``(cov, shrinkage)``."""
    n_obs, n_assets = returns.shape
    emp = sample_cov_nb(returns, 0)
    mu = 0.0
    for i in range(n_assets):
        mu += emp[i, i]
    mu /= n_assets
    xm = np.empty((n_obs, n_assets))
    means = mean_nb(returns)
    for t in range(n_obs):
        for j in range(n_assets):
            xm[t, j] = returns[t, j] - means[j]
    delta_ = 0.0  # sum((X'X)^2) / n^2
    beta_ = 0.0  # sum((X^2)'(X^2))
    if n_assets >= BLAS_MIN_ASSETS:  # the same sums from two BLAS products
        xtx = np.dot(xm.T, xm)
        sq = xm * xm
        delta_ = (xtx * xtx).sum()
        beta_ = np.dot(sq.T, sq).sum()
    for i in range(n_assets if n_assets < BLAS_MIN_ASSETS else 0):
        for j in range(n_assets):
            sxy = 0.0
            sx2y2 = 0.0
            for t in range(n_obs):
                p = xm[t, i] * xm[t, j]
                sxy += p
                sx2y2 += p * p
            delta_ += sxy * sxy
            beta_ += sx2y2
    delta_ /= n_obs * n_obs
    beta = (beta_ / n_obs - delta_) / (n_assets * n_obs)
    trace = 0.0
    for i in range(n_assets):
        trace += emp[i, i]
    delta = (delta_ - 2.0 * mu * trace + n_assets * mu * mu) / n_assets
    beta = min(beta, delta)
    shrinkage = 0.0 if (beta <= 0.0 or delta <= 0.0 or n_assets == 1) else beta / delta
    out = emp * (1.0 - shrinkage)
    for i in range(n_assets):
        out[i, i] += shrinkage * mu
    return out, shrinkage


@nb.njit(cache=True)
def oas_nb(returns: np.ndarray) -> tuple[np.ndarray, float]:
    """Oracle Approximating Shrinkage towards ``mu * I`` (``mu`` the average variance) as
    scikit-learn computes it: intensity ``min((a + mu^2) / ((n + 1) (a - mu^2 / p)), 1)`` with
    ``a`` the mean squared entry of the population covariance; returns ``(cov, shrinkage)``."""
    n_obs, n_assets = returns.shape
    emp = sample_cov_nb(returns, 0)
    if n_assets == 1:
        return emp, 0.0
    trace = 0.0
    squares = 0.0
    for i in range(n_assets):
        trace += emp[i, i]
        for j in range(n_assets):
            squares += emp[i, j] * emp[i, j]
    alpha = squares / (n_assets * n_assets)
    mu = trace / n_assets
    num = alpha + mu * mu
    den = (n_obs + 1) * (alpha - mu * mu / n_assets)
    shrinkage = 1.0 if den == 0.0 else min(num / den, 1.0)
    out = emp * (1.0 - shrinkage)
    for i in range(n_assets):
        out[i, i] += shrinkage * mu
    return out, shrinkage


def expected_returns(
    returns: np.ndarray,
    method: ReturnsMethod = "mean",
    periods_per_year: float = 365.0,
    span: float = 60.0,
) -> np.ndarray:
    """Annualised expected returns of shape ``(n_assets,)``.

    Parameters
    ----------
    returns : ndarray of shape (n_obs, n_assets)
        Simple returns, NaN-free (see :func:`strategies.validate_returns`).
    method : {"mean", "geometric", "ewma"}
    periods_per_year : float
        Bars per year used to annualise.
    span : float
        EWMA span in bars (``method="ewma"``).

    Examples
    --------
    >>> expected_returns(np.array([[0.01, 0.0], [0.03, 0.02]]), periods_per_year=365)
    array([7.3 , 3.65])
    """
    check_choice("expected_returns", method, RETURNS_METHODS)
    arr = np.ascontiguousarray(returns, dtype=np.float64)
    if method == "mean":
        return mean_nb(arr) * periods_per_year
    if method == "geometric":
        return np.prod(1.0 + arr, axis=0) ** (periods_per_year / arr.shape[0]) - 1.0
    return ewma_weights_nb(arr.shape[0], float(span)) @ arr * periods_per_year


def covariance(
    returns: np.ndarray,
    method: CovarianceMethod = "sample",
    periods_per_year: float = 365.0,
    span: float = 60.0,
) -> np.ndarray:
    """Annualised covariance of shape ``(n_assets, n_assets)``.

    Parameters
    ----------
    returns : ndarray of shape (n_obs, n_assets)
    method : {"sample", "ewma", "ledoit_wolf", "oas", "denoised", "detoned"}
    periods_per_year : float
    span : float
        EWMA span in bars (``method="ewma"``).

    Examples
    --------
    >>> covariance(np.array([[0.01, 0.0], [0.03, 0.02]]), periods_per_year=1)
    array([[0.0002, 0.0002],
           [0.0002, 0.0002]])
    """
    check_choice("covariance", method, COVARIANCE_METHODS)
    arr = np.ascontiguousarray(returns, dtype=np.float64)
    if method == "sample":
        cov = sample_cov_nb(arr, 1)
    elif method == "ewma":
        cov = ewma_cov_nb(arr, float(span))
    elif method == "oas":
        cov = oas_nb(arr)[0]
    elif method in ("denoised", "detoned"):
        from strategies.denoise import denoise

        cov = denoise(sample_cov_nb(arr, 1), arr.shape[0], detone=method == "detoned")[0]
    else:
        cov = ledoit_wolf_nb(arr)[0]
    return cov * periods_per_year


def ledoit_wolf(returns: np.ndarray, periods_per_year: float = 365.0) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf covariance (annualised) and its shrinkage intensity in [0, 1]."""
    cov, shrinkage = ledoit_wolf_nb(np.ascontiguousarray(returns, dtype=np.float64))
    return cov * periods_per_year, float(shrinkage)


def oas(returns: np.ndarray, periods_per_year: float = 365.0) -> tuple[np.ndarray, float]:
    """OAS covariance (annualised) and its shrinkage intensity in [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(0, 0.01, size=(60, 1))
    >>> r = np.hstack([x, 3 * x + rng.normal(0, 0.01, (60, 1)), rng.normal(0, 0.05, (60, 1))])
    >>> round(oas(r)[1], 6)  # as sklearn.covariance.OAS().fit(r).shrinkage_
    0.094052
    """
    cov, shrinkage = oas_nb(np.ascontiguousarray(returns, dtype=np.float64))
    return cov * periods_per_year, float(shrinkage)


def cov_to_corr(cov: np.ndarray) -> np.ndarray:
    """Correlation matrix from a covariance; zero-variance rows and columns get correlation 0 (1 on
    the diagonal)."""
    std = np.sqrt(np.diag(cov))
    safe = np.where(std > 0, std, 1.0)
    corr = cov / np.outer(safe, safe)
    corr[std == 0, :] = 0.0
    corr[:, std == 0] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


@nb.njit(cache=True)
def condition_stats_nb(cov: np.ndarray) -> tuple[float, float, float]:
    """``(smallest variance, largest variance, pivot ratio)``; the pivot ratio is that of the
    correlation matrix (-1.0 when it is not positive definite or a variance is <= 0)."""
    n = cov.shape[0]
    vmin = np.inf
    vmax = -np.inf
    for i in range(n):
        vmin = min(vmin, cov[i, i])
        vmax = max(vmax, cov[i, i])
    if not vmin > 0.0:
        return vmin, vmax, -1.0
    sd = np.empty(n)
    for i in range(n):
        sd[i] = np.sqrt(cov[i, i])
    corr = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            corr[i, j] = cov[i, j] / (sd[i] * sd[j])
    if n < BLAS_MIN_ASSETS:
        return vmin, vmax, cholesky_nb(corr, np.empty((n, n)))
    try:  # LAPACK potrf; it fails exactly where cholesky_nb returns -1 (a pivot <= 0)
        L = np.linalg.cholesky(corr)
    except Exception:  # numba raises LinAlgError for a matrix not positive definite
        return vmin, vmax, -1.0
    ratio = 1.0
    for j in range(n):
        ratio = min(ratio, L[j, j] * L[j, j] / corr[j, j])
    return vmin, vmax, ratio


def pivot_ratio(cov: np.ndarray) -> float:
    """Smallest Cholesky pivot ratio of ``cov`` scaled to unit diagonal (1 = orthogonal assets,
    0 = an asset is a linear combination of others); -1 when the factorisation fails."""
    return float(condition_stats_nb(np.ascontiguousarray(cov, dtype=np.float64))[2])


def condition_covariance(
    cov: np.ndarray, returns: np.ndarray, periods_per_year: float = 365.0
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Apply the repair rule for singular or ill-conditioned covariances.

    A covariance is repaired when an asset has zero variance, when there are fewer observations than
    assets, when its smallest Cholesky pivot ratio (see :func:`pivot_ratio`) is below
    :data:`ILL_CONDITIONED_RATIO`, or when the smallest variance is below :data:`ILL_CONDITIONED_RATIO`
    times the largest (a near-constant series, e.g. a constant price with round-off). The repair shrinks it towards its average variance,
    ``(1 - d) * cov + d * trace(cov) / n * I``, with ``d`` the Ledoit-Wolf intensity of the window but
    at least :data:`MIN_REPAIR_SHRINKAGE`. A note says why and by how much.

    Returns
    -------
    cov : ndarray of shape (n_assets, n_assets)
        ``cov`` itself when it is well conditioned.
    notes : tuple of str
        Empty when nothing was changed.
    """
    n_obs, n_assets = returns.shape
    vmin, vmax, ratio = condition_stats_nb(cov)
    if vmax <= 0.0:
        return cov, ()  # nothing to shrink towards; callers treat all-zero variance separately
    if vmin >= ILL_CONDITIONED_RATIO * vmax and n_obs > n_assets and ratio >= ILL_CONDITIONED_RATIO:
        return cov, ()
    variances = np.diag(cov)
    zero = np.flatnonzero(variances <= 0.0)
    tiny = np.flatnonzero(variances < ILL_CONDITIONED_RATIO * vmax)
    if zero.size:
        reason = f"zero-variance asset(s) at column(s) {zero.tolist()}"
    elif tiny.size:
        reason = (
            f"near-zero variance at column(s) {tiny.tolist()} (below {ILL_CONDITIONED_RATIO:g} times "
            "the largest)"
        )
    elif n_obs <= n_assets:
        reason = f"fewer observations ({n_obs}) than assets ({n_assets})"
    else:
        reason = f"ill-conditioned covariance (pivot ratio {ratio:.2g} < {ILL_CONDITIONED_RATIO:g})"
    delta = max(ledoit_wolf_nb(np.ascontiguousarray(returns))[1], MIN_REPAIR_SHRINKAGE)
    repaired = (1.0 - delta) * cov + delta * variances.mean() * np.eye(n_assets)
    return repaired, (
        f"{reason}: covariance shrunk towards its average variance (intensity {delta:.3g})",
    )


__all__ = [
    "COVARIANCE_METHODS",
    "RETURNS_METHODS",
    "condition_covariance",
    "cov_to_corr",
    "covariance",
    "expected_returns",
    "ledoit_wolf",
    "oas",
    "pivot_ratio",
]
