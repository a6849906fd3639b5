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


# ---------------------------------------------------------------------------------- pyproject.toml
PACKAGES = ("backtest", "strategies", "datasets", "reports")


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_dependency_has_a_lower_bound():
    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    unbounded = [
        f"{group}: {spec}"
        for group, specs in groups.items()
        for spec in specs
        if not any(s.operator == ">=" for s in Requirement(spec).specifier)
    ]
    assert groups["dependencies"] and groups["dev"]
    assert unbounded == [], f"give each dependency a lower bound (`name>=x.y`): {unbounded}"


def test_license_is_an_spdx_expression():
    licenses = pytest.importorskip("packaging.licenses")
    project = _pyproject()["project"]
    license_ = project["license"]
    assert isinstance(license_, str), (
        f"`license` must be an SPDX string (PEP 639); got {license_!r}"
    )
    assert licenses.canonicalize_license_expression(license_) == license_
    classifiers = [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    assert classifiers == [], "PEP 639: no license classifiers beside an SPDX `license`"


def test_every_package_folder_is_found_by_setuptools():
    """Each folder with an ``__init__.py`` matches ``include`` (setuptools' fnmatch rule) and no
    ``exclude`` pattern, so it ships in the wheel."""
    from fnmatch import fnmatchcase

    find = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    folders = sorted(
        ".".join(init.parent.relative_to(ROOT).parts)
        for name in PACKAGES
        for init in (ROOT / name).rglob("__init__.py")
    )
    assert {"datasets.store", "backtest.sweep"} <= set(folders)

    def shipped(dotted: str) -> bool:
        return any(fnmatchcase(dotted, p) for p in find["include"]) and not any(
            fnmatchcase(dotted, p) for p in find.get("exclude", [])
        )

    assert [f for f in folders if not shipped(f)] == []


def test_pytest_plugin_entry_point_is_light():
    """pytest loads ``backtest.regress.plugin`` in every run of any project with our package
    installed: importing it must not load pandas, numpy or the CLI."""
    entry = _pyproject()["project"]["entry-points"]["pytest11"]
    assert list(entry.values()) == ["backtest.regress.plugin"]
    code = (
        "import sys, backtest.regress.plugin; "
        "print(','.join(m for m in ('pandas', 'numpy', 'backtest.cli') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------------------------- names and doctests
def _underscored_imports(path: Path) -> list[str]:
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return found


@pytest.mark.parametrize("name", ["backtest", "datasets", "reports", "strategies", "tests"])
def test_no_module_imports_another_modules_private_names(name):
    """A name imported by another module is public (STYLE.md): no ``from x import _name``."""
    found = [
        hit for path in sorted((ROOT / name).rglob("*.py")) for hit in _underscored_imports(path)
    ]
    assert found == []


def _doctest_setup(source: str):
    """Run the root conftest's doctest set-up on a docstring example."""
    import doctest
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    test = doctest.DocTestParser().get_doctest(source, {}, "example", None, 0)
    module.pytest_runtest_setup(SimpleNamespace(dtest=test))


def test_a_doctest_whose_csv_file_is_absent_is_skipped_with_the_reason():
    with pytest.raises(pytest.skip.Exception, match=r"needs the shared reference data \(no_such"):
        _doctest_setup('>>> load_csv("no_such_file.csv.gz")\n')
    _doctest_setup(">>> 1 + 1\n2\n")  # no file named: runs


def test_a_doctest_of_the_shared_data_runs_when_the_file_is_there(daily_csv):
    _doctest_setup(f'>>> load_csv("{daily_csv.name}")\n')  # does not skip
