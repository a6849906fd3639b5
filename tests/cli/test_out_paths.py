"""`--out` (and the store's `--root`) pointing at an existing file: one line, exit 2, before any work;
OS errors reach the user as plain sentences, never as raw ``[Errno N]`` text."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from backtest.cli import describe_error, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SMALL = """
name = "small"
[data]
source = "synthetic"
n_assets = 4
n_bars = 200
seed = 3
[strategy]
name = "equal_weight"
lookback_days = 30
[rebalance]
every = "1M"
"""


@pytest.fixture
def taken(tmp_path: Path) -> Path:
    path = tmp_path / "taken.txt"
    path.write_text("not a folder\n")
    return path


def _one_error(capsys, args: list[str]) -> tuple[int, str]:
    code = main(args)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Errno" not in out + err
    return code, lines[0]


FETCH = ["data", "fetch", "-e", "binance", "-s", "BTC/USDT", "--since", "2022-01-01"]
COMMANDS: dict[str, list] = {  # each command's arguments before the output path
    "run": ["run", EXAMPLES / "demo.toml", "--out"],
    "compare": ["compare", EXAMPLES / "compare.toml", "--out"],
    "report": ["report", ROOT / "absent-result", "--out"],
    "sweep": ["sweep", EXAMPLES / "sweep.toml", "-j", "1", "--out"],
    "rebalance": ["rebalance", EXAMPLES / "live.toml", "--out"],
    "regress record": ["regress", "record", EXAMPLES / "demo.toml", "--baseline"],
    "data fetch": [*FETCH, "--out"],
    "data import": ["data", "import", ROOT / "absent.csv", "-e", "binance", "--out"],
}


def _args(command: str, out: Path) -> list[str]:
    return [str(a) for a in (*COMMANDS[command], out)]


@pytest.mark.parametrize("command", COMMANDS)
def test_out_is_an_existing_file(command, taken, capsys):
    code, line = _one_error(capsys, _args(command, taken))
    option = {"regress record": "--baseline", "data fetch": "--root", "data import": "--root"}
    name = option.get(command, "--out")
    assert code == 2
    assert line == (
        f"error: `{name}` {taken} is a file, not a folder; pass {name} with a folder path "
        "(created if missing) or move the file away"
    )


def test_out_under_a_file_names_the_file(taken, capsys):
    code, line = _one_error(capsys, _args("run", taken / "sub" / "run"))
    assert code == 2
    assert f"`--out` {taken / 'sub' / 'run'} lies under the file {taken}, not a folder" in line


def test_the_default_output_folder_is_checked_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("out").write_text("a file where the default output folder goes\n")
    code, line = _one_error(capsys, ["run", str(EXAMPLES / "demo.toml")])
    assert code == 2
    assert line.startswith(f"error: `--out` {Path('out') / 'demo'} lies under the file out")


def test_compare_fails_before_loading_data_or_running_a_strategy(taken, monkeypatch, capsys):
    import backtest.experiment

    calls: list[str] = []
    for name in ("load_market", "run_experiment", "common_start"):
        monkeypatch.setattr(backtest.experiment, name, lambda *a, _n=name, **k: calls.append(_n))
    code, line = _one_error(capsys, _args("compare", taken))
    assert code == 2 and "`--out`" in line
    assert calls == []


def test_a_folder_in_the_way_of_an_output_file_is_a_plain_sentence(tmp_path, capsys):
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    out = tmp_path / "run"
    (out / "config.toml").mkdir(parents=True)  # the run writes its resolved config here
    code = main(["run", str(config), "--out", str(out), "--no-html"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == (
        f"error: cannot access {out / 'config.toml'}: is a directory; "
        "a folder is in the way: move it or choose another path\n"
    )


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "out/x"),
            "cannot access out/x: permission denied; check its permissions or choose another path",
        ),
        (
            OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"),
            "cannot access a -> b: invalid cross-device link",
        ),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "network is unreachable"),
        (
            RuntimeError("the sweep stopped (PermissionError: [Errno 13] Permission denied: 'o')"),
            "the sweep stopped (PermissionError: Permission denied: 'o')",
        ),
        (ConnectionError("binance: network unreachable"), "binance: network unreachable"),
    ],
    ids=["permission", "two-paths", "no-path", "nested", "no-errno"],
)
def test_os_errors_read_as_sentences(exc, text):
    assert describe_error(exc) == text


def test_permission_denied_through_the_cli(tmp_path, monkeypatch, capsys):
    """Root ignores file modes, so the write fails the way a read-only folder makes it fail."""
    import backtest.experiment

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "run" / "x"))

    monkeypatch.setattr(backtest.experiment, "write_outputs", denied)
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    code = main(["run", str(config), "--out", str(tmp_path / "run"), "--no-html"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err == (
        f"error: cannot access {tmp_path / 'run' / 'x'}: permission denied; "
        "check its permissions or choose another path\n"
    )
