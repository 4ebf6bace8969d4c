"""CPU microseconds per step of the certifier's stiff y clock (by hand).

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/yclock_step_cost.py [K ...]

walsh, L = 3, eps = 0.01, 16 starts (4 at K >= 64) to the stops of ``certify.y_stops(3, 1e9)``
at rtol 1e-7 (the first stage's); best of 3 (one run from K = 256). Above ``LAPACK_MIN``
both factorisations of the step matrix (own loops, LAPACK), with the sum of log y at the last
stop as a check that they give the same flow.
"""
import sys
import time

import numpy as np

from svdyn.analysis.certify import y_stops
from svdyn.analysis.yclock import LAPACK_MIN, stiff_flow_y
from svdyn.spec import ModelSpec, random_init_z


def main(ks):
    for K in ks:
        spec = ModelSpec(K, 3)
        z = random_init_z(spec, 0.01, np.random.default_rng(0), batch=16 if K < 64 else 4)
        routes = [None] if K <= LAPACK_MIN else [False, True]
        for lapack in routes:
            stiff_flow_y(spec, z[:1], y_stops(3, 1e9), lapack=lapack)
            best = np.inf
            for _ in range(1 if K >= 256 else 3):
                t0 = time.process_time()
                y, st, steps, _ = stiff_flow_y(spec, z, y_stops(3, 1e9), rtol=1e-7,
                                               lapack=lapack)
                best = min(best, time.process_time() - t0)
            route = {None: "loops", False: "loops", True: "LAPACK"}[lapack]
            print(f"K = {K} ({route} LU): {steps.sum()} steps, "
                  f"{best / steps.sum() * 1e6:.2f} us/step, {st.count('ok')}/{len(st)} ok, "
                  f"log y at the last stop {np.log(y[:, -1][np.isfinite(y[:, -1])]).sum():.6f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [8, 16, 64])
