"""svdyn against the ODE peers a researcher could pick instead: one process, same work.

    python bench/peers.py [--quick] [--out FILE] [--without numbalsoda,cyrk,...]
                          [--parts single] [--single-ks 4,64,256] [--single-ls 2,4]

Problem: the reduced walsh CE gradient flow (MODEL.md section 2), n = 1, no weight decay, from
the balanced start ``z_0 = 0``, ``z_j = 0.5 U(0.5, 1.5)`` (seed 0), integrated from 0 to
``t_end = 1e7`` at ``rtol = 1e-8, atol = 1e-12``; only the final state is kept (no save grid).
Every peer gets its own competent right-hand side (``peers_fields.py``; each is checked against
``svdyn.field.vector_field`` to ~1e-15 first). Accuracy: each method's final state is compared
with a tight reference (scipy DOP853 at rtol 1e-13, atol 1e-16, on a compiled field), itself
cross-checked against svdyn at rtol 1e-13; ``err`` = max |y - y_ref| / max |y_ref|.

Peers: scipy ``solve_ivp`` (RK45, DOP853, LSODA) with a numpy field; numbalsoda ``lsoda`` and
``dop853`` with a numba cfunc; CyRK ``nbsolve2_ivp`` (its C++/Cython solver behind numba) with
a numba cfunc; diffrax (JAX CPU, float64) Dopri5 / Tsit5 / Dopri8 with a ``jnp`` field, jitted,
``vmap`` for batches; numbalsoda and CyRK batches run in a numba ``prange`` loop. Gradient
descent: ``svdyn.descent.descend`` against the full-matrix torch model
(``svdyn.fullmodel.gd``) at 1 torch thread and at the default thread count.

svdyn is called only through ``svdyn.integrate.flow(spec, s0, save_at=[t_end], rtol=, atol=)``
(and ``method=`` for every tableau the installed engine offers, found by inspection).

Timing: the first call (compilation / JIT / cache load) is reported apart as ``warmup_s``;
``time_s`` is the median of the repeats after it, each repeat the mean of back-to-back calls
lasting ~10 ms (one call timed alone right after another library's ran cold: svdyn's 0.10 ms
K = 4 run measured 0.30 ms in the first row of a round). ``ratio`` = peer time / time of the fastest
svdyn method in the same case, same run: ratio > 1 means svdyn is faster. A peer that is not
installed shows ``missing``; one that fails shows ``failed: <reason>``.
"""
from __future__ import annotations

import argparse
import inspect
import math
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import peers_fields as pf  # noqa: E402

from svdyn.integrate import flow  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402

PEER_PACKAGES = {"scipy": "scipy", "numbalsoda": "numbalsoda", "cyrk": "CyRK",
                 "diffrax": "diffrax", "torch": "torch"}
DIST_NAMES = ["svdyn", "numpy", "numba", "scipy", "numbalsoda", "cyrk", "jax", "jaxlib",
              "diffrax", "equinox", "torch"]
T_END, RTOL, ATOL = 1e7, 1e-8, 1e-12
#: the "svdyn-log" rows: dop853 with ``flow(log_time=True)`` at a ten times smaller rtol, which
#: ends closer to the reference than the peers' dop853 at RTOL (their errors are printed)
LOG_RTOL, LOG_METHOD = RTOL / 10, "dop853"
REF_RTOL, REF_ATOL = 1e-13, 1e-16
N_CHECK = 4  # batch trajectories compared with the reference


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- timing
def timed(fn, repeats: int, budget: float):
    """(warmup s, median wall s, median CPU s, n repeats, last result) of ``fn()``."""
    t0 = time.perf_counter()
    out = fn()
    warm = time.perf_counter() - t0
    times, cpus = [], []
    spent = 0.0
    while len(times) < repeats and (len(times) < 2 or spent < budget):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        cpus.append(time.process_time() - c0)
        times.append(dt)
        spent += dt
    return warm, statistics.median(times), statistics.median(cpus), len(times), out


def rel_err(y, ref) -> float:
    y = np.asarray(y, dtype=float).reshape(ref.shape)
    return float(np.abs(y - ref).max() / np.abs(ref).max())


# ----------------------------------------------------------------------------- availability
def available(without: set[str]) -> dict[str, str | None]:
    """peer -> version, or None when missing (not installed, or named in --without)."""
    out = {}
    for peer, mod in PEER_PACKAGES.items():
        if peer in without:
            out[peer] = None
            continue
        try:
            __import__(mod)
        except Exception:  # noqa: BLE001 -- any import failure means "missing"
            out[peer] = None
            continue
        dist = "cyrk" if peer == "cyrk" else peer
        try:
            out[peer] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[peer] = "?"
    return out


def has_log_time() -> bool:
    """Whether this svdyn's ``flow`` takes ``log_time`` (older trees: no svdyn-log rows)."""
    return "log_time" in inspect.signature(flow).parameters


def svdyn_methods() -> list[str | None]:
    """Tableau names ``flow`` accepts (None = the default call, without ``method=``)."""
    if "method" not in inspect.signature(flow).parameters:
        return [None]
    try:
        from svdyn.tableaux import TABLEAUX
        # implicit (Rosenbrock) tableaux serve other clocks, not ``flow``
        return sorted(m for m, t in TABLEAUX.items() if not getattr(t, "implicit", False))
    except Exception:  # noqa: BLE001
        return [inspect.signature(flow).parameters["method"].default]


def start(spec: ModelSpec, batch: int | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (spec.K,) if batch is None else (batch, spec.K)
    z = 0.5 * rng.uniform(0.5, 1.5, shape)
    z[..., 0] = 0.0
    return spec.balanced(z)


def reference(K: int, L: int, y0: np.ndarray) -> np.ndarray:
    from scipy.integrate import solve_ivp

    f = pf.numba_py_field(K, L)
    sol = solve_ivp(f, (0.0, T_END), y0, method="DOP853", rtol=REF_RTOL, atol=REF_ATOL)
    if not sol.success:
        raise RuntimeError(f"reference failed: {sol.message}")
    return sol.y[:, -1]


# ----------------------------------------------------------------------------- one trajectory
class Single:
    """Runners for one trajectory at (K, L); each returns (y_final, steps, nfev)."""

    def __init__(self, K, L, have):
        self.K, self.L, self.have = K, L, have
        self.spec = ModelSpec(K, L)
        self.s0 = start(self.spec)
        self.y0 = self.s0.ravel().copy()
        self.t_eval2 = np.array([0.0, T_END])

    def svdyn(self, method, log_time=False):
        kw = {} if method is None else {"method": method}
        rtol = RTOL
        if log_time:
            kw["log_time"], rtol = True, LOG_RTOL
        spec, s0 = self.spec, self.s0

        def run():
            tr = flow(spec, s0, save_at=[T_END], rtol=rtol, atol=ATOL, **kw)
            if tr.status != "ok":
                raise RuntimeError(tr.status)
            return tr.s[-1].ravel(), tr.stats["accepted_steps"][0], None
        return run, 0.0, ""

    def scipy(self, method):
        from scipy.integrate import solve_ivp

        f, how = pf.numpy_field(self.K, self.L)

        def run():
            sol = solve_ivp(f, (0.0, T_END), self.y0, method=method, rtol=RTOL, atol=ATOL)
            if not sol.success:
                raise RuntimeError(sol.message)
            return sol.y[:, -1], sol.t.size - 1, sol.nfev
        return run, 0.0, how

    def numbalsoda(self, method):
        import numbalsoda

        t0 = time.perf_counter()
        rhs = pf.numbalsoda_rhs(self.K, self.L)
        build = time.perf_counter() - t0
        solver = getattr(numbalsoda, method)
        addr, data = rhs.address, pf.numbalsoda_data(self.K)

        def run():
            data[0] = 0.0
            usol, ok = solver(addr, self.y0, self.t_eval2, data=data, rtol=RTOL, atol=ATOL,
                              mxstep=10_000_000)
            if not ok:
                raise RuntimeError(f"numbalsoda.{method} reported failure")
            return usol[-1], None, int(data[0])
        return run, build, "numba cfunc"

    def cyrk(self, method):
        from CyRK import nbsolve2_ivp

        t0 = time.perf_counter()
        rhs = pf.cyrk_rhs(self.K, self.L)
        build = time.perf_counter() - t0
        addr = rhs.address
        span = (0.0, T_END)

        def run():
            sol = nbsolve2_ivp(addr, span, self.y0, method=method, rtol=RTOL, atol=ATOL,
                               max_num_steps=10_000_000)
            try:
                if not sol.success:
                    raise RuntimeError(sol.message)
                y = sol.y[:, -1].copy()
                steps = int(sol.steps_taken)
            finally:
                sol.free()
            return y, steps, None
        return run, build, "numba cfunc"

    def diffrax(self, method):
        import diffrax
        import jax
        import jax.numpy as jnp

        f, how = pf.jax_field(self.K, self.L)
        solve = _diffrax_solve(f, getattr(diffrax, method)())
        y0 = jnp.asarray(self.y0)
        t0 = time.perf_counter()
        comp = jax.jit(solve).lower(y0).compile()
        build = time.perf_counter() - t0

        def run():
            y, acc, _ = comp(y0)
            y.block_until_ready()
            return np.asarray(y), int(acc), None
        return run, build, how


def _diffrax_solve(f, solver):
    import diffrax

    term = diffrax.ODETerm(f)
    ctrl = diffrax.PIDController(rtol=RTOL, atol=ATOL)
    save = diffrax.SaveAt(t1=True)

    def solve(y0):
        sol = diffrax.diffeqsolve(term, solver, 0.0, T_END, None, y0, saveat=save,
                                  stepsize_controller=ctrl, max_steps=1_000_000)
        return sol.ys[-1], sol.stats["num_accepted_steps"], sol.stats["num_steps"]
    return solve


SINGLE_METHODS = [("scipy", "RK45"), ("scipy", "DOP853"), ("scipy", "LSODA"),
                  ("numbalsoda", "lsoda"), ("numbalsoda", "dop853"),
                  ("cyrk", "RK45"), ("cyrk", "DOP853"), ("cyrk", "Tsit5"),
                  ("diffrax", "Dopri5"), ("diffrax", "Tsit5"), ("diffrax", "Dopri8")]


def prepare(make, have_ver):
    """A row being measured: build the runner and make its first (warm-up) call."""
    if have_ver is None:
        return {"status": "missing"}
    try:
        run, build, how = make()
        t0 = time.perf_counter()
        out = run()
        return {"status": "ok", "field": how, "warmup_s": build + time.perf_counter() - t0,
                "_run": run, "_out": out, "_wall": [], "_cpu": []}
    except Exception as exc:  # noqa: BLE001 -- a failing peer is reported, not fatal
        return _failed(exc)


def _failed(exc):
    msg = str(exc).splitlines()[0][:80] if str(exc) else ""
    return {"status": f"failed: {type(exc).__name__}: {msg}"}


#: a sample of a fast row is the mean of back-to-back calls lasting about SAMPLE_SECONDS (at
#: most MAX_CALLS), so that no library is timed cold right after another one's call
SAMPLE_SECONDS = 0.01
MAX_CALLS = 200


def measure(rows, err_of, repeats, budget):
    """Time the prepared rows in interleaved rounds (each round runs every row once, so load
    from other processes hits all of them alike; a fast row's sample is the mean of
    back-to-back calls of about :data:`SAMPLE_SECONDS`); fill time_s (median wall), cpu_s
    (median process CPU time), repeats, steps, nfev and err."""
    live = [r for r in rows if r["status"] == "ok"]
    for r in live:   # calls per sample: a sample of one call right after another library's
        try:         # runs cold (caches, predictors): 0.10 ms runs measured 0.3 ms that way
            t0 = time.perf_counter()
            r["_run"]()
            r["_n"] = max(1, min(MAX_CALLS, int(SAMPLE_SECONDS / (time.perf_counter() - t0))))
        except Exception as exc:  # noqa: BLE001
            r.clear()
            r.update(_failed(exc))
    live = [r for r in live if r["status"] == "ok"]
    spent, rounds = 0.0, 0
    while live and rounds < repeats and (rounds < 2 or spent < budget):
        for r in live:
            try:
                n = r["_n"]
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    r["_out"] = r["_run"]()
                dt = time.perf_counter() - t0
                r["_wall"].append(dt / n)
                r["_cpu"].append((time.process_time() - c0) / n)
                spent += dt
            except Exception as exc:  # noqa: BLE001
                r.clear()
                r.update(_failed(exc))
        live = [r for r in live if r["status"] == "ok"]
        rounds += 1
    for r in live:
        y, steps, nfev = r.pop("_out")
        r.pop("_run")
        wall, cpu = r.pop("_wall"), r.pop("_cpu")
        r.update(time_s=statistics.median(wall), cpu_s=statistics.median(cpu),
                 repeats=len(wall), steps=steps, nfev=nfev, err=err_of(y))
    for r in rows:
        for k in [k for k in r if k.startswith("_")]:
            r.pop(k)


def add_ratios(rows, key, extra=None):
    """ratio = row[key] / fastest svdyn row[key]; also cpu_ratio from cpu_s."""
    for k, name in ((key, "ratio"), ("cpu_s", "cpu_ratio")):
        ok = [r[k] for r in rows if r["peer"] == "svdyn" and r["status"] == "ok"]
        best = min(ok) if ok else float("nan")
        for r in rows:
            if r["status"] == "ok":
                r[name] = r[k] / best
                if extra:
                    extra(r)


def single_case(K, L, have, repeats, budget, methods):
    case = Single(K, L, have)
    t0 = time.perf_counter()
    ref = reference(K, L, case.y0)
    ref_s = time.perf_counter() - t0
    tr = flow(case.spec, case.s0, save_at=[T_END], rtol=REF_RTOL, atol=REF_ATOL)
    ref_check = rel_err(tr.s[-1].ravel(), ref)
    def err_of(y):
        return rel_err(y, ref)

    rows = []
    for m in svdyn_methods():
        rows.append({"peer": "svdyn", "method": m or "default",
                     **prepare(lambda m=m: case.svdyn(m), "yes")})
    if has_log_time():
        rows.append({"peer": "svdyn-log", "method": LOG_METHOD,
                     **prepare(lambda: case.svdyn(LOG_METHOD, log_time=True), "yes")})
    for peer, m in methods:
        log(f"  K={K} L={L} {peer} {m}")
        rows.append({"peer": peer, "method": m,
                     **prepare(lambda p=peer, m=m: getattr(case, p)(m), have[peer])})
    measure(rows, err_of, repeats, budget)
    add_ratios(rows, "time_s")
    return {"K": K, "L": L, "rows": rows, "ref_s": ref_s, "ref_vs_svdyn_1e-13": ref_check}


# ----------------------------------------------------------------------------- batches
def _nb_batch_kernels():
    import numba as nb
    import numbalsoda

    lsoda, dop853 = numbalsoda.lsoda, numbalsoda.dop853

    @nb.njit(parallel=True)
    def nbl_batch(addr, Y0, t_eval, rtol, atol, nwork, use_dop853, out, ok):
        for b in nb.prange(Y0.shape[0]):
            data = np.zeros(nwork)
            if use_dop853:
                usol, success = dop853(addr, Y0[b], t_eval, data, rtol, atol, 10_000_000)
            else:
                usol, success = lsoda(addr, Y0[b], t_eval, data, rtol, atol, 10_000_000)
            out[b] = usol[-1]
            ok[b] = success
    return nbl_batch


def _cyrk_batch_kernel(method):
    import numba as nb
    from CyRK import nbsolve2_ivp

    @nb.njit(parallel=True)
    def cy_batch(addr, Y0, t_end, rtol, atol, out, ok):
        for b in nb.prange(Y0.shape[0]):
            sol = nbsolve2_ivp(addr, (0.0, t_end), Y0[b], method=method, rtol=rtol,
                               atol=atol, max_num_steps=10_000_000)
            ok[b] = sol.success
            if sol.success:
                out[b] = sol.y[:, -1]
            sol.free()
    return cy_batch


QUICK_SINGLE = [("scipy", "RK45"), ("numbalsoda", "lsoda"), ("numbalsoda", "dop853"),
                ("cyrk", "RK45"), ("diffrax", "Tsit5")]
QUICK_BATCH = [("numbalsoda", "dop853"), ("cyrk", "RK45"), ("diffrax", "Tsit5")]

BATCH_METHODS = [("numbalsoda", "lsoda"), ("numbalsoda", "dop853"), ("cyrk", "RK45"),
                 ("cyrk", "DOP853"), ("diffrax", "Tsit5")]


def batch_case(K, L, B, have, refs, repeats, budget, cache, methods):
    spec = ModelSpec(K, L)
    S0 = start(spec, B, seed=1)
    Y0 = S0.reshape(B, -1).copy()
    ref = refs[(K, L)]
    nchk = len(ref)

    def err_of(Y):
        return max(rel_err(Y[i], ref[i]) for i in range(nchk))

    rows = []
    runs = [("svdyn", m or "default", {} if m is None else {"method": m}, RTOL)
            for m in svdyn_methods()]
    if has_log_time():
        runs.append(("svdyn-log", LOG_METHOD, {"method": LOG_METHOD, "log_time": True},
                     LOG_RTOL))
    for who, name, kw, rtol in runs:

        def make(kw=kw, rtol=rtol):
            t0 = time.perf_counter()
            flow(spec, S0[:16], save_at=[T_END], rtol=rtol, atol=ATOL, **kw)  # compile
            build = time.perf_counter() - t0

            def run():
                tr = flow(spec, S0, save_at=[T_END], rtol=rtol, atol=ATOL, **kw)
                if any(st != "ok" for st in tr.status):
                    raise RuntimeError("a trajectory failed")
                return tr.s[:nchk, -1].reshape(nchk, -1), None, None
            return run, build, ""
        rows.append({"peer": who, "method": name, **prepare(make, "yes")})
    for peer, m in methods:
        log(f"  K={K} L={L} B={B} {peer} {m}")

        def make(peer=peer, m=m):
            return _batch_runner(peer, m, K, L, Y0, cache)
        rows.append({"peer": peer, "method": m, **prepare(make, have[peer])})
    measure(rows, err_of, repeats, budget)

    def tput(r):
        r["traj_per_s"] = B / r["time_s"]
        r["traj_per_cpu_s"] = B / r["cpu_s"]
    add_ratios(rows, "time_s", tput)
    return {"K": K, "L": L, "B": B, "rows": rows}


def _batch_runner(peer, m, K, L, Y0, cache):
    B, N = Y0.shape
    if peer == "numbalsoda":
        t0 = time.perf_counter()
        if "nbl" not in cache:
            cache["nbl"] = _nb_batch_kernels()
        key = ("nbl_rhs", K, L)
        if key not in cache:
            cache[key] = pf.numbalsoda_rhs(K, L)
        kern, addr = cache["nbl"], cache[key].address
        t_eval = np.array([0.0, T_END])
        nwork = pf.numbalsoda_data(K).size
        use = m == "dop853"
        out, okv = np.empty((B, N)), np.zeros(B, dtype=np.bool_)
        kern(addr, Y0[:2], t_eval, RTOL, ATOL, nwork, use, out[:2], okv[:2])  # compile
        build = time.perf_counter() - t0

        def run():
            kern(addr, Y0, t_eval, RTOL, ATOL, nwork, use, out, okv)
            if not okv.all():
                raise RuntimeError("a trajectory failed")
            return out[:N_CHECK], None, None
        return run, build, "numba cfunc, prange"
    if peer == "cyrk":
        t0 = time.perf_counter()
        key = ("cy", m)
        if key not in cache:
            cache[key] = _cyrk_batch_kernel(m)
        rkey = ("cy_rhs", K, L)
        if rkey not in cache:
            cache[rkey] = pf.cyrk_rhs(K, L)
        kern, addr = cache[key], cache[rkey].address
        out, okv = np.empty((B, N)), np.zeros(B, dtype=np.bool_)
        kern(addr, Y0[:2], T_END, RTOL, ATOL, out[:2], okv[:2])
        build = time.perf_counter() - t0

        def run():
            kern(addr, Y0, T_END, RTOL, ATOL, out, okv)
            if not okv.all():
                raise RuntimeError("a trajectory failed")
            return out[:N_CHECK], None, None
        return run, build, "numba cfunc, prange"
    if peer == "diffrax":
        import diffrax
        import jax
        import jax.numpy as jnp

        f, how = pf.jax_field(K, L)
        solve = jax.vmap(_diffrax_solve(f, getattr(diffrax, m)()))
        Yj = jnp.asarray(Y0)
        t0 = time.perf_counter()
        comp = jax.jit(solve).lower(Yj).compile()
        build = time.perf_counter() - t0

        def run():
            y, acc, _ = comp(Yj)
            y.block_until_ready()
            return np.asarray(y[:N_CHECK]), None, None
        return run, build, how + ", vmap"
    raise ValueError(peer)


# ----------------------------------------------------------------------------- GD vs torch
def gd_case(K, L, steps, have, repeats, budget):
    from svdyn.descent import descend

    spec = ModelSpec(K, L)
    s0 = start(spec)
    lr = 0.5
    rows = []
    warm, med, cpu, n, tr = timed(lambda: descend(spec, s0, lr, steps, save_every=steps),
                                  repeats, budget)
    rows.append({"peer": "svdyn", "method": "descend", "status": "ok", "warmup_s": warm,
                 "time_s": med, "cpu_s": cpu, "repeats": n,
                 "threads": "numba serial (B = 1)"})
    loss_red = float(tr.loss[-1])
    if have["torch"] is None:
        rows.append({"peer": "torch", "method": "full GD", "status": "missing"})
    else:
        import torch

        from svdyn import fullmodel

        default_threads = torch.get_num_threads()
        for th in (1, default_threads) if default_threads > 1 else (1,):
            torch.set_num_threads(th)
            try:
                factors = fullmodel.build_spectral_factors(spec, s0, K, seed=0,
                                                           device=torch.device("cpu"))

                def run():
                    return fullmodel.gd(spec, factors, lr, steps, save_every=steps)
                w, m, c, n, out = timed(run, min(repeats, 3), budget)
                loss_full = float(fullmodel.full_loss(spec, out))
                sv = fullmodel.svd_values(out)[:L]
                red = np.sort(tr.s[-1], axis=1)[:, ::-1]
                sv_dev = max(float(np.abs(sv[l][:K] - red[l]).max() / red[l].max())
                             for l in range(L))
                rows.append({"peer": "torch", "method": "full GD (cpu)", "status": "ok",
                             "warmup_s": w, "time_s": m, "cpu_s": c, "repeats": n,
                             "threads": f"{th}" + (" (default)" if th == default_threads
                                                   else ""),
                             "loss_rel_diff": abs(loss_full - loss_red) / abs(loss_red),
                             "sv_rel_diff": sv_dev,
                             "ratio": m / med, "cpu_ratio": c / cpu})
            except Exception as exc:  # noqa: BLE001
                rows.append({"peer": "torch", "method": "full GD", "threads": th,
                             "status": f"failed: {type(exc).__name__}: {exc}"[:100]})
        torch.set_num_threads(default_threads)
    return {"K": K, "L": L, "d": K, "steps": steps, "rows": rows}


# ----------------------------------------------------------------------------- report
def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan"
        return f"{v:.{digits}g}"
    return str(v)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def label(r):
    return f"{r['peer']} {r['method']}"


#: peers running the same tableau as an svdyn method (diffrax's Dopri8 is Prince and Dormand's
#: 8(7) pair, not Hairer's DOP853, so it is not listed)
SAME_TABLEAU = {"dop853": [("numbalsoda", "dop853"), ("cyrk", "DOP853"), ("scipy", "DOP853")],
                "dopri5": [("cyrk", "RK45"), ("scipy", "RK45"), ("diffrax", "Dopri5")],
                "tsit5": [("cyrk", "Tsit5"), ("diffrax", "Tsit5")]}


def same_tableau(singles) -> list[str]:
    """Markdown lines: each svdyn method against the peers that run the same tableau (same
    steps and error up to their step control), CPU ratio peer / svdyn with the peer's error.
    The headline table compares at equal rtol, where methods of different order end at
    different errors (at rtol 1e-8, dop853 ~1e-11, dopri5 ~1e-8)."""
    rows = []
    for c in singles:
        by = {(r["peer"], r["method"]): r for r in c["rows"] if r["status"] == "ok"}
        for meth, peers in SAME_TABLEAU.items():
            mine = by.get(("svdyn", meth))
            if mine is None:
                continue
            cells = []
            for key in peers:
                r = by.get(key)
                cells.append("-" if r is None else
                             f"{r['cpu_s'] / mine['cpu_s']:.3g} ({r['err']:.1e})")
            rows.append([c["K"], c["L"], meth, mine["cpu_s"], mine["err"]] + cells)
    if not rows:
        return []
    head = (["K", "L", "tableau", "svdyn CPU s", "svdyn err"]
            + [f"{p} {m} / {meth}" for meth, peers in SAME_TABLEAU.items() for p, m in peers])
    # one column per (peer, method) pair: pad each row to its tableau's slots
    width = {meth: len(peers) for meth, peers in SAME_TABLEAU.items()}
    order = list(SAME_TABLEAU)
    padded = []
    for r in rows:
        i = order.index(r[2])
        before = sum(width[m] for m in order[:i])
        after = sum(width[m] for m in order[i + 1:])
        padded.append(r[:5] + [""] * before + r[5:] + [""] * after)
    return ["Same tableau: CPU ratio = peer / svdyn running the same method (> 1: svdyn "
            "faster), the peer's error against the reference in brackets. The table above "
            "compares at equal rtol, where a higher-order method ends closer to the "
            "reference.\n", md_table(head, padded), ""]


#: the peers a log-clock row is set against (one column each; cyrk and diffrax: their fastest)
LOG_VS = [("svdyn", "dop853"), ("numbalsoda", "dop853"), ("numbalsoda", "lsoda"),
          ("cyrk", None), ("diffrax", None), ("scipy", "RK45")]


def _log_cells(by, mine, key):
    """Cells ``peer key / svdyn-log key (peer err)`` for :data:`LOG_VS` (None: the peer's
    fastest method)."""
    cells = []
    for peer, meth in LOG_VS:
        cands = [r for (p, m), r in by.items() if p == peer and (meth is None or m == meth)]
        if not cands:
            cells.append("-")
            continue
        r = min(cands, key=lambda r: r[key])
        name = "" if meth is not None else f"{r['method']} "
        cells.append(f"{name}{r[key] / mine[key]:.3g} ({r['err']:.1e})")
    return cells


def _log_head(first):
    return first + [f"{p} {m or '(fastest)'}" for p, m in LOG_VS]


def log_clock_single(singles) -> list[str]:
    """Markdown lines: svdyn's log clock (dop853 at LOG_RTOL) against each peer at RTOL, CPU
    ratio peer / svdyn-log with the peer's error in brackets."""
    rows = []
    for c in singles:
        by = {(r["peer"], r["method"]): r for r in c["rows"] if r["status"] == "ok"}
        mine = by.get(("svdyn-log", LOG_METHOD))
        if mine is not None:
            rows.append([c["K"], c["L"], mine["cpu_s"], mine["steps"], mine["err"]]
                        + _log_cells(by, mine, "cpu_s"))
    if not rows:
        return []
    return [f"Log clock: svdyn {LOG_METHOD} with `flow(log_time=True)` at rtol {LOG_RTOL:g} "
            f"against each peer at rtol {RTOL:g}; CPU ratio = peer / svdyn-log (> 1: svdyn "
            "faster), the peer's error against the reference in brackets (compare with "
            "svdyn-log's err).\n",
            md_table(_log_head(["K", "L", "svdyn-log CPU s", "steps", "svdyn-log err"]), rows),
            ""]


def log_clock_batch(batches) -> list[str]:
    """The same for batches, by wall time (both cores)."""
    rows = []
    for c in batches:
        by = {(r["peer"], r["method"]): r for r in c["rows"] if r["status"] == "ok"}
        mine = by.get(("svdyn-log", LOG_METHOD))
        if mine is not None:
            rows.append([c["K"], c["B"], mine["traj_per_s"], mine["err"]]
                        + _log_cells(by, mine, "time_s"))
    if not rows:
        return []
    return [f"Log clock, batches: svdyn {LOG_METHOD} with `log_time=True` at rtol "
            f"{LOG_RTOL:g} against each peer at rtol {RTOL:g}; ratio = peer wall time / "
            "svdyn-log wall time (> 1: svdyn faster), the peer's error in brackets.\n",
            md_table(_log_head(["K", "B", "svdyn-log traj/s", "svdyn-log err"]), rows), ""]


def report(meta, singles, batches, gds) -> str:
    out = [f"machine: {meta['machine']}", f"versions: {meta['versions']}",
           f"missing peers: {meta['missing'] or 'none'}", f"threads: {meta['threads']}",
           f"load average at start {meta['load_start']}, at end {meta['load_end']}; "
           f"wall {meta['wall_s']:.0f} s", ""]
    if singles:
        out.append(f"### One trajectory (walsh CE, t_end {T_END:g}, rtol {RTOL:g}, atol "
                   f"{ATOL:g})\n\nCell: CPU ratio (wall ratio) = peer time / fastest svdyn "
                   "time in the same case, medians; > 1: svdyn faster. All these runs are "
                   "single-threaded, so process CPU time is their cost; wall time also counts "
                   "preemption by other processes, which inflates the longer runs most.\n")
        labels = [label(r) for r in singles[0]["rows"]]
        head = ["K", "L", "svdyn fastest (CPU)", "svdyn CPU s"] + [lb for lb in labels
                                                         if not lb.startswith("svdyn")]
        rows = []
        for c in singles:
            sv = [r for r in c["rows"] if r["peer"] == "svdyn" and r["status"] == "ok"]
            best = min(sv, key=lambda r: r["cpu_s"]) if sv else None
            rows.append([c["K"], c["L"], best["method"] if best else "failed",
                         best["cpu_s"] if best else None]
                        + [_ratio_cell(r) for r in c["rows"]
                           if not label(r).startswith("svdyn")])
        out += [md_table(head, rows), ""]
        out += same_tableau(singles)
        out += log_clock_single(singles)
        out.append("Details (time = median after warm-up; warm-up = compile/JIT + first call; "
                   "steps = accepted steps where the library reports them, nfev where it "
                   "reports that instead; err vs the rtol-1e-13 reference):\n")
        rows = []
        for c in singles:
            for r in c["rows"]:
                rows.append([c["K"], c["L"], label(r), r["status"], r.get("field"),
                             r.get("time_s"), r.get("cpu_s"), r.get("warmup_s"),
                             r.get("repeats"), r.get("steps"), r.get("nfev"), r.get("err"),
                             r.get("ratio"), r.get("cpu_ratio")])
        out += [md_table(["K", "L", "method", "status", "field", "time_s", "cpu_s",
                          "warmup_s", "repeats", "steps", "nfev", "err", "ratio",
                          "cpu_ratio"], rows), ""]
        out.append("Reference check (scipy DOP853 rtol 1e-13 vs svdyn rtol 1e-13): "
                   + ", ".join(f"K={c['K']} L={c['L']}: {c['ref_vs_svdyn_1e-13']:.1e}"
                               for c in singles) + "\n")
    if batches:
        out.append("### Batches (L = 4; throughput in trajectories/s; ratio = peer wall time / "
                   "fastest svdyn wall time, medians, > 1: svdyn faster; cpu_s = process CPU "
                   "time summed over threads, cpu_ratio from it)\n")
        rows = []
        for c in batches:
            for r in c["rows"]:
                rows.append([c["K"], c["B"], label(r), r["status"], r.get("field"),
                             r.get("traj_per_s"), r.get("traj_per_cpu_s"), r.get("time_s"),
                             r.get("cpu_s"), r.get("warmup_s"), r.get("repeats"),
                             r.get("err"), r.get("ratio"), r.get("cpu_ratio")])
        out += [md_table(["K", "B", "method", "status", "field", "traj_per_s",
                          "traj_per_cpu_s", "time_s", "cpu_s", "warmup_s", "repeats",
                          f"err (first {N_CHECK})", "ratio", "cpu_ratio"], rows), ""]
        out += log_clock_batch(batches)
    if gds:
        out.append("### Gradient descent: reduced svdyn vs full-matrix torch (cpu, float64, "
                   "d = K, lr 0.5; ratio = torch time / svdyn time)\n")
        rows = []
        for c in gds:
            for r in c["rows"]:
                rows.append([c["K"], c["L"], c["steps"], label(r), r.get("threads"),
                             r["status"], r.get("time_s"), r.get("cpu_s"), r.get("warmup_s"),
                             r.get("loss_rel_diff"), r.get("sv_rel_diff"), r.get("ratio"),
                             r.get("cpu_ratio")])
        out += [md_table(["K", "L", "steps", "method", "threads", "status", "time_s", "cpu_s",
                          "warmup_s", "final loss rel diff", "singular values rel diff",
                          "ratio", "cpu_ratio"], rows), ""]
    return "\n".join(out)


def _ratio_cell(r):
    if r["status"] != "ok":
        return r["status"]
    return f"{r['cpu_ratio']:.3g} ({r['ratio']:.3g})"


def machine_meta(have):
    versions = []
    for d in DIST_NAMES:
        try:
            versions.append(f"{d} {metadata.version(d)}")
        except metadata.PackageNotFoundError:
            pass
    import numba
    threads = f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}"
    if have["torch"] is not None:
        import torch
        threads += f", torch default {torch.get_num_threads()}"
    if have["diffrax"] is not None:
        import jax
        threads += f", jax devices {jax.devices()}"
    import subprocess
    try:
        head = subprocess.run(["git", "-C", str(Path(__file__).parent), "log", "-1",
                               "--format=%h %s"], capture_output=True, text=True,
                              timeout=10).stdout.strip()[:90]
    except Exception:  # noqa: BLE001
        head = "?"
    versions.insert(0, f"svdyn at {head}; svdyn methods {svdyn_methods()}")
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{platform.python_implementation()} {platform.python_version()}",
            "versions": ", ".join(versions),
            "missing": ", ".join(p for p, v in have.items() if v is None),
            "threads": threads}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a < 2 min subset")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--without", default="",
                    help="comma list of peers to treat as missing (tests the missing path)")
    ap.add_argument("--parts", default="single,batch,gd",
                    help="comma list of single, batch, gd")
    ap.add_argument("--single-ks", help="comma list of K for the single part "
                    "(default 4,16,64,256,1024)")
    ap.add_argument("--single-ls", help="comma list of L for the single part (default 2,4)")
    ap.add_argument("--batch-ks", help="comma list of K for the batch part (default 4,64)")
    ap.add_argument("--batch-sizes", help="comma list of B (default 16,256,4096)")
    a = ap.parse_args(argv)
    without = {w.strip() for w in a.without.split(",") if w.strip()}
    unknown = without - set(PEER_PACKAGES)
    if unknown:
        ap.error(f"--without: unknown peer(s) {sorted(unknown)}; choose from "
                 f"{sorted(PEER_PACKAGES)}")
    parts = set(a.parts.split(","))
    have = available(without)
    if have["diffrax"] is not None:
        import jax
        jax.config.update("jax_enable_x64", True)
    if have["scipy"] is None:
        raise SystemExit("peers.py: error: scipy is required (svdyn depends on it)")
    t_start = time.perf_counter()
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if a.quick:
        single_ks, single_ls = (4, 64), (4,)
        batch_cases = [(4, 16), (4, 256)]
        gd_ks, repeats, budget = (64,), 3, 2.0
        single_methods, batch_methods = QUICK_SINGLE, QUICK_BATCH
    else:
        single_ks, single_ls = (4, 16, 64, 256, 1024), (2, 4)
        batch_cases = [(K, B) for K in (4, 64) for B in (16, 256, 4096)]
        gd_ks, repeats, budget = (64, 256), 7, 10.0
        single_methods, batch_methods = SINGLE_METHODS, BATCH_METHODS
    if a.single_ks:
        single_ks = tuple(int(x) for x in a.single_ks.split(","))
    if a.single_ls:
        single_ls = tuple(int(x) for x in a.single_ls.split(","))
    if a.batch_ks or a.batch_sizes:
        ks = {K for K, _ in batch_cases}
        bs = {B for _, B in batch_cases}
        ks = [int(x) for x in a.batch_ks.split(",")] if a.batch_ks else sorted(ks)
        bs = [int(x) for x in a.batch_sizes.split(",")] if a.batch_sizes else sorted(bs)
        batch_cases = [(K, B) for K in ks for B in bs]
    singles, batches, gds = [], [], []
    meta = machine_meta(have)
    meta["load_start"] = load_start

    def write(final=False):
        meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        meta["wall_s"] = time.perf_counter() - t_start
        text = report(meta, singles, batches, gds)
        if a.out:
            tmp = Path(a.out + ".tmp")
            tmp.write_text(text + ("\n" if final else "\n\n(run still in progress)\n"))
            tmp.replace(a.out)
        return text

    if "single" in parts:
        for L in single_ls:
            for K in single_ks:
                log(f"single K={K} L={L}")
                singles.append(single_case(K, L, have, repeats, budget,
                                           single_methods))
                write()
    if "batch" in parts:
        refs, cache = {}, {}
        for K in sorted({k for k, _ in batch_cases}):
            spec = ModelSpec(K, 4)
            Y = start(spec, 16, seed=1).reshape(16, -1)  # first rows of every batch start
            refs[(K, 4)] = [reference(K, 4, Y[i]) for i in range(N_CHECK)]
        for K, B in batch_cases:
            log(f"batch K={K} B={B}")
            batches.append(batch_case(K, 4, B, have, refs, repeats, budget, cache,
                                      batch_methods))
            write()
    if "gd" in parts:
        for K in gd_ks:
            log(f"gd K={K}")
            gds.append(gd_case(K, 3, 20, have, repeats, budget))
    print(write(final=True))


if __name__ == "__main__":
    main()
