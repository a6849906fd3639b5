"""The rules of the execution loop (:mod:`backtest.live.execution`) that need no exchange: its
settings and their validation (also the ``[live]`` config's), and how much of a buy the free cash
pays in whole lots."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from backtest.errors import LiveError
from backtest.trade_rules import on_grid


@dataclass(frozen=True)
class ExecutionSettings:
    """How orders are watched.

    Attributes
    ----------
    poll_seconds : float
        Time between two ``fetch_order`` rounds.
    order_timeout_seconds : float
        An order still open this long after it was placed is canceled (then repriced or carried);
        at least ``poll_seconds``.
    max_reprices : int
        Replacements at a fresh limit per trade.
    deadline_seconds : float or None
        After this long everything open is canceled and nothing more is placed; at least
        ``poll_seconds``.
    limit_offset_bps : float
        Repriced limit: ``last * (1 + offset)`` for a buy, ``last * (1 - offset)`` for a sell.
    fee_rate : float
        Fee estimate for fills whose order does not report the fee charged (Binance's order
        query does not).
    """

    poll_seconds: float = 5.0
    order_timeout_seconds: float = 60.0
    max_reprices: int = 2
    deadline_seconds: float | None = None
    limit_offset_bps: float = 5.0
    fee_rate: float = 0.001

    def __post_init__(self) -> None:
        check_execution(
            self.poll_seconds, self.order_timeout_seconds, self.max_reprices, self.deadline_seconds
        )

    @classmethod
    def from_config(cls, live: Any, fee_rate: float) -> ExecutionSettings:
        """The settings of a :class:`~backtest.config.LiveConfig` (``[live]``), with the cost
        model's ``fee_rate`` as the fee estimate."""
        return cls(
            poll_seconds=live.poll_seconds,
            order_timeout_seconds=live.order_timeout_seconds,
            max_reprices=live.max_reprices,
            deadline_seconds=live.deadline_seconds,
            limit_offset_bps=live.limit_offset_bps,
            fee_rate=float(fee_rate),
        )


def _seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


def check_execution(
    poll_seconds: Any, order_timeout_seconds: Any, max_reprices: Any, deadline_seconds: Any
) -> None:
    """Raise :class:`~backtest.errors.LiveError` unless the loop's timings are usable: the rule of
    :class:`ExecutionSettings` and of ``[live]`` (:class:`~backtest.config.LiveConfig`).

    An order is looked at once per poll, so neither its timeout nor the deadline can be shorter
    than ``poll_seconds``.

    >>> check_execution(5, 60, 2, None)
    >>> check_execution(5, 2, 2, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    backtest.errors.LiveError: `order_timeout_seconds` = 2 is shorter than `poll_seconds` = 5: ...
    """
    for name, value in (
        ("poll_seconds", poll_seconds),
        ("order_timeout_seconds", order_timeout_seconds),
    ):
        if not _seconds(value):
            raise LiveError(f"`{name}` must be > 0 seconds; got {value!r}")
    if deadline_seconds is not None and not _seconds(deadline_seconds):
        raise LiveError(
            f"`deadline_seconds` must be > 0 seconds (or none: no deadline); got {deadline_seconds!r}"
        )
    if not (
        isinstance(max_reprices, int) and not isinstance(max_reprices, bool) and max_reprices >= 0
    ):
        raise LiveError(f"`max_reprices` must be an integer >= 0; got {max_reprices!r}")
    for name, value in (
        ("order_timeout_seconds", order_timeout_seconds),
        ("deadline_seconds", deadline_seconds),
    ):
        if value is not None and value < poll_seconds:
            raise LiveError(
                f"`{name}` = {value:g} is shorter than `poll_seconds` = {poll_seconds:g}: orders "
                f"are checked once per poll, so it cannot take effect sooner; set `{name}` >= "
                "`poll_seconds`"
            )


def affordable(
    amount: float, cash: float, unit_cost: float, lot_step: float, min_amount: float
) -> float:
    """The part of a buy of ``amount`` (whole lots) that ``cash`` pays at ``unit_cost`` per unit
    (the limit plus the fee), in whole lots, such that the part and the rest left for later are
    each 0 or at least ``min_amount`` (the minimum order value over the limit); 0 when no such
    part is paid.

    >>> affordable(10.0, 1e6, 2.0, 1.0, 3.0)  # all paid
    10.0
    >>> affordable(10.0, 15.0, 2.0, 1.0, 3.0)  # 7 lots: the rest, 3, can still be placed
    7.0
    >>> affordable(10.0, 17.0, 2.0, 1.0, 3.0)  # 8 would leave 2 (< 3): 7
    7.0
    >>> affordable(10.0, 5.0, 2.0, 1.0, 3.0)  # 2 lots are below the minimum: nothing
    0.0
    """
    if amount * unit_cost <= cash:
        return amount
    if not cash > 0:
        return 0.0
    units = cash / unit_cost
    paid = math.floor(units / lot_step) * lot_step if lot_step > 0 else units
    least = min_amount * (1 - 1e-9)  # lots are decimals: compare them with a tolerance
    if amount - paid < least:  # keep a placeable rest
        rest = math.ceil(least / lot_step) * lot_step if lot_step > 0 else min_amount
        paid = amount - rest
    if lot_step > 0:
        paid = on_grid(paid, lot_step)
    return paid if paid >= least and paid > 0 else 0.0
