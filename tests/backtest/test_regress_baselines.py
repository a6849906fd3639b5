"""The project's own CI regression: the example configs against the committed tests/baselines.

After an intended change of returns, regenerate with
``.venv/bin/backtest regress record examples/demo.toml examples/binance_daily.toml --baseline tests/baselines``
(or ``pytest tests/backtest/test_regress_baselines.py --update-baselines``) and commit the diff.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASELINES = ROOT / "tests" / "baselines"


def test_demo_matches_committed_baseline(backtest_regression):
    comparison = backtest_regression.check(ROOT / "examples" / "demo.toml", baseline_dir=BASELINES)
    assert comparison.status == "ok"
    assert comparison.record["data"]["synthetic"] is True


def test_binance_daily_matches_committed_baseline(backtest_regression, daily_csv):
    # `daily_csv` skips with a clear reason when ../shared/data is absent
    comparison = backtest_regression.check(
        ROOT / "examples" / "binance_daily.toml", baseline_dir=BASELINES
    )
    assert comparison.status == "ok"
    assert comparison.record["data"]["synthetic"] is False
