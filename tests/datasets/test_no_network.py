"""A fetch without network fails at once with one line naming the network and the exchange; rate
limits and HTTP 5xx are still retried. Nothing here touches the network: ccxt's own HTTP layer runs
and the session beneath it raises what ``requests`` raises when the network is down."""

from __future__ import annotations

import socket

import ccxt
import pytest
import requests

from backtest.cli import main
from datasets import fetch_ohlcv, make_exchange
from datasets.errors import ExchangeUnavailableError
from datasets.exchange import network_down
from datasets.fetch import call_with_retries
from tests.datasets.candles import ms
from tests.datasets.ccxt_fake import HttpError

KLINES = "/api/v3/klines"
UNREACHABLE = (
    "HTTPSConnectionPool(host='api.binance.com', port=443): Max retries exceeded "
    "(Caused by NewConnectionError('Failed to establish a new connection: "
    "[Errno 101] Network is unreachable'))"
)


class _NoNetwork(requests.Session):
    """A requests session on a machine without network: every request raises, and is counted."""

    calls = 0

    def request(self, method, url, *args, **kwargs):
        type(self).calls += 1
        raise requests.exceptions.ConnectionError(UNREACHABLE)


class _Unavailable(_NoNetwork):
    """The exchange answers every request with HTTP 503."""

    def request(self, method, url, *args, **kwargs):
        type(self).calls += 1
        response = requests.Response()
        response.status_code, response.reason, response.url = 503, "Service Unavailable", url
        response._content = b"Service Unavailable"
        return response


def _install(monkeypatch, session: type[_NoNetwork]) -> type[_NoNetwork]:
    """The real ccxt.binance (its own fetch and error mapping) over ``session``."""

    class Binance(ccxt.binance):
        def __init__(self, config=None):
            super().__init__(config)
            self.session = session()

    session.calls = 0
    monkeypatch.setattr(ccxt, "binance", Binance)
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("EXCHANGE_API_SECRET", raising=False)
    return session


@pytest.fixture
def offline_binance(monkeypatch) -> type[_NoNetwork]:
    return _install(monkeypatch, _NoNetwork)


def test_fetch_cli_without_network_is_one_line_and_no_retry(offline_binance, tmp_path, capsys):
    args = ["data", "fetch", "-e", "binance", "-s", "BTC/USDT", "--since", "2022-01-01"]
    code = main([*args, "--root", str(tmp_path / "store"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == (
        "error: binance load_markets: network unreachable (ccxt NetworkError: binance GET "
        "https://api.binance.com/api/v3/exchangeInfo); check your connection or proxy\n"
    )
    assert "Errno" not in out + err
    assert offline_binance.calls == 1  # one request, no retry (5 retries took ~31 s of backoff)


def test_ccxt_maps_the_down_network_to_what_fails_fast(offline_binance):
    with pytest.raises(ccxt.NetworkError) as caught:
        make_exchange("binance").load_markets()
    assert type(caught.value) is ccxt.NetworkError and network_down(caught.value)


def test_a_real_503_is_retried(monkeypatch):
    session = _install(monkeypatch, _Unavailable)
    waits: list[float] = []
    with pytest.raises(ccxt.ExchangeNotAvailable):
        call_with_retries(
            make_exchange("binance").load_markets, what="binance", max_retries=2, sleep=waits.append
        )
    assert waits == [1.0, 2.0] and session.calls == 3


@pytest.mark.parametrize(
    "error",
    [
        ccxt.ExchangeNotAvailable("binance GET /api/v3/klines 503 Service Unavailable"),
        ccxt.RateLimitExceeded("binance 429"),
        ccxt.DDoSProtection("binance 418"),
        ccxt.OnMaintenance("binance maintenance"),
    ],
    ids=["5xx", "rate-limit", "ddos", "maintenance"],
)
def test_answers_from_the_exchange_are_not_a_down_network(error):
    assert not network_down(error)


def test_async_ccxt_dns_failure_is_a_down_network():
    """ccxt.async_support raises ExchangeNotAvailable *from* the socket error (as for a 5xx)."""
    try:
        try:
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        except socket.gaierror as cause:
            raise ccxt.ExchangeNotAvailable("binance GET https://api.binance.com") from cause
    except ccxt.ExchangeNotAvailable as exc:
        assert network_down(exc)


@pytest.mark.shared
@pytest.mark.parametrize(
    "failure",
    [ccxt.NetworkError("binance GET https://api.binance.com/api/v3/klines"), ccxt.RequestTimeout],
    ids=["network", "timeout"],
)
def test_network_loss_mid_pagination_stops_at_once_and_keeps_the_pages(
    fake_binance, store, failure
):
    fake_binance.fail(failure, path=KLINES, after=3, times=10)
    waits: list[float] = []
    with pytest.raises(ExchangeUnavailableError, match=r"^binance fetch_ohlcv XRP/USDT 1h since "):
        fetch_ohlcv(
            make_exchange("binance"), "XRP/USDT", "1h", "2022-01-01", "2022-12-31 23:00",
            store=store, sleep=waits.append,
        )  # fmt: skip
    assert waits == []  # no backoff
    assert len([r for r in fake_binance.requests_to(KLINES) if r.failed]) == 1
    assert (
        store.last_timestamp("binance", "1h", "XRP/USDT")
        == ms("2022-01-01") + (3000 - 1) * 3_600_000
    )


@pytest.mark.shared
def test_5xx_is_still_retried(fake_binance, store):
    fake_binance.fail(
        HttpError(503, "Service Unavailable", reason="Service Unavailable"), path=KLINES, times=2
    )
    waits: list[float] = []
    report = fetch_ohlcv(
        make_exchange("binance"), "XRP/USDT", "1h", "2022-12-01", "2022-12-31 23:00",
        store=store, sleep=waits.append, backoff_s=0.5,
    )  # fmt: skip
    assert waits == [0.5, 1.0] and report.retries == 2 and report.rows == 31 * 24
