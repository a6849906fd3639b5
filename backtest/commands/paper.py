"""``backtest paper CONFIG --replay START:END [--journal DIR]``: the live pipeline on a paper account.

Replays the config's strategy over history (``[data]``) day by day at its rebalance schedule: the
analyzer, the plan, limit orders filled by the paper exchange, everything recorded in the
account's journal (:mod:`backtest.live.replay`). A second call continues after the journal's last
snapshot. Prints the account's growth beside the backtest's for the same config and period.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtest.commands import check_out_dir


def register(app: typer.Typer) -> None:
    """Attach ``paper`` to the main app."""
    app.command("paper")(paper)


def paper(
    config: Annotated[
        Path,
        typer.Argument(help="Experiment config (TOML); [live] mode = 'paper'.", show_default=False),
    ],
    replay: Annotated[
        str,
        typer.Option(
            "--replay", help="START:END dates (UTC) to replay, e.g. 2022-01-01:2022-06-30."
        ),
    ],
    journal: Annotated[
        Path | None,
        typer.Option("--journal", help="Journal root; default: the store root's journal/."),
    ] = None,
) -> None:
    """Replay the strategy on a paper account over history into the journal (resumable)."""
    from backtest.commands.rebalance import open_journal
    from backtest.config import LiveConfig, load_config
    from backtest.errors import ConfigError
    from backtest.live.replay import backtest_beside
    from backtest.live.replay import replay as run_replay

    cfg = load_config(config)
    if (cfg.live or LiveConfig.model_validate({})).mode != "paper":
        raise ConfigError([("live.mode", '`backtest paper` needs [live] mode = "paper"')])
    start, sep, end = replay.partition(":")
    if not (sep and start and end):
        raise ConfigError(
            [("", f"`--replay` must be START:END such as 2022-01-01:2022-06-30; got {replay!r}")]
        )
    if journal is not None:
        check_out_dir(journal, "--journal")
    book = open_journal(cfg, journal)
    result = run_replay(cfg, start, end, book)
    bt = backtest_beside(cfg, start, end).equity
    bt_growth = float(bt.iloc[-1] / bt.iloc[0] - 1.0)
    typer.echo(
        f"{book!r}: {result.steps} decision(s) replayed; paper growth {result.growth:+.2%}, "
        f"backtest {bt_growth:+.2%} (difference {result.growth - bt_growth:+.2%})"
    )
