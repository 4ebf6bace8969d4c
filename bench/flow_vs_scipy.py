"""Reduced gradient flow (numba dopri5) vs scipy solve_ivp(RK45) on the same system.

    python bench/flow_vs_scipy.py [--classes 64] [--depth 4] [--t-end 1e7] [--rtol 1e-8]

Same tableau (Dormand-Prince 5(4)), same tolerances, same system. Two scipy baselines: the
compiled svdyn field behind a minimal Python wrapper, and a hand-written dense numpy field
(what users write today). Ratio = scipy seconds / svdyn seconds, measured in the same run.
Also reports svdyn's batched throughput (B trajectories, parallel over the batch).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).parent))
from common import best_of, header, table  # noqa: E402

from svdyn.field import new_scratch, rhs  # noqa: E402
from svdyn.integrate import flow  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=64)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--t-end", type=float, default=1e7)
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--atol", type=float, default=1e-12)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args(argv)
    spec = ModelSpec(a.classes, a.depth)
    rng = np.random.default_rng(0)
    z0 = 0.5 * rng.uniform(0.5, 1.5, spec.K)
    z0[0] = 0
    s0 = spec.balanced(z0)
    shape = s0.shape
    m = spec.bundle()
    sc = new_scratch(spec.K, m.tmax)

    def f(t, y):  # the leanest Python callable of the same compiled field
        out = np.empty(shape)
        rhs(y.reshape(shape), out, sc, m)
        return out.ravel()

    C = spec.G.char_table
    K, L = spec.K, spec.L

    def f_numpy(t, y):  # what a user writes by hand today: dense numpy, stable softmax
        s = y.reshape(shape)
        z = np.prod(s, axis=0)
        u = C @ z / K
        m = u[0] - u
        q = np.exp(-(m - min(m.min(), 0.0)))
        p = q / q.sum()
        w = -p
        w[0] = p[1:].sum()
        g = (C @ w) / K
        g[0] = 0.0
        prod_others = np.array([np.prod(np.delete(s, l, axis=0), axis=0) for l in range(L)])
        return (g * prod_others).ravel()

    kw = dict(save_at=[a.t_end], rtol=a.rtol, atol=a.atol, method="dopri5")  # RK45's tableau
    flow(spec, s0, **kw)  # compile
    ours = flow(spec, s0, **kw)
    t_ours = best_of(lambda: flow(spec, s0, **kw), 5)
    ref = solve_ivp(f, (0, a.t_end), s0.ravel(), method="RK45", rtol=a.rtol, atol=a.atol)
    t_scipy = best_of(lambda: solve_ivp(f, (0, a.t_end), s0.ravel(), method="RK45",
                                        rtol=a.rtol, atol=a.atol), 2)
    dev = np.abs(ref.y[:, -1] - ours.s[-1].ravel()).max() / np.abs(ref.y[:, -1]).max()
    t_numpy = best_of(lambda: solve_ivp(f_numpy, (0, a.t_end), s0.ravel(), method="RK45",
                                        rtol=a.rtol, atol=a.atol), 2)
    Z = 0.5 * rng.uniform(0.5, 1.5, (a.batch, spec.K))
    Z[:, 0] = 0
    S = spec.balanced(Z)
    flow(spec, S[:2], **kw)
    t_batch = best_of(lambda: flow(spec, S, **kw), 2)
    rows = [{"K": spec.K, "L": spec.L, "t_end": a.t_end, "rtol": a.rtol,
             "svdyn_steps": ours.stats["accepted_steps"][0], "scipy_steps": ref.t.size - 1,
             "svdyn_s": t_ours, "scipy_compiled_field_s": t_scipy,
             "ratio_vs_compiled_field": t_scipy / t_ours,
             "scipy_numpy_field_s": t_numpy, "ratio_vs_numpy_field": t_numpy / t_ours,
             "final_rel_diff": dev,
             f"batch{a.batch}_s": t_batch, "batch_traj_per_s": a.batch / t_batch}]
    print(header("Gradient flow: svdyn dopri5 vs scipy solve_ivp RK45"))
    print(table(rows))


if __name__ == "__main__":
    main()
