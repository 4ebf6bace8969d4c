"""The certifier's two stiff y-clock integrators on the same starts (by hand).

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/yclock_vs_engine.py [labels]

Engine ``svdyn.integrate.flow_y(method="rodas4")`` (Rosenbrock 4, fast-transform margins) vs
``svdyn.analysis.yclock.stiff_flow_y`` (Rosenbrock 2(3), dense K x K margins), walsh,
z_j = eps U(0.5, 1.5), the stops ``certify.y_stops(L)``, rtol 1e-8, atol 1e-30 (what
``certify_limit`` passes). CPU seconds by ``time.process_time`` after a compile warm-up.
With ``labels``: ``certify_limit`` labels with either clock on 100 starts, K = 8, L = 3, 4.
"""
import sys
import time

import numpy as np

from svdyn.analysis import certify
from svdyn.analysis.certify import certify_limit, y_stops
from svdyn.analysis.yclock import stiff_flow_y
from svdyn.integrate import flow_y
from svdyn.spec import ModelSpec, random_init_z

RTOL, ATOL = 1e-8, 1e-30


def cell(K, L, eps=0.01, B=16, seed=0):
    spec = ModelSpec(K, L)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=B)
    st = y_stops(L)
    flow_y(spec, z, st, rtol=RTOL, atol=ATOL)  # compile (the parallel kernel at B >= 8)
    stiff_flow_y(spec, z, st, rtol=RTOL, atol=ATOL)
    t0 = time.process_time()
    o = flow_y(spec, z, st, rtol=RTOL, atol=ATOL)
    te = time.process_time() - t0
    t0 = time.process_time()
    a, sa, steps, _ = stiff_flow_y(spec, z, st, rtol=RTOL, atol=ATOL)
    ty = time.process_time() - t0
    mv = np.isfinite(a[0, 0])
    rel = np.abs(o.y[:, :, mv] / a[:, :, mv] - 1)
    ok_e = int(np.sum(o.status == 0))
    ok_y = sum(s == "ok" for s in sa)
    print(f"| {K} | {L} | {eps:g} | {B} | {np.median(o.steps):.0f} ({o.steps.max()}) | "
          f"{np.median(steps):.0f} ({steps.max()}) | {te:.3f} | {ty:.3f} | {te / ty:.2f} | "
          f"{np.nanmax(rel):.1e} | {ok_e}/{ok_y} |", flush=True)


def yclock_clock(spec, z0, stops, rtol, atol):
    y, status, steps, _ = stiff_flow_y(spec, z0, stops, rtol=rtol)
    return y, status, steps


def engine_clock(spec, z0, stops, rtol, atol):
    """certify._clock's contract on the engine's flow_y (rodas4): stops at or above a start's
    min_j y_j(0) record the start itself (the engine refuses a start past its first stop)."""
    B, K = z0.shape
    S = len(stops)
    mv = certify._moving(spec, z0)
    with np.errstate(divide="ignore"):
        y0 = np.where(mv, z0, 1.0) ** (-(spec.L - 2.0) / spec.L)
    y0 = np.where(mv, y0, np.inf)
    passed = np.sum(stops[None, :] >= y0.min(axis=1)[:, None], axis=1)
    y = np.full((B, S, K), np.nan)
    status = ["ok"] * B
    steps = np.zeros(B, int)
    for p in np.unique(passed):
        sel = np.nonzero(passed == p)[0]
        y[sel, :p] = y0[sel, None, :]
        if p == S:
            continue
        o = flow_y(spec, z0[sel], stops[p:], rtol=rtol, atol=atol)
        y[sel, p:] = o.y
        steps[sel] = o.steps
        for k, i in enumerate(sel):
            status[i] = "ok" if o.status[k] == 0 else o.message[k]
    return y, status, steps


def labels(K=8, L=3, eps=0.01, B=100, seed=5):
    spec = ModelSpec(K, L)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=B)
    old = certify._clock
    res, cpu = {}, {}
    for name, clk in (("yclock", yclock_clock), ("engine", engine_clock)):
        certify._clock = clk
        try:
            certify_limit(spec, z[:10], is_z=True)
            t0 = time.process_time()
            res[name] = certify_limit(spec, z, is_z=True)
            cpu[name] = time.process_time() - t0
        finally:
            certify._clock = old
    a, b, ty, te = res["yclock"], res["engine"], cpu["yclock"], cpu["engine"]
    same = sum(x == y for x, y in zip(a.label, b.label))
    print(f"K={K} L={L} eps={eps:g} B={B}: same label {same}/{B}; undecided yclock "
          f"{a.undecided}, engine {b.undecided}; certify CPU s yclock {ty:.2f}, engine {te:.2f}",
          flush=True)
    for i in np.nonzero([x != y for x, y in zip(a.label, b.label)])[0][:5]:
        print(f"   start {i}: yclock {a.label[i]} ({a.reason[i]}) | engine {b.label[i]} "
              f"({b.reason[i]})")


if __name__ == "__main__":
    if sys.argv[1:] == ["labels"]:
        for L in (3, 4):
            for eps in (0.01, 0.1):
                labels(8, L, eps)
    else:
        print("| K | L | eps | B | engine steps med (max) | yclock steps med (max) | "
              "engine CPU s | yclock CPU s | ratio | max rel diff y | ok e/y |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for K, L in ((4, 3), (4, 4), (8, 3), (16, 3)):
            cell(K, L)
