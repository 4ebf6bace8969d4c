"""CPU microseconds per step of the certifier's stiff y clock (by hand).

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/yclock_step_cost.py [K ...]

walsh, L = 3, eps = 0.01, 16 starts (4 at K >= 64) to the stops of ``certify.y_stops(3, 1e9)``
at rtol 1e-7 (the first stage's); best of 3.
"""
import sys
import time

import numpy as np

from svdyn.analysis.certify import y_stops
from svdyn.analysis.yclock import stiff_flow_y
from svdyn.spec import ModelSpec, random_init_z


def main(ks):
    for K in ks:
        spec = ModelSpec(K, 3)
        z = random_init_z(spec, 0.01, np.random.default_rng(0), batch=16 if K < 64 else 4)
        stiff_flow_y(spec, z[:1], y_stops(3, 1e9))
        best = np.inf
        for _ in range(3):
            t0 = time.process_time()
            _, st, steps, _ = stiff_flow_y(spec, z, y_stops(3, 1e9), rtol=1e-7)
            best = min(best, time.process_time() - t0)
        print(f"K = {K}: {steps.sum()} steps, {best / steps.sum() * 1e6:.2f} us/step, "
              f"{st.count('ok')}/{len(st)} ok")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [8, 16, 64])
