"""View expressions: the grammar, resolution against a market's symbols, restriction to a
universe (views on absent assets dropped with a note)."""

from __future__ import annotations

import numpy as np
import pytest

from strategies.errors import ViewError
from strategies.views import Views, check_views, parse_view, resolve_views

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC-PERP"]


@pytest.mark.parametrize(
    ("expression", "legs"),
    [
        ("BTC/USDT", ((1.0, "BTC/USDT"),)),
        ("  BTC/USDT ", ((1.0, "BTC/USDT"),)),
        ("ETH/USDT - SOL/USDT", ((1.0, "ETH/USDT"), (-1.0, "SOL/USDT"))),
        ("ETH/USDT + SOL/USDT", ((1.0, "ETH/USDT"), (1.0, "SOL/USDT"))),
        ("-BTC/USDT", ((-1.0, "BTC/USDT"),)),
        ("- BTC/USDT + ETH/USDT", ((-1.0, "BTC/USDT"), (1.0, "ETH/USDT"))),
        ("2*ETH/USDT - 1.5 * SOL/USDT", ((2.0, "ETH/USDT"), (-1.5, "SOL/USDT"))),
        ("1e-1*ETH/USDT", ((0.1, "ETH/USDT"),)),
        ("BTC-PERP - BTC/USDT", ((1.0, "BTC-PERP"), (-1.0, "BTC/USDT"))),  # '-' inside a symbol
    ],
)
def test_good_expressions_parse(expression, legs):
    assert parse_view(expression) == legs


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("ETH/USDT -", "it ends with an operator"),
        ("ETH/USDT - - SOL/USDT", "two operators in a row before '-'"),
        ("ETH/USDT SOL/USDT", "no operator between 'ETH/USDT' and 'SOL/USDT'"),
        ("0*ETH/USDT", r"coefficient '0' of 'ETH/USDT' must be a number > 0"),
        ("x*ETH/USDT", r"coefficient 'x' of 'ETH/USDT' must be a number > 0"),
        ("2*", r"term '2\*' must be a symbol or number\*symbol"),
        ("2*3*BTC/USDT", r"term '2\*3\*BTC/USDT' must be a symbol or number\*symbol"),
        ("ETH/USDT - ETH/USDT", "'ETH/USDT' appears twice; combine its coefficients"),
        ("BTC/USDT - 0.3", "'0.3' is a number, not a symbol"),
    ],
)
def test_malformed_expressions_are_named(expression, message):
    with pytest.raises(ViewError, match=message):
        parse_view(expression)


def test_a_non_string_view_is_refused():
    with pytest.raises(ViewError, match="a view must be a string expression; got 3"):
        parse_view(3)  # type: ignore[arg-type]


def test_resolve_builds_p_and_q_in_the_views_order():
    views = resolve_views(
        {"SOL/USDT": 0.4, "0.5*ETH/USDT + 0.5*SOL/USDT - BTC/USDT": -0.02}, SYMBOLS
    )
    np.testing.assert_array_equal(views.P, [[0, 0, 1, 0], [-1, 0.5, 0.5, 0]])
    np.testing.assert_array_equal(views.Q, [0.4, -0.02])
    assert views.labels == ("SOL/USDT", "0.5*ETH/USDT + 0.5*SOL/USDT - BTC/USDT")
    assert views.to_plain() == {"SOL/USDT": 0.4, "0.5*ETH/USDT + 0.5*SOL/USDT - BTC/USDT": -0.02}


def test_unknown_symbols_name_the_closest_one():
    with pytest.raises(
        ViewError,
        match=r"view 'ETH/USDT - SOL/USD' names 'SOL/USD', which is not a symbol of the data "
        r"\(did you mean 'SOL/USDT'\?\); the data has 4 symbols",
    ):
        resolve_views({"ETH/USDT - SOL/USD": 0.05}, SYMBOLS)
    with pytest.raises(ViewError, match="operators go between spaces"):
        resolve_views({"ETH/USDT-SOL/USDT": 0.05}, ["ETH/USDT", "SOL/USDT"])


def test_restrict_drops_views_with_a_leg_outside_the_universe():
    views = resolve_views(
        {"BTC/USDT": 0.3, "ETH/USDT - SOL/USDT": 0.05, "SOL/USDT + BTC-PERP": 0.1}, SYMBOLS
    )
    members = np.array([0, 1])
    assert views.kept(members).tolist() == [0]
    small = views.restrict(members)
    np.testing.assert_array_equal(small.P, [[1, 0]])
    np.testing.assert_array_equal(small.Q, [0.3])
    assert small.symbols == ("BTC/USDT", "ETH/USDT")
    assert small.dropped == (
        "view 'ETH/USDT - SOL/USDT' dropped: SOL/USDT is not in this universe",
        "view 'SOL/USDT + BTC-PERP' dropped: SOL/USDT, BTC-PERP are not in this universe",
    )
    # nothing dropped when the universe holds every leg
    full = views.restrict(np.arange(4))
    assert full.dropped == () and full.n_views == 3


def test_views_by_index_are_checked_and_named_by_position():
    views = Views([[1, 0, -1]], [0.05])
    assert views.labels == ("view 0",)
    assert views.restrict([0, 1]).dropped == (
        "view 'view 0' dropped: asset 2 is not in this universe",
    )
    empty = Views([], [])
    assert empty.n_views == 0
    with pytest.raises(ViewError, match=r"P of shape \(n_views, n_assets\) and Q of shape"):
        Views([[1, 0]], [0.1, 0.2])
    with pytest.raises(ViewError, match="row 0 of P is all zeros"):
        Views([[0, 0]], [0.1])
    with pytest.raises(ViewError, match="P and Q must be finite"):
        Views([[1, 0]], [np.nan])
    with pytest.raises(ViewError, match="has 1 views but 2 labels"):
        Views([[1, 0]], [0.1], labels=("a", "b"))
    with pytest.raises(ViewError, match="has 2 columns but 3 symbols"):
        Views([[1, 0]], [0.1], symbols=("a", "b", "c"))


def test_check_views_refuses_what_cannot_be_a_view_set():
    check_views(None)
    check_views({"BTC/USDT": 1})
    with pytest.raises(ViewError, match="`views` must be a mapping of expressions"):
        check_views([("BTC/USDT", 0.3)])
    with pytest.raises(ViewError, match="view 'BTC/USDT' must expect a finite annual return"):
        check_views({"BTC/USDT": float("inf")})
    with pytest.raises(ViewError, match=r"must expect a finite annual return; got '0\.3'"):
        check_views({"BTC/USDT": "0.3"})
    with pytest.raises(ViewError, match="is malformed"):
        check_views({"BTC/USDT +": 0.3})
