"""The account journal: an append-only Parquet record of snapshots, plans, orders and fills.

Layout, one folder per account (``<root>/<account>/``)::

    _commits/000001.json          one file per commit: its sequence number and its part files
    snapshots/part-000001-0.parquet
    plans/part-000001-0.parquet
    orders/part-000002-0.parquet
    fills/part-000002-0.parquet
    .lock

A commit (:meth:`Journal.append`) writes one new part file per table (temp name, fsync,
``os.replace``), then its manifest ``_commits/<seq>.json`` the same way; readers read only the parts
that a manifest lists. A process killed half-way through a commit therefore leaves parts that no
reader sees (the next commit gets a fresh part name beside them; nothing is ever rewritten), and
several tables written together appear together or not at all. Writers hold the account's lock
(:func:`datasets.store.lock.partition_lock`), so two writers cannot interleave.

No credential is ever written: every text cell passes through the journal's ``redact`` function
(the connector's, which masks its key and secret) and the values of ``EXCHANGE_API_KEY`` /
``EXCHANGE_API_SECRET`` are masked as well.

Tables (columns; ``time`` is UTC, ``step`` the commit's sequence number):

* ``snapshots``: one row per asset (cash included) per snapshot: ``time, step, asset, holding,
  price, value, current_weight, target_weight, total_value, score, strategy, config_hash, dry_run,
  kind``;
* ``plans``: one row per planned trade: ``time, step, symbol, asset, side, amount, price, value,
  limit_price, fee, slippage, estimated_cost, current_weight, target_weight, n_slices``;
* ``orders``: one row per order event (``intent`` before it is sent, then each status seen):
  ``time, step, client_order_id, order_id, symbol, side, amount, limit_price, status, filled,
  average, fee``;
* ``fills``: one row per fill: ``time, step, client_order_id, symbol, side, amount, price, fee``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.errors import LiveError
from datasets.store.format import write_atomic

TABLES: dict[str, tuple[str, ...]] = {
    "snapshots": (
        "time",
        "step",
        "asset",
        "holding",
        "price",
        "value",
        "current_weight",
        "target_weight",
        "total_value",
        "score",
        "strategy",
        "config_hash",
        "dry_run",
        "kind",
    ),
    "plans": (
        "time",
        "step",
        "symbol",
        "asset",
        "side",
        "amount",
        "price",
        "value",
        "limit_price",
        "fee",
        "slippage",
        "estimated_cost",
        "current_weight",
        "target_weight",
        "n_slices",
    ),
    "orders": (
        "time",
        "step",
        "client_order_id",
        "order_id",
        "symbol",
        "side",
        "amount",
        "limit_price",
        "status",
        "filled",
        "average",
        "fee",
    ),
    "fills": ("time", "step", "client_order_id", "symbol", "side", "amount", "price", "fee"),
}
_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_MASK = "***"
_SECRET_ENV = ("EXCHANGE_API_KEY", "EXCHANGE_API_SECRET")


class Journal:
    """Append-only, atomic journal of one account under ``root``.

    Parameters
    ----------
    root : str or Path
        Folder holding one sub-folder per account (``backtest rebalance``'s default is the Parquet
        store root's ``journal/``).
    account : str
        Account name: letters, digits, ``_``, ``-``, ``.`` (``"binance-main"``).
    redact : callable, optional
        Applied to every text cell before it is written (e.g. ``connector.redact``).

    Examples
    --------
    >>> import tempfile
    >>> journal = Journal(tempfile.mkdtemp(), "demo")
    >>> rows = snapshot_frame(
    ...     pd.Timestamp("2022-01-01", tz="UTC"), {"BTC": 0.5, "USDT": 100.0},
    ...     {"BTC": 200.0}, {"BTC": 0.5, "USDT": 0.5}, {"BTC": 0.6, "USDT": 0.4},
    ...     strategy="hrp", config_hash="abc", dry_run=True,
    ... )
    >>> journal.append({"snapshots": rows})
    1
    >>> journal.read("snapshots")[["asset", "value", "target_weight", "step"]]
      asset  value  target_weight  step
    0   BTC  100.0            0.6     1
    1  USDT  100.0            0.4     1
    """

    def __init__(
        self,
        root: str | Path,
        account: str,
        *,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
            raise LiveError(
                "`account` must be a folder name of letters, digits, '_', '-' and '.' (not starting "
                f"with '.' or '-'); got {account!r}"
            )
        self.root = Path(root)
        self.account = account
        self.path = self.root / account
        self.redact = redact

    def __repr__(self) -> str:
        return f"Journal({str(self.root)!r}, {self.account!r})"

    # ------------------------------------------------------------------ reading
    def commits(self) -> list[dict[str, Any]]:
        """The committed manifests in order (``seq``, ``time``, ``parts``: table -> file)."""
        folder = self.path / "_commits"
        if not folder.is_dir():
            return []
        out = []
        for file in sorted(folder.glob("[0-9]*.json")):
            out.append(json.loads(file.read_text()))
        return out

    def read(self, table: str) -> pd.DataFrame:
        """All committed rows of ``table`` in commit order (an empty frame with the table's columns
        when there are none)."""
        columns = _columns(table)
        parts = [c["parts"][table] for c in self.commits() if table in c["parts"]]
        if not parts:
            return pd.DataFrame(columns=list(columns))
        frames = [pd.read_parquet(self.path / p) for p in parts]
        return pd.concat(frames, ignore_index=True)[list(columns)]

    def snapshots(self) -> pd.DataFrame:
        return self.read("snapshots")

    def plans(self) -> pd.DataFrame:
        return self.read("plans")

    def orders(self) -> pd.DataFrame:
        """Every order event (``intent``, then each status seen)."""
        return self.read("orders")

    def fills(self) -> pd.DataFrame:
        return self.read("fills")

    def open_orders(self) -> pd.DataFrame:
        """The last event of each order whose last status is not final (``intent`` or ``open``):
        the orders that may still rest on the exchange."""
        orders = self.orders()
        if orders.empty:
            return orders
        first = orders.drop_duplicates("client_order_id")["client_order_id"].tolist()
        last = orders.drop_duplicates("client_order_id", keep="last").set_index("client_order_id")
        last = last.loc[first].reset_index()[list(orders.columns)]  # in the order first recorded
        return last[last["status"].isin(["intent", "open"])].reset_index(drop=True)

    def last_time(self) -> pd.Timestamp | None:
        """Time of the last committed snapshot (None when there is none)."""
        snaps = self.snapshots()
        return None if snaps.empty else pd.Timestamp(snaps["time"].iloc[-1])

    # ------------------------------------------------------------------ writing
    def append(self, tables: Mapping[str, pd.DataFrame]) -> int:
        """Commit rows to one or more tables at once; returns the commit's sequence number.

        Each frame needs the table's columns except ``step`` (set to the sequence number); extra
        columns are refused. Empty frames are skipped.
        """
        from datasets.store.lock import partition_lock

        frames = {t: f for t, f in tables.items() if _check(t, f) and len(f)}
        with partition_lock(self.path):
            seq = len(self.commits()) + 1
            parts = {}
            for table, frame in frames.items():
                frame = self._clean(frame.assign(step=seq), table)
                name = _fresh_part(self.path / table, seq)
                _atomic_parquet(frame, self.path / table / name)
                parts[table] = f"{table}/{name}"
            manifest = {"seq": seq, "parts": parts}
            _atomic_text(
                json.dumps(manifest, sort_keys=True), self.path / "_commits" / f"{seq:06d}.json"
            )
        return seq

    def _clean(self, frame: pd.DataFrame, table: str) -> pd.DataFrame:
        frame = frame[list(TABLES[table])].reset_index(drop=True)
        secrets = [os.environ[v] for v in _SECRET_ENV if os.environ.get(v)]
        for column in frame.columns:
            if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
                frame[column] = frame[column].map(lambda v: self._mask(v, secrets))
        return frame

    def _mask(self, value: Any, secrets: list[str]) -> Any:
        if not isinstance(value, str):
            return value
        if self.redact is not None:
            value = self.redact(value)
        for secret in secrets:
            value = value.replace(secret, _MASK)
        return value


def mask_secrets(text: str) -> str:
    """``text`` with the values of ``EXCHANGE_API_KEY`` / ``EXCHANGE_API_SECRET`` replaced by ``***``.

    >>> mask_secrets("no key here")
    'no key here'
    """
    for secret in (os.environ[v] for v in _SECRET_ENV if os.environ.get(v)):
        text = text.replace(secret, _MASK)
    return text


# ---------------------------------------------------------------------------------- row builders
def decision_snapshot(
    time: pd.Timestamp, analyzer: Any, result: Any, plan: Any, cfg: Any, *, dry_run: bool = False
) -> pd.DataFrame:
    """:func:`snapshot_frame` of one decision: the analyzer's holdings and prices, the analysis'
    current and target weights and strategy, the plan's score and the config's hash (the one
    snapshot ``backtest rebalance`` and the paper replay both write)."""
    return snapshot_frame(
        time,
        analyzer.holdings,
        analyzer.prices,
        result.current_weights,
        result.weights,
        score=plan.score,
        strategy=result.diagnostics["strategy"],
        config_hash=config_hash(cfg),
        dry_run=dry_run,
    )


def snapshot_frame(
    time: pd.Timestamp,
    holdings: Mapping[str, float],
    prices: Mapping[str, float],
    current: Mapping[str, float],
    target: Mapping[str, float],
    *,
    score: float = float("nan"),
    strategy: str = "",
    config_hash: str = "",
    dry_run: bool = False,
    kind: str = "rebalance",
) -> pd.DataFrame:
    """Rows of one snapshot: one per asset held or targeted (the cash asset, priced 1, is the one
    without a price).

    Parameters
    ----------
    time : Timestamp
        UTC time of the snapshot (the exchange's or the simulation's clock).
    holdings : mapping of str to float
        Units held per asset, cash included.
    prices : mapping of str to float
        Last price per risky asset.
    current, target : mapping of str to float
        Weights before and after the rebalance (each summing to 1).
    kind : str
        ``"rebalance"`` (a decision) or ``"mark"`` (a valuation only, no target).
    """
    assets = list(dict.fromkeys([*holdings, *current, *target]))
    price = [float(prices.get(a, 1.0)) for a in assets]
    units = [float(holdings.get(a, 0.0)) for a in assets]
    values = [u * p for u, p in zip(units, price, strict=True)]
    total = float(sum(values))
    return pd.DataFrame(
        {
            "time": pd.Timestamp(time),
            "asset": assets,
            "holding": units,
            "price": price,
            "value": values,
            "current_weight": [float(current.get(a, 0.0)) for a in assets],
            "target_weight": [float(target.get(a, 0.0)) for a in assets],
            "total_value": total,
            "score": float(score),
            "strategy": strategy,
            "config_hash": config_hash,
            "dry_run": bool(dry_run),
            "kind": kind,
        }
    )


def plan_frame(time: pd.Timestamp, plan: Any) -> pd.DataFrame:
    """Rows of a :class:`~backtest.live.results.RebalancePlan`: one per trade."""
    rows = [
        {
            "time": pd.Timestamp(time),
            "symbol": t.symbol,
            "asset": t.asset,
            "side": t.side,
            "amount": float(t.amount),
            "price": float(t.price),
            "value": float(t.value),
            "limit_price": float(t.limit_price),
            "fee": float(t.fee),
            "slippage": float(t.slippage),
            "estimated_cost": float(t.fee + t.slippage),
            "current_weight": float(t.current_weight),
            "target_weight": float(t.target_weight),
            "n_slices": len(t.slices),
        }
        for t in plan
    ]
    return pd.DataFrame(rows, columns=[c for c in TABLES["plans"] if c != "step"])


def config_hash(config: Any) -> str:
    """First 16 hex digits of the SHA-256 of a config's resolved JSON (``ExperimentConfig`` or a
    plain mapping), key order ignored.

    >>> config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})
    True
    """
    import hashlib

    data = config.resolved() if hasattr(config, "resolved") else config
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------- file helpers
def _columns(table: str) -> tuple[str, ...]:
    if table not in TABLES:
        raise LiveError(f"`table` must be one of {sorted(TABLES)}; got {table!r}")
    return TABLES[table]


def _check(table: str, frame: pd.DataFrame) -> bool:
    columns = set(_columns(table)) - {"step"}
    if not isinstance(frame, pd.DataFrame):
        raise LiveError(f"`{table}` rows must be a DataFrame; got {type(frame).__name__}")
    missing, extra = columns - set(frame.columns), set(frame.columns) - columns - {"step"}
    if missing or extra:
        raise LiveError(
            f"`{table}` rows must have the columns {sorted(columns)}; missing {sorted(missing)}, "
            f"unknown {sorted(extra)}"
        )
    return True


def _fresh_part(folder: Path, seq: int) -> str:
    """A part name for commit ``seq`` that no file has (a killed commit may have left one)."""
    attempt = 0
    while (folder / f"part-{seq:06d}-{attempt}.parquet").exists():
        attempt += 1
    return f"part-{seq:06d}-{attempt}.parquet"


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    write_atomic(path, lambda fh: pq.write_table(table, fh, compression="zstd"))


def _atomic_text(text: str, path: Path) -> None:
    write_atomic(path, lambda fh: fh.write(text.encode()))
