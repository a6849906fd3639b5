"""`OHLCVStore.verify`: finds unreadable or inconsistent files and repairs them."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets.store import FILE_NAME, SERIES_META
from tests.datasets.candles import DAY, candles, ms


def _file(store, year: int, symbol: str = "BTC/USDT", timeframe: str = "1d"):
    return store.series_dir("binance", timeframe, symbol) / f"year={year}" / FILE_NAME


def _raw_write(path, frame) -> None:
    """A file written behind the store's back (no sorting, no metadata)."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def test_clean_store_has_no_findings(store):
    assert store.verify().empty
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 800, step_ms=DAY))
    assert store.verify().empty


def test_unreadable_file_is_quarantined_and_refetch_is_planned(store):
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 3 * 365, step_ms=DAY))
    store.update_coverage("binance", "1d", "BTC/USDT", history_start_ms=ms("2020-01-01"))
    bad = _file(store, 2022)
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
    # the missing year is what the next fetch asks for (coverage hints were reset)
    assert store.missing_ranges(
        "binance", "1d", "BTC/USDT", ms("2020-01-01"), ms("2023-12-31")
    ) == [(ms("2020-01-01"), ms("2020-12-31")), (ms("2022-01-01"), ms("2022-12-31 23:59:59.999"))]


def test_unsorted_duplicated_and_misplaced_rows_are_rewritten(store):
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 365, step_ms=DAY))
    frame = store.read("binance", "1d", "BTC/USDT")
    stray = candles("2022-01-01", 2, step_ms=DAY, seed=5)
    messy = pd.concat([frame.iloc[::-1], frame.iloc[[10]], stray], ignore_index=True)
    _raw_write(_file(store, 2021), messy)
    found = store.verify()
    assert found.iloc[0]["problem"] == (
        "timestamps unsorted or duplicated; 2 rows belong to other years; "
        "file metadata disagrees with the data"
    )
    assert store.verify(repair=True).iloc[0]["action"] == "rewritten"
    assert store.verify().empty
    back = store.read("binance", "1d", "BTC/USDT")
    assert len(back) == 367 and back["timestamp_ms"].is_monotonic_increasing
    assert _file(store, 2022).exists()


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
    (series / "year=2021" / "notes.txt").write_text("hello")
    found = store.verify(repair=True).set_index("problem")["action"].to_dict()
    assert found == {
        "unreadable coverage hints": "deleted",
        "not a symbol partition written by the store": "left alone",
        "unexpected file in a year partition": "left alone",
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
