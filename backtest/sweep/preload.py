"""What a local Dask worker holds before its first task: imported once by the forkserver that starts
the workers of :func:`backtest.sweep.routes.dask_client` (``set_forkserver_preload``).

Every worker forked from that server starts with the engine's modules imported and numba's CPU
target initialised, instead of each spawned worker doing it again (on a 2-core machine about 2 s of
Python and Dask start-up, 2 s of imports and 2 s of numba start-up per worker). The other kernels a
sweep needs are read from the on-disk numba cache by each worker on its first task; the parent
compiles them before the cluster starts, so workers only read the cache. ``gc.freeze()`` at the
end moves the server's 200,000 objects out of the collector's reach: a worker's collections no
longer walk them (nor copy their memory pages). Design: docs/sweeps.md.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os

from backtest.config import ExperimentConfig
from backtest.sweep.grid import GridPoint
from backtest.sweep.routes import WORKER_SERVER_FLAG
from backtest.sweep.task import warm_kernels

#: What the tasks of sweeps and bootstraps import.
MODULES = (
    "backtest.experiment",
    "backtest.pipeline",
    "backtest.walkforward",
    "backtest.robustness.run",
    "reports.metrics",
)

for _name in MODULES:
    importlib.import_module(_name)
if os.environ.get(WORKER_SERVER_FLAG) == "1":  # in the server only (pytest imports every module)
    # the default backtest on a tiny market: numba's CPU target (its registries load on the first
    # call of any kernel, about 1 s) and the kernels every backtest runs (simulation, metrics).
    # Only a speed-up: a failure here must not kill the server (multiprocessing would then report
    # an EOFError, not the cause), so it is logged and the workers warm on their first task.
    try:
        warm_kernels([GridPoint("preload", {}, ExperimentConfig())])
    except Exception as exc:
        logging.getLogger(__name__).warning("worker server warm-up skipped: %s", exc)
    gc.freeze()
