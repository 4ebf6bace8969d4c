"""``svdyn flow``, ``svdyn descend`` and ``svdyn demo``."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..groups import SpecError
from ..io import write_text
from ..ranks import numerical_rank
from ..spec import ModelSpec
from .common import (MAX_TIME, POSITIVE, SEED_T, Num, NumList, OutDir, OutFile, add_init_args,
                     add_model_args, add_plot_out, check_save_plan, init_from_args,
                     random_init_z, save_plot, save_trajectory, spec_from_args)

# the engine (numba) is imported inside the commands, so that --help and argument errors
# answer without loading numba; tests/test_cli.py checks this and that OPTIMIZER_NAMES equals
# tuple(svdyn.optimizers.OPTIMIZERS)
OPTIMIZER_NAMES = ("gd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "sign-gd")
T_END = Num(float, lo=1e-300, hi=MAX_TIME, why="float64 times")


def register(sub) -> None:
    p = sub.add_parser("flow", help="integrate the reduced gradient flow")
    add_model_args(p)
    add_init_args(p)
    p.add_argument("--t-end", type=T_END, required=True, help="final time T")
    p.add_argument("--save-at", type=NumList(float, lo=0.0, hi=MAX_TIME),
                   help="comma-separated save times (hit exactly); default: 0 and "
                   "200 log-spaced times up to T")
    p.add_argument("--rtol", type=Num(float, lo=1e-14, hi=1.0, hi_open=True), default=1e-9,
                   help="relative tolerance in [1e-14, 1) (default 1e-9)")
    p.add_argument("--atol", type=Num(float, lo=0.0, lo_open=True, hi=1.0), default=1e-12,
                   help="absolute tolerance > 0 (default 1e-12)")
    p.add_argument("--max-steps", type=Num(int, lo=1, hi=10 ** 10), default=2_000_000,
                   help="step limit (default 2,000,000)")
    p.add_argument("--log-time", action="store_true",
                   help="integrate in log(1 + t): fewer steps to long horizons (see "
                   "svdyn.flow's log_time)")
    _add_outputs(p)
    p.set_defaults(func=cmd_flow)

    p = sub.add_parser("descend", help="exact reduced gradient descent")
    add_model_args(p)
    add_init_args(p)
    p.add_argument("--lr", type=Num(float, lo=0.0, lo_open=True, hi=1e300), required=True,
                   help="step size eta")
    p.add_argument("--steps", type=Num(int, lo=0, hi=10 ** 12), required=True)
    p.add_argument("--save-every", type=Num(int, lo=1), default=1,
                   help="save every k-th step and the last (default 1)")
    add_optimizer_args(p)
    _add_outputs(p)
    p.set_defaults(func=cmd_descend)

    p = sub.add_parser("demo", help="K=8 from one small spectral init at depths 2, 3, 4, 6",
                       description="K = 8, walsh, ce: one spectral init flowed at each depth; "
                       "writes OUT/summary.txt, OUT/modes.png, OUT/depthL.json and "
                       "OUT/depthL.png (OUT is created if its parent exists). About 10 s at "
                       "the defaults once the kernels are compiled.")
    p.add_argument("--out", type=OutDir(), default="svdyn-demo",
                   help="output folder (default svdyn-demo, created in the current folder)")
    p.add_argument("--init-scale", type=POSITIVE, default=0.1)
    p.add_argument("--seed", type=SEED_T, default=0)
    p.add_argument("--t-end", type=T_END, default=1e8)
    p.add_argument("--depths", type=NumList(int, lo=1, hi=64), default=[2, 3, 4, 6],
                   help="comma-separated depths (default 2,3,4,6; at most 64)")
    p.set_defaults(func=cmd_demo)


def _add_outputs(p) -> None:
    p.add_argument("--json", type=OutFile(".json"),
                   help="write the trajectory as JSON to this file")
    p.add_argument("--npz", type=OutFile(".npz", ""),
                   help="write the trajectory as .npz to this file (.npz is appended if "
                   "missing)")
    add_plot_out(p, "z_j against time")


def _last_finite(traj) -> int:
    ok = np.flatnonzero(np.all(np.isfinite(traj.s), axis=(1, 2)))
    return int(ok[-1]) if ok.size else 0


def _finish(traj, args, meta: dict) -> int:
    traj.meta.update(meta)
    traj.meta["command"] = " ".join(["svdyn"] + list(getattr(args, "argv", [])))
    written = save_trajectory(traj, args.json, args.npz)
    if args.plot:
        from ..plotting import save_modes_plot
        written.append(save_plot(args.plot, save_modes_plot, traj))
    i = _last_finite(traj)
    z = traj.z[i]
    print(f"{traj.kind}: K={traj.spec.K} L={traj.spec.L} group={traj.spec.group} "
          f"loss={traj.spec.loss} status={traj.status}")
    unit = "time" if traj.kind == "flow" else "step"
    if traj.status != "ok":
        reached = traj.stats.get("t_reached", [None])[0] if traj.kind == "flow" else None
        where = f"stopped at {unit} {reached:.6g} of {traj.times[-1]:.6g}; " \
            if reached is not None else ""
        print(f"  {where}last saved {unit} {traj.times[i]:.6g}: loss {traj.loss[i]:.6e}, "
              f"min margin {traj.min_margin[i]:.6g}, rank(0.1) {int(numerical_rank(z[1:]))}")
    else:
        print(f"  final {unit} {traj.times[i]:.6g}: loss {traj.loss[i]:.6e}, min margin "
              f"{traj.min_margin[i]:.6g}, rank(0.1) {int(numerical_rank(z[1:]))}")
    print("  z =", np.array2string(z, precision=6, max_line_width=100, threshold=20))
    extra = {k: v for k, v in traj.stats.items() if k in ("accepted_steps", "seconds")}
    print("  stats:", json.dumps(extra))
    if written:
        print("  wrote " + ", ".join(written))
    if traj.status != "ok":
        sys.stderr.write(f"svdyn {traj.kind if traj.kind == 'flow' else 'descend'}: "
                         f"{traj.status}\n")
        return 1
    return 0


def cmd_flow(args) -> int:
    spec = spec_from_args(args)
    s0, meta = init_from_args(args, spec)
    save_at = None
    if args.save_at:
        save_at = np.array(sorted(set(args.save_at)))
        if save_at[-1] > args.t_end:
            raise SpecError(f"--save-at: time {save_at[-1]:g} lies beyond --t-end "
                            f"{args.t_end:g}; drop it or raise --t-end")
        if save_at[0] > 0:
            save_at = np.concatenate([[0.0], save_at])
        check_save_plan(save_at.size + 1, spec.L, spec.K, what="--save-at: ")
    from ..integrate import flow     # numba: only once the arguments are known good
    traj = flow(spec, s0, args.t_end, save_at=save_at, rtol=args.rtol, atol=args.atol,
                max_steps=args.max_steps, log_time=args.log_time)
    return _finish(traj, args, meta)


def cmd_descend(args) -> int:
    spec = spec_from_args(args)
    n_saves = args.steps // args.save_every + 2
    check_save_plan(n_saves, spec.L, spec.K, steps=args.steps,
                    what=f"--steps {args.steps} --save-every {args.save_every}: ")
    if args.json or args.plot:   # JSON text is ~20 bytes a number
        check_save_plan(n_saves * 3, spec.L, spec.K, steps=3 * args.steps,
                        what=f"--steps {args.steps} --save-every {args.save_every} with --json: ")
    s0, meta = init_from_args(args, spec)
    if args.optimizer == "gd":
        from ..descent import descend
        traj = descend(spec, s0, args.lr, args.steps, args.save_every)
    else:
        from ..optimizers import optimize
        traj = optimize(spec, s0, args.lr, args.steps, args.optimizer,
                        save_every=args.save_every, **optimizer_hyper(args))
    return _finish(traj, args, meta)


def add_optimizer_args(p) -> None:
    """--optimizer --momentum --betas --eps --alpha (issue 15)."""
    p.add_argument("--optimizer", default="gd", choices=list(OPTIMIZER_NAMES),
                   help="gd (default), momentum, nesterov (torch SGD conventions); adam, "
                   "adamw, rmsprop, sign-gd (exact only for walsh, depth >= 2, "
                   "signed-permutation hidden frames)")
    p.add_argument("--momentum", type=Num(float, lo=0.0, hi=1.0, hi_open=True), default=0.9,
                   help="beta of momentum / nesterov, in [0, 1) (default 0.9)")
    p.add_argument("--betas", type=NumList(float, n=2, lo=0.0, hi=1.0, hi_open=True),
                   default=[0.9, 0.999], help="Adam betas, two numbers in [0, 1) "
                   "(default 0.9,0.999)")
    p.add_argument("--eps", type=Num(float, lo=0.0, lo_open=True, hi=1.0), default=1e-8,
                   help="Adam / RMSprop eps (default 1e-8)")
    p.add_argument("--alpha", type=Num(float, lo=0.0, hi=1.0, hi_open=True), default=0.99,
                   help="RMSprop alpha, in [0, 1) (default 0.99)")


def optimizer_hyper(args) -> dict:
    return {"momentum": args.momentum, "betas": tuple(args.betas), "eps": args.eps,
            "alpha": args.alpha}


def cmd_demo(args) -> int:
    from ..analysis.geometry import classify_trajectory
    from ..integrate import flow, log_grid
    from ..plotting import save_grid_plot, save_modes_plot

    depths = list(args.depths)
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    K = 8
    z0 = random_init_z(ModelSpec(K), args.init_scale, np.random.default_rng(args.seed))
    lines = [f"svdyn demo: K={K}, walsh basis, cross-entropy, n=1, no weight decay",
             f"one spectral init z(0) = {np.array2string(z0, precision=4)}"
             f" (init-scale {args.init_scale}, seed {args.seed}), balanced over the factors",
             f"gradient flow to t = {args.t_end:g} (dop853, rtol 1e-9)", "",
             f"{'depth':>5} {'rank(0.1)':>9} {'limit (classify)':>17} {'loss':>12} "
             f"{'min margin':>11} {'steps':>6} {'seconds':>8}  z(T)/max z(T)"]
    trajs = []
    t_all = time.perf_counter()
    for i, L in enumerate(depths):
        spec = ModelSpec(K, L)
        print(f"[{i + 1}/{len(depths)}] depth {L}: integrating to t={args.t_end:g} ...",
              flush=True)
        tr = flow(spec, spec.balanced(z0), save_at=log_grid(args.t_end, 300))
        tr.meta.update({"init": "scale", "init_scale": args.init_scale, "seed": args.seed,
                        "z0": z0.tolist(), "command": "svdyn demo"})
        save_trajectory(tr, out / f"depth{L}.json")
        save_plot(out / f"depth{L}.png", save_modes_plot, tr, title=f"K=8, depth L={L} (ce)")
        trajs.append(tr)
        z = tr.z[-1]
        r = int(numerical_rank(z[1:]))
        limit = (classify_trajectory(tr)["certified"]["label"] if tr.status == "ok"
                 else "(run failed)")
        lines.append(f"{L:>5} {r:>9} {limit:>17} {tr.loss[-1]:>12.4e} {tr.min_margin[-1]:>11.4f} "
                     f"{tr.stats['accepted_steps'][0]:>6} {tr.stats['seconds']:>8.3f}  "
                     + np.array2string(z[1:] / z[1:].max(), precision=3))
        print(f"      status {tr.status}, rank(0.1) at T {r}, limit {limit}, "
              f"loss {tr.loss[-1]:.3e}", flush=True)
    save_plot(out / "modes.png", save_grid_plot, trajs,
              titles=[f"K=8, depth L={L}" for L in depths])
    lines += ["", "rank(0.1) = number of non-constant z_j above 0.1 * max z_j at t = T; "
              "limit = the certified limit (svdyn classify, field certified: y-clock ratios "
              "plus a KKT certificate; undecided when not certified). Depth 2 should reach "
              "neural collapse (NC, rank 7).",
              f"total wall time {time.perf_counter() - t_all:.2f} s"]
    write_text(out / "summary.txt", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}/summary.txt, {out}/modes.png, depth*.json, depth*.png")
    return 0
