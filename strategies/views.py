"""Investor views for Black-Litterman, written by symbol and resolved to ``P @ mu = Q``.

A view is an expression over symbols and the annualised return it expects:

* absolute, ``"BTC/USDT" = 0.30``: BTC returns 30% a year;
* relative, ``"ETH/USDT - SOL/USDT" = 0.05``: ETH beats SOL by 5 points a year;
* weighted legs, ``"0.5*ETH/USDT + 0.5*SOL/USDT - BTC/USDT" = 0.02``.

Operators stand between spaces (a symbol may contain ``-``); a coefficient is a positive number
before ``*``. :func:`parse_view` checks the grammar (when the strategy is built),
:func:`resolve_views` the symbols against a market's (when the run starts) and returns
:class:`Views`, the ``(P, Q)`` form by index that :meth:`Views.restrict` narrows to one decision's
universe, dropping the views on assets it does not hold, with a note.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strategies.errors import ViewError

_NUMBER = re.compile(r"^[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?$")
_EXAMPLE = "write a symbol ('BTC/USDT') or a difference ('ETH/USDT - SOL/USDT')"


def parse_view(expression: str) -> tuple[tuple[float, str], ...]:
    """The legs ``(coefficient, symbol)`` of a view expression, in order.

    Raises
    ------
    ViewError
        For an empty or malformed expression (a dangling or doubled operator, a missing operator,
        a coefficient that is not a positive number, a symbol named twice, a bare number).

    Examples
    --------
    >>> parse_view("ETH/USDT - SOL/USDT")
    ((1.0, 'ETH/USDT'), (-1.0, 'SOL/USDT'))
    >>> parse_view("0.5*ETH/USDT + 0.5 * SOL/USDT - BTC/USDT")
    ((0.5, 'ETH/USDT'), (0.5, 'SOL/USDT'), (-1.0, 'BTC/USDT'))
    >>> parse_view("ETH/USDT SOL/USDT")
    Traceback (most recent call last):
    ...
    strategies.errors.ViewError: view 'ETH/USDT SOL/USDT' is malformed: no operator between 'ETH/USDT' and 'SOL/USDT'; write a symbol ('BTC/USDT') or a difference ('ETH/USDT - SOL/USDT')
    """
    if not isinstance(expression, str):
        raise ViewError(f"a view must be a string expression; got {expression!r}")
    tokens = re.sub(r"\s*\*\s*", "*", expression).split()
    if not tokens:
        raise ViewError(f"view {expression!r} is empty; {_EXAMPLE}")
    legs: list[tuple[float, str]] = []
    sign, expect_term = 1.0, True
    for k, token in enumerate(tokens):
        if token in ("+", "-"):
            if expect_term and k > 0:
                _malformed(expression, f"two operators in a row before {token!r}")
            sign = -1.0 if token == "-" else 1.0
            expect_term = True
            continue
        if not expect_term:
            _malformed(expression, f"no operator between {legs[-1][1]!r} and {token!r}")
        if k == 0 and token[0] in "+-":  # a leading sign written against the first term
            sign, token = (-1.0 if token[0] == "-" else 1.0), token[1:]
        coef, symbol = _term(expression, token)
        if any(symbol == s for _, s in legs):
            _malformed(expression, f"{symbol!r} appears twice; combine its coefficients")
        legs.append((sign * coef, symbol))
        expect_term = False
    if expect_term:
        _malformed(expression, "it ends with an operator")
    return tuple(legs)


def _term(expression: str, token: str) -> tuple[float, str]:
    """``(coefficient, symbol)`` of one term, ``symbol`` or ``number*symbol``."""
    coef_text, star, symbol = token.rpartition("*")
    if not star:
        symbol = token
        coef_text = "1"
    if not symbol or "*" in coef_text:
        _malformed(expression, f"term {token!r} must be a symbol or number*symbol")
    if not _NUMBER.match(coef_text) or float(coef_text) <= 0:
        _malformed(expression, f"coefficient {coef_text!r} of {symbol!r} must be a number > 0")
    if _NUMBER.match(symbol):
        _malformed(
            expression,
            f"{symbol!r} is a number, not a symbol; the expected return is the view's value",
        )
    return float(coef_text), symbol


def _malformed(expression: str, why: str) -> None:
    raise ViewError(f"view {expression!r} is malformed: {why}; {_EXAMPLE}")


@dataclass(frozen=True, eq=False)
class Views:
    """Views by index: the annualised returns of the view portfolios, ``P @ mu = Q``.

    Parameters
    ----------
    P : array-like of shape (n_views, n_assets)
        One view portfolio per row (``[1, 0, 0]`` absolute on asset 0, ``[0, 1, -1]`` relative).
    Q : array-like of shape (n_views,)
        The returns the views expect (annualised).
    labels : sequence of str, optional
        A name per view for notes (default ``"view 0"``, ...).
    symbols : sequence of str, optional
        The assets' names, for notes.
    dropped : tuple of str
        Notes on the views :meth:`restrict` dropped.

    Examples
    --------
    >>> v = resolve_views({"ETH/USDT - SOL/USDT": 0.05}, ["BTC/USDT", "ETH/USDT", "SOL/USDT"])
    >>> v.P.tolist(), v.Q.tolist()
    ([[0.0, 1.0, -1.0]], [0.05])
    >>> v.restrict([0, 1]).dropped
    ("view 'ETH/USDT - SOL/USDT' dropped: SOL/USDT is not in this universe",)
    """

    P: Any
    Q: Any
    labels: Sequence[str] = ()
    symbols: Sequence[str] | None = None
    dropped: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        P = np.atleast_2d(np.asarray(self.P, dtype=np.float64))
        Q = np.atleast_1d(np.asarray(self.Q, dtype=np.float64))
        if P.size == 0 and Q.size == 0:
            P = P.reshape(0, P.shape[-1] if P.ndim == 2 else 0)
        if P.ndim != 2 or Q.ndim != 1 or P.shape[0] != Q.shape[0]:
            raise ViewError(
                f"`views` needs P of shape (n_views, n_assets) and Q of shape (n_views,); got "
                f"P {np.shape(self.P)}, Q {np.shape(self.Q)}"
            )
        if not (np.all(np.isfinite(P)) and np.all(np.isfinite(Q))):
            raise ViewError("`views` P and Q must be finite")
        empty = np.flatnonzero(~(P != 0).any(axis=1))
        if empty.size:
            raise ViewError(f"`views` row {int(empty[0])} of P is all zeros: it holds no asset")
        labels = tuple(self.labels) or tuple(f"view {i}" for i in range(P.shape[0]))
        if len(labels) != P.shape[0]:
            raise ViewError(f"`views` has {P.shape[0]} views but {len(labels)} labels")
        if self.symbols is not None and len(self.symbols) != P.shape[1]:
            raise ViewError(f"`views` has {P.shape[1]} columns but {len(self.symbols)} symbols")
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "Q", Q)
        object.__setattr__(self, "labels", labels)

    @property
    def n_views(self) -> int:
        return int(self.P.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.P.shape[1])

    def to_plain(self) -> dict[str, float]:
        """The views as ``{label: expected return}`` (by expression when resolved from them):
        what a result records about its strategy."""
        return {label: float(q) for label, q in zip(self.labels, self.Q, strict=True)}

    def kept(self, members: Sequence[int] | np.ndarray) -> np.ndarray:
        """Indices of the views whose every leg is among ``members``."""
        inside = np.zeros(self.n_assets, dtype=bool)
        inside[np.asarray(members, dtype=np.int64)] = True
        return np.flatnonzero(~((self.P != 0) & ~inside).any(axis=1))

    def restrict(self, members: Sequence[int] | np.ndarray) -> Views:
        """The views on the universe ``members`` (increasing column indices): a view with a leg
        outside it is dropped, with a note in :attr:`dropped`."""
        idx = np.asarray(members, dtype=np.int64)
        keep = self.kept(idx)
        inside = np.zeros(self.n_assets, dtype=bool)
        inside[idx] = True
        notes = list(self.dropped)
        for i in sorted(set(range(self.n_views)) - set(keep.tolist())):
            missing = [self._name(int(j)) for j in np.flatnonzero((self.P[i] != 0) & ~inside)]
            verb = "is" if len(missing) == 1 else "are"
            notes.append(
                f"view {self.labels[i]!r} dropped: {', '.join(missing)} {verb} not in this universe"
            )
        return Views(
            self.P[np.ix_(keep, idx)],
            self.Q[keep],
            tuple(self.labels[i] for i in keep),
            None if self.symbols is None else tuple(self.symbols[j] for j in idx),
            tuple(notes),
        )

    def _name(self, j: int) -> str:
        return str(self.symbols[j]) if self.symbols is not None else f"asset {j}"


def resolve_views(views: Mapping[str, float], symbols: Sequence[str]) -> Views:
    """:class:`Views` over ``symbols`` (the market's assets, in order) of views by symbol.

    Raises
    ------
    ViewError
        For a malformed expression or a symbol the market does not have (naming the closest).
    """
    symbols = [str(s) for s in symbols]
    index = {s: j for j, s in enumerate(symbols)}
    P = np.zeros((len(views), len(symbols)))
    for i, expression in enumerate(views):
        for coef, symbol in parse_view(expression):
            if symbol not in index:
                raise ViewError(_unknown(expression, symbol, symbols))
            P[i, index[symbol]] = coef
    Q = [float(v) for v in views.values()]
    return Views(P, Q, tuple(views), tuple(symbols))


def _unknown(expression: str, symbol: str, symbols: list[str]) -> str:
    parts = [p for p in re.split(r"[+-]", symbol) if p]
    if len(parts) > 1 and all(p in symbols for p in parts):  # 'ETH/USDT-SOL/USDT'
        hint = "; operators go between spaces ('ETH/USDT - SOL/USDT')"
    else:
        close = difflib.get_close_matches(symbol, symbols, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    shown = ", ".join(symbols[:8]) + (", ..." if len(symbols) > 8 else "")
    return (
        f"view {expression!r} names {symbol!r}, which is not a symbol of the data{hint}; "
        f"the data has {len(symbols)} symbols: {shown}"
    )


def check_views(views: Any) -> None:
    """Raise :class:`ViewError` unless ``views`` is None, a :class:`Views` or a mapping of
    well-formed expressions to finite numbers (the checks that need no symbols)."""
    if views is None or isinstance(views, Views):
        return
    if not isinstance(views, Mapping):
        raise ViewError(
            "`views` must be a mapping of expressions to annual returns, e.g. "
            f"{{'BTC/USDT': 0.3, 'ETH/USDT - SOL/USDT': 0.05}}, or Views(P, Q); got {views!r}"
        )
    for expression, value in views.items():
        parse_view(expression)
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise ViewError(
                f"view {expression!r} must expect a finite annual return; got {value!r}"
            )


__all__ = ["Views", "check_views", "parse_view", "resolve_views"]
