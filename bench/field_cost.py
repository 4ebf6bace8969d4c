"""Cost of one reduced vector-field evaluation, K = 2^4 .. 2^16 (walsh, L = 3, ce).

    python bench/field_cost.py [--max-log2 16]

Reports ns per evaluation and ns per mode; with the O(K log K) fast Walsh-Hadamard transform
ns/mode should grow like log2 K. Also the cyclic group (dense-per-axis DFT, O(K^2)) up to 2^10.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import header, table  # noqa: E402

from svdyn.field import new_work, rhs  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402


def per_eval_ns(spec, min_time=0.2):
    s = spec.balanced(np.r_[0.0, 0.5 * np.ones(spec.K - 1)])
    out = np.empty_like(s)
    work = new_work(spec.K)
    args = spec.kernel_args()
    rhs(s, out, work, *args)
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            rhs(s, out, work, *args)
        dt = time.perf_counter() - t0
        if dt > min_time:
            return dt / reps * 1e9
        reps *= 4


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
        if m <= 10:
            nc = per_eval_ns(ModelSpec(K, 3, group="cyclic"))
            row["cyclic_ns_per_mode"] = nc / K
        else:
            row["cyclic_ns_per_mode"] = "-"
        rows.append(row)
        print(row, flush=True)
    print(header("One vector-field evaluation (L = 3, ce)"))
    print(table(rows))


if __name__ == "__main__":
    main()
