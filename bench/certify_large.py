"""The certified classifier at large K, start by start (by hand).

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python bench/certify_large.py \
        [K] [L] [EPS] [N] [SEED]

For N starts ``z_j(0) = eps U(0.5, 1.5)`` (walsh): ``certify_limit`` on each start alone
(compiled first on a K = 32 start, so no compile lands in the timing), its CPU seconds,
accepted steps per stage, the label and support class or the reason it is undecided.
"""
import sys
import time

import numpy as np

from svdyn.analysis.certify import certify_limit
from svdyn.spec import ModelSpec, random_init_z


def main(K=1024, L=3, eps=0.01, N=1, seed=0):
    spec = ModelSpec(K, L)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=N)
    small = ModelSpec(32, L)
    certify_limit(small, random_init_z(small, eps, np.random.default_rng(1), batch=1)[0],
                  is_z=True)
    print(f"walsh K = {K}, L = {L}, eps = {eps}, {N} starts (seed {seed})", flush=True)
    for i in range(N):
        t0 = time.process_time()
        c = certify_limit(spec, z[i], is_z=True)
        dt = time.process_time() - t0
        what = c.support_class[0] if c.decided[0] else f"undecided: {c.reason[0]}"
        print(f"  start {i}: {dt:.1f} s CPU, steps {np.ravel(c.steps).tolist()}, "
              f"{c.label[0]}, {what}", flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 1024, int(a[1]) if len(a) > 1 else 3,
         float(a[2]) if len(a) > 2 else 0.01, int(a[3]) if len(a) > 3 else 1,
         int(a[4]) if len(a) > 4 else 0)
