"""``backtest track JOURNAL [--config CONFIG] --out DIR``: an account's history against its backtest.

Reads the account's journal (``JOURNAL`` is the account's folder, e.g. ``out/journal/binance-paper``)
and writes the tables (``values.csv``, ``weights.csv``, ``rebalances.csv``, ``summary.json``) and an
HTML page: value over time, weights, rebalancing scores and drift, realised against estimated costs,
the implementation shortfall of each rebalance and, with ``--config`` (the config the account ran),
the backtest of the same strategy over the same period beside it (:mod:`backtest.live.track`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtest.commands import check_out_dir


def register(app: typer.Typer) -> None:
    """Attach ``track`` to the main app."""
    app.command("track")(track)


def track(
    journal: Annotated[
        Path,
        typer.Argument(
            help="The account's journal folder (<journal root>/<account>).", show_default=False
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="The config the account ran: adds the backtest beside it."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (default: out/<account>-track)."),
    ] = None,
) -> None:
    """Value, weights, scores, drift, costs and shortfall of an account, beside its backtest."""
    from backtest.config import load_config
    from backtest.errors import LiveError
    from backtest.live.journal import Journal
    from backtest.live.track import track as track_account
    from backtest.live.track import write_track

    if not (journal / "_commits").is_dir():
        raise LiveError(
            f"`JOURNAL` {journal} is not an account journal (no _commits folder); pass the "
            "account's folder, e.g. out/journal/binance-paper"
        )
    book = Journal(journal.resolve().parent, journal.resolve().name)
    folder = check_out_dir(out or Path("out") / f"{book.account}-track")
    cfg = load_config(config) if config is not None else None
    result = track_account(book, cfg)
    paths = write_track(result, folder)
    s = result.summary
    line = f"{book.account}: {s['start']} to {s['end']}, {s['n_rebalances']} rebalance(s); growth {s['growth']:+.2%}"
    if cfg is not None:
        line += f", backtest {s['backtest_growth']:+.2%} (difference {s['difference']:+.2%})"
    typer.echo(line)
    typer.echo(
        f"costs: estimated {s['estimated_cost']:,.2f}, realised {s['realised_cost']:,.2f}, "
        f"shortfall {s['shortfall_bps']:.1f} bps of the planned value"
    )
    typer.echo(f"report: {paths['html']}")
