"""Our simulation against vectorbt's `Portfolio.from_orders` on real, ragged Binance daily data.

Configured identically: orders at the close (`execution="close"`), fixed fees and slippage, no minimum
trade value, `size_type="targetpercent"`, `cash_sharing=True`, `group_by=True`, `call_seq="auto"`,
and our `sizing="vectorbt"` (when cash runs short, buys in increasing order value, the last one
partially filled). Our default `sizing="net"` sizes targets on the post-cost equity instead; see
docs/engine.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest import Costs, run_backtest
from strategies import EqualWeight, InverseVolatility

vbt = pytest.importorskip("vectorbt")

# 24 pairs: 12 listed since 2019 and 12 that list during the test window (a ragged universe)
SYMBOLS = [
    "BTC/USDT",
    "ETH/USDT",
    "BNB/USDT",
    "XRP/USDT",
    "ADA/USDT",
    "DOGE/USDT",
    "LTC/USDT",
    "LINK/USDT",
    "TRX/USDT",
    "ATOM/USDT",
    "XLM/USDT",
    "BCH/USDT",
    "SOL/USDT",
    "DOT/USDT",
    "AVAX/USDT",
    "UNI/USDT",
    "FIL/USDT",
    "NEAR/USDT",
    "AAVE/USDT",
    "GRT/USDT",
    "CAKE/USDT",
    "ICP/USDT",
    "SHIB/USDT",
    "FLOW/USDT",
]


def _vectorbt_equity(result, market, fee, slip):
    close = market.close
    size = pd.DataFrame(np.nan, index=close.index, columns=close.columns)
    size.loc[result.target_weights.index] = result.target_weights.to_numpy()
    size = size.where(close.notna())
    pf = vbt.Portfolio.from_orders(
        close,
        size=size,
        size_type="targetpercent",
        fees=fee,
        slippage=slip,
        init_cash=100_000.0,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        freq="1D",
    )
    return pf.value()


@pytest.mark.parametrize(
    ("strategy", "rebalance"),
    [(InverseVolatility(lookback_days=30), "1W"), (EqualWeight(lookback_days=10), "1M")],
)
def test_equity_matches_vectorbt_at_every_bar(daily_csv, strategy, rebalance):
    from datasets import load_csv

    market = load_csv(daily_csv, symbols=SYMBOLS, start="2020-01-01")
    assert np.isnan(market.values("close")[0]).sum() >= 10  # really ragged
    fee, slip = 0.001, 0.0005
    result = run_backtest(
        market,
        strategy,
        rebalance,
        Costs(fee_bps=10, slippage_bps=5, sizing="vectorbt"),
        initial_cash=100_000,
        execution="close",
        benchmark=None,
    )
    theirs = _vectorbt_equity(result, market, fee, slip).loc[result.equity.index]
    assert len(result.trades) > 500
    np.testing.assert_allclose(result.equity.to_numpy(), theirs.to_numpy(), rtol=1e-9, atol=0)


def test_to_vectorbt_reproduces_the_book(daily_csv):
    from datasets import load_csv

    market = load_csv(daily_csv, symbols=SYMBOLS[:12], start="2021-01-01")
    result = run_backtest(
        market,
        InverseVolatility(lookback_days=30),
        "1W",
        Costs(fee_bps=10, slippage_bps=5, min_trade_value=10),
        execution="next_open",
    )
    pf = result.to_vectorbt()
    np.testing.assert_allclose(pf.value().to_numpy(), result.equity.to_numpy(), rtol=1e-9)
    assert pf.orders.count() == len(result.trades)
