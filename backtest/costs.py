"""Cost model and risk controls of a simulation (plain parameters, validated)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Costs:
    """Trading costs and order rules.

    Parameters
    ----------
    fee_bps : float
        Exchange fee in basis points of the traded notional (at the fill price).
    slippage_bps : float
        Adverse price move in basis points: buys fill at ``p * (1 + s)``, sells at ``p * (1 - s)``.
    impact_coef : float
        Square-root market impact coefficient ``k``: extra adverse fraction
        ``k * sigma_daily * sqrt(notional / bar quote volume)``; 0 disables.
    participation : float
        Cap on one bar's trade as a share of the decision bar's quote volume (0 disables).
    min_trade_value : float
        Trades below this notional (quote currency) are skipped.
    lot_size, min_notional : mapping of symbol to float
        Exchange lot step (units) and minimum order notional per symbol (missing = none).
    sizing : {"net", "vectorbt"}
        ``"net"`` (default): target weights are weights of the equity *after* the rebalance's costs,
        so a rebalance reaches its targets exactly and costs are paid out of it. ``"vectorbt"``:
        targets are weights of the pre-trade equity and, when cash runs short, buys fill in
        increasing order value with the last one partially filled (vectorbt's ``targetpercent`` with
        ``call_seq="auto"``; used to cross-check against vectorbt).

    Examples
    --------
    >>> Costs(fee_bps=10, slippage_bps=5).fee_rate
    0.001
    """

    fee_bps: float = 10.0
    slippage_bps: float = 5.0
    impact_coef: float = 0.0
    participation: float = 0.0
    min_trade_value: float = 0.0
    lot_size: Mapping[str, float] = field(default_factory=dict)
    min_notional: Mapping[str, float] = field(default_factory=dict)
    sizing: Literal["net", "vectorbt"] = "net"

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps", "impact_coef", "participation", "min_trade_value"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"`{name}` must be >= 0; got {value}")
        if self.fee_bps >= 10_000 or self.slippage_bps >= 10_000:
            raise ValueError(
                f"`fee_bps` and `slippage_bps` must be < 10000 (100%); got {self.fee_bps}, {self.slippage_bps}"
            )
        if self.sizing not in ("net", "vectorbt"):
            raise ValueError(f"`sizing` must be 'net' or 'vectorbt'; got {self.sizing!r}")

    @property
    def fee_rate(self) -> float:
        return self.fee_bps / 10_000

    @property
    def slippage_rate(self) -> float:
        return self.slippage_bps / 10_000

    @property
    def linear_rate(self) -> float:
        """``fee_rate + slippage_rate``: the cost per unit traded that does not depend on the
        trade's size (what a cost-aware allocator is charged before market impact)."""
        return float(self.fee_rate) + float(self.slippage_rate)


@dataclass(frozen=True)
class RiskControls:
    """Optional risk controls.

    Parameters
    ----------
    stop_loss : float
        Trailing stop per asset: exit when the price falls this fraction below its high since entry
        (filled at the stop level, or at the open when the market gaps through it); the asset is
        bought again at the next rebalance. 0 disables.
    liquidity_cap : float
        Cap each position's value at this multiple of the asset's average daily quote volume over
        ``liquidity_window_days`` (e.g. 0.05 = 5% of a day's volume). 0 disables.
    liquidity_window_days : float
        Window of the average quote volume.
    """

    stop_loss: float = 0.0
    liquidity_cap: float = 0.0
    liquidity_window_days: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.stop_loss < 1:
            raise ValueError(
                f"`stop_loss` must be in [0, 1) (a fraction, 0.1 = 10%); got {self.stop_loss}"
            )
        if not self.liquidity_cap >= 0:
            raise ValueError(f"`liquidity_cap` must be >= 0; got {self.liquidity_cap}")
        if not self.liquidity_window_days > 0:
            raise ValueError(
                f"`liquidity_window_days` must be > 0; got {self.liquidity_window_days}"
            )
