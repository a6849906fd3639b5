"""Bad input to `backtest regress`: each a one-line `error: ...` on stderr and exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backtest.cli import main
from tests.backtest.regress_inputs import edit, fresh_copy, record_folder, write_config


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_folder(tmp_path_factory.mktemp("regress-cli"), with_csv=False)


@pytest.fixture
def work(recorded: Path, tmp_path: Path) -> Path:
    return fresh_copy(recorded, tmp_path)


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], pattern: str) -> str:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert pattern in lines[0], lines[0]
    return lines[0]


def test_help_lists_record_and_check(capsys):
    assert main(["regress", "--help"]) == 0
    out = capsys.readouterr().out
    assert "record" in out and "check" in out


def test_missing_baseline_directory(tmp_path, capsys):
    _fails(
        ["regress", "check", "--baseline", str(tmp_path / "nope")],
        capsys,
        f"baseline directory not found: {tmp_path / 'nope'} (record baselines first",
    )


def test_empty_baseline_directory(tmp_path, capsys):
    _fails(
        ["regress", "check", "--baseline", str(tmp_path)],
        capsys,
        f"no baselines (*.json) in {tmp_path}",
    )


def test_missing_baseline_file_for_a_named_config(work, capsys):
    other = write_config(work, name="other")
    _fails(
        ["regress", "check", str(other), "--baseline", str(work / "base")],
        capsys,
        f"baseline file not found: {work / 'base' / 'other.json'}",
    )


def test_corrupt_baseline_json(work, capsys):
    path = work / "base" / "small.json"
    path.write_text(path.read_text()[:200])
    _fails(
        ["regress", "check", "--baseline", str(work / "base")],
        capsys,
        f"baseline {path} is corrupt (not JSON:",
    )


def test_baseline_of_another_format(work, capsys):
    path = work / "base" / "small.json"
    path.write_text(json.dumps({"metrics": {}}))
    _fails(
        ["regress", "check", "--baseline", str(work / "base")],
        capsys,
        "is corrupt: `format` must be 'alphapulse-regress/1'; got None",
    )


def test_baseline_whose_config_is_gone(work, capsys):
    (work / "small.toml").unlink()
    _fails(
        ["regress", "check", "--baseline", str(work / "base")],
        capsys,
        f"comes from an unknown config: {work / 'small.toml'} does not exist",
    )


def test_baseline_whose_config_now_defines_another_experiment(work, capsys):
    edit(work / "small.toml", 'name = "small"', 'name = "renamed"')
    _fails(
        ["regress", "check", "--baseline", str(work / "base")],
        capsys,
        "it was recorded for experiment 'small' but",
    )


@pytest.mark.parametrize(
    ("table", "where"),
    [
        (
            "[regress]\nrel = -0.01\n",
            "error: regress.rel: a tolerance must be a finite number >= 0",
        ),
        (
            "[regress.metrics.sharpe]\nabs = -1\n",
            "error: regress.metrics.sharpe.abs: a tolerance must be",
        ),
    ],
)
@pytest.mark.parametrize("command", ["check", "record"])
def test_negative_tolerance(work, capsys, table, where, command):
    (work / "small.toml").write_text((work / "small.toml").read_text() + table)
    args = ["regress", command, "--baseline", str(work / "base")]
    args += [str(work / "small.toml")] if command == "record" else []
    assert _fails(args, capsys, where).startswith(where)


def test_unknown_metric_in_tolerances(work, capsys):
    (work / "small.toml").write_text(
        (work / "small.toml").read_text() + "[regress.metrics.sharp]\nabs = 0.1\n"
    )
    _fails(
        ["regress", "check", "--baseline", str(work / "base")],
        capsys,
        "regress.metrics.sharp: unknown metric (did you mean 'sharpe'?)",
    )


def test_zero_jobs(work, capsys):
    _fails(
        ["regress", "check", "--baseline", str(work / "base"), "--jobs", "0"],
        capsys,
        "`jobs` must be an integer >= 1; got 0",
    )


def test_record_two_configs_with_one_name(work, capsys):
    twin = work / "twin.toml"
    shutil.copy(work / "small.toml", twin)
    _fails(
        ["regress", "record", str(work / "small.toml"), str(twin), "--baseline", str(work / "b2")],
        capsys,
        "two configs share the baseline file name(s) ['small.json']",
    )


def test_record_into_a_file(work, capsys):
    _fails(
        ["regress", "record", str(work / "small.toml"), "--baseline", str(work / "small.toml")],
        capsys,
        f"`--baseline` {work / 'small.toml'} is a file, not a folder; pass --baseline with a folder",
    )


def test_missing_config_file(work, capsys):
    _fails(
        ["regress", "record", str(work / "absent.toml"), "--baseline", str(work / "base")],
        capsys,
        "config file not found",
    )
