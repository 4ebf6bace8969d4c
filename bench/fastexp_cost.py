"""The margin loop's exponential: ``svdyn.fastexp.exp_or_zero`` (vectorisable) against libm.

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/fastexp_cost.py [K ...]

ns per value of ``w[c] = e^{x_c}`` (0 below -708) over K values in a compiled loop (input
nudged every call, best of 3), with ``math.exp`` (a call into the C library) and with
``exp_or_zero`` (plain arithmetic, which LLVM turns into SIMD code); and the largest error
of each, in units in the last place, on the same values against ``np.exp`` in long double.
"""
import math
import sys
import time

import numba as nb
import numpy as np

from svdyn.fastexp import EXP_FLOOR, exp_or_zero


@nb.njit(cache=True, error_model="numpy", inline="always")
def _libm(v):
    return math.exp(v) if v > EXP_FLOOR else 0.0


@nb.njit(cache=True, error_model="numpy")
def _loop(reps, x, y, expf):
    acc = 0.0
    for _ in range(reps):
        x[0] += 1e-300
        for i in range(x.shape[0]):
            y[i] = expf(x[i])
        acc += y[1]
    return acc


def _ns_per_value(expf, x, y):
    _loop(1, x, y, expf)
    reps = max(1, int(2e7 // x.shape[0]))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        _loop(reps, x, y, expf)
        best = min(best, time.perf_counter() - t0)
    return best / reps / x.shape[0] * 1e9


def _max_ulp(y, x):
    ref = np.exp(x.astype(np.longdouble))
    return float(np.max(np.abs((y - ref).astype(np.float64)) / np.spacing(ref.astype(np.float64))))


def main(Ks):
    print("| K | libm ns/value | exp_or_zero ns/value | ratio | max ulp libm "
          "| max ulp exp_or_zero |")
    print("|---|---|---|---|---|---|")
    for K in Ks:
        x = -np.random.default_rng(K).uniform(0.0, 700.0, K)
        x[0] = -1e-3
        y1, y2 = np.empty(K), np.empty(K)
        a = _ns_per_value(_libm, x, y1)
        b = _ns_per_value(exp_or_zero, x, y2)
        print(f"| {K} | {a:.2f} | {b:.2f} | {a / b:.2f} | {_max_ulp(y1, x):.2f} | "
              f"{_max_ulp(y2, x):.2f} |", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [4, 8, 16, 32, 64, 256, 1024, 4096, 65536])
