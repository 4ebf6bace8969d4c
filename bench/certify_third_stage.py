"""What a stage to z = 1e14 decides among the starts the classifier's two stages leave open.

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/certify_third_stage.py [K] [L] [EPS] [N] [SEED]

Draws N Monte Carlo starts ``z_j(0) = eps U(0.5, 1.5)`` (walsh), runs ``certify_limit`` with
its defaults, then runs the undecided ones again with ``z_retry = 1e14`` (the largest z the
clock reads, ``certify.Z_CAP``) and ``RETRY_MAX_STEPS`` raised to 1e6; prints, per start, the
label, the support class or the reason with the undecided mode's last two ratio exponents,
and the steps, and the CPU seconds of both runs.
"""
import sys
import time

import numpy as np

from svdyn.analysis import certify
from svdyn.spec import ModelSpec, random_init_z


def main(K=16, L=3, eps=0.1, N=400, seed=1):
    spec = ModelSpec(K, L)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=N)
    t0 = time.process_time()
    c = certify.certify_limit(spec, z, is_z=True)
    t1 = time.process_time()
    und = np.nonzero(~c.decided)[0]
    print(f"walsh K = {K}, L = {L}, eps = {eps}, {N} starts (seed {seed}): {und.size} undecided "
          f"by the defaults ({t1 - t0:.1f} s CPU)")
    if und.size == 0:
        return
    certify.RETRY_MAX_STEPS = 1_000_000
    t0 = time.process_time()
    d = certify.certify_limit(spec, z[und], is_z=True, z_retry=certify.Z_CAP)
    t1 = time.process_time()
    print(f"with z_retry = {certify.Z_CAP:g}: {int(d.decided.sum())} of {und.size} decided "
          f"({t1 - t0:.1f} s CPU)")
    for k, i in enumerate(und):
        what = d.support_class[k] if d.decided[k] else d.reason[k][-40:]
        print(f"  start {i}: {d.label[k]} | {what} | {d.steps[k]} steps | {d.status[k][:50]}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 16, int(a[1]) if len(a) > 1 else 3,
         float(a[2]) if len(a) > 2 else 0.1, int(a[3]) if len(a) > 3 else 400,
         int(a[4]) if len(a) > 4 else 1)
