"""Reduced exact GD vs full-matrix torch GD (CPU, float64, width d = K, L = 3, same steps).

    python bench/gd_vs_torch.py [--sizes 64,256,1024] [--steps 20]

Both run the same number of steps from the same spectral start; the ratio is
full seconds / reduced seconds, measured in the same process.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import best_of, header, table  # noqa: E402

from svdyn import fullmodel  # noqa: E402
from svdyn.descent import descend  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="64,256,1024")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--depth", type=int, default=3)
    a = ap.parse_args(argv)
    import torch

    rows = []
    for K in (int(k) for k in a.sizes.split(",")):
        spec = ModelSpec(K, a.depth)
        z0 = 0.5 * np.random.default_rng(0).uniform(0.5, 1.5, K)
        z0[0] = 0
        s0 = spec.balanced(z0)
        descend(spec, s0, 0.5, 2)  # compile
        t_red = best_of(lambda: descend(spec, s0, 0.5, a.steps, save_every=a.steps), 5)
        dev = torch.device("cpu")
        factors = fullmodel.build_spectral_factors(spec, s0, K, seed=0, device=dev)

        def run_full():
            fullmodel.gd(spec, [f.clone() for f in factors], 0.5, a.steps, save_every=a.steps)

        t_full = best_of(run_full, 1 if K >= 1024 else 2)
        rows.append({"K": K, "L": a.depth, "d": K, "steps": a.steps,
                     "reduced_s": t_red, "torch_full_s": t_full, "ratio": t_full / t_red,
                     "torch_threads": torch.get_num_threads()})
        print(rows[-1], flush=True)
    print(header("Reduced GD vs full-matrix torch GD (cpu, float64)"))
    print(table(rows))


if __name__ == "__main__":
    main()
