"""pytest plugin: the ``backtest_regression`` fixture for golden baselines in your own test suite.

Installed with the package (entry point ``pytest11``), so any suite can write::

    def test_returns(backtest_regression):
        backtest_regression.check("examples/demo.toml")

The check reruns the experiment and compares it with ``<baselines>/<experiment>.json`` under the
tolerances of the config's ``[regress]`` table; a regression or changed input data fails the test with
the table of what moved. ``pytest --update-baselines`` records missing baselines and rewrites changed
ones. The baseline folder is ``tests/baselines`` under the rootdir unless the ``backtest_baselines``
ini option or the ``baseline_dir`` argument says otherwise. The module imports only pytest at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from backtest.regress import Comparison


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alphapulse-backtest", "AlphaPulse Backtest regression baselines")
    group.addoption(
        "--update-baselines",
        action="store_true",
        default=False,
        help="record missing backtest regression baselines and rewrite the ones that changed",
    )
    parser.addini(
        "backtest_baselines",
        "folder of backtest regression baselines (relative to the rootdir)",
        default="tests/baselines",
    )


class BacktestRegression:
    """What the ``backtest_regression`` fixture returns.

    Parameters
    ----------
    rootdir : Path
        pytest's rootdir; relative paths that do not exist from the working directory are taken from here.
    baseline_dir : Path
        Default folder of the baselines.
    update : bool
        ``--update-baselines`` was given: record or rewrite instead of failing.
    """

    def __init__(self, rootdir: Path, baseline_dir: Path, update: bool):
        self.rootdir = rootdir
        self.baseline_dir = baseline_dir
        self.update = update

    def check(self, config: str | Path, *, baseline_dir: str | Path | None = None) -> Comparison:
        """Rerun ``config`` and compare with its baseline; fail the test on a regression or changed data.

        Returns the :class:`backtest.regress.Comparison` (status ``"ok"``) for further assertions.
        """
        from backtest import regress
        from backtest.errors import RegressionError
        from backtest.regress.display import render_text

        folder = self._path(baseline_dir) if baseline_dir is not None else self.baseline_dir
        path = self._path(config)
        try:
            report = regress.check(folder, [path], update=self.update)
        except RegressionError as exc:
            problem = str(exc)
        else:
            problem = ""
        if problem:
            pytest.fail(
                f"{problem}\n(run pytest with --update-baselines to record the baseline)",
                pytrace=False,
            )
        comparison = report.comparisons[0]
        if comparison.status != "ok" and not self.update:
            hint = "if the change is intended, rerun with --update-baselines"
            pytest.fail(f"{render_text(report)}\n{hint}", pytrace=False)
        return comparison

    def _path(self, value: str | Path) -> Path:
        p = Path(value)
        return p if p.is_absolute() or p.exists() else self.rootdir / p


@pytest.fixture
def backtest_regression(request: pytest.FixtureRequest) -> BacktestRegression:
    """Golden-baseline checks of backtests: ``backtest_regression.check("my_experiment.toml")``."""
    config = request.config
    rootdir = Path(config.rootpath)
    folder = Path(config.getini("backtest_baselines"))
    return BacktestRegression(
        rootdir,
        folder if folder.is_absolute() else rootdir / folder,
        bool(config.getoption("--update-baselines")),
    )
