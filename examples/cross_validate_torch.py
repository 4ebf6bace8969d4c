"""Cross-validate one reduced run against full-matrix training in torch (float64).

Builds the spectral factors F_l = R_l diag(s_l) R_{l-1}^T with random orthonormal hidden frames,
trains all factors with full-batch GD next to the exact reduced GD map, and reports how far the
full model's singular values (projection on the frames and an independent SVD) stray from the
reduced ones; then the GD -> gradient-flow convergence order. Needs torch
(pip install "svdyn[torch]"); uses cuda when available (--device).

    python examples/cross_validate_torch.py [--classes 16] [--depth 3] [--width 20]
                                            [--lr 0.5] [--steps 500] [--device auto]
    python examples/cross_validate_torch.py --small
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import svdyn
from svdyn.plotting import save_spectral_validation


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=16)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--init-scale", type=float, default=1.0)
    p.add_argument("--order-time", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="crossval-out")
    p.add_argument("--small", action="store_true")
    a = p.parse_args(argv)
    if a.small:
        a.classes, a.width, a.steps, a.order_time = 8, 10, 60, 1.0
    spec = svdyn.ModelSpec(classes=a.classes, depth=a.depth)
    z0 = svdyn.random_init_z(spec, a.init_scale, np.random.default_rng(a.seed))
    s0 = svdyn.balanced_init(spec, z0)
    val = svdyn.validate_against_full(spec, s0, a.width, a.lr, a.steps,
                                      save_every=max(1, a.steps // 50), seed=a.seed,
                                      device=a.device)
    order = svdyn.gd_flow_order(spec, s0, a.width, a.lr, a.order_time, levels=3 if a.small
                                else 4, seed=a.seed, device=a.device)
    print(f"device {val.device}: max relative deviation {val.max_rel_dev:.2e}, leakage "
          f"{val.max_leakage:.2e}, loss gap {val.loss_gap:.2e}; reduced {val.reduced_seconds:.4f}"
          f" s vs full {val.full_seconds:.3f} s")
    print("GD -> flow errors " + ", ".join(f"{e:.3e}" for e in order.errors_full)
          + f" at lr " + ", ".join(f"{x:g}" for x in order.lrs) + f": order {order.order:.3f}")
    save_spectral_validation(spec, val.to_dict(), Path(a.out) / "crossval.png", order.to_dict())
    return {"spec": spec, "s0": s0, "validation": val, "order": order, "args": a,
            "out": Path(a.out)}


if __name__ == "__main__":
    main()
