"""Helpers shared by the benchmark scripts: best-of timing and a results table."""
from __future__ import annotations

import platform
import time


def best_of(fn, repeat: int = 3) -> float:
    """Best wall time (s) of ``repeat`` calls of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def header(title: str) -> str:
    import numba
    import numpy

    return (f"## {title}\n\nmachine: {platform.machine()}, {platform.processor() or 'cpu'}; "
            f"numpy {numpy.__version__}, numba {numba.__version__}; "
            f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}\n")


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r[k]) for k in keys) + " |")
    return "\n".join(out) + "\n"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
