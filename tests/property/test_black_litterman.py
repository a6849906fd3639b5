"""Black-Litterman properties (hypothesis): the posterior equals the textbook precision form and
the numba kernel its NumPy twin; an
absolute view held with Idzorek confidence ``c`` moves its asset exactly ``c`` of the way from
the prior to the view; without views, the implied prior's own weights come back."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import BlackLittermanStrategy
from strategies.black_litterman import (
    default_omega,
    idzorek_omega,
    implied_prior,
    posterior_mean_nb,
    posterior_moments,
)


def random_cov(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, n)) * rng.uniform(0.05, 0.6, size=n)
    return factors @ factors.T + 0.01 * np.eye(n)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 12),
    k=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    tau=st.sampled_from([0.01, 0.05, 0.3, 1.0]),
)
def test_posterior_is_the_precision_form(n, k, seed, tau):
    rng = np.random.default_rng(seed + 1)
    cov = random_cov(n, seed)
    pi = rng.normal(0.1, 0.3, n)
    P = rng.choice([-1.0, 0.0, 0.0, 0.5, 1.0], size=(k, n))
    P[np.arange(k), rng.integers(0, n, k)] = 1.0  # no empty row
    Q = rng.normal(0.0, 0.3, k)
    conf = rng.uniform(0.05, 0.95, k)
    omega = idzorek_omega(cov, P, tau, conf)
    mean, post = posterior_moments(cov, pi, P, Q, omega, tau, with_cov=True)
    # the kernel against its NumPy twin, with Idzorek's omega and the default
    fast, ok = posterior_mean_nb(cov, pi, P, Q, conf, tau, True)
    assert ok
    np.testing.assert_allclose(fast, mean, rtol=0, atol=1e-10 * (1.0 + np.abs(mean).max()))
    plain, _ = posterior_moments(cov, pi, P, Q, default_omega(cov, P, tau), tau)
    fast, ok = posterior_mean_nb(cov, pi, P, Q, conf[:0], tau, False)
    assert ok
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-10 * (1.0 + np.abs(plain).max()))
    precision = np.linalg.inv(tau * cov) + P.T @ np.linalg.solve(omega, P)
    want = np.linalg.solve(
        precision, np.linalg.solve(tau * cov, pi) + P.T @ np.linalg.solve(omega, Q)
    )
    scale = 1.0 + np.abs(want).max()
    np.testing.assert_allclose(mean, want, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(
        post, cov + np.linalg.inv(precision), rtol=0, atol=1e-8 * np.abs(cov).max()
    )


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 10),
    seed=st.integers(0, 10_000),
    confidence=st.floats(0.0, 1.0).filter(lambda c: c == 0 or c > 1e-12),
    target=st.floats(-1.0, 2.0),
)
def test_idzorek_confidence_is_the_share_of_the_way(n, seed, confidence, target):
    cov = random_cov(n, seed)
    pi = implied_prior(cov, np.full(n, 1.0), 2.5, 0.02)
    j = seed % n
    P = np.zeros((1, n))
    P[0, j] = 1.0
    omega = idzorek_omega(cov, P, 0.05, np.array([confidence]))
    mean, _ = posterior_moments(cov, pi, P, np.array([target]), omega, 0.05)
    if confidence > 0:  # at 0 the omega is a large constant, not infinity
        assert abs(mean[j] - (pi[j] + confidence * (target - pi[j]))) <= 1e-9 * (1 + abs(target))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 8), seed=st.integers(0, 10_000), delta=st.sampled_from([0.5, 2.5, 10.0]))
def test_without_views_max_sharpe_holds_the_prior_weights(n, seed, delta):
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.02, size=(10 * n + 30, n)) @ (
        np.eye(n) + 0.3 * rng.normal(size=(n, n))
    )
    w = rng.uniform(0.2, 1.0, n)
    got = BlackLittermanStrategy(prior_weights=list(w), risk_aversion=delta).allocate_detailed(
        returns
    )
    assert got.method == "max_sharpe" and not got.notes, got.notes
    np.testing.assert_allclose(got.weights, w / w.sum(), atol=1e-7)
