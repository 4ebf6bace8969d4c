"""Cost of the certified classifier vs a plain flow to t = 1e12 on the same starts (by hand).

    PYTHONPATH=. python bench/certify_speed.py [K] [L] [EPS] [B]

Both are warmed up (compiled) first; the ratio is certify_limit seconds / flow seconds.
"""
import sys
import time

import numpy as np

from svdyn.analysis.certify import certify_limit
from svdyn.integrate import flow
from svdyn.spec import ModelSpec, random_init_z


def main(K=8, L=3, eps=0.01, B=64):
    spec = ModelSpec(K, L)
    z = random_init_z(spec, eps, np.random.default_rng(2), batch=B)
    s0 = spec.balanced(z)
    flow(spec, s0[:2], save_at=np.array([0.0, 1e12]))
    certify_limit(spec, z[:2], is_z=True)
    t0 = time.perf_counter()
    tr = flow(spec, s0, save_at=np.array([0.0, 1e12]))
    tf = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = certify_limit(spec, z, is_z=True)
    tc = time.perf_counter() - t0
    print(f"K={K} L={L} eps={eps} B={B}: flow to t=1e12 {tf:.3f} s "
          f"(status ok {sum(s == 'ok' for s in tr.status)}/{B}), certify_limit {tc:.3f} s "
          f"(undecided {c.undecided}); ratio {tc / tf:.2f}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 8, int(a[1]) if len(a) > 1 else 3,
         float(a[2]) if len(a) > 2 else 0.01, int(a[3]) if len(a) > 3 else 64)
