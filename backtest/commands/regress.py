"""`backtest regress record|check`: golden baselines for CI regression on returns.

``record`` runs each config and writes ``<experiment>.json`` into the baseline folder; ``check`` reruns
and compares (exit 0 every value holds, 1 a regression, 2 the input data changed or bad input);
``check --update`` rewrites the baselines after an intended change. See docs/regression.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from backtest.commands import check_out_dir

BaselineOption = Annotated[
    Path,
    typer.Option(
        "--baseline",
        "-b",
        help="Folder of baseline JSON files (one per experiment).",
        show_default=False,
    ),
]
JobsOption = Annotated[
    int,
    typer.Option(
        "--jobs", "-j", help="Experiments run in parallel (processes); results do not depend on it."
    ),
]

regress_app = typer.Typer(
    help="Golden baselines for CI regression on returns (record, check).", no_args_is_help=True
)


@regress_app.command("record")
def record(
    configs: Annotated[
        list[Path], typer.Argument(help="Experiment configs (TOML) to record.", show_default=False)
    ],
    baseline: BaselineOption,
    jobs: JobsOption = 1,
) -> None:
    """Run each experiment and write its baseline (metrics, equity fingerprint, weights, data hash)."""
    from backtest import regress

    check_out_dir(baseline, "--baseline")
    console = _console()
    for path in regress.record(configs, baseline, jobs=jobs):
        console.print(f"recorded {path}")


@regress_app.command("check")
def check(
    baseline: BaselineOption,
    configs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Only these configs (default: every baseline in the folder, with the config it was recorded from).",
            show_default=False,
        ),
    ] = None,
    update: Annotated[
        bool,
        typer.Option(
            "--update", help="Rewrite the baselines that changed (after an intended change)."
        ),
    ] = False,
    jobs: JobsOption = 1,
) -> None:
    """Rerun the experiments and compare with their baselines; exit 1 on a regression, 2 if the data changed."""
    from backtest import regress
    from backtest.regress.display import render

    report = regress.check(baseline, configs or None, update=update, jobs=jobs)
    console = _console()
    render(report, console)
    if update:
        for path in report.updated:
            console.print(f"updated {path}")
        if not report.updated:
            console.print("nothing to update: every baseline already matches")
        return
    code = report.exit_code
    if code == 1:
        names = ", ".join(c.experiment for c in report.comparisons if c.status == "regression")
        typer.echo(
            f"regression: {names} moved beyond tolerance (see the table); if the change is intended, "
            f"run `backtest regress check --baseline {baseline} --update`",
            err=True,
        )
    elif code == 2:
        for comp in report.comparisons:
            if comp.status == "data_changed":
                typer.echo(
                    f"not comparable: {comp.experiment}: {comp.notes[0]}; if intended, re-record with "
                    f"`backtest regress check --baseline {baseline} --update`",
                    err=True,
                )
    if code:
        raise SystemExit(code)  # not typer.Exit: click returns its code and cli.main would drop it


def _console() -> Any:
    from rich.console import Console

    # a CI log is not a terminal: keep the table wide enough to read unless COLUMNS says otherwise
    return Console() if sys.stdout.isatty() or "COLUMNS" in os.environ else Console(width=160)


def register(app: typer.Typer) -> None:
    app.add_typer(regress_app, name="regress")
