"""`backtest data fetch|import|list|verify|gaps` through the real entry point (exit codes, messages).

ccxt's real Binance class answers offline (tests/datasets/ccxt_fake.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.cli import main
from datasets import OHLCVStore, load_csv
from datasets.store import FILE_NAME
from tests.datasets.ccxt_fake import binance_server, install

pytestmark = pytest.mark.shared


@pytest.fixture
def fake_binance(shared_data: Path, monkeypatch):
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("EXCHANGE_API_SECRET", raising=False)
    server = binance_server(shared_data)
    with install(server):
        yield server


@pytest.fixture(scope="module")
def hourly_store(tmp_path_factory, hourly_csv) -> OHLCVStore:
    """The real 24-pair hourly file imported through the CLI (once for this module)."""
    root = tmp_path_factory.mktemp("hourly") / "store"
    assert (
        main(
            [
                "data",
                "import",
                str(hourly_csv),
                "--exchange",
                "binance",
                "--timeframe",
                "1h",
                "--root",
                str(root),
            ]
        )
        == 0
    )
    return OHLCVStore(root)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_then_load_gives_back_exactly_the_csv(hourly_store, hourly_csv):
    market = hourly_store.load("binance", None, "1h")
    reference = load_csv(hourly_csv)
    assert market.symbols == reference.symbols and market.index.equals(reference.index)
    for field in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(market.values(field), reference.values(field), equal_nan=True), field
    assert (
        hourly_store.file_metadata("binance", "1h", "BTC/USDT", 2020)["source"]
        == "csv:binance_spot_usdt_1h.csv.gz"
    )


def test_list_shows_symbols_ranges_and_rows(hourly_store, capsys):
    code, out, _ = _run(capsys, "data", "list", "--root", str(hourly_store.root))
    assert code == 0
    btc = next(line for line in out.splitlines() if "BTC/USDT" in line)
    for text in ("binance", "1h", "2017-08-17 04:00", "2023-01-10 16:00", "47,214"):
        assert text in btc
    assert "24 series, 810,833 candles" in out


def test_gaps_lists_the_binance_outages(hourly_store, capsys):
    code, out, _ = _run(
        capsys,
        "data",
        "gaps",
        "-e",
        "binance",
        "-t",
        "1h",
        "-s",
        "BTC/USDT",
        "--min-bars",
        "10",
        "--root",
        str(hourly_store.root),
    )
    assert code == 0
    assert "BTC/USDT  2018-02-08 01:00 .. 2018-02-09 09:00  33 bars" in out
    assert "3 gaps, 53 missing bars in 1 symbols" in out


def test_fetch_with_progress_then_resume(fake_binance, tmp_path, capsys):
    root = str(tmp_path / "s")
    code, out, err = _run(
        capsys,
        "data",
        "fetch",
        "--exchange",
        "binance",
        "--symbols",
        "BTC/USDT,ETH/USDT",
        "--timeframe",
        "1d",
        "--since",
        "2020-01-01",
        "--root",
        root,
    )
    assert code == 0, err
    assert "BTC/USDT" in out and "100.0%" in out  # the progress bar
    assert (
        "binance BTC/USDT 1d: 1105 candles (2020-01-01 00:00 .. 2023-01-09 00:00), 2 requests"
        in out
    )
    fake_binance.now_ms += 2 * 86_400_000
    code, out, _ = _run(
        capsys,
        "data",
        "fetch",
        "-e",
        "binance",
        "-s",
        "BTC/USDT",
        "-t",
        "1d",
        "--root",
        root,
        "--no-progress",
    )
    assert code == 0 and "binance BTC/USDT 1d: 0 candles (nothing new), 1 requests" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-e", "binanse", "-s", "BTC/USDT", "--since", "2020-01-01"],
            "error: unknown exchange id 'binanse'; did you mean 'binance'",
        ),
        (
            ["-e", "binance", "-s", "BTC/USDX", "--since", "2020-01-01"],
            "error: unknown symbol 'BTC/USDX' on binance; did you mean 'BTC/USDT'",
        ),
        (
            ["-e", "binance", "-s", "BTC/USDT", "-t", "7m", "--since", "2020-01-01"],
            "error: `timeframe` '7m' is not offered by binance; choose one of 1s, 1m, 3m, 5m",
        ),
        (
            ["-e", "binance", "-s", "BTC/USDT", "--since", "2023-01-01", "--until", "2022-01-01"],
            "error: `--since` 2023-01-01 must not be after `--until` 2022-01-01",
        ),
        (
            ["-e", "binance", "-s", "BTC/USDT"],
            "error: `--since` is required: the store has no 1d candles for BTC/USDT",
        ),
        (
            ["-e", "binance", "-s", "BTC/USDT", "--since", "last tuesday"],
            "error: `since` must be a date such as '2020-01-01'",
        ),
    ],
    ids=["exchange", "symbol", "timeframe", "since-after-until", "no-since", "bad-date"],
)
def test_fetch_bad_input_is_one_line_and_exit_2(fake_binance, tmp_path, capsys, args, message):
    code, _, err = _run(capsys, "data", "fetch", *args, "--root", str(tmp_path / "s"))
    assert code == 2
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_corrupt_parquet_is_named_with_the_repair_command(tmp_path, capsys):
    store = OHLCVStore(tmp_path / "s")
    from tests.datasets.candles import DAY, candles

    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 400, step_ms=DAY))
    store.write("binance", "1d", "ETH/USDT", candles("2021-01-01", 40, step_ms=DAY))  # stays
    bad = store.series_dir("binance", "1d", "BTC/USDT") / "years=2020-2029" / FILE_NAME
    bad.write_bytes(b"garbage")
    code, _, err = _run(capsys, "data", "verify", "--root", str(store.root))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(
        f"error: 1 problem(s) in the store {store.root}, first: {bad}: unreadable:"
    )
    assert err.strip().endswith("run `backtest data verify --repair`")
    code, _, err = _run(
        capsys, "data", "gaps", "-e", "binance", "-t", "1d", "--root", str(store.root)
    )
    assert (
        code == 2
        and err.startswith(f"error: corrupt store file {bad}:")
        and "backtest data verify --repair" in err
    )
    code, out, _ = _run(capsys, "data", "verify", "--repair", "--root", str(store.root))
    assert code == 0 and "moved to _quarantine/" in out
    assert _run(capsys, "data", "verify", "--root", str(store.root))[0] == 0


def test_import_checks_the_timeframe_it_is_given(daily_csv, tmp_path, capsys):
    code, _, err = _run(
        capsys,
        "data",
        "import",
        str(daily_csv),
        "-e",
        "binance",
        "-t",
        "1w",
        "--root",
        str(tmp_path),
    )
    assert code == 2 and list(tmp_path.iterdir()) == []
    assert err.strip() == (
        "error: binance_spot_usdt_1d.csv.gz: column 'timestamp_ms', row 3: 1602806400000 "
        "(2020-10-16 00:00) is not on the 1w grid of the earliest candle (2017-08-17 00:00); "
        "check `--timeframe`"
    )


def test_import_a_subset_and_list_an_empty_store(daily_csv, tmp_path, capsys):
    (tmp_path / "empty").mkdir()  # (a root that does not exist is an error: test_verify_store_root)
    code, out, _ = _run(capsys, "data", "list", "--root", str(tmp_path / "empty"))
    assert code == 0 and out.startswith("the store") and "is empty" in out
    code, out, _ = _run(
        capsys,
        "data",
        "import",
        str(daily_csv),
        "-e",
        "binance",
        "-s",
        "BTC/USDT,AAVE/USDT",
        "--root",
        str(tmp_path / "s"),
    )
    assert code == 0
    assert "imported 2789 1d candles (timeframe inferred from the rows) of 2 symbols" in out
    assert OHLCVStore(tmp_path / "s").symbols("binance", "1d") == ["AAVE/USDT", "BTC/USDT"]
