"""The backtest's trade rules for one rebalance, callable from Python (the live analyzer uses them).

:func:`plan_trades` runs the same two numba kernels the simulation runs at an order bar,
:func:`backtest.fills.plan_trades_nb` (lot rounding toward zero, ``min_trade_value`` /
``min_notional`` skipping, full exits, position caps, participation cap, net-of-cost sizing) and
:func:`backtest.fills.fill_orders_nb` (sells first, then buys limited by the cash), on validated
arrays. So the trades the live analyzer lists are the trades the backtest would have made from the
same holdings, prices and targets; ``tests/live/test_trade_rules.py`` checks both against the
pure-NumPy twin of the trade rules (``tests/backtest/twins.py``) and against
:func:`backtest.simulate.simulate_scenario`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backtest import fills
from backtest.costs import Costs
from backtest.errors import EngineError
from backtest.records import COST_DTYPE, REASON_REBALANCE, TRADE_DTYPE
from backtest.simulate import fill_params


@dataclass(frozen=True)
class PlannedTrades:
    """What one rebalance trades under the kernel's rules.

    Attributes
    ----------
    deltas : ndarray of shape (n_assets,)
        Executed unit trades (> 0 buy, < 0 sell), after buys were fitted to the cash.
    planned : ndarray of shape (n_assets,)
        Unit trades before the cash limit (what :func:`~backtest.fills.plan_trades_nb` wanted).
    skipped : ndarray of bool, shape (n_assets,)
        A trade was wanted but fell below the lot step, ``min_trade_value`` or ``min_notional``.
    ledger : structured ndarray (:data:`backtest.records.TRADE_DTYPE`)
        One row per executed trade, sells first, with fill price, fee, slippage and impact costs.
    units_after : ndarray of shape (n_assets,)
        Holdings after the trades.
    cash_after : float
        Cash after the trades (quote currency, never negative).
    """

    deltas: np.ndarray
    planned: np.ndarray
    skipped: np.ndarray
    ledger: np.ndarray
    units_after: np.ndarray
    cash_after: float

    @property
    def fees(self) -> float:
        return float(self.ledger["fee"].sum())

    @property
    def slippage(self) -> float:
        return float(self.ledger["slippage"].sum())

    @property
    def impact(self) -> float:
        return float(self.ledger["impact"].sum())

    @property
    def total_cost(self) -> float:
        """Fees + slippage + impact, in the quote currency."""
        return self.fees + self.slippage + self.impact


def _vector(name: str, value: np.ndarray | float | None, n: int, default: float) -> np.ndarray:
    if value is None:
        return np.full(n, default)
    arr = np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)))
    return arr.copy()


def _check(
    units: np.ndarray,
    prices: np.ndarray,
    targets: np.ndarray,
    cash: float,
    lot_step: np.ndarray,
    min_notional: np.ndarray,
    val_prices: np.ndarray | None,
) -> None:
    n = units.shape[0]
    for name, arr in (("prices", prices), ("target_weights", targets)):
        if arr.shape != (n,):
            raise EngineError(f"`{name}` must have shape ({n},) like `units`; got {arr.shape}")
    if not np.all(np.isfinite(units)) or np.any(units < 0):
        raise EngineError(f"`units` must be finite and >= 0 (long only); got {units.tolist()}")
    if not (np.isfinite(cash) and cash >= 0):
        raise EngineError(f"`cash` must be a finite number >= 0; got {cash}")
    bad = np.isfinite(prices) & (prices <= 0)
    if bad.any() or np.isinf(prices).any():
        raise EngineError(f"`prices` must be > 0 (NaN = not tradable now); got {prices.tolist()}")
    held_unpriced = (units > 0) & np.isnan(prices)
    if val_prices is not None:
        held_unpriced &= ~(val_prices > 0)
    if held_unpriced.any():
        raise EngineError(
            f"held assets at positions {np.flatnonzero(held_unpriced).tolist()} have no price; "
            "pass `val_prices` to value them"
        )
    w = targets[np.isfinite(targets)]
    if np.any(w < -1e-12) or np.isinf(targets).any():
        raise EngineError(
            f"`target_weights` must be >= 0 (long only; NaN keeps a position); got {targets.tolist()}"
        )
    if w.sum() > 1 + 1e-9:
        raise EngineError(f"`target_weights` sum to {w.sum():.6g} > 1 (no leverage)")
    for name, arr in (("lot_step", lot_step), ("min_notional", min_notional)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise EngineError(
                f"`{name}` must be finite and >= 0 for every asset; got {arr.tolist()}"
            )


def plan_trades(
    units: np.ndarray,
    prices: np.ndarray,
    target_weights: np.ndarray,
    cash: float,
    *,
    costs: Costs,
    lot_step: np.ndarray | float | None = None,
    min_notional: np.ndarray | float | None = None,
    val_prices: np.ndarray | None = None,
    liquidity: np.ndarray | None = None,
    sigma: np.ndarray | None = None,
    max_value: np.ndarray | None = None,
) -> PlannedTrades:
    """Trades that move ``units`` toward ``target_weights`` under the backtest kernel's rules.

    Parameters
    ----------
    units : ndarray of shape (n_assets,)
        Current holdings in base units (>= 0).
    prices : ndarray of shape (n_assets,)
        Reference (fill) prices in the quote currency; NaN = not tradable now.
    target_weights : ndarray of shape (n_assets,)
        Target weights of the (post-cost, with ``costs.sizing == "net"``) equity; the rest is cash.
        NaN keeps a position as it is.
    cash : float
        Cash in the quote currency (>= 0).
    costs : Costs
        Fees, slippage, impact, ``participation``, ``min_trade_value`` and ``sizing``, as in the
        backtest (``costs.lot_size`` / ``costs.min_notional`` are keyed by symbol and not used here:
        pass the arrays).
    lot_step, min_notional : ndarray of shape (n_assets,) or float, optional
        Exchange lot step (base units) and minimum order notional (quote); 0 = none.
    val_prices : ndarray of shape (n_assets,), optional
        Valuation prices of assets without a price now (default: ``prices``).
    liquidity, sigma : ndarray of shape (n_assets,), optional
        Quote volume and daily volatility for the impact model and the participation cap.
    max_value : ndarray of shape (n_assets,), optional
        Cap on each position's value (default: none).

    Returns
    -------
    PlannedTrades

    Examples
    --------
    >>> from backtest.costs import Costs
    >>> plan = plan_trades(np.array([0.0, 2.0]), np.array([100.0, 50.0]), np.array([0.5, 0.5]), 100.0,
    ...                    costs=Costs(fee_bps=0, slippage_bps=0), lot_step=np.array([0.1, 0.1]))
    >>> plan.deltas.round(6).tolist(), plan.cash_after
    ([1.0, 0.0], 0.0)
    """
    units = np.ascontiguousarray(np.asarray(units, dtype=np.float64).ravel())
    n = units.shape[0]
    if n == 0:
        raise EngineError("`units` must name at least one asset; got an empty array")
    prices = np.ascontiguousarray(np.asarray(prices, dtype=np.float64).ravel())
    targets = np.ascontiguousarray(np.asarray(target_weights, dtype=np.float64).ravel())
    lots = _vector("lot_step", lot_step, n, 0.0)
    mins = _vector("min_notional", min_notional, n, 0.0)
    cash = float(cash)
    val = _vector("val_prices", val_prices, n, np.nan) if val_prices is not None else None
    _check(units, prices, targets, cash, lots, mins, val)
    val = prices.copy() if val is None else val
    liq = _vector("liquidity", liquidity, n, 0.0)
    sig = _vector("sigma", sigma, n, 0.0)
    cap = _vector("max_value", max_value, n, np.inf)

    params = fill_params(costs)
    skipped = np.zeros(n, dtype=np.bool_)
    order_value = np.zeros(n)
    planned = np.zeros(n)
    fills.plan_trades_nb(
        units=units,
        prices=prices,
        val_prices=val,
        target_weights=targets,
        cash=cash,
        lot_step=lots,
        min_notional=mins,
        max_value=cap,
        liquidity=liq,
        sigma=sig,
        fills=params,
        skipped=skipped,
        order_value=order_value,
        deltas=planned,
    )
    after = units.copy()
    ledger = np.empty(n, dtype=TRADE_DTYPE)
    cash_after, n_trades = fills.fill_orders_nb(
        deltas=planned,
        units=after,
        prices=prices,
        cash=cash,
        fills=params,
        sigma=sig,
        liquidity=liq,
        lot_step=lots,
        min_notional=mins,
        order_value=order_value,
        work_idx=np.zeros(n, dtype=np.int64),
        bar=0,
        reason=REASON_REBALANCE,
        trades=ledger,
        n_trades=0,
        record=True,
        totals=np.zeros(1, dtype=COST_DTYPE),
    )
    ledger = ledger[:n_trades].copy()
    deltas = np.zeros(n)
    np.add.at(deltas, ledger["asset"], ledger["units"])
    return PlannedTrades(
        deltas=deltas,
        planned=planned,
        skipped=skipped,
        ledger=ledger,
        units_after=after,
        cash_after=float(cash_after),
    )


def on_grid(value: float, step: float) -> float:
    """``value`` rounded to the nearest multiple of ``step``, as the float of that exact decimal
    (``on_grid(0.30000000000000004, 0.1) == 0.3``); ``step <= 0`` returns ``value``."""
    from decimal import Decimal

    if not step > 0:
        return float(value)
    return float(Decimal(round(value / step)) * Decimal(repr(float(step))))


def floor_to_grid(value: float, step: float) -> float:
    """``value`` rounded down to a multiple of ``step`` (the kernel's lot rounding, 1e-9 tolerance)."""
    if not step > 0:
        return float(value)
    return on_grid(math.floor(value / step + 1e-9) * step, step)


def slice_cap(
    max_slice_value: float | None, max_volume_share: float | None, quote_volume: float | None
) -> float | None:
    """Largest value of one order slice: ``max_slice_value`` and ``max_volume_share * quote_volume``,
    whichever is smaller (None: no limit)."""
    caps = [max_slice_value] if max_slice_value else []
    if max_volume_share and quote_volume is not None and quote_volume > 0:
        caps.append(max_volume_share * quote_volume)
    return min(caps) if caps else None


def split_order(
    amount: float, price: float, lot_step: float, max_value: float | None, min_value: float = 0.0
) -> tuple[float, ...]:
    """Split an order of ``amount`` units into slices worth at most ``max_value`` each.

    Slices are whole lots and differ by at most one lot; their number is the smallest that respects
    ``max_value`` (one lot per slice when a lot is worth more), reduced while the smallest slice would
    be worth less than ``min_value`` (the exchange's minimum order value). They sum to ``amount``.

    Parameters
    ----------
    amount : float
        Units to trade (a multiple of ``lot_step`` when it is > 0).
    price : float
        Reference price (quote per unit).
    lot_step : float
        Exchange lot step; 0 splits into equal float parts.
    max_value : float or None
        Largest slice value in the quote currency; None: one slice.
    min_value : float
        Smallest allowed slice value.

    Returns
    -------
    tuple of float

    Examples
    --------
    >>> split_order(1.0, 100.0, 0.1, 30.0)
    (0.3, 0.3, 0.2, 0.2)
    """
    if max_value is None or not amount * price > max_value:
        return (float(amount),)
    if lot_step > 0:
        lots = round(amount / lot_step)
        per_slice = max(1, math.floor(max_value / (lot_step * price) + 1e-9))
        n = math.ceil(lots / per_slice)
        while n > 1 and (lots // n) * lot_step * price < min_value:
            n -= 1
        base, extra = divmod(lots, n)
        return tuple(
            on_grid((base + 1 if k < extra else base) * lot_step, lot_step) for k in range(n)
        )
    n = math.ceil(amount * price / max_value)
    while n > 1 and amount * price / n < min_value:
        n -= 1
    return (amount / n,) * n
