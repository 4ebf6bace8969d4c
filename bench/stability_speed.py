"""Wall and CPU time of one `run_stability` (gd, 1000 steps, linearised) at K = 8..64, L = 3.

Run by hand: `python bench/stability_speed.py`. Prints one line per K.
"""
import time

import numpy as np

from svdyn.spec import ModelSpec, random_init_z
from svdyn.stability import run_stability

if __name__ == "__main__":
    for K in (8, 16, 32, 64):
        spec = ModelSpec(K, 3)
        s0 = spec.balanced(random_init_z(spec, 0.1, np.random.default_rng(0)))
        run_stability(spec, s0, "gd", 0.5, 5, 1e-6, save_every=5, device="auto")  # warm
        w, c = time.perf_counter(), time.process_time()
        r = run_stability(spec, s0, "gd", 0.5, 1000, 1e-6, save_every=10, device="auto")
        print(f"K={K} L=3 width {K + 4} gd 1000 steps (+ linearisation): wall "
              f"{time.perf_counter() - w:.2f} s, cpu {time.process_time() - c:.2f} s, "
              f"device {r.device}, final leakage {r.leakage[-1]:.2e}", flush=True)
