"""``svdyn derive`` (re-run the sympy derivations, regenerate kernels and report) and
``svdyn lyapunov`` (check the Lyapunov function along integrated trajectories)."""
from __future__ import annotations

import difflib
import importlib
import sys
from pathlib import Path

from ..groups import SpecError
from ..io import write_text
from .common import (MAX_Z, POSITIVE, SEED_T, InFile, Num, NumList, OutFile, add_json_out,
                     add_model_args, init_from_args, spec_from_args, write_json)


def source_root() -> Path | None:
    """The source checkout this svdyn lives in (``derivations/run_all.py`` next to the
    package), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "derivations" / "run_all.py").exists() else None


def _derivations():
    """Import the ``derivations`` package of the source checkout this svdyn lives in."""
    root = source_root()
    if root is None:
        raise SpecError("svdyn derive needs a source checkout (the derivations/ folder is not "
                        "shipped in the wheel): git clone the repository and run it there, "
                        "e.g. python -m svdyn.cli.main derive")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module("derivations.run_all"), importlib.import_module(
        "derivations.codegen")


def _derive(args) -> int:
    run_all, codegen = _derivations()
    target = Path(args.kernels) if args.kernels else codegen.TARGET
    if args.check:
        new = codegen.generate()
        old = target.read_text() if target.exists() else ""
        if new == old:
            print(f"{target}: up to date")
            return 0
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                   str(target), "regenerated"))
        print(f"{target}: differs from a fresh regeneration; run `svdyn derive`")
        return 1
    if args.kernels_only:
        write_text(target, codegen.generate())
        print(f"wrote {target}")
        return 0
    report = Path(args.report) if args.report else run_all.REPORT
    return run_all.main(write_kernels=True, numeric=not args.no_numeric, report=report,
                        kernels=target)


def _lyapunov(args) -> int:
    from ..lyapunov import check

    spec = spec_from_args(args)
    s0 = None
    if args.init is not None or args.init_file is not None:
        if args.unbalanced:
            raise SpecError("--unbalanced draws random starts; drop it with --init / "
                            "--init-file (give an unbalanced (L, K) file instead)")
        import argparse
        one = argparse.Namespace(**{**vars(args), "init_scale": None})
        s0, _ = init_from_args(one, spec, "lyapunov")
    res = check(spec, args.trials, args.init_scale, unbalanced=args.unbalanced,
                spread=args.spread, seed=args.seed, t_end=args.t_end, s0=s0,
                **{k: v for k, v in (("abs_floor", args.abs_floor),
                                     ("rel_floor", args.rel_floor)) if v is not None})
    res["fail_on_violation"] = bool(args.fail_on_violation)
    if args.json:
        write_json(args.json, res)
    start = "given start" if s0 is not None else (
        f"random {'unbalanced' if args.unbalanced else 'balanced'} starts, init scale "
        f"{args.init_scale:g}, seed {args.seed}")
    print(f"lyapunov: K={spec.K} L={spec.L} loss={spec.loss} group={spec.group}, "
          f"{res['trials']} trajectories to t = {args.t_end:g} ({start})")
    mi = res["max_increase"]
    fl = res["floors"]
    print(f"  violations (V rose by > {fl['abs']:g} and > {fl['rel']:g} V): "
          f"{res['violations']} (raw rises, floors ignored: {res['raw_rises']}), max relative "
          f"change {'n/a' if mi is None else f'{mi:.3g}'}, failed trajectories "
          f"{res['failed_trajectories']}")
    de = res["derivative_rel_err"]
    print(f"  dV/dt analytic vs finite difference: max relative error "
          f"{'n/a' if de is None else f'{de:.3g}'}"
          + (f"; closed form (L = 2) error {res['closed_form_rel_err']:.3g}, max rate "
             f"{res['max_rate_closed_form']:.3g}" if res.get("closed_form_rel_err") is not None
             else ""))
    print(f"  {res['seconds']:.2f} s" + (f"; wrote {args.json}" if args.json else ""))
    if args.fail_on_violation and (res["violations"] > 0 or res["failed_trajectories"] > 0):
        sys.stderr.write(f"svdyn lyapunov: {res['violations']} violation(s), "
                         f"{res['failed_trajectories']} failed trajectory(ies)\n")
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("derive", help="re-derive the reduced equations with sympy; regenerate "
                       "svdyn/_generated_kernels.py and derivations/REPORT.md (needs a source "
                       "checkout" + ("" if source_root() else "; none found here") + ")")
    p.add_argument("--check", action="store_true", help="only compare the committed kernel "
                   "module with a fresh regeneration (exit 1 if they differ); writes nothing")
    p.add_argument("--kernels-only", action="store_true",
                   help="regenerate the kernel module only (seconds), skip the report")
    p.add_argument("--no-numeric", action="store_true",
                   help="skip the numerical counterexample runs in the report")
    p.add_argument("--kernels", type=OutFile(".py"), help="write the kernel module here instead")
    p.add_argument("--report", type=OutFile(".md"),
                   help="write the report here instead of derivations/REPORT.md")
    p.set_defaults(func=_derive)

    q = sub.add_parser("lyapunov", help="integrate random spectral starts and test that "
                       "V = KL(uniform || z/sum z) decreases")
    add_model_args(q)
    q.add_argument("--trials", type=Num(int, lo=1, hi=10 ** 5), default=100,
                   help="number of random starts (100)")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--init-scale", type=Num(float, lo=0.0, lo_open=True, hi=1e100), default=1.0,
                   help="z_j(0) = EPS * U(0.5, 1.5) (default 1.0)")
    g.add_argument("--init", type=NumList(float, lo=0.0, hi=MAX_Z),
                   help="check one start instead: z_j(0) for modes 1..K-1, balanced")
    g.add_argument("--init-file", type=InFile(), help="check one start instead, read like "
                   "svdyn flow --init-file (z, per-factor s, or a saved trajectory's last state)")
    q.add_argument("--init-mode0", type=Num(float, lo=0.0, hi=MAX_Z), default=0.0,
                   help="z_0(0) with --init (default 0)")
    q.add_argument("--unbalanced", action="store_true",
                   help="unequal factors with the same product (log-normal spread)")
    q.add_argument("--spread", type=POSITIVE, default=0.5,
                   help="std of the log imbalance for --unbalanced (0.5)")
    q.add_argument("--seed", type=SEED_T, default=0, help="seed of the random starts")
    q.add_argument("--t-end", type=Num(float, lo=1e-300, hi=1e300), default=200.0,
                   help="final time (200)")
    q.add_argument("--fail-on-violation", action="store_true",
                   help="exit 1 when any trajectory violates the decrease of V (or fails), "
                   "so that a script can check it; default: report and exit 0")
    q.add_argument("--abs-floor", type=float, default=None, help="a rise of V counts as "
                   "a violation only above this absolute size (default 1e-20) ...")
    q.add_argument("--rel-floor", type=float, default=None,
                   help="... and above this fraction of V (default 1e-9)")
    add_json_out(q, "the full result")
    q.set_defaults(func=_lyapunov)
