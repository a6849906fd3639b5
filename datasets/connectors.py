"""Exchange connectors over ccxt's async API: balances, prices, market rules and limit orders.

:class:`ExchangeConnector` wraps one ``ccxt.async_support`` exchange (built by
:func:`datasets.exchange.make_exchange`); :class:`BinanceConnector` is the Binance spot flavour.

* **Read-only by default**: :meth:`ExchangeConnector.create_limit_order` refuses unless the
  connector was built with ``read_only=False``.
* **Keys** come from the constructor or ``EXCHANGE_API_KEY`` / ``EXCHANGE_API_SECRET``. They stay
  inside the ccxt object: the connector's repr says only whether keys are set; ccxt's debug log and
  its ``verbose`` output are routed through a filter that masks them; every ccxt error is re-raised
  as a :mod:`datasets.errors` exception whose message has them masked (authentication failures get a
  fixed message that names the environment variables, not the values).
* **Market rules** per symbol (:class:`MarketRules`): lot step, minimum amount, minimum notional
  (Binance ``NOTIONAL`` or the older ``MIN_NOTIONAL`` filter, else ccxt's unified ``limits`` /
  ``precision``) and price tick.

ccxt is imported inside the methods, so ``import datasets`` stays light. A ccxt async exchange is
bound to the event loop it first ran in; the connector rebuilds it when used from another loop
(e.g. a second ``asyncio.run``). Close it with ``await connector.close()`` or ``async with``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, TypeVar

from datasets.errors import (
    ExchangeAuthError,
    ExchangeError,
    ExchangeUnavailableError,
    MissingCredentialsError,
    ReadOnlyError,
)
from datasets.exchange import (
    KEY_ENV,
    SECRET_ENV,
    check_exchange_id,
    check_symbol,
    make_exchange,
    network_down,
    network_error,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_MASK = "***"


@dataclass(frozen=True)
class MarketRules:
    """Order rules of one market.

    Attributes
    ----------
    symbol, base, quote : str
        ``"LTC/USDT"``, ``"LTC"``, ``"USDT"``.
    lot_step : float
        Amount step in base units (Binance ``LOT_SIZE.stepSize``); 0 = unknown.
    min_amount : float
        Smallest order amount (``LOT_SIZE.minQty``); 0 = none.
    min_notional : float
        Smallest order value in the quote currency (``NOTIONAL`` / ``MIN_NOTIONAL``); 0 = none.
    tick_size : float
        Price step (``PRICE_FILTER.tickSize``); 0 = unknown.
    taker_fee : float
        Taker fee rate from the market (0.001 = 10 bps); NaN when unknown.
    """

    symbol: str
    base: str
    quote: str
    lot_step: float = 0.0
    min_amount: float = 0.0
    min_notional: float = 0.0
    tick_size: float = 0.0
    taker_fee: float = math.nan

    def min_order_value(self, price: float) -> float:
        """The smallest tradable value at ``price``: ``max(min_notional, min_amount * price)``."""
        return max(self.min_notional, self.min_amount * price)


@dataclass(frozen=True)
class Ticker:
    """Last price, best bid / ask and 24 h quote volume of one market (NaN when not reported)."""

    symbol: str
    last: float
    bid: float = math.nan
    ask: float = math.nan
    quote_volume: float = math.nan
    timestamp_ms: int | None = None

    @property
    def price(self) -> float:
        """``last``, else the bid/ask midpoint, else NaN."""
        if self.last > 0:
            return self.last
        if self.bid > 0 and self.ask > 0:
            return (self.bid + self.ask) / 2
        return math.nan


@dataclass(frozen=True)
class OrderStatus:
    """An order as the exchange acknowledged it (ccxt's unified status: open, closed, canceled, ...)."""

    id: str | None
    symbol: str
    side: str
    amount: float
    price: float
    status: str
    filled: float = 0.0
    client_order_id: str | None = None
    average: float = math.nan
    fee: float = math.nan

    @property
    def remaining(self) -> float:
        return self.amount - self.filled


def order_status(order: dict, symbol: str | None = None) -> OrderStatus:
    """:class:`OrderStatus` from a ccxt unified order (``fee``: the quote-currency fee when the
    exchange reports one, else NaN)."""
    fees = [order.get("fee")] if order.get("fee") else list(order.get("fees") or [])
    costs = [_num(f.get("cost")) for f in fees if isinstance(f, dict)]
    filled = _num(order.get("filled"), 0.0)
    average = _num(order.get("average"))
    if not average > 0 and filled > 0:
        average = _num(order.get("cost")) / filled
    return OrderStatus(
        id=None if order.get("id") is None else str(order.get("id")),
        symbol=symbol or str(order.get("symbol")),
        side=str(order.get("side")),
        amount=_num(order.get("amount"), 0.0),
        price=_num(order.get("price")),
        status=str(order.get("status") or "unknown"),
        filled=filled,
        client_order_id=order.get("clientOrderId"),
        average=average,
        fee=float(sum(costs)) if costs and all(math.isfinite(c) for c in costs) else math.nan,
    )


def _num(value: Any, default: float = math.nan) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


def parse_market_rules(market: dict, precision_mode: int | None = None) -> MarketRules:
    """:class:`MarketRules` from a ccxt unified market.

    The raw exchange filters in ``market["info"]["filters"]`` win when present (Binance:
    ``LOT_SIZE``, ``NOTIONAL`` or ``MIN_NOTIONAL``, ``PRICE_FILTER``); otherwise ccxt's unified
    ``limits`` and ``precision`` are used (``precision_mode`` is the exchange's ``precisionMode``:
    with ccxt's ``DECIMAL_PLACES`` a precision of 3 means a step of 0.001).
    """
    filters = {
        f.get("filterType"): f
        for f in (market.get("info") or {}).get("filters") or []
        if isinstance(f, dict)
    }
    limits = market.get("limits") or {}
    precision = market.get("precision") or {}

    def step(value: Any) -> float:
        v = _num(value, 0.0)
        if v <= 0:
            return 0.0
        decimal_places = 2  # ccxt.DECIMAL_PLACES; TICK_SIZE (4) gives the step itself
        if precision_mode == decimal_places and float(v).is_integer():
            return 10.0**-v
        return v

    lot = _num((filters.get("LOT_SIZE") or {}).get("stepSize"), 0.0) or step(
        precision.get("amount")
    )
    min_amount = _num((filters.get("LOT_SIZE") or {}).get("minQty"), 0.0) or _num(
        (limits.get("amount") or {}).get("min"), 0.0
    )
    notional_filter = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    min_notional = _num(
        notional_filter.get("minNotional", notional_filter.get("notional")), 0.0
    ) or _num((limits.get("cost") or {}).get("min"), 0.0)
    tick = _num((filters.get("PRICE_FILTER") or {}).get("tickSize"), 0.0) or step(
        precision.get("price")
    )
    return MarketRules(
        symbol=market["symbol"],
        base=market.get("base") or market["symbol"].split("/")[0],
        quote=market.get("quote") or market["symbol"].split("/")[-1],
        lot_step=lot,
        min_amount=min_amount,
        min_notional=min_notional,
        tick_size=tick,
        taker_fee=_num(market.get("taker")),
    )


class ExchangeConnector:
    """Read balances, prices and market rules from a ccxt exchange (async); place limit orders.

    Parameters
    ----------
    exchange_id : str
        ccxt id such as ``"binance"`` or ``"kraken"`` (an unknown id raises with close matches).
    api_key, api_secret : str, optional
        Default ``$EXCHANGE_API_KEY`` / ``$EXCHANGE_API_SECRET``. Needed for balances and orders,
        not for prices and markets. Never logged, printed or put in an error message.
    read_only : bool
        When True (the default) :meth:`create_limit_order` refuses to trade.
    quote : str
        The quote currency that balances are valued in (``"USDT"``).
    sandbox : bool
        Use the exchange's test network (ccxt ``set_sandbox_mode``), where there is one.
    config : dict, optional
        Extra ccxt constructor options.

    Examples
    --------
    >>> async def show():  # await show() needs the network
    ...     async with ExchangeConnector("binance") as ex:
    ...         print(await ex.fetch_prices(["BTC/USDT"]))
    """

    default_config: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        exchange_id: str,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        read_only: bool = True,
        quote: str = "USDT",
        sandbox: bool = False,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.exchange_id = check_exchange_id(exchange_id)
        if not isinstance(quote, str) or not quote.isalnum():
            raise ExchangeError(f"`quote` must be a currency code such as 'USDT'; got {quote!r}")
        self.quote = quote.upper()
        self.read_only = bool(read_only)
        self.sandbox = bool(sandbox)
        config = dict(config or {})
        options = {**self.default_config.get("options", {}), **config.pop("options", {})}
        self._config = {**self.default_config, **config, "options": options}
        self._exchange = self._build(api_key, api_secret)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # ------------------------------------------------------------------ construction and secrets
    def _build(self, api_key: str | None, api_secret: str | None) -> Any:
        exchange = make_exchange(
            self.exchange_id, api_key, api_secret, async_=True, config=self._config
        )
        if self.sandbox:
            exchange.set_sandbox_mode(True)
        exchange.log = self._ccxt_log  # ccxt's `verbose` output goes to logging, masked (not print)
        return exchange

    def _secrets(self) -> list[str]:
        return [
            s
            for s in (
                getattr(self._exchange, "apiKey", None),
                getattr(self._exchange, "secret", None),
            )
            if isinstance(s, str) and s
        ]

    def redact(self, text: str) -> str:
        """``text`` with the API key and secret replaced by ``***``."""
        for secret in self._secrets():
            text = text.replace(secret, _MASK)
        return text

    def _ccxt_log(self, *args: Any) -> None:
        log.debug("%s", self.redact(" ".join(str(a) for a in args)))

    @property
    def has_credentials(self) -> bool:
        """True when both an API key and a secret are set (the values are never exposed)."""
        return len(self._secrets()) == 2

    def __repr__(self) -> str:
        keys = "set" if self.has_credentials else "absent"
        return (
            f"{type(self).__name__}(exchange_id={self.exchange_id!r}, quote={self.quote!r}, "
            f"read_only={self.read_only}, sandbox={self.sandbox}, keys={keys})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} holds API keys and cannot be pickled")

    def require_keys(self, what: str) -> None:
        """Raise :class:`MissingCredentialsError` (naming ``what`` and the environment variables)
        unless keys are set."""
        if not self.has_credentials:
            raise MissingCredentialsError(
                f"{what} needs API keys: set {KEY_ENV} and {SECRET_ENV} in the environment or pass "
                f"api_key= and api_secret= to {type(self).__name__} (keys never go in config files)"
            )

    async def _client(self) -> Any:
        """The ccxt exchange, rebuilt when called from a different event loop than before."""
        loop = asyncio.get_running_loop()
        if self._closed or (self._loop is not None and self._loop is not loop):
            old = self._exchange
            if not self._closed:
                old.session = None  # bound to a finished loop: it cannot be closed from this one
            self._exchange = self._build(
                getattr(old, "apiKey", None) or "", getattr(old, "secret", None) or ""
            )
            self._closed = False
        self._loop = loop
        return self._exchange

    async def _call(self, what: str, call: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run ``call(exchange)``; map ccxt errors to ours with the keys masked."""
        import ccxt

        exchange = await self._client()
        error: Exception
        try:
            return await call(exchange)
        except ccxt.AuthenticationError as exc:
            error = ExchangeAuthError(
                f"{self.exchange_id} rejected the API keys during {what} ({type(exc).__name__}: "
                f"{self.redact(str(exc))[:300]}); check {KEY_ENV} / {SECRET_ENV}, the key's permissions "
                "and its IP whitelist"
            )
        except ccxt.NetworkError as exc:
            detail = self.redact(str(exc))[:300]
            error = (
                network_error(f"{self.exchange_id} {what}", exc, detail)
                if network_down(exc)
                else ExchangeUnavailableError(
                    f"{self.exchange_id} {what} failed: {type(exc).__name__}: {detail} "
                    "(exchange outage or rate limit; try again later)"
                )
            )
        except ccxt.BaseError as exc:
            error = ExchangeError(
                f"{self.exchange_id} {what}: the exchange refused the request: {type(exc).__name__}: "
                f"{self.redact(str(exc))[:300]}"
            )
        # raised outside the handler: the ccxt exception (whose text may echo request details) is not
        # chained as __context__, so no traceback can show it
        raise error

    async def close(self) -> None:
        """Release the HTTP session (call once when done; ``async with`` does it)."""
        if self._loop is not None and not self._closed:
            await self._exchange.close()
        self._closed = True

    async def __aenter__(self) -> ExchangeConnector:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------------ public data
    def history_exchange(self) -> Any:
        """A synchronous ccxt exchange without keys, for candles (what
        :func:`datasets.fetch.ensure_history` pages through)."""
        exchange = make_exchange(self.exchange_id, "", "", config=self._config)
        if self.sandbox:
            exchange.set_sandbox_mode(True)
        return exchange

    def symbol(self, asset: str) -> str:
        """The market symbol of ``asset`` against the quote currency: ``"BTC"`` -> ``"BTC/USDT"``."""
        return f"{asset}/{self.quote}"

    async def load_markets(self) -> dict[str, dict]:
        """ccxt's unified markets (loaded once per event loop)."""
        return await self._call("load_markets", lambda ex: ex.load_markets())

    async def has_market(self, symbol: str) -> bool:
        """Whether the exchange lists ``symbol``."""
        return symbol in await self.load_markets()

    async def fetch_markets(self, symbols: Iterable[str] | None = None) -> dict[str, MarketRules]:
        """Order rules per symbol (all markets when ``symbols`` is None).

        Raises
        ------
        ExchangeError
            For a symbol the exchange does not list (with close matches).
        """
        markets = await self.load_markets()
        wanted = list(markets) if symbols is None else list(symbols)
        for symbol in wanted:
            check_symbol(self._exchange, symbol)
        mode = getattr(self._exchange, "precisionMode", None)
        return {s: parse_market_rules(markets[s], mode) for s in wanted}

    async def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        """Tickers of ``symbols`` (one request where the exchange supports it)."""
        symbols = list(dict.fromkeys(symbols))
        if not symbols:
            return {}
        await self.fetch_markets(symbols)
        raw: dict[str, Any]
        if self._exchange.has.get("fetchTickers"):
            raw = await self._call("fetch_tickers", lambda ex: ex.fetch_tickers(symbols))
        else:

            def one(symbol: str) -> Callable[[Any], Awaitable[Any]]:
                return lambda ex: ex.fetch_ticker(symbol)

            items = await asyncio.gather(
                *(self._call(f"fetch_ticker {s}", one(s)) for s in symbols)
            )
            raw = dict(zip(symbols, items, strict=True))
        out = {}
        for symbol in symbols:
            t = raw.get(symbol)
            if t is None:
                raise ExchangeError(f"{self.exchange_id} returned no ticker for {symbol!r}")
            ts = t.get("timestamp")
            out[symbol] = Ticker(
                symbol,
                _num(t.get("last"), _num(t.get("close"))),
                _num(t.get("bid")),
                _num(t.get("ask")),
                _num(t.get("quoteVolume")),
                int(ts) if ts else None,
            )
        return out

    async def fetch_prices(self, symbols: Sequence[str]) -> dict[str, float]:
        """Last price per symbol (bid/ask midpoint when there is no last trade)."""
        tickers = await self.fetch_tickers(symbols)
        out = {}
        for symbol, ticker in tickers.items():
            if not ticker.price > 0:
                raise ExchangeError(
                    f"{self.exchange_id} reports no price for {symbol!r} (no last trade, bid or ask)"
                )
            out[symbol] = ticker.price
        return out

    # ------------------------------------------------------------------ private endpoints
    async def fetch_balances(self) -> dict[str, float]:
        """Total (free + locked) balance per asset, for the assets with a positive balance.

        Raises
        ------
        MissingCredentialsError
            Without API keys.
        ExchangeAuthError
            When the exchange rejects the keys.
        """
        self.require_keys("fetching balances")
        raw = await self._call("fetch_balance", lambda ex: ex.fetch_balance())
        totals = raw.get("total") or {}
        return {asset: float(v) for asset, v in totals.items() if _num(v, 0.0) > 0}

    async def create_limit_order(
        self,
        symbol: str,
        side: Literal["buy", "sell"],
        amount: float,
        price: float,
        params: dict[str, Any] | None = None,
    ) -> OrderStatus:
        """Place a good-till-cancelled limit order; amount and price are rounded to the market's
        precision (amount toward zero) by ccxt.

        Raises
        ------
        ReadOnlyError
            When the connector is read-only (the default).
        MissingCredentialsError, ExchangeAuthError, ExchangeError
        """
        if self.read_only:
            raise ReadOnlyError(
                f"{self!r} is read-only: build it with read_only=False to place orders"
            )
        self.require_keys("placing orders")
        if side not in ("buy", "sell"):
            raise ExchangeError(f"`side` must be 'buy' or 'sell'; got {side!r}")
        if not (_num(amount) > 0 and _num(price) > 0):
            raise ExchangeError(
                f"`amount` and `price` must be > 0; got amount={amount}, price={price}"
            )
        await self.fetch_markets([symbol])
        import ccxt

        ex = self._exchange
        try:
            amount_text, price_text = (
                ex.amount_to_precision(symbol, amount),
                ex.price_to_precision(symbol, price),
            )
        except ccxt.InvalidOrder:
            amount_text = "0"
        if not float(amount_text) > 0:
            raise ExchangeError(
                f"{side} {amount} {symbol} rounds to 0 at the market's lot step; nothing sent"
            )
        order = await self._call(
            f"create_order {side} {symbol}",
            lambda e: e.create_order(
                symbol, "limit", side, float(amount_text), float(price_text), params or {}
            ),
        )
        status = replace(
            order_status(order, symbol),
            side=side,
            amount=float(amount_text),
            price=float(price_text),
        )
        log.info(
            "limit %s %s %s @ %s: order %s %s",
            side,
            amount_text,
            symbol,
            price_text,
            status.id,
            status.status,
        )
        return status

    async def fetch_order(
        self, symbol: str, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderStatus | None:
        """The order's status by exchange id or by client order id (None: the exchange does not
        know it, e.g. it was never received)."""
        self.require_keys("fetching orders")
        params = {"origClientOrderId": client_order_id} if client_order_id else {}
        return await self._order_call(
            f"fetch_order {symbol}", lambda ex: ex.fetch_order(order_id, symbol, params), symbol
        )

    async def cancel_order(
        self, symbol: str, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderStatus | None:
        """Cancel an open order (None: the exchange knows no open order by that id, e.g. it has
        just filled; fetch it to see)."""
        if self.read_only:
            raise ReadOnlyError(f"{self!r} is read-only: build it with read_only=False to cancel")
        params = {"origClientOrderId": client_order_id} if client_order_id else {}
        return await self._order_call(
            f"cancel_order {symbol}", lambda ex: ex.cancel_order(order_id, symbol, params), symbol
        )

    async def fetch_open_orders(self, symbol: str) -> list[OrderStatus]:
        """The open orders of ``symbol`` (new or partially filled)."""
        self.require_keys("fetching open orders")
        orders = await self._call(
            f"fetch_open_orders {symbol}", lambda ex: ex.fetch_open_orders(symbol)
        )
        return [order_status(o, symbol) for o in orders]

    async def _order_call(
        self, what: str, call: Callable[[Any], Awaitable[Any]], symbol: str
    ) -> OrderStatus | None:
        import ccxt

        async def guarded(ex: Any) -> Any:
            try:
                return await call(ex)
            except ccxt.OrderNotFound:
                return None

        order = await self._call(what, guarded)
        return None if order is None else order_status(order, symbol)


class BinanceConnector(ExchangeConnector):
    """:class:`ExchangeConnector` for Binance spot (spot markets only; no private currency call).

    Examples
    --------
    >>> import asyncio
    >>> exchange = BinanceConnector()  # keys from EXCHANGE_API_KEY / EXCHANGE_API_SECRET
    >>> exchange.read_only, exchange.quote  # prices and markets need no keys; orders are refused
    (True, 'USDT')
    >>> asyncio.run(exchange.close())
    """

    default_config: ClassVar[dict[str, Any]] = {
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        }
    }

    def __init__(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        read_only: bool = True,
        quote: str = "USDT",
        sandbox: bool = False,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            "binance",
            api_key,
            api_secret,
            read_only=read_only,
            quote=quote,
            sandbox=sandbox,
            config=config,
        )
