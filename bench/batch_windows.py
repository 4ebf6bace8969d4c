"""Per-trajectory cost of a ``flow`` batch as B grows, one save time (by hand).

    [NUMBA_NUM_THREADS=1] PYTHONPATH=. python bench/batch_windows.py [K L]

walsh, z_j(0) = 0.5 U(0.5, 1.5) (seed 0, paired modes averaged), t_end 1e7, rtol 1e-8, atol
1e-12, ``save_at=[1e7]`` (no output volume); trajectories per wall second and per CPU second
at B = 256, 1024, 4096 (best of 2), and 16 batches of 256 in a row for comparison. With one
thread the CPU cost per trajectory should not grow with B (``stepper._drive`` splits large
batches into windows so every trajectory gets ~WINDOW_STEPS attempts per kernel call).
"""
import sys
import time

import numpy as np

from svdyn.integrate import flow
from svdyn.spec import ModelSpec


def main(K=64, L=4):
    spec = ModelSpec(K, L)
    rng = np.random.default_rng(0)
    z = 0.5 * rng.uniform(0.5, 1.5, (4096, K))
    z = 0.5 * (z + z[:, spec.G.partner])
    z[:, 0] = 0.0
    S = spec.balanced(z)
    kw = dict(save_at=[1e7], rtol=1e-8, atol=1e-12, progress=False)
    flow(spec, S[:16], **kw)
    for B in (256, 1024, 4096):
        wall, cpu = np.inf, np.inf
        for _ in range(2):
            c0, t0 = time.process_time(), time.perf_counter()
            tr = flow(spec, S[:B], **kw)
            wall = min(wall, time.perf_counter() - t0)
            cpu = min(cpu, time.process_time() - c0)
        att = np.mean(np.array(tr.stats["accepted_steps"]) + np.array(tr.stats["rejected_steps"]))
        print(f"B = {B}: {B / wall:.0f} trajectories per wall s, {B / cpu:.0f} per CPU s, "
              f"mean attempts {att:.2f}")
    c0 = time.process_time()
    for k in range(16):
        flow(spec, S[k * 256:(k + 1) * 256], **kw)
    print(f"16 batches of 256 in a row: {4096 / (time.process_time() - c0):.0f} per CPU s")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 64, int(a[1]) if len(a) > 1 else 4)
