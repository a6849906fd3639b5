"""Issue 14's reproductions through ``backtest run``: a cap the universe cannot fill holds, the rest is
cash and the notes say so; floors that need more than the book stop the run with one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.cli import main

FIVE = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "SOL/USDT", "AVAX/USDT"]


def _run(tmp_path: Path, data: str, strategy: str, max_weight: float, min_weight: float = 0.0):
    config = tmp_path / "limits.toml"
    config.write_text(
        f"name = 'limits'\n[data]\n{data}\n"
        f"[strategy]\nname = '{strategy}'\nlookback_days = 90\n"
        f"min_weight = {min_weight}\nmax_weight = {max_weight}\n"
        "[rebalance]\nevery = '1W'\n[backtest]\nbenchmark = 'none'\n"
    )
    out = tmp_path / "out"
    return main(["run", str(config), "--out", str(out)]), out


def _real(daily_csv: Path) -> str:
    symbols = ", ".join(f"'{s}'" for s in FIVE)
    return f"source = 'csv'\npath = '{daily_csv}'\nsymbols = [{symbols}]\nstart = 2020-01-01"


def test_five_real_assets_from_2020_keep_the_cap(daily_csv, tmp_path, capsys):
    """BTC, ETH, BNB, SOL, AVAX from 2020-01-01, mpt, max_weight 0.3: the first universe holds 3
    assets (SOL and AVAX list later); each sits at 0.3 and 10% is cash (it used to be ETH 0.90)."""
    code, out = _run(tmp_path, _real(daily_csv), "mpt", 0.3)
    assert code == 0, capsys.readouterr().err
    targets = pd.read_parquet(out / "target_weights.parquet")
    first = targets.iloc[0]
    assert first.max() <= 0.3
    assert first[["BTC/USDT", "ETH/USDT", "BNB/USDT"]].tolist() == pytest.approx([0.3] * 3)
    assert first.sum() == pytest.approx(0.9)
    assert (targets.to_numpy() <= 0.3).all()
    rebalances = pd.read_parquet(out / "rebalances.parquet")
    note = "universe of 3 assets at max_weight=0.3 each: every asset at its cap, 10% held in cash"
    assert note in rebalances["notes"].iloc[0]
    assert note in (out / "report.html").read_text()
    # once all five trade, the caps fill the book: fully invested, still capped
    full = targets[(targets > 0).sum(axis=1) == 5]
    assert len(full) and full.sum(axis=1).to_numpy() == pytest.approx(1.0)


@pytest.mark.parametrize("strategy", ["mpt", "hrp"])
def test_twelve_synthetic_assets_at_five_percent(strategy, tmp_path, capsys):
    """12 synthetic assets (listed over time) at max_weight 0.05 (MPT used to reach 0.60, HRP 0.23):
    5% in each listed asset, the rest cash, said at every rebalance; 40% cash once all 12 trade."""
    data = "source = 'synthetic'\nn_assets = 12\nn_bars = 400\nseed = 7"
    code, out = _run(tmp_path, data, strategy, 0.05)
    assert code == 0, capsys.readouterr().err
    targets = pd.read_parquet(out / "target_weights.parquet").to_numpy()
    rebalances = pd.read_parquet(out / "rebalances.parquet")
    assert targets.max() <= 0.05
    listed = rebalances["universe"].to_numpy()
    assert targets.sum(axis=1) == pytest.approx(0.05 * listed)
    assert listed[-1] == 12
    for n, notes in zip(listed, rebalances["notes"], strict=True):
        cash = f"{100 - 5 * n}%"
        assert (
            f"universe of {n} assets at max_weight=0.05 each: every asset at its cap, {cash} held in cash"
            in notes
        )


def test_floors_above_the_book_stop_the_run(tmp_path, capsys):
    data = "source = 'synthetic'\nn_assets = 12\nn_bars = 400\nseed = 7"
    code, out = _run(tmp_path, data, "hrp", 0.5, min_weight=0.1)
    err = capsys.readouterr().err
    assert code == 2
    # the first universe (11 listed assets) already needs 110%
    assert err.startswith("error: `min_weight` needs 1.1 > 100% of the book for a universe of 11 ")
    assert "`min_weight` must be <= 1/11 = 0.09091 (universe SYN00/USDT, SYN01/USDT," in err
    assert len(err.strip().splitlines()) == 1
    assert not (out / "report.html").exists()


CONSTRAINTS_TOML = """
name = 'named'
[data]
source = 'csv'
path = '{path}'
symbols = ['BTC/USDT', 'ETH/USDT', 'BNB/USDT', 'CRV/USDT', 'MKR/USDT', 'LRC/USDT', 'LINK/USDT']
start = 2020-06-01
end = 2022-06-30
[strategy]
name = '{strategy}'
lookback_days = 60
max_weight = 0.4
[rebalance]
every = '1M'
[constraints.groups.defi]
symbols = ["CRV/USDT", "MKR/USDT", "{defi_last}"]
max = 0.2
[constraints.bounds]
"BTC/USDT" = [0.1, 0.3]
[backtest]
benchmark = 'none'
"""


@pytest.mark.parametrize("strategy", ["mpt", "hrp"])
def test_a_group_and_bounds_by_symbol_from_toml(daily_csv, tmp_path, capsys, strategy):
    config = tmp_path / "named.toml"
    config.write_text(
        CONSTRAINTS_TOML.format(path=daily_csv, strategy=strategy, defi_last="LRC/USDT")
    )
    code = main(["run", str(config), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    targets = pd.read_parquet(tmp_path / "out" / "target_weights.parquet")
    assert targets[["CRV/USDT", "MKR/USDT", "LRC/USDT"]].sum(axis=1).max() <= 0.2 + 1e-9
    assert targets["BTC/USDT"].between(0.1 - 1e-9, 0.3 + 1e-9).all()
    assert targets.to_numpy().max() <= 0.4 + 1e-9


def test_an_unknown_symbol_in_a_group_exits_2_naming_it(daily_csv, tmp_path, capsys):
    config = tmp_path / "named.toml"
    config.write_text(CONSTRAINTS_TOML.format(path=daily_csv, strategy="hrp", defi_last="LRC/USD"))
    code = main(["run", str(config), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "`constraints.groups.defi` names 'LRC/USD', which is not a symbol of the data "
        "(did you mean 'LRC/USDT'?)" in err
    )
    assert not (tmp_path / "out" / "report.html").exists()


def test_bad_bounds_in_toml_are_config_errors(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(
        "name = 'bad'\n[data]\nsource = 'synthetic'\n[constraints.bounds]\n'SYN00/USDT' = [0.6, 0.2]\n"
    )
    code = main(["run", str(config), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "constraints.bounds" in err and "need 0 <= min <= max <= 1; got [0.6, 0.2]" in err
