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


def test_main_registers_the_commands_once(capsys):
    """``main`` called again in one process (tests, notebooks) does not add every command again
    (each call would then walk a list that grows with every call)."""
    from backtest.cli import app

    main(["--version"])
    counts = (len(app.registered_commands), len(app.registered_groups))
    for _ in range(3):
        assert main(["--version"]) == 0
    assert (len(app.registered_commands), len(app.registered_groups)) == counts
    assert counts[0] > 0


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


@pytest.mark.shared
def test_compare_runs_every_strategy_on_one_calendar(tmp_path, capsys):
    """Strategies with different lookbacks start trading on the same bar, so they compare (the
    example runs every allocator on the real daily data)."""
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


@pytest.mark.parametrize(
    ("title", "caption"),
    [
        ("binance-daily", "data: csv:binance_spot_usdt_1d.csv.gz"),
        ("demo", "SYNTHETIC data"),
        ("a-very-long-experiment-name-" * 4, "data: ccxt:binance " + "x" * 90),
    ],
)
def test_metrics_table_title_and_caption_stay_on_one_line_at_80_columns(title, caption):
    from rich.console import Console

    from backtest.commands.run import metrics_table

    console = Console(width=80, record=True, color_system=None)
    metrics = {"total_return": 0.5, "sharpe": 1.2, "fees": 1234.5, "n_trades": 120}
    console.print(metrics_table({"hrp": metrics, "benchmark": metrics}, title, caption))
    lines = console.export_text().splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("└"))
    assert top == 1 and len(lines) == bottom + 2  # one title line above, one caption line below
    assert all(len(line) <= 80 for line in lines)
    shown_title, shown_caption = lines[0].strip(), lines[-1].strip()
    if len(title) < 76:
        assert shown_title == title and shown_caption == caption
    else:  # longer than the console: cut, never wrapped
        assert shown_title.endswith("…") and title.startswith(shown_title[:-1])
        assert shown_caption.endswith("…") and caption.startswith(shown_caption[:-1])


def test_run_prints_the_metrics_title_on_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    config = tmp_path / "long.toml"
    name = "binance-daily-hrp-weekly-rebalance-lookback-90"
    config.write_text(DEMO.read_text().replace('name = "demo"', f'name = "{name}"'))
    assert main(["run", str(config), "--out", str(tmp_path / "o"), "--no-html"]) == 0
    lines = capsys.readouterr().out.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    assert lines[top - 1].strip() == name
    assert any(line.strip() == "SYNTHETIC data" for line in lines[top:])
