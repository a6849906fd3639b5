"""`backtest data import` on small hand-written CSVs: the timeframe rule, row order, duplicates, and
one-line errors that name the file, column and line (exit 2, store unchanged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.cli import main
from datasets import OHLCVStore
from tests.datasets.candles import DAY, HOUR, ms

HEADER = "symbol,timestamp_ms,open,high,low,close,volume"
T0 = ms("2021-01-01")


def _row(symbol: str = "BTC/USDT", ts: int = T0, close: object = 1.5, **cells: object) -> str:
    values = {"open": 1.0, "high": 2.0, "low": 0.5, "close": close, "volume": 10.0, **cells}
    return ",".join([symbol, str(ts), *(str(values[c]) for c in HEADER.split(",")[2:])])


def _daily(n: int, symbol: str = "BTC/USDT") -> list[str]:
    return [_row(symbol, T0 + k * DAY) for k in range(n)]


def _csv(tmp_path: Path, lines: list[str], name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _import(capsys, path: Path, root: Path, *options: str) -> tuple[int, str, str]:
    code = main(["data", "import", str(path), "-e", "binance", "--root", str(root), *options])
    out, err = capsys.readouterr()
    return code, out, err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def root(tmp_path: Path, capsys) -> Path:
    """A store that already holds ETH/USDT (so 'unchanged' is more than 'still empty')."""
    store = tmp_path / "store"
    good = _csv(tmp_path, [HEADER, *_daily(3, "ETH/USDT")], "good.csv")
    assert _import(capsys, good, store, "-t", "1d")[0] == 0
    return store


# --------------------------------------------------------------------------- the timeframe rule
def test_timeframe_given_is_used_not_inferred(tmp_path, capsys):
    # candles two days apart: inference would fail (2d is no timeframe it knows); -t 1d is honoured
    path = _csv(tmp_path, [HEADER, *(_row(ts=T0 + 2 * k * DAY) for k in range(4))])
    code, out, err = _import(capsys, path, tmp_path / "s", "-t", "1d")
    assert code == 0, err
    assert out.strip().startswith("imported 4 1d candles of 1 symbol from bad.csv into ")
    store = OHLCVStore(tmp_path / "s")
    assert store.symbols("binance", "1d") == ["BTC/USDT"]
    assert len(store.gaps("binance", "1d", ["BTC/USDT"])) == 3  # one missing day between each


def test_timeframe_is_inferred_when_absent(tmp_path, capsys):
    path = _csv(tmp_path, [HEADER, *(_row(ts=T0 + k * HOUR) for k in range(5))])
    code, out, _ = _import(capsys, path, tmp_path / "s")
    assert code == 0
    assert out.startswith("imported 5 1h candles (timeframe inferred from the rows) of 1 symbol")
    assert OHLCVStore(tmp_path / "s").symbols("binance", "1h") == ["BTC/USDT"]


def test_one_candle_per_symbol_imports_with_a_timeframe(tmp_path, capsys):
    path = _csv(tmp_path, [HEADER, _row("BTC/USDT"), _row("ETH/USDT")])
    code, out, _ = _import(capsys, path, tmp_path / "s", "-t", "1d")
    assert code == 0 and out.startswith("imported 2 1d candles of 2 symbols from bad.csv")
    market = OHLCVStore(tmp_path / "s").load("binance", None, "1d")
    assert market.symbols == ("BTC/USDT", "ETH/USDT") and len(market.index) == 1


def test_one_candle_per_symbol_without_a_timeframe_says_pass_it(tmp_path, capsys):
    path = _csv(tmp_path, [HEADER, _row("BTC/USDT"), _row("ETH/USDT")], "one.csv")
    code, _, err = _import(capsys, path, tmp_path / "s")
    assert code == 2 and not (tmp_path / "s").exists()
    assert err == (
        "error: one.csv has one candle per symbol, too few to infer the timeframe; "
        "pass it with --timeframe, e.g. --timeframe 1d\n"
    )


def test_unsorted_rows_are_stored_in_time_order(tmp_path, capsys):
    rows = _daily(6)
    shuffled = [rows[k] for k in (3, 0, 5, 1, 4, 2)]
    path = _csv(tmp_path, [HEADER, *shuffled])
    code, out, _ = _import(capsys, path, tmp_path / "s")  # inference sorts too
    assert code == 0 and out.startswith("imported 6 1d candles (timeframe inferred")
    frame = OHLCVStore(tmp_path / "s").read("binance", "1d", "BTC/USDT")
    assert frame["timestamp_ms"].tolist() == [T0 + k * DAY for k in range(6)]


# --------------------------------------------------------------------------- duplicates
def test_duplicates_are_counted_the_last_row_wins_and_the_count_is_what_is_stored(tmp_path, capsys):
    rows = [
        *_daily(4),
        _row(ts=T0, close=1.25),  # same bar as the first row, later in the file: wins
        _row(ts=T0 + DAY, close=1.0),
        _row(ts=T0 + DAY, close=1.75),  # and again: the last of three wins
        *_daily(2, "ETH/USDT"),
    ]
    path = _csv(tmp_path, [HEADER, *rows])
    code, out, _ = _import(capsys, path, tmp_path / "s", "-t", "1d")
    assert code == 0
    lines = out.splitlines()
    assert (
        lines[0]
        == "3 duplicate rows dropped (same symbol and timestamp; the last row in the file won)"
    )
    assert lines[1].startswith("imported 6 1d candles of 2 symbols from bad.csv")
    store = OHLCVStore(tmp_path / "s")
    held = {s: store.read("binance", "1d", s) for s in ("BTC/USDT", "ETH/USDT")}
    assert sum(len(frame) for frame in held.values()) == 6
    assert held["BTC/USDT"]["close"].tolist() == [1.25, 1.75, 1.5, 1.5]


def test_invalid_candles_are_stored_and_reported_with_their_line(tmp_path, capsys):
    path = _csv(tmp_path, [HEADER, *_daily(2), _row(ts=T0 + 2 * DAY, low=0.0)])
    code, out, _ = _import(capsys, path, tmp_path / "s", "-t", "1d")
    assert code == 0
    assert out.splitlines()[0] == (
        "1 invalid candle stored as received and kept out of panels when loaded; "
        "first: row 4 (BTC/USDT): price <= 0"
    )
    assert len(OHLCVStore(tmp_path / "s").read("binance", "1d", "BTC/USDT")) == 3


# --------------------------------------------------------------------------- bad input
def _seventeen_rows_then(bad: str) -> list[str]:
    return [HEADER, *_daily(16), bad]  # the bad row is line 18 (the header is line 1)


BAD_FILES = {
    "not-a-number": (
        _seventeen_rows_then(_row(ts=T0 + 16 * DAY, close="n/a")),
        "bad.csv: column 'close', row 18: 'n/a' is not a number",
    ),
    "empty-cell": (
        [HEADER, *_daily(2), _row(ts=T0 + 2 * DAY, volume="")],
        "bad.csv: column 'volume', row 4: '' is not a number",
    ),
    "blank-lines-count": (
        [HEADER, "", *_daily(2), "", _row(ts=T0 + 2 * DAY, high="x")],
        "bad.csv: column 'high', row 6: 'x' is not a number",
    ),
    "timestamp-text": (
        [HEADER, _row(), "BTC/USDT,2021-01-02,1,2,0.5,1.5,10"],
        "bad.csv: column 'timestamp_ms', row 3: '2021-01-02' is not an integer "
        "(UTC milliseconds of the bar open, e.g. 1609459200000)",
    ),
    "timestamp-seconds": (
        [HEADER, _row(ts=T0 // 1000), _row(ts=T0 // 1000 + 86_400)],
        "bad.csv: `timestamp_ms` must be UTC milliseconds of a bar in the years 1000-9999, not in "
        "1970-01-01..1970-04-26; got 1609459200 (year 1970): are these seconds, microseconds or "
        "nanoseconds?",
    ),
    "off-grid": (
        [HEADER, *_daily(2), _row(ts=T0 + 2 * DAY + HOUR)],
        "bad.csv: column 'timestamp_ms', row 4: 1609635600000 (2021-01-03 01:00) is not on the 1d "
        "grid of the earliest candle (2021-01-01 00:00); check `--timeframe`",
    ),
    "no-symbol": (
        [HEADER, _row(), _row(symbol="", ts=T0 + DAY)],
        "bad.csv: column 'symbol', row 3: '' is empty; every row needs a symbol",
    ),
    "short-row": (
        [HEADER, _row(), "BTC/USDT,1609545600000,1,2"],
        "bad.csv: row 3 has 4 fields, the header has 7",
    ),
    "missing-column": (
        ["symbol,timestamp_ms,open,high,low,volume", "BTC/USDT,1609459200000,1,2,0.5,10"],
        "bad.csv: missing column 'close'; found symbol, timestamp_ms, open, high, low, volume; "
        "the header must name symbol,timestamp_ms,open,high,low,close,volume",
    ),
    "empty-file": (
        [],
        "bad.csv is empty; it needs a header line such as "
        "symbol,timestamp_ms,open,high,low,close,volume",
    ),
    "header-only": ([HEADER], "bad.csv has a header but no rows; nothing to import"),
    "path-in-symbol": (
        [HEADER, _row("AAA/USDT"), _row("ZZZ/../etc")],
        "bad.csv: column 'symbol', row 3: `symbol` must be a market symbol such as 'BTC/USDT'; "
        "got 'ZZZ/../etc'",
    ),
}


@pytest.mark.parametrize(("lines", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_csv_is_one_line_exit_2_and_the_store_is_unchanged(
    tmp_path, root, capsys, lines, message
):
    before = _snapshot(root)
    code, out, err = _import(capsys, _csv(tmp_path, lines), root, "-t", "1d")
    assert (code, out, err) == (2, "", f"error: {message}\n")
    assert _snapshot(root) == before


def test_unknown_symbol_is_named(tmp_path, root, capsys):
    path = _csv(tmp_path, [HEADER, *_daily(2)])
    code, _, err = _import(capsys, path, root, "-t", "1d", "-s", "BTC/USDT,FOO/USDT")
    assert code == 2
    assert err == "error: bad.csv has no rows for symbol(s) FOO/USDT; check `--symbols`\n"


def test_missing_file_and_folder(tmp_path, capsys):
    code, _, err = _import(capsys, tmp_path / "nope.csv", tmp_path / "s", "-t", "1d")
    assert code == 2
    assert err.startswith(f"error: CSV file not found: '{tmp_path / 'nope.csv'}' (looked here")
    assert err.endswith("; check the path\n")
    code, _, err = _import(capsys, tmp_path, tmp_path / "s", "-t", "1d")
    assert (code, err) == (2, f"error: '{tmp_path}' is a folder; give the path of a CSV file\n")


def test_corrupt_gzip_is_named_without_errno(tmp_path, capsys):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(b"not gzip at all")
    code, _, err = _import(capsys, path, tmp_path / "s", "-t", "1d")
    assert (code, err) == (
        2,
        "error: cannot read bad.csv.gz: zlib inflate failed: incorrect header check\n",
    )


def test_os_errors_never_show_errno(tmp_path, capsys, monkeypatch):
    import pyarrow.csv as pacsv

    def refuse(*args, **kwargs):
        raise OSError("Failed to open local file 'bad.csv'. Detail: [errno 13] Permission denied")

    monkeypatch.setattr(pacsv, "read_csv", refuse)
    code, _, err = _import(capsys, _csv(tmp_path, [HEADER, _row()]), tmp_path / "s", "-t", "1d")
    assert (code, err) == (
        2,
        "error: cannot read bad.csv: Failed to open local file 'bad.csv'. Detail: Permission denied\n",
    )


def test_values_round_trip(tmp_path, capsys):
    path = _csv(tmp_path, [HEADER, _row(close=0.1), _row(ts=T0 + DAY, close=12345.678901)])
    assert _import(capsys, path, tmp_path / "s", "-t", "1d")[0] == 0
    frame = OHLCVStore(tmp_path / "s").read("binance", "1d", "BTC/USDT")
    assert np.array_equal(frame["close"].to_numpy(), [0.1, 12345.678901])
