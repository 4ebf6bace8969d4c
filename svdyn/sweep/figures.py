"""Standard sweep figures (matplotlib, Agg): one function per task, driven by the summary.

* classify: ``nc_fraction[_<other axes>].png`` -- heatmap of the NC fraction over (L, eps),
  one panel per K, each cell annotated (fraction of the decided starts; the undecided count in
  the title); ``rank_hist_K<K>[...].png`` -- per L, the rank distribution of the decided
  starts over eps as stacked bars.
* basin_k4: ``basin_map[...].png`` -- per L, the limit rank over (eps, r) (square code = rank 2,
  NC = rank 3; undecided points marked x).
* critical: ``critical_winner[_lam=...].png`` -- the lowest-loss family over (K, L).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from .grid import format_value


def _groups(summ, keep: tuple):
    """Split the summary rows by the values of the axes not in ``keep``:
    ``[(suffix, {other axis: value}, rows)]``."""
    others = [a for a in summ.axes if a not in keep]
    vals = {a: sorted({r[a] for r in summ.rows}) for a in others}
    out = []
    for combo in itertools.product(*(vals[a] for a in others)):
        sel = dict(zip(others, combo))
        rows = [r for r in summ.rows if all(r[a] == v for a, v in sel.items())]
        suffix = "".join(f"_{a}={format_value(v)}" for a, v in sel.items())
        out.append((suffix, sel, rows))
    return out


def _val(row, key, fixed):
    return row[key] if key in row else fixed.get(key)


def _eps_label(e):
    """Two significant digits, plain decimals from 1e-4 to 1e4 (0.001, 0.0032, 0.32, 1)."""
    return f"{e:.2g}" if 1e-4 <= e < 1e4 else f"{e:.1e}"


def _nc_heatmaps(summ, grid_params, fig_dir):
    import matplotlib.pyplot as plt

    from ..plotting import save_figure
    paths = []
    for suffix, sel, rows in _groups(summ, ("K", "L", "eps")):
        Ks = sorted({_val(r, "K", grid_params) for r in rows})
        fig, axes = plt.subplots(1, len(Ks), figsize=(4.6 * len(Ks) + 0.8, 3.9), squeeze=False)
        im = None
        for ax, K in zip(axes[0], Ks):
            rk = [r for r in rows if _val(r, "K", grid_params) == K]
            Ls = sorted({_val(r, "L", grid_params) for r in rk})
            es = sorted({_val(r, "eps", grid_params) for r in rk})
            A = np.full((len(Ls), len(es)), np.nan)
            for r in rk:
                if r.get("count"):
                    A[Ls.index(_val(r, "L", grid_params)),
                      es.index(_val(r, "eps", grid_params))] = r["nc_fraction"]
            im = ax.imshow(A, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1)
            for i, j in itertools.product(range(len(Ls)), range(len(es))):
                if np.isfinite(A[i, j]):
                    ax.text(j, i, f"{A[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="w" if A[i, j] < 0.6 else "k")
            ax.set_xticks(range(len(es)), [_eps_label(e) for e in es], fontsize=7,
                          rotation=45)
            ax.set_yticks(range(len(Ls)), [str(L) for L in Ls])
            ax.set_xlabel("init scale eps")
            ax.set_ylabel("depth L")
            n = sum(r.get("count", 0) for r in rk)
            u = sum(r.get("undecided", 0) for r in rk)
            ax.set_title(f"K = {K}: NC fraction of decided\n({n} inits, {u} undecided)",
                         fontsize=9)
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, label="NC fraction (decided)")
        fig.suptitle("limit classification" + (f" ({suffix[1:]})" if suffix else ""),
                     fontsize=10, y=1.04)
        paths.append(_save(fig, fig_dir / f"nc_fraction{suffix}.png", tight=False))
        plt.close(fig)
    return paths


def _save(fig, path, tight=True):
    from ..plotting import save_figure
    if tight:
        return save_figure(fig, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _rank_hists(summ, grid_params, fig_dir):
    import matplotlib.pyplot as plt
    paths = []
    for suffix, sel, rows in _groups(summ, ("L", "eps")):
        Ls = sorted({_val(r, "L", grid_params) for r in rows})
        es = sorted({_val(r, "eps", grid_params) for r in rows})
        ranks = sorted({int(p.split(":")[0]) for r in rows if r.get("rank_hist")
                        for p in r["rank_hist"].split()})
        if not ranks:
            continue
        cmap = plt.get_cmap("tab10" if len(ranks) <= 10 else "viridis")
        colour = ((lambda i: cmap(i)) if len(ranks) <= 10 else
                  (lambda i: cmap(i / max(len(ranks) - 1, 1))))  # spread over the map
        cols = min(len(Ls), 4)
        nrow = (len(Ls) + cols - 1) // cols
        fig, axes = plt.subplots(nrow, cols, figsize=(3.4 * cols, 2.7 * nrow + 0.6),
                                 squeeze=False)
        for k, L in enumerate(Ls):
            ax = axes[k // cols][k % cols]
            bottom = np.zeros(len(es))
            for ri, rank in enumerate(ranks):
                h = np.zeros(len(es))
                for r in rows:
                    if _val(r, "L", grid_params) != L or not r.get("decided"):
                        continue
                    d = dict(map(int, p.split(":")) for p in r["rank_hist"].split())
                    h[es.index(_val(r, "eps", grid_params))] = d.get(rank, 0) / r["decided"]
                ax.bar(range(len(es)), h, bottom=bottom, color=colour(ri),
                       label=f"rank {rank}")
                bottom += h
            ax.set_xticks(range(len(es)), [_eps_label(e) for e in es], fontsize=7,
                          rotation=45)
            ax.set_ylim(0, 1)
            ax.set_title(f"L = {L}", fontsize=9)
            ax.set_xlabel("eps", fontsize=8)
            ax.set_ylabel("fraction of decided", fontsize=8)
        for k in range(len(Ls), nrow * cols):
            axes[k // cols][k % cols].axis("off")
        h, lab = axes[0][0].get_legend_handles_labels()
        fig.legend(h, lab, loc="upper right", fontsize=7, ncol=min(len(ranks), 6))
        fig.suptitle("limit rank distribution" + (f" ({suffix[1:]})" if suffix else ""),
                     fontsize=10, x=0.3)
        paths.append(_save(fig, fig_dir / f"rank_hist{suffix}.png"))
    return paths


def _basin_maps(summ, cells, grid_params, fig_dir):
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    paths = []
    by = {}
    for cell, cols, _ in cells:
        if len(cols.get("r", [])):
            by[cell.index] = (cell, cols)
    for suffix, sel, rows in _groups(summ, ("L", "eps")):
        keep = [(c, cols) for c, cols in by.values()
                if all(c.params.get(a) == v for a, v in sel.items())]
        if not keep:
            continue
        Ls = sorted({c.params["L"] for c, _ in keep})
        fig, axes = plt.subplots(1, len(Ls), figsize=(4.2 * len(Ls), 3.6), squeeze=False)
        cmap = ListedColormap(["#d95f02", "#1b9e77"])
        for ax, L in zip(axes[0], Ls):
            kl = [(c, cols) for c, cols in keep if c.params["L"] == L]
            es = sorted({c.params["eps"] for c, _ in kl})
            rs = sorted({float(x) for _, cols in kl for x in cols["r"]})
            A = np.full((len(es), len(rs)), np.nan)
            und = []
            for c, cols in kl:
                i = es.index(c.params["eps"])
                for r, nc, dec in zip(cols["r"], cols["nc"], cols["decided"]):
                    j = rs.index(float(r))
                    A[i, j] = (1.0 if nc else 0.0) if dec else np.nan
                    if not dec:
                        und.append((j, i))
            ext = [rs[0], rs[-1], 0, len(es)]
            ax.imshow(A, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=1,
                      extent=[rs[0], rs[-1], -0.5, len(es) - 0.5], interpolation="nearest")
            if und:
                uj, ui = zip(*und)
                ax.plot([rs[j] for j in uj], ui, "kx", ms=3, label="undecided")
                ax.legend(fontsize=6, loc="upper right")
            step = max(1, len(es) // 8)
            ax.set_yticks(range(0, len(es), step), [_eps_label(es[i])
                                                    for i in range(0, len(es), step)],
                          fontsize=7)
            ax.set_xlabel("r  (z(0) = eps (0, 1, 1, r))")
            ax.set_ylabel("eps")
            ax.set_title(f"L = {L}: NC (green) vs square code (orange)", fontsize=9)
            del ext
        paths.append(_save(fig, fig_dir / f"basin_map{suffix}.png"))
    return paths


def _critical_winners(summ, grid_params, fig_dir):
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    paths = []
    for suffix, sel, rows in _groups(summ, ("K", "L")):
        Ks = sorted({_val(r, "K", grid_params) for r in rows})
        Ls = sorted({_val(r, "L", grid_params) for r in rows})
        names = sorted({r["winner"] for r in rows if r.get("winner")})
        if not names:
            continue
        A = np.full((len(Ls), len(Ks)), np.nan)
        for r in rows:
            if r.get("winner"):
                A[Ls.index(_val(r, "L", grid_params)), Ks.index(_val(r, "K", grid_params))] = \
                    names.index(r["winner"])
        base = plt.get_cmap("tab10")
        cmap = ListedColormap([base(i % 10) for i in range(len(names))])
        fig, ax = plt.subplots(figsize=(1.1 * len(Ks) + 2.6, 0.55 * len(Ls) + 1.8))
        ax.imshow(A, origin="lower", aspect="auto", cmap=cmap, vmin=-0.5,
                  vmax=len(names) - 0.5)
        for r in rows:
            if r.get("winner"):
                ax.text(Ks.index(_val(r, "K", grid_params)), Ls.index(_val(r, "L", grid_params)),
                        f"{r['winner']}\nrank {r['winner_rank']}", ha="center", va="center",
                        fontsize=6)
        ax.set_xticks(range(len(Ks)), [str(k) for k in Ks])
        ax.set_yticks(range(len(Ls)), [str(L) for L in Ls])
        ax.set_xlabel("classes K")
        ax.set_ylabel("depth L")
        lam = sel.get("lam", grid_params.get("lam"))
        ax.set_title(f"lowest-loss critical family, lambda = {lam:g}", fontsize=9)
        paths.append(_save(fig, fig_dir / f"critical_winner{suffix}.png"))
    return paths


def standard_figures(summ, cells, fig_dir: Path) -> list:
    """Write the task's standard figures into ``fig_dir``; returns their paths."""
    if not summ.rows:
        return []
    fixed = cells[0][0].params if cells else {}
    if summ.task == "classify":
        return _nc_heatmaps(summ, fixed, fig_dir) + _rank_hists(summ, fixed, fig_dir)
    if summ.task == "basin_k4":
        return _basin_maps(summ, cells, fixed, fig_dir)
    if summ.task == "critical":
        return _critical_winners(summ, fixed, fig_dir)
    return []
