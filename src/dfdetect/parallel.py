"""Map per-video work over an executor, returning results in input order.

Backends (``executor`` param of each sharded stage):

- ``serial``: in this process (debugging, profiling, tests);
- ``process``: local worker processes (joblib's loky backend);
- any other joblib backend registered in the environment, which is how an existing
  distributed engine is used: ``dask`` (``from dask.distributed import Client; Client(...)``
  registers it) or ``ray`` (``ray.util.joblib.register_ray()``). See README, "Scaling out".

Results stream back in order (``return_as="generator"``), so the caller writes each one to the
shard as it arrives and memory stays flat as the dataset grows. Worker functions must return
plain data (arrays, dicts); exceptions they raise are returned, not raised, so a bad video
never stops the others.
"""

from __future__ import annotations

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


def _connect(executor: str, address: str | None) -> None:
    """Attach this process to a running distributed engine so joblib can use it."""
    if executor == "dask":
        from dask.distributed import Client, default_client  # noqa: PLC0415

        try:
            default_client()
        except ValueError:
            Client(address) if address else Client(processes=True)
    elif executor == "ray":
        import ray  # noqa: PLC0415
        from ray.util.joblib import register_ray  # noqa: PLC0415

        if not ray.is_initialized():
            ray.init(address=address or None)
        register_ray()


def imap(fn: Callable[[Any], Any], items: Sequence[Any], executor: str = "process",
         workers: int | None = None, desc: str | None = None, progress: bool = True,
         address: str | None = None) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Yield ``(item, result, error)`` for every item, in input order.

    ``address`` is the scheduler of an existing engine (``tcp://host:8786`` for Dask,
    ``ray://host:10001`` for Ray) when ``executor`` names one.
    """
    items = list(items)
    workers = default_workers() if not workers else int(workers)
    bar = tqdm(total=len(items), desc=desc, unit="video", disable=not progress or not items,
               dynamic_ncols=True, mininterval=0.5)
    try:
        if executor == "serial" or workers == 1 or len(items) <= 1:
            results: Iterable = (_guarded(fn, it) for it in items)
        else:
            from joblib import Parallel, delayed  # noqa: PLC0415

            backend = "loky" if executor == "process" else executor
            if backend not in ("loky", "threading", "multiprocessing"):
                _connect(backend, address)
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


def _executor_schema():
    from .config import Int, Section, Str  # noqa: PLC0415

    return Section({
        "backend": Str(pattern=r"[A-Za-z_][A-Za-z0-9_.-]*"),   # serial | process | a joblib backend
        "workers": Int(ge=0, nullable=True),                    # 0 / null: default_workers()
        "address": Str(nullable=True),
    })


# params schema of the ``executor`` section (and of stages' nested ``executor``)
EXECUTOR = _executor_schema()
