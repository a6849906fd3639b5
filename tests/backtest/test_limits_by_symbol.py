"""Limits named by symbol (``[constraints]`` in TOML, the named dict in the API) hold at every
rebalance of a real-data backtest, for every registered allocator; bad names are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from backtest import run_backtest
from strategies import STRATEGIES, Constraints, build_strategy
from strategies.by_symbol import named_groups, resolve_constraints
from strategies.errors import ConstraintError

SYMBOLS = [
    "BTC/USDT", "ETH/USDT", "BNB/USDT", "LINK/USDT", "MKR/USDT", "LRC/USDT",
    "CRV/USDT", "AAVE/USDT", "UNI/USDT", "SOL/USDT",
]  # fmt: skip
DEFI = ["CRV/USDT", "MKR/USDT", "LRC/USDT", "AAVE/USDT", "UNI/USDT"]
LATE = ["AAVE/USDT", "UNI/USDT"]  # listed in autumn 2020: no member before
SPEC = {
    "min_weight": 0.0,
    "max_weight": 0.4,
    "bounds": {"BTC/USDT": [0.1, 0.35], "ETH/USDT": [0.0, 0.25]},
    "groups": {
        "defi": {"symbols": DEFI, "max": 0.2},
        "late": {"symbols": LATE, "max": 0.08},
    },
}


@pytest.fixture(scope="module")
def market(daily_csv):
    from datasets import load_csv

    return load_csv(daily_csv, symbols=SYMBOLS, start="2020-05-01", end="2022-12-31")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_group_caps_and_bounds_by_symbol_hold_at_every_rebalance(name, market):
    result = run_backtest(
        market, build_strategy(name, lookback_days=60), "1M", constraints=SPEC, benchmark=None
    )
    targets = result.target_weights
    assert len(targets) >= 25
    defi = targets[DEFI].sum(axis=1)
    assert defi.max() <= 0.2 + 1e-9, defi.max()
    assert targets[LATE].sum(axis=1).max() <= 0.08 + 1e-9
    assert targets["BTC/USDT"].between(0.1 - 1e-9, 0.35 + 1e-9).all()
    assert targets["ETH/USDT"].max() <= 0.25 + 1e-9
    assert targets.to_numpy().max() <= 0.4 + 1e-9
    assert (targets.sum(axis=1) <= 1 + 1e-9).all()
    # before AAVE and UNI list, their group has no member: skipped with a note, not an error
    notes = result.rebalances["notes"]
    assert notes.str.contains("group 'late' has no member in this universe: skipped").any()
    assert result.meta["constraints"]["groups"]["defi"][2] == 0.2


def test_named_constraints_resolve_against_the_markets_symbols():
    c = resolve_constraints(SPEC, SYMBOLS)
    assert c.min_weight[0] == 0.1 and c.max_weight[0] == 0.35 and c.max_weight[1] == 0.25
    assert c.max_weight[2] == 0.4
    assert c.groups["defi"] == ([4, 5, 6, 7, 8], 0.0, 0.2)
    assert named_groups(c.groups, SYMBOLS)["late"] == {"symbols": LATE, "min": 0.0, "max": 0.08}
    # the same through Constraints.coerce, which needs the symbols for the named form
    again = Constraints.coerce(SPEC, SYMBOLS)
    np.testing.assert_array_equal(again.min_weight, c.min_weight)
    np.testing.assert_array_equal(again.max_weight, c.max_weight)
    assert again.groups == c.groups


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"groups": {"defi": {"symbols": ["CRV/USDT", "MKR/USDTT"], "max": 0.2}}},
            "`constraints.groups.defi` names 'MKR/USDTT', which is not a symbol of the data "
            "(did you mean 'MKR/USDT'?)",
        ),
        (
            {"bounds": {"DOGE/USDT": [0.0, 0.1]}},
            "`constraints.bounds` names 'DOGE/USDT', which is not a symbol of the data",
        ),
        (
            {"bounds": {"BTC/USDT": [0.5, 0.1]}},
            "`constraints.bounds.'BTC/USDT'` needs 0 <= min <= max <= 1; got [0.5, 0.1]",
        ),
        (
            {"groups": {"defi": {"symbols": [], "max": 0.2}}},
            "`constraints.groups.defi.symbols` must be a non-empty list of symbols",
        ),
        (
            {"groups": {"defi": {"symbols": ["CRV/USDT"], "cap": 0.2}}},
            "`constraints.groups.defi` has unknown key(s) ['cap']; use symbols, min, max",
        ),
        ({"bound": {}}, "unknown constraint key(s) ['bound']"),
    ],
)
def test_bad_named_constraints_are_clear_errors(spec, message):
    with pytest.raises(ConstraintError) as err:
        resolve_constraints(spec, SYMBOLS)
    assert message in str(err.value)


def test_the_named_form_needs_the_symbols():
    with pytest.raises(ConstraintError, match="need the market's symbols"):
        Constraints.coerce({"bounds": {"BTC/USDT": [0.1, 0.5]}})


def test_an_unknown_symbol_stops_a_backtest_before_it_runs(market):
    spec = {"groups": {"defi": {"symbols": ["SUSHI/USDT"], "max": 0.2}}}
    with pytest.raises(ConstraintError, match="'SUSHI/USDT', which is not a symbol of the data"):
        run_backtest(market, build_strategy("hrp"), "1M", constraints=spec, benchmark=None)
    assert np.isfinite(market.values("close")).any()  # the market is untouched
