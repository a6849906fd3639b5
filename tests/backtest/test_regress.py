"""Unit tests of backtest.regress on hand-made records (no backtest runs)."""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from backtest.config import RegressConfig, parse_config
from backtest.errors import ConfigError, RegressionError
from backtest.regress import (
    FORMAT,
    baseline_filename,
    compare,
    data_changes,
    dumps,
    equity_fingerprint,
    load_baseline,
    rebalance_weights,
)
from backtest.regress.baseline import stable_number

IDX = pd.date_range("2021-01-01", periods=200, freq="D", tz="UTC")


def _record() -> dict:
    equity = pd.Series(100_000 * np.cumprod(1 + 0.001 * np.sin(np.arange(200))), index=IDX)
    weights = pd.DataFrame(
        [[0.5, 0.5], [0.25, 0.75], [0.6, 0.4]],
        index=IDX[[10, 17, 24]],
        columns=["BTC/USDT", "ETH/USDT"],
    )
    return {
        "format": FORMAT,
        "experiment": "toy",
        "config_path": "../toy.toml",
        "config": {"name": "toy", "costs": {"fee_bps": 10.0}, "strategy": {"lookback_days": 30.0}},
        "data": {
            "fingerprint": "f" * 64,
            "source": "csv:x",
            "timeframe": "1d",
            "n_bars": 200,
            "start": IDX[0].isoformat(),
            "end": IDX[-1].isoformat(),
            "index_sha256": "i" * 64,
            "fields": ["open", "high", "low", "close", "volume"],
            "symbols": {
                "BTC/USDT": ["a", "b", "c", "d", "e"],
                "ETH/USDT": ["a", "b", "c", "d", "e"],
            },
        },
        "metrics": {"sharpe": 1.25, "total_return": 0.5, "fees": 1000.0, "beta": None},
        "equity": equity_fingerprint(equity),
        "weights": rebalance_weights(weights),
        "versions": {"numpy": "2.0"},
    }


# ------------------------------------------------------------------------------ format
def test_dumps_sorted_inline_scalar_lists_and_round_trips():
    rec = _record()
    text = dumps(rec)
    assert text.endswith("}\n")
    assert json.loads(text) == json.loads(json.dumps(rec))
    keys = [line.split('"')[1] for line in text.splitlines() if line.startswith('  "')]
    assert keys == sorted(rec)
    assert '"fields": ["open", "high", "low", "close", "volume"]' in text  # one line
    assert f'      ["{IDX[0].isoformat()}", 100000.0]' in text  # one sample per line
    assert dumps(copy.deepcopy(rec)) == text


def test_dumps_refuses_nan():
    with pytest.raises(ValueError, match="Out of range float"):
        dumps({"x": float("nan")})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), None),
        (float("inf"), "inf"),
        (-float("inf"), "-inf"),
        (-0.0, 0.0),
        (1 / 3, 0.333333333333),
        (123456789.123456789, 123456789.123),
        (np.float64(2.5), 2.5),
    ],
)
def test_num_is_stable(value, expected):
    out = stable_number(value)
    assert out == expected and type(out) is type(expected)
    if isinstance(out, float):
        assert str(out).lstrip("-") == repr(abs(out)) and not str(out).startswith("-0.0")


def test_weights_rounded_to_1e10():
    assert stable_number(0.12345678901234, decimals=10) == 0.123456789


def test_equity_fingerprint_samples_and_checksum():
    equity = pd.Series(
        np.linspace(1.0, 2.0, 1000), index=pd.date_range("2020", periods=1000, freq="h", tz="UTC")
    )
    fp = equity_fingerprint(equity)
    assert len(fp["samples"]) == 50
    assert fp["samples"][0] == [equity.index[0].isoformat(), 1.0]
    assert fp["samples"][-1] == [equity.index[-1].isoformat(), 2.0]
    assert fp["sha256"] == hashlib.sha256(equity.to_numpy().astype("<f8").tobytes()).hexdigest()
    assert fp["n_bars"] == 1000


def test_baseline_filename_slug():
    assert baseline_filename("binance-daily-mpt") == "binance-daily-mpt.json"
    assert baseline_filename("my exp/v2") == "my_exp_v2.json"


# ------------------------------------------------------------------------------ compare
def test_identical_records_hold_with_no_rows():
    rec = _record()
    comp = compare(rec, copy.deepcopy(rec), RegressConfig())
    assert comp.status == "ok" and comp.exit_code == 0 and comp.changes == [] and comp.notes == []


def test_metric_within_and_beyond_tolerance():
    base, cur = _record(), _record()
    cur["metrics"]["sharpe"] = 1.25 * (1 + 5e-7)  # within rel 1e-6
    comp = compare(base, cur, RegressConfig())
    assert comp.status == "ok"
    assert [(c.item, c.failed) for c in comp.changes] == [("sharpe", False)]
    cur["metrics"]["sharpe"] = 1.26
    comp = compare(base, cur, RegressConfig())
    assert comp.status == "regression" and comp.exit_code == 1
    (row,) = comp.failures
    assert (
        row.item == "sharpe"
        and row.abs_diff == pytest.approx(0.01)
        and row.rel_diff == pytest.approx(0.008)
    )


def test_per_metric_tolerance_overrides_default():
    base, cur = _record(), _record()
    cur["metrics"]["sharpe"] = 1.26
    tol = RegressConfig(metrics={"sharpe": {"abs": 0.02}})
    assert tol.tolerance("sharpe") == (0.02, 1e-6) and tol.tolerance("fees") == (1e-9, 1e-6)
    assert compare(base, cur, tol).status == "ok"


def test_nan_versus_number_is_a_regression():
    base, cur = _record(), _record()
    cur["metrics"]["beta"] = 0.9
    comp = compare(base, cur, RegressConfig(abs=1e9))
    assert [c.item for c in comp.failures] == ["beta"]


def test_new_metric_is_a_note_not_a_failure():
    base, cur = _record(), _record()
    cur["metrics"]["omega"] = 1.0
    comp = compare(base, cur, RegressConfig())
    assert comp.status == "ok"
    assert comp.notes == [
        "metric omega: new metric, not in the baseline (not compared; `--update` records it)"
    ]


def test_config_change_is_named_and_informational():
    base, cur = _record(), _record()
    cur["config"]["costs"]["fee_bps"] = 11.0
    comp = compare(base, cur, RegressConfig())
    assert comp.status == "ok"
    (row,) = comp.changes
    assert (row.section, row.item, row.baseline, row.current, row.failed) == (
        "config",
        "costs.fee_bps",
        10.0,
        11.0,
        False,
    )


def test_equity_sample_beyond_tolerance_names_the_worst_date():
    base, cur = _record(), _record()
    cur["equity"]["samples"][20][1] *= 1.001
    cur["equity"]["sha256"] = "0" * 64
    comp = compare(base, cur, RegressConfig())
    (row,) = comp.failures
    assert row.item == f"equity @ {cur['equity']['samples'][20][0][:10]}"
    assert row.detail == "1 of 50 beyond tolerance, 1 moved"
    assert (
        "equity: not bit-identical to the baseline (sha256 differs; compared with tolerances)"
        in comp.notes
    )


def test_shifted_rebalance_dates_fail():
    base = _record()
    shifted = pd.DataFrame([[0.5, 0.5]], index=IDX[[11]], columns=["BTC/USDT", "ETH/USDT"])
    cur = {**_record(), "weights": rebalance_weights(shifted)}
    (row,) = compare(base, cur, RegressConfig()).failures
    assert row.item == "weights: rebalance dates"
    assert row.detail == "first difference: 2021-01-11 vs 2021-01-12"


def test_weight_move_names_date_and_symbol():
    base, cur = _record(), _record()
    key = list(cur["weights"]["rows"])[1]
    cur["weights"]["rows"][key] = [0.2499, 0.7501]
    (row,) = compare(base, cur, RegressConfig()).failures
    assert row.item == "weight 2021-01-18 BTC/USDT" or row.item == "weight 2021-01-18 ETH/USDT"
    assert row.detail == "2 of 6 beyond tolerance, 2 moved"


def test_strict_mode_requires_identical_checksums():
    base, cur = _record(), _record()
    cur["equity"]["sha256"] = "0" * 64
    assert compare(base, cur, RegressConfig()).status == "ok"
    comp = compare(base, cur, RegressConfig(strict=True))
    assert comp.status == "regression" and comp.failures[0].item == "equity sha256"


def test_changed_data_is_not_comparable_and_names_symbol_and_field():
    base, cur = _record(), _record()
    cur["data"]["fingerprint"] = "0" * 64
    cur["data"]["symbols"]["ETH/USDT"] = ["a", "b", "c", "X", "e"]
    cur["metrics"]["sharpe"] = 9.0
    comp = compare(base, cur, RegressConfig())
    assert comp.status == "data_changed" and comp.exit_code == 2
    assert comp.notes == ["input data changed: ETH/USDT: close changed"]


def test_data_changes_lists_span_and_symbols():
    base = _record()["data"]
    cur = copy.deepcopy(base)
    cur.update(n_bars=201, end="2021-07-20T00:00:00+00:00", index_sha256="j" * 64)
    cur["symbols"]["SOL/USDT"] = ["a"] * 5
    del cur["symbols"]["BTC/USDT"]
    assert data_changes(base, cur) == [
        "n_bars 200 -> 201",
        "end 2021-07-19T00:00:00+00:00 -> 2021-07-20T00:00:00+00:00",
        "symbols removed: ['BTC/USDT']",
        "symbols added: ['SOL/USDT']",
    ]


# ------------------------------------------------------------------------------ config and files
@pytest.mark.parametrize(
    ("table", "where"),
    [
        ({"abs": -1e-9}, "regress.abs"),
        ({"rel": -0.1}, "regress.rel"),
        ({"metrics": {"sharpe": {"abs": -1}}}, "regress.metrics.sharpe.abs"),
        ({"equity": {"rel": float("nan")}}, "regress.equity.rel"),
    ],
)
def test_negative_or_nan_tolerance_is_a_config_error(table, where):
    with pytest.raises(ConfigError, match="a tolerance must be a finite number >= 0") as info:
        parse_config({"regress": table})
    assert [loc for loc, _ in info.value.errors] == [where]


def test_unknown_regress_key_is_rejected():
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"regress": {"tolerance": 1}})


def test_load_baseline_errors(tmp_path):
    with pytest.raises(
        RegressionError, match=r"baseline file not found: .*nope.json \(record it with"
    ):
        load_baseline(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(
        RegressionError, match=r"bad.json is corrupt \(not JSON: Expecting property name"
    ):
        load_baseline(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(
        RegressionError, match="`format` must be 'alphapulse-regress/1'; got 'list'"
    ):
        load_baseline(bad)
    bad.write_text(json.dumps({"format": FORMAT, "experiment": "x"}))
    with pytest.raises(RegressionError, match=r"it lacks \['config_path', 'config', 'data'"):
        load_baseline(bad)
