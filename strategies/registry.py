"""Strategy names used in configs, and :func:`build_strategy` to construct one with checked parameters.

>>> build_strategy("hrp", lookback_days=90, linkage="average")
HRPStrategy(risk_free_rate=0.02, lookback_days=90, linkage='average', covariance='sample', periods_per_year=365.0, span=60.0)
>>> build_strategy("max_sharpe", risk_free_rate=0.0).objective
'max_sharpe'
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from strategies.base import BaseAllocator
from strategies.baselines import EqualWeight, InverseVolatility
from strategies.black_litterman import BlackLittermanStrategy
from strategies.herc import HERCStrategy
from strategies.hrp import HRPStrategy
from strategies.mpt import MPTStrategy
from strategies.nco import NCOStrategy
from strategies.risk_parity import RiskParity
from strategies.tail_risk import MinCDaR, MinCVaR

#: Keys that configure :class:`~strategies.Constraints`, not a strategy.
CONSTRAINT_KEYS: tuple[str, ...] = ("min_weight", "max_weight", "groups", "A", "b")


@dataclass(frozen=True)
class StrategySpec:
    """A strategy class with parameters fixed by the config name (e.g. ``objective`` for ``max_sharpe``)."""

    cls: type[BaseAllocator]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameters a config may set for this name."""
        return tuple(f.name for f in fields(self.cls) if f.init and f.name not in self.fixed)  # type: ignore[arg-type]

    def __call__(self, **params: Any) -> BaseAllocator:
        return self.cls(**self.fixed, **params)


STRATEGIES: Mapping[str, StrategySpec] = MappingProxyType(
    {
        "mpt": StrategySpec(MPTStrategy),
        "max_sharpe": StrategySpec(MPTStrategy, {"objective": "max_sharpe"}),
        "min_volatility": StrategySpec(MPTStrategy, {"objective": "min_volatility"}),
        "max_utility": StrategySpec(MPTStrategy, {"objective": "max_utility"}),
        "max_diversification": StrategySpec(MPTStrategy, {"objective": "max_diversification"}),
        "hrp": StrategySpec(HRPStrategy),
        "herc": StrategySpec(HERCStrategy),
        "nco": StrategySpec(NCOStrategy),
        "equal_weight": StrategySpec(EqualWeight),
        "inverse_volatility": StrategySpec(InverseVolatility),
        "risk_parity": StrategySpec(RiskParity),
        "black_litterman": StrategySpec(BlackLittermanStrategy),
        "min_cvar": StrategySpec(MinCVaR),
        "min_cdar": StrategySpec(MinCDaR),
    }
)


def build_strategy(name: str, **params: Any) -> BaseAllocator:
    """Construct the strategy registered as ``name`` with keyword ``params``.

    Raises
    ------
    ValueError
        For an unknown name (with the closest match), an unknown or fixed parameter (listing the valid
        ones), or an invalid parameter value (from the strategy's own checks).

    Examples
    --------
    >>> build_strategy("mtp")
    Traceback (most recent call last):
    ...
    ValueError: unknown strategy 'mtp' (did you mean 'mpt'?); choose one of 'mpt', 'max_sharpe', ...
    """
    spec = STRATEGIES.get(name)
    if spec is None:
        close = difflib.get_close_matches(str(name), list(STRATEGIES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown strategy {name!r}{hint}; choose one of {', '.join(map(repr, STRATEGIES))}"
        )
    allowed = spec.parameters
    for key in params:
        if key in allowed:
            continue
        if key in spec.fixed:
            raise ValueError(
                f"`{key}` is fixed to {spec.fixed[key]!r} by strategy {name!r}; "
                f"use strategy 'mpt' to choose the {key}"
            )
        if key in CONSTRAINT_KEYS:
            raise ValueError(
                f"`{key}` is a constraint, not a parameter of strategy {name!r}; "
                "pass it in the constraints (Constraints / the [strategy] constraint keys)"
            )
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise ValueError(
            f"`{key}` is not a parameter of strategy {name!r}{hint}; its parameters are "
            f"{', '.join(allowed) or '(none)'}"
        )
    return spec(**params)
