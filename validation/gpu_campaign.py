#!/usr/bin/env python
"""GPU validation campaign: full-matrix torch training vs the reduced svdyn engine, one command.

    python validation/gpu_campaign.py --out results/campaign.json --timeout 400
    python validation/gpu_campaign.py --small --device cpu --out /tmp/c.json   # CPU smoke run

Runs a ladder of phases (spectral validation up to K = 1024, L = 4, d = 2048 for walsh, cyclic
and a product group, with and without weight decay; the GD -> flow order check; random-init
width sweeps with NC / rank metrics) until the time budget ``--timeout`` is spent. The JSON file
is rewritten after every phase, so a run that is killed still leaves its finished phases; a
phase that would overrun the budget is stopped and marked ``"timed_out"``. Needs torch, numpy,
scipy, numba; the repository root is put on ``sys.path``, so no install is needed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


class PhaseTimeout(Exception):
    pass


def phases(small: bool) -> list:
    """(name, kind, params). Spectral lr scales like K (the CE field carries 1/K)."""
    if small:
        return [
            ("spectral walsh K16 L3 d20 n2", "spectral",
             dict(K=16, L=3, n=2, group="walsh", width=20, lr=0.5, steps=200, init=1.0, wd=0.0)),
            ("spectral cyclic K6 L3 d12 wd", "spectral",
             dict(K=6, L=3, n=2, group="cyclic", width=12, lr=0.5, steps=200, init=1.0,
                  wd=1e-3)),
            ("spectral 2,5 K10 L4 d16", "spectral",
             dict(K=10, L=4, n=1, group="2,5", width=16, lr=0.5, steps=200, init=1.0, wd=0.0)),
            ("order walsh K16 L3 d20", "order",
             dict(K=16, L=3, n=2, group="walsh", width=20, lr=0.2, t_end=2.0, levels=4,
                  init=1.0, wd=0.0)),
            ("random K8 L3 widths 8,64 fan-in", "random",
             dict(K=8, L=3, n=1, widths=[8, 64], seeds=2, lr=0.5, steps=300, sigma=0.5,
                  fan_in=True)),
        ]
    return [
        ("spectral walsh K16 L3 d20 n2", "spectral",
         dict(K=16, L=3, n=2, group="walsh", width=20, lr=0.5, steps=500, init=1.0, wd=0.0)),
        ("spectral walsh K256 L4 d512 wd", "spectral",
         dict(K=256, L=4, n=2, group="walsh", width=512, lr=25.6, steps=400, init=0.5,
              wd=1e-4)),
        ("order walsh K256 L4 d512", "order",
         dict(K=256, L=4, n=1, group="walsh", width=512, lr=1.28, t_end=128.0, levels=4,
              init=1.0, wd=0.0)),
        ("spectral walsh K1024 L4 d2048", "spectral",
         dict(K=1024, L=4, n=1, group="walsh", width=2048, lr=102.4, steps=300, init=0.5,
              wd=0.0)),
        ("spectral cyclic K1024 L4 d2048 wd", "spectral",
         dict(K=1024, L=4, n=1, group="cyclic", width=2048, lr=102.4, steps=300, init=0.5,
              wd=1e-4)),
        ("spectral 4,16,16 K1024 L4 d2048", "spectral",
         dict(K=1024, L=4, n=1, group="4,16,16", width=2048, lr=102.4, steps=300, init=0.5,
              wd=0.0)),
        ("random K8 L3 widths 8,256 sigma 0.1", "random",
         dict(K=8, L=3, n=1, widths=[8, 256], seeds=3, lr=0.5, steps=3000, sigma=0.1)),
        ("random K8 L3 widths 8..2048 fan-in", "random",
         dict(K=8, L=3, n=1, widths=[8, 32, 128, 512, 2048], seeds=3, lr=0.5, steps=3000,
              sigma=0.5, fan_in=True)),
        ("random K64 L4 widths 64..2048 fan-in", "random",
         dict(K=64, L=4, n=1, widths=[64, 256, 1024, 2048], seeds=2, lr=2.0, steps=2000,
              sigma=0.5, fan_in=True)),
    ]


def run_phase(kind, p, dev, deadline, seed):
    from svdyn import fullmodel as fm
    from svdyn.spec import random_init_z
    from svdyn.spec import ModelSpec

    def progress(step, steps, loss):
        print(f"    step {step}/{steps} loss {loss:.6g}", flush=True)
        if time.monotonic() > deadline:
            raise PhaseTimeout(f"stopped at step {step}/{steps}: time budget spent")

    spec = ModelSpec(p["K"], p["L"], p["n"], "ce", (p.get("wd", 0.0),),
                     p.get("group", ""))
    if kind == "random":
        runs, summary, stopped = [], {}, None
        try:
            for w in p["widths"]:
                eff = []
                for sd in range(seed, seed + p["seeds"]):
                    r = fm.validate_random(spec, w, p["sigma"], p["lr"], p["steps"],
                                           max(1, p["steps"] // 20), sd, dev, progress,
                                           p.get("fan_in", False))
                    eff.append(r["final"]["effective_rank"])
                    runs.append({k: r[k] for k in ("widths", "seed", "seconds", "final",
                                                   "series")})
                summary[str(w)] = {"mean": float(np.mean(eff)), "std": float(np.std(eff)),
                                   "values": eff}
        except PhaseTimeout as e:  # keep the widths that finished
            if not summary:
                raise
            stopped = str(e)
        return {"effective_rank_by_width": summary, "runs": runs, "stopped": stopped}
    z = random_init_z(spec, p["init"], np.random.default_rng(seed))
    s0 = spec.balanced(z)
    if kind == "order":
        return fm.order_check(spec, s0, p["width"], p["lr"], p["t_end"], p["levels"], seed, dev,
                              progress=progress)
    big = p["K"] >= 512  # dense SVDs of 2048 x 2048 float64 matrices cost seconds: 2 of them
    r = fm.validate_spectral(spec, s0, p["width"], p["lr"], p["steps"],
                             max(1, p["steps"] // (4 if big else 10)), seed, dev, progress,
                             svd_every=1000 if big else 1)
    for k in ("loss_reduced", "loss_full", "z_final_reduced", "z_final_full",
              "z_reduced_series", "z_full_series"):
        r.pop(k, None)
    return r


def summary_line(name, kind, res) -> str:
    if "error" in res:
        return f"{name}: {res['status']}: {res['error']}"
    if kind == "spectral":
        return (f"{name}: max_rel_dev {res['max_rel_dev']:.2e} leak {res['max_leakage']:.2e} "
                f"loss_gap {res['loss_gap']:.2e} full {res['full_seconds']:.3f}s reduced "
                f"{res['reduced_seconds']:.3g}s")
    if kind == "order":
        return (f"{name}: order {res['order']:.4f} (reduced GD {res['order_reduced']:.4f}), "
                f"errors {res['errors_full'][0]:.2e}..{res['errors_full'][-1]:.2e}")
    eff = ", ".join(f"d={w}: {v['mean']:.2f}+-{v['std']:.2f}"
                    for w, v in res["effective_rank_by_width"].items())
    return f"{name}: final effective rank {eff}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--timeout", type=float, default=400.0, help="time budget in seconds")
    ap.add_argument("--small", action="store_true", help="tiny sizes (CPU smoke test)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma list of phase-name substrings to run")
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    deadline = t_start + args.timeout
    import torch
    from svdyn import fullmodel as fm
    dev = fm.resolve_device(args.device)
    if args.small and dev.type == "cpu":
        torch.set_num_threads(1)
    out = {"device": fm.device_name(dev), "dtype": fm.DTYPE_NAME, "small": args.small,
           "timeout": args.timeout, "torch": torch.__version__, "python": platform.python_version(),
           "host_cpus": os.cpu_count(), "phases": []}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)

    def save():
        out["elapsed_seconds"] = time.monotonic() - t_start
        path.write_text(json.dumps(out, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                   else str(o)))

    def watchdog():  # a phase that ignores the budget (e.g. one huge SVD): save and leave
        out["watchdog"] = "budget exceeded by 30 s; the phase in progress was abandoned"
        save()
        print(f"gpu_campaign: watchdog fired, wrote {path}", flush=True)
        os._exit(3)

    timer = threading.Timer(args.timeout + 30.0, watchdog)
    timer.daemon = True
    timer.start()
    print(f"gpu_campaign: device {out['device']}, budget {args.timeout:.0f} s", flush=True)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    lines = []
    for name, kind, p in phases(args.small):
        if only and not any(s in name for s in only):
            continue
        left = deadline - time.monotonic()
        entry = {"name": name, "kind": kind, "params": p}
        if left < 5:
            entry.update(status="skipped", error="time budget spent")
        else:
            print(f"[{time.monotonic() - t_start:6.1f} s] {name} ...", flush=True)
            t0 = time.monotonic()
            try:
                entry["result"] = run_phase(kind, p, dev, deadline, args.seed)
                entry["status"] = "ok"
            except PhaseTimeout as e:
                entry.update(status="timed_out", error=str(e))
            except Exception as e:  # record and go on with the next phase
                entry.update(status="failed", error=f"{type(e).__name__}: {e}",
                             traceback=traceback.format_exc())
            entry["seconds"] = time.monotonic() - t0
        res = entry.get("result", entry)
        line = summary_line(name, kind, res)
        lines.append(line)
        print("  " + line, flush=True)
        out["phases"].append(entry)
        save()
    spectral = [e["result"] for e in out["phases"] if e["kind"] == "spectral"
                and e["status"] == "ok"]
    if spectral:
        out["max_rel_dev"] = max(r["max_rel_dev"] for r in spectral)
        out["max_leakage"] = max(r["max_leakage"] for r in spectral)
        out["loss_gap"] = max(r["loss_gap"] for r in spectral)
    timer.cancel()
    save()
    print("\nsummary (" + out["device"] + ", float64):")
    for line in lines:
        print("  " + line)
    if spectral:
        print(f"  overall: max_rel_dev {out['max_rel_dev']:.2e}, max_leakage "
              f"{out['max_leakage']:.2e}, loss_gap {out['loss_gap']:.2e}")
    print(f"wrote {path} ({out['elapsed_seconds']:.0f} s)")
    return 0 if all(e["status"] == "ok" for e in out["phases"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
