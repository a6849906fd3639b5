"""Store benchmark (issue 3): load 24 hourly pairs (~810k candles) from the Parquet store into the
aligned panel, against ``pandas.read_csv`` of the same data as the gzipped long CSV.

Rows:
* ``store.load`` (Parquet -> aligned MarketData) vs ``pandas.read_csv`` (gz CSV -> long DataFrame
  only; the peer the claim names: target >= 5x and < 0.5 s warm);
* the same vs ``pandas.read_csv`` + ``MarketData.from_long`` (gz CSV -> the same panel; end to end);
* bytes on disk of the store vs the gzipped CSV (target: smaller).

Parity first: the panel from the store equals the panel built from pandas' read of the CSV.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, row, shared_file

from datasets import MarketData, OHLCVStore
from datasets.csvimport import read_long_csv

FILE = "binance_spot_usdt_1h.csv.gz"


def _import(store: OHLCVStore, path: Path) -> None:
    frame = read_long_csv(path)
    for symbol, rows in frame.groupby("symbol", sort=True):
        store.write("binance", "1h", str(symbol), rows, source=f"csv:{path.name}")


def main() -> list[dict]:
    path = shared_file(FILE)
    with tempfile.TemporaryDirectory() as tmp:
        store = OHLCVStore(Path(tmp) / "store")
        _import(store, path)
        symbols = store.symbols("binance", "1h")

        def ours() -> MarketData:
            return store.load("binance", symbols, "1h")

        def peer_read() -> pd.DataFrame:
            return pd.read_csv(path)

        def peer_panel() -> MarketData:
            return MarketData.from_long(pd.read_csv(path), "1h", symbols=symbols)

        market, reference = ours(), peer_panel()
        assert market.symbols == reference.symbols and len(symbols) == 24
        assert market.index.equals(reference.index)
        for field in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(market.values(field), reference.values(field), equal_nan=True), (
                field
            )
        n_rows = int(np.isfinite(market.values("close")).sum())
        print(
            f"parity: {n_rows:,} candles, panel {market.n_bars} x {market.n_assets}, identical to the CSV"
        )

        ours_s = median_time(ours, repeats=15, warmup=2)
        read_s = median_time(peer_read, repeats=5)
        panel_s = median_time(peer_panel, repeats=5)
        store_bytes = sum(p.stat().st_size for p in store.root.rglob("*.parquet"))
        n_files = sum(1 for _ in store.root.rglob("*.parquet"))
    gz_bytes = path.stat().st_size
    rows = [
        row(
            "load 24 x 1h (810k candles) -> panel",
            ours_s,
            "pandas.read_csv(gz)",
            read_s,
            target=">= 5x and < 0.5 s",
            note=f"({n_files} partition files)",
        ),
        row(
            "load 24 x 1h -> panel (end to end)",
            ours_s,
            "read_csv + from_long",
            panel_s,
            target=">= 5x",
        ),
        row(
            "bytes on disk",
            None,
            "gzipped CSV",
            None,
            target="store smaller",
            ratio=gz_bytes / store_bytes,
            note=f"(store {store_bytes / 1e6:.2f} MB vs gz {gz_bytes / 1e6:.2f} MB)",
        ),
    ]
    rows[-1].update(ours_bytes=store_bytes, peer_bytes=gz_bytes)
    return rows


if __name__ == "__main__":
    main()
