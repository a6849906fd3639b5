"""A two-bar backtest through the pure-NumPy twin of the kernel (tests/backtest/twins.py): bar 0
buys into some holdings from cash, bar 1 rebalances them to a new target. Bar 1's ledger is what the
backtest's rules (docs/engine.md) trade from the holdings at the end of bar 0; the live trade rules,
which run the numba kernels, must produce the same trades from the same state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backtest.costs import Costs, RiskControls
from backtest.live import PortfolioAnalyzer
from backtest.schedule import Schedule
from backtest.simulate import prepare_market, simulation_params
from datasets import BinanceConnector
from datasets.connectors import MarketRules
from tests.backtest import twins


@dataclass
class RebalanceCase:
    units: np.ndarray  # holdings before the bar-1 rebalance
    cash: float
    prices: np.ndarray  # bar-1 fill prices
    target: np.ndarray  # bar-1 target weights
    trades: np.ndarray  # bar-1 ledger rows (TRADE_DTYPE)
    units_after: np.ndarray
    cash_after: float

    @property
    def value(self) -> float:
        return float(self.cash + self.units @ self.prices)


def run_twin(
    prices0, prices1, target0, target1, costs: Costs, initial_cash: float
) -> RebalanceCase:
    """Simulate with the twin and ``execution="close"``: bar 0 fills at ``prices0``, bar 1 at
    ``prices1``."""
    symbols = [f"A{i}/USDT" for i in range(len(prices0))]
    close = np.array([prices0, prices1], dtype=np.float64)
    arrays = {
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": np.full(close.shape, 1e9),
    }
    market = prepare_market(arrays, symbols, 1.0, costs, RiskControls(), "close")
    targets = np.array([target0, target1], dtype=np.float64)
    params = simulation_params(
        costs=costs,
        risk=RiskControls(),
        schedule=Schedule(every=None, bars=1),
        initial_cash=initial_cash,
        execution="close",
    )
    out = twins.simulate(market, targets, params)
    return RebalanceCase(
        units=out.units[0].copy(),
        cash=float(out.cash[0]),
        prices=close[1].copy(),
        target=targets[1].copy(),
        trades=out.trades[out.trades["bar"] == 1],
        units_after=out.units[1].copy(),
        cash_after=float(out.cash[1]),
    )


def lots_and_mins(costs: Costs, n: int) -> tuple[np.ndarray, np.ndarray]:
    symbols = [f"A{i}/USDT" for i in range(n)]
    return (
        np.array([costs.lot_size.get(s, 0.0) for s in symbols]),
        np.array([costs.min_notional.get(s, 0.0) for s in symbols]),
    )


def analyzer_for(case: RebalanceCase, costs: Costs) -> tuple[PortfolioAnalyzer, dict, dict]:
    """A live analyzer holding the case's prices and market rules (no exchange call), and the case's
    holdings and target as weights keyed by asset (``A0``, ``A1``, ..., cash as ``USDT``)."""
    n = len(case.prices)
    lots, mins = lots_and_mins(costs, n)
    analyzer = PortfolioAnalyzer(
        BinanceConnector(api_key="", api_secret=""),
        lookback_days=30,
        settings={"limit_offset_bps": 0.0, "min_trade_value": costs.min_trade_value},
        costs=Costs(fee_bps=costs.fee_bps, slippage_bps=costs.slippage_bps, sizing=costs.sizing),
    )
    for i in range(n):
        asset = f"A{i}"
        analyzer.prices[asset] = float(case.prices[i])
        analyzer.rules[asset] = MarketRules(
            f"{asset}/USDT",
            asset,
            "USDT",
            lot_step=float(lots[i]),
            min_notional=float(mins[i]),
            tick_size=0.0,
        )
        analyzer.volumes[asset] = float("nan")
    value = case.value
    current = {f"A{i}": float(case.units[i] * case.prices[i] / value) for i in range(n)}
    current["USDT"] = case.cash / value
    target = {f"A{i}": float(case.target[i]) for i in range(n)}
    target["USDT"] = 1.0 - float(np.sum(case.target))
    return analyzer, current, target
