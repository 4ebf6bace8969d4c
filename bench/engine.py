"""svdyn's engine on its own: field vs its floor, wrapper overhead, one trajectory per method
(accuracy per cost), batches, and the step-count law in log(t_end).

    python bench/engine.py [--quick] [--only wrapper|methods] [--wrapper-vs REF]
                           [--steady-vs REF]

All ratios come from one run of this script (the machine may be shared: compare rows of one
run, not runs). Accuracy is the max relative deviation of the final state from a dop853
reference at rtol 1e-13.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numba as nb
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import best_of, header, table  # noqa: E402

from svdyn.descent import descend  # noqa: E402
from svdyn.fastexp import exp_or_zero  # noqa: E402
from svdyn.field import field, new_scratch, walsh4_field  # noqa: E402
from svdyn.integrate import flow  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402
from svdyn.transforms import fwht  # noqa: E402


@nb.njit(cache=True)
def _field_loop(reps, s, out, sc, m):
    """``field`` as the stepper calls it, on a state nudged every call (nothing hoisted)."""
    acc = 0.0
    for _ in range(reps):
        s[0, 1] += 1e-300
        lo, mm = field(s, out, sc, m)
        acc += lo + out[0, 1]
    return acc


@nb.njit(cache=True)
def _walsh4_loop(reps, s, out, sc, m, with_loss):
    """``field.walsh4_field`` as the stages of the walsh ce K = 4 kernels run it (inlined by
    LLVM, the scratch and weight decay taken out of the bundles once), same nudged state."""
    acc = 0.0
    g, pre, suf, n, lam = sc.g, sc.pre, sc.suf, m.n, m.lam
    for _ in range(reps):
        s[0, 1] += 1e-300
        lo, mm = walsh4_field(s, out, g, pre, suf, n, lam, with_loss)
        acc += lo + mm + out[0, 1]   # lo too: an unused loss would be optimised away
    return acc


@nb.njit(cache=True, error_model="numpy", inline="always")
def _libm_exp(v):
    return math.exp(v)


@nb.njit(cache=True, error_model="numpy")   # the python model's division checks block SIMD
def _floor_loop(reps, x, y, expf):
    """The floor of one ce field evaluation: FWHT + K exp + FWHT, with ``expf`` as the exp
    (``_libm_exp`` or svdyn's vectorisable ``fastexp.exp_or_zero``)."""
    acc = 0.0
    K = x.shape[0]
    for _ in range(reps):
        for i in range(K):
            y[i] = x[i]
        fwht(y)
        for i in range(K):
            y[i] = expf(-abs(y[i]) * 1e-3)
        fwht(y)
        acc += y[1]
    return acc


def _per_call(fn, min_time=0.2):
    fn(1)
    reps = 1
    while True:
        t0 = time.perf_counter()
        fn(reps)
        dt = time.perf_counter() - t0
        if dt > min_time:
            break
        reps *= 4
    best = dt
    for _ in range(2):
        t0 = time.perf_counter()
        fn(reps)
        best = min(best, time.perf_counter() - t0)
    return best / reps


def _z0(spec, scale=0.5, seed=0):
    rng = np.random.default_rng(seed)
    z = scale * rng.uniform(0.5, 1.5, spec.K)
    z = 0.5 * (z + z[spec.G.partner])
    z[0] = 0.0
    return z


def field_rows(max_log2):
    rows = []
    for e in range(2, max_log2 + 1, 2):
        K = 2 ** e
        spec = ModelSpec(K, 2)
        s = spec.balanced(_z0(spec))
        out = np.empty_like(s)
        m = spec.bundle()
        sc = new_scratch(K, m.tmax)
        x = np.linspace(0, 1, K)
        y = np.empty(K)
        tf = _per_call(lambda r: _field_loop(r, s, out, sc, m))
        t0 = _per_call(lambda r: _floor_loop(r, x, y, _libm_exp))
        t1 = _per_call(lambda r: _floor_loop(r, x, y, exp_or_zero))
        rows.append({"K": K, "field_ns": tf * 1e9, "floor_ns": t0 * 1e9, "ratio": tf / t0,
                     "floor_fastexp_ns": t1 * 1e9, "ratio_fastexp": tf / t1})
        print(rows[-1], flush=True)
        if K == 4:   # what the K = 4 stages evaluate (stepper.WALSH4_CE_KERNELS)
            for wl, what in ((True, "with the loss"), (False, "inner stage, no loss")):
                tw = _per_call(lambda r: _walsh4_loop(r, s, out, sc, m, wl))
                rows.append({"K": f"4, walsh4_field inlined, {what}", "field_ns": tw * 1e9,
                             "floor_ns": t0 * 1e9, "ratio": tw / t0,
                             "floor_fastexp_ns": t1 * 1e9, "ratio_fastexp": tw / t1})
                print(rows[-1], flush=True)
    return rows


def _cpu_per_call(fn, n=300, repeat=5):
    """Best of ``repeat`` x ``n`` calls in process (CPU) time, us per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return best * 1e6


def wrapper_rows():
    """Per-call cost of the Python wrapper, and where it goes (CPU us, best of 15 interleaved
    rounds x 200 calls)."""
    import svdyn.stepper as st
    from svdyn.bundle import CLOCK_T, JOB_RK, STOP_TIME, make_ctrl, new_run
    from svdyn.result import Trajectory
    from svdyn.stepper import SINGLE, WALSH4_CE_KERNELS
    # what a single walsh ce flow at K = 4 runs: the per-trajectory step with those flags
    advance, flags = SINGLE[WALSH4_CE_KERNELS[0]]
    from svdyn.tableaux import TABLEAUX

    spec = ModelSpec(4, 2)
    s0 = spec.balanced(_z0(spec))
    flow(spec, s0, save_at=[1e-6], first_step=1e-6, progress=False)
    descend(spec, s0, 0.1, 0, progress=False)
    tab, m, times = TABLEAUX["dop853"], spec.bundle(CLOCK_T), np.array([0.0, 1e-6])
    ctrl = make_ctrl(JOB_RK, 1e-9, 1e-12, 2_000_000, 1 << 30, True, True, STOP_TIME, 1e-6)
    run = new_run(s0[None], tab.n_dense, times)
    advance(0, run, m, tab, ctrl, *flags)
    entry = st._entry(advance, run, m, tab, ctrl, False, flags)

    def one(meth):
        return lambda: flow(spec, s0, save_at=[1e-6], first_step=1e-6, progress=False,
                            method=meth)

    def dispatched(meth):
        def f():
            import svdyn.integrate as integrate
            keep, st._entry = st._entry, lambda *a: None
            plans, integrate._PLANS = integrate._PLANS, {}   # plans keep the entry found
            try:
                for _ in range(10):
                    one(meth)()
            finally:
                st._entry = keep
                integrate._PLANS = plans
        return f

    parts = {
        "flow, one step, dop853 (K = 4, L = 2)": one("dop853"),
        "flow, one step, dopri5": one("dopri5"),
        "flow, one step, dop853, numba dispatch (fast entry off), per call / 10":
            dispatched("dop853"),
        "descend, 0 steps (K = 4, L = 2)": lambda: descend(spec, s0, 0.1, 0, progress=False),
        "  part: spec.check_state": lambda: spec.check_state(s0, "initial state"),
        "  part: new_run (arrays)": lambda: new_run(s0[None], tab.n_dense, times),
        "  part: new_run + compiled one-step slice by the entry point":
            lambda: entry(0, new_run(s0[None], tab.n_dense, times), m, tab, ctrl, *flags),
        "  part: new_run + compiled one-step slice by numba dispatch":
            lambda: advance(0, new_run(s0[None], tab.n_dense, times), m, tab, ctrl, *flags),
        "  part: make_ctrl": lambda: make_ctrl(JOB_RK, 1e-9, 1e-12, 2_000_000, 1 << 30, True,
                                               True, STOP_TIME, 1e-6),
        "  part: Trajectory(...)": lambda: Trajectory(spec, times, s0, times, times, "ok", {},
                                                      kind="flow"),
    }
    best = dict.fromkeys(parts, float("inf"))
    for _ in range(15):   # interleaved rounds: every row sees the same load; best of 15 x 200
        for k, f in parts.items():
            best[k] = min(best[k], _cpu_per_call(f, n=200, repeat=1))
    rows = [{"call": k, "cpu_us_per_call": best[k] / (10 if "/ 10" in k else 1)}
            for k in parts]
    us = {r["call"]: r["cpu_us_per_call"] for r in rows}
    work = (us["  part: new_run + compiled one-step slice by the entry point"]
            - us["  part: new_run (arrays)"])
    rows.append({"call": "flow dop853 minus the compiled slice (entry call + one step): the "
                         "wrapper", "cpu_us_per_call": us["flow, one step, dop853 (K = 4, L = 2)"]
                 - work})
    return rows


_WRAPPER_SNIPPET = """
import json, sys, time
import numpy as np
from svdyn.descent import descend
from svdyn.integrate import flow
from svdyn.spec import ModelSpec
spec = ModelSpec(4, 2)
s0 = spec.balanced(np.array([0.0, 0.4, 0.5, 0.6]))


def best_us(f):
    f()
    best = 1e9
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(300):
            f()
        best = min(best, (time.process_time() - t0) / 300)
    return best * 1e6


out = {}
for meth in ("dopri5", "dop853"):
    f = lambda: flow(spec, s0, save_at=[1e-6], first_step=1e-6, progress=False, method=meth)
    out["flow " + meth] = best_us(f)
    out["s " + meth] = f().s.tolist()
out["flow default (dop853 now, dopri5 in main; progress=None, stderr not a terminal)"] = best_us(
    lambda: flow(spec, s0, save_at=[1e-6], first_step=1e-6))   # progress=None: the default
out["descend"] = best_us(lambda: descend(spec, s0, 0.1, 0, progress=False))
print(json.dumps(out))
"""


_STEADY_SNIPPET = """
import json, time
import numpy as np
from svdyn.integrate import flow
from svdyn.spec import ModelSpec
out = []
for K, L, group, loss, wd in [(8, 3, "walsh", "ce", 1e-3), (8, 3, "walsh", "mse", 1e-2),
                              (8, 2, "walsh", "ls:0.1", 0.0), (6, 4, "cyclic", "ce", 1e-3),
                              (10, 3, "2,5", "mse", 1e-3)]:
    spec = ModelSpec(K, L, 1, loss, wd, group)
    rng = np.random.default_rng(11)
    z = 0.5 * rng.uniform(0.5, 1.5, K)
    z = 0.5 * (z + z[spec.G.partner])
    z[0] = 0.0
    s0 = spec.balanced(z)
    for meth in ("dopri5", "tsit5", "dop853"):
        kw = dict(save_at=[1e2, 1e4, 1e5, 1e12], method=meth, max_steps=200_000, progress=False)
        flow(spec, s0, save_at=[1.0], method=meth, progress=False)
        t0 = time.process_time()
        tr = flow(spec, s0, **kw)
        cpu = time.process_time() - t0
        out.append({"case": f"K={K} L={L} {group} {loss} wd={wd}", "method": meth,
                    "status": tr.status[:9], "t_steady": round(tr.stats["t_steady"][0], 1),
                    "accepted": tr.stats["accepted_steps"][0],
                    "rejected": tr.stats["rejected_steps"][0], "cpu_ms": cpu * 1e3})
print(json.dumps(out))
"""


def _snippet_in(path, code):
    import json
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(path))   # cwd too: ``-c`` puts it first on sys.path
    r = subprocess.run([sys.executable, "-c", code + "\nimport svdyn; assert svdyn.__file__"
                        f".startswith({str(path)!r}), svdyn.__file__"], env=env, cwd=str(path),
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _archive(ref):
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="svdyn_ref_"))
    subprocess.run(f"git -C {root} archive {ref} svdyn | tar -x -C {tmp}", shell=True,
                   check=True)
    return root, tmp


def steady_vs(ref):
    """The fixed-point hand-off of ``tests/test_flow.py``'s five cases (to t = 1e12, max_steps
    200,000) under each method, in ``git archive REF`` and in this tree."""
    root, tmp = _archive(ref)
    a, b = _snippet_in(tmp, _STEADY_SNIPPET), _snippet_in(root, _STEADY_SNIPPET)
    rows = []
    for x, y in zip(a, b):
        rows.append({"case": x["case"], "method": x["method"],
                     f"{ref}: status / t_steady / acc+rej / cpu ms":
                         f"{x['status']} / {x['t_steady']} / {x['accepted']}+{x['rejected']} / "
                         f"{x['cpu_ms']:.3g}",
                     "this tree": f"{y['status']} / {y['t_steady']} / "
                                  f"{y['accepted']}+{y['rejected']} / {y['cpu_ms']:.3g}"})
    return rows


def wrapper_vs(ref, rounds=5):
    """The wrapper rows of ``git archive REF`` and of this tree, in alternating subprocesses
    (same minutes of the same machine): best CPU us per call over the rounds."""
    root, tmp = _archive(ref)
    best = {}
    for rnd in range(rounds):
        for label, path in ((ref, tmp), ("this tree", root)):
            out = _snippet_in(path, _WRAPPER_SNIPPET)
            print(label, rnd, {k: v for k, v in out.items() if not k.startswith("s ")},
                  flush=True)
            b = best.setdefault(label, out)
            for k, v in out.items():
                if not k.startswith("s "):
                    b[k] = min(b[k], v)
    same = {m: best[ref]["s " + m] == best["this tree"]["s " + m] for m in ("dopri5", "dop853")}
    rows = [{"call": k, ref + " us": best[ref][k], "this tree us": best["this tree"][k],
             "ratio": best[ref][k] / best["this tree"][k]}
            for k in ("flow dopri5", "flow dop853",
                      "flow default (dop853 now, dopri5 in main; progress=None, stderr not a "
                      "terminal)", "descend")]
    return rows, same


def method_rows(Ks, Ls, t_end, rtol):
    rows = []
    for L in Ls:
        for K in Ks:
            spec = ModelSpec(K, L)
            s0 = spec.balanced(_z0(spec))
            ref = flow(spec, s0, save_at=[t_end], rtol=1e-13, atol=1e-16, method="dop853").s[-1]
            for meth in ("dopri5", "tsit5", "dop853"):
                tr = flow(spec, s0, save_at=[t_end], rtol=rtol, atol=1e-12, method=meth)
                t = best_of(lambda: flow(spec, s0, save_at=[t_end], rtol=rtol, atol=1e-12,
                                         method=meth, progress=False), 3)
                err = np.abs(tr.s[-1] - ref).max() / np.abs(ref).max()
                rows.append({"K": K, "L": L, "method": meth, "steps": tr.stats["accepted_steps"][0],
                             "rejected": tr.stats["rejected_steps"][0], "ms": t * 1e3,
                             "rel_err": err})
                print(rows[-1], flush=True)
    return rows


def work_precision_rows(K=16, L=4, t_end=1e7):
    """Time to reach an accuracy: each method over rtol 1e-5 .. 1e-12 (walsh, K = 16, L = 4)."""
    spec = ModelSpec(K, L)
    s0 = spec.balanced(_z0(spec, seed=2))
    ref = flow(spec, s0, save_at=[t_end], rtol=1e-13, atol=1e-16, method="dop853").s[-1]
    rows = []
    for meth in ("dopri5", "tsit5", "dop853"):
        for e in range(5, 13):
            rtol = 10.0 ** -e
            tr = flow(spec, s0, save_at=[t_end], rtol=rtol, atol=rtol * 1e-4, method=meth)
            t = best_of(lambda: flow(spec, s0, save_at=[t_end], rtol=rtol, atol=rtol * 1e-4,
                                     method=meth, progress=False), 5)
            err = np.abs(tr.s[-1] - ref).max() / np.abs(ref).max()
            rows.append({"method": meth, "rtol": rtol, "steps": tr.stats["accepted_steps"][0],
                         "ms": t * 1e3, "rel_err": err})
    return rows


def cheapest_for(rows, target):
    best = {}
    for r in rows:
        if r["rel_err"] <= target:
            if r["method"] not in best or r["ms"] < best[r["method"]]["ms"]:
                best[r["method"]] = r
    return best


def _method_grid(quick=False):
    Ks = (4, 64) if quick else (4, 64, 256)
    return Ks, (2, 4), [10.0 ** -e for e in range(6, 11)]


def accuracy_cost_rows(Ks, Ls, rtols, t_end=1e7, methods=("dopri5", "tsit5", "dop853")):
    """Accuracy per cost: max relative error of the final state against dop853 at rtol 1e-13
    (atol 1e-16) vs CPU ms (best of 3, process time), atol = 1e-3 rtol (the flow default
    1e-12 at rtol 1e-9)."""
    rows = []
    for L in Ls:
        for K in Ks:
            spec = ModelSpec(K, L)
            s0 = spec.balanced(_z0(spec, seed=2))
            ref = flow(spec, s0, save_at=[t_end], rtol=1e-13, atol=1e-16, method="dop853",
                       progress=False).s[-1]
            for meth in methods:
                for rtol in rtols:
                    kw = dict(save_at=[t_end], rtol=rtol, atol=rtol * 1e-3, method=meth,
                              progress=False)
                    tr = flow(spec, s0, **kw)
                    ms = _cpu_per_call(lambda: flow(spec, s0, **kw), n=1, repeat=3) / 1e3
                    err = np.abs(tr.s[-1] - ref).max() / np.abs(ref).max()
                    rows.append({"K": K, "L": L, "method": meth, "rtol": rtol,
                                 "steps": tr.stats["accepted_steps"][0], "cpu_ms": ms,
                                 "rel_err": err})
    return rows


def cheapest_by_case(rows, targets=(1e-6, 1e-8, 1e-10)):
    """Per (K, L, target error): the cheapest CPU ms of each method reaching it."""
    out = []
    for K, L in sorted({(r["K"], r["L"]) for r in rows}, key=lambda x: (x[1], x[0])):
        for target in targets:
            sel = [dict(r, ms=r["cpu_ms"]) for r in rows if r["K"] == K and r["L"] == L]
            best = cheapest_for(sel, target)
            row = {"K": K, "L": L, "rel_err <=": target}
            for meth in ("dopri5", "tsit5", "dop853"):
                row[f"{meth} ms"] = best[meth]["ms"] if meth in best else float("nan")
            row["dopri5 / dop853"] = row["dopri5 ms"] / row["dop853 ms"]
            out.append(row)
    return out


def batch_rows(Bs, Ks, t_end, rtol):
    rows = []
    for K in Ks:
        spec = ModelSpec(K, 4)
        rng = np.random.default_rng(1)
        single = spec.balanced(_z0(spec))
        t1 = best_of(lambda: flow(spec, single, save_at=[t_end], rtol=rtol, progress=False), 3)
        for B in Bs:
            Z = 0.5 * rng.uniform(0.5, 1.5, (B, K))
            Z[:, 0] = 0
            S = spec.balanced(spec.G.symmetrise(Z))
            flow(spec, S[: max(8, min(B, 8))], save_at=[t_end], rtol=rtol, progress=False)
            t = best_of(lambda: flow(spec, S, save_at=[t_end], rtol=rtol, progress=False), 2)
            rows.append({"K": K, "B": B, "traj_per_s": B / t, "single_traj_per_s": 1 / t1,
                         "ratio_vs_single": (B / t) * t1})
            print(rows[-1], flush=True)
    return rows


def steps_rows():
    spec = ModelSpec(16, 3)
    s0 = spec.balanced(_z0(spec, seed=3))
    rows = []
    for e in range(2, 13, 2):
        tr = flow(spec, s0, save_at=[10.0 ** e], rtol=1e-8)
        rows.append({"t_end": 10.0 ** e, "steps": tr.stats["accepted_steps"][0]})
    x = np.log10([r["t_end"] for r in rows])
    y = np.array([r["steps"] for r in rows])
    b, a = np.polyfit(x, y, 1)
    return rows, a, b


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["wrapper", "methods"], help="run one case")
    ap.add_argument("--wrapper-vs", metavar="REF",
                    help="wrapper cost of git REF against this tree, alternating processes")
    ap.add_argument("--steady-vs", metavar="REF",
                    help="the fixed-point hand-off per method: git REF against this tree")
    a = ap.parse_args(argv)
    q = a.quick
    print(header("svdyn engine"))
    if a.steady_vs:
        print(f"### Fixed-point hand-off per method: {a.steady_vs} vs this tree "
              "(save_at [1e2, 1e4, 1e5, 1e12], max_steps 200,000)\n")
        print(table(steady_vs(a.steady_vs)))
        return
    if a.wrapper_vs:
        rows, same = wrapper_vs(a.wrapper_vs)
        print(f"### Wrapper per call: {a.wrapper_vs} vs this tree (CPU us, best of 5 rounds x "
              "5 x 300 calls, alternating subprocesses)\n")
        print(table(rows))
        print(f"one-step states bit-identical: {same}\n")
        return
    if a.only == "wrapper":
        print("### Python wrapper per call (CPU time)\n")
        print(table(wrapper_rows()))
        return
    if a.only == "methods":
        rows = accuracy_cost_rows(*_method_grid(q))
        print("### Accuracy per cost (walsh, t_end 1e7; CPU ms, process time)\n")
        print(table(rows))
        print("### Cheapest run reaching each error (CPU ms)\n")
        print(table(cheapest_by_case(rows)))
        return
    print("### Field evaluation vs the floor FWHT + K exp + FWHT (walsh, L = 2, ce; exp from "
          "libm, and svdyn.fastexp's vectorisable one: the floor is the smaller)\n")
    print(table(field_rows(10 if q else 16)))
    print("### Python wrapper per call (CPU time)\n")
    print(table(wrapper_rows()))
    print("### One trajectory (walsh, t_end 1e7, rtol 1e-8): methods, accuracy per cost\n")
    print(table(method_rows((4, 64) if q else (4, 16, 64, 256, 1024), (2, 4), 1e7, 1e-8)))
    wp = work_precision_rows()
    print("### Work-precision (walsh, K = 16, L = 4, t_end 1e7; atol = 1e-4 rtol)\n")
    print(table(wp))
    for target in (1e-6, 1e-8, 1e-10):
        best = cheapest_for(wp, target)
        print(f"cheapest run with rel_err <= {target:g}: " + ", ".join(
            f"{k} {v['ms']:.3g} ms (rtol {v['rtol']:g})" for k, v in sorted(best.items())))
    print()
    print("### Batches (walsh, L = 4, t_end 1e7, rtol 1e-8)\n")
    print(table(batch_rows((16, 256) if q else (16, 256, 4096), (4, 64), 1e7, 1e-8)))
    rows, a0, b0 = steps_rows()
    print("### Steps vs t_end (K = 16, L = 3, rtol 1e-8, dopri5)\n")
    print(table(rows))
    print(f"fit: steps = {a0:.1f} + {b0:.1f} log10(t_end)\n")


if __name__ == "__main__":
    main()
