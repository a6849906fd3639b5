"""The pytest plugin: ``backtest_regression`` fixture and ``--update-baselines`` in a user's suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backtest.regress_inputs import edit, write_config

pytest_plugins = ["pytester"]

USER_TEST = """
def test_returns(backtest_regression):
    comparison = backtest_regression.check("small.toml")
    assert comparison.status == "ok"
"""


def test_fixture_records_checks_and_explains_a_regression(pytester: pytest.Pytester):
    write_config(pytester.path)
    pytester.makepyfile(test_returns=USER_TEST)
    baseline = pytester.path / "tests" / "baselines" / "small.json"

    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*baseline directory not found*tests/baselines*", "*--update-baselines*"]
    )
    result.stdout.no_fnmatch_line("*During handling*")
    assert not baseline.exists()

    pytester.runpytest("-p", "no:cacheprovider", "--update-baselines").assert_outcomes(passed=1)
    assert baseline.is_file()
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)

    edit(pytester.path / "small.toml", "fee_bps = 10", "fee_bps = 11")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*REGRESSION small: * item(s) beyond tolerance*",
            "*costs.fee_bps*10*11*config change*",
            "*fees *FAIL*",
            "*rerun with --update-baselines*",
        ]
    )


def test_baseline_folder_from_ini_and_argument(pytester: pytest.Pytester):
    write_config(pytester.path)
    pytester.makeini("[pytest]\nbacktest_baselines = golden\n")
    pytester.makepyfile(
        test_returns=USER_TEST
        + """
def test_elsewhere(backtest_regression, tmp_path):
    backtest_regression.check("small.toml", baseline_dir="other")
"""
    )
    pytester.runpytest("-p", "no:cacheprovider", "--update-baselines").assert_outcomes(passed=2)
    assert Path(pytester.path / "golden" / "small.json").is_file()
    assert Path(pytester.path / "other" / "small.json").is_file()


def test_plugin_option_is_registered(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--update-baselines*"])
