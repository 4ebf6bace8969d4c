"""The fast Walsh--Hadamard transform: ``svdyn.transforms.fwht`` against plain radix 2 (by hand).

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/fwht_cost.py [K ...]

ns per in-place transform inside a compiled loop (input nudged every call, best of 5), for
svdyn's kernel and for the textbook radix-2 loop it replaced; checks that both give the same
bits on a random vector.
"""
import sys
import time

import numba as nb
import numpy as np

from svdyn.transforms import fwht


@nb.njit(cache=True)
def fwht_radix2(x):
    K = x.shape[0]
    h = 1
    while h < K:
        for i in range(0, K, 2 * h):
            for j in range(i, i + h):
                a = x[j]
                b = x[j + h]
                x[j] = a + b
                x[j + h] = a - b
        h *= 2


@nb.njit
def _loop(reps, x, transform):
    """``reps`` transforms of x in place (x nudged each time so nothing is hoisted)."""
    acc = 0.0
    for _ in range(reps):
        x[1] += 1e-300
        transform(x)
        acc += x[0]
    return acc


def main(ks):
    print("| K | radix 2 ns | svdyn fwht ns | ratio | same bits |")
    print("|---|---|---|---|---|")
    for K in ks:
        x0 = np.random.default_rng(K).standard_normal(K)
        a, b = x0.copy(), x0.copy()
        fwht_radix2(a)
        fwht(b)
        x = x0 * 1e-3
        reps = max(100, int(2e7 / K))
        res = []
        for f in (fwht_radix2, fwht):
            _loop(10, x, f)
            best = np.inf
            for _ in range(5):
                t0 = time.perf_counter()
                _loop(reps, x, f)
                best = min(best, (time.perf_counter() - t0) / reps)
            res.append(best * 1e9)
        print(f"| {K} | {res[0]:.1f} | {res[1]:.1f} | {res[0] / res[1]:.2f} | "
              f"{bool((a == b).all())} |")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [4, 8, 16, 32, 64, 256, 1024, 4096, 65536])
