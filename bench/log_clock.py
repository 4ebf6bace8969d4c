"""The log clock (``flow(log_time=True)``) against the t clock: work-precision and the step law.

    python bench/log_clock.py [--quick]

Work-precision: for walsh ce flows (the first start of bench/peers.py's batches), dop853 at rtol 1e-7 .. 1e-11
on both clocks: attempted steps (accepted + rejected), the error at t_end against svdyn at rtol
1e-13 on the t clock, and the CPU time of one flow (best of interleaved rounds). Step law:
accepted steps against log10 t_end (1e2 .. 1e12) on both clocks, with a least-squares line.
Counts are exact and machine-independent; the times are this machine's.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import table  # noqa: E402
from peers import start as peer_starts  # noqa: E402

from svdyn.integrate import flow  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402

RTOLS = (1e-7, 1e-8, 1e-9, 1e-10, 1e-11)
CASES = ((4, 2, 1e7), (16, 2, 1e7), (64, 4, 1e7), (256, 2, 1e7), (16, 3, 1e12), (8, 3, 1e3))


def start(spec):
    """The first of bench/peers.py's batch starts (z_j = 0.5 U(0.5, 1.5), z_0 = 0, seed 1)."""
    return peer_starts(spec, 1, seed=1)[0]


def cpu_us(fn, rounds):
    best = float("inf")
    for _ in range(rounds):
        n, c0 = 0, time.process_time()
        while True:
            fn()
            n += 1
            dt = time.process_time() - c0
            if dt > 0.02:
                break
        best = min(best, dt / n * 1e6)
    return best


def work_precision(cases, rtols, rounds):
    rows = []
    for K, L, T in cases:
        spec = ModelSpec(K, L)
        s0 = start(spec)
        ref = flow(spec, s0, save_at=[T], rtol=1e-13, atol=1e-16).s[-1]
        for rtol in rtols:
            atol = 1e-12 if rtol > 1e-10 else 1e-15
            cells = []
            runs = []
            for log_time in (False, True):
                def one(log_time=log_time):
                    return flow(spec, s0, save_at=[T], rtol=rtol, atol=atol,
                                log_time=log_time)
                tr = one()
                assert tr.status == "ok", tr.status
                err = np.abs(tr.s[-1] - ref).max() / np.abs(ref).max()
                att = tr.stats["accepted_steps"][0] + tr.stats["rejected_steps"][0]
                cells += [att, err]
                runs.append(one)
            us = [float("inf"), float("inf")]
            for _ in range(rounds):   # interleaved: both clocks see the same load
                for j, fn in enumerate(runs):
                    us[j] = min(us[j], cpu_us(fn, 1))
            rows.append([K, L, f"{T:g}", f"{rtol:g}", cells[0], cells[1], us[0], cells[2],
                         cells[3], us[1]])
    return rows


def step_law(K, L, ends):
    spec = ModelSpec(K, L)
    s0 = start(spec)
    out = {}
    for log_time in (False, True):
        n = [flow(spec, s0, save_at=[T], rtol=1e-9, log_time=log_time)
             .stats["accepted_steps"][0] for T in ends]
        slope, icept = np.polyfit(np.log10(ends), n, 1)
        out[log_time] = (n, icept, slope)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two cases, three tolerances")
    a = ap.parse_args()
    cases = CASES[:2] if a.quick else CASES
    rtols = RTOLS[1:4] if a.quick else RTOLS
    rounds = 3 if a.quick else 7
    flow(ModelSpec(4, 2), start(ModelSpec(4, 2)), 1.0, log_time=True)   # compile
    print("### Work-precision, dop853, walsh ce: attempted steps, error at t_end, CPU us\n")
    head = ["K", "L", "t_end", "rtol", "t: steps", "t: err", "t: us", "log: steps", "log: err",
            "log: us"]
    print(table([dict(zip(head, r)) for r in work_precision(cases, rtols, rounds)]))
    ends = [1e2, 1e4, 1e6, 1e8, 1e10, 1e12]
    print("\n### Accepted steps against t_end (K = 16, L = 3, dop853, rtol 1e-9)\n")
    law = step_law(16, 3, ends)
    rows = [["t" if not lt else "log", *n, f"{icept:.1f} + {slope:.2f} log10 t_end"]
            for lt, (n, icept, slope) in law.items()]
    head = ["clock", *[f"{T:g}" for T in ends], "fit"]
    print(table([dict(zip(head, r)) for r in rows]))


if __name__ == "__main__":
    main()
