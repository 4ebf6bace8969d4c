"""Phase diagram over depth x init scale: how often the limit is neural collapse.

For each depth L and init scale eps, ``samples`` random balanced spectral inits
``z_j(0) = eps U(0.5, 1.5)`` are classified (NC or a rank-r softmax code, by continuing each flow
in normalised time); the figure shows the NC fraction, the JSON every number.

    python examples/phase_diagram.py [--classes 8] [--depths 2,3,4,6] [--scales 1,0.1,0.01]
                                     [--samples 64] [--out phase-out]
    python examples/phase_diagram.py --small     # K = 4, 2 depths x 2 scales x 8 samples (CI)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import svdyn
from svdyn.plotting import save_figure
from svdyn.progress import track


def _floats(text):
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--depths", default="2,3,4,6")
    p.add_argument("--scales", default="1,0.1,0.01")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="phase-out")
    p.add_argument("--small", action="store_true")
    a = p.parse_args(argv)
    if a.small:
        a.classes, a.depths, a.scales, a.samples = 4, "2,4", "1,0.01", 8
    depths = [int(d) for d in _floats(a.depths)]
    scales = _floats(a.scales)
    out = Path(a.out)

    frac = np.zeros((len(depths), len(scales)))
    mean_rank = np.zeros_like(frac)
    runs = []
    cells = [(i, L, j, e) for i, L in enumerate(depths) for j, e in enumerate(scales)]
    for i, L, j, eps in track(cells, "phase diagram", unit="cell"):
        mc = svdyn.monte_carlo(a.classes, L, eps, a.samples, seed=a.seed)
        frac[i, j], mean_rank[i, j] = mc.nc_fraction, mc.mean_rank
        runs.append(mc.to_dict())
        print(f"L={L} eps={eps:g}: NC fraction {mc.nc_fraction:.3f}, mean rank "
              f"{mc.mean_rank:.2f}, undecided {mc.undecided}")

    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * len(scales), 1.2 + 0.7 * len(depths)))
    im = ax.imshow(frac, cmap="viridis", vmin=0, vmax=1, aspect="auto", origin="lower")
    for i in range(len(depths)):
        for j in range(len(scales)):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="w" if frac[i, j] < 0.6 else "k")
    ax.set_xticks(range(len(scales)), [f"{e:g}" for e in scales])
    ax.set_yticks(range(len(depths)), [str(L) for L in depths])
    ax.set_xlabel("init scale $\\varepsilon$")
    ax.set_ylabel("depth L")
    ax.set_title(f"K = {a.classes}: fraction of {a.samples} inits reaching NC", fontsize=9)
    fig.colorbar(im, ax=ax, label="NC fraction")
    save_figure(fig, out / "phase.png")
    (out / "phase.json").write_text(json.dumps({"depths": depths, "scales": scales,
                                                "nc_fraction": frac.tolist(),
                                                "mean_rank": mean_rank.tolist(),
                                                "runs": runs}))
    return {"depths": depths, "scales": scales, "nc_fraction": frac, "mean_rank": mean_rank,
            "classes": a.classes, "samples": a.samples, "seed": a.seed, "out": out}


if __name__ == "__main__":
    main()
