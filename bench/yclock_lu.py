"""The y clock's step matrix factorisation: its own loops vs LAPACK ``dgetrf`` (by hand).

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/yclock_lu.py [K ...]

For each K: a matrix ``I - h d J`` shaped like the clock's (diagonal 1 plus a dense random
part of norm ~1), formed, factorised and solved by ``yclock._factor`` / ``_lsolve`` on both
routes: row-major loops (``_lu``, the default up to ``LAPACK_MIN``) and LAPACK ``dgetrf``
(scipy's OpenBLAS, above it); wall ms per factorisation + 4 solves (one Rosenbrock step),
best of 5, and the largest error of either solution against ``numpy.linalg.solve``
relative to its largest entry.
"""
import sys
import time

import numpy as np

from svdyn.analysis import yclock


def _time(fn, reps):
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main(ks):
    print(f"LAPACK_MIN = {yclock.LAPACK_MIN}")
    print("| K | loops ms | LAPACK ms | loops / LAPACK | max diff |")
    print("|---|---|---|---|---|")
    for K in ks:
        rng = np.random.default_rng(K)
        J = rng.standard_normal((K, K)) / np.sqrt(K)
        b = rng.standard_normal(K)
        W = np.empty((K, K))
        piv = np.empty(K, np.int64)
        ipv = np.empty(K, yclock.PIV_DTYPE)
        x1 = np.empty(K)
        x2 = np.empty(K)

        def loops():
            yclock._factor(J, -0.3, W, piv, ipv, False)
            for _ in range(4):
                yclock._lsolve(W, piv, ipv, False, b, x1)

        def lapack():
            yclock._factor(J, -0.3, W, piv, ipv, True)
            for _ in range(4):
                yclock._lsolve(W, piv, ipv, True, b, x2)

        reps = max(1, int(2e7 // K ** 3))
        loops(), lapack()
        t1, t2 = _time(loops, reps), _time(lapack, reps)
        loops()
        ref = x1.copy()
        lapack()
        direct = np.linalg.solve(np.eye(K) + 0.3 * J, b)
        diff = max(np.abs(ref - direct).max(), np.abs(x2 - direct).max()) / np.abs(direct).max()
        route = "" if K > yclock.LAPACK_MIN else " (loops route)"
        print(f"| {K}{route} | {t1 * 1e3:.4g} | {t2 * 1e3:.4g} | {t1 / t2:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [8, 16, 24, 32, 48, 64, 128, 256, 512, 1024])
