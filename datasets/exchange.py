"""ccxt exchange construction: ids, keys, symbols and timeframes checked with helpful errors.

Keys come from the arguments or from the environment variables ``EXCHANGE_API_KEY`` and
``EXCHANGE_API_SECRET``. They are handed to ccxt and never logged, printed or put in an error
message: :func:`make_exchange` also installs a logging filter that masks them in ccxt's own debug
log (ccxt logs request headers, which carry the key, at DEBUG level).

ccxt is imported inside the functions, so importing :mod:`datasets` stays fast.
"""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any

from datasets.errors import ExchangeError, ExchangeUnavailableError

log = logging.getLogger(__name__)

KEY_ENV = "EXCHANGE_API_KEY"
SECRET_ENV = "EXCHANGE_API_SECRET"
_CCXT_LOGGER = "ccxt.base.exchange"


def exchange_ids() -> list[str]:
    """All exchange ids ccxt knows (``"binance"``, ``"kraken"``, ...)."""
    import ccxt

    return list(ccxt.exchanges)


def _suggest(value: str, choices: list[str], n: int = 3) -> str:
    matches = difflib.get_close_matches(value, choices, n=n, cutoff=0.6)
    if not matches:
        matches = difflib.get_close_matches(value.upper(), choices, n=n, cutoff=0.5)
    return f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""


def check_exchange_id(exchange_id: str) -> str:
    """Return ``exchange_id`` if ccxt knows it, else raise with close matches.

    >>> check_exchange_id("binance")
    'binance'
    """
    ids = exchange_ids()
    if exchange_id in ids:
        return exchange_id
    if str(exchange_id).lower() in ids:
        return str(exchange_id).lower()
    raise ExchangeError(
        f"unknown exchange id {exchange_id!r}{_suggest(str(exchange_id).lower(), ids)} "
        f"(ccxt knows {len(ids)} exchanges; list them with "
        "`python -c 'import ccxt; print(ccxt.exchanges)'`)"
    )


class _RedactSecrets(logging.Filter):
    """Mask API keys and secrets in log records (ccxt logs request headers at DEBUG level)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for s in self.secrets:
                message = message.replace(s, "***")
            record.msg, record.args = message, None
        return True


_REDACTOR = _RedactSecrets()


def _protect(*secrets: str | None) -> None:
    values = {s for s in secrets if s}
    if not values:
        return
    _REDACTOR.secrets |= values
    ccxt_logger = logging.getLogger(_CCXT_LOGGER)
    if _REDACTOR not in ccxt_logger.filters:
        ccxt_logger.addFilter(_REDACTOR)


def make_exchange(
    exchange_id: str,
    api_key: str | None = None,
    api_secret: str | None = None,
    async_: bool = False,
    *,
    config: dict[str, Any] | None = None,
) -> Any:
    """Build a ccxt exchange with rate limiting on and keys from the arguments or the environment.

    Parameters
    ----------
    exchange_id : str
        A ccxt id such as ``"binance"`` (an unknown id raises with close matches).
    api_key, api_secret : str, optional
        Default ``$EXCHANGE_API_KEY`` / ``$EXCHANGE_API_SECRET``; both or neither. Without keys
        only public endpoints (markets, candles, tickers) work.
    async_ : bool
        Return the ``ccxt.async_support`` class (remember ``await exchange.close()``).
    config : dict, optional
        Extra ccxt constructor options (``{"options": {...}}``, ``{"timeout": 30000}``).

    Returns
    -------
    ccxt.Exchange
        With ``enableRateLimit=True``.

    Examples
    --------
    >>> ex = make_exchange("binance")
    >>> ex.id, ex.enableRateLimit
    ('binance', True)
    >>> ex.fetch_ohlcv("BTC/USDT", "1d", limit=3)  # needs the network  # doctest: +SKIP
    """
    exchange_id = check_exchange_id(exchange_id)
    key = api_key if api_key is not None else os.environ.get(KEY_ENV) or None
    secret = api_secret if api_secret is not None else os.environ.get(SECRET_ENV) or None
    if bool(key) != bool(secret):
        have, lack = (KEY_ENV, SECRET_ENV) if key else (SECRET_ENV, KEY_ENV)
        raise ExchangeError(
            f"the API key pair is incomplete: `{have}` is set but `{lack}` is not; "
            "set both (private endpoints) or neither (public data only)"
        )
    if async_:
        import ccxt.async_support as module
    else:
        import ccxt as module
    settings: dict[str, Any] = {**(config or {}), "enableRateLimit": True}
    if key:
        _protect(key, secret)
        settings.update(apiKey=key, secret=secret)
    exchange = getattr(module, exchange_id)(settings)
    log.debug(
        "created ccxt exchange %s (async=%s, keys=%s)", exchange_id, async_, "yes" if key else "no"
    )
    return exchange


def check_symbol(exchange: Any, symbol: str) -> str:
    """Return ``symbol`` if the exchange lists it (markets must be loaded), else raise.

    The error names up to three close matches among the exchange's symbols.
    """
    markets = exchange.markets or {}
    if symbol in markets:
        return symbol
    raise ExchangeError(
        f"unknown symbol {symbol!r} on {exchange.id}{_suggest(str(symbol), list(markets))} "
        f"(symbols use ccxt notation such as 'BTC/USDT'; {len(markets)} markets listed)"
    )


def check_timeframe(exchange: Any, timeframe: str) -> str:
    """Return ``timeframe`` if the exchange offers it for candles, else raise listing those it does."""
    offered = list((exchange.timeframes or {}).keys())
    if not exchange.has.get("fetchOHLCV"):
        raise ExchangeError(f"{exchange.id} does not offer candles (fetchOHLCV) through ccxt")
    if timeframe in offered:
        return timeframe
    raise ExchangeError(
        f"`timeframe` {timeframe!r} is not offered by {exchange.id}; "
        f"choose one of {', '.join(offered)}"
    )


def network_down(exc: BaseException) -> bool:
    """True when a ccxt error means the request never got an answer (no network, DNS, proxy,
    timeout), so retrying soon is pointless.

    ccxt raises ``NetworkError`` / ``RequestTimeout`` from the HTTP layer; its async flavour raises
    ``ExchangeNotAvailable`` *from* the socket's ``OSError``. An ``ExchangeNotAvailable`` raised
    for an HTTP 5xx answer (no such cause), rate limits (``RateLimitExceeded``, ``DDoSProtection``)
    and the other ``NetworkError`` subclasses are worth a retry: they return False.
    """
    import ccxt

    return isinstance(exc, ccxt.NetworkError) and (
        type(exc) in (ccxt.NetworkError, ccxt.RequestTimeout) or isinstance(exc.__cause__, OSError)
    )


def network_error(
    who: str, exc: BaseException, detail: str | None = None
) -> ExchangeUnavailableError:
    """The one-line error for a ccxt error for which :func:`network_down` holds.

    ``who`` names the exchange (``"binance"``, ``"binance load_markets"``); ``detail`` replaces
    the ccxt message (e.g. with keys masked).
    """
    text = str(exc) if detail is None else detail
    return ExchangeUnavailableError(
        f"{who}: network unreachable (ccxt {type(exc).__name__}: {text}); "
        "check your connection or proxy"
    )
