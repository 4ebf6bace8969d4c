"""The certified classifier's two stages on Monte Carlo cells, and its cost against a flow.

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/certify_stages.py K L EPS SAMPLES [SEED]

For ``z_j(0) = eps U(0.5, 1.5)`` (walsh, seed 0 by default): undecided starts and their
reasons with the first stage only (``z_retry=None``, last stop at z = 1e9) and with the second
stage (default ``z_retry = 1e11``), the CPU seconds of each, and the CPU seconds of a plain
batched ``flow`` of the same starts to t = 1e12 (the cost ratio the issue asks for).
"""
import sys
import time
from collections import Counter

import numpy as np

from svdyn.analysis.certify import certify_limit
from svdyn.integrate import flow
from svdyn.spec import ModelSpec, random_init_z


def cpu(f):
    t0 = time.process_time()
    out = f()
    return out, time.process_time() - t0


def main(K, L, eps, n, seed=0):
    spec = ModelSpec(K, L)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=n)
    certify_limit(spec, z[:16], is_z=True)                      # compile (serial, parallel)
    for b in (2, 16):   # both of the flow's batch kernels, so no compile lands in the timing
        flow(spec, spec.balanced(z[:b]), t_end=1e12, progress=False)
    print(f"walsh K = {K}, L = {L}, eps = {eps}, {n} starts, seed {seed}")
    for name, kw in (("first stage only (z_retry=None)", {"z_retry": None}),
                     ("both stages (z_retry = 1e11)", {})):
        c, t = cpu(lambda: certify_limit(spec, z, is_z=True, **kw))
        why = Counter(r.split(" (")[0].split(":")[0][:48] for r, d in zip(c.reason, c.decided)
                      if not d)
        print(f"  {name}: undecided {c.undecided}/{n} ({100 * c.undecided / n:.2f} %), "
              f"{t:.1f} s CPU; retry {c.meta.get('retry')}; reasons {dict(why)}")
    _, tf = cpu(lambda: flow(spec, spec.balanced(z), t_end=1e12, progress=False))
    print(f"  plain flow to t = 1e12: {tf:.1f} s CPU; classifier / flow = {t / tf:.2f}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]), int(a[1]), float(a[2]), int(a[3]), int(a[4]) if len(a) > 4 else 0)
