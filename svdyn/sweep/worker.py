"""What runs inside a worker process (ProcessPoolExecutor, dask worker, any Executor).

This module imports nothing heavy at import time, so that ``NUMBA_NUM_THREADS=1`` is in the
environment before numba loads: one worker = one numba thread (parallelism comes from the
workers). Each process sets this up and warms the task's kernel cache once.

Fault injection (for the reliability tests, harmless otherwise): when the environment variable
``SVDYN_SWEEP_FAULT_DIR`` names a folder and ``<that folder>/<chunk id, / -> __>.exit`` exists,
the first process to claim it (an atomic rename to ``.fired``) dies with ``os._exit(3)`` in the
middle of the chunk, as a killed or crashed worker would; while ``<...>.raise`` exists, the
chunk raises ``RuntimeError``.
"""
from __future__ import annotations

import os
import socket
import sys
import time

_WARM: set = set()
_SINGLE = False


def single_thread() -> None:
    """One numba thread in this process: before numba loads via the environment, after via
    ``numba.set_num_threads`` (also for the calling thread of a thread pool)."""
    global _SINGLE
    if "numba" in sys.modules:
        # numba is loaded (a thread pool inside a live process): the environment variable
        # must stay as it was, or numba refuses every later parallel launch ("Cannot set
        # NUMBA_NUM_THREADS to a different value once the threads have been launched")
        import numba
        numba.set_num_threads(1)
    else:
        os.environ["NUMBA_NUM_THREADS"] = "1"
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    _SINGLE = True


def init_process(normal: dict | None = None) -> None:
    """Process initialiser: one numba thread, then warm the kernels of the task."""
    single_thread()
    if normal is not None:
        warm_once(normal)


def warm_once(normal: dict) -> float:
    key = normal["task"]["kind"]
    if key in _WARM:
        return 0.0
    t0 = time.perf_counter()
    from .tasks import warm
    warm(normal)
    _WARM.add(key)
    return time.perf_counter() - t0


def _fault(chunk_id: str) -> None:
    d = os.environ.get("SVDYN_SWEEP_FAULT_DIR")
    if not d:
        return
    base = os.path.join(d, chunk_id.replace("/", "__"))
    if os.path.exists(base + ".raise"):
        raise RuntimeError(f"injected failure in {chunk_id}")
    try:
        os.rename(base + ".exit", base + ".fired")
    except OSError:
        return
    os._exit(3)


def run_chunk(payload: dict) -> dict:
    """Compute one chunk in a worker: ``payload`` = ``{"normal", "params", "start", "stop",
    "entropy", "chunk_id"}``; returns ``{"columns", "seconds", "host", "pid", "threads"}``."""
    single_thread()
    warm_once(payload["normal"])
    return compute(payload)


def compute(payload: dict) -> dict:
    from .tasks import run_task
    t0 = time.perf_counter()
    cols = run_task(payload["normal"], payload["params"], payload["start"], payload["stop"],
                    payload["entropy"])
    _fault(payload["chunk_id"])  # after the work: a worker dying mid-chunk loses it all
    import numba
    return {"columns": cols, "seconds": time.perf_counter() - t0,
            "host": socket.gethostname(), "pid": os.getpid(),
            "threads": int(numba.get_num_threads())}
