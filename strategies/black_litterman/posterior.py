"""The Black-Litterman posterior on arrays: the implied prior, the views' uncertainty, the
posterior mean and covariance (NumPy), and the posterior mean in one numba pass.

With ``S`` the annualised covariance, ``pi`` the prior, views ``P mu = Q`` and their uncertainty
``Omega`` (formulas and the PyPortfolioOpt settings they match in docs/allocators.md):

* posterior mean ``pi + tau S P' A^-1 (Q - P pi)`` with ``A = P tau S P' + Omega``, posterior
  covariance ``S + tau S - tau S P' A^-1 P tau S`` (:func:`posterior_moments`, the NumPy twin of
  :func:`posterior_mean_nb`);
* the prior implied by weights ``w``: ``risk_aversion * S w / sum(w) + risk_free_rate``
  (:func:`implied_prior`);
* ``Omega`` default ``diag(tau P S P')`` (:func:`default_omega`), or Idzorek's confidences
  ``c`` in the closed form ``diag(tau (1 - c) / c P S P')`` (:func:`idzorek_omega`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from strategies.errors import ViewError
from strategies.pdas import lu_solve_nb

#: The uncertainty of a view held with confidence 0 (PyPortfolioOpt's constant).
ZERO_CONFIDENCE_OMEGA = 1e6


def implied_prior(
    cov: np.ndarray, weights: np.ndarray, risk_aversion: float, risk_free_rate: float = 0.0
) -> np.ndarray:
    """Returns implied by holding ``weights``: ``risk_aversion * cov @ (w / sum(w)) + rf``.

    Parameters
    ----------
    cov : ndarray of shape (n_assets, n_assets)
        Annualised covariance.
    weights : ndarray of shape (n_assets,)
        Positive weights (market capitalisations will do: they are normalised).
    risk_aversion : float
    risk_free_rate : float

    Returns
    -------
    ndarray of shape (n_assets,)

    Examples
    --------
    >>> implied_prior(np.diag([0.04, 0.16]), np.array([3.0, 1.0]), 2.0, 0.01).round(12).tolist()
    [0.07, 0.09]
    """
    w = np.asarray(weights, dtype=np.float64)
    return risk_aversion * (cov @ (w / w.sum())) + risk_free_rate


def default_omega(cov: np.ndarray, P: np.ndarray, tau: float) -> np.ndarray:
    """He & Litterman's uncertainty, ``diag(tau P S P')`` of shape ``(n_views, n_views)``.

    Examples
    --------
    >>> default_omega(np.diag([0.04, 0.09]), np.array([[1.0, -1.0]]), 0.05).tolist()
    [[0.006500000000000001]]
    """
    return np.diag(tau * _view_variances(cov, P))


def idzorek_omega(
    cov: np.ndarray, P: np.ndarray, tau: float, confidences: np.ndarray
) -> np.ndarray:
    """Idzorek's confidences (closed form): ``diag(tau (1 - c) / c P S P')``, ``1e6`` where
    ``c = 0``; shape ``(n_views, n_views)``.

    Raises
    ------
    ViewError
        When a confidence is outside [0, 1].

    Examples
    --------
    >>> idzorek_omega(np.diag([0.04, 0.09]), np.eye(2), 0.05, np.array([0.5, 0.0])).tolist()
    [[0.002, 0.0], [0.0, 1000000.0]]
    """
    c = np.asarray(confidences, dtype=np.float64)
    if c.shape != (P.shape[0],) or not np.all((c >= 0) & (c <= 1)):
        raise ViewError(
            f"`view_confidences` must be {P.shape[0]} numbers in [0, 1]; got {c.tolist()}"
        )
    out = np.full(c.size, ZERO_CONFIDENCE_OMEGA)
    held = c > 0
    out[held] = tau * ((1 - c[held]) / c[held]) * _view_variances(cov, P[held])
    return np.diag(out)


def _view_variances(cov: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``diag(P S P')``: the variance of each view portfolio."""
    return np.einsum("ij,ij->i", P @ cov, P)


def posterior_moments(
    cov: np.ndarray,
    pi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    omega: np.ndarray,
    tau: float,
    *,
    with_cov: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The Black-Litterman posterior mean and (optionally) covariance.

    Parameters
    ----------
    cov : ndarray of shape (n_assets, n_assets)
    pi : ndarray of shape (n_assets,)
    P : ndarray of shape (n_views, n_assets)
    Q : ndarray of shape (n_views,)
    omega : ndarray of shape (n_views, n_views)
    tau : float
    with_cov : bool
        Also return the posterior covariance (else None).

    Returns
    -------
    mean : ndarray of shape (n_assets,)
    covariance : ndarray of shape (n_assets, n_assets) or None
        Symmetric; ``(1 + tau) cov`` without views.

    Examples
    --------
    >>> cov = np.diag([0.04, 0.09])
    >>> P, Q = np.array([[1.0, 0.0]]), np.array([0.2])
    >>> mean, _ = posterior_moments(cov, np.zeros(2), P, Q, default_omega(cov, P, 0.05), 0.05)
    >>> mean.tolist()  # the default omega meets the prior halfway
    [0.1, 0.0]
    """
    if P.shape[0] == 0:
        return pi.copy(), ((1.0 + tau) * cov if with_cov else None)
    tau_cov_p = tau * cov @ P.T
    A = P @ tau_cov_p + omega
    mean = pi + tau_cov_p @ _solve(A, Q - P @ pi)
    if not with_cov:
        return mean, None
    post = cov + (tau * cov - tau_cov_p @ _solve(A, tau_cov_p.T))
    return mean, (post + post.T) / 2


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A^-1 b``, least squares when ``A`` is singular (a view on a zero-variance asset held
    with confidence 1), as PyPortfolioOpt does."""
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]


@nb.njit(cache=True)
def view_system_nb(
    cov: np.ndarray,
    pi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    confidences: np.ndarray,
    tau: float,
    idzorek: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(S P', A, Q - P pi)`` with ``A = P tau S P' + Omega``, Omega the default
    (``idzorek`` False) or Idzorek's from ``confidences``; ``S P'`` over the views' legs only."""
    k, n = P.shape
    sp = np.zeros((n, k))
    for v in range(k):
        for j in range(n):
            weight = P[v, j]
            if weight == 0.0:
                continue
            for i in range(n):
                sp[i, v] += cov[i, j] * weight
    A = np.empty((k, k))
    rhs = np.empty(k)
    for a in range(k):
        variance = 0.0  # of view portfolio a: (P S P')_aa
        for b in range(k):
            acc = 0.0
            for j in range(n):
                acc += P[a, j] * sp[j, b]
            A[a, b] = tau * acc
            if b == a:
                variance = acc
        if not idzorek:
            A[a, a] += tau * variance
        elif confidences[a] == 0.0:
            A[a, a] += 1e6  # ZERO_CONFIDENCE_OMEGA
        else:
            A[a, a] += tau * ((1.0 - confidences[a]) / confidences[a]) * variance
        acc = Q[a]
        for j in range(n):
            acc -= P[a, j] * pi[j]
        rhs[a] = acc
    return sp, A, rhs


@nb.njit(cache=True)
def posterior_mean_nb(
    cov: np.ndarray,
    pi: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    confidences: np.ndarray,
    tau: float,
    idzorek: bool,
) -> tuple[np.ndarray, bool]:
    """The posterior mean of :func:`posterior_moments` with the default omega (``idzorek``
    False) or Idzorek's from ``confidences``, in one pass; returns ``(mean, ok)``.

    ``ok`` is False when ``A = P tau S P' + Omega`` is singular to working precision
    (:func:`strategies.pdas.lu_solve_nb`): the caller then takes the NumPy twin.

    Examples
    --------
    >>> cov, P = np.diag([0.04, 0.09]), np.array([[1.0, 0.0]])
    >>> mean, ok = posterior_mean_nb(cov, np.zeros(2), P, np.array([0.2]), np.zeros(0), 0.05, False)
    >>> mean.round(12).tolist(), ok
    ([0.1, 0.0], True)
    """
    sp, A, rhs = view_system_nb(cov, pi, P, Q, confidences, tau, idzorek)
    x, ok = lu_solve_nb(A, rhs)
    mean = pi.copy()
    if not ok:
        return mean, False
    for i in range(mean.size):
        for v in range(x.size):
            mean[i] += tau * sp[i, v] * x[v]
    return mean, True


__all__ = [
    "ZERO_CONFIDENCE_OMEGA",
    "default_omega",
    "idzorek_omega",
    "implied_prior",
    "posterior_mean_nb",
    "posterior_moments",
    "view_system_nb",
]
