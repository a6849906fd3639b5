"""What :class:`backtest.live.PortfolioAnalyzer` returns: the target allocation and its diagnostics,
the rebalancing plan and its trades, and the report of each order placed.

Re-exported by :mod:`backtest.live`. See docs/live.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AnalysisResult:
    """The target allocation and its diagnostics.

    Attributes
    ----------
    weights : dict of str to float
        Target weights by asset, summing to 1; the quote currency's entry is the cash reserve.
    expected_return, volatility, sharpe_ratio : float
        Annualised, of the target portfolio, from the window's moments (cash earns 0).
    method : str
        What produced the weights (differs from the strategy when a fallback fired).
    notes : tuple of str
        Fallbacks, repairs and excluded assets.
    diagnostics : dict
        Strategy, window, universe, excluded assets, annualisation.
    frontier : DataFrame or None
        For MPT: the efficient frontier (columns ``return, volatility, sharpe`` and one weight column
        per asset), see :func:`strategies.frontier.frontier_from_moments`.
    current_weights : dict of str to float
        The allocation the analysis started from.
    extras : dict
        The allocator's extras (moments for MPT, linkage for HRP).
    """

    weights: dict[str, float]
    expected_return: float
    volatility: float
    sharpe_ratio: float
    method: str
    notes: tuple[str, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict)
    frontier: Any = None
    current_weights: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Trade:
    """One rebalancing order.

    Attributes
    ----------
    symbol, asset : str
        ``"LTC/USDT"``, ``"LTC"``.
    side : {"buy", "sell"}
    amount : float
        Base units, a multiple of the market's lot step.
    price : float
        Reference (last) price the trade was sized at.
    value : float
        ``amount * price`` in the quote currency.
    weight_change : float
        ``target_weight - current_weight``.
    current_weight, target_weight : float
    fee, slippage : float
        Estimated costs in the quote currency (slippage includes market impact).
    limit_price : float
        Limit price of the orders: ``price * (1 +/- limit_offset_bps)`` on the price tick.
    slices : tuple of float
        Order amounts (one per order; several when the trade is split).
    """

    symbol: str
    asset: str
    side: str
    amount: float
    price: float
    value: float
    weight_change: float
    current_weight: float
    target_weight: float
    fee: float
    slippage: float
    limit_price: float
    slices: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["slices"] = list(self.slices)
        return out


@dataclass(frozen=True)
class RebalancePlan:
    """The trades of one rebalance (sells first) with the score and the estimated cost.

    Iterating, ``len`` and indexing go over the trades.

    Attributes
    ----------
    trades : tuple of Trade
    score : float
        Half the sum of absolute weight deviations between current and target (0 = on target,
        1 = a complete turnover).
    total_value : float
    quote : str
    skipped : tuple of str
        Assets whose trade fell below the lot step or the minimum order value.
    notes : tuple of str
    cash_after : float
        Cash left after the trades, as the kernel computes it.
    """

    trades: tuple[Trade, ...]
    score: float
    total_value: float
    quote: str
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    cash_after: float = math.nan

    def __iter__(self) -> Any:
        return iter(self.trades)

    def __len__(self) -> int:
        return len(self.trades)

    def __getitem__(self, index: int) -> Trade:
        return self.trades[index]

    @property
    def fees(self) -> float:
        return float(sum(t.fee for t in self.trades))

    @property
    def estimated_cost(self) -> float:
        """Fees + slippage (+ impact) of all trades, in the quote currency."""
        return float(sum(t.fee + t.slippage for t in self.trades))

    @property
    def turnover(self) -> float:
        """Traded value in the quote currency."""
        return float(sum(t.value for t in self.trades))

    def to_frame(self) -> Any:
        """The trades as a DataFrame (one row per trade; ``n_slices`` instead of the slice list)."""
        import pandas as pd

        rows = [{**t.as_dict(), "n_slices": len(t.slices)} for t in self.trades]
        columns = [f.name for f in Trade.__dataclass_fields__.values()] + ["n_slices"]
        return pd.DataFrame(rows, columns=columns).drop(columns="slices")

    def as_dict(self) -> dict[str, Any]:
        return {
            "trades": [t.as_dict() for t in self.trades],
            "score": self.score,
            "estimated_cost": self.estimated_cost,
            "fees": self.fees,
            "turnover": self.turnover,
            "total_value": self.total_value,
            "quote": self.quote,
            "skipped": list(self.skipped),
            "notes": list(self.notes),
            "cash_after": self.cash_after,
        }


@dataclass(frozen=True)
class OrderReport:
    """What happened to one order slice: the exchange's status, or the error that stopped it."""

    symbol: str
    side: str
    amount: float
    price: float
    status: str
    order_id: str | None = None
    filled: float = 0.0
    error: str | None = None
    client_order_id: str | None = None
