"""The cost per unit traded that a cost-aware allocator is charged at each decision bar.

``MPTStrategy(transaction_cost="costs")`` prices a trade of asset ``i`` at decision bar ``t`` at

    c_i,t = fee_rate + slippage_rate + impact_coef * sigma[t, i] * sqrt(q_ref / V[t, i])

where ``sigma`` (daily volatility) and ``V`` (the bar's quote volume) are the simulation's own
impact inputs for a fill of that decision (:func:`backtest.simulate.impact_inputs`), and ``q_ref =
capital / m`` is the reference trade: an equal share of the book's reference value (a backtest's
initial cash, the account's value live) among the ``m`` assets of the decision's universe. The last
term is the square-root impact of a trade of that size, as a fraction of its value: the optimiser's
cost is linear in the trade, so a larger trade costs more than it says (the simulation still charges
the true square-root impact). Where ``V`` is missing or zero, or ``sigma`` is NaN, the asset is priced
at fee + slippage alone and the decision says so in a note.

Without market impact (``impact_coef = 0``) there is no table: the allocator gets the scalar
fee + slippage once (:func:`backtest.pipeline.price_trades`). See docs/allocators.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backtest.costs import Costs
from backtest.errors import EngineError
from backtest.simulate import impact_inputs
from datasets import MarketData


@dataclass(frozen=True)
class TradeCosts:
    """Per-bar trading cost rates of a market: what :meth:`at` hands the allocator per decision.

    Attributes
    ----------
    base : float
        ``fee_rate + slippage_rate``.
    impact : ndarray of shape (n_bars, n_assets)
        ``impact_coef * sigma * sqrt(capital / V)``: the impact rate of a trade of the whole
        reference value (a trade of ``capital / m`` pays ``impact / sqrt(m)``); NaN where the
        volume or the volatility is missing.
    symbols : tuple of str
        The market's symbols (named in the notes).
    """

    base: float
    impact: np.ndarray
    symbols: tuple[str, ...]

    def at(self, t: int, members: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """The cost rate of each member at decision bar ``t``, and the decision's notes.

        Parameters
        ----------
        t : int
            Decision bar.
        members : ndarray of int, shape (m,)
            The universe at ``t`` (indices into the market's assets).

        Returns
        -------
        rates : ndarray of shape (m,)
            ``base + impact[t, members] / sqrt(m)``; ``base`` where the impact is unknown.
        notes : tuple of str
            One note naming the members whose impact is unknown at ``t`` (none when all are known).
        """
        rates = self.base + self.impact[t].take(members) / np.sqrt(members.size)
        unknown = np.isnan(rates)
        if not unknown.any():
            return rates, ()
        rates[unknown] = self.base
        names = ", ".join(self.symbols[int(j)] for j in members[unknown])
        return rates, (
            f"market impact not priced for {names} (no quote volume or volatility at this "
            "decision bar): fee + slippage only",
        )


def trade_costs(market: MarketData, costs: Costs, capital: float) -> TradeCosts:
    """The :class:`TradeCosts` of ``market`` under ``costs`` for a book worth ``capital``.

    Parameters
    ----------
    market : MarketData
    costs : Costs
        Fee, slippage and the square-root impact coefficient ``impact_coef`` (> 0).
    capital : float
        The book's reference value in the quote currency (a backtest's ``initial_cash``).

    Examples
    --------
    >>> from datasets import synthetic_market
    >>> market = synthetic_market(n_assets=3, n_bars=60)
    >>> table = trade_costs(market, Costs(fee_bps=10, slippage_bps=5, impact_coef=0.5), 1e5)
    >>> rates, notes = table.at(40, np.arange(3))
    >>> bool(np.all(rates > 0.0015)), notes
    (True, ())
    """
    if not costs.impact_coef > 0:
        raise EngineError(
            f"`impact_coef` must be > 0 for a table of impact rates; got {costs.impact_coef} "
            "(without impact the allocator's cost is fee + slippage: price_trades)"
        )
    if not (np.isfinite(capital) and capital > 0):
        raise EngineError(
            f"`initial_cash` (the book's value that sizes the reference trade) must be > 0; "
            f"got {capital}"
        )
    sigma, quote_volume = impact_inputs(
        market.values("close"),
        market.values("volume"),
        market.periods_per_year / market.days_per_year,
    )
    known = (quote_volume > 0) & np.isfinite(sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        impact = costs.impact_coef * sigma * np.sqrt(capital / quote_volume)
    impact[~known] = np.nan
    return TradeCosts(
        base=costs.linear_rate,
        impact=impact,
        symbols=tuple(market.symbols),
    )
