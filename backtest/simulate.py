"""Validating wrapper around the numba kernels: market arrays + order targets -> simulation output.

The kernel sees only arrays and named records (:mod:`backtest.records`). This module checks shapes,
dtypes and values, derives the per-bar inputs (fill prices, volatility and liquidity for impact,
position caps, delisting bars) from a market's arrays with no look-ahead, builds the parameter
records with keywords, and wraps nothing in pandas (that is ``backtest.result``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, NamedTuple

import numpy as np

from backtest import kernels
from backtest.costs import Costs, RiskControls
from backtest.errors import EngineError
from backtest.records import (
    BAND_ABSOLUTE,
    BAND_COST,
    BAND_RELATIVE,
    COST_DTYPE,
    SIZING_NET,
    SIZING_VECTORBT,
    TRADE_DTYPE,
    BatchParams,
    FillParams,
    MarketArrays,
    SimulationBuffers,
    SimulationParams,
)
from backtest.schedule import Schedule

Execution = Literal["next_open", "close"]
_BAND_MODES = {"absolute": BAND_ABSOLUTE, "relative": BAND_RELATIVE, "cost": BAND_COST}


def fill_shift(execution: str) -> int:
    """Bars between a decision and its fill: 1 for ``next_open`` (the next bar's open), 0 for ``close``."""
    return 1 if execution == "next_open" else 0


class CostTotals(NamedTuple):
    """What one simulation paid and traded, in the quote currency (the kernel's
    :data:`backtest.records.COST_DTYPE` record, field for field)."""

    fees: float
    slippage: float
    impact: float
    traded_notional: float
    skipped_trades: int  # trades wanted but below the lot step, min_trade_value or min_notional

    @classmethod
    def from_record(cls, record: np.void) -> CostTotals:
        """The kernel's ``COST_DTYPE`` record (same fields, same order) as Python numbers."""
        return cls._make(record.item())


@dataclass(frozen=True)
class SimulationOutput:
    """What one scenario's simulation produced. ``units`` (T, N) are the kernel's own when it
    stored them, else replayed from the ledger on first read (:func:`backtest.kernels.holdings_nb`,
    bit for bit the same)."""

    equity: np.ndarray  # (T,)
    cash: np.ndarray  # (T,)
    traded: np.ndarray  # (T,) notional traded per bar
    trades: np.ndarray  # structured, records.TRADE_DTYPE
    totals: CostTotals
    stored_units: np.ndarray | None = None  # (T, N) when the kernel wrote them
    n_assets: int = 0

    @cached_property
    def units(self) -> np.ndarray:
        """Units held at the close of every bar, (T, N)."""
        if self.stored_units is not None:
            return self.stored_units
        ledger = self.trades
        return kernels.holdings_nb(
            np.ascontiguousarray(ledger["bar"]),
            np.ascontiguousarray(ledger["asset"]),
            np.ascontiguousarray(ledger["units"]),
            self.equity.shape[0],
            self.n_assets,
        )


class Orders(NamedTuple):
    """Order targets in compact form: the bars that trade and the target weights at each.

    ``rows`` (K,) strictly increasing bar indices; ``weights`` (K, N): a weight per asset, NaN to
    leave the asset alone. The dense form, a (T, N) array whose all-NaN rows are no order, is what
    :func:`orders_from_targets` reads.
    """

    rows: np.ndarray
    weights: np.ndarray


def orders_from_targets(targets: np.ndarray, shape: tuple[int, int]) -> Orders:
    """The orders of dense (T, N) ``targets``: every row with a finite entry."""
    dense = _f64("targets", targets, shape)
    rows = np.flatnonzero(~np.isnan(dense).all(axis=1))
    return Orders(rows, dense[rows])


def _f64(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if out.shape != shape:
        raise EngineError(f"`{name}` must have shape {shape}; got {out.shape}")
    return out


def _shift_down(arr: np.ndarray, fill: float) -> np.ndarray:
    out = np.empty_like(arr)
    out[0] = fill
    out[1:] = arr[:-1]
    return out


def _rolling_nanmean(arr: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` rows ignoring NaN (NaN where the window has no value)."""
    valid = np.isfinite(arr)
    csum = np.cumsum(np.where(valid, arr, 0.0), axis=0)
    ccount = np.cumsum(valid, axis=0)
    csum = np.vstack([np.zeros((1, arr.shape[1])), csum])
    ccount = np.vstack([np.zeros((1, arr.shape[1])), ccount])
    idx = np.arange(1, arr.shape[0] + 1)
    lo = np.maximum(idx - window, 0)
    total, count = csum[idx] - csum[lo], ccount[idx] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def impact_inputs(
    close: np.ndarray, volume: np.ndarray, bars_per_day: float
) -> tuple[np.ndarray, np.ndarray]:
    """The inputs of the square-root impact known at the close of each bar: the daily volatility
    and the bar's quote volume.

    Parameters
    ----------
    close, volume : ndarray of shape (n_bars, n_assets)
        Closes and volumes in base units (NaN: no candle).
    bars_per_day : float

    Returns
    -------
    sigma : ndarray of shape (n_bars, n_assets)
        Standard deviation (ddof 0) of the log returns of the last 20 days of bars through bar
        ``t``, scaled to a day (NaN where the window has no return).
    quote_volume : ndarray of shape (n_bars, n_assets)
        ``volume * close`` of bar ``t``.

    Row ``t`` is what a fill decided at the close of ``t`` pays impact with: the simulation's row
    ``t`` for ``execution = "close"``, its row ``t + 1`` for ``"next_open"``
    (:func:`prepare_market` shifts them down), and the optimiser's rate of a decision at ``t``
    (:func:`backtest.trade_pricing.trade_costs`).

    Examples
    --------
    >>> close = np.array([[1.0], [1.1], [0.99]])
    >>> sigma, quote_volume = impact_inputs(close, np.full((3, 1), 10.0), 1.0)
    >>> print(sigma.round(4).ravel().tolist(), quote_volume.ravel().tolist())
    [nan, 0.0, 0.1003] [10.0, 11.0, 9.9]
    """
    day = max(1, round(bars_per_day))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ret = np.vstack([np.full((1, close.shape[1]), np.nan), np.diff(np.log(close), axis=0)])
    mean = _rolling_nanmean(log_ret, 20 * day)
    sq = _rolling_nanmean(log_ret**2, 20 * day)
    sigma = np.sqrt(np.maximum(sq - mean**2, 0.0)) * np.sqrt(bars_per_day)
    return sigma, volume * close


def prepare_market(
    arrays: dict[str, np.ndarray],
    symbols: Sequence[str],
    bars_per_day: float,
    costs: Costs,
    risk: RiskControls,
    execution: Execution,
) -> MarketArrays:
    """Derive the kernel's per-bar arrays from OHLCV arrays, using only data known at decision time.

    For ``next_open`` the order row is the bar after the decision, so volatility and liquidity are
    shifted by one bar: the impact of a trade at the open of ``t`` uses data through the close of ``t-1``.
    """
    close = np.ascontiguousarray(arrays["close"], dtype=np.float64)
    if close.ndim != 2 or close.shape[0] < 2 or close.shape[1] < 1:
        raise EngineError(f"the market needs at least 2 bars and 1 asset; got shape {close.shape}")
    shape = close.shape
    open_ = _f64("open", arrays["open"], shape)
    high = _f64("high", arrays["high"], shape)
    low = _f64("low", arrays["low"], shape)
    volume = _f64("volume", arrays["volume"], shape)
    if execution not in ("next_open", "close"):
        raise EngineError(f"`execution` must be 'next_open' or 'close'; got {execution!r}")
    fill = open_ if execution == "next_open" else close
    shift = execution == "next_open"

    # an asset whose data ends more than a day before the panel does has stopped trading: it is
    # sold at its last close (a shorter tail is an end-of-data artefact, e.g. a candle not yet closed)
    day = max(1, round(bars_per_day))
    last = kernels.last_close_bar_nb(close)
    delist_bar = np.where(last < shape[0] - 1 - day, last, -1)  # -1 stays: never listed
    delist_row = np.zeros(shape[0], dtype=np.bool_)
    delist_row[delist_bar[delist_bar >= 0]] = True

    needs_liquidity = costs.impact_coef > 0 or costs.participation > 0 or risk.liquidity_cap > 0
    if needs_liquidity:
        sigma, liquidity = impact_inputs(close, volume, bars_per_day)
        if shift:
            sigma, liquidity = _shift_down(sigma, np.nan), _shift_down(liquidity, np.nan)
    else:  # unused by the costs: one row for every bar
        sigma = np.zeros((1, shape[1]))
        liquidity = np.zeros((1, shape[1]))
    if risk.liquidity_cap > 0:
        window = max(1, round(risk.liquidity_window_days * bars_per_day))
        daily_qv = _rolling_nanmean(volume * close, window) * bars_per_day
        max_value = risk.liquidity_cap * daily_qv
        if shift:
            max_value = _shift_down(max_value, np.nan)
        max_value = np.where(np.isfinite(max_value), max_value, 0.0)
    else:
        max_value = np.full((1, shape[1]), np.inf)

    lot = np.array([float(costs.lot_size.get(s, 0.0)) for s in symbols])
    min_notional = np.array([float(costs.min_notional.get(s, 0.0)) for s in symbols])
    if (lot < 0).any() or (min_notional < 0).any():
        raise EngineError("`lot_size` and `min_notional` must be >= 0 for every symbol")
    return MarketArrays(
        fill_price=np.ascontiguousarray(fill),
        close=close,
        high=high,
        low=low,
        open=open_,
        delist_bar=delist_bar.astype(np.int64),
        delist_row=delist_row,
        sigma=np.ascontiguousarray(sigma),
        liquidity=np.ascontiguousarray(liquidity),
        max_value=np.ascontiguousarray(max_value),
        lot_step=lot,
        min_notional=min_notional,
    )


def check_orders(targets: np.ndarray | Orders, shape: tuple[int, int]) -> tuple[Orders, np.ndarray]:
    """Checked orders for a (T, N) market: ``targets`` dense (T, N) or :class:`Orders`; rows in
    range and increasing, weights >= 0 (NaN: leave the asset) and summing to <= 1.

    Returns the orders (C-contiguous float64 weights, int64 rows) and the kernel's (T,) int64
    ``order_row``: the row of ``weights`` each bar trades to, -1 for none.
    """
    if isinstance(targets, Orders):
        rows = np.asarray(targets.rows, dtype=np.int64)
        weights = _f64("weights", targets.weights, (rows.size, shape[1]))
        if rows.ndim != 1:
            raise EngineError(f"`rows` must be 1-D bar indices; got shape {rows.shape}")
        if rows.size and (rows[0] < 0 or rows[-1] >= shape[0] or np.any(np.diff(rows) <= 0)):
            raise EngineError(
                f"`rows` must be increasing bar indices in [0, {shape[0]}); "
                f"got {rows.min()}..{rows.max()}, sorted: {bool(np.all(np.diff(rows) > 0))}"
            )
        orders = Orders(rows, weights)
    else:
        orders = orders_from_targets(targets, shape)
    rows, weights = orders
    if np.any(weights < -1e-12):  # NaN compares False
        bad = int(rows[np.argmax((weights < -1e-12).any(axis=1))])
        raise EngineError(
            f"target weights must be >= 0 (long only); bar {bad} has a negative weight"
        )
    sums = np.nansum(weights, axis=1)
    if np.any(sums > 1 + 1e-9):
        k = int(np.argmax(sums > 1 + 1e-9))
        raise EngineError(
            f"target weights at bar {int(rows[k])} sum to {sums[k]:.6g} > 1 (no leverage)"
        )
    order_row = np.full(shape[0], -1, dtype=np.int64)
    order_row[rows] = np.arange(rows.size)
    return orders, order_row


def _ledger_capacity(
    n_orders: int, n_bars: int, n_assets: int, band: float, stop_loss: float
) -> int:
    """Rows a ledger can need: each order bar (every bar with a band) trades each asset at most
    once, a stop exits at most once per entry, and a delisting sells once per asset."""
    per_bar = (n_orders + (n_bars if band > 0 else 0)) * n_assets
    return per_bar * (2 if stop_loss > 0 else 1) + n_assets


def fill_params(costs: Costs) -> FillParams:
    """The kernel's per-trade parameters for ``costs`` (shared by the backtest and the live plan)."""
    return FillParams(
        fee_rate=float(costs.fee_rate),
        slippage_rate=float(costs.slippage_rate),
        impact_coef=float(costs.impact_coef),
        participation=float(costs.participation),
        min_trade_value=float(costs.min_trade_value),
        sizing=SIZING_VECTORBT if costs.sizing == "vectorbt" else SIZING_NET,
    )


def simulation_params(
    *,
    costs: Costs,
    risk: RiskControls,
    schedule: Schedule,
    initial_cash: float,
    execution: Execution,
    record_trades: bool = True,
    store_units: bool = False,
) -> SimulationParams:
    """The kernel's parameter record of one scenario (every field coerced: one compiled signature)."""
    return SimulationParams(
        fills=fill_params(costs),
        initial_cash=float(initial_cash),
        band=schedule.band_scale(costs.linear_rate),
        band_mode=_BAND_MODES[schedule.band_mode],
        band_to_edge=schedule.to_edge,
        stop_loss=float(risk.stop_loss),
        fill_at_close=execution == "close",
        record_trades=bool(record_trades),
        store_units=bool(store_units),
    )


def _trimmed(ledger: np.ndarray, n_trades: int) -> np.ndarray:
    """The ledger's first ``n_trades`` rows: a view when they fill most of its buffer, else a
    copy (a drift band's buffer has room for a trade per asset and bar and may be mostly empty)."""
    rows = ledger[:n_trades]
    return rows if 2 * n_trades >= ledger.shape[0] else rows.copy()


def simulate_scenario(
    market: MarketArrays,
    targets: np.ndarray | Orders,
    *,
    costs: Costs,
    risk: RiskControls,
    schedule: Schedule,
    initial_cash: float,
    execution: Execution,
    record: bool = True,
) -> SimulationOutput:
    """Run the single-scenario kernel on validated inputs (``targets``: see :func:`check_orders`).

    With the ledger recorded (``record``) the units of every bar are replayed from it when read;
    without, the kernel stores them.
    """
    if not initial_cash > 0:
        raise EngineError(f"`initial_cash` must be > 0; got {initial_cash}")
    shape = market.close.shape
    orders, order_row = check_orders(targets, shape)
    n_bars, n = shape
    params = simulation_params(
        costs=costs,
        risk=risk,
        schedule=schedule,
        initial_cash=initial_cash,
        execution=execution,
        record_trades=record,
        store_units=not record,
    )
    capacity = _ledger_capacity(orders.rows.size, n_bars, n, params.band, params.stop_loss)
    out = SimulationBuffers(
        equity=np.empty(n_bars),
        cash=np.empty(n_bars),
        units=np.empty(shape if params.store_units else (1, n)),
        traded=np.empty(n_bars),
        trades=np.empty(capacity if record else 0, dtype=TRADE_DTYPE),
        totals=np.zeros(1, dtype=COST_DTYPE),
    )
    n_trades = kernels.simulate_core_nb(market, orders.weights, order_row, params, out)
    return SimulationOutput(
        equity=out.equity,
        cash=out.cash,
        traded=out.traded,
        trades=_trimmed(out.trades, int(n_trades)),
        totals=CostTotals.from_record(out.totals[0]),
        stored_units=out.units if params.store_units else None,
        n_assets=n,
    )


def simulate_batch(
    market: MarketArrays,
    targets: Sequence[np.ndarray | Orders],
    *,
    costs: Sequence[Costs],
    risk: RiskControls,
    schedules: Sequence[Schedule],
    initial_cash: Sequence[float],
    execution: Execution,
    record: bool = True,
) -> list[SimulationOutput]:
    """Many scenarios on one market in one kernel call (``kernels.simulate_batch_nb``).

    Per scenario: the targets, fees, slippage, impact coefficient, minimum trade value, drift-band
    width and initial cash. Shared (checked): the market arrays (so the liquidity inputs), the risk
    controls, participation cap, sizing, lot sizes, band mode and band target. The outputs equal
    :func:`simulate_scenario` run on each scenario.
    """
    n_scen = len(targets)
    if not (len(costs) == len(schedules) == len(initial_cash) == n_scen) or n_scen == 0:
        raise EngineError(
            "`targets`, `costs`, `schedules` and `initial_cash` need one entry per scenario"
        )
    first, sched0 = costs[0], schedules[0]
    for c, sc in zip(costs, schedules, strict=True):
        if (c.participation, c.sizing, dict(c.lot_size), dict(c.min_notional)) != (
            first.participation,
            first.sizing,
            dict(first.lot_size),
            dict(first.min_notional),
        ):
            raise EngineError(
                "scenarios of one batch must share participation, sizing, lot sizes and minimum notionals"
            )
        if (sc.band_mode, sc.to_edge) != (sched0.band_mode, sched0.to_edge):
            raise EngineError("scenarios of one batch must share the drift-band mode and target")
    if any(not cash > 0 for cash in initial_cash):
        raise EngineError(
            f"`initial_cash` must be > 0 for every scenario; got {list(initial_cash)}"
        )
    shape = market.close.shape
    checked = [check_orders(t, shape) for t in targets]
    n_orders = [orders.rows.size for orders, _ in checked]
    stacked = np.full((n_scen, max(max(n_orders), 1), shape[1]), np.nan)
    for s, (orders, _) in enumerate(checked):
        stacked[s, : n_orders[s]] = orders.weights
    rows = np.ascontiguousarray(np.stack([r for _, r in checked]))
    fills = [fill_params(c) for c in costs]
    shared = fills[0]
    params = BatchParams(
        initial_cash=np.asarray(initial_cash, dtype=np.float64),
        fee_rate=np.array([f.fee_rate for f in fills]),
        slippage_rate=np.array([f.slippage_rate for f in fills]),
        impact_coef=np.array([f.impact_coef for f in fills]),
        min_trade_value=np.array([f.min_trade_value for f in fills]),
        band=np.array(
            [
                sc.band_scale(c.linear_rate)
                for c, sc in zip(costs, schedules, strict=True)
            ]
        ),
        participation=shared.participation,
        sizing=shared.sizing,
        band_mode=_BAND_MODES[sched0.band_mode],
        band_to_edge=sched0.to_edge,
        stop_loss=float(risk.stop_loss),
        fill_at_close=execution == "close",
        record_trades=bool(record),
        store_units=not record,
    )
    capacity = max(
        _ledger_capacity(k, shape[0], shape[1], b, risk.stop_loss)
        for k, b in zip(n_orders, params.band, strict=True)
    )
    out, n_trades = kernels.simulate_batch_nb(market, stacked, rows, params, capacity)
    return [
        SimulationOutput(
            equity=out.equity[s],
            cash=out.cash[s],
            traded=out.traded[s],
            trades=_trimmed(out.trades[s], int(n_trades[s])),
            totals=CostTotals.from_record(out.totals[s]),
            stored_units=None if record else out.units[s],
            n_assets=shape[1],
        )
        for s in range(n_scen)
    ]
