"""Reading a regression check: one headline per experiment, a table of what moved, the notes.

Used by ``backtest regress check`` and by the pytest plugin's failure message; imports rich only.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backtest.regress.comparison import Change, Comparison
    from backtest.regress.suite import CheckReport


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
