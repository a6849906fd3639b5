"""What `backtest regress` must show: determinism, sensitivity to small changes, `--update`.

Each test copies a recorded folder (two small configs, a CSV market, their baselines) and runs the
real CLI entry point ``backtest.cli.main``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backtest.cli import main
from tests.backtest.regress_inputs import change_one_candle, edit, fresh_copy, record_folder


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_folder(tmp_path_factory.mktemp("regress"), with_csv=True)


@pytest.fixture
def work(recorded: Path, tmp_path: Path) -> Path:
    return fresh_copy(recorded, tmp_path)


def _check(folder: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["regress", "check", "--baseline", str(folder / "base"), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_unchanged_inputs_pass(work, capsys):
    code, out, err = _check(work, capsys)
    assert code == 0, out + err
    assert "ok small:" in out
    assert "ok small-csv:" in out and err == ""


def test_one_bp_fee_change_is_a_regression_named_in_the_output(work, capsys):
    edit(work / "small.toml", "fee_bps = 10", "fee_bps = 11")
    code, out, err = _check(work, capsys)
    assert code == 1
    assert "REGRESSION small:" in out and "ok small-csv:" in out
    row = next(line for line in out.splitlines() if line.startswith("costs.fee_bps"))
    assert row.split()[1:3] == ["10", "11"] and "config change" in row
    fees = next(line for line in out.splitlines() if line.startswith("fees "))
    assert "FAIL" in fees
    assert err.startswith("regression: small moved beyond tolerance")


def test_one_day_lookback_shift_is_a_regression_named_in_the_output(work, capsys):
    edit(work / "small.toml", "lookback_days = 30", "lookback_days = 31")
    code, out, err = _check(work, capsys)
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("strategy.lookback_days"))
    assert row.split()[1:3] == ["30", "31"]
    assert "weights: rebalance dates" in out or "weight " in out
    assert "regression: small" in err


def test_one_changed_candle_is_not_comparable_and_names_the_symbol(recorded, work, capsys):
    edit(
        work / "small-csv.toml",
        (recorded / "market.csv").as_posix(),
        (work / "market.csv").as_posix(),
    )
    assert _check(work, capsys)[0] == 0  # a copy of the same data: still comparable
    change_one_candle(work / "market.csv", "SYN02/USDT", 150)
    code, out, err = _check(work, capsys)
    assert code == 2
    assert "NOT COMPARABLE small-csv: input data changed: SYN02/USDT: close changed" in out
    assert err.startswith(
        "not comparable: small-csv: input data changed: SYN02/USDT: close changed;"
    )
    assert "ok small:" in out


def test_update_rewrites_changed_baselines_then_they_pass(work, capsys):
    before = (work / "base" / "small-csv.json").read_bytes()
    small_before = (work / "base" / "small.json").read_bytes()
    edit(work / "small.toml", "fee_bps = 10", "fee_bps = 11")
    code, out, _ = _check(work, capsys, "--update")
    assert code == 0
    assert f"updated {work / 'base' / 'small.json'}" in out
    assert "small-csv.json" not in out.split("updated", 1)[1]  # unchanged files are left alone
    assert (work / "base" / "small-csv.json").read_bytes() == before
    assert (work / "base" / "small.json").read_bytes() != small_before
    assert '"fee_bps": 11.0' in (work / "base" / "small.json").read_text()
    assert _check(work, capsys)[0] == 0


def test_check_only_named_configs(work, capsys):
    edit(work / "small.toml", "fee_bps = 10", "fee_bps = 11")
    code, out, _ = _check(work, capsys, str(work / "small-csv.toml"))
    assert code == 0 and "small-csv" in out and "REGRESSION" not in out


def test_record_is_deterministic_across_runs_and_jobs(recorded, tmp_path):
    configs = [str(recorded / "small.toml"), str(recorded / "small-csv.toml")]
    base = tmp_path / "base"  # same depth as recorded/base: the stored relative paths agree
    runs = {}
    for label, jobs in [("serial-1", "1"), ("serial-2", "1"), ("pool", "2")]:
        assert main(["regress", "record", *configs, "--baseline", str(base), "--jobs", jobs]) == 0
        runs[label] = {p.name: p.read_bytes() for p in sorted(base.glob("*.json"))}
        shutil.rmtree(base)
    assert set(runs["pool"]) == {"small.json", "small-csv.json"}
    assert runs["serial-1"] == runs["serial-2"] == runs["pool"]


def test_check_with_two_jobs_matches_serial(work, capsys):
    edit(work / "small.toml", "fee_bps = 10", "fee_bps = 11")
    serial = _check(work, capsys)
    pooled = _check(work, capsys, "--jobs", "2")
    assert serial == pooled and serial[0] == 1
