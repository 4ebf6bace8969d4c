"""Agreement of the certified classifier with independent, longer readouts of the same starts.

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/certify_agreement.py K EPS SAMPLES SEED [L ...]

For each depth, on the same starts (walsh, ``random_init_z``):

* **default**: ``certify_limit`` with its defaults (true clock to z = 1e9, then the limit stage,
  ``LIMIT_DECADES`` stops a factor 10 apart in y_min, for the starts still undecided);
* **deep**: every start, decided or not, through the limit stage with two more stops (a y
  threshold 100x smaller than the default limit stage's last one, and 1e8x smaller than the
  first stage's), keeping only that readout (``basins.readout_check``);
* **true clock**: the previous classifier (the true clock to 1e9, then to ``z_retry = 1e11``,
  no limit stage), the independent long continuation of the old route.

Prints the undecided counts, the agreement of the certified limits (support class) over the
starts both readouts decide, and the CPU seconds of each.
"""
import sys
import time

import numpy as np

from svdyn.analysis.basins import readout_check, same_limits
from svdyn.analysis.certify import Z_RETRY, certify_limit
from svdyn.spec import ModelSpec, random_init_z


def main(K, eps, n, seed, depths):
    print(f"walsh K = {K}, eps = {eps}, {n} starts per depth (seed {seed})")
    for L in depths:
        r = readout_check(K, L, eps, n, seed)
        spec = ModelSpec(K, L)
        z = random_init_z(spec, eps, np.random.default_rng(seed), batch=n)
        a = certify_limit(spec, z, is_z=True)
        t0 = time.process_time()
        c = certify_limit(spec, z, is_z=True, z_retry=Z_RETRY, limit_decades=0)
        tc = time.process_time() - t0
        both, bad = same_limits(a, c)
        nb = int(both.sum())
        print(f"  L = {L}: undecided default {r['undecided_default']}, deep "
              f"{r['undecided_deep']}, true clock {c.undecided}; default vs deep: same limit on "
              f"{r['same']} of {r['both_decided']} decided by both "
              f"({100 * r['same'] / max(r['both_decided'], 1):.2f} %)"
              + (f", differ at {r['differ']}" if r["differ"] else "")
              + f"; default vs true clock: same on {nb - len(bad)} of {nb} "
              f"({100 * (nb - len(bad)) / max(nb, 1):.2f} %)" + (f", differ at {bad}" if bad
                                                                else "")
              + f"; CPU s default {r['cpu_default']:.1f}, deep {r['cpu_deep']:.1f}, true clock "
              f"{tc:.1f}", flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]), float(a[1]), int(a[2]), int(a[3]),
         [int(x) for x in a[4:]] or [3, 4, 5, 6, 7, 8])
