"""Quick start: one spectral init, the reduced gradient flow at depth L, its limit, files.

    python examples/quickstart.py [--classes 8] [--depth 3] [--t-end 1e8] [--out quickstart-out]
    python examples/quickstart.py --small        # seconds (CI)

Writes ``traj.json`` (the same format as ``svdyn flow --json``), ``modes.png`` and prints the
trajectory, the classified limit and the first rows of the long-format table.
Conventions (depth, mean loss, modes): docs/conventions.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import svdyn
from svdyn.plotting import save_modes_plot


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--init-scale", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--t-end", type=float, default=1e8)
    p.add_argument("--out", default="quickstart-out")
    p.add_argument("--small", action="store_true", help="K = 4, t_end = 1e4 (CI)")
    a = p.parse_args(argv)
    if a.small:
        a.classes, a.t_end = 4, 1e4
    out = Path(a.out)

    spec = svdyn.ModelSpec(classes=a.classes, depth=a.depth)
    z0 = svdyn.random_init_z(spec, a.init_scale, np.random.default_rng(a.seed))
    traj = svdyn.flow(spec, svdyn.balanced_init(spec, z0), t_end=a.t_end)
    traj.meta.update({"init": "scale", "init_scale": a.init_scale, "seed": a.seed})
    limit = svdyn.classify_limit(traj)
    path = traj.save(out / "traj.json")
    again = svdyn.Trajectory.load(path)
    save_modes_plot(traj, out / "modes.png", live=limit.live)
    df = traj.to_pandas()
    print(traj)
    print(f"limit: {limit.label} (live modes {limit.support}, classifier error {limit.error:.3f})")
    print(df.head(8).to_string(index=False))
    return {"spec": spec, "z0": z0, "traj": traj, "limit": limit, "loaded": again,
            "table": df, "out": out}


if __name__ == "__main__":
    main()
