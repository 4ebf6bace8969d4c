"""Check the Lyapunov function of [H] on your own initial condition.

V(z) = KL(uniform || q), q_j = z_j / sum_k z_k over the non-constant modes, decreases along the
balanced depth-2 cross-entropy flow (svdyn.lyapunov). This script integrates the flow from the
init you give, evaluates V on the saved states, compares the analytic dV/dt with a central
finite difference of V along the trajectory, and reports whether V ever rose. Try an
unbalanced start (--spread) or depth 3 to see where monotonicity is not guaranteed.

    python examples/lyapunov_check.py --init 0.1,0.3,0.2,0.05,0.4,0.1,0.2 [--depth 2]
                                      [--spread 0] [--t-end 1e4] [--out lyap-out]
    python examples/lyapunov_check.py --small
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import svdyn
from svdyn import lyapunov
from svdyn.plotting import save_figure


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--init", default="0.1,0.3,0.2,0.05,0.4,0.1,0.2",
                   help="z_1..z_{K-1} (K-1 values; K = count + 1)")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--spread", type=float, default=0.0,
                   help="log-imbalance across layers (0 = balanced)")
    p.add_argument("--t-end", type=float, default=1e4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="lyap-out")
    p.add_argument("--small", action="store_true")
    a = p.parse_args(argv)
    if a.small:
        a.init, a.t_end = "0.1,0.3,0.05", 1e3
    z_init = np.r_[0.0, [float(x) for x in a.init.split(",")]]
    spec = svdyn.ModelSpec(classes=z_init.size, depth=a.depth)
    s0 = (svdyn.unbalanced_init(spec, z_init, a.spread, a.seed) if a.spread > 0
          else svdyn.balanced_init(spec, z_init))
    times = np.r_[0.0, np.geomspace(a.t_end * 1e-5, a.t_end, 200)]
    traj = svdyn.flow(spec, s0, save_at=times, rtol=1e-12, atol=1e-14)
    V = lyapunov.value(traj.z)                                   # (T,)
    rate = np.array([lyapunov.rate(spec, s) for s in traj.s])   # analytic dV/dt, (T,)
    # central difference on the (non-uniform) grid, interior points
    t = traj.times
    fd = (V[2:] - V[:-2]) / (t[2:] - t[:-2])
    rel_inc = np.diff(V) / np.maximum(np.abs(V[:-1]), 1e-300)
    rose = bool(np.any(rel_inc > 1e-12))
    print(traj)
    print(f"V: {V[0]:.6g} at t=0 -> {V[-1]:.6g} at t={t[-1]:g}; "
          f"{'ROSE (largest relative rise %.3g)' % rel_inc.max() if rose else 'never rose'}")

    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    a1.loglog(t[1:], V[1:], lw=1.5)
    a1.set_xlabel("t")
    a1.set_ylabel("V = KL(uniform || q)")
    a1.set_title(f"K={spec.K}, L={spec.L}, spread {a.spread:g}", fontsize=9)
    a2.semilogx(t[1:-1], rate[1:-1], "-", lw=1.5, label="analytic dV/dt")
    a2.semilogx(t[1:-1], fd, ".", ms=3, label="finite difference of V(t)")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_xlabel("t")
    a2.set_ylabel("dV/dt")
    a2.legend(fontsize=7)
    save_figure(fig, Path(a.out) / "lyapunov.png")
    return {"spec": spec, "traj": traj, "V": V, "rate": rate, "fd": fd, "rose": rose,
            "max_rel_increase": float(rel_inc.max()), "out": Path(a.out)}


if __name__ == "__main__":
    main()
