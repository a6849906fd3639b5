"""Random-matrix denoising of a covariance: the constant-residual eigenvalue method, optionally
detoned (Lopez de Prado, *Machine Learning for Asset Managers*, 2020, sections 2.4-2.6).

The correlation of ``T`` observations of ``N`` assets has eigenvalues; those a Marchenko-Pastur
distribution of variance ``s2`` and ratio ``q = T / N`` can produce (below
``l+ = s2 (1 + sqrt(1 / q))^2``) are noise. ``s2`` is fitted as the published algorithm fits it:
the squared error between the Marchenko-Pastur density and a Gaussian kernel density (bandwidth
0.01) of the eigenvalues, on 1,000 points spanning the distribution's support, minimised by
L-BFGS-B from ``s2 = 0.5`` within ``[1e-5, 1 - 1e-5]``. The eigenvalues above ``l+`` (the factors)
are kept; the others are replaced by their mean (which keeps the trace), the matrix is rescaled to
unit diagonal, then to the original volatilities. Detoning then removes the largest eigen-component
(the market) of that denoised correlation and rescales again: a matrix for clustering, singular by
construction (a portfolio optimiser shrinks it, see :func:`strategies.estimators.condition_covariance`).

The density error is one numba loop (:func:`mp_fit_error_nb`); scikit-learn's ``KernelDensity``
and the same ``scipy.optimize.minimize`` call make the test oracle (``tests/crosscheck``).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

#: The published algorithm's settings.
BANDWIDTH = 0.01
GRID_POINTS = 1000
START_VARIANCE = 0.5
VARIANCE_BOUNDS = (1e-5, 1.0 - 1e-5)
#: Kernel terms beyond this many bandwidths are below the smallest double (exp(-800) = 0): left out.
KERNEL_REACH = 40.0


@nb.njit(cache=True)
def mp_fit_error_nb(var: float, q: float, eigenvalues: np.ndarray, bandwidth: float, n_grid: int):
    """Squared error between the Marchenko-Pastur density of variance ``var`` and ratio ``q`` and
    the Gaussian kernel density of ``eigenvalues``, summed over ``n_grid`` points of the support."""
    root = math.sqrt(1.0 / q)
    e_min = var * (1.0 - root) ** 2
    e_max = var * (1.0 + root) ** 2
    n = eigenvalues.shape[0]
    e = np.sort(eigenvalues)
    norm = 1.0 / (n * bandwidth * math.sqrt(2.0 * math.pi))
    reach = KERNEL_REACH * bandwidth
    step = (e_max - e_min) / (n_grid - 1)
    err = 0.0
    first = 0  # the eigenvalues within reach of x: e[first:last] (x increases along the grid)
    last = 0
    for k in range(n_grid):
        x = e_min + k * step if k < n_grid - 1 else e_max  # np.linspace's points
        spread = (e_max - x) * (x - e_min)
        mp = q / (2.0 * math.pi * var * x) * math.sqrt(spread) if spread > 0.0 else 0.0
        while first < n and e[first] < x - reach:
            first += 1
        while last < n and e[last] <= x + reach:
            last += 1
        kde = 0.0
        for i in range(first, last):
            u = (x - e[i]) / bandwidth
            kde += math.exp(-0.5 * u * u)
        d = kde * norm - mp
        err += d * d
    return err


def noise_variance(eigenvalues: np.ndarray, q: float) -> float:
    """The Marchenko-Pastur variance fitted to ``eigenvalues`` (module docs)."""
    from scipy.optimize import minimize

    e = np.ascontiguousarray(eigenvalues, dtype=np.float64)
    res = minimize(
        lambda x: mp_fit_error_nb(float(x[0]), q, e, BANDWIDTH, GRID_POINTS),
        x0=START_VARIANCE,
        bounds=(VARIANCE_BOUNDS,),
    )
    return float(res.x[0])


def _rescaled(matrix: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``matrix`` scaled to unit diagonal, then to the volatilities ``std``."""
    d = np.sqrt(np.diag(matrix))
    corr = matrix / np.outer(d, d)
    return corr * std * std[:, None]


def denoise(cov: np.ndarray, n_obs: int, *, detone: bool = False) -> tuple[np.ndarray, int]:
    """The denoised (and, with ``detone``, detoned) covariance of ``n_obs`` observations and the
    number of factors kept: ``(cov, n_factors)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 10)) + rng.normal(size=(500, 1))  # one common factor
    >>> cov, n_factors = denoise(np.cov(x, rowvar=False), 500)
    >>> n_factors, bool(np.allclose(np.diag(cov), np.diag(np.cov(x, rowvar=False))))
    (1, True)
    """
    cov = np.asarray(cov, dtype=np.float64)
    n = cov.shape[0]
    std = np.sqrt(np.diag(cov))
    if n < 2 or not np.all(std > 0):
        return cov.copy(), n
    corr = cov / np.outer(std, std)
    e_val, e_vec = np.linalg.eigh(corr)
    order = e_val.argsort()[::-1]
    e_val, e_vec = e_val[order], e_vec[:, order]
    q = n_obs / n
    var = noise_variance(e_val, q)
    edge = var * (1.0 + (1.0 / q) ** 0.5) ** 2
    n_factors = n - int(e_val[::-1].searchsorted(edge))
    kept = e_val.copy()
    if n_factors < n:
        kept[n_factors:] = kept[n_factors:].sum() / float(n - n_factors)
    out = _rescaled(e_vec @ np.diag(kept) @ e_vec.T, std)
    if detone:  # the largest component of the denoised correlation, removed
        corr = out / np.outer(std, std)
        d_val, d_vec = np.linalg.eigh(corr)
        top = int(np.argmax(d_val))
        corr -= d_val[top] * np.outer(d_vec[:, top], d_vec[:, top])
        out = _rescaled(corr, std)
    return out, n_factors
