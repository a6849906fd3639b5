"""Inter-process locks for store partitions (``filelock``; released when the holder dies)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from datasets.errors import DataError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def partition_lock(directory: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold the exclusive lock of one store partition directory (created if missing).

    Writers to the same partition are serialised; readers never lock (files are replaced
    atomically, so a reader sees the old or the new file, never half of one).

    Parameters
    ----------
    directory : Path
        The partition (``.../symbol=BTC_USDT``); the lock file is ``directory / ".lock"``.
    timeout : float
        Seconds to wait for another writer before giving up.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise DataError(
            f"another process has been writing {directory} for more than {timeout:g} s; "
            "wait for it to finish (the lock is released automatically when it exits)"
        ) from exc
    try:
        yield
    finally:
        lock.release()
