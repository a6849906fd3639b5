"""The returns panel's universe and validity check against their definitions, for any pattern of
missing closes (before a listing, after a delisting, holes inside the traded span, infinities) and
any closes (zero, negative, a ratio too wide for the returns): the range of the closes read with
the universe or by two reductions, and the column-by-column check when the range does not settle it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.walkforward import returns_panel


def window_validity(close: np.ndarray, lookback: int, bars: np.ndarray) -> np.ndarray:
    """The universe rule by its definition: the closes of bars ``t-L .. t`` are all finite."""
    finite = np.isfinite(close)
    return np.array([finite[t - lookback : t + 1].all(axis=0) for t in bars]).reshape(
        bars.size, close.shape[1]
    )


def clean_by_definition(close: np.ndarray) -> bool:
    """Every return of two finite consecutive closes is finite and > -1."""
    with np.errstate(all="ignore"):
        r = close[1:] / close[:-1] - 1.0
    both = np.isfinite(close[1:]) & np.isfinite(close[:-1])
    return bool(np.all(np.isfinite(r[both]) & (r[both] > -1.0)))


CELLS = st.sampled_from(["price", "price", "price", "nan", "inf", "zero", "negative", "huge"])


@st.composite
def panels(draw):
    n_bars = draw(st.integers(2, 40))
    n_assets = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    close = rng.uniform(1.0, 100.0, (n_bars, n_assets))
    for j in range(n_assets):
        listed = draw(st.integers(0, n_bars))
        delisted = draw(st.integers(listed, n_bars))
        close[:listed, j] = np.nan
        close[delisted:, j] = np.nan
        for _ in range(draw(st.integers(0, 2))):  # holes and odd values anywhere
            i = draw(st.integers(0, n_bars - 1))
            close[i, j] = {
                "price": close[i, j],
                "nan": np.nan,
                "inf": np.inf,
                "zero": 0.0,
                "negative": -1.0,
                "huge": 1e20,
            }[draw(CELLS)]
    lookback = draw(st.integers(1, n_bars - 1))
    bars = np.array(
        sorted(draw(st.sets(st.integers(lookback, n_bars - 1), max_size=n_bars))), dtype=np.int64
    )
    return close, lookback, bars


@settings(max_examples=300, deadline=None)
@given(panels())
def test_universe_and_check_follow_their_definitions(case):
    close, lookback, bars = case
    panel = returns_panel(close, lookback)
    clean = clean_by_definition(close)
    assert returns_panel(close, lookback).clean == clean  # the range from two reductions
    np.testing.assert_array_equal(panel.universe(bars), window_validity(close, lookback, bars))
    assert panel.clean == clean  # the range read with the universe


def test_the_check_goes_column_by_column_only_when_the_reductions_do_not_settle_it():
    close = np.array([[1.0, 2.0], [1e-10, 2.0], [1e6, np.nan]])  # a 1e16 range, no bad return
    panel = returns_panel(close, 1)
    assert np.fmax.reduce(close, axis=None) >= 1e15 * np.fmin.reduce(close, axis=None)
    assert panel.clean
    close[1, 0] = 0.0  # then a return of -100%
    assert not returns_panel(close, 1).clean
