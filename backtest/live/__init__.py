"""Live allocation: read an account, compute the target, list and place the rebalancing trades.

Modules: :mod:`~backtest.live.analyzer` (:class:`PortfolioAnalyzer`: balances -> weights -> target
-> trades), :mod:`~backtest.live.orders` (limit orders, slice by slice) and
:mod:`~backtest.live.results` (the plan, trade and order report types). See docs/live.md.
"""

from backtest.errors import LiveError
from backtest.live.analyzer import PortfolioAnalyzer
from backtest.live.orders import place_orders
from backtest.live.results import AnalysisResult, OrderReport, RebalancePlan, Trade

__all__ = [
    "AnalysisResult",
    "LiveError",
    "OrderReport",
    "PortfolioAnalyzer",
    "RebalancePlan",
    "Trade",
    "place_orders",
]
