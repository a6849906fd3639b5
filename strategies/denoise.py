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

The density error is one numba loop (:func:`mp_fit_error_nb`), the factors are rebuilt from their
eigenpairs alone (:func:`_kept_factors`); scikit-learn's ``KernelDensity``
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
#: scipy's forward-difference step for L-BFGS-B without a gradient (``eps``).
FD_STEP = 1e-8
#: Kernel terms beyond this many bandwidths (each below exp(-40.5) = 2.6e-18 of a term at its
#: centre, under the round-off of any sum they join) are left out.
KERNEL_REACH = 9.0


@nb.njit(cache=True)
def mp_fit_error_nb(var: float, q: float, eigenvalues: np.ndarray, bandwidth: float, n_grid: int):
    """Squared error between the Marchenko-Pastur density of variance ``var`` and ratio ``q`` and
    the Gaussian kernel density of ``eigenvalues``, summed over ``n_grid`` points of the support.

    The grid is evenly spaced, so along it one eigenvalue's kernel ``exp(-u^2 / 2)`` changes by a
    factor that itself changes by the constant ``exp(-d^2)`` (``d`` the spacing in bandwidths):
    three exponentials per eigenvalue, then two products per grid point within reach.
    """
    root = math.sqrt(1.0 / q)
    e_min = var * (1.0 - root) ** 2
    e_max = var * (1.0 + root) ** 2
    n = eigenvalues.shape[0]
    norm = 1.0 / (n * bandwidth * math.sqrt(2.0 * math.pi))
    reach = KERNEL_REACH * bandwidth
    step = (e_max - e_min) / (n_grid - 1)
    d = step / bandwidth
    shrink = math.exp(-d * d)
    kde = np.zeros(n_grid)
    for i in range(n):
        first = max(0, math.ceil((eigenvalues[i] - reach - e_min) / step))
        last = min(n_grid - 1, math.floor((eigenvalues[i] + reach - e_min) / step))
        if first > last:
            continue
        u = (e_min + first * step - eigenvalues[i]) / bandwidth
        term = math.exp(-0.5 * u * u)
        factor = math.exp(-u * d - 0.5 * d * d)
        for k in range(first, last + 1):
            kde[k] += term
            term *= factor
            factor *= shrink
    err = 0.0
    for k in range(n_grid):
        x = e_min + k * step if k < n_grid - 1 else e_max  # np.linspace's points
        spread = (e_max - x) * (x - e_min)
        mp = q / (2.0 * math.pi * var * x) * math.sqrt(spread) if spread > 0.0 else 0.0
        diff = kde[k] * norm - mp
        err += diff * diff
    return err


def noise_variance(eigenvalues: np.ndarray, q: float) -> float:
    """The Marchenko-Pastur variance fitted to ``eigenvalues`` (module docs).

    The gradient is scipy's own default for L-BFGS-B without one (a forward difference of absolute
    step 1e-8, backward at the upper bound), given with the value so scipy's numerical-derivative
    machinery (most of the time of a small fit) is skipped; the path is the same.
    """
    from scipy.optimize import minimize

    e = np.ascontiguousarray(eigenvalues, dtype=np.float64)
    upper = VARIANCE_BOUNDS[1]

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        var = float(x[0])
        step = -FD_STEP if var + FD_STEP > upper else FD_STEP
        f0 = mp_fit_error_nb(var, q, e, BANDWIDTH, GRID_POINTS)
        f1 = mp_fit_error_nb(var + step, q, e, BANDWIDTH, GRID_POINTS)
        return f0, np.array([(f1 - f0) / ((var + step) - var)])

    res = minimize(value_and_gradient, x0=START_VARIANCE, jac=True, bounds=(VARIANCE_BOUNDS,))
    return float(res.x[0])


def _rescaled(matrix: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``matrix`` scaled to unit diagonal, then to the volatilities ``std``."""
    d = np.sqrt(np.diag(matrix))
    corr = matrix / np.outer(d, d)
    return corr * std * std[:, None]


def _top_eigen(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues of a symmetric ``matrix`` and their eigenvectors (columns)."""
    from scipy.linalg import eigh

    n = matrix.shape[0]
    return eigh(matrix, subset_by_index=(n - k, n - 1), driver="evr", check_finite=False)


def _kept_factors(corr: np.ndarray, e_val: np.ndarray, n_factors: int) -> np.ndarray:
    """``corr`` with its eigenvalues past the first ``n_factors`` (``e_val``, decreasing) replaced
    by their mean: ``mean I + V (l - mean) V'`` over the factors' eigenpairs ``(l, V)`` only,
    the same matrix as the full eigendecomposition rebuilt (to round-off) at a fraction of the cost."""
    n = corr.shape[0]
    if n_factors >= n:
        return corr.copy()
    mean = float(e_val[n_factors:].sum()) / float(n - n_factors)
    out = np.diag(np.full(n, mean))
    if n_factors > 0:
        values, vectors = _top_eigen(corr, n_factors)
        out += (vectors * (values - mean)) @ vectors.T
    return out


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
    e_val = np.linalg.eigvalsh(corr)[::-1]  # decreasing
    q = n_obs / n
    var = noise_variance(e_val, q)
    edge = var * (1.0 + (1.0 / q) ** 0.5) ** 2
    n_factors = n - int(e_val[::-1].searchsorted(edge))
    out = _rescaled(_kept_factors(corr, e_val, n_factors), std)
    if detone:  # the largest component of the denoised correlation, removed
        corr = out / np.outer(std, std)
        top, vec = _top_eigen(corr, 1)
        corr -= top[0] * np.outer(vec[:, 0], vec[:, 0])
        out = _rescaled(corr, std)
    return out, n_factors
