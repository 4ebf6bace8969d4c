"""One flow, git REF against this tree, in one process: interleaved calls, same bits checked.

    python bench/flow_ab.py REF [--cases 64x2,256x2] [--methods dopri5,dop853] [--calls N]

Two processes timed one after the other are not comparable on a machine whose speed drifts:
the 2-core VM of the twelfth session (2026-12-06) switched for tens of seconds between a fast
and a slow state, and the same flow took 205-230 or 350-500 us depending on the state. This
script copies REF's ``svdyn/`` (``git archive``) into a temporary folder as the package
``svdyn_ref`` and imports both into one process. It then alternates the two calls of each case
(walsh ce, t_end 1e7, rtol 1e-8, atol 1e-12, the start of ``bench/peers.py``), so a slow spell
hits both alike. It checks that both give the same states and step counts (or says they
differ), and reports the minimum and median CPU time of each and the ratio REF / this tree
(> 1: this tree faster). Both packages compile their kernels on first use (cached per copy).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T_END, RTOL, ATOL = 1e7, 1e-8, 1e-12


def ref_package(ref: str, where: Path) -> Path:
    """REF's ``svdyn/`` as the package ``svdyn_ref`` under ``where``; returns its folder."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "svdyn"], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=tar, check=True)
    pkg = where / "svdyn_ref"
    (where / "svdyn").rename(pkg)
    for p in pkg.rglob("*.py"):   # absolute module names in strings (lazy imports)
        text = p.read_text()
        new = re.sub(r"(['\"])svdyn\.", r"\1svdyn_ref.", text)
        if new != text:
            p.write_text(new)
    return pkg


def start(spec):
    """The start of ``bench/peers.py`` (seed 0)."""
    rng = np.random.default_rng(0)
    z = 0.5 * rng.uniform(0.5, 1.5, spec.K)
    z[0] = 0.0
    return spec.balanced(z)


def compare(ref_mod, new_mod, K, L, method, calls):
    (ref_flow, RefSpec), (new_flow, NewSpec) = ref_mod, new_mod
    s0 = start(NewSpec(K, L))
    kw = dict(save_at=[T_END], rtol=RTOL, atol=ATOL, method=method)

    def fa():
        return ref_flow(RefSpec(K, L), s0, **kw)

    def fb():
        return new_flow(NewSpec(K, L), s0, **kw)
    a, b = fa(), fb()
    same = bool(np.array_equal(a.s, b.s)
                and a.stats["accepted_steps"] == b.stats["accepted_steps"])
    ta, tb = [], []
    for _ in range(calls):
        t0 = time.process_time_ns()
        fa()
        ta.append(time.process_time_ns() - t0)
        t0 = time.process_time_ns()
        fb()
        tb.append(time.process_time_ns() - t0)
    ta, tb = np.array(ta) / 1e3, np.array(tb) / 1e3
    return {"K": K, "L": L, "method": method, "same bits": same,
            "ref min us": round(float(ta.min()), 1), "new min us": round(float(tb.min()), 1),
            "ratio of minima": round(float(ta.min() / tb.min()), 3),
            "median of pair ratios": round(float(np.median(ta / tb)), 3)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref", help="git revision to compare this tree with")
    ap.add_argument("--cases", default="16x2,64x2,256x2,1024x2",
                    help="comma list of KxL (walsh, K a power of two)")
    ap.add_argument("--methods", default="dopri5,dop853", help="comma list of tableaux")
    ap.add_argument("--calls", type=int, default=0,
                    help="interleaved call pairs per case (default: 40, 12 from K = 1024)")
    a = ap.parse_args(argv)
    cases = []
    for c in a.cases.split(","):
        m = re.fullmatch(r"(\d+)x(\d+)", c.strip())
        if not m:
            ap.error(f"--cases: {c!r} is not KxL (for example 64x2)")
        cases.append((int(m.group(1)), int(m.group(2))))
    with tempfile.TemporaryDirectory() as tmp:
        ref_package(a.ref, Path(tmp))
        sys.path.insert(0, tmp)
        import svdyn.integrate as new_int
        import svdyn.spec as new_spec
        import svdyn_ref.integrate as ref_int
        import svdyn_ref.spec as ref_spec
        rows = []
        for K, L in cases:
            for method in a.methods.split(","):
                calls = a.calls or (40 if K < 1024 else 12)
                rows.append(compare((ref_int.flow, ref_spec.ModelSpec),
                                    (new_int.flow, new_spec.ModelSpec), K, L, method, calls))
                print(rows[-1], file=sys.stderr, flush=True)
    print(f"### One flow, {a.ref} (ref) against this tree, one process, interleaved calls "
          f"(walsh ce, t_end {T_END:g}, rtol {RTOL:g}; CPU us)\n")
    print(table(rows))


if __name__ == "__main__":
    main()
