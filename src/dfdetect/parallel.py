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

Worker lifetime (``process`` backend): workers die with the process that started them. Each
loky worker runs :func:`_worker_init` first, which asks the kernel for SIGKILL when its parent
dies (``prctl(PR_SET_PDEATHSIG)``, Linux; immediate even while the worker is busy in C code)
and starts a daemon thread that exits the worker when ``os.getppid()`` is no longer the pid it
started under (every other platform, and a parent that died before the prctl call). So a
``kill -9`` of a stage leaves no worker behind. A SIGTERM of the stage is handled like Ctrl-C
(:func:`sigterm_as_interrupt`, installed by :func:`imap` and by every stage): the
``KeyboardInterrupt`` stops the executor (joblib terminates its workers) and unwinds the
``atomic_path`` blocks, so temporary files are removed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import contextlib
import os
import signal
import sys
import threading
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


PR_SET_PDEATHSIG = 1          # <linux/prctl.h>
_WATCHDOG_INTERVAL = 0.5      # seconds between two parent checks of a worker


def _set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, interval: float) -> None:
    import time  # noqa: PLC0415

    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)   # orphaned: the parent is gone, nobody reads our results


def _worker_init(parent: int, death_signal: bool = True,
                 interval: float = _WATCHDOG_INTERVAL) -> None:
    """Initializer of every process-executor worker: die with ``parent`` (the imap process).

    ``parent`` is passed in rather than read here: if the parent already died, this worker's
    ``getppid()`` is its new reaper and the check below catches it. ``death_signal`` is False
    when imap runs outside the main thread: Linux sends the parent-death signal when the
    spawning *thread* ends, which must not kill the workers of a reused executor; the
    watchdog alone then covers a dead parent.
    """
    if death_signal:
        _set_parent_death_signal()
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, interval), daemon=True,
                     name="dfdetect-parent-watchdog").start()


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def sigterm_as_interrupt() -> bool:
    """Handle SIGTERM like Ctrl-C (``KeyboardInterrupt``) in this process, so ``finally`` blocks
    and the executor's shutdown run: workers are stopped and temporary outputs removed.

    Only from the main thread and only when SIGTERM still has its default action (a handler
    the application installed is kept). Returns whether SIGTERM now raises KeyboardInterrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _raise_interrupt:
        return True
    if current is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return True


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
    sigterm_as_interrupt()
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
            main = threading.current_thread() is threading.main_thread()
            extra = ({"initializer": _worker_init, "initargs": (os.getpid(), main)}
                     if backend == "loky" else {})
            results = Parallel(n_jobs=workers, backend=backend, return_as="generator",
                               batch_size=1, pre_dispatch="2*n_jobs", **extra)(
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


def backends() -> tuple[str, ...]:
    """The ``executor.backend`` names: serial, process (loky), dask, and every joblib backend
    registered in this process (loky, multiprocessing, threading, sequential, dask, and those
    ``joblib.register_parallel_backend`` added)."""
    import joblib.parallel as jp  # noqa: PLC0415

    return tuple(dict.fromkeys(("serial", "process", "dask", *sorted(jp.BACKENDS),
                                *sorted(getattr(jp, "EXTERNAL_BACKENDS", {})))))


def _check_backend(value, where: str) -> None:
    from .config import ParamError, did_you_mean  # noqa: PLC0415

    known = backends()
    if value not in known:
        raise ParamError(where, value, f"must be one of {', '.join(known)}{did_you_mean(value, known)}")


def _executor_schema():
    from .config import Int, Section, Str  # noqa: PLC0415

    return Section({
        "backend": Str(pattern=r"[A-Za-z_][A-Za-z0-9_.-]*", check=_check_backend),  # serial | process | joblib
        "workers": Int(ge=0, nullable=True),                    # 0 / null: default_workers()
        "address": Str(nullable=True),
    })


# params schema of the ``executor`` section (and of stages' nested ``executor``)
EXECUTOR = _executor_schema()
