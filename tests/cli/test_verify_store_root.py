"""`backtest data verify` and `data list` on a store root that is not a store: one line naming the path, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.cli import main
from datasets import OHLCVStore
from tests.datasets.candles import DAY, candles

FILL = "`backtest data fetch` or `backtest data import`"


def _verify(capsys, root: Path, *options: str) -> tuple[int, str, str]:
    code = main(["data", "verify", "--root", str(root), *options])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("repair", [[], ["--repair"]], ids=["check", "repair"])
def test_a_missing_root_is_named_and_not_created(tmp_path, capsys, repair):
    root = tmp_path / "nope"
    code, out, err = _verify(capsys, root, *repair)
    assert (code, out) == (1, "")
    assert err == (
        f"error: the store {root} does not exist; pass `--root` with a store folder, "
        f"or fill one with {FILL}\n"
    )
    assert not root.exists()


def test_a_file_as_root_is_named(tmp_path, capsys):
    root = tmp_path / "data.csv"
    root.write_text("symbol\n")
    code, _, err = _verify(capsys, root)
    assert code == 1
    assert err == (
        f"error: the store {root} is a file, not a folder; pass `--root` with a store folder, "
        f"or fill one with {FILL}\n"
    )


@pytest.mark.parametrize("content", ["empty", "empty-partitions"])
def test_a_root_without_series_says_so(tmp_path, capsys, content):
    root = tmp_path / "store"
    root.mkdir()
    if content == "empty-partitions":  # folders of the layout, but no candle file in them
        (root / "exchange=binance" / "timeframe=1d").mkdir(parents=True)
    code, out, err = _verify(capsys, root)
    assert (code, out) == (1, "")
    assert err == f"error: the store {root} holds no series; fill it with {FILL}\n"


def test_a_store_with_a_series_passes(tmp_path, capsys):
    store = OHLCVStore(tmp_path / "store")
    store.write("binance", "1d", "BTC/USDT", candles("2021-01-01", 10, step_ms=DAY))
    code, out, err = _verify(capsys, store.root)
    assert (code, err) == (0, "")
    assert out == f"store {store.root}: all files readable and consistent\n"


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_data_list_names_a_root_that_is_not_a_store_folder(tmp_path, capsys, kind):
    root = tmp_path / ("nope" if kind == "missing" else "data.csv")
    if kind == "file":
        root.write_text("symbol\n")
    code = main(["data", "list", "--root", str(root)])
    err = capsys.readouterr().err
    what = "does not exist" if kind == "missing" else "is a file, not a folder"
    assert code == 1
    assert err == (
        f"error: the store {root} {what}; pass `--root` with a store folder, or fill one with {FILL}\n"
    )
    assert root.exists() == (kind == "file")


def test_data_list_of_an_empty_store_folder_says_so_and_succeeds(tmp_path, capsys):
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    assert "is empty; fill it with" in capsys.readouterr().out
