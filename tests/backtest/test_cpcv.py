"""Combinatorial purged cross-validation: the folds against skfolio's CombinatorialPurgedCV, the
statistic against the literal algorithm, its behaviour on noise and on a real edge, the config
options and an end-to-end sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main
from backtest.config import parse_config
from backtest.errors import ConfigError
from backtest.sweep import load_sweep
from backtest.sweep.cpcv import check_cpcv, combinatorial_purged_cv, cpcv_folds
from backtest.sweep.overfit import probability_of_backtest_overfitting, sweep_statistics

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sweep.toml"

SETTINGS = [
    # (n_bars, n_groups, n_test_groups, purge, embargo)
    (12, 3, 2, 0, 0),
    (12, 3, 2, 1, 0),  # skfolio's docstring examples
    (12, 3, 2, 0, 1),
    (100, 6, 2, 0, 0),
    (103, 6, 2, 3, 2),  # a remainder: the last group is longer
    (250, 10, 3, 4, 4),  # 2 * purge + embargo > a third of a group
    (250, 10, 8, 2, 5),  # adjacent test groups form one block
    (61, 5, 4, 0, 9),
    (997, 8, 4, 20, 30),
]


@pytest.mark.parametrize(("n_bars", "n_groups", "n_test", "purge", "embargo"), SETTINGS)
def test_folds_and_paths_equal_skfolio(n_bars, n_groups, n_test, purge, embargo):
    from skfolio.model_selection import CombinatorialPurgedCV

    peer = CombinatorialPurgedCV(
        n_folds=n_groups, n_test_folds=n_test, purged_size=purge, embargo_size=embargo
    )
    ours = cpcv_folds(n_bars, n_groups, n_test, purge=purge, embargo=embargo)
    splits = list(peer.split(np.zeros((n_bars, 2))))
    assert ours.n_splits == len(splits) == peer.n_splits
    assert ours.n_paths == peer.n_test_paths
    for i, (train, tests) in enumerate(splits):
        np.testing.assert_array_equal(ours.train_index(i), train)
        assert len(ours.test_index(i)) == len(tests) == n_test
        for a, b in zip(ours.test_index(i), tests, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ours.path_ids, peer.get_path_ids())
    np.testing.assert_array_equal(ours.paths, peer.recombined_paths)
    np.testing.assert_array_equal(ours.test_groups, peer.test_set_index)


def test_purge_and_embargo_cut_the_training_set_around_each_test_block():
    """6 groups of 10 bars, groups 1 and 4 tested: purge 2 drops bars 8-9 and 38-39 before the
    blocks and 20-21, 50-51 after them; embargo 3 drops 22-24 and 52-54 too."""
    folds = cpcv_folds(60, 6, 2, purge=2, embargo=3)
    split = [tuple(t) for t in folds.test_groups.tolist()].index((1, 4))
    dropped = set(range(60)) - set(folds.train_index(split)) - set(range(10, 20))
    assert dropped - set(range(40, 50)) == {8, 9, 20, 21, 22, 23, 24, 38, 39, 50, 51, 52, 53, 54}


def test_one_test_group_makes_one_path_of_every_group():
    folds = cpcv_folds(50, 5, 1)
    assert folds.n_splits == 5 and folds.n_paths == 1
    assert folds.paths[:, 0].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(folds.train_index(2), np.r_[0:20, 30:50])


def _literal(values: np.ndarray, n_groups, n_test, purge, embargo, rf=0.0):
    """The algorithm step by step on skfolio's folds: numpy mean/std on the train and test bars,
    the paths stitched from skfolio's path ids."""
    from skfolio.model_selection import CombinatorialPurgedCV

    cv = CombinatorialPurgedCV(
        n_folds=n_groups, n_test_folds=n_test, purged_size=purge, embargo_size=embargo
    )
    x = values - rf

    def sharpe(r):
        sd = r.std(axis=0, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sd > 0, r.mean(axis=0) / sd, np.nan)

    chosen, logits = [], []
    paths = np.full((len(x), cv.n_test_paths), np.nan)
    for i, (train, tests) in enumerate(cv.split(x)):
        is_sr = sharpe(x[train])
        star = int(np.nanargmax(is_sr))
        oos = sharpe(x[np.concatenate(tests)])
        rank = int((np.nan_to_num(oos, nan=-np.inf) < oos[star]).sum()) + 1
        w = rank / (x.shape[1] + 1)
        chosen.append(star)
        logits.append(math.log(w / (1 - w)))
        for test, path in zip(tests, cv.get_path_ids()[i], strict=True):
            paths[test, path] = x[test, star]
    assert not np.isnan(paths).any()
    return np.array(chosen), np.array(logits), sharpe(paths)


@pytest.mark.parametrize(
    ("n_groups", "n_test", "purge", "embargo"), [(6, 2, 0, 0), (8, 3, 5, 3), (5, 4, 2, 0)]
)
def test_statistic_equals_the_literal_algorithm(n_groups, n_test, purge, embargo):
    rng = np.random.default_rng(n_groups + n_test)
    values = rng.normal(0.0003, 0.01, size=(803, 15))
    values[:, 4] = 0.0  # a point that never trades: no Sharpe ratio, never chosen
    values[:, 9] += 0.001 * np.sin(np.arange(803) / 40)  # a regime-dependent point
    rf = 0.0001
    cv = combinatorial_purged_cv(
        values, n_groups=n_groups, n_test_groups=n_test, purge=purge, embargo=embargo, risk_free=rf
    )
    chosen, logits, path_sr = _literal(values, n_groups, n_test, purge, embargo, rf)
    np.testing.assert_array_equal(cv.chosen, chosen)
    np.testing.assert_allclose(cv.logits, logits, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cv.path_sharpe, path_sr, rtol=1e-10, atol=0)
    assert cv.pbo == float(np.mean(logits <= 0))
    assert 4 not in set(cv.chosen.tolist())
    np.testing.assert_array_equal(cv.path_returns(values) - rf, _paths_of(cv, values - rf))


def _paths_of(cv, x):
    f = cv.folds
    out = np.empty((f.n_bars, f.n_paths))
    for s in range(f.n_splits):
        for g, p in zip(f.test_groups[s], f.path_ids[s], strict=True):
            out[f.bounds[g] : f.bounds[g + 1], p] = x[f.bounds[g] : f.bounds[g + 1], cv.chosen[s]]
    return out


def test_pure_noise_has_a_median_oos_sharpe_near_zero_and_a_pbo_near_one_half():
    """50 points of iid N(0, 1%) returns over T = 2000 bars, 20 seeds. The test bars are independent
    of the training bars, so the chosen point's out-of-sample Sharpe has mean 0. One path's per-period
    Sharpe has a standard deviation of about 1/sqrt(T); the median over a seed's 9 correlated paths
    about 1.2/sqrt(T) (measured over 200 seeds), so the mean of 20 seeds' medians about
    0.27/sqrt(T): the bound 1/sqrt(T) is 3.7 standard deviations. The bound has teeth: the chosen
    points' in-sample Sharpe ratios sit at about 2.5/sqrt(T) (the expected best of 50 normals).
    A seed's PBO varies with a standard deviation of about 0.2 for both CSCV and CPCV (the splits
    share their data), so the mean of 20 has about 0.045; the band 0.5 +- 0.15 is 3.3 of them."""
    n_bars, medians, in_sample, pbo_cpcv, pbo_cscv = 2000, [], [], [], []
    for seed in range(20):
        noise = np.random.default_rng(seed).normal(0, 0.01, size=(n_bars, 50))
        cv = combinatorial_purged_cv(noise, n_groups=10, n_test_groups=2, purge=3, embargo=2)
        assert cv.folds.n_paths == 9 and cv.path_sharpe.shape == (9,)
        medians.append(cv.median)
        in_sample.append(np.median(cv.is_sharpe))
        pbo_cpcv.append(cv.pbo)
        pbo_cscv.append(probability_of_backtest_overfitting(noise, n_splits=10).pbo)
    scale = 1 / math.sqrt(n_bars)
    assert abs(np.mean(medians)) < scale
    assert np.mean(in_sample) > 2 * scale
    assert 0.35 < np.mean(pbo_cpcv) < 0.65 and 0.35 < np.mean(pbo_cscv) < 0.65


def test_a_real_edge_is_chosen_on_every_split_and_every_path_gains():
    rng = np.random.default_rng(4)
    values = rng.normal(0, 0.01, size=(1500, 30))
    values[:, 17] += 0.003  # per-period Sharpe about 0.3
    cv = combinatorial_purged_cv(values, n_groups=6, n_test_groups=2, purge=5, embargo=5)
    assert set(cv.chosen.tolist()) == {17}
    assert cv.pbo == 0.0 and cv.share_negative == 0.0
    column = values[:, 17]
    expected = column.mean() / column.std(ddof=1)
    np.testing.assert_allclose(cv.path_sharpe, expected, rtol=1e-12)
    summary = cv.to_dict(365, names=[f"p{i}" for i in range(30)])
    assert summary["most_chosen"] == "p17" and summary["most_chosen_share"] == 1.0
    assert summary["median_sharpe_annual"] == pytest.approx(expected * math.sqrt(365))
    assert summary["n_paths"] == 5 and len(summary["path_sharpe_annual"]) == 5


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: check_cpcv(1, 1), r"`n_groups` must be >= 2; got 1"),
        (lambda: check_cpcv(6, 0), r"`n_test_groups` must be >= 1; got 0"),
        (lambda: check_cpcv(6, 6), r"`n_test_groups` must be < `n_groups` \(6\).*; got 6"),
        (lambda: check_cpcv(6, 2, -1, 0), r"`purge` and `embargo` must be >= 0 bars; got -1, 0"),
        (lambda: check_cpcv(20, 10), r"C\(20, 10\) = 184,756 splits is more than 10,000"),
        (
            lambda: cpcv_folds(60, 6, 2, purge=5, embargo=4),
            r"`purge` \+ `embargo` \(5 \+ 4 bars\) must be below the group size minus 1 "
            r"\(60 bars // 6 groups - 1 = 9\)",
        ),
        (
            lambda: combinatorial_purged_cv(np.zeros((100, 1))),
            r"\(n_obs >= 4, n_trials >= 2\) matrix",
        ),
        (
            lambda: combinatorial_purged_cv(np.full((100, 3), np.nan)),
            r"`returns` must be finite",
        ),
    ],
)
def test_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------ config
BASE = '[data]\nn_assets = 4\nn_bars = 300\n[sweep]\n"strategy.lookback_days" = [20, 30]\n'


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            'validation = "cpcv"\ntest_groups = 6\n',
            r"sweep: `test_groups` must be < `groups` \(6\) so that something is left to train on; "
            "got 6",
        ),
        (
            'validation = "cpcv"\ngroups = 4\ntest_groups = 5\n',
            r"sweep: `test_groups` must be < `groups` \(4\)",
        ),
        (
            'validation = "cpcv"\ngroups = 1\n',
            r"sweep.groups: Input should be greater than or equal to 2; got 1",
        ),
        (
            'validation = "cpcv"\ntest_groups = 0\n',
            r"sweep.test_groups: Input should be greater than or equal to 1; got 0",
        ),
        (
            'validation = "cpcv"\npurge = -1\n',
            r"sweep.purge: Input should be greater than or equal to 0; got -1",
        ),
        (
            'validation = "cpcv"\nembargo = 2.5\n',
            r"sweep.embargo: Input should be a valid integer",
        ),
        ('validation = "kfold"\n', r"sweep.validation: Input should be 'cpcv'; got 'kfold'"),
        ("embargo = 3\n", r'sweep: `embargo` is a CPCV option; add `validation = "cpcv"`'),
        (
            'validation = "cpcv"\ngroups = 30\ntest_groups = 15\n',
            r"sweep: C\(30, 15\) = 155,117,520 splits is more than 10,000; use fewer groups or "
            r"move `test_groups` away",
        ),
        (
            '"strategy.max_weight" = 0.5\n',
            r"sweep.strategy.max_weight: Input should be a valid list",
        ),
    ],
)
def test_bad_validation_options_are_config_errors(tmp_path, options, match):
    path = tmp_path / "sweep.toml"
    path.write_text(BASE + options)
    with pytest.raises(ConfigError, match=match):
        load_sweep(path)


def test_options_alone_are_not_a_grid(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('[sweep]\nvalidation = "cpcv"\n')
    with pytest.raises(ConfigError, match=r"sweep: the \[sweep\] table has no grid lists; add one"):
        load_sweep(path)


def test_validation_options_get_their_defaults_and_stay_out_of_the_grid(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(BASE + 'validation = "cpcv"\npurge = 3\n')
    _, base, points = load_sweep(path)
    assert base.sweep is not None
    assert (base.sweep.groups, base.sweep.test_groups, base.sweep.purge, base.sweep.embargo) == (
        6,
        2,
        3,
        0,
    )
    assert base.sweep.grid() == {"strategy.lookback_days": [20, 30]}
    assert [p.params for p in points] == [
        {"strategy.lookback_days": 20},
        {"strategy.lookback_days": 30},
    ]
    resolved = base.resolved()["sweep"]
    assert resolved["validation"] == "cpcv" and resolved["groups"] == 6
    plain = parse_config({"sweep": {"strategy.lookback_days": [20]}})
    assert plain.sweep is not None and "groups" not in plain.resolved()["sweep"]


def test_sweep_statistics_run_cpcv_only_when_asked_and_note_a_short_period():
    rng = np.random.default_rng(2)
    idx = pd.date_range("2020-01-01", periods=600, freq="D", tz="UTC")
    returns = pd.DataFrame(rng.normal(0, 0.01, size=(600, 4)), index=idx, columns=list("wxyz"))
    returns.iloc[:60, 1] = np.nan  # the statistics use the 540 common bars
    assert sweep_statistics(returns, periods_per_year=365).cpcv is None
    options = {"n_groups": 6, "n_test_groups": 2, "purge": 4, "embargo": 2}
    stats = sweep_statistics(returns, periods_per_year=365, cpcv=options)
    assert stats.cpcv is not None and stats.cpcv.folds.n_bars == 540
    summary = stats.to_dict(365)["cpcv"]
    assert summary["n_paths"] == 5 and summary["purge"] == 4
    assert summary["most_chosen"] in list("wxyz")
    short = sweep_statistics(returns, periods_per_year=365, cpcv={**options, "purge": 88})
    assert short.cpcv is None and short.pbo is not None
    assert any(
        n.startswith("CPCV skipped: `purge` + `embargo` (88 + 2 bars) must be below")
        for n in short.notes or []
    )


def test_sweep_with_cpcv_writes_overfit_json_and_the_report(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(
        EXAMPLE.read_text() + 'validation = "cpcv"\ngroups = 8\ntest_groups = 3\npurge = 5\n'
    )
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out), "--jobs", "1", "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "CPCV: 56 splits of the history into 8 groups" in printed
    stats = json.loads((out / "overfit.json").read_text())
    cv = stats["cpcv"]
    assert (cv["groups"], cv["test_groups"], cv["purge"], cv["embargo"]) == (8, 3, 5, 0)
    assert cv["n_splits"] == 56 and cv["n_paths"] == 21 and len(cv["path_sharpe_annual"]) == 21
    paths = np.array(cv["path_sharpe_annual"])
    assert cv["median_sharpe_annual"] == pytest.approx(np.median(paths))
    assert cv["share_negative"] == pytest.approx(np.mean(paths < 0))
    assert 0.0 <= cv["pbo"] <= 1.0 and "dsr" in stats and "pbo" in stats
    table = pd.read_parquet(out / "sweep.parquet")
    assert "validation" not in table.columns and "groups" not in table.columns
    assert json.loads((out / "sweep.json").read_text())["keys"] == [
        "strategy.name",
        "strategy.lookback_days",
        "rebalance.every",
    ]
    html = (out / "sweep.html").read_text()
    assert "Combinatorial purged cross-validation" in html
    assert 'id="cpcv-reading"' in html and 'data-key="cpcv"' in html
    assert f"{cv['n_paths']} paths" in html and "PBO on the 56 CPCV splits" in html


def test_a_split_left_without_training_bars_is_refused():
    """A group between two test blocks loses 2 x purge + embargo bars: with 10-bar groups, purge 3
    and embargo 3 leave one training bar, too few for a Sharpe ratio (it used to pick a point on
    round-off)."""
    with pytest.raises(ValueError, match=r"leave a split only 1 training bar\(s\)"):
        cpcv_folds(30, 3, 2, purge=3, embargo=3)
    assert cpcv_folds(30, 3, 2, purge=2, embargo=3).n_splits == 3
