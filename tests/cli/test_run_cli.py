"""`backtest run` through the real entry point: outputs, exit codes and one-line config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backtest.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.toml"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "alphapulse-backtest" in capsys.readouterr().out


def test_help_is_fast_and_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "backtest.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for command in ("run", "compare", "report", "data"):
        assert command in out.stdout


def test_run_demo_writes_report_and_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["run", str(DEMO), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed
    assert str(out) in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert {
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "max_drawdown",
        "turnover",
        "fees",
    } <= set(metrics)
    assert metrics["fees"] > 0
    html = (out / "report.html").read_text()
    assert "synthetic" in html.lower()
    for name in (
        "equity.parquet",
        "weights.parquet",
        "trades.parquet",
        "config.toml",
        "result.json",
    ):
        assert (out / name).exists(), name
    # the resolved config round-trips and records every default
    assert "fee_bps = 10" in (out / "config.toml").read_text()
    # `backtest report` rebuilds the tearsheet from the saved folder
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").exists()


BAD_CONFIGS = [
    ("[strategy]\nname = 'hrp'\nlookbak_days = 30\n", "strategy.lookbak_days", "unknown key"),
    ("[costs]\nfee_bps = -1\n", "costs.fee_bps", "greater than or equal to 0"),
    ("[data]\nstart = 2023-01-01\nend = 2022-01-01\n", "data", "must be before"),
    ("[strategy]\nname = 'hrpp'\n", "strategy.name", "unknown strategy 'hrpp'"),
    ("[rebalance]\nevery = 'fortnightly'\n", "rebalance", "calendar period"),
    ("name = 'x'\n[data\n", "", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "where", "message"), BAD_CONFIGS)
def test_bad_config_is_one_line_exit_2(tmp_path, capsys, text, where, message):
    code = main(["run", str(_config(tmp_path, text)), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {where}")
    assert message in lines[0]
    assert "Traceback" not in err


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_unknown_command_is_usage_error(capsys):
    assert main(["frobnicate"]) == 2


def test_compare_runs_every_strategy_on_one_calendar(tmp_path, capsys):
    """Strategies with different lookbacks start trading on the same bar, so they compare."""
    out = tmp_path / "cmp"
    assert main(["compare", str(ROOT / "examples" / "compare.toml"), "--out", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    assert (out / "comparison.html").exists()
    starts = {
        json.loads((sub / "result.json").read_text())["meta"]["start"]
        for sub in out.iterdir()
        if sub.is_dir()
    }
    assert len(starts) == 1


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    import backtest.cli
    from backtest.errors import ConfigError

    monkeypatch.setattr(backtest.cli, "_STATE", {"debug": False})  # --debug sticks otherwise
    bad = _config(tmp_path, "[costs]\nfee_bps = -1\n")
    with pytest.raises(ConfigError, match="fee_bps"):
        main(["--debug", "run", str(bad)])
