"""Sweep runner benchmarks (by hand; never in CI).

    python bench/sweep_bench.py overhead [--flows 10000] [--chunk 2500] [--repeat 3]
    python bench/sweep_bench.py scaling  [--samples 96] [--chunk 8] [--repeat 1]
                                         [--classifier certified|growth]

overhead: an in-process sweep of N flows (K = 8, L = 3, eps = 0.1, t_end = 100) against one
batched ``svdyn.integrate.flow`` call on the same inits (the sweep's per-chunk seeds,
concatenated); both timed end to end (sweep: grid scan, init draws, flows, Parquet writes,
manifest), alternating, best of ``--repeat``.

scaling: a classify sweep (K = 8, L = 3 and 4, eps = 0.1 and 1) with ``--executor processes``
at 1 and at 2 workers, wall time of ``svdyn.sweep.run`` (pool start and kernel warm-up
included), alternating.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def overhead(args):
    from svdyn.integrate import flow
    from svdyn.spec import ModelSpec
    from svdyn.sweep import run
    from svdyn.sweep.grid import Grid, chunk_entropy
    from svdyn.sweep.tasks import scale_inits
    raw = {"model": {"K": 8, "L": 3}, "init": {"eps": 0.1, "samples": args.flows, "seed": 0},
           "task": {"kind": "flow", "t_end": 100.0}, "run": {"chunk": args.chunk}}
    g = Grid.from_dict(raw)
    spec = ModelSpec(8, 3)
    z0 = np.concatenate([scale_inits(spec, 0.1, ch.stop - ch.start,
                                     chunk_entropy(0, ch.cell, ch.index)) for ch in g.chunks()])
    s0 = spec.balanced(z0)
    flow(spec, s0[:16], save_at=[100.0], atol=1e-12)  # load kernels
    tmp = Path(tempfile.mkdtemp())
    run(g, tmp / "warm", quiet=True, progress=False)
    t_sweep, t_flow = [], []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        tr = flow(spec, s0, save_at=[100.0], rtol=1e-9, atol=1e-12)
        t_flow.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rep = run(g, tmp / f"s{i}", quiet=True, progress=False)
        t_sweep.append(time.perf_counter() - t0)
        assert rep.computed == len(g.chunks())
    from svdyn.sweep import store
    zs = np.concatenate([store.read_chunk(tmp / "s0" / ch.relpath)["z"] for ch in g.chunks()])
    assert np.array_equal(zs, tr.z[:, -1])
    shutil.rmtree(tmp)
    print(f"{args.flows} flows, chunk {args.chunk}: batched flow {min(t_flow):.3f} s "
          f"(all {', '.join(f'{t:.3f}' for t in t_flow)}), sweep {min(t_sweep):.3f} s "
          f"(all {', '.join(f'{t:.3f}' for t in t_sweep)}); overhead "
          f"{100 * (min(t_sweep) / min(t_flow) - 1):+.1f} %; load {os.getloadavg()[0]:.1f}")


def scaling(args):
    from svdyn.sweep import run
    raw = {"model": {"K": 8}, "axes": {"L": [3, 4], "eps": [0.1, 1.0]},
           "init": {"samples": args.samples, "seed": 0},
           "task": ({"kind": "classify", "classifier": "growth", "max_end": 1e4}
                    if args.classifier == "growth" else {"kind": "classify"}),
           "run": {"chunk": args.chunk}}
    tmp = Path(tempfile.mkdtemp())
    res = {1: [], 2: []}
    for i in range(args.repeat):
        for w in (1, 2):
            t0 = time.perf_counter()
            rep = run(raw, tmp / f"w{w}_{i}", executor="processes", workers=w, quiet=True,
                      progress=False)
            res[w].append(time.perf_counter() - t0)
            assert rep.failed == 0
    shutil.rmtree(tmp)
    t1, t2 = min(res[1]), min(res[2])
    print(f"classify {4 * args.samples} rows, chunk {args.chunk}: 1 worker {t1:.1f} s, "
          f"2 workers {t2:.1f} s, speed-up {t1 / t2:.2f}x; load {os.getloadavg()[0]:.1f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("overhead", "scaling"))
    p.add_argument("--flows", type=int, default=10_000)
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--samples", type=int, default=96)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--classifier", choices=("certified", "growth"), default="certified",
                   help="scaling: the classify task's classifier (README numbers: growth)")
    a = p.parse_args()
    if a.what == "overhead":
        a.chunk = a.chunk or 2500
        overhead(a)
    else:
        a.chunk = a.chunk or 8
        scaling(a)


if __name__ == "__main__":
    main()
