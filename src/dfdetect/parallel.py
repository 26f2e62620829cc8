"""Map per-video work over an executor, returning results in input order.

Backends (``executor`` param of each sharded stage):

- ``serial``: in this process (debugging, profiling, tests);
- ``process``: local worker processes (joblib's loky backend);
- ``dask``: Dask distributed (joblib's dask backend). With ``address`` the map connects to that
  scheduler (``tcp://host:8786``) and disconnects at the end; without one it starts a local
  cluster of ``workers`` single-threaded worker processes and closes it at the end; a client
  already set up in this process is used as it is. A worker that dies mid-map loses only its
  task, which the scheduler runs again elsewhere. See README, "Scaling out".

Results stream back in order (``return_as="generator"``), so the caller writes each one to the
shard as it arrives and memory stays flat as the dataset grows. Worker functions must return
plain data (arrays, dicts); exceptions they raise are returned, not raised, so a bad video
never stops the others.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

from tqdm.auto import tqdm


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


def _guarded(fn: Callable, item: Any):
    try:
        return fn(item)
    except Exception as err:  # noqa: BLE001  (recorded by the caller)
        return _Failed(err)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@contextlib.contextmanager
def _connect(executor: str, address: str | None, workers: int) -> Iterator[str | None]:
    """Attach this process to the engine joblib's ``executor`` backend runs on, for one map;
    yields the ``backend`` argument of ``joblib.Parallel``.

    Dask: a client already set up in this process is used and left open; else one connects to
    ``address``, or to a LocalCluster started here with ``workers`` processes; both are closed
    when the map ends (finished, failed or abandoned)."""
    if executor != "dask":
        yield executor
        return
    from dask.distributed import Client, LocalCluster, default_client  # noqa: PLC0415
    from joblib import parallel_config  # noqa: PLC0415

    with contextlib.ExitStack() as stack:
        try:
            default_client()
        except ValueError:
            if address:
                stack.enter_context(Client(address))
            else:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"))
                stack.enter_context(Client(cluster))
        # joblib's dask backend is registered by parallel_config and must come from it:
        # Parallel(backend="dask") hands joblib's nesting_level to the tasks as an argument
        stack.enter_context(parallel_config(backend="dask"))
        yield None


def imap(fn: Callable[[Any], Any], items: Sequence[Any], executor: str = "process",
         workers: int | None = None, desc: str | None = None, progress: bool = True,
         address: str | None = None) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Yield ``(item, result, error)`` for every item, in input order.

    ``address`` is the scheduler of a running Dask cluster (``tcp://host:8786``) with
    ``executor="dask"``; empty starts a local one for this map.
    """
    items = list(items)
    workers = default_workers() if not workers else int(workers)
    engine = contextlib.ExitStack()
    results: Iterable = ()
    bar = tqdm(total=len(items), desc=desc, unit="video", disable=not progress or not items,
               dynamic_ncols=True, mininterval=0.5)
    try:
        if executor == "serial" or workers == 1 or len(items) <= 1:
            results = (_guarded(fn, it) for it in items)
        else:
            from joblib import Parallel, delayed  # noqa: PLC0415

            backend = "loky" if executor == "process" else executor
            backend = engine.enter_context(_connect(backend, address, workers))
            results = Parallel(n_jobs=workers, backend=backend, return_as="generator",
                               batch_size=1, pre_dispatch="2*n_jobs")(
                delayed(_guarded)(fn, it) for it in items)
        for item, res in zip(items, results):
            bar.update(1)
            if isinstance(res, _Failed):
                yield item, None, res.error
            else:
                yield item, res, None
    finally:
        bar.close()
        getattr(results, "close", lambda: None)()   # stop the map before its engine goes
        engine.close()
