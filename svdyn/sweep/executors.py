"""Executors for sweep chunks: in-process, local processes, Dask, or any concurrent.futures one.

* ``inprocess`` (default): chunks one after another in this process, each parallel over the
  cores through numba's ``prange`` (no server, no extra dependency).
* ``processes``: a ``ProcessPoolExecutor`` of N spawned workers, one numba thread each
  (``NUMBA_NUM_THREADS=1`` is in their environment before numba loads), kernels warmed once
  per worker; SIGINT is left to the parent. A worker that dies breaks the pool: the runner
  restarts it and resubmits the chunks that were in flight.
* ``dask``: a ``distributed.LocalCluster`` of N worker processes (1 thread each, the same
  environment) -- or an existing cluster with ``scheduler="tcp://HOST:8786"`` -- driven through
  ``Client.get_executor()``. Dask reschedules the chunks of a worker that dies.
* any ``concurrent.futures.Executor`` passed from Python (e.g. ``Client.get_executor()`` of a
  dask-jobqueue ``SLURMCluster``): used as given.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import time

from ..groups import SpecError
from . import worker

EXECUTORS = ("inprocess", "processes", "dask")


def _exit_with_parent(poll: float = 1.0) -> None:
    """A daemon thread that ends this worker within ``poll`` s of its parent's death (a parent
    killed by SIGTERM/SIGKILL otherwise leaves workers computing a chunk nobody will read:
    seen after ``kill`` of ``svdyn sweep run``, two orphans kept running for 45 min)."""
    import threading
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os._exit(1)
    threading.Thread(target=watch, name="svdyn-parent-watch", daemon=True).start()


def _worker_init(normal):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    _exit_with_parent()
    worker.single_thread()
    try:
        worker.warm_once(normal)
    except Exception:  # warming is best effort; the chunk itself reports errors
        pass


class Pool:
    """A started executor plus what the runner needs: ``submit``, ``restart`` (or None),
    ``window`` (chunks kept in flight), ``describe`` and ``close``."""

    def __init__(self, executor, describe: dict, window: int, restart=None, close=None):
        self.executor = executor
        self.describe = describe
        self.window = max(1, int(window))
        self._restart = restart
        self._close = close

    @property
    def restartable(self) -> bool:
        return self._restart is not None

    def submit(self, payload):
        return self.executor.submit(worker.run_chunk, payload)

    def restart(self):
        self.executor = self._restart()

    def close(self, interrupted: bool = False):
        if self._close is not None:
            self._close(self.executor, interrupted)


def _process_pool(normal, workers: int) -> Pool:
    ctx = mp.get_context("spawn")
    old = os.environ.get("NUMBA_NUM_THREADS")

    def make():
        os.environ["NUMBA_NUM_THREADS"] = "1"  # inherited by the spawned workers
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                      initializer=_worker_init, initargs=(normal,))

    def close(ex, interrupted):
        if interrupted:
            ex.shutdown(wait=False, cancel_futures=True)
            for p in list((getattr(ex, "_processes", None) or {}).values()):
                try:
                    p.terminate()
                except Exception:  # pragma: no cover
                    pass
        ex.shutdown(wait=True, cancel_futures=True)
        if old is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = old

    return Pool(make(), {"executor": "processes", "workers": workers}, 2 * workers,
                restart=make, close=close)


def _dask_pool(normal, workers: int | None, scheduler: str | None) -> Pool:
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the environment
        raise SpecError("--executor dask needs dask.distributed: install it with "
                        "`pip install svdyn[dask]`") from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise SpecError(f"--scheduler {scheduler}: cannot connect ({e}); check the address "
                            "(tcp://HOST:8786) and that the scheduler is running") from None
    else:
        import logging
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        client.run(worker.init_process, normal)  # one numba thread and warm kernels, once
    except Exception:  # pragma: no cover - warming is best effort
        pass
    nthreads = sum(client.nthreads().values()) or 1

    def close(ex, interrupted):
        client.close()
        if cluster is not None:
            cluster.close()

    desc = {"executor": "dask", "workers": nthreads,
            "scheduler": scheduler or "LocalCluster"}
    return Pool(client.get_executor(pure=False), desc, 2 * nthreads, close=close)


def open_pool(executor, normal, workers: int | None = None, scheduler: str | None = None):
    """``None`` when chunks run in-process, else a :class:`Pool`."""
    if isinstance(executor, cf.Executor):
        w = getattr(executor, "_max_workers", None) or workers or 4
        return Pool(executor, {"executor": type(executor).__name__, "workers": w}, 2 * w)
    kind = "dask" if (executor is None and scheduler) else (executor or "inprocess")
    if kind not in EXECUTORS:
        raise SpecError(f"--executor {kind!r}: use inprocess, processes or dask")
    if workers is not None and workers < 1:
        raise SpecError(f"--workers {workers}: must be >= 1")
    if kind == "inprocess":
        if scheduler:
            raise SpecError("--scheduler needs --executor dask")
        return None
    if kind == "processes":
        if scheduler:
            raise SpecError("--scheduler needs --executor dask")
        return _process_pool(normal, workers or os.cpu_count() or 1)
    return _dask_pool(normal, workers, scheduler)
