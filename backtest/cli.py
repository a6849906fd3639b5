"""The `backtest` command line.

Thin commands with lazy imports (so ``backtest --help`` answers fast). Each command group lives in
``backtest/commands/<name>.py`` and is registered here. Exit codes: 0 success, 1 failure, 2 bad usage,
config or input. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from backtest import __version__

app = typer.Typer(
    name="backtest",
    help="AlphaPulse Backtest: walk-forward backtests of portfolio allocation (MPT, HRP, baselines).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_STATE = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alphapulse-backtest {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    _STATE["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    from backtest.commands import register_all

    register_all(app)


def _is_input_error(exc: BaseException) -> bool:
    return isinstance(exc, (ValueError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    _register()
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="backtest", standalone_mode=False)
    except SystemExit as exc:  # typer.Exit / click exit
        return int(exc.code or 0)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.ClickException):
            exc.show()
            return 2 if isinstance(exc, click.UsageError) else 1
        if isinstance(exc, click.exceptions.Abort):
            typer.echo("aborted", err=True)
            return 1
        if _STATE["debug"]:
            raise
        code = 2 if _is_input_error(exc) else 1
        from backtest.errors import ConfigError

        if isinstance(exc, ConfigError):
            for loc, msg in exc.errors:
                typer.echo(f"error: {loc}: {msg}" if loc else f"error: {msg}", err=True)
        else:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            typer.echo(f"error: {message}", err=True)
        if code == 1:
            typer.echo("(run with --debug for the traceback)", err=True)
        return code
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
