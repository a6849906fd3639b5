"""``backtest data fetch|import|list|verify|gaps``: fill and inspect the Parquet OHLCV store.

Heavy imports (ccxt, pyarrow, pandas, rich) happen inside the commands so ``backtest --help`` stays fast.
Bad input (unknown exchange, symbol or timeframe, start after end, a corrupt file) raises a
``ValueError`` subclass, which ``backtest.cli.main`` prints as one ``error: ...`` line with exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(
    help="Fetch, import and inspect market data in the Parquet store.", no_args_is_help=True
)

RootOpt = Annotated[
    Path | None,
    typer.Option("--root", "--out", help="Store folder (default: $ALPHAPULSE_DATA or ./data)."),
]


def _checked_root(root: Path | None) -> Path | None:
    """The store a command writes to (given or default) must be a folder: checked while parsing."""
    from backtest.commands import check_out_dir
    from datasets.store import OHLCVStore

    check_out_dir(OHLCVStore(root).root, "--root")
    return root


WriteRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--root",
        "--out",
        help="Store folder (default: $ALPHAPULSE_DATA or ./data).",
        callback=_checked_root,
    ),
]
ExchangeOpt = Annotated[
    str, typer.Option("--exchange", "-e", help="ccxt exchange id, e.g. binance.")
]
TimeframeOpt = Annotated[
    str, typer.Option("--timeframe", "-t", help="ccxt timeframe, e.g. 1h or 1d.")
]


def register(app: typer.Typer) -> None:
    """Attach the ``data`` command group to the main app."""
    app.add_typer(data_app, name="data")


def _store(root: Path | None):
    from datasets.store import OHLCVStore

    return OHLCVStore(root)


def _symbols(text: str | None) -> list[str] | None:
    if text is None:
        return None
    symbols = [s.strip() for s in text.split(",") if s.strip()]
    if not symbols:
        raise typer.BadParameter("give at least one symbol, e.g. --symbols BTC/USDT,ETH/USDT")
    return symbols


def _console():
    from rich.console import Console

    console = Console(highlight=False, markup=False)
    if not console.is_terminal:  # files and pipes: wide enough for the list table
        console.width = 160
    return console


@data_app.command("fetch")
def fetch(
    exchange: ExchangeOpt,
    symbols: Annotated[
        str,
        typer.Option("--symbols", "-s", help="Comma-separated ccxt symbols: BTC/USDT,ETH/USDT."),
    ],
    timeframe: TimeframeOpt = "1d",
    since: Annotated[
        str | None,
        typer.Option(help="First bar (UTC date); default: resume after the last stored bar."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last bar (UTC date); default: the last closed bar.")
    ] = None,
    root: WriteRootOpt = None,
    max_retries: Annotated[
        int,
        typer.Option(
            help="Retries per request on rate limits and exchange outages (HTTP 5xx); "
            "without network the fetch stops at once."
        ),
    ] = 5,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Download candles with ccxt into the store (only what is missing; resumable)."""
    from datasets.errors import DataError
    from datasets.exchange import check_exchange_id
    from datasets.fetch import fetch_ohlcv, prepare_exchange
    from datasets.store.format import to_utc_ms

    names = _symbols(symbols) or []
    check_exchange_id(exchange)
    store = _store(root)
    since_ms = to_utc_ms(since, "since") if since is not None else None
    until_ms = to_utc_ms(until, "until") if until is not None else None
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise DataError(f"`--since` {since} must not be after `--until` {until}")
    if since_ms is None:
        unstored = [s for s in names if store.last_timestamp(exchange, timeframe, s) is None]
        if unstored:
            raise DataError(
                f"`--since` is required: the store has no {timeframe} candles for {', '.join(unstored)} "
                f"from {exchange} to resume from (e.g. --since 2020-01-01)"
            )
    ex = prepare_exchange(exchange, names, timeframe, max_retries=max_retries)
    console = _console()
    reports = []
    with _progress_bar(console, enabled=progress) as bar:
        for symbol in names:
            task = bar.add_task(symbol, total=1.0)
            start = (
                since_ms
                if since_ms is not None
                else store.first_timestamp(exchange, timeframe, symbol)
            )

            def show(state, task=task) -> None:
                bar.update(task, completed=state.fraction)

            report = fetch_ohlcv(
                ex,
                symbol,
                timeframe,
                start,
                until_ms,
                store=store,
                max_retries=max_retries,
                progress=show,
            )
            bar.update(task, completed=1.0)
            reports.append(report)
    for report in reports:
        console.print(str(report))
    console.print(f"store: {store.root.resolve()}")


def _progress_bar(console, enabled: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:>14}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


@data_app.command("import")
def import_csv(
    file: Annotated[
        Path,
        typer.Argument(help="Long CSV (symbol,timestamp_ms,open,high,low,close,volume), .gz ok."),
    ],
    exchange: ExchangeOpt,
    timeframe: Annotated[
        str | None,
        typer.Option(
            "--timeframe", "-t", help="ccxt timeframe, e.g. 1h (default: inferred from the rows)."
        ),
    ] = None,
    symbols: Annotated[
        str | None, typer.Option("--symbols", "-s", help="Only these symbols (comma-separated).")
    ] = None,
    root: WriteRootOpt = None,
) -> None:
    """Write a long CSV dump into the store (merging with what is there; rows in any order)."""
    from datasets.csvimport import import_csv

    report = import_csv(file, _store(root), exchange, timeframe, _symbols(symbols))
    console = _console()
    for line in report.lines():
        console.print(line, soft_wrap=True)


_FILL = "`backtest data fetch` or `backtest data import`"


def _existing_store(root: Path | None):  # -> OHLCVStore (imported lazily)
    """The store at ``root`` when it is a folder; else exit 1 naming the path and the fix (a
    reading command never creates the folder)."""
    store = _store(root)
    if not store.root.is_dir():
        what = "is a file, not a folder" if store.root.exists() else "does not exist"
        _fail(
            f"the store {store.root} {what}; pass `--root` with a store folder, or fill one "
            f"with {_FILL}"
        )
    return store


@data_app.command("list")
def list_store(root: RootOpt = None) -> None:
    """Show stored series: symbols, timeframes, ranges, row counts, size; exit 1 when the store
    folder does not exist."""
    from rich.table import Table

    store = _existing_store(root)
    listing = store.inventory()
    console = _console()
    if listing.empty:
        console.print(f"the store {store.root} is empty; fill it with {_FILL}")
        return
    table = Table(title=f"OHLCV store {store.root}")
    for col in ("exchange", "timeframe", "symbol", "first", "last", "rows", "files", "size"):
        table.add_column(col, justify="right" if col in ("rows", "files", "size") else "left")
    for row in listing.itertuples(index=False):
        table.add_row(
            row.exchange,
            row.timeframe,
            row.symbol,
            f"{row.first:%Y-%m-%d %H:%M}",
            f"{row.last:%Y-%m-%d %H:%M}",
            f"{row.rows:,}",
            str(row.files),
            f"{row.bytes / 1e6:.2f} MB",
        )
    console.print(table)
    console.print(
        f"{len(listing)} series, {listing['rows'].sum():,} candles, {listing['bytes'].sum() / 1e6:.1f} MB"
    )


@data_app.command("verify")
def verify(
    root: RootOpt = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Fix what can be fixed (quarantine unreadable files, "
            "rewrite inconsistent ones, delete leftovers).",
        ),
    ] = False,
) -> None:
    """Check every file of the store; exit 2 when problems remain (run again with --repair), 1 when
    the store does not exist or holds no series."""
    from datasets.errors import StoreCorruptError

    store = _existing_store(root)
    problems = store.verify(repair=repair)
    console = _console()
    for row in problems.itertuples(index=False):
        console.print(f"{row.path}: {row.problem} -> {row.action}", soft_wrap=True)
    if problems.empty and store.inventory().empty:
        _fail(f"the store {store.root} holds no series; fill it with {_FILL}")
    if problems.empty:
        console.print(f"store {store.root}: all files readable and consistent")
    elif not repair:
        first = problems.iloc[0]
        raise StoreCorruptError(
            f"{len(problems)} problem(s) in the store {store.root}, first: {first.path}: "
            f"{first.problem}; run `backtest data verify --repair`"
        )
    else:
        console.print(f"repaired the store {store.root} ({len(problems)} finding(s) above)")


def _fail(message: str) -> None:
    """One ``error:`` line on stderr and exit code 1 (a failed check, not bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@data_app.command("gaps")
def gaps(
    exchange: ExchangeOpt,
    timeframe: TimeframeOpt,
    symbols: Annotated[
        str | None, typer.Option("--symbols", "-s", help="Comma-separated (default: all stored).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="From this UTC date.")] = None,
    end: Annotated[str | None, typer.Option(help="Up to this UTC date.")] = None,
    min_bars: Annotated[int, typer.Option(help="Only gaps of at least this many bars.")] = 1,
    root: RootOpt = None,
) -> None:
    """List missing bars per symbol (exchange outages; delisting and listing are not gaps)."""
    store = _store(root)
    found = store.gaps(exchange, timeframe, _symbols(symbols), start, end)
    found = found[found["n_bars"] >= min_bars]
    console = _console()
    for row in found.itertuples(index=False):
        console.print(
            f"{row.symbol:>12}  {row.start:%Y-%m-%d %H:%M} .. {row.end:%Y-%m-%d %H:%M}  {row.n_bars} bars"
        )
    summary = found.groupby("symbol")["n_bars"].agg(["count", "sum"]) if len(found) else None
    if summary is None:
        console.print("no gaps")
    else:
        console.print(
            f"{len(found)} gaps, {int(summary['sum'].sum())} missing bars in {len(summary)} symbols"
        )
