"""The `backtest` command line.

Thin commands with lazy imports (so ``backtest --help`` answers fast). Each command group lives in
``backtest/commands/<name>.py`` and is registered here. Exit codes: 0 success, 1 failure, 2 bad usage,
config or input. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import errno
import functools
import logging
import re
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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    _STATE["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@functools.cache
def _register() -> None:
    """Add the command groups to ``app``, once per process (``main`` may be called many times:
    registering again would add every command again, and each call would walk them all)."""
    from backtest.commands import register_all

    register_all(app)


def _is_input_error(exc: BaseException) -> bool:
    return isinstance(
        exc, (ValueError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError)
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    _register()
    args = sys.argv[1:] if argv is None else argv
    try:
        # standalone_mode=False: click returns the code of `typer.Exit(n)` instead of exiting
        code = app(args=args, prog_name="backtest", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except typer.TyperException as exc:  # click's usage and parameter errors (exit code 2)
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:
        return _report(exc)
    return code if isinstance(code, int) else 0


def _report(exc: Exception) -> int:
    """Print one line for an error and choose the exit code (2: bad input, 1: failure)."""
    if _STATE["debug"]:
        raise exc
    from backtest.errors import ConfigError

    code = 2 if _is_input_error(exc) else 1
    if isinstance(exc, ConfigError):
        for loc, msg in exc.errors:
            typer.echo(f"error: {loc}: {msg}" if loc else f"error: {msg}", err=True)
    else:
        typer.echo(f"error: {describe_error(exc)}", err=True)
    if code == 1 and not isinstance(exc, OSError):  # an OS or network error says all there is
        typer.echo("(run with --debug for the traceback)", err=True)
    return code


_OS_HINTS = {
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EISDIR: "a folder is in the way: move it or choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "check the path",
    errno.ENOSPC: "free some disk space or choose another path",
    errno.EROFS: "choose a writable path",
}


def describe_error(exc: BaseException) -> str:
    """The first line of an error as a plain sentence, never with the OS's ``[Errno N]`` prefix.

    An OS error becomes "cannot access PATH: cause; how to fix"
    (``PermissionError(13, "Permission denied", "out/x")`` ->
    "cannot access out/x: permission denied; check its permissions or choose another path").
    """
    if isinstance(exc, OSError) and exc.strerror:
        paths = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
        cause = exc.strerror[:1].lower() + exc.strerror[1:]
        text = f"cannot access {' -> '.join(paths)}: {cause}" if paths else cause
        hint = _OS_HINTS.get(exc.errno or 0)
        return f"{text}; {hint}" if hint else text
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"\[Errno -?\d+\]\s*", "", first)  # an OS error's text inside another message


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
