"""Live allocation: read an account, compute the target, list and place the rebalancing trades.

Modules: :mod:`~backtest.live.analyzer` (:class:`PortfolioAnalyzer`: balances -> weights -> target
-> trades -> execution), :mod:`~backtest.live.results` (the plan, trade and order report types),
:mod:`~backtest.live.journal` (:class:`Journal`: the account's append-only record),
:mod:`~backtest.live.paper` (the paper account on ccxt's Binance class),
:mod:`~backtest.live.replay` (:func:`replay`: the live pipeline over history),
:mod:`~backtest.live.track` (:func:`track`: the account's history beside its backtest) and
:mod:`~backtest.live.execution` (:class:`ExecutionLoop`: place, watch, reprice, reconcile). See
docs/live.md.
"""

from backtest.errors import LiveError
from backtest.live.analyzer import PortfolioAnalyzer
from backtest.live.execution import ExecutionLoop, ExecutionReport, ExecutionSettings
from backtest.live.journal import Journal
from backtest.live.paper import PaperBook, PaperConnector
from backtest.live.replay import ReplayResult, backtest_beside, replay
from backtest.live.results import AnalysisResult, OrderReport, RebalancePlan, Trade
from backtest.live.track import TrackResult, track, write_track

__all__ = [
    "AnalysisResult",
    "ExecutionLoop",
    "ExecutionReport",
    "ExecutionSettings",
    "Journal",
    "LiveError",
    "OrderReport",
    "PaperBook",
    "PaperConnector",
    "PortfolioAnalyzer",
    "RebalancePlan",
    "ReplayResult",
    "TrackResult",
    "Trade",
    "backtest_beside",
    "replay",
    "track",
    "write_track",
]
