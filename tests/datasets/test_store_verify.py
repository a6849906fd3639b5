"""`OHLCVStore.verify`: finds unreadable or inconsistent files and repairs them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets.errors import StoreCorruptError
from datasets.store import FILE_NAME, SERIES_META
from datasets.store.format import (
    atomic_write,
    make_table,
    partition_name,
    partition_years,
    read_file,
    years_of,
)
from tests.datasets.candles import DAY, candles, ms


def _file(store, year: int, symbol: str = "BTC/USDT", timeframe: str = "1d"):
    """The partition file holding ``year``."""
    span = partition_years(timeframe)
    folder = partition_name(year - year % span, span)
    return store.series_dir("binance", timeframe, symbol) / folder / FILE_NAME


def _raw_write(path, frame) -> None:
    """A file written behind the store's back (no sorting, no metadata)."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def test_clean_store_has_no_findings(store):
    assert store.verify().empty
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 800, step_ms=DAY))
    assert store.verify().empty


def test_unreadable_file_is_quarantined_and_refetch_is_planned(store):
    # daily bars 2009-12 .. 2020-01: partitions 2000-2009, 2010-2019, 2020-2029
    store.write("binance", "1d", "BTC/USDT", candles("2009-12-01", 3714, step_ms=DAY))
    bad = _file(store, 2015)
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    found = store.verify()
    assert len(found) == 1 and found.iloc[0]["path"] == str(bad)
    assert found.iloc[0]["problem"].startswith("unreadable:")
    assert "--repair" in found.iloc[0]["action"]
    repaired = store.verify(repair=True)
    assert repaired.iloc[0]["action"].startswith("moved to _quarantine/")
    assert (
        "backtest data fetch --exchange binance --symbols BTC/USDT --timeframe 1d"
        in repaired.iloc[0]["action"]
    )
    assert not bad.exists() and len(list((store.root / "_quarantine").rglob(FILE_NAME))) == 1
    assert store.verify().empty
    # the quarantined partition is what the next fetch asks for
    assert store.missing_ranges(
        "binance", "1d", "BTC/USDT", ms("2009-01-01"), ms("2020-01-31")
    ) == [
        (ms("2009-01-01"), ms("2009-11-30")),
        (ms("2010-01-01"), ms("2019-12-31")),
    ]


def test_unsorted_duplicated_and_misplaced_rows_are_rewritten(store):
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 365, step_ms=DAY))
    frame = store.read("binance", "1d", "BTC/USDT")
    stray = candles("2030-01-01", 2, step_ms=DAY, seed=5)
    messy = pd.concat([frame.iloc[::-1], frame.iloc[[10]], stray], ignore_index=True)
    _raw_write(_file(store, 2021), messy)
    found = store.verify()
    assert found.iloc[0]["problem"] == (
        "timestamps unsorted or duplicated; 2 rows belong to other partitions; "
        "file metadata disagrees with the data"
    )
    assert store.verify(repair=True).iloc[0]["action"] == "rewritten"
    assert store.verify().empty
    back = store.read("binance", "1d", "BTC/USDT")
    assert len(back) == 367 and back["timestamp_ms"].is_monotonic_increasing
    assert _file(store, 2030).exists()


def test_partitions_of_another_layout_are_moved_into_this_one(store):
    """A store written with yearly hourly partitions (the first release) migrates on repair."""
    frame = candles("2023-12-31 12:00", 48)
    store.write("binance", "1h", "BTC/USDT", frame, source="ccxt:binance")
    series = store.series_dir("binance", "1h", "BTC/USDT")
    ts, values, meta = read_file(_file(store, 2023, timeframe="1h"))
    for year in (2023, 2024):
        sel = years_of(ts) == year
        legacy = make_table(
            ts[sel], {c: v[sel] for c, v in values.items()}, {**meta, "rows": int(sel.sum())}
        )
        atomic_write(legacy, series / f"year={year}" / FILE_NAME)
    (series / "years=2020-2029" / FILE_NAME).unlink()
    (series / "years=2020-2029").rmdir()
    found = store.verify()
    assert found["path"].tolist() == [str(series / f"year={y}" / FILE_NAME) for y in (2023, 2024)]
    assert set(found["problem"]) == {
        "partition folder does not follow the 1h layout (10-year partitions such as years=2020-2029)"
    }
    assert (store.verify(repair=True)["action"] == "rewritten").all()
    assert store.verify().empty
    assert sorted(p.name for p in series.iterdir() if p.is_dir()) == ["years=2020-2029"]
    back = store.read("binance", "1h", "BTC/USDT")
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True))
    assert store.file_metadata("binance", "1h", "BTC/USDT", 2024)["source"] == "ccxt:binance"


def test_leftover_temp_files_are_deleted(store):
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 10, step_ms=DAY))
    tmp = _file(store, 2021).with_name(".data.parquet.123.abcd1234.tmp")
    tmp.write_bytes(b"PAR1 half")
    found = store.verify()
    assert found["problem"].tolist() == ["temporary file left by an interrupted write"]
    assert store.verify(repair=True)["action"].tolist() == ["deleted"]
    assert not tmp.exists() and store.verify().empty


def test_unreadable_hints_and_foreign_entries(store):
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 10, step_ms=DAY))
    series = store.series_dir("binance", "1d", "BTC/USDT")
    (series / SERIES_META).write_text("{not json")
    (series.parent / "symbol=..").mkdir()
    (_file(store, 2021).parent / "notes.txt").write_text("hello")
    found = store.verify(repair=True).set_index("problem")["action"].to_dict()
    assert found == {
        "unreadable coverage": "reset: the next fetch rechecks every bar it asks for",
        "not a symbol partition written by the store": "left alone",
        "unexpected file in a partition": "left alone",
    }


@pytest.mark.parametrize("column_type", [pa.float64(), pa.string()])
def test_wrong_schema_is_unreadable(store, column_type):
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 10, step_ms=DAY))
    path = _file(store, 2021)
    table = pq.read_table(path)
    table = table.set_column(0, "timestamp_ms", table["timestamp_ms"].cast(column_type))
    pq.write_table(table, path)
    found = store.verify()
    assert found["problem"].tolist() == [f"unreadable: column timestamp_ms has type {column_type}"]


def _legacy_hourly(store, frame) -> Path:
    """Write ``frame`` (hourly) as the first release did: one ``year=YYYY`` folder per year."""
    series = store.series_dir("binance", "1h", "BTC/USDT")
    ts = frame["timestamp_ms"].to_numpy()
    values = {c: frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
    for year in np.unique(years_of(ts)):
        sel = years_of(ts) == year
        meta = {"schema_version": 1, "symbol": "BTC/USDT", "rows": int(sel.sum()), "source": "old"}
        table = make_table(ts[sel], {c: v[sel] for c, v in values.items()}, meta)
        atomic_write(table, series / f"year={year}" / FILE_NAME)
    return series


def test_migration_keeps_newer_rows_and_survives_a_corrupt_target(store):
    """Rows already in a new-layout partition win over the old layout's copy of the same bar; a
    corrupt new-layout file is quarantined first, and no legacy row is lost on the way."""
    old = candles("2023-12-31 12:00", 48)
    series = _legacy_hourly(store, old)
    newer = old.iloc[20:30].copy()
    newer["close"] = newer["high"]  # a later, corrected fetch of 10 bars
    table = make_table(
        newer["timestamp_ms"].to_numpy(),
        {c: newer[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        {"schema_version": 1, "symbol": "BTC/USDT", "rows": 10, "source": "ccxt:binance"},
    )
    atomic_write(table, series / "years=2020-2029" / FILE_NAME)
    with pytest.raises(StoreCorruptError, match="does not follow the 1h layout"):
        store.write("binance", "1h", "BTC/USDT", candles("2024-02-01", 3))  # refused, not mixed
    assert store.verify(repair=True)["action"].tolist() == ["rewritten", "rewritten"]
    back = store.read("binance", "1h", "BTC/USDT")
    assert back["timestamp_ms"].tolist() == old["timestamp_ms"].tolist()
    assert back["close"].tolist()[20:30] == newer["close"].tolist()  # the newer rows stayed
    assert back["close"].tolist()[:20] == old["close"].tolist()[:20]

    # again, with the new-layout file corrupt: it is quarantined, the legacy rows all move in
    store2 = type(store)(store.root.parent / "second")
    series = _legacy_hourly(store2, old)
    target = series / "years=2020-2029" / FILE_NAME
    target.parent.mkdir()
    target.write_bytes(b"PAR1 garbage")
    found = store2.verify(repair=True)
    assert found["action"].str.startswith("moved to _quarantine/").sum() == 1
    assert (found["action"] == "rewritten").sum() == 2
    assert store2.verify().empty
    assert store2.read("binance", "1h", "BTC/USDT")["timestamp_ms"].tolist() == (
        old["timestamp_ms"].tolist()
    )


def test_unreadable_files_are_quarantined_before_rows_move(store):
    """Stray rows of a partition whose own file is corrupt: the repair quarantines the corrupt
    file first, then moves the strays into a new one (it neither crashes nor loses them)."""
    store.write("binance", "1d", "BTC/USDT", candles("2015-01-01", 30, step_ms=DAY))
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 30, step_ms=DAY))
    home = store.read("binance", "1d", "BTC/USDT", end="2019-12-31")
    stray = candles("2021-06-01", 3, step_ms=DAY, seed=4)
    _raw_write(_file(store, 2015), pd.concat([home, stray], ignore_index=True))
    _file(store, 2021).write_bytes(b"PAR1 garbage")
    found = store.verify(repair=True)
    assert sorted(found["action"].str.split("/").str[0]) == ["moved to _quarantine", "rewritten"]
    assert store.verify().empty
    back = store.read("binance", "1d", "BTC/USDT")
    assert back["timestamp_ms"].tolist() == [*home["timestamp_ms"], *stray["timestamp_ms"]]
    assert store.missing_ranges(
        "binance", "1d", "BTC/USDT", ms("2021-01-01"), ms("2021-05-31")
    ) == [(ms("2021-01-01"), ms("2021-05-31"))]


def test_repair_of_a_first_release_store_keeps_its_year_holes(store):
    """Yearly hourly folders 2019 and 2021 (2020 was never fetched): moving them into one 10-year
    partition must not make 2020 look held."""
    frame = pd.concat([candles("2019-06-01", 200), candles("2021-03-01", 200, seed=1)])
    series = _legacy_hourly(store, frame.reset_index(drop=True))
    assert not (series / SERIES_META).exists()
    store.verify(repair=True)
    assert store.verify().empty
    assert store.missing_ranges(
        "binance", "1h", "BTC/USDT", ms("2019-06-01"), ms("2021-03-01")
    ) == [(ms("2020-01-01"), ms("2020-12-31 23:00"))]


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"covered": [[1, 2, 3]]}',
        '{"covered": 5}',
        '{"covered": [[0, Infinity]]}',
        '{"covered": [[true, 1700000000000]]}',
        '{"covered": [[5, 1]]}',
        '["12"]',
        '{"history_start_ms": "x"}',
        '{"fetched_until_ms": null}',
    ],
)
def test_an_unreadable_coverage_holds_nothing_until_reset(store, text):
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 10, step_ms=DAY))
    (store.series_dir("binance", "1d", "BTC/USDT") / SERIES_META).write_text(text)
    window = (ms("2021-01-01"), ms("2021-01-10"))
    assert store.missing_ranges("binance", "1d", "BTC/USDT", *window) == [window]  # recheck all
    assert store.verify()["problem"].tolist() == ["unreadable coverage"]
    store.verify(repair=True)
    assert store.verify().empty
    assert store.missing_ranges("binance", "1d", "BTC/USDT", *window) == [window]


def test_a_folder_where_the_coverage_file_belongs_is_reported_and_left(store):
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 10, step_ms=DAY))
    hints = store.series_dir("binance", "1d", "BTC/USDT") / SERIES_META
    hints.unlink()
    hints.mkdir()
    expected = [(str(hints), "a folder where the coverage file belongs", "left alone")]
    assert [tuple(r) for r in store.verify(repair=True).to_numpy()] == expected
    window = (ms("2021-01-01"), ms("2021-01-10"))
    assert store.missing_ranges("binance", "1d", "BTC/USDT", *window) == [window]
