"""Faults a store must survive and names it must not trust, through the real CLI in real processes:
a kill in the middle of an import, two imports at once, a truncated Parquet file, and symbols that
carry terminal markup or path characters. Each case is a row of docs/faults.md."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backtest.cli import main
from datasets import OHLCVStore
from datasets.store.format import FILE_NAME
from tests.datasets.candles import HOUR, ms

ROOT = Path(__file__).resolve().parents[2]
HEADER = "symbol,timestamp_ms,open,high,low,close,volume"
SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT")


def _hourly_csv(path: Path, symbols=SYMBOLS, start: str = "2019-06-01", n: int = 24 * 500) -> Path:
    """``n`` hourly candles per symbol from ``start``: the span crosses a decade partition
    (2010-2019 | 2020-2029), so each symbol is written as two files."""
    t0 = ms(start)
    lines = [HEADER]
    for k, symbol in enumerate(symbols):
        for i in range(n):
            close = 10.0 + k + (i % 50) / 10
            lines.append(f"{symbol},{t0 + i * HOUR},{close},{close + 1},{close - 1},{close},5.0")
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backtest.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def _frames(root: Path) -> dict[str, pd.DataFrame]:
    store = OHLCVStore(root)
    return {s: store.read("binance", "1h", s) for s in store.symbols("binance", "1h")}


KILLER = """
import os, signal, sys
import datasets.store.ohlcv as store

real_write, calls = store.atomic_write, []

def write_then_die(table, path):
    calls.append(path)
    if len(calls) == 3:  # the third file: half a temp file on disk, then the process dies
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(f".{path.name}.{os.getpid()}.deadbeef.tmp").write_bytes(b"PAR1 half")
        os.kill(os.getpid(), signal.SIGKILL)
    real_write(table, path)

store.atomic_write = write_then_die
from backtest.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_during_import_leaves_a_store_that_verifies_and_a_rerun_completes(tmp_path):
    csv = _hourly_csv(tmp_path / "candles.csv")
    root = tmp_path / "store"
    args = ["data", "import", str(csv), "-e", "binance", "-t", "1h", "--root", str(root)]
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, *args], cwd=ROOT, capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL
    # what was written before the kill is whole and readable; the half file is only a temp file
    held = _frames(root)
    assert list(held) == ["AAA/USDT"] and len(held["AAA/USDT"]) == 24 * 500
    verify = _cli("data", "verify", "--root", str(root))
    assert (
        verify.returncode == 2
        and "temporary file left by an interrupted write" in verify.stdout + verify.stderr
    )
    repair = _cli("data", "verify", "--repair", "--root", str(root))
    assert repair.returncode == 0, repair.stderr
    assert _cli("data", "verify", "--root", str(root)).returncode == 0
    # rerunning the same import finishes the job: the store equals one clean import
    rerun = _cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    clean = tmp_path / "clean"
    assert _cli(*args[:-1], str(clean)).returncode == 0
    got, want = _frames(root), _frames(clean)
    assert list(got) == list(SYMBOLS) and got.keys() == want.keys()
    for symbol in SYMBOLS:
        pd.testing.assert_frame_equal(got[symbol], want[symbol])


def test_two_imports_at_once_into_one_store_lose_nothing(tmp_path):
    """Two processes import overlapping files (two shared symbols, one each of their own) at the
    same time; the partition locks serialise the writers and both exit 0."""
    first = _hourly_csv(tmp_path / "first.csv", ("AAA/USDT", "BBB/USDT", "CCC/USDT"))
    second = _hourly_csv(
        tmp_path / "second.csv", ("AAA/USDT", "BBB/USDT", "DDD/USDT"), start="2020-02-01"
    )
    root = tmp_path / "store"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backtest.cli",
                "data",
                "import",
                str(path),
                "-e",
                "binance",
                "-t",
                "1h",
                "--root",
                str(root),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in (first, second)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    held = _frames(root)
    assert list(held) == list(SYMBOLS)
    span = (ms("2020-02-01") + 24 * 500 * HOUR - ms("2019-06-01")) // HOUR
    for symbol in ("AAA/USDT", "BBB/USDT"):  # the union of both files, each bar once
        ts = held[symbol]["timestamp_ms"]
        assert ts.is_unique and ts.is_monotonic_increasing and len(ts) == span
    assert len(held["CCC/USDT"]) == len(held["DDD/USDT"]) == 24 * 500
    assert _cli("data", "verify", "--root", str(root)).returncode == 0


def test_a_truncated_parquet_file_is_named_and_repair_keeps_the_rest(tmp_path, capsys):
    csv = _hourly_csv(tmp_path / "candles.csv", ("AAA/USDT", "BBB/USDT"))
    root = tmp_path / "store"
    assert main(["data", "import", str(csv), "-e", "binance", "-t", "1h", "--root", str(root)]) == 0
    store = OHLCVStore(root)
    bad = store.series_dir("binance", "1h", "AAA/USDT") / "years=2020-2029" / FILE_NAME
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # a copy cut off half way
    capsys.readouterr()
    assert main(["data", "list", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: corrupt store file {bad}:")
    assert err.strip().endswith("run `backtest data verify --repair`")
    assert main(["data", "verify", "--repair", "--root", str(root)]) == 0
    assert "moved to _quarantine/" in capsys.readouterr().out
    assert len(store.read("binance", "1h", "BBB/USDT")) == 24 * 500  # the other series is intact
    assert main(["data", "verify", "--root", str(root)]) == 0


def test_a_symbol_with_markup_is_stored_and_shown_as_written(tmp_path, capsys):
    csv = _hourly_csv(tmp_path / "markup.csv", ("[red]X/USDT",), n=48)
    root = tmp_path / "store"
    assert main(["data", "import", str(csv), "-e", "binance", "-t", "1h", "--root", str(root)]) == 0
    capsys.readouterr()
    assert OHLCVStore(root).symbols("binance", "1h") == ["[red]X/USDT"]
    assert main(["data", "list", "--root", str(root)]) == 0
    assert "[red]X/USDT" in capsys.readouterr().out  # not swallowed as a colour tag


@pytest.mark.parametrize("symbol", ["../../etc/USDT", "/abs/USDT", "BTC\\USDT"])
def test_a_symbol_with_path_characters_is_refused_by_file_column_and_row(tmp_path, capsys, symbol):
    csv = tmp_path / "path.csv"
    csv.write_text(
        f"{HEADER}\nGOOD/USDT,{ms('2021-01-01')},1,2,0.5,1.5,10\n{symbol},{ms('2021-01-02')},1,2,0.5,1,1\n"
    )
    root = tmp_path / "store"
    assert main(["data", "import", str(csv), "-e", "binance", "-t", "1d", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: path.csv: column 'symbol', row 3: ")
    assert f"must be a market symbol such as 'BTC/USDT'; got {symbol!r}" in err
    assert not root.exists()  # nothing written, not even GOOD/USDT
    assert not (tmp_path.parent / "etc").exists()
