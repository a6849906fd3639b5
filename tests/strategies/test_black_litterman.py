"""Black-Litterman: the helpers against the textbook (precision) form, the strategy's parameter
checks, views and priors by symbol, dropped views, limits and determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from strategies import (
    STRATEGIES,
    BlackLittermanStrategy,
    Constraints,
    ViewError,
    Views,
    build_strategy,
)
from strategies.black_litterman import (
    ZERO_CONFIDENCE_OMEGA,
    default_omega,
    idzorek_omega,
    implied_prior,
    posterior_mean_nb,
    posterior_moments,
)

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "ADA/USDT", "XRP/USDT"]
PPY = 365.0


@pytest.fixture(scope="module")
def returns():
    rng = np.random.default_rng(7)
    mix = np.eye(5) + 0.4 * rng.normal(size=(5, 5))
    return rng.normal(0.001, 0.02, size=(150, 5)) @ mix


@pytest.fixture(scope="module")
def cov(returns):
    return np.cov(returns, rowvar=False) * PPY


def textbook(cov, pi, P, Q, omega, tau):
    """The precision form (He & Litterman): an independent oracle of the posterior."""
    prec = np.linalg.inv(tau * cov) + P.T @ np.linalg.inv(omega) @ P
    mean = np.linalg.solve(prec, np.linalg.solve(tau * cov, pi) + P.T @ np.linalg.solve(omega, Q))
    return mean, cov + np.linalg.inv(prec)


# ----------------------------------------------------------------------------------- helpers
def test_implied_prior_normalises_the_weights_and_adds_the_risk_free_rate(cov):
    w = np.array([5.0, 3.0, 1.0, 0.5, 0.5])
    got = implied_prior(cov, w, 2.5, 0.02)
    np.testing.assert_allclose(got, 2.5 * cov @ (w / 10.0) + 0.02, rtol=1e-15)


def test_default_and_idzorek_omega(cov):
    P = np.array([[1.0, 0, 0, 0, 0], [0, 1.0, -1.0, 0, 0], [0, 0, 0, 0.5, 0.5]])
    var = np.diag(P @ cov @ P.T)
    np.testing.assert_allclose(default_omega(cov, P, 0.05), np.diag(0.05 * var), rtol=1e-14)
    got = idzorek_omega(cov, P, 0.05, np.array([0.25, 1.0, 0.0]))
    np.testing.assert_allclose(
        got, np.diag([0.05 * 3.0 * var[0], 0.0, ZERO_CONFIDENCE_OMEGA]), rtol=1e-14
    )
    with pytest.raises(ViewError, match=r"`view_confidences` must be 3 numbers in \[0, 1\]"):
        idzorek_omega(cov, P, 0.05, np.array([0.5, 1.2, 0.0]))
    with pytest.raises(ViewError, match="must be 3 numbers"):
        idzorek_omega(cov, P, 0.05, np.array([0.5, 0.5]))


@pytest.mark.parametrize("tau", [0.01, 0.05, 1.0])
def test_posterior_equals_the_precision_form(cov, tau):
    rng = np.random.default_rng(3)
    pi = rng.normal(0.2, 0.3, 5)
    P = np.array([[1.0, 0, 0, 0, 0], [0, 1.0, -1.0, 0, 0], [0.5, 0, 0, 0.5, -1.0]])
    Q = np.array([0.3, 0.05, -0.1])
    omega = idzorek_omega(cov, P, tau, np.array([0.3, 0.6, 0.9]))
    mean, post = posterior_moments(cov, pi, P, Q, omega, tau, with_cov=True)
    want_mean, want_cov = textbook(cov, pi, P, Q, omega, tau)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(post, want_cov, rtol=1e-10, atol=1e-12)
    assert np.array_equal(post, post.T)
    assert posterior_moments(cov, pi, P, Q, omega, tau)[1] is None


def test_without_views_the_posterior_is_the_prior(cov):
    pi = np.arange(5.0)
    mean, post = posterior_moments(
        cov, pi, np.zeros((0, 5)), np.zeros(0), np.zeros((0, 0)), 0.05, with_cov=True
    )
    np.testing.assert_array_equal(mean, pi)
    np.testing.assert_allclose(post, 1.05 * cov, rtol=1e-15)


def test_full_confidence_makes_the_view_hold_exactly(cov):
    P = np.array([[0, 1.0, -1.0, 0, 0]])
    omega = idzorek_omega(cov, P, 0.05, np.array([1.0]))
    mean, _ = posterior_moments(cov, np.full(5, 0.4), P, np.array([0.07]), omega, 0.05)
    assert mean[1] - mean[2] == pytest.approx(0.07, abs=1e-12)


def test_a_singular_view_system_falls_back_to_least_squares():
    cov = np.diag([0.04, 0.0])  # a view held with certainty on a zero-variance asset
    P = np.array([[0.0, 1.0]])
    mean, _ = posterior_moments(
        cov, np.array([0.1, 0.2]), P, np.array([0.5]), np.zeros((1, 1)), 0.05
    )
    np.testing.assert_allclose(mean, [0.1, 0.2])  # no information reaches the prior


@pytest.mark.parametrize("confidences", [None, (0.3, 1.0, 0.0), (0.9, 0.5, 0.2)])
def test_the_kernel_equals_its_numpy_twin(cov, confidences):
    pi = np.linspace(-0.1, 0.5, 5)
    P = np.array([[1.0, 0, 0, 0, 0], [0, 1.0, -1.0, 0, 0], [0.5, 0, 0, 0.5, -1.0]])
    Q = np.array([0.3, 0.05, -0.1])
    conf = np.asarray(confidences if confidences is not None else (), dtype=np.float64)
    omega = (
        default_omega(cov, P, 0.05) if confidences is None else idzorek_omega(cov, P, 0.05, conf)
    )
    twin, _ = posterior_moments(cov, pi, P, Q, omega, 0.05)
    mean, ok = posterior_mean_nb(cov, pi, P, Q, conf, 0.05, confidences is not None)
    assert ok
    np.testing.assert_allclose(mean, twin, rtol=0, atol=1e-13)
    none, ok = posterior_mean_nb(cov, pi, P[:0], Q[:0], conf[:0], 0.05, False)
    assert ok and np.array_equal(none, pi)


def test_the_kernel_declines_a_singular_system_and_the_twin_decides():
    cov = np.diag([0.04, 0.0])
    P, Q, pi = np.array([[0.0, 1.0]]), np.array([0.5]), np.array([0.1, 0.2])
    _, ok = posterior_mean_nb(cov, pi, P, Q, np.array([1.0]), 0.05, True)
    assert not ok
    s = BlackLittermanStrategy(views=Views(P, Q), view_confidences=[1.0], prior_returns=pi)
    np.testing.assert_allclose(s.posterior_from_covariance(cov), pi)


def test_posterior_from_a_given_covariance(returns, cov):
    s = BlackLittermanStrategy(views={"SOL/USDT": 0.8, "ETH/USDT - BTC/USDT": 0.1})
    frame = pd.DataFrame(cov, index=SYMBOLS, columns=SYMBOLS)
    mean, post = s.posterior_from_covariance(frame, return_cov=True)
    want, want_cov = s.posterior(returns, SYMBOLS, return_cov=True)
    pd.testing.assert_series_equal(mean, want, rtol=0, atol=1e-14)
    pd.testing.assert_frame_equal(post, want_cov, rtol=0, atol=1e-14)
    with pytest.raises(
        ValueError, match=r"`cov` must be a finite square matrix .* got shape \(5, 4\)"
    ):
        s.posterior_from_covariance(cov[:, :4], SYMBOLS)
    with pytest.raises(ValueError, match="`cov` must be a finite square matrix"):
        s.posterior_from_covariance(np.full((5, 5), np.nan), SYMBOLS)


# ------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"objective": "min_volatility"},
            r"`objective` must be one of 'max_sharpe', 'max_utility'",
        ),
        ({"covariance": "sampel"}, r"did you mean 'sample'"),
        ({"omega": "idzorec"}, r"`omega` must be one of 'default', 'idzorek'"),
        ({"prior": "market"}, r"`prior` must be one of 'equal', 'zero'; got 'market'"),
        ({"tau": 0}, r"`tau` must be in \(0, 1\]; got 0"),
        ({"tau": 1.5}, r"`tau` must be in \(0, 1\]; got 1.5"),
        ({"tau": True}, r"`tau` must be in \(0, 1\]; got True"),
        ({"views": ["BTC/USDT"]}, "`views` must be a mapping of expressions"),
        ({"views": {"BTC/USDT -": 0.1}}, "is malformed: it ends with an operator"),
        ({"omega": "idzorek", "views": {"A": 0.1}}, "'idzorek' needs `view_confidences`"),
        ({"view_confidences": [0.5]}, "`view_confidences` are given but there are no `views`"),
        (
            {"views": {"A": 0.1}, "view_confidences": [0.5], "omega": "default"},
            "set the uncertainty of omega = 'idzorek'",
        ),
        (
            {"views": Views([[1.0, 0.0]], [0.1]), "view_confidences": {"view 0": 0.5}},
            "by expression need `views` by expression",
        ),
        (
            {"views": {"A": 0.1, "B": 0.2}, "view_confidences": {"A": 0.5, "C": 0.1}},
            r"must name each view once; missing \['B'\], not a view \['C'\]",
        ),
        (
            {"views": {"A": 0.1, "B": 0.2}, "view_confidences": [0.5]},
            r"one entry per view \(2\); got 1",
        ),
        ({"views": {"A": 0.1}, "view_confidences": [1.5]}, r"numbers in \[0, 1\]; got \[1.5\]"),
        (
            {"prior": "zero", "prior_weights": [1, 2]},
            "`prior`, `prior_returns` and `prior_weights` are alternatives; got prior and prior_weights",
        ),
        ({"prior_returns": [0.1, np.nan]}, "`prior_returns` entries must be finite numbers"),
        ({"prior_returns": {"A": "x"}}, "`prior_returns` entries must be finite numbers"),
        (
            {"prior_weights": {"A": 1.0, "B": 0.0}},
            r"`prior_weights` entries must be finite and > 0",
        ),
        ({"risk_aversion": 0}, r"`risk_aversion` must be > 0"),
        ({"fallback": ["min_volatility", "hrpp"]}, r"did you mean 'hrp'"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        BlackLittermanStrategy(**params)


def test_registered_and_buildable_by_name():
    assert STRATEGIES["black_litterman"].cls is BlackLittermanStrategy
    s = build_strategy("black_litterman", views={"BTC/USDT": 0.3}, tau=0.1, lookback_days=60)
    assert isinstance(s, BlackLittermanStrategy) and s.tau == 0.1
    assert "views" in STRATEGIES["black_litterman"].parameters


# ------------------------------------------------------------------------ views by symbol
def test_for_symbols_resolves_views_confidences_and_priors():
    s = BlackLittermanStrategy(
        views={"SOL/USDT": 0.5, "ETH/USDT - BTC/USDT": 0.05},
        view_confidences={"ETH/USDT - BTC/USDT": 0.2, "SOL/USDT": 0.9},
        prior_weights={s: float(k + 1) for k, s in enumerate(SYMBOLS)},
    )
    resolved = s.for_symbols(SYMBOLS)
    assert isinstance(resolved.views, Views)
    np.testing.assert_array_equal(resolved.views.P, [[0, 0, 1, 0, 0], [-1, 1, 0, 0, 0]])
    assert resolved.view_confidences == (0.9, 0.2)  # in the views' order
    assert resolved.prior_weights == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert s.views == {"SOL/USDT": 0.5, "ETH/USDT - BTC/USDT": 0.05}  # the original unchanged
    assert BlackLittermanStrategy().for_symbols(SYMBOLS) == BlackLittermanStrategy()


def test_by_symbol_errors_name_the_symbol():
    with pytest.raises(ViewError, match=r"names 'SOL/USD', .* \(did you mean 'SOL/USDT'\?\)"):
        BlackLittermanStrategy(views={"SOL/USD": 0.5}).for_symbols(SYMBOLS)
    with pytest.raises(ValueError, match=r"`prior_returns` names \['DOGE/USDT'\], which the data"):
        BlackLittermanStrategy(prior_returns={"DOGE/USDT": 0.1}).for_symbols(SYMBOLS)
    with pytest.raises(
        ValueError,
        match=r"`prior_weights` must give every symbol of the data; missing \['SOL/USDT'",
    ):
        BlackLittermanStrategy(prior_weights={"BTC/USDT": 1.0, "ETH/USDT": 1.0}).for_symbols(
            SYMBOLS
        )
    with pytest.raises(ViewError, match="`views` has 2 columns but the data has 5 symbols"):
        BlackLittermanStrategy(views=Views([[1.0, -1.0]], [0.1])).for_symbols(SYMBOLS)


def test_by_symbol_parameters_need_the_symbols(returns):
    with pytest.raises(ValueError, match="`views` by symbol need the market's symbols"):
        BlackLittermanStrategy(views={"BTC/USDT": 0.3}).allocate(returns)
    with pytest.raises(ValueError, match="`prior_returns` by symbol needs the market's symbols"):
        BlackLittermanStrategy(prior_returns=dict.fromkeys(SYMBOLS, 0.1)).posterior(returns)
    with pytest.raises(ViewError, match="`views` has 2 columns but the window has 5 assets"):
        BlackLittermanStrategy(views=Views([[1.0, -1.0]], [0.1])).allocate(returns)
    with pytest.raises(
        ValueError, match=r"`prior_returns` must have one entry per asset \(5\); got 3"
    ):
        BlackLittermanStrategy(prior_returns=[0.1, 0.2, 0.3]).allocate(returns)


def test_a_view_outside_the_universe_is_dropped_with_a_note(returns):
    s = BlackLittermanStrategy(
        views={"BTC/USDT": 0.3, "ETH/USDT - SOL/USDT": 0.05, "ADA/USDT": 0.2},
        view_confidences=[0.5, 0.6, 0.7],
        prior_returns=dict(zip(SYMBOLS, [0.1, 0.2, 0.3, 0.4, 0.5], strict=True)),
    ).for_symbols(SYMBOLS)
    members = np.array([0, 1, 3, 4])  # SOL not listed yet
    small = s.for_universe(members, len(SYMBOLS))
    assert small.view_confidences == (0.5, 0.7)
    assert small.prior_returns == (0.1, 0.2, 0.4, 0.5)
    allocation = small.allocate_detailed(returns[:, members])
    assert (
        allocation.notes[0]
        == "view 'ETH/USDT - SOL/USDT' dropped: SOL/USDT is not in this universe"
    )
    # the same as the two remaining views given directly on the four assets
    direct = BlackLittermanStrategy(
        views={"BTC/USDT": 0.3, "ADA/USDT": 0.2},
        view_confidences=[0.5, 0.7],
        prior_returns=[0.1, 0.2, 0.4, 0.5],
    ).for_symbols(["BTC/USDT", "ETH/USDT", "ADA/USDT", "XRP/USDT"])
    np.testing.assert_array_equal(direct.allocate(returns[:, members]), allocation.weights)
    # a universe holding every leg keeps everything and notes nothing
    assert not s.for_universe(np.arange(5), 5).allocate_detailed(returns).notes


# --------------------------------------------------------------------------- allocations
@pytest.mark.parametrize("objective", ["max_sharpe", "max_utility"])
def test_without_views_the_prior_weights_come_back(returns, objective):
    """pi - rf = delta S w: max Sharpe and max utility (gamma = delta) both hold w."""
    w = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
    s = BlackLittermanStrategy(prior_weights=list(w * 7), risk_aversion=3.0, objective=objective)
    got = s.allocate_detailed(returns)
    assert got.method == objective and not got.notes
    np.testing.assert_allclose(got.weights, w, atol=1e-9)
    eq = BlackLittermanStrategy(objective=objective, risk_aversion=3.0).allocate(returns)
    np.testing.assert_allclose(eq, np.full(5, 0.2), atol=1e-9)


def test_a_bullish_view_raises_the_asset(returns):
    base = BlackLittermanStrategy()
    bull = BlackLittermanStrategy(views=Views([[0, 0, 1.0, 0, 0]], [3.0]))
    prior = base.posterior(returns)
    post = bull.posterior(returns)
    assert post[2] > prior[2] + 0.1
    assert bull.allocate(returns)[2] > base.allocate(returns)[2] + 0.05


def test_bounds_and_groups_hold(returns):
    s = BlackLittermanStrategy(
        views={"SOL/USDT": 2.0, "ETH/USDT - BTC/USDT": 0.5}, view_confidences=[0.9, 0.8]
    ).for_symbols(SYMBOLS)
    cons = Constraints(0.05, 0.3, {"alts": ([2, 3, 4], 0.0, 0.4)})
    for objective in ("max_sharpe", "max_utility"):
        w = dataclasses.replace(s, objective=objective).allocate(returns, cons)
        assert w.min() >= 0.05 - 1e-12 and w.max() <= 0.3 + 1e-12
        assert w[2:].sum() <= 0.4 + 1e-12 and abs(w.sum() - 1) <= 1e-12


def test_deterministic(returns):
    make = lambda: BlackLittermanStrategy(  # noqa: E731
        views={"SOL/USDT": 0.8, "ETH/USDT - BTC/USDT": 0.1}, view_confidences=[0.4, 0.7]
    ).for_symbols(SYMBOLS)
    a = make().allocate_detailed(returns, {"max_weight": 0.35})
    b = make().allocate_detailed(returns, {"max_weight": 0.35})
    c = make().allocate_detailed(returns.copy(order="F"), {"max_weight": 0.35})
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.weights, c.weights)
    assert a.method == b.method and a.notes == b.notes


def test_posterior_outputs_and_extras(returns):
    frame = pd.DataFrame(returns, columns=SYMBOLS)
    s = BlackLittermanStrategy(views={"BTC/USDT": 0.3}, posterior_covariance=True)
    mean = s.posterior(frame)
    assert isinstance(mean, pd.Series) and list(mean.index) == SYMBOLS
    mean2, post = s.posterior(returns, symbols=SYMBOLS, return_cov=True)
    pd.testing.assert_series_equal(mean, mean2)
    assert isinstance(post, pd.DataFrame) and list(post.columns) == SYMBOLS
    arr_mean, arr_cov = s.for_symbols(SYMBOLS).posterior(returns, return_cov=True)
    assert isinstance(arr_mean, np.ndarray) and arr_cov.shape == (5, 5)
    np.testing.assert_array_equal(arr_mean, mean.to_numpy())
    allocation = s.for_symbols(SYMBOLS).allocate_detailed(returns)
    np.testing.assert_array_equal(allocation.extras["expected_returns"], arr_mean)
    np.testing.assert_array_equal(allocation.extras["covariance"], arr_cov)  # the posterior one
    prior = allocation.extras["prior_returns"]
    np.testing.assert_allclose(
        prior, implied_prior(np.cov(returns, rowvar=False) * PPY, np.ones(5), 1.0, 0.02)
    )
    weights = s.allocate_frame(frame)  # resolves the views against the columns
    assert list(weights.index) == SYMBOLS
    np.testing.assert_array_equal(weights.to_numpy(), allocation.weights)
