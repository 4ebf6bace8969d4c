"""Cost of the certified classifier vs a plain flow to t = 1e12, start by start (by hand).

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/certify_speed.py [K] [L] [EPS] [N] [SEED]

For N Monte Carlo starts ``z_j(0) = eps U(0.5, 1.5)`` (walsh): the CPU seconds of
``certify_limit`` on each start alone (first stage, limit stage where needed, KKT certificate
included) and of ``flow``
of the same start to t = 1e12 (default method and tolerances), both warmed up (compiled)
first; prints the median, 90th percentile and maximum of the per-start ratio, the ratio of
the totals, and how the classifier's time splits between starts it decides in the first
stage, starts the limit stage takes, and starts left undecided.
"""
import sys
import time

import numpy as np

from svdyn.analysis.certify import certify_limit
from svdyn.integrate import flow
from svdyn.spec import ModelSpec, random_init_z


def cpu(f):
    t0 = time.process_time()
    out = f()
    return out, time.process_time() - t0


def main(K=8, L=3, eps=0.01, N=100, seed=0):
    spec = ModelSpec(K, L)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=N)
    s0 = spec.balanced(z)
    certify_limit(spec, z[:1], is_z=True)
    flow(spec, s0[:1], t_end=1e12, progress=False)
    tc, tf, stage = np.zeros(N), np.zeros(N), []
    for i in range(N):
        c, tc[i] = cpu(lambda: certify_limit(spec, z[i], is_z=True))
        _, tf[i] = cpu(lambda: flow(spec, s0[i], t_end=1e12, progress=False))
        stage.append("undecided" if not c.decided[0] else
                     "first stage" if c.z_final[0] == c.meta["z_final"] else "limit stage")
    r = tc / tf
    print(f"walsh K = {K}, L = {L}, eps = {eps}, {N} starts (seed {seed}), CPU seconds per start")
    print(f"  flow to t = 1e12: median {np.median(tf) * 1e3:.2f} ms; certify_limit: median "
          f"{np.median(tc) * 1e3:.2f} ms")
    print(f"  per-start ratio certify / flow: median {np.median(r):.1f}, 90th percentile "
          f"{np.percentile(r, 90):.1f}, max {r.max():.0f}; ratio of totals "
          f"{tc.sum() / tf.sum():.1f}")
    st = np.array(stage)
    for k in ("first stage", "limit stage", "undecided"):
        m = st == k
        if m.any():
            print(f"  {k}: {m.sum()} starts, {tc[m].sum():.2f} s of {tc.sum():.2f} s, median "
                  f"ratio {np.median(r[m]):.1f}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 8, int(a[1]) if len(a) > 1 else 3,
         float(a[2]) if len(a) > 2 else 0.01, int(a[3]) if len(a) > 3 else 100,
         int(a[4]) if len(a) > 4 else 0)
