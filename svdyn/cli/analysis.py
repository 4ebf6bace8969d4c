"""``svdyn maxmargin``, ``svdyn basin``, ``svdyn code``, ``svdyn classify``, ``svdyn report``."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..groups import SpecError
from .common import write_json


def register(sub) -> None:
    p = sub.add_parser("maxmargin", help="spectral max-margin problem: optimum, NC cost, "
                       "crossover depths")
    p.add_argument("--classes", type=int, required=True, help="number of classes K")
    p.add_argument("--depth", type=float, required=True, help="depth L (real values allowed)")
    p.add_argument("--group", default="", help="walsh | cyclic | m1,m2,... (default walsh "
                   "for K a power of two, else cyclic)")
    p.add_argument("--samples-per-class", type=int, default=1, help="n (default 1)")
    p.add_argument("--depth-max", type=float, default=1000.0,
                   help="crossovers are searched on depths [2, DEPTH_MAX] (default 1000)")
    p.add_argument("--certify", type=float, metavar="SECONDS", default=None,
                   help="also compute an MILP lower bound at this depth (time limit SECONDS); "
                   "adds \"certificate\" (certifies the search result for walsh K = 32)")
    p.add_argument("--certify-nodes", type=int, metavar="N", default=None,
                   help="MILP lower bound with a budget of N branch-and-bound nodes instead "
                   "(deterministic: the same bound on every run; the report uses this)")
    p.add_argument("--json", help="write the result to this JSON file")
    p.set_defaults(func=cmd_maxmargin)

    p = sub.add_parser("basin", help="basins of attraction over spectral inits: K = 4 critical "
                       "ratio or map, Monte Carlo for other K")
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--depth", type=int, required=True)
    p.add_argument("--group", default="")
    p.add_argument("--init-scale", type=float, help="eps (critical ratio, Monte Carlo)")
    p.add_argument("--critical-ratio", action="store_true",
                   help="K = 4: bisect r_c(eps, L) for z(0) = eps (0, 1, 1, r)")
    p.add_argument("--tol", type=float, default=1e-4, help="absolute tolerance on r_c")
    p.add_argument("--r-max", type=float, default=1.0, help="upper end of the r bracket")
    p.add_argument("--map", action="store_true", help="K = 4: classify an (eps, r) grid")
    p.add_argument("--eps-range", default="1e-3,1,100",
                   help="map: EPS_MIN,EPS_MAX,NUM (log-spaced; default 1e-3,1,100)")
    p.add_argument("--r-range", default="0,1.5,100",
                   help="map: R_MIN,R_MAX,NUM (linear; default 0,1.5,100)")
    p.add_argument("--samples", type=int, help="Monte Carlo: number of random spectral inits "
                   "z_j(0) = eps U(0.5, 1.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margins", default=None, help="classifier margins M_MID,M_END "
                   "(normalised-time continuation; default 1e2,1e4; for --critical-ratio the "
                   "default is three horizons M = 1e3, 1e4, 1e5 with M -> inf extrapolation)")
    p.add_argument("--json", help="write the result to this JSON file")
    p.add_argument("--png", help="map: write the basin map to this PNG")
    p.set_defaults(func=cmd_basin)

    p = sub.add_parser("code", help="softmax code for (d, K) vs the best spectral code")
    p.add_argument("--dim", type=int, required=True, help="dimension d (= rank)")
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--restarts", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the result to this JSON file")
    p.set_defaults(func=cmd_code)

    p = sub.add_parser("classify", help="limit geometry of a saved trajectory")
    p.add_argument("--json", required=True, dest="traj", metavar="TRAJ.json",
                   help="trajectory written by `svdyn flow --json` (or .npz)")
    p.add_argument("--margins", default="1e2,1e4", help="M_MID,M_END (default 1e2,1e4)")
    p.add_argument("--out", help="write the result to this JSON file")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("report", help="regenerate validation/REPORT.md and its figures")
    p.add_argument("--out", default="validation/REPORT.md")
    p.add_argument("--figures", default="validation/figures")
    p.add_argument("--quick", action="store_true", help="small grids (smoke test, minutes)")
    p.add_argument("--device", default="auto", help="torch device for the width study")
    p.add_argument("--only", metavar="SECTIONS", help="regenerate only these sections, comma "
                   "separated (h, mm, d2, basins, rep, codes, width, pu; aliases d, p, u); the "
                   "others are kept from the existing report")
    p.set_defaults(func=cmd_report)


def _pair(text: str, what: str) -> tuple[float, float]:
    try:
        a, b = (float(t) for t in text.split(","))
    except ValueError:
        raise SpecError(f"{what}: expected two comma-separated numbers, got {text!r}") from None
    if not (0 < a < b and math.isfinite(b)):
        raise SpecError(f"{what}: need 0 < M_MID < M_END, got {text!r}")
    return a, b


def _range(text: str, what: str, log: bool) -> np.ndarray:
    try:
        a, b, n = text.split(",")
        a, b, n = float(a), float(b), int(n)
    except ValueError:
        raise SpecError(f"{what}: expected MIN,MAX,NUM, got {text!r}") from None
    if n < 1 or not (math.isfinite(a) and math.isfinite(b)) or b < a or (log and a <= 0):
        raise SpecError(f"{what}: need MIN <= MAX{' and MIN > 0' if log else ''}, NUM >= 1")
    return np.geomspace(a, b, n) if log else np.linspace(a, b, n)


def _emit(obj, path) -> None:
    if path:
        write_json(path, obj)


def cmd_maxmargin(args) -> int:
    from ..analysis.maxmargin import lower_bound, solve
    r = solve(args.classes, args.depth, args.group, args.samples_per_class, args.depth_max)
    if args.certify is not None or args.certify_nodes is not None:
        if args.certify is not None and not (args.certify > 0):
            raise SpecError("--certify needs a time limit in seconds > 0")
        if args.certify_nodes is not None and args.certify_nodes < 1:
            raise SpecError("--certify-nodes needs a node budget >= 1")
        if args.samples_per_class != 1:
            raise SpecError("--certify works with --samples-per-class 1 (costs scale by "
                            "n^(1/L) otherwise)")
        from ..groups import default_group, make_group
        G = make_group(args.group or default_group(args.classes), args.classes)
        r["certificate"] = lower_bound(G, args.depth, args.certify,
                                       node_limit=args.certify_nodes)
    _emit(r, args.json)
    o = r["optimum"]
    print(f"maxmargin K={r['classes']} L={r['depth']:g} group={r['group']}: optimum rank "
          f"{o['rank']} support {o['support']} cost {o['cost']:.10g} (NC {r['nc_cost']:.10g})"
          f"{'' if r['exact'] else '  [not certified: search]'}")
    if "certificate" in r:
        ce = r["certificate"]
        print(f"  MILP lower bound {ce['lower_bound']:.10g} (gap {ce['gap']:.2e}, "
              f"{'certified' if ce['certified'] else 'not certified'}, {ce['seconds']:.1f} s)")
    for c in r["crossovers"]:
        cf = f"  = {c['closed_form']}" if c["closed_form"] else ""
        print(f"  crossover L* = {c['depth']:.10g}: rank {c['from_rank']} -> {c['to_rank']}{cf}")
    return 0


def cmd_basin(args) -> int:
    from ..analysis import basins
    explicit = args.margins is not None
    m_mid, m_end = _pair(args.margins or "1e2,1e4", "--margins")
    if args.critical_ratio:
        if args.classes != 4:
            raise SpecError("--critical-ratio is defined for --classes 4 (z(0) = eps (0,1,1,r))")
        if args.init_scale is None:
            raise SpecError("--critical-ratio needs --init-scale EPS")
        if not (args.tol > 0):
            raise SpecError("--tol must be > 0")
        kw = {"m_mid": m_mid, "m_end": m_end} if explicit else {}
        r = basins.k4_critical_ratio(args.depth, args.init_scale, args.r_max, args.tol, **kw)
        _emit(r, args.json)
        err = "" if r["horizon_error"] is None else f" +- {r['horizon_error']:.2g}"
        hz = ", ".join(f"M={h['m_end']:g}: {h['critical_ratio']:.6g}" for h in r["by_horizon"])
        print(f"basin K=4 L={args.depth} eps={args.init_scale:g}: critical ratio "
              f"{r['critical_ratio']:.6g}{err} ({hz})")
        return 0
    if args.map:
        if args.classes != 4:
            raise SpecError("--map is defined for --classes 4; use --samples for other K")
        eps = _range(args.eps_range, "--eps-range", True)
        rr = _range(args.r_range, "--r-range", False)
        r = basins.k4_map(args.depth, eps, rr, m_mid, m_end)
        _emit(r, args.json)
        if args.png:
            from ..analysis.report import plot_k4_map
            plot_k4_map(r, args.png)
        print(f"basin map K=4 L={args.depth}: {r['n']} inits in {r['seconds']:.1f} s, NC "
              f"fraction {r['nc_fraction']:.4f}, undecided {r['undecided']}, failed "
              f"{r['failed']}")
        return 0
    if args.samples:
        if args.init_scale is None:
            raise SpecError("--samples needs --init-scale EPS")
        r = basins.monte_carlo(args.classes, args.depth, args.init_scale, args.samples,
                               args.seed, args.group, m_mid, m_end)
        _emit(r, args.json)
        print(f"basin MC K={args.classes} L={args.depth} eps={args.init_scale:g}: NC fraction "
              f"{r['nc_fraction']:.4f}, ranks {r['rank_histogram']}")
        return 0
    raise SpecError("choose one of --critical-ratio, --map, --samples N")


def cmd_code(args) -> int:
    from ..analysis.codes import compare
    r = compare(args.dim, args.classes, restarts=args.restarts, seed=args.seed)
    _emit(r, args.json)
    print(f"softmax code d={args.dim} K={args.classes}: margin {r['margin']:.8f}")
    for s in r["spectral"]:
        if s["margin"] is None:
            print(f"  {s['group']}: no spectral vertex of rank {args.dim}")
        else:
            print(f"  best spectral ({s['group']}, rank {args.dim}): margin {s['margin']:.8f}"
                  f" -> {'reaches' if s['reachable'] else 'cannot reach'} the softmax code")
    return 0


def cmd_classify(args) -> int:
    from ..analysis.geometry import classify_trajectory
    from ..result import Trajectory
    path = Path(args.traj)
    if not path.exists():
        raise SpecError(f"--json {path}: no such file")
    tr = Trajectory.load(path)
    if tr.batched:
        raise SpecError("classify takes a single trajectory, not a batch")
    m_mid, m_end = _pair(args.margins, "--margins")
    r = classify_trajectory(tr, m_mid, m_end)
    out = json.dumps(r, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    if args.out:
        Path(args.out).write_text(out)
    print(out)
    return 0


def cmd_report(args) -> int:
    from ..analysis.report import build_report, parse_only
    try:
        keys = parse_only(args.only)
    except ValueError as e:
        raise SpecError(f"--only: {e}") from None
    path = build_report(args.out, args.figures, quick=args.quick, device=args.device, only=keys)
    print(f"wrote {path}")
    return 0
