"""`backtest regress record|check`: golden baselines for CI regression on returns.

``record`` runs each config and writes ``<experiment>.json`` into the baseline folder; ``check`` reruns
and compares (exit 0 every value holds, 1 a regression, 2 the input data changed or bad input);
``check --update`` rewrites the baselines after an intended change. See docs/regression.md.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from backtest.commands import check_out_dir

if TYPE_CHECKING:
    from backtest.regress import Change, CheckReport, Comparison

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


# ------------------------------------------------------------------------------------------ output
def render(report: CheckReport, console: Any) -> None:
    """Print one headline per experiment, a table of what moved, and the notes."""
    from rich.markup import escape

    for comp in report.comparisons:
        console.print(headline(comp))
        if comp.changes:
            console.print(change_table(comp))
        for note in comp.notes[1:] if comp.status == "data_changed" else comp.notes:
            console.print(f"  note: {escape(note)}", highlight=False)


def render_text(report: CheckReport, width: int = 140) -> str:
    """:func:`render` as plain text (for pytest failure messages)."""
    from rich.console import Console

    buffer = io.StringIO()
    render(report, Console(file=buffer, width=width, color_system=None, force_terminal=False))
    return buffer.getvalue()


def headline(comp: Comparison) -> str:
    from rich.markup import escape

    where = escape(f"({comp.baseline_path})")
    if comp.status == "data_changed":
        return f"[yellow bold]NOT COMPARABLE[/] {escape(comp.experiment)}: {escape(comp.notes[0])} {where}"
    if comp.status == "regression":
        return f"[red bold]REGRESSION[/] {escape(comp.experiment)}: {len(comp.failures)} item(s) beyond tolerance {where}"
    held = ", ".join(f"{n} {what}" for what, n in comp.compared.items())
    moved = (
        " (some values moved within tolerance)"
        if any(c.section != "config" for c in comp.changes)
        else ""
    )
    return f"[green bold]ok[/] {escape(comp.experiment)}: {held or 'recorded'} hold{moved} {where}"


def change_table(comp: Comparison) -> Any:
    """A rich table: item, baseline, current, change, relative change, tolerance, status."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("what moved", overflow="fold")
    for title in ("baseline", "current", "change", "rel. change"):
        table.add_column(title, justify="right", overflow="fold")
    table.add_column("tolerance (abs + rel)", overflow="fold")
    table.add_column("status", overflow="fold")
    for change in comp.changes:
        item = escape(change.item) + (
            f"\n  [dim]{escape(change.detail)}[/]" if change.detail else ""
        )
        table.add_row(
            item,
            escape(_value(change.baseline)),
            escape(_value(change.current)),
            *_deltas(change),
            _tolerance(change),
            _status(change),
        )
    return table


def _value(value: Any) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _deltas(change: Change) -> tuple[str, str]:
    d, r = change.abs_diff, change.rel_diff
    return ("" if d is None else f"{d:+.4g}", "" if r is None else f"{100 * r:+.3g}%")


def _tolerance(change: Change) -> str:
    if change.tolerance is None:
        return "" if change.section == "config" else "must match"
    a, r = change.tolerance
    return f"abs {a:g}, rel {r:g}"


def _status(change: Change) -> str:
    if change.section == "config":
        return "config change"
    return "[red]FAIL[/]" if change.failed else "ok"


def _console() -> Any:
    from rich.console import Console

    # a CI log is not a terminal: keep the table wide enough to read unless COLUMNS says otherwise
    return Console() if sys.stdout.isatty() or "COLUMNS" in os.environ else Console(width=160)


def register(app: typer.Typer) -> None:
    app.add_typer(regress_app, name="regress")
