"""``svdyn derive`` (re-run the sympy derivations, regenerate kernels and report) and
``svdyn lyapunov`` (check the Lyapunov function along integrated trajectories)."""
from __future__ import annotations

import difflib
import importlib
import json
import sys
from pathlib import Path

from ..groups import SpecError
from .common import add_model_args, spec_from_args, write_json


def _derivations():
    """Import the ``derivations`` package of the source checkout this svdyn lives in."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "derivations" / "run_all.py").exists():
        raise SpecError(f"no derivations/ folder next to the svdyn package ({root}); "
                        "svdyn derive needs a source checkout (pip install -e .)")
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
        print(f"wrote {codegen.write(target)}")
        return 0
    report = Path(args.report) if args.report else run_all.REPORT
    return run_all.main(write_kernels=True, numeric=not args.no_numeric, report=report,
                        kernels=target)


def _lyapunov(args) -> int:
    from ..lyapunov import check

    spec = spec_from_args(args)
    if args.spread <= 0 and args.unbalanced:
        raise SpecError("--spread must be > 0 with --unbalanced")
    res = check(spec, args.trials, args.init_scale, unbalanced=args.unbalanced,
                spread=args.spread, seed=args.seed, t_end=args.t_end,
                **{k: v for k, v in (("abs_floor", args.abs_floor),
                                     ("rel_floor", args.rel_floor)) if v is not None})
    if args.json:
        write_json(args.json, res)
    keys = ("trials", "violations", "floors", "raw_rises", "max_increase",
            "derivative_rel_err")
    extra = ("closed_form_rel_err", "max_rate_closed_form", "failed_trajectories")
    print(json.dumps({k: res[k] for k in keys + extra if k in res}))
    return 0


def register(sub) -> None:
    p = sub.add_parser("derive", help="re-derive the reduced equations with sympy; regenerate "
                       "svdyn/_generated_kernels.py and derivations/REPORT.md")
    p.add_argument("--check", action="store_true", help="only compare the committed kernel "
                   "module with a fresh regeneration (exit 1 if they differ); writes nothing")
    p.add_argument("--kernels-only", action="store_true",
                   help="regenerate the kernel module only (seconds), skip the report")
    p.add_argument("--no-numeric", action="store_true",
                   help="skip the numerical counterexample runs in the report")
    p.add_argument("--kernels", help="write the kernel module here instead")
    p.add_argument("--report", help="write the report here instead of derivations/REPORT.md")
    p.set_defaults(func=_derive)

    q = sub.add_parser("lyapunov", help="integrate random spectral starts and test that "
                       "V = KL(uniform || z/sum z) decreases")
    add_model_args(q)
    q.add_argument("--trials", type=int, default=100, help="number of random starts (100)")
    q.add_argument("--init-scale", type=float, default=1.0,
                   help="z_j(0) = EPS * U(0.5, 1.5) (default 1.0)")
    q.add_argument("--unbalanced", action="store_true",
                   help="unequal factors with the same product (log-normal spread)")
    q.add_argument("--spread", type=float, default=0.5,
                   help="std of the log imbalance for --unbalanced (0.5)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--t-end", type=float, default=200.0, help="final time (200)")
    q.add_argument("--abs-floor", type=float, default=None, help="a rise of V counts as "
                   "a violation only above this absolute size (default 1e-20) ...")
    q.add_argument("--rel-floor", type=float, default=None,
                   help="... and above this fraction of V (default 1e-9)")
    q.add_argument("--json", help="write the full result here")
    q.set_defaults(func=_lyapunov)
