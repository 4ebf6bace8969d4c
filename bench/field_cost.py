"""Cost of one reduced vector-field evaluation, K = 2^4 .. 2^16 (walsh, L = 3, ce).

    python bench/field_cost.py [--max-log2 16]

Reports ns per evaluation and ns per mode; with the O(K log K) fast Walsh-Hadamard transform
ns/mode should grow like log2 K. Also the cyclic group Z_K (radix-2 complex FFT, O(K log K)).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import header, table  # noqa: E402

from engine import _field_loop as _loop  # noqa: E402  (field as the stepper calls it)

from svdyn.field import new_scratch  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402


def per_eval_ns(spec, min_time=0.3):
    """Time evaluations inside a compiled loop (no Python dispatch per call); best of 3."""
    z = np.r_[0.0, np.linspace(0.2, 2.0, spec.K - 1)]
    s = spec.balanced(0.5 * (z + z[spec.G.partner]))
    out = np.empty_like(s)
    m = spec.bundle()
    args = (new_scratch(spec.K, m.tmax), m)
    _loop(1, s, out, *args)
    reps = 1
    while True:
        t0 = time.perf_counter()
        _loop(reps, s, out, *args)
        dt = time.perf_counter() - t0
        if dt > min_time:
            break
        reps *= 4
    best = dt
    for _ in range(2):
        t0 = time.perf_counter()
        _loop(reps, s, out, *args)
        best = min(best, time.perf_counter() - t0)
    return best / reps * 1e9


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-log2", type=int, default=16)
    a = ap.parse_args(argv)
    rows = []
    for m in range(4, a.max_log2 + 1, 2):
        K = 2 ** m
        ns = per_eval_ns(ModelSpec(K, 3))
        row = {"K": K, "log2K": m, "walsh_ns_per_eval": ns, "walsh_ns_per_mode": ns / K,
               "ns_per_mode_per_log2K": ns / K / m}
        row["cyclic_ns_per_mode"] = per_eval_ns(ModelSpec(K, 3, group="cyclic")) / K
        rows.append(row)
        print(row, flush=True)
    print(header("One vector-field evaluation (L = 3, ce)"))
    print(table(rows))


if __name__ == "__main__":
    main()
