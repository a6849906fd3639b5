"""The four import packages come from this repository (PyPI has unrelated `datasets`, `backtest`,
`strategies` and `reports` packages; Hugging Face's `datasets` is popular)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["backtest", "strategies", "datasets", "reports"])
def test_package_is_ours(name):
    module = importlib.import_module(name)
    assert module.__file__ is not None, f"{name} resolved to a namespace package, not ours"
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_public_api_names():
    from backtest import BacktestResult, Costs, load_config, run_backtest  # noqa: F401
    from datasets import MarketData, load_csv, synthetic_market  # noqa: F401
    from reports import compute_metrics, write_report  # noqa: F401
    from strategies import Constraints, EqualWeight, InverseVolatility  # noqa: F401


def test_light_imports_stay_light():
    """`import strategies` and the CLI entry do not drag in vectorbt, ccxt or dask."""
    code = (
        "import sys, strategies, backtest.cli; "
        "heavy = [m for m in ('vectorbt', 'ccxt', 'dask', 'plotly') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
