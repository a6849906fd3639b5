"""Placing a rebalancing plan on the exchange: limit orders, sells first, one slice at a time.

The body of :meth:`backtest.live.PortfolioAnalyzer.execute`. See docs/live.md.
"""

from __future__ import annotations

import logging
from typing import Any

from backtest.live.results import OrderReport, RebalancePlan

log = logging.getLogger(__name__)


async def place_orders(exchange: Any, plan: RebalancePlan) -> list[OrderReport]:
    """Place ``plan``'s orders through the connector ``exchange``; see
    :meth:`backtest.live.PortfolioAnalyzer.execute` (read-only check, rejected orders reported,
    a network error stops the run)."""
    from datasets.connectors import ExchangeAuthError, ExchangeUnavailableError, ReadOnlyError

    if exchange.read_only:
        raise ReadOnlyError(
            f"{exchange!r} is read-only: build it with read_only=False to place orders"
        )
    reports: list[OrderReport] = []
    for trade in plan:
        for amount in trade.slices:
            try:
                status = await exchange.create_limit_order(
                    trade.symbol, trade.side, amount, trade.limit_price
                )
            except (ExchangeAuthError, ReadOnlyError):
                raise
            except ExchangeUnavailableError as exc:
                reports.append(
                    OrderReport(
                        trade.symbol,
                        trade.side,
                        amount,
                        trade.limit_price,
                        "unknown",
                        error=str(exc),
                    )
                )
                log.error("stopped placing orders after a network error: %s", exc)
                return reports
            except ValueError as exc:
                reports.append(
                    OrderReport(
                        trade.symbol,
                        trade.side,
                        amount,
                        trade.limit_price,
                        "rejected",
                        error=str(exc),
                    )
                )
                log.warning("order rejected: %s", exc)
                continue
            reports.append(
                OrderReport(
                    trade.symbol,
                    trade.side,
                    status.amount,
                    status.price,
                    status.status,
                    order_id=status.id,
                    filled=status.filled,
                )
            )
    return reports
