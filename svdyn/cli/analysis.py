"""``svdyn maxmargin``, ``svdyn basin``, ``svdyn code``, ``svdyn classify``, ``svdyn report``."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import json
import math
from pathlib import Path

import numpy as np

from ..groups import SpecError
from .common import (JSON_OUT, MAX_CLASSES, MAX_DEPTH, MAX_SAMPLES, PLOT, SEED_T, Num, NumList,
                     OutDir, OutFile, add_json_out, add_plot_out, add_renamed, save_plot,
                     write_json)


MARGINS = NumList(float, n=2, lo=0.0, lo_open=True, hi=1e300)


def register(sub) -> None:
    p = sub.add_parser("maxmargin", help="spectral max-margin problem: optimum, NC cost, "
                       "crossover depths")
    p.add_argument("--classes", type=Num(int, lo=2, hi=1024), required=True,
                   help="number of classes K (at most 1024)")
    p.add_argument("--depth", type=Num(float, lo=1.0, hi=1e6), required=True,
                   help="depth L >= 1 (real values allowed)")
    p.add_argument("--group", default="", help="walsh | cyclic | m1,m2,... (default walsh "
                   "for K a power of two, else cyclic)")
    p.add_argument("--samples-per-class", type=Num(int, lo=1, hi=MAX_SAMPLES), default=1,
                   help="n (default 1)")
    p.add_argument("--depth-max", type=Num(float, lo=2.0, lo_open=True, hi=1e6), default=1000.0,
                   help="crossovers are searched on depths [2, DEPTH_MAX] (default 1000)")
    p.add_argument("--certify", type=Num(float, lo=0.0, lo_open=True, hi=86400.0),
                   metavar="SECONDS", default=None,
                   help="also compute an MILP lower bound at this depth (time limit SECONDS); "
                   "adds \"certificate\" (certifies the search result for walsh K = 32)")
    p.add_argument("--certify-nodes", type=Num(int, lo=1, hi=10**9), metavar="N", default=None,
                   help="MILP lower bound with a budget of N branch-and-bound nodes instead "
                   "(deterministic: the same bound on every run; the report uses this)")
    add_json_out(p)
    p.set_defaults(func=cmd_maxmargin)

    p = sub.add_parser("basin", help="basins of attraction over spectral inits: K = 4 critical "
                       "ratio or map, Monte Carlo for other K")
    p.add_argument("--classes", type=Num(int, lo=2, hi=MAX_CLASSES), required=True)
    p.add_argument("--depth", type=Num(int, lo=1, hi=MAX_DEPTH), required=True)
    p.add_argument("--group", default="")
    p.add_argument("--init-scale", type=Num(float, lo=0.0, lo_open=True, hi=1e100),
                   help="eps (critical ratio, Monte Carlo)")
    p.add_argument("--critical-ratio", action="store_true",
                   help="K = 4: bisect r_c(eps, L) for z(0) = eps (0, 1, 1, r)")
    add_renamed(p, "--tol", "--bracket-width")
    p.add_argument("--bracket-width", type=Num(float, lo=0.0, lo_open=True, hi=1.0), default=1e-3,
                   help="K = 4: width of the certified bracket of r_c (default 1e-3)")
    p.add_argument("--r-max", type=Num(float, lo=0.0, lo_open=True, hi=1e3), default=1.0,
                   help="upper end of the r bracket (default 1)")
    p.add_argument("--map", action="store_true", help="K = 4: classify an (eps, r) grid")
    p.add_argument("--eps-range", type=Range(log=True), default="1e-3,1,100",
                   help="map: EPS_MIN,EPS_MAX,NUM (log-spaced; default 1e-3,1,100)")
    p.add_argument("--r-range", type=Range(log=False), default="0,1.5,100",
                   help="map: R_MIN,R_MAX,NUM (linear; default 0,1.5,100)")
    p.add_argument("--samples", type=Num(int, lo=1, hi=10 ** 6),
                   help="Monte Carlo: number of random spectral inits z_j(0) = eps U(0.5, 1.5)")
    p.add_argument("--seed", type=SEED_T, default=0, help="seed of the Monte Carlo inits")
    p.add_argument("--margins", default=None, help=argparse.SUPPRESS)   # retired
    add_json_out(p)
    add_plot_out(p, "map: the basin map")
    p.add_argument("--png", type=PLOT, dest="plot", help=argparse.SUPPRESS)  # old name of --plot
    p.set_defaults(func=cmd_basin)

    p = sub.add_parser("code", help="softmax code for (d, K) vs the best spectral code")
    p.add_argument("--dim", type=Num(int, lo=1, hi=63), required=True,
                   help="dimension d (= rank), 1 <= d <= K - 1")
    p.add_argument("--classes", type=Num(int, lo=2, hi=64), required=True,
                   help="number of classes K (at most 64: the code search has K^2 constraints)")
    p.add_argument("--restarts", type=Num(int, lo=1, hi=1000), default=8)
    p.add_argument("--seed", type=SEED_T, default=0)
    add_json_out(p)
    p.set_defaults(func=cmd_code)

    p = sub.add_parser("classify", help="limit geometry of a saved trajectory",
                       usage="svdyn classify TRAJ.json [--json OUT] [--margins M_MID,M_END]")
    p.add_argument("traj", nargs="?", metavar="TRAJ.json",
                   help="trajectory written by `svdyn flow --json` (or --npz)")
    p.add_argument("--margins", type=MARGINS, default=[1e2, 1e4],
                   help="M_MID,M_END (default 1e2,1e4)")
    add_json_out(p)
    p.add_argument("--out", type=JSON_OUT, dest="json_alias", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser(
        "report", help="regenerate validation/REPORT.md and its figures",
        description="Run every study of the reproduction report and write the Markdown report "
        "(--out, default validation/REPORT.md) and its figures and data files (--figures, "
        "default validation/figures; created if its parent exists). Run time: the d2 and "
        "basins sections took 26 s and 554 s with --executor processes --workers 2 on 2 "
        "shared cores (README); --quick runs small grids. The folders must exist: run it "
        "from a source checkout or pass --out and --figures; files are replaced only when "
        "the report is complete. The grid studies (Monte Carlo cells of sections d2 and "
        "basins, the K = 4 basin maps) run through the sweep runner into --work (default "
        "FIGURES/sweeps/; "
        "--quick grids into WORK/quick/): the runner's progress bar shows, an interrupted run "
        "(Ctrl-C, a kill) keeps its finished chunks there and the same command resumes from "
        "them, and --executor processes / dask / --scheduler run the chunks on local workers "
        "or a dask cluster (the numbers do not depend on the executor).")
    p.add_argument("--out", type=OutFile(".md"), default="validation/REPORT.md",
                   help="report file (default validation/REPORT.md; its folder must exist)")
    p.add_argument("--figures", type=OutDir(), default="validation/figures",
                   help="figures folder (default validation/figures)")
    p.add_argument("--quick", action="store_true", help="small grids (smoke test, minutes)")
    p.add_argument("--device", default="auto", help="torch device for the width study")
    p.add_argument("--only", metavar="SECTIONS", help="regenerate only these sections, comma "
                   "separated (h, mm, d2, basins, rep, codes, width, pu; aliases d, p, u); the "
                   "others are kept from the existing report")
    p.add_argument("--work", type=OutDir(), default=None, metavar="DIR",
                   help="sweep folders of the grid studies, kept between runs so that a rerun "
                   "resumes (default FIGURES/sweeps; `svdyn sweep status DIR/<study>` reads "
                   "them)")
    from .sweep import add_executor_args
    add_executor_args(p)
    from .common import add_progress_args
    add_progress_args(p, "the sweep progress bars")
    p.set_defaults(func=cmd_report)


class Range:
    """argparse ``type``: MIN,MAX,NUM (NUM an integer in [1, 1000]; MIN > 0 for a log grid)."""

    def __init__(self, log: bool):
        self.log = log
        self.__name__ = "range"

    def __call__(self, text):
        try:
            a, b, n = NumList(float, n=3)(text)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e}; expected MIN,MAX,NUM") from None
        if not (n == int(n) and 1 <= n <= 1000) or b < a or (self.log and a <= 0):
            raise argparse.ArgumentTypeError(
                f"{text!r}: need MIN <= MAX{', MIN > 0' if self.log else ''} and NUM an "
                "integer in [1, 1000]")
        return np.geomspace(a, b, int(n)) if self.log else np.linspace(a, b, int(n))


def _margins(m, what="--margins"):
    a, b = m
    if not a < b:
        raise SpecError(f"{what} {a:g},{b:g}: need M_MID < M_END")
    return a, b


def _emit(obj, path) -> None:
    if path:
        write_json(path, obj)
        print(f"wrote {path}")


def cmd_maxmargin(args) -> int:
    from ..analysis.maxmargin import lower_bound, solve
    from ..groups import default_group, make_group
    G = make_group(args.group or default_group(args.classes), args.classes)
    if args.certify is not None and args.samples_per_class != 1:
        raise SpecError("--certify works with --samples-per-class 1 (costs scale by "
                        "n^(1/L) otherwise)")
    r = solve(args.classes, args.depth, args.group, args.samples_per_class, args.depth_max)
    if args.certify is not None or args.certify_nodes is not None:
        if args.samples_per_class != 1:
            raise SpecError("--certify-nodes works with --samples-per-class 1 (costs scale "
                            "by n^(1/L) otherwise)")
        r["certificate"] = lower_bound(G, args.depth, args.certify,
                                       node_limit=args.certify_nodes)
    o = r["optimum"]
    print(f"maxmargin K={r['classes']} L={r['depth']:g} group={r['group']}: optimum rank "
          f"{o['rank']} support {o['support']} cost {o['cost']:.10g} (NC {r['nc_cost']:.10g})"
          f"{'' if r['exact'] else '  [not certified: search]'}")
    if "certificate" in r:
        ce = r["certificate"]
        print(f"  MILP lower bound {_g(ce['lower_bound'], '.10g')} (gap {_g(ce['gap'], '.2e')}, "
              f"{'certified' if ce['certified'] else 'not certified'}, {ce['seconds']:.1f} s)")
    for c in r["crossovers"]:
        cf = f"  = {c['closed_form']}" if c["closed_form"] else ""
        print(f"  crossover L* = {c['depth']:.10g}: rank {c['from_rank']} -> {c['to_rank']}{cf}")
    _emit(r, args.json)
    return 0


def _g(x, fmt=".6g") -> str:
    return "n/a" if x is None else format(x, fmt)


def cmd_basin(args) -> int:
    from ..analysis import basins
    if args.margins is not None:
        raise SpecError("--margins is no longer used by `svdyn basin`: limits are certified by "
                        "the y-clock classifier, which needs no horizon; drop --margins")
    modes = [m for m, on in (("--critical-ratio", args.critical_ratio), ("--map", args.map),
                             ("--samples", args.samples is not None)) if on]
    if len(modes) != 1:
        raise SpecError(f"{' and '.join(modes) or 'no mode'}: choose one of --critical-ratio, "
                        "--map, --samples N")
    if args.plot and not args.map:
        raise SpecError(f"--plot {args.plot}: only --map draws a figure")
    if args.critical_ratio:
        if args.classes != 4:
            raise SpecError("--critical-ratio is defined for --classes 4 (z(0) = eps (0,1,1,r))")
        if args.init_scale is None:
            raise SpecError("--critical-ratio needs --init-scale EPS")
        if args.bracket_width >= args.r_max:
            raise SpecError(f"--bracket-width {args.bracket_width:g}: must be smaller than "
                            f"--r-max {args.r_max:g}")
        r = basins.k4_critical_ratio(args.depth, args.init_scale, args.r_max,
                                     args.bracket_width)
        _emit(r, args.json)
        lo, hi = r["bracket"]
        print(f"basin K=4 L={args.depth} eps={args.init_scale:g}: critical ratio in "
              f"[{lo:.6g}, {hi:.6g}] (width {r['width']:.2g}, certified square below, NC above; "
              f"{r['undecided']} of {r['classified']} ratios undecided)")
        return 0
    if args.map:
        if args.classes != 4:
            raise SpecError("--map is defined for --classes 4; use --samples for other K")
        eps, rr = args.eps_range, args.r_range
        if eps.size * rr.size > 10 ** 5:
            raise SpecError(f"--eps-range/--r-range: {eps.size * rr.size:,} grid points "
                            "(limit 100,000); lower NUM")
        r = basins.k4_map(args.depth, eps, rr)
        if args.plot:
            from ..analysis.report import plot_k4_map
            save_plot(args.plot, plot_k4_map, r)
        print(f"basin map K=4 L={args.depth}: {r['n']} inits in {r['seconds']:.1f} s, NC "
              f"fraction {_frac(r)} of the decided, undecided {r['undecided']}, failed "
              f"{r['failed']}" + (f"; wrote {args.plot}" if args.plot else ""))
        _emit(r, args.json)
        return 0
    if args.init_scale is None:
        raise SpecError("--samples needs --init-scale EPS")
    r = basins.monte_carlo(args.classes, args.depth, args.init_scale, args.samples,
                           args.seed, args.group)
    print(f"basin MC K={args.classes} L={args.depth} eps={args.init_scale:g}: NC fraction "
          f"{_frac(r)} of {r['decided']} decided, undecided {r['undecided']}, failed "
          f"{r['failed']}; limits {r['limit_histogram']}")
    _emit(r, args.json)
    return 0


def _frac(r) -> str:
    if r["nc_fraction"] is None:
        return "n/a"
    lo, hi = r["nc_wilson95"]
    return f"{r['nc_fraction']:.4f} [95% Wilson {lo:.4f}, {hi:.4f}]"


def cmd_code(args) -> int:
    from ..analysis.codes import compare
    if args.dim > args.classes - 1:
        raise SpecError(f"--dim {args.dim}: spectral codes have rank <= K - 1 = "
                        f"{args.classes - 1}; use --dim {args.classes - 1} or less")
    r = compare(args.dim, args.classes, restarts=args.restarts, seed=args.seed)
    print(f"softmax code d={args.dim} K={args.classes}: margin {r['margin']:.8f}")
    for s in r["spectral"]:
        if s["margin"] is None:
            print(f"  {s['group']}: no spectral vertex of rank {args.dim}")
        else:
            print(f"  best spectral ({s['group']}, rank {args.dim}): margin {s['margin']:.8f}"
                  f" -> {'reaches' if s['reachable'] else 'cannot reach'} the softmax code")
    _emit(r, args.json)
    return 0


def cmd_classify(args) -> int:
    from ..analysis.geometry import classify_trajectory
    from ..io import load_trajectory
    if args.traj is None:
        if args.json:
            raise SpecError(f"--json {args.json}: the trajectory is now positional and --json "
                            "is the output: svdyn classify TRAJ.json [--json OUT]")
        raise SpecError("TRAJ.json: give the saved trajectory: svdyn classify TRAJ.json "
                        "[--json OUT]")
    out_path = args.json or args.json_alias
    if out_path and os.path.abspath(out_path) == os.path.abspath(args.traj):
        raise SpecError(f"--json {out_path}: is the input trajectory; choose another output")
    tr = load_trajectory(args.traj, "TRAJ")
    if tr.batched:
        raise SpecError(f"TRAJ {args.traj}: a batch of {tr.s.shape[0]} trajectories; classify "
                        "takes one")
    if tr.status != "ok":
        raise SpecError(f"TRAJ {args.traj}: the run failed (status {tr.status!r}); classify "
                        "needs a completed run: rerun it (e.g. a larger --max-steps)")
    if not np.all(np.isfinite(tr.s)):
        raise SpecError(f"TRAJ {args.traj}: holds non-finite states; classify needs a "
                        "completed run")
    m_mid, m_end = _margins(args.margins)
    r = classify_trajectory(tr, m_mid, m_end)
    c, g, cert = r["classification"], r["geometry"], r["certified"]
    print(f"classify: K={tr.spec.K} L={tr.spec.L} group={tr.spec.group} loss={tr.spec.loss}, "
          f"last state t = {r['time']:.6g}")
    if cert["decided"]:
        kkt = cert.get("kkt") or {}
        print(f"  certified limit {cert['label']} (support {cert['support']}, "
              f"{cert['support_class']}; KKT stationarity {kkt.get('stationarity', 0):.2g}, "
              f"slackness {kkt.get('slackness', 0):.2g}, gap {kkt.get('gap', 0):.3g})")
    else:
        print(f"  certified limit: undecided ({cert['reason']})")
    print(f"  growth exponents (finite horizon, not a certificate): {c['label']} (rank "
          f"{c['rank']}, support {c['support']}, "
          f"{'decided' if c['decided'] else 'UNDECIDED'}: exponent error {c['error']:.3g}, "
          f"continued to margin {c['horizon']:g}, status {c['status']})")
    print("  exponents " + np.array2string(np.asarray(c["exponents"]), precision=4,
                                           max_line_width=100, threshold=20))
    print(f"  at t = {r['time']:.6g}: numerical rank {g['numerical_rank']}, effective rank "
          f"{g['effective_rank']:.4f}, stable rank {g['stable_rank']:.4f}, normalised margin "
          f"{g['normalised_margin']:.6g}, loss {r['loss']:.4e}")
    _emit(r, out_path)
    return 0 if c["status"] == "ok" else 1


def cmd_report(args) -> int:
    from .common import need_torch
    from .sweep import check_executor_args
    check_executor_args(args)
    need_torch("svdyn report (its width study trains full models)")
    from ..analysis.report import build_report, parse_only
    try:
        keys = parse_only(args.only)
    except ValueError as e:
        raise SpecError(f"--only: {e}") from None
    out, figures = Path(args.out), Path(args.figures)
    # the sweep folders live in the real figures folder (or --work), never in the stage: an
    # interrupted run keeps its finished chunks and the next run resumes from them
    work = Path(args.work) if args.work else figures / "sweeps"
    run = dict(quick=args.quick, device=args.device, only=keys, work=work.resolve(),
               executor=args.executor, workers=args.workers, scheduler=args.scheduler,
               progress=args.progress)
    try:
        if figures.parent.resolve() != out.parent.resolve():   # cannot stage: write in place
            path = build_report(out, figures, **run)
            print(f"wrote {path} and {figures}/")
            return 0
        stage = Path(tempfile.mkdtemp(prefix=".svdyn-report-", dir=out.parent))
        try:
            # --only keeps the other sections: stage a copy of the existing report and
            # figures (not the sweep folders: they are written in place)
            if out.exists():
                shutil.copy2(out, stage / out.name)
            if figures.is_dir():
                top = str(figures)
                shutil.copytree(figures, stage / figures.name,
                                ignore=lambda d, names: ["sweeps"] if d == top else [])
            build_report(stage / out.name, stage / figures.name, **run)
            figures.mkdir(exist_ok=True)
            for f in sorted((stage / figures.name).iterdir()):
                if f.is_dir() and (figures / f.name).is_dir():
                    shutil.rmtree(figures / f.name)
                os.replace(f, figures / f.name)
            os.replace(stage / out.name, out)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except KeyboardInterrupt:
        sys.stderr.write(f"svdyn report: interrupted; finished sweep chunks are kept in "
                         f"{work}/; rerun the same command to resume\n")
        return 130
    n = len([f for f in figures.iterdir() if f.name != "sweeps"])
    print(f"wrote {out} and {n} files in {figures}/")
    return 0
