"""Agreement of the certified classifier with itself at a 100x smaller y threshold.

    PYTHONPATH=. python bench/certify_agreement.py K EPS SAMPLES [L ...]

For each depth: ``certify_limit`` with its defaults (last stop z = 1e9, second stage to 1e11)
and again with the last stop at ``z_long = 1e9 * 100^(L/(L-2))`` (a y threshold 100x smaller;
capped at Z_CAP = 1e14, i.e. ~46x at L = 3), one stage. Prints the label agreement over the
starts both decide, and the undecided counts.
"""
import sys
import time

import numpy as np

from svdyn.analysis.certify import Z_CAP, Z_FINAL, certify_limit
from svdyn.spec import ModelSpec, random_init_z


def main(K, eps, n, depths):
    print(f"walsh K = {K}, eps = {eps}, {n} starts per depth (seed 0)")
    for L in depths:
        spec = ModelSpec(K, L)
        z = random_init_z(spec, eps, np.random.default_rng(0), batch=n)
        z_long = min(Z_FINAL * 100.0 ** (L / (L - 2.0)), Z_CAP)
        ratio = (z_long / Z_FINAL) ** ((L - 2.0) / L)
        t0 = time.perf_counter()
        a = certify_limit(spec, z, is_z=True)
        b = certify_limit(spec, z, is_z=True, z_final=z_long, z_retry=None)
        both = a.decided & b.decided
        agree = sum(x == y for x, y, d in zip(a.support_class, b.support_class, both) if d)
        print(f"  L = {L}: y threshold {ratio:.0f}x smaller (z_long = {z_long:.3g}); decided by "
              f"both {int(both.sum())}, same certified limit (support class) on {agree} "
              f"({100 * agree / max(int(both.sum()), 1):.2f} %); undecided {a.undecided} / "
              f"{b.undecided}; {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]), float(a[1]), int(a[2]), [int(x) for x in a[3:]] or [3, 4, 5, 6, 7, 8])
