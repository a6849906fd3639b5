"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_examples_run(daily_csv, monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert abs(namespace["w"].sum() - 1) < 1e-9
    assert len(namespace["result"].equity) > 100
    # the "Adding a strategy" example plugs into the engine
    custom = namespace["MinVariance"](lookback_days=30)
    result = namespace["run_backtest"](namespace["market"], custom, rebalance="1M")
    assert result.meta["strategy"] == "min_variance_diag"
