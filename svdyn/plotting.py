"""Matplotlib figures (Agg backend; nothing opens a window)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_modes(traj, ax=None, title: str | None = None):
    """z_j(t) of the non-constant modes on a log-time axis (one line per distinct mode)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    t, z = np.asarray(traj.times), np.asarray(traj.z)
    keep = t > 0
    K = z.shape[-1]
    seen = set()
    for j in range(1, K):
        p = int(traj.spec.G.partner[j])
        if p in seen:
            continue
        seen.add(j)
        ax.plot(t[keep], z[keep, j], lw=1.2, label=f"z{j}" + (f"=z{p}" if p != j else ""))
    ax.set_xscale("log")
    ax.set_xlabel("t (gradient-flow time)" if traj.kind == "flow" else "step")
    ax.set_ylabel("logit singular value z_j")
    ax.set_title(title or f"K={traj.spec.K}, L={traj.spec.L}, {traj.spec.loss}")
    if K <= 16:
        ax.legend(fontsize=6, ncol=2)
    return ax


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Tight layout, create the parent folder, write the PNG, close the figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_modes_plot(traj, path, title: str | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    plot_modes(traj, ax, title)
    return save_figure(fig, path)


def save_grid_plot(trajs, path, titles=None) -> Path:
    """One panel of :func:`plot_modes` per trajectory."""
    n = len(trajs)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for i, tr in enumerate(trajs):
        plot_modes(tr, axes[i // cols][i % cols], titles[i] if titles else None)
    for i in range(n, rows * cols):
        axes[i // cols][i % cols].axis("off")
    return save_figure(fig, path)
