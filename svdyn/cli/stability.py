"""``svdyn stability``: perturb a spectral start, train in torch, measure the leakage and its
linearised prediction (:func:`svdyn.stability.run_stability`); ``--report DIR`` regenerates
``DIR/STABILITY.md`` and its figures (:func:`svdyn.stability_report.write_section`)."""
from __future__ import annotations

import math

import numpy as np

from ..groups import SpecError
from .common import (Num, OutDir, add_init_args, add_json_out, add_model_args, add_plot_out,
                     init_from_args, spec_from_args, write_json)


def register(sub) -> None:
    p = sub.add_parser("stability", help="off-manifold stability of the spectral form under "
                       "torch optimizers (perturbed full training vs linearised prediction)")
    add_model_args(p, depth_required=False)
    for a in p._actions:          # --classes is not needed with --report
        if a.dest == "classes":
            a.required = False
    add_init_args(p, required=False)
    from .dynamics import add_optimizer_args
    add_optimizer_args(p)
    p.add_argument("--lr", type=Num(float, lo=0.0, lo_open=True, hi=1e6), default=0.5, help="step size (default 0.5)")
    p.add_argument("--steps", type=Num(int, lo=1, hi=10 ** 7), default=1000, help="training steps (default 1000)")
    p.add_argument("--save-every", type=Num(int, lo=1), default=10, help="record every k-th step")
    p.add_argument("--delta", type=Num(float, lo=0.0, hi=10.0), default=1e-6,
                   help="relative perturbation size per factor (default 1e-6)")
    p.add_argument("--direction", default="random",
                   choices=("random", "off", "outside", "offdiag", "gauge"),
                   help="perturbation direction (default random Gaussian)")
    p.add_argument("--width", type=Num(int, lo=1, hi=1 << 14), default=None, help="hidden width (default K + 4)")
    p.add_argument("--frames", default="random", choices=("random", "signed-permutation"),
                   help="hidden frames (signed-permutation: element-wise optimizers' exact case)")
    p.add_argument("--no-linearised", action="store_true",
                   help="skip the linearised prediction (half the cost)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    add_json_out(p)
    add_plot_out(p, "leakage against step (measured and predicted)")
    p.add_argument("--report", metavar="DIR", type=OutDir(), help="regenerate DIR/STABILITY.md and "
                   "DIR/figures/stability_*.png (the report section; ignores the run options)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.report:
        from ..stability_report import write_section
        write_section(args.report, args.device)
        print(f"wrote {args.report}/STABILITY.md and {args.report}/figures/stability_*.png")
        return 0
    from ..stability import run_stability
    from .dynamics import optimizer_hyper
    if args.classes is None:
        raise SpecError("--classes K is required (unless --report DIR)")
    spec = spec_from_args(args)
    if args.init is None and args.init_file is None and args.init_scale is None:
        args.init_scale = 0.1
    s0, init_desc = init_from_args(args, spec)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise SpecError(f"--lr must be a finite number > 0, got {args.lr}")
    if args.width is not None and args.width < spec.K:
        raise SpecError(f"--width {args.width} < K = {spec.K}; use --width {spec.K} or more")
    from ..progress import step_callback
    r = run_stability(spec, s0, args.optimizer, args.lr, args.steps, args.delta,
                      args.direction, args.width, args.frames, args.seed, args.save_every,
                      args.device, not args.no_linearised, **optimizer_hyper(args),
                      progress=step_callback("svdyn stability"))
    print(f"stability: K={spec.K} L={spec.L} {spec.group} {args.optimizer} lr={args.lr:g} "
          f"delta={args.delta:g} {args.direction} frames={args.frames} device {r.device} "
          f"({r.seconds:.2f} s)")
    print(f"  base: {r.base}; max base leakage {np.max(r.leakage_base):.2e}")
    print(f"  leakage: start {r.leakage[0]:.3e}, end {r.leakage[-1]:.3e} (predicted "
          f"{r.leakage_pred[-1]:.3e})")
    for ph, g in r.growth.items():
        fmt = (lambda x: "n/a" if x is None else f"{x:+.3e}")
        print(f"  {ph:>9} steps {r.phases[ph][0]:.0f}-{r.phases[ph][1]:.0f}: rate measured "
              f"{fmt(g['measured'])} predicted {fmt(g['predicted'])} per step -> "
              f"{g['verdict_measured']}{' (saturated)' if g['saturated'] else ''} / "
              f"predicted {g['verdict_predicted']}")
    for n in r.notes:
        print(f"  note: {n}")
    if args.json:
        d = r.to_json_dict()
        d["config"]["init"] = init_desc
        write_json(args.json, d)
    if args.plot:
        import matplotlib.pyplot as plt

        from ..plotting import save_figure
        fig, ax = plt.subplots(figsize=(6, 3.8))
        ax.semilogy(r.steps, np.maximum(r.leakage, 1e-18), "-", label="measured (torch)")
        ax.semilogy(r.steps, np.clip(r.leakage_pred, 1e-18, 1e3), "--", label="linearised")
        ax.semilogy(r.steps, np.maximum(r.leakage_base, 1e-18), ":", label="base trajectory")
        ax.set_ylim(1e-17, 10.0)
        ax.set_xlabel("step")
        ax.set_ylabel("leakage")
        ax.set_title(f"K={spec.K} L={spec.L} {args.optimizer} lr={args.lr:g} "
                     f"delta={args.delta:g} ({r.device})", fontsize=8)
        ax.legend(fontsize=8)
        save_figure(fig, args.plot)
    return 0
