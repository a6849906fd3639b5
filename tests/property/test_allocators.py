"""Properties of every allocator: finite weights that sum to 1 within the bounds, permutation
equivariance, and scale invariance of HRP and minimum volatility."""

from __future__ import annotations

import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import (
    Constraints,
    EqualWeight,
    HRPStrategy,
    InverseVolatility,
    MPTStrategy,
    RiskParity,
)
from strategies.estimators import covariance
from strategies.hrp import linkage_matrix

ALLOCATORS = {
    "max_sharpe": MPTStrategy(),
    "min_volatility": MPTStrategy(objective="min_volatility"),
    "efficient_risk": MPTStrategy(objective="efficient_risk", target_volatility=0.5),
    "max_sharpe_lw": MPTStrategy(covariance="ledoit_wolf", expected_returns="ewma"),
    "hrp": HRPStrategy(),
    "hrp_average": HRPStrategy(linkage="average"),
    "risk_parity": RiskParity(),
    "inverse_volatility": InverseVolatility(),
    "equal_weight": EqualWeight(),
}
EQUIVARIANT = [
    "max_sharpe",
    "min_volatility",
    "efficient_risk",
    "max_sharpe_lw",
    "risk_parity",
    "inverse_volatility",
    "equal_weight",
]
SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def generic_returns(draw, max_assets=8):
    """Correlated returns with distinct volatilities (no ties, unique optima)."""
    n_assets = draw(st.integers(2, max_assets))
    n_obs = draw(st.integers(n_assets + 3, 90))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mix = np.eye(n_assets) + 0.5 * rng.normal(size=(n_assets, n_assets))
    vols = rng.uniform(0.005, 0.05, n_assets)
    return (
        rng.normal(0.001, 1.0, size=(n_obs, n_assets)) @ mix * vols / np.sqrt((mix**2).sum(axis=0))
    )


@st.composite
def arbitrary_returns(draw):
    """Anything finite and > -100%: constant columns, duplicates, zeros, a few observations."""
    n_assets = draw(st.integers(1, 6))
    n_obs = draw(st.integers(2, 12))
    elements = st.one_of(st.just(0.0), st.floats(-0.5, 0.5, allow_subnormal=False))
    return draw(hnp.arrays(np.float64, (n_obs, n_assets), elements=elements))


@st.composite
def bounds(draw, n_assets):
    lo = draw(st.floats(0.0, 1.0 / n_assets))
    hi = draw(st.floats(1.0 / n_assets, 1.0))
    return Constraints(min_weight=lo, max_weight=max(hi, lo))


def allocate_quietly(strategy, returns, constraints=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return strategy.allocate_detailed(returns, constraints)


def _assert_valid(weights, constraints, n_assets):
    lo, hi = (
        np.broadcast_to(np.asarray(v, float), n_assets)
        for v in (constraints.min_weight, constraints.max_weight)
    )
    assert weights.shape == (n_assets,)
    assert np.isfinite(weights).all()
    assert abs(weights.sum() - 1.0) <= 1e-9
    assert np.all(weights >= lo - 1e-9) and np.all(weights <= hi + 1e-9)


@pytest.mark.parametrize("name", list(ALLOCATORS))
@SETTINGS
@given(data=st.data())
def test_weights_are_finite_sum_to_one_and_respect_bounds(name, data):
    returns = data.draw(st.one_of(generic_returns(), arbitrary_returns()))
    constraints = data.draw(bounds(returns.shape[1]))
    allocation = allocate_quietly(ALLOCATORS[name], returns, constraints)
    _assert_valid(allocation.weights, constraints, returns.shape[1])
    assert isinstance(allocation.method, str) and all(isinstance(n, str) for n in allocation.notes)


@pytest.mark.parametrize("name", EQUIVARIANT)
@SETTINGS
@given(returns=generic_returns(), seed=st.integers(0, 2**32 - 1))
def test_permuting_assets_permutes_weights(name, returns, seed):
    perm = np.random.default_rng(seed).permutation(returns.shape[1])
    strategy = ALLOCATORS[name]
    weights = allocate_quietly(
        strategy, returns, {"max_weight": 0.6 if returns.shape[1] > 1 else 1.0}
    ).weights
    permuted = allocate_quietly(
        strategy, returns[:, perm], {"max_weight": 0.6 if returns.shape[1] > 1 else 1.0}
    ).weights
    np.testing.assert_allclose(permuted, weights[perm], atol=1e-8)


def _order_preserving(perm, returns):
    """Adjust ``perm`` so each pair of single assets merged by the linkage keeps its relative order
    (scipy's tie-break puts the lower column index on the left; see strategies.hrp)."""
    n = returns.shape[1]
    Z = linkage_matrix(covariance(returns), "single")
    perm = perm.copy()
    pos = np.argsort(perm)
    for a, b in Z[:, :2].astype(int):
        if a < n and b < n and pos[a] > pos[b]:
            perm[pos[a]], perm[pos[b]] = b, a
            pos[a], pos[b] = pos[b], pos[a]
    return perm


@SETTINGS
@given(returns=generic_returns(), seed=st.integers(0, 2**32 - 1))
def test_hrp_permutation_equivariance_up_to_the_pair_tie_break(returns, seed):
    perm = _order_preserving(np.random.default_rng(seed).permutation(returns.shape[1]), returns)
    weights = allocate_quietly(HRPStrategy(), returns).weights
    permuted = allocate_quietly(HRPStrategy(), returns[:, perm]).weights
    np.testing.assert_allclose(permuted, weights[perm], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    "name", ["hrp", "hrp_average", "min_volatility", "risk_parity", "inverse_volatility"]
)
@SETTINGS
@given(returns=generic_returns(), scale=st.floats(0.1, 5.0))
def test_scaling_all_returns_leaves_weights_unchanged(name, returns, scale):
    strategy = ALLOCATORS[name]
    weights = allocate_quietly(strategy, returns, {"max_weight": 0.7}).weights
    scaled = allocate_quietly(strategy, returns * scale, {"max_weight": 0.7}).weights
    np.testing.assert_allclose(scaled, weights, atol=1e-9)
