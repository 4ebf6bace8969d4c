"""``svdyn warmup``: compile and cache the engine's numba kernels once, at set-up time.

Every engine kernel takes the same named bundles (``svdyn.bundle``), so one tiny problem per
kernel compiles the specialisation every model, group, loss, clock and method uses (walsh
cross-entropy flows in physical time have kernels of their own, ``stepper.WALSH_CE_KERNELS``
and, at K = 4, ``stepper.WALSH4_CE_KERNELS``; a single trajectory runs the per-trajectory
step, a batch the loop over it): after ``svdyn warmup`` the first ``svdyn flow`` answers from
the cache.
"""
from __future__ import annotations

import sys
import time


def register(sub) -> None:
    p = sub.add_parser("warmup", help="compile and cache the numba kernels (run once after "
                       "installing)")
    p.add_argument("--serial-only", action="store_true",
                   help="skip the parallel batch kernels (batches of >= 8 trajectories)")
    p.set_defaults(func=cmd_warmup)


def warm(parallel: bool = True, stream=None) -> list:
    """Run one tiny problem through each engine kernel; returns ``[(name, seconds)]``."""
    import numpy as np

    from ..descent import descend
    from ..field import logit_gradient, vector_field
    from ..integrate import flow, flow_y
    from ..spec import ModelSpec
    from ..stepper import PARALLEL_MIN_BATCH

    spec = ModelSpec(4, 3)
    big = ModelSpec(8, 3)                      # walsh ce at K != 4: kernels of their own
    cyc = ModelSpec(4, 3, group="cyclic")      # ce on another group: the general free kernels
    reg = ModelSpec(4, 3, weight_decay=1e-3)   # walsh ce with a fixed point: its hand-off kernels
    mse = ModelSpec(4, 3, loss="mse")          # other losses: the general hand-off kernels
    z = np.array([0.0, 0.3, 0.2, 0.1])
    s0 = spec.balanced(z)
    b0 = big.balanced(np.array([0.0, 0.3, 0.2, 0.1, 0.3, 0.2, 0.1, 0.2]))
    c0 = cyc.balanced(np.array([0.0, 0.3, 0.2, 0.3]))   # conjugate modes 1 and 3 equal
    C2 = np.stack([c0] * 2)
    C0 = np.stack([c0] * PARALLEL_MIN_BATCH)
    S2 = np.stack([s0] * 2)                    # a small batch: the serial loops
    S0 = np.stack([s0] * PARALLEL_MIN_BATCH)
    B2 = np.stack([b0] * 2)
    B0 = np.stack([b0] * PARALLEL_MIN_BATCH)
    Z2 = np.stack([z] * 2)
    jobs = [("field", lambda: (vector_field(spec, s0), vector_field(spec, S0),
                               logit_gradient(spec, z))),
            ("flow", lambda: flow(spec, s0, 10.0, progress=False)),
            ("flow (K = 8)", lambda: flow(big, b0, 10.0, progress=False)),
            ("flow (cyclic group)", lambda: flow(cyc, c0, 10.0, progress=False)),
            ("flow (weight decay)", lambda: flow(reg, s0, 10.0, progress=False)),
            ("flow (mse)", lambda: flow(mse, s0, 10.0, progress=False)),
            ("flow_y", lambda: flow_y(spec, z, [1.5], progress=False)),
            ("flow_y (explicit)", lambda: flow_y(spec, z, [1.5], method="dop853",
                                                 progress=False)),
            ("descend", lambda: descend(spec, s0, 0.1, 3, progress=False)),
            ("batches of 2 (serial loops)", lambda: (
                flow(spec, S2, 10.0, progress=False), flow(big, B2, 10.0, progress=False),
                flow(cyc, C2, 10.0, progress=False),
                flow(reg, S2, 10.0, progress=False), flow(mse, S2, 10.0, progress=False),
                flow_y(spec, Z2, [1.5], progress=False),
                flow_y(spec, Z2, [1.5], method="dop853", progress=False),
                descend(spec, S2, 0.1, 3, progress=False)))]
    if parallel:
        jobs += [("flow (parallel)", lambda: flow(spec, S0, 10.0, progress=False)),
                 ("flow (K = 8, parallel)", lambda: flow(big, B0, 10.0, progress=False)),
                 ("flow (cyclic group, parallel)", lambda: flow(cyc, C0, 10.0,
                                                                progress=False)),
                 ("flow (weight decay, parallel)", lambda: flow(reg, S0, 10.0,
                                                                progress=False)),
                 ("flow (mse, parallel)", lambda: flow(mse, S0, 10.0, progress=False)),
                 ("descend (parallel)", lambda: descend(spec, S0, 0.1, 3, progress=False))]
    out = []
    for name, fn in jobs:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        out.append((name, dt))
        if stream is not None:
            print(f"  {name:<30s} {dt:7.2f} s", file=stream, flush=True)
    return out


def cmd_warmup(args) -> int:
    import os

    print(f"svdyn warmup: compiling into the numba cache "
          f"({os.environ.get('NUMBA_CACHE_DIR') or 'next to the package'})", file=sys.stderr)
    t0 = time.perf_counter()
    warm(parallel=not args.serial_only, stream=sys.stdout)
    print(f"  {'total':<30s} {time.perf_counter() - t0:7.2f} s")
    return 0
