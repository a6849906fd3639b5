"""Overfitting verdicts print their numbers with enough decimals to agree with the threshold."""

from __future__ import annotations

import itertools
import re

import pandas as pd
import pytest

from reports.sweep import percent, read_dsr, read_pbo, write_sweep_report


def _table() -> pd.DataFrame:
    """A tidy sweep table of 2 strategies x 2 lookbacks x 2 frequencies."""
    points = itertools.product(("hrp", "mpt"), (30, 90), ("1W", "1M"))
    return pd.DataFrame(
        [
            {"point_id": f"{s}{lb}{every}", "strategy.name": s, "strategy.lookback_days": lb,
             "rebalance.every": every, "sharpe": lb / 100, "cagr": 0.1, "max_drawdown": -0.2,
             "error": ""}
            for s, lb, every in points
        ]
    )  # fmt: skip


def _dsr(p: float) -> dict:
    return {"dsr": p, "n_trials": 60, "sharpe_annual": 1.5, "benchmark_annual": 1.2, "best": "x"}


@pytest.mark.parametrize(
    ("dsr", "reading"),
    [
        (0.9476, "The DSR of 94.8% is below the 95% bar: there is a 5.2% chance"),
        (
            0.95,
            "With a DSR of 95%, at or above the 95% bar, the best point's edge is statistically",
        ),
        (
            0.9504,
            "With a DSR of 95%, at or above the 95% bar, the best point's edge is statistically",
        ),
        (0.94996, "The DSR of 94.996% is below the 95% bar: there is a 5.004% chance"),
        (0.7, "The DSR of 70% is below the 95% bar: there is a 30% chance"),
        (0.4996, "The DSR of 49.96% says the best point's Sharpe ratio is about what picking"),
    ],
)
def test_dsr_number_agrees_with_the_bar(dsr, reading):
    assert reading in read_dsr(_dsr(dsr))


@pytest.mark.parametrize(
    ("pbo", "shown", "verdict"),
    [
        (0.0996, "9.96%", "That is low"),
        (0.1, "10%", "partly fitting noise"),
        (0.4996, "49.96%", "partly fitting noise"),
        (0.5, "50%", "no better than choosing"),
    ],
)
def test_pbo_number_agrees_with_the_verdict(pbo, shown, verdict):
    text = read_pbo({"pbo": pbo, "n_combinations": 70, "prob_oos_loss": 0.125})
    assert text.startswith(f"In {shown} of 70 ways") and verdict in text
    assert text.endswith("lost money out of sample in 12% of the splits.")


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [(0.9476, 0, "94.8%"), (0.95, 0, "95%"), (0.9504, 0, "95%"), (0.9504, 1, "95.0%"),
     (0.94996, 1, "94.996%"), (0.123, 1, "12.3%")],
)  # fmt: skip
def test_percent(value, decimals, text):
    assert percent(value, [0.95], decimals=decimals) == text


@pytest.mark.parametrize(
    ("dsr", "card"), [(0.9476, "94.8%"), (0.9504, "95.0%"), (0.94996, "94.996%")]
)
def test_report_card_agrees_with_its_reading(tmp_path, dsr, card):
    path = write_sweep_report(
        tmp_path, _table(), x="strategy.lookback_days", y="rebalance.every", facet="strategy.name",
        statistics={"dsr": _dsr(dsr), "notes": []}, meta={"title": "T", "synthetic": True},
    )  # fmt: skip
    html = path.read_text()
    assert f'<div class="v">{card}</div><div class="l">DSR (probability)' in html
    reading = re.search(r'<p id="dsr-reading">(.*?)</p>', html, re.S).group(1)
    assert ("below the 95% bar" in reading) == (dsr < 0.95)
