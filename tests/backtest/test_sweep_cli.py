"""`backtest sweep` through the real entry point, and the sweep report built from plain frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main
from reports.sweep import read_dsr, read_pbo, read_walk_forward, write_sweep_report

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sweep.toml"


def test_example_sweep_writes_table_report_and_statistics(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(EXAMPLE), "--out", str(out), "--jobs", "1", "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert (
        "SYNTHETIC" in printed and "top 3 of" in printed and "DSR:" in printed and "PBO:" in printed
    )
    table = pd.read_parquet(out / "sweep.parquet")
    assert {"strategy.name", "strategy.lookback_days", "rebalance.every"} <= set(table.columns)
    html = (out / "sweep.html").read_text()
    for needle in (
        "SYNTHETIC DATA",
        'id="top-table"',
        "Deflated Sharpe Ratio",
        'id="dsr-reading"',
        "Probability of Backtest Overfitting",
        'id="pbo-reading"',
        "Walk-forward tuning",
    ):
        assert needle in html, needle
    stats = json.loads((out / "overfit.json").read_text())
    assert stats["dsr"]["n_trials"] == int((table["error"] == "").sum())


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ('[strategy]\nname = "hrp"\n', [], r"error: sweep: the config has no \[sweep\] table"),
        (
            '[sweep]\n"strategy.lookback_days" = [30]\n',
            ["--scheduler", "udp://x"],
            r"error: `--scheduler` must be 'local' or a Dask address such as 'tcp://host:8786'; got 'udp://x'",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, text, args, message):
    config = tmp_path / "c.toml"
    config.write_text(text)
    assert main(["sweep", str(config), "--out", str(tmp_path / "o"), *args]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_existing_output_needs_resume(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(
        '[data]\nn_assets = 4\nn_bars = 200\n[sweep]\n"strategy.lookback_days" = [20, 30]\n'
    )
    args = ["sweep", str(config), "--out", str(tmp_path / "o"), "--jobs", "1", "--no-html"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds a sweep (2 finished chunks); pass --resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert "resumed: 2 points were already done" in capsys.readouterr().out


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    import backtest.sweep as sw

    def interrupted(*args, **kwargs):
        kwargs["progress"](3, 8)
        raise KeyboardInterrupt

    monkeypatch.setattr(sw, "run_sweep", interrupted)
    assert main(["sweep", str(EXAMPLE), "--out", str(tmp_path / "o")]) == 130
    printed = capsys.readouterr().out
    assert "interrupted: 3 points are saved in" in printed and "--resume` continues" in printed


def test_report_imports_nothing_but_reports():
    code = (
        "import sys, reports.sweep; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('backtest', 'strategies', 'datasets')]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def _table() -> pd.DataFrame:
    rows = []
    for s in ("hrp", "mpt"):
        for lb in (30, 90):
            for every in ("1W", "1M"):
                for fee in (10, 30):
                    pid = f"{s}{lb}{every}{fee}"
                    rows.append(
                        {
                            "point_id": pid,
                            "strategy.name": s,
                            "strategy.lookback_days": lb,
                            "rebalance.every": every,
                            "costs.fee_bps": fee,
                            "sharpe": lb / 100 + fee / 1000,
                            "cagr": 0.1,
                            "max_drawdown": -0.2,
                            "volatility": 0.5,
                            "turnover": 2.0,
                            "cost_drag_bps": 10.0,
                            "error": "",
                        }
                    )
    rows[-1]["error"] = "boom"
    return pd.DataFrame(rows)


def test_report_heatmaps_take_the_median_over_other_dimensions(tmp_path):
    path = write_sweep_report(
        tmp_path,
        _table(),
        x="strategy.lookback_days",
        y="rebalance.every",
        facet="strategy.name",
        params=["strategy.name", "costs.fee_bps"],
        top=5,
        orders={"rebalance.every": ["1W", "1M"]},
        meta={"title": "T", "synthetic": False},
    )
    html = path.read_text()
    assert "Each cell is the median over the other swept parameters (2 points per cell)" in html
    assert 'data-key="heatmap_sharpe"' in html and 'data-key="heatmap_max_drawdown"' in html
    assert html.count("<tr><td>") == 5 and "mpt901W30" in html and "boom" not in html
    assert "SYNTHETIC DATA" not in html


def test_report_rejects_a_table_without_the_axes(tmp_path):
    with pytest.raises(
        ValueError, match=r"`table` must have columns .*missing \['rebalance.bars'\]"
    ):
        write_sweep_report(tmp_path, _table(), x="strategy.lookback_days", y="rebalance.bars")


@pytest.mark.parametrize(
    ("dsr", "phrase"),
    [(0.97, "statistically significant"), (0.7, "30% chance"), (0.2, "most likely luck")],
)
def test_dsr_reading(dsr, phrase):
    text = read_dsr({"dsr": dsr, "n_trials": 60, "sharpe_annual": 1.5, "benchmark_annual": 1.2})
    assert phrase in text and "best of 60 points" in text


@pytest.mark.parametrize(
    ("pbo", "phrase"),
    [
        (0.03, "carries over"),
        (0.3, "partly fitting noise"),
        (0.6, "no better than choosing a parameter set at random"),
    ],
)
def test_pbo_reading(pbo, phrase):
    assert phrase in read_pbo({"pbo": pbo, "n_combinations": 12870, "prob_oos_loss": 0.1})


def test_walk_forward_reading():
    text = read_walk_forward(
        {
            "oos_sharpe": 0.4,
            "hindsight_oos_sharpe": 1.1,
            "hindsight_sharpe": 1.3,
            "windows": [{}] * 7,
        }
    )
    assert "(7 windows) gave an out-of-sample Sharpe ratio of 0.40, against 1.10" in text
    assert np.isfinite(0.4)
