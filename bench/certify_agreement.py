"""Agreement of the certified classifier with independent, longer readouts of the same starts.

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/certify_agreement.py K EPS SAMPLES SEED [L ...]

For each depth, on the same starts (walsh, ``random_init_z``):

* **default**: ``certify_limit`` with its defaults (true clock to z = 1e9, then the limit stage,
  ``LIMIT_DECADES`` stops a factor 10 apart in y_min, for the starts still undecided);
* **deep**: every start, decided or not, through the limit stage with two more stops (a y
  threshold 100x smaller than the default limit stage's last one, and 1e8x smaller than the
  first stage's), keeping only that readout (``limit_all=True``);
* **true clock**: the previous classifier (the true clock to 1e9, then to ``z_retry = 1e11``,
  no limit stage), the independent long continuation of the old route.

Prints the undecided counts, the agreement of the certified limits (support class) over the
starts both readouts decide, and the CPU seconds of each.
"""
import sys
import time

import numpy as np

from svdyn.analysis.certify import LIMIT_DECADES, Z_RETRY, certify_limit
from svdyn.spec import ModelSpec, random_init_z


def _agree(a, b):
    both = a.decided & b.decided
    same = sum(x == y for x, y, d in zip(a.support_class, b.support_class, both) if d)
    return int(both.sum()), same, [i for i in np.nonzero(both)[0]
                                   if a.support_class[i] != b.support_class[i]]


def main(K, eps, n, seed, depths):
    print(f"walsh K = {K}, eps = {eps}, {n} starts per depth (seed {seed})")
    for L in depths:
        spec = ModelSpec(K, L)
        z = random_init_z(spec, eps, np.random.default_rng(seed), batch=n)
        runs = {}
        for name, kw in (("default", {}),
                         ("deep", {"limit_all": True, "limit_decades": LIMIT_DECADES + 2}),
                         ("true clock", {"z_retry": Z_RETRY, "limit_decades": 0})):
            t0 = time.process_time()
            runs[name] = (certify_limit(spec, z, is_z=True, **kw), time.process_time() - t0)
        a = runs["default"][0]
        line = [f"  L = {L}: undecided " + ", ".join(
            f"{k} {r.undecided}" for k, (r, _) in runs.items())]
        for other in ("deep", "true clock"):
            nb, same, bad = _agree(a, runs[other][0])
            line.append(f"default vs {other}: same limit on {same} of {nb} decided by both"
                        f" ({100 * same / max(nb, 1):.2f} %)" + (f", differ at {bad}" if bad
                                                                  else ""))
        line.append("CPU s " + ", ".join(f"{k} {t:.1f}" for k, (_, t) in runs.items()))
        print("; ".join(line), flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]), float(a[1]), int(a[2]), int(a[3]),
         [int(x) for x in a[4:]] or [3, 4, 5, 6, 7, 8])
