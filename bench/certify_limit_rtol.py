"""The certified classifier's limit stage at several rtol values, same starts (by hand).

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/certify_limit_rtol.py K L EPS N SEED RTOL...

Prints, per rtol: undecided starts, how many the limit stage took and decided, CPU seconds,
and the median / max steps of the starts read by the limit stage; then how many starts the
first and last rtol both decide with the same certified limit (support class).
"""
import sys
import time

import numpy as np

from svdyn.analysis.basins import same_limits
from svdyn.analysis.certify import certify_limit
from svdyn.spec import ModelSpec, random_init_z


def main(K, L, eps, N, seed, rtols):
    spec = ModelSpec(K, L)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=N)
    certify_limit(spec, z[:2], is_z=True)          # compile / load the kernels first
    res = {}
    for rt in rtols:
        t = time.process_time()
        c = certify_limit(spec, z, is_z=True, limit_rtol=rt)
        dt = time.process_time() - t
        res[rt] = c
        st = c.steps[c.z_final > c.meta["z_final"]]
        print(f"rtol {rt:g}: undecided {c.undecided}, limit stage {c.meta.get('limit')}, CPU "
              f"{dt:.1f} s, limit-stage steps median {np.median(st) if st.size else 0:.0f} max "
              f"{st.max() if st.size else 0}", flush=True)
    both, differ = same_limits(res[rtols[0]], res[rtols[-1]])
    print(f"same limit at rtol {rtols[0]:g} and {rtols[-1]:g}: {int(both.sum()) - len(differ)} "
          f"of {int(both.sum())}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]), int(a[1]), float(a[2]), int(a[3]), int(a[4]), [float(x) for x in a[5:]])
