"""``svdyn critical`` and ``svdyn hessian``: critical families with weight decay, Hessian spectra.

``svdyn critical --classes K --depth L --weight-decay LAM [--samples-per-class n] [--loss ce|mse]
[--group ...] [--family dnc|pairing|polygon|all|block:d|hybrid:pairing|zero] [--grad-tol TOL]
[--json OUT]`` prints one line per critical point (gradient norm <= TOL, default 1e-8; other
candidates are listed as not critical) and writes ``{"families": [{"name", "loss", "z", "rank",
"grad_norm", ...}], "not_critical": [...], "grad_tol", "spec": {...}}``.

``svdyn hessian`` (same model options, ``--family``, ``--width d`` or ``d1:d2``,
``--frame-seed``, ``--device``) writes ``{"eigenvalues": [...], "min_eig", "n_negative",
"outliers": {...}, "clusters", "family", "loss", "device", ...}``; with ``--loss mse
--family dnc`` also the closed-form prediction and its maximum error.
"""
from __future__ import annotations

import sys

import numpy as np

from ..groups import SpecError
from .common import (SEED_T, Num, Widths, add_json_out, add_model_args, add_renamed,
                     need_torch, spec_from_args, write_json)

GRAD_TOL = 1e-8   # a point is reported as critical only if ||d loss / d s||_F <= this


def register(sub) -> None:
    p = sub.add_parser("critical", help="critical points of the weight-decayed reduced problem "
                       "from named families (dnc, pairing, polygon, ...)")
    add_model_args(p)
    p.add_argument("--family", default="all", help="dnc | pairing | polygon | block:d | "
                   "hypercube | hybrid:pairing | zero | all (default all)")
    p.add_argument("--all-roots", action="store_true", help="also list the smaller (saddle) "
                   "root of each symmetric family (L >= 3)")
    p.add_argument("--grad-tol", type=Num(float, lo=0.0, lo_open=True, hi=1.0),
                   default=GRAD_TOL, help="report a point only if its gradient norm "
                   f"||d loss/d s||_F is at most this (default {GRAD_TOL:g}); family "
                   "candidates above it are listed as not critical")
    add_json_out(p)
    p.set_defaults(func=cmd_critical)

    p = sub.add_parser("hessian", help="full-parameter Hessian spectrum (torch) at a family's "
                       "critical point")
    add_model_args(p)
    p.add_argument("--family", default="dnc", help="dnc | pairing | polygon | block:d | ... "
                   "(default dnc)")
    p.add_argument("--width", type=Widths(sweep=False, hi=4096), default=None,
                   help="hidden width d: one for every hidden layer, or one per hidden layer "
                   "joined by ':' (e.g. 5:6); default K + 1")
    p.add_argument("--frame-seed", type=SEED_T, default=0,
                   help="seed of the random orthonormal hidden frames (default 0)")
    add_renamed(p, "--seed", "--frame-seed (the seed of the random hidden frames)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--layers", action="store_true", help="also give each factor's own Hessian")
    add_json_out(p)
    p.set_defaults(func=cmd_hessian)


def _points(spec, family, all_roots=False):
    from ..landscape.critical import critical_points, family_names
    fam = str(family).strip().lower()
    if fam != "all" and not fam.startswith(("block:", "hybrid:")) and fam not in (
            "dnc", "pairing", "polygon", "hypercube", "zero", "dnc-centred"):
        raise SpecError(f"--family {family!r}: use dnc, pairing, polygon, block:d, "
                        f"hybrid:pairing, zero or all (here: {', '.join(family_names(spec))})")
    return critical_points(spec, fam, all_roots=all_roots)


def cmd_critical(args) -> int:
    spec = spec_from_args(args)
    cands = _points(spec, args.family, args.all_roots)
    pts = [p for p in cands if p.grad_norm <= args.grad_tol]
    rejected = [p for p in cands if not p.grad_norm <= args.grad_tol]
    out = {"spec": spec.to_dict(), "grad_tol": args.grad_tol,
           "families": [p.to_dict() for p in pts],
           "not_critical": [p.to_dict() for p in rejected]}
    if args.json:
        write_json(args.json, out)
    print(f"critical: K={spec.K} L={spec.L} n={spec.n} loss={spec.loss} group={spec.group} "
          f"lambda={spec.lam[0]:g} (|grad| <= {args.grad_tol:g})")
    if not pts:
        print("  no non-zero critical point in the requested family (weight decay too large?)")
    for p in pts:
        print(f"  {p.name:22s} loss {p.loss:.12g}  rank {p.rank}  |grad| {p.grad_norm:.1e}  "
              f"z = {np.array2string(p.z, precision=5, max_line_width=200, threshold=16)}")
    if rejected:
        print("  not critical (|grad| above the tolerance): " + ", ".join(
            f"{p.name} {p.grad_norm:.1e}" for p in rejected))
    if args.json:
        print(f"  wrote {args.json}")
    bad = [p.name for p in pts if not p.converged]
    if bad:
        sys.stderr.write(f"svdyn critical: not converged: {', '.join(bad)}\n")
        return 1
    return 0


def _widths(ws, spec):
    if ws is None:
        return spec.K + 1
    ws = ws[0]
    if len(ws) not in (1, spec.L - 1):
        raise SpecError(f"--width {':'.join(map(str, ws))}: give one width or one per hidden "
                        f"layer (L - 1 = {spec.L - 1}, joined by ':')")
    return ws[0] if len(ws) == 1 else ws


def cmd_hessian(args) -> int:
    need_torch("svdyn hessian")
    from ..landscape.hessian import expand, hessian_at, mse_dnc_closed_form
    spec = spec_from_args(args)
    if spec.L < 2:
        raise SpecError("--depth must be >= 2 for Hessians at a critical family")
    pts = _points(spec, args.family)
    if not pts:
        raise SpecError(f"family {args.family!r} has no non-zero critical point at weight decay "
                        f"{spec.lam[0]:g}; lower --weight-decay")
    if len(pts) > 1:
        raise SpecError("--family all is not valid for hessian; name one family (e.g. dnc)")
    p = pts[0]
    if not p.grad_norm <= GRAD_TOL:
        raise SpecError(f"--family {args.family}: the {p.name} candidate is not critical here "
                        f"(|grad| {p.grad_norm:.1e} > {GRAD_TOL:g}); choose another family")
    widths = _widths(args.width, spec)
    n_params_est = spec.n * spec.K * (widths if np.isscalar(widths) else widths[0])
    if n_params_est > 4000:
        raise SpecError("this Hessian would be large; keep K <= 8, n small and --width <= 10")
    if min([widths] if np.isscalar(widths) else widths) < spec.K:
        raise SpecError(f"--width {args.width}: widths must be >= K = {spec.K} to hold a "
                        "spectral init")
    h = hessian_at(spec, p.s, widths, seed=args.frame_seed, device=args.device,
                   layers=args.layers)
    h.update({"family": p.name, "loss": p.loss, "z": p.z.tolist(), "grad_norm": p.grad_norm,
              "spec": spec.to_dict()})
    if spec.loss_code[0] == 1 and p.name == "dnc":
        cf = mse_dnc_closed_form(spec, widths)
        err = float(np.max(np.abs(expand(cf["full"]) - np.asarray(h["eigenvalues"]))))
        h["closed_form"] = {"full": cf["full"], "layer_outlier": cf["layer_outlier"],
                            "max_abs_error": err}
    if args.json:
        write_json(args.json, h)
    o = h["outliers"]
    print(f"hessian: K={spec.K} L={spec.L} n={spec.n} loss={spec.loss} family={p.name} "
          f"lambda={spec.lam[0]:g} widths={h['widths']} params={h['n_params']} "
          f"device={h['device']}")
    print(f"  min eig {h['min_eig']:.6e}  max eig {h['max_eig']:.6e}  negative "
          f"{h['n_negative']}  zero {h['n_zero']}")
    print(f"  outliers: {o['count']} above gap x{o['gap_ratio']:.3g}: "
          + ", ".join(f"{v:.6g} (x{m})" for v, m in o["values"]))
    print("  clusters: " + ", ".join(f"{v:.4g} (x{m})" for v, m in h["clusters"][:12])
          + (" ..." if len(h["clusters"]) > 12 else ""))
    if "closed_form" in h:
        print(f"  mse closed form: max |error| {h['closed_form']['max_abs_error']:.2e}")
    if args.json:
        print(f"  wrote {args.json}")
    return 0
