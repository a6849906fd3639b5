"""Constraints named by symbol, resolved against one market's symbols.

A config names assets (``"BTC/USDT"``), the allocators index them. :func:`resolve_constraints`
turns the named form into :class:`~strategies.base.Constraints`:

* ``bounds = {"BTC/USDT": (0.1, 0.5)}``: per-asset bounds that override ``min_weight`` /
  ``max_weight`` for those symbols;
* ``groups = {"defi": {"symbols": [...], "min": 0.0, "max": 0.2}}``: a group's total weight kept
  within ``[min, max]`` (a group may still be given by index, ``(members, min, max)``).

A symbol the market does not hold is an error naming it (with the closest match). A group whose
members are all outside one decision's universe is skipped there with a note
(:func:`strategies.limits.universe_limits`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from strategies.base import Constraints, broadcast_bound
from strategies.errors import ConstraintError

#: The keys of the named form (``A``/``b`` index the assets as in :class:`Constraints`).
KEYS = ("min_weight", "max_weight", "bounds", "groups", "A", "b")


def resolve_constraints(spec: Mapping[str, Any], symbols: Sequence[str]) -> Constraints:
    """The :class:`Constraints` over ``symbols`` of the named form ``spec`` (keys :data:`KEYS`).

    Examples
    --------
    >>> c = resolve_constraints(
    ...     {"max_weight": 0.6, "bounds": {"ETH/USDT": [0.1, 0.3]},
    ...      "groups": {"alts": {"symbols": ["ETH/USDT", "SOL/USDT"], "max": 0.5}}},
    ...     ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
    ... )
    >>> c.min_weight.tolist(), c.max_weight.tolist(), c.groups
    ([0.0, 0.1, 0.0], [0.6, 0.3, 0.6], {'alts': ([1, 2], 0.0, 0.5)})
    """
    unknown = set(spec) - set(KEYS)
    if unknown:
        raise ConstraintError(
            f"unknown constraint key(s) {sorted(unknown)}; allowed: {', '.join(KEYS)}"
        )
    symbols = list(symbols)
    index = {s: j for j, s in enumerate(symbols)}
    min_weight = spec.get("min_weight", 0.0)
    max_weight = spec.get("max_weight", 1.0)
    bounds = spec.get("bounds") or {}
    if bounds:
        lo = broadcast_bound(min_weight, len(symbols), "min_weight")
        hi = broadcast_bound(max_weight, len(symbols), "max_weight")
        for symbol, pair in bounds.items():
            j = _position(index, symbol, "constraints.bounds")
            try:
                low, high = (float(x) for x in pair)
            except (TypeError, ValueError):
                raise ConstraintError(
                    f"`constraints.bounds.{symbol!r}` must be [min, max]; got {pair!r}"
                ) from None
            if not 0 <= low <= high <= 1:
                raise ConstraintError(
                    f"`constraints.bounds.{symbol!r}` needs 0 <= min <= max <= 1; got [{low:g}, {high:g}]"
                )
            lo[j], hi[j] = low, high
        min_weight, max_weight = lo, hi
    groups = {
        str(name): _group(str(name), value, index)
        for name, value in (spec.get("groups") or {}).items()
    }
    return Constraints(min_weight, max_weight, groups, spec.get("A"), spec.get("b"))


def named_groups(
    groups: Mapping[str, tuple[Sequence[int], float, float]], symbols: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Index groups back in the named form (what a result records about its limits)."""
    return {
        name: {"symbols": [symbols[int(j)] for j in members], "min": float(lo), "max": float(hi)}
        for name, (members, lo, hi) in groups.items()
    }


def _group(name: str, value: Any, index: Mapping[str, int]) -> tuple[list[int], float, float]:
    if not isinstance(value, Mapping):
        return value  # (members, min, max) by index: Constraints checks it
    unknown = set(value) - {"symbols", "min", "max"}
    if unknown:
        raise ConstraintError(
            f"`constraints.groups.{name}` has unknown key(s) {sorted(unknown)}; use symbols, min, max"
        )
    names = value.get("symbols")
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ConstraintError(
            f"`constraints.groups.{name}.symbols` must be a non-empty list of symbols; got {names!r}"
        )
    members = sorted({_position(index, s, f"constraints.groups.{name}") for s in names})
    low, high = float(value.get("min", 0.0)), float(value.get("max", 1.0))
    if not 0 <= low <= high <= 1:
        raise ConstraintError(
            f"`constraints.groups.{name}` needs 0 <= min <= max <= 1; got min={low:g}, max={high:g}"
        )
    return members, low, high


def _position(index: Mapping[str, int], symbol: Any, where: str) -> int:
    if symbol in index:
        return index[symbol]
    close = difflib.get_close_matches(str(symbol), list(index), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConstraintError(
        f"`{where}` names {symbol!r}, which is not a symbol of the data{hint}; "
        f"the data has {len(index)} symbols: {', '.join(list(index)[:8])}"
        + (", ..." if len(index) > 8 else "")
    )


def is_named(value: Mapping[str, Any]) -> bool:
    """The mapping uses the named form: per-symbol bounds or a group given by symbols."""
    groups = value.get("groups") or {}
    return bool(value.get("bounds")) or any(isinstance(g, Mapping) for g in groups.values())


__all__ = ["KEYS", "is_named", "named_groups", "resolve_constraints"]
