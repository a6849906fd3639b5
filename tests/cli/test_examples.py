"""The examples show every allocator: the comparison report and a sweep on the real daily data."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from backtest.cli import main
from backtest.config import load_config
from strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: Registry names that are another name's objective fixed (``mpt`` with ``objective``), not allocators
ALIASES = {"mpt", "max_utility"}


def test_the_comparison_example_holds_every_allocator():
    cfg = load_config(EXAMPLES / "compare.toml")
    names = {cfg.strategy.name, *(s.name for s in cfg.compare or [])}
    missing = set(STRATEGIES) - ALIASES - {"max_sharpe", "min_volatility"} - names
    assert not missing, f"examples/compare.toml lacks {sorted(missing)}"
    assert {"mpt"} <= names  # max Sharpe through the mpt name
    budgets = [s for s in cfg.compare or [] if s.name == "risk_parity"]
    assert budgets and budgets[0].risk_budget, "risk budgets by symbol are shown"
    assert any(s.views for s in cfg.compare or [] if s.name == "black_litterman")


def test_the_allocator_sweep_example_holds_every_allocator():
    load_config(EXAMPLES / "sweep_allocators.toml")  # valid
    raw = tomllib.loads((EXAMPLES / "sweep_allocators.toml").read_text())
    assert set(STRATEGIES) - ALIASES <= set(raw["sweep"]["strategy.name"])


@pytest.mark.shared
def test_the_allocator_sweep_runs_on_real_data(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", str(EXAMPLES / "sweep_allocators.toml"), "--jobs", "1", "--out", str(out)]
    assert main(args) == 0
    import pandas as pd

    table = pd.read_parquet(out / "sweep.parquet")
    assert len(table) == 12 * 3 * 2
    assert set(table["strategy.name"]) == set(STRATEGIES) - ALIASES
    assert table["sharpe"].notna().all()
    assert json.loads((out / "overfit.json").read_text())["n_trials"] == 72
