"""``svdyn critical`` and ``svdyn hessian``: critical families with weight decay, Hessian spectra.

``svdyn critical --classes K --depth L --weight-decay LAM [--samples-per-class n] [--loss ce|mse]
[--group ...] [--family dnc|pairing|polygon|all|block:d|hybrid:pairing|zero] [--json OUT]``
prints one line per critical point and writes ``{"families": [{"name", "loss", "z", "rank",
"grad_norm", ...}], "spec": {...}}``.

``svdyn hessian`` (same model options, ``--family``, ``--width d``, ``--seed``, ``--device``)
writes ``{"eigenvalues": [...], "min_eig", "n_negative", "outliers": {...}, "clusters",
"family", "loss", "device", ...}``; with ``--loss mse --family dnc`` also the closed-form
prediction and its maximum error.
"""
from __future__ import annotations

import sys

import numpy as np

from ..groups import SpecError
from .common import add_model_args, spec_from_args, write_json


def register(sub) -> None:
    p = sub.add_parser("critical", help="critical points of the weight-decayed reduced problem "
                       "from named families (dnc, pairing, polygon, ...)")
    add_model_args(p)
    p.add_argument("--family", default="all", help="dnc | pairing | polygon | block:d | "
                   "hypercube | hybrid:pairing | zero | all (default all)")
    p.add_argument("--all-roots", action="store_true", help="also list the smaller (saddle) "
                   "root of each symmetric family (L >= 3)")
    p.add_argument("--json", help="write the result as JSON to this file")
    p.set_defaults(func=cmd_critical)

    p = sub.add_parser("hessian", help="full-parameter Hessian spectrum (torch) at a family's "
                       "critical point")
    add_model_args(p)
    p.add_argument("--family", default="dnc", help="dnc | pairing | polygon | block:d | ... "
                   "(default dnc)")
    p.add_argument("--width", default=None, help="hidden width d (one, or one per hidden layer, "
                   "comma-separated; default K + 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random frames")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--layers", action="store_true", help="also give each factor's own Hessian")
    p.add_argument("--json", help="write the result as JSON to this file")
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
    pts = _points(spec, args.family, args.all_roots)
    out = {"spec": spec.to_dict(), "families": [p.to_dict() for p in pts]}
    if args.json:
        write_json(args.json, out)
    print(f"critical: K={spec.K} L={spec.L} n={spec.n} loss={spec.loss} group={spec.group} "
          f"lambda={spec.lam[0]:g}")
    if not pts:
        print("  no non-zero critical point in the requested family (weight decay too large?)")
    for p in pts:
        print(f"  {p.name:22s} loss {p.loss:.12g}  rank {p.rank}  |grad| {p.grad_norm:.1e}  "
              f"z = {np.array2string(p.z, precision=5, max_line_width=200, threshold=16)}")
    bad = [p.name for p in pts if not p.converged]
    if bad:
        sys.stderr.write(f"svdyn critical: not converged: {', '.join(bad)}\n")
        return 1
    return 0


def _widths(text, K):
    if text is None:
        return K + 1
    try:
        ws = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise SpecError(f"--width {text!r}: expected an integer or comma-separated integers"
                        ) from None
    if not ws:
        raise SpecError("--width: give at least one integer")
    return ws[0] if len(ws) == 1 else ws


def cmd_hessian(args) -> int:
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
    widths = _widths(args.width, spec.K)
    n_params_est = spec.n * spec.K * (widths if np.isscalar(widths) else widths[0])
    if n_params_est > 4000:
        raise SpecError("this Hessian would be large; keep K <= 8, n small and --width <= 10")
    h = hessian_at(spec, p.s, widths, seed=args.seed, device=args.device, layers=args.layers)
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
    return 0
