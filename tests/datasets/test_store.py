"""OHLCVStore: layout, schema, exact round trip, incremental writes, atomicity, locking, loading."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datasets.store.format as store_format
from datasets import MarketData, OHLCVStore, load_csv
from datasets.errors import DataError, StoreCorruptError
from datasets.store import (
    FILE_NAME,
    SCHEMA_VERSION,
    SERIES_META,
    decode_symbol,
    encode_symbol,
    to_utc_ms,
)
from tests.datasets.candles import DAY, HOUR, MINUTE, candles, ms


# ---------------------------------------------------------------------------------- symbol names
@pytest.mark.parametrize(
    ("symbol", "name"),
    [
        ("BTC/USDT", "BTC_USDT"),
        ("BTC/USDT:USDT", "BTC_USDT%3AUSDT"),
        ("1000SHIB/USDT", "1000SHIB_USDT"),
        ("BTC/USD:BTC-240628", "BTC_USD%3ABTC-240628"),
        ("MY_TOKEN/USDT", "MY%5FTOKEN_USDT"),
        ("€URO/USDT", "%E2%82%ACURO_USDT"),
        ("BTC.X/USDT", "BTC%2EX_USDT"),
    ],
)
def test_symbol_encoding_is_path_safe_and_reversible(symbol, name):
    assert encode_symbol(symbol) == name
    assert decode_symbol(name) == symbol
    assert "/" not in name and not name.startswith(".")


@pytest.mark.parametrize(
    "bad", ["", "../etc/passwd", "/etc/passwd", "a/../../b", ".hidden", "a\\b", "x\x00y", "..", 5]
)
def test_symbol_encoding_rejects_traversal_and_junk(bad):
    with pytest.raises(DataError, match="`symbol` must be a market symbol"):
        encode_symbol(bad)


@pytest.mark.parametrize("bad", ["..", "a/b", "BTC%2FUSDT", "btc%3ausdt", "%FF", "BTC USDT", ""])
def test_decode_rejects_names_the_store_never_writes(bad):
    with pytest.raises(DataError, match="not a symbol directory"):
        decode_symbol(bad)


def test_store_rejects_path_like_exchange_ids(store):
    with pytest.raises(DataError, match="`exchange` must be an id"):
        store.write("../x", "1h", "BTC/USDT", candles("2024-01-01", 3))


def test_default_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ALPHAPULSE_DATA", str(tmp_path / "env"))
    assert OHLCVStore().root == tmp_path / "env"
    monkeypatch.delenv("ALPHAPULSE_DATA")
    assert OHLCVStore().root == Path("data")


def test_to_utc_ms():
    assert to_utc_ms("2024-01-01") == 1704067200000
    assert to_utc_ms(pd.Timestamp("2024-01-01 01:00", tz="Europe/Berlin")) == 1704067200000
    assert to_utc_ms(5) == 5
    with pytest.raises(DataError, match="`since` must be a date"):
        to_utc_ms("yesterday-ish", "since")


# ---------------------------------------------------------------------------------- files
def test_layout_schema_and_metadata(store):
    store.write("binance", "1h", "BTC/USDT", candles("2029-12-31 22:00", 5), source="ccxt:binance")
    series = store.root / "exchange=binance" / "timeframe=1h" / "symbol=BTC_USDT"
    files = sorted(p.relative_to(series).as_posix() for p in series.rglob("*.parquet"))
    assert files == [f"years=2020-2029/{FILE_NAME}", f"years=2030-2039/{FILE_NAME}"]
    schema = pq.read_schema(series / "years=2030-2039" / FILE_NAME)
    assert schema.field("timestamp_ms").type == pa.int64()
    assert all(
        pa.types.is_decimal(schema.field(c).type)
        for c in ("open", "high", "low", "close", "volume")
    )
    assert schema.field("close").type.scale == 2 and schema.field("volume").type.scale <= 4
    meta = store.file_metadata("binance", "1h", "BTC/USDT", 2031)
    assert meta["schema_version"] == SCHEMA_VERSION and meta["source"] == "ccxt:binance"
    assert meta["rows"] == 3 and meta["symbol"] == "BTC/USDT" and meta["invalid"] == 0
    assert pd.Timestamp(meta["fetched_at"]).tzinfo is not None
    # a generic Parquet reader sees exact decimals, not lossy floats
    assert (
        str(pq.read_table(series / "years=2030-2039" / FILE_NAME)["open"][0].as_py()).count(".")
        == 1
    )


@pytest.mark.parametrize(
    ("timeframe", "step_ms", "folders"),
    [
        ("1m", 60_000, ["year=2023", "year=2024"]),
        ("15m", 15 * 60_000, ["years=2022-2023", "years=2024-2025"]),
        ("30m", 30 * 60_000, ["years=2020-2024"]),
        ("4h", 4 * HOUR, ["years=2020-2029"]),
        ("1d", DAY, ["years=2020-2029"]),
    ],
)
def test_partition_span_follows_the_timeframe(store, timeframe, step_ms, folders):
    """A partition spans the longest of 10/5/2/1 years that keeps it under ~100k candles."""
    frame = candles("2023-12-31 23:00", 180, step_ms=step_ms)
    assert store.write("binance", timeframe, "BTC/USDT", frame) == len(folders)
    series = store.series_dir("binance", timeframe, "BTC/USDT")
    assert sorted(p.parent.name for p in series.rglob(FILE_NAME)) == folders
    back = store.read("binance", timeframe, "BTC/USDT")
    assert back["timestamp_ms"].tolist() == frame["timestamp_ms"].tolist()


@pytest.mark.parametrize(
    ("scale", "unit"), [(1 / 1000, "seconds"), (1000, "microseconds"), (1_000_000, "nanoseconds")]
)
def test_timestamps_in_another_unit_are_refused(store, scale, unit):
    frame = candles("2024-01-01", 3)
    frame["timestamp_ms"] = (frame["timestamp_ms"] * scale).astype(np.int64)
    with pytest.raises(
        DataError,
        match=r"`timestamp_ms` must be UTC milliseconds of a bar in the years 1000-9999, not "
        r"in 1970-01-01..1970-04-26; got .*: are these seconds, microseconds or nanoseconds\?",
    ):
        store.write("binance", "1h", "BTC/USDT", frame)
    assert not store.root.exists() or not list(store.root.rglob(FILE_NAME))


def test_history_before_1970_is_kept(store):
    old = candles("1955-01-03", 400, step_ms=DAY)
    store.write("nyse", "1d", "DJI/USD", old)
    assert (
        store.read("nyse", "1d", "DJI/USD")["timestamp_ms"].tolist() == old["timestamp_ms"].tolist()
    )
    market = store.load("nyse", ["DJI/USD"], "1d")
    assert market.index[0] == pd.Timestamp("1955-01-03", tz="UTC") and market.n_bars == 400


def test_coverage_is_what_was_written_or_confirmed(store):
    """`covered` holds the span of each write and each confirmed range, as whole bars; the hole
    between two separately written windows is missing, and so is a quarantined range."""
    store.write("binance", "1h", "BTC/USDT", candles("2024-06-01", 24))
    store.write("binance", "1h", "BTC/USDT", candles("2024-01-01", 10))
    assert store.covered("binance", "1h", "BTC/USDT") == [
        (ms("2024-01-01"), ms("2024-01-01 10:00") - 1),
        (ms("2024-06-01"), ms("2024-06-02") - 1),
    ]
    window = (ms("2024-01-01"), ms("2024-06-01 23:00"))
    assert store.missing_ranges("binance", "1h", "BTC/USDT", *window) == [
        (ms("2024-01-01 10:00"), ms("2024-05-31 23:00"))
    ]
    store.cover("binance", "1h", "BTC/USDT", ms("2024-03-01"), ms("2024-05-31 23:00"))
    assert store.missing_ranges("binance", "1h", "BTC/USDT", *window) == [
        (ms("2024-01-01 10:00"), ms("2024-02-29 23:00"))
    ]
    store.cover("binance", "1h", "BTC/USDT", ms("2024-01-01 10:00"), ms("2024-02-29 23:00"))
    assert store.covered("binance", "1h", "BTC/USDT") == [(ms("2024-01-01"), ms("2024-06-02") - 1)]
    assert store.missing_ranges("binance", "1h", "BTC/USDT", *window) == []
    store.uncover("binance", "1h", "BTC/USDT", ms("2024-02-01"), ms("2024-03-01") - 1)
    assert store.missing_ranges("binance", "1h", "BTC/USDT", *window) == [
        (ms("2024-02-01"), ms("2024-02-29 23:00"))
    ]


def test_a_partition_of_another_layout_is_an_error_naming_the_repair(store):
    store.write("binance", "1h", "BTC/USDT", candles("2024-01-01", 10))
    series = store.series_dir("binance", "1h", "BTC/USDT")
    (series / "years=2020-2029").rename(
        series / "year=2024"
    )  # the yearly layout of the first release
    with pytest.raises(
        StoreCorruptError,
        match=r"store partition .*year=2024 does not follow the 1h layout \(10-year partitions "
        r"such as years=2020-2029\); run `backtest data verify --repair`",
    ):
        store.load("binance", ["BTC/USDT"], "1h")


def test_values_round_trip_bit_for_bit_including_float_fallback(store):
    frame = candles("2024-03-01", 50)
    frame.loc[3, "volume"] = 1 / 3  # no decimal scale reproduces it -> float64 column
    frame.loc[4, "close"] = 0.1 + 0.2  # 0.30000000000000004
    frame.loc[5, "volume"] = np.nan  # missing volume stays NaN
    store.write("binance", "1h", "ETH/USDT", frame)
    back = store.read("binance", "1h", "ETH/USDT")
    for col in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(back[col].to_numpy(), frame[col].to_numpy(), equal_nan=True), col
    schema = pq.read_schema(next((store.root).rglob("*.parquet")))
    assert schema.field("volume").type == pa.float64() and schema.field("open").type.scale == 2


def test_write_dedupes_sorts_and_new_rows_win(store):
    first = candles("2024-01-01", 10)
    store.write("binance", "1h", "BTC/USDT", first)
    update = first.iloc[[7, 2]].copy()
    update["close"] = update["high"]  # corrected candles arrive again, out of order
    store.write(
        "binance", "1h", "BTC/USDT", pd.concat([update, candles("2024-01-01 10:00", 2, seed=1)])
    )
    back = store.read("binance", "1h", "BTC/USDT")
    assert back["timestamp_ms"].is_monotonic_increasing and back["timestamp_ms"].is_unique
    assert len(back) == 12
    assert (
        back.loc[7, "close"] == first.loc[7, "high"]
        and back.loc[2, "close"] == first.loc[2, "high"]
    )


def test_incremental_write_rewrites_only_the_touched_partition(store):
    store.write(
        "binance", "1m", "BTC/USDT", candles("2021-12-31 23:00", 3 * 24 * 60, step_ms=MINUTE)
    )
    series = store.series_dir("binance", "1m", "BTC/USDT")
    before = {
        p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in series.rglob(FILE_NAME)
    }
    assert sorted(before) == ["year=2021", "year=2022"]
    written = store.write("binance", "1m", "BTC/USDT", candles("2022-01-03", 5, step_ms=MINUTE))
    after = {
        p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in series.rglob(FILE_NAME)
    }
    assert written == 1
    assert after["year=2021"] == before["year=2021"] and after["year=2022"] != before["year=2022"]
    # hourly: the decade partition takes the new candles; the next decade is a new file
    store.write("binance", "1h", "BTC/USDT", candles("2029-12-30", 10))
    hourly = store.series_dir("binance", "1h", "BTC/USDT") / "years=2020-2029" / FILE_NAME
    stamp = hourly.stat().st_ino, hourly.stat().st_mtime_ns
    assert store.write("binance", "1h", "BTC/USDT", candles("2030-01-01", 10)) == 1
    assert (hourly.stat().st_ino, hourly.stat().st_mtime_ns) == stamp


def test_failed_write_leaves_the_old_file_and_no_temp(store, monkeypatch):
    store.write("binance", "1h", "BTC/USDT", candles("2024-01-01", 10))
    path = next(store.root.rglob(FILE_NAME))
    original = path.read_bytes()

    def broken(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(store_format.pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        store.write("binance", "1h", "BTC/USDT", candles("2024-01-01 10:00", 5))
    assert path.read_bytes() == original
    assert [p.name for p in path.parent.iterdir()] == [FILE_NAME]


def _write_slice(root: str, offset: int) -> None:
    store = OHLCVStore(root)
    frame = candles("2024-01-01", 400, seed=9)
    for k in range(offset, 400, 40):  # many small writes into the same partition
        store.write("binance", "1h", "BTC/USDT", frame.iloc[k : k + 20])


def test_concurrent_writers_to_one_partition_lose_nothing(store):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_slice, args=(str(store.root), off)) for off in (0, 20)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    back = store.read("binance", "1h", "BTC/USDT")
    assert len(back) == 400 and back["timestamp_ms"].is_unique


# ---------------------------------------------------------------------------------- catalogue
def test_symbols_list_and_timestamps(store):
    store.write("binance", "1h", "BTC/USDT", candles("2023-12-31", 48))
    store.write("binance", "1h", "ETH/USDT", candles("2024-01-01", 10))
    store.write("binance", "1d", "BTC/USDT", candles("2024-01-01", 10, step_ms=DAY))
    assert store.symbols("binance", "1h") == ["BTC/USDT", "ETH/USDT"]
    assert store.last_timestamp("binance", "1h", "BTC/USDT") == ms("2024-01-01 23:00")
    assert store.first_timestamp("binance", "1h", "BTC/USDT") == ms("2023-12-31")
    assert store.last_timestamp("binance", "1h", "XRP/USDT") is None
    listing = store.inventory()
    assert list(listing.columns) == [
        "exchange",
        "timeframe",
        "symbol",
        "first",
        "last",
        "rows",
        "files",
        "bytes",
    ]
    btc = listing[(listing.timeframe == "1h") & (listing.symbol == "BTC/USDT")].iloc[0]
    assert (btc.rows, btc.files) == (48, 1) and btc["last"] == pd.Timestamp(
        "2024-01-01 23:00", tz="UTC"
    )
    assert sorted(listing.timeframe.unique()) == ["1d", "1h"]


def test_a_range_without_candles_is_held_without_guessing_the_grid(store):
    """Nothing stored yet and nothing at the exchange in [lo, hi] (before a listing): the claim
    stays within [lo, hi], so the listing bar after it is still missing."""
    store.cover("binance", "1h", "SOL/USDT", ms("2020-08-11 00:30"), ms("2020-08-11 03:45"))
    store.write("binance", "1h", "SOL/USDT", candles("2020-08-11 06:00", 3))
    assert store.missing_ranges(
        "binance", "1h", "SOL/USDT", ms("2020-08-11 01:00"), ms("2020-08-11 08:00")
    ) == [(ms("2020-08-11 04:00"), ms("2020-08-11 05:00"))]


def test_missing_ranges_head_holes_tail_and_legacy_hints(store):
    store.write("binance", "1d", "BTC/USDT", candles("2008-06-01", 30, step_ms=DAY))
    store.write("binance", "1d", "BTC/USDT", candles("2022-06-01", 30, step_ms=DAY))
    got = store.missing_ranges("binance", "1d", "BTC/USDT", ms("2008-01-01"), ms("2023-01-01"))
    assert got == [
        (ms("2008-01-01"), ms("2008-05-31")),
        (ms("2008-07-01"), ms("2022-05-31")),  # between two windows written apart
        (ms("2022-07-01"), ms("2023-01-01")),
    ]
    assert store.missing_ranges("binance", "1d", "XRP/USDT", 5, 9) == [(5, 9)]
    # a store written before coverage was recorded: its span (widened by the old hints) minus
    # whole years no partition holds
    hints = store.series_dir("binance", "1d", "BTC/USDT") / SERIES_META
    legacy = {"history_start_ms": ms("2007-01-01"), "fetched_until_ms": ms("2023-01-01 12:00")}
    hints.write_text(json.dumps(legacy))
    got = store.missing_ranges("binance", "1d", "BTC/USDT", ms("2007-01-01"), ms("2023-01-02"))
    assert got == [(ms("2010-01-01"), ms("2019-12-31")), (ms("2023-01-02"), ms("2023-01-02"))]
    # the first write after the upgrade keeps what the old hints said
    store.write("binance", "1d", "BTC/USDT", candles("2023-01-02", 1, step_ms=DAY))
    assert store.missing_ranges(
        "binance", "1d", "BTC/USDT", ms("2007-01-01"), ms("2023-01-02")
    ) == [(ms("2010-01-01"), ms("2019-12-31"))]


# ---------------------------------------------------------------------------------- loading
def test_load_builds_the_aligned_panel(store):
    a, b = candles("2024-01-01", 48), candles("2024-01-02", 24, seed=2)
    b = b.drop(index=[5, 6])  # an outage
    store.write("binance", "1h", "BTC/USDT", a)
    store.write("binance", "1h", "ETH/USDT", b)
    market = store.load("binance", ["ETH/USDT", "BTC/USDT"], "1h")
    expected = MarketData.from_long(
        pd.concat([a.assign(symbol="BTC/USDT"), b.assign(symbol="ETH/USDT")]),
        "1h",
        symbols=["ETH/USDT", "BTC/USDT"],
    )
    assert market.symbols == ("ETH/USDT", "BTC/USDT") and market.source == "store:binance"
    assert market.index.equals(expected.index)
    for field in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(market.values(field), expected.values(field), equal_nan=True)
    assert np.isnan(market.close["ETH/USDT"].iloc[:24]).all()  # not listed yet
    assert market.notes == ("gap policy: leave NaN",)
    sub = store.load("binance", "BTC/USDT", "1h", "2024-01-01 05:00", "2024-01-01 09:00")
    assert sub.n_bars == 5 and sub.index[0] == pd.Timestamp("2024-01-01 05:00", tz="UTC")


def test_load_gap_policy_is_recorded_and_flagged(store):
    frame = candles("2024-01-01", 30).drop(index=[10, 11, 20, 21, 22, 23])
    store.write("binance", "1h", "BTC/USDT", frame)
    market = store.load("binance", ["BTC/USDT"], "1h", max_fill_bars=2)
    assert int(market.filled.sum()) == 2 and market.filled[10:12, 0].all()
    assert np.isnan(market.close.iloc[20:24, 0]).all()
    assert market.notes[-1].startswith("gap policy: forward-fill up to 2 bars (2 cells filled")
    gaps = store.gaps("binance", "1h")
    assert gaps[["n_bars"]].to_numpy().ravel().tolist() == [2, 4]
    assert gaps.iloc[1]["start"] == pd.Timestamp("2024-01-01 20:00", tz="UTC")


def test_invalid_candles_are_stored_reported_and_kept_out(store):
    frame = candles("2024-01-01", 10)
    frame.loc[4, "high"] = frame.loc[4, "close"] - 1  # high below close
    frame.loc[6, "volume"] = -1.0
    store.write("binance", "1h", "BTC/USDT", frame)
    assert store.file_metadata("binance", "1h", "BTC/USDT", 2024)["invalid"] == 2
    assert len(store.read("binance", "1h", "BTC/USDT")) == 10  # stored as received
    market = store.load("binance", ["BTC/USDT"], "1h")
    assert np.isnan(market.close.iloc[[4, 6], 0]).all() and np.isfinite(market.close.iloc[5, 0])
    assert "2 invalid candles kept out of the panel (BTC/USDT: 2;" in market.notes[0]
    assert "high < max(open, close)" in market.notes[0] and "negative volume" in market.notes[0]


def test_an_off_grid_candle_is_refused_with_the_reason(store):
    """The store writes candles as given; a panel from a candle at hh:30 of an hourly series would
    be wrong, so the fast path refuses and the general builder says why."""
    frame = candles("2024-01-01", 10)
    frame.loc[5, "timestamp_ms"] += 30 * 60_000
    store.write("binance", "1h", "BTC/USDT", frame)
    with pytest.raises(DataError, match="not aligned to the `1h` grid"):
        store.load("binance", ["BTC/USDT"], "1h")


def test_load_errors_are_one_clear_line(store):
    store.write("binance", "1h", "BTC/USDT", candles("2024-01-01", 10))
    with pytest.raises(
        DataError,
        match=r"no 1h candles for BTC/USDC .*close matches: BTC/USDT .*backtest data fetch",
    ):
        store.load("binance", ["BTC/USDC"], "1h")
    with pytest.raises(DataError, match=r"`start` \(2024-02-01 00:00\) must not be after `end`"):
        store.load("binance", ["BTC/USDT"], "1h", "2024-02-01", "2024-01-01")
    with pytest.raises(DataError, match="no stored 1h candles for BTC/USDT between 2025"):
        store.load("binance", ["BTC/USDT"], "1h", "2025-01-01")
    with pytest.raises(DataError, match="distinct symbols"):
        store.load("binance", ["BTC/USDT", "BTC/USDT"], "1h")


def test_corrupt_file_names_itself_and_the_repair(store):
    store.write("binance", "1h", "BTC/USDT", candles("2024-01-01", 10))
    path = next(store.root.rglob(FILE_NAME))
    path.write_bytes(b"not parquet at all")
    with pytest.raises(
        StoreCorruptError,
        match=r"corrupt store file .*years=2020-2029/data.parquet: .*backtest data verify --repair",
    ):
        store.load("binance", ["BTC/USDT"], "1h")


def test_wrong_column_type_is_corrupt(store):
    path = store.series_dir("binance", "1h", "BTC/USDT") / "years=2020-2029" / FILE_NAME
    path.parent.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "timestamp_ms": pa.array([1], pa.int64()),
                **{c: pa.array(["x"]) for c in ("open", "high", "low", "close", "volume")},
            }
        ),
        path,
    )
    with pytest.raises(StoreCorruptError, match="column open has type string"):
        store.read("binance", "1h", "BTC/USDT")


@pytest.mark.shared
def test_import_hourly_csv_then_load_gives_back_the_same_values(hourly_csv, tmp_path):
    """The must-show: every value of the real 24-pair hourly file survives the store exactly."""
    from datasets.csvimport import read_long_csv

    store = OHLCVStore(tmp_path / "store")
    frame = read_long_csv(hourly_csv)
    for symbol, rows in frame.groupby("symbol"):
        store.write("binance", "1h", symbol, rows, source="csv:test")
    market = store.load("binance", None, "1h")
    reference = load_csv(hourly_csv)
    assert market.symbols == reference.symbols and len(market.symbols) == 24
    assert market.index.equals(reference.index)
    for field in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(market.values(field), reference.values(field), equal_nan=True), field
    assert int(np.isfinite(market.values("close")).sum()) == len(frame) == 810_833
    # bounds across the 2010s/2020s partition boundary give the same window of the same panel
    window = store.load(
        "binance", ["ETH/USDT", "SOL/USDT"], "1h", "2019-12-30 07:00", "2020-08-12 00:00"
    )
    expected = reference.select(["ETH/USDT", "SOL/USDT"]).between(
        "2019-12-30 07:00", "2020-08-12 00:00"
    )
    assert window.index.equals(expected.index)
    for field in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(window.values(field), expected.values(field), equal_nan=True), field
    # the README's largest BTC outage, from the store's own gap listing
    gaps = store.gaps("binance", "1h", ["BTC/USDT"])
    assert int(gaps["n_bars"].sum()) == 127 and int(gaps["n_bars"].max()) == 33
    size = sum(p.stat().st_size for p in store.root.rglob("*.parquet"))
    assert size < os.path.getsize(hourly_csv)
    assert (
        json.loads(pq.read_schema(next(store.root.rglob(FILE_NAME))).metadata[b"alphapulse"])[
            "source"
        ]
        == "csv:test"
    )
