"""The simulation kernels' records: the named parameter records they take and the structured dtypes
they write. Imports numpy and ``typing`` only; shared by the kernels (``backtest.fills``,
``backtest.kernels``) and their Python callers (``backtest.simulate``, ``backtest.trade_rules``).

The parameter records are ``typing.NamedTuple`` classes: numba passes them to ``njit`` functions as
heterogeneous tuples (fields typed by their values, so the builders in ``backtest.simulate`` coerce
every field to ``float``/``int``/``bool``: one compiled signature, one cache entry). Build them with
keywords.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: One row of the trade ledger.
TRADE_DTYPE = np.dtype(
    [
        ("bar", np.int64),
        ("asset", np.int64),
        ("units", np.float64),  # signed: > 0 buy, < 0 sell
        ("price", np.float64),  # reference price before slippage and impact
        ("fill_price", np.float64),
        ("fee", np.float64),
        ("slippage", np.float64),  # cost in quote currency
        ("impact", np.float64),  # cost in quote currency
        ("reason", np.int64),  # 0 rebalance, 1 band, 2 stop-loss, 3 delisting
    ]
)

#: The cost totals of one scenario (quote currency, except the count of skipped trades).
COST_DTYPE = np.dtype(
    [
        ("fees", np.float64),
        ("slippage", np.float64),
        ("impact", np.float64),
        ("traded_notional", np.float64),
        ("skipped_trades", np.int64),
    ],
    align=True,
)

REASON_REBALANCE, REASON_BAND, REASON_STOP, REASON_DELIST = 0, 1, 2, 3
SIZING_NET, SIZING_VECTORBT = 0, 1
BAND_ABSOLUTE, BAND_RELATIVE, BAND_COST = 0, 1, 2


class MarketArrays(NamedTuple):
    """The per-bar kernel inputs that depend on the market and the execution rule, not on targets.

    2-D fields are C-contiguous ``(n_bars, n_assets)`` float64 arrays, built by
    :func:`backtest.simulate.prepare_market` with no look-ahead; ``sigma``, ``liquidity`` and
    ``max_value`` may instead be one ``(1, n_assets)`` row that holds at every bar (the costs and
    caps that do not use them: no per-bar array to allocate and fill).
    """

    fill_price: np.ndarray  # reference price of an order at that bar (open or close); NaN: no trade
    close: np.ndarray  # valuation; NaN: not listed (valued at the last close)
    high: np.ndarray  # trailing stop: the high since entry
    low: np.ndarray  # trailing stop: the trigger
    open: np.ndarray  # trailing stop: the fill when the market gaps through the level
    delist_bar: np.ndarray  # int64 (n_assets,): the last bar of an asset that stops trading
    # more than a day before the panel's end (it is sold at that close); -1: none
    delist_row: np.ndarray  # bool (n_bars,): some asset is delisted at that bar
    sigma: np.ndarray  # daily volatility for impact (known at the decision)
    liquidity: np.ndarray  # bar quote volume for impact and participation (known at the decision)
    max_value: np.ndarray  # cap on a position's value (inf: none)
    lot_step: np.ndarray  # (n_assets,) base units; 0: none
    min_notional: np.ndarray  # (n_assets,) quote; 0: none


class FillParams(NamedTuple):
    """The scalar rules of one rebalance's trades (:func:`backtest.fills.plan_trades_nb`,
    :func:`backtest.fills.fill_orders_nb`)."""

    fee_rate: float  # fraction of the fill notional
    slippage_rate: float  # fraction of the reference price, adverse
    impact_coef: float  # square-root impact coefficient; 0: none
    participation: float  # cap on a trade as a fraction of the bar's quote volume; 0: none
    min_trade_value: float  # trades below it (quote) are skipped
    sizing: int  # SIZING_NET or SIZING_VECTORBT


class SimulationParams(NamedTuple):
    """The scalar parameters of one scenario (:func:`backtest.kernels.simulate_core_nb`)."""

    fills: FillParams
    initial_cash: float
    band: float  # drift band (the cost band: its scale); 0: trade every target row
    band_mode: int  # BAND_ABSOLUTE, BAND_RELATIVE (a fraction of the target weight) or BAND_COST
    # (``band * (w (1 - w)) ** (2/3)`` around the target weight ``w``: backtest.schedule)
    band_to_edge: bool  # on a breach trade back to the band edge (else to the target)
    stop_loss: float  # trailing stop as a fraction below the high since entry; 0: none
    fill_at_close: bool  # orders fill at the close (``execution = "close"``): no stop on entry bar
    record_trades: bool  # write the trade ledger
    store_units: bool  # write units per bar (else only the buffer's first row is needed; the
    # units of every bar follow from the ledger: backtest.simulate.holdings)


class BatchParams(NamedTuple):
    """The parameters of many scenarios on one market (:func:`backtest.kernels.simulate_batch_nb`):
    the array fields hold one value per scenario, shape ``(n_scenarios,)``; the rest is shared."""

    initial_cash: np.ndarray
    fee_rate: np.ndarray
    slippage_rate: np.ndarray
    impact_coef: np.ndarray
    min_trade_value: np.ndarray
    band: np.ndarray
    participation: float
    sizing: int
    band_mode: int
    band_to_edge: bool
    stop_loss: float
    fill_at_close: bool
    record_trades: bool
    store_units: bool


class SimulationBuffers(NamedTuple):
    """Preallocated outputs of one scenario (or of a batch, with a leading scenario axis)."""

    equity: np.ndarray  # (n_bars,) cash + holdings at the close
    cash: np.ndarray  # (n_bars,)
    units: np.ndarray  # (n_bars, n_assets), or (1, n_assets) when not stored
    traded: np.ndarray  # (n_bars,) notional traded per bar
    trades: np.ndarray  # (capacity,) TRADE_DTYPE ledger rows
    totals: np.ndarray  # (1,) COST_DTYPE, accumulated (a batch: (n_scenarios,))
