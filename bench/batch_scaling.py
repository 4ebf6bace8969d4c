"""Batch throughput of ``flow`` as the batch grows (by hand; both cores).

    PYTHONPATH=. python bench/batch_scaling.py [K L]

walsh, z_j(0) = 0.1 U(0.5, 1.5) (seed 0), t_end 1e7, default method and tolerances; wall-clock
trajectories per second, best of 3, at B = 16, 256, 2048 (kernels warmed up first), with the
default save grid (201 saves: B x 201 x L x K doubles of output) and with two saves (t = 0, 1e7).
"""
import sys
import time

import numpy as np

from svdyn.integrate import flow
from svdyn.spec import ModelSpec, random_init_z


def main(K=64, L=4):
    spec = ModelSpec(K, L)
    s = spec.balanced(random_init_z(spec, 0.1, np.random.default_rng(0), batch=2048))
    for b in (2, 16):
        flow(spec, s[:b], t_end=1e7, progress=False)
    for label, kw in (("default save grid", {}), ("2 saves", {"save_at": np.array([0.0, 1e7])})):
        for B in (16, 256, 2048):
            best = 0.0
            for _ in range(3):
                t0 = time.perf_counter()
                o = flow(spec, s[:B], t_end=1e7, progress=False, **kw)
                best = max(best, B / (time.perf_counter() - t0))
            print(f"K = {K}, L = {L}, {label}, B = {B}: {best:.0f} traj/s (best of 3), output "
                  f"{o.s.nbytes / B / 1e3:.1f} kB per trajectory, mean accepted steps "
                  f"{np.mean(o.stats['accepted_steps']):.1f}, method {o.stats['method']}")

if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 64, int(a[1]) if len(a) > 1 else 4)
