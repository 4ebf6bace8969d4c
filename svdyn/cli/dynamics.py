"""``svdyn flow``, ``svdyn descend`` and ``svdyn demo``."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ..descent import descend
from ..groups import SpecError
from ..integrate import flow, log_grid
from ..ranks import numerical_rank
from ..spec import ModelSpec
from .common import (_floats, add_init_args, add_model_args, init_from_args, random_init_z,
                     spec_from_args)


def register(sub) -> None:
    p = sub.add_parser("flow", help="integrate the reduced gradient flow")
    add_model_args(p)
    add_init_args(p)
    p.add_argument("--t-end", type=float, required=True, help="final time T")
    p.add_argument("--save-at", help="comma-separated save times (hit exactly); default: 0 and "
                   "200 log-spaced times up to T")
    p.add_argument("--rtol", type=float, default=1e-9)
    p.add_argument("--atol", type=float, default=1e-12)
    p.add_argument("--max-steps", type=int, default=2_000_000)
    _add_outputs(p)
    p.set_defaults(func=cmd_flow)

    p = sub.add_parser("descend", help="exact reduced gradient descent")
    add_model_args(p)
    add_init_args(p)
    p.add_argument("--lr", type=float, required=True, help="step size eta")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--save-every", type=int, default=1)
    _add_outputs(p)
    p.set_defaults(func=cmd_descend)

    p = sub.add_parser("demo", help="K=8 from one small spectral init at depths 2, 3, 4, 6")
    p.add_argument("--out", default="svdyn-demo", help="output folder (default svdyn-demo)")
    p.add_argument("--init-scale", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--t-end", type=float, default=1e8)
    p.add_argument("--depths", default="2,3,4,6")
    p.set_defaults(func=cmd_demo)


def _add_outputs(p) -> None:
    p.add_argument("--json", help="write the trajectory as JSON to this file")
    p.add_argument("--npz", help="write the trajectory as .npz to this file")
    p.add_argument("--plot", help="write a PNG of z_j against time to this file")


def _finish(traj, args, meta: dict) -> int:
    traj.meta.update(meta)
    traj.meta["command"] = " ".join(["svdyn"] + list(getattr(args, "argv", [])))
    if args.json:
        traj.save(args.json)
    if args.npz:
        traj.save(args.npz if args.npz.endswith(".npz") else args.npz + ".npz")
    if args.plot:
        from ..plotting import save_modes_plot
        save_modes_plot(traj, args.plot)
    z = traj.z[-1]
    print(f"{traj.kind}: K={traj.spec.K} L={traj.spec.L} group={traj.spec.group} "
          f"loss={traj.spec.loss} status={traj.status}")
    print(f"  final time {traj.times[-1]:.6g}: loss {traj.loss[-1]:.6e}, min margin "
          f"{traj.min_margin[-1]:.6g}, rank(0.1) {int(numerical_rank(z[1:]))}")
    print("  z =", np.array2string(z, precision=6, max_line_width=100, threshold=20))
    extra = {k: v for k, v in traj.stats.items() if k in ("accepted_steps", "seconds")}
    print("  stats:", json.dumps(extra))
    if traj.status != "ok":
        sys.stderr.write(f"svdyn {traj.kind}: {traj.status}\n")
        return 1
    return 0


def cmd_flow(args) -> int:
    spec = spec_from_args(args)
    s0, meta = init_from_args(args, spec)
    if not (math.isfinite(args.t_end) and args.t_end > 0):
        raise SpecError(f"--t-end must be a finite number > 0, got {args.t_end}")
    save_at = None
    if args.save_at:
        save_at = np.array(sorted(set(_floats(args.save_at, "--save-at"))))
        if save_at[0] > 0:
            save_at = np.concatenate([[0.0], save_at])
    if args.max_steps < 1:
        raise SpecError("--max-steps must be >= 1")
    traj = flow(spec, s0, args.t_end, save_at=save_at, rtol=args.rtol, atol=args.atol,
                max_steps=args.max_steps)
    return _finish(traj, args, meta)


def cmd_descend(args) -> int:
    spec = spec_from_args(args)
    s0, meta = init_from_args(args, spec)
    traj = descend(spec, s0, args.lr, args.steps, args.save_every)
    return _finish(traj, args, meta)


def cmd_demo(args) -> int:
    from ..analysis.geometry import classify_trajectory
    from ..plotting import save_grid_plot, save_modes_plot

    depths = [int(d) for d in _floats(args.depths, "--depths")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    K = 8
    z0 = random_init_z(ModelSpec(K), args.init_scale, np.random.default_rng(args.seed))
    lines = [f"svdyn demo: K={K}, walsh basis, cross-entropy, n=1, no weight decay",
             f"one spectral init z(0) = {np.array2string(z0, precision=4)}"
             f" (init-scale {args.init_scale}, seed {args.seed}), balanced over the factors",
             f"gradient flow to t = {args.t_end:g} (dopri5, rtol 1e-9)", "",
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
        tr.save(out / f"depth{L}.json")
        save_modes_plot(tr, out / f"depth{L}.png", f"K=8, depth L={L} (ce)")
        trajs.append(tr)
        z = tr.z[-1]
        r = int(numerical_rank(z[1:]))
        limit = classify_trajectory(tr)["certified"]["label"]
        lines.append(f"{L:>5} {r:>9} {limit:>17} {tr.loss[-1]:>12.4e} {tr.min_margin[-1]:>11.4f} "
                     f"{tr.stats['accepted_steps'][0]:>6} {tr.stats['seconds']:>8.3f}  "
                     + np.array2string(z[1:] / z[1:].max(), precision=3))
        print(f"      status {tr.status}, rank(0.1) at T {r}, limit {limit}, "
              f"loss {tr.loss[-1]:.3e}", flush=True)
    save_grid_plot(trajs, out / "modes.png", [f"K=8, depth L={L}" for L in depths])
    lines += ["", "rank(0.1) = number of non-constant z_j above 0.1 * max z_j at t = T; "
              "limit = the certified limit (svdyn classify, field certified: y-clock ratios "
              "plus a KKT certificate; undecided when not certified). Depth 2 should reach "
              "neural collapse (NC, rank 7).",
              f"total wall time {time.perf_counter() - t_all:.2f} s"]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}/summary.txt, {out}/modes.png, depth*.json, depth*.png")
    return 0
