"""Figures (matplotlib): mode plots, basin maps, max-margin costs, width effects, validation.

Importing this module never changes the matplotlib backend: a notebook keeps
``%matplotlib inline``; scripts and the CLI choose a headless backend through the environment
(``MPLBACKEND=Agg``, set by ``scripts/*.sh`` and CI). The output format follows the file suffix
(``.png``, ``.pdf``, ``.svg``). Each ``plot_*`` function draws on an ``ax`` (created if None) and
returns it; each ``save_*`` function writes a file and returns its path.

Quantities and their names (s, z, modes, depth, time units): ``docs/conventions.md``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
LIVE_REL = 0.1     # a mode is drawn as live when z_j(T) >= LIVE_REL * max_j z_j(T)
MODE_CMAP = "viridis"


def _plt():
    import matplotlib.pyplot as plt  # the backend is whatever the user / MPLBACKEND chose

    return plt


def _new_ax(ax, figsize):
    if ax is not None:
        return ax
    return _plt().subplots(figsize=figsize)[1]


def save_figure(fig, path, dpi: int = 150) -> Path:
    """Tight layout, create the parent folder, write in the format of the suffix, close.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Ends in ``.png``, ``.pdf`` or ``.svg``.
    dpi : int, optional
        Resolution of raster output.

    Returns
    -------
    Path
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        _plt().close(fig)
        raise ValueError(f"figure file {str(path)!r}: unknown suffix {path.suffix!r}; use "
                         + ", ".join(FORMATS))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format=fmt)
    _plt().close(fig)
    return path


# ----------------------------------------------------------------------------- modes
def _distinct_modes(G, K):
    """Non-constant modes, one per pair (cyclic partners carry equal values)."""
    out, seen = [], set()
    for j in range(1, K):
        p = int(G.partner[j])
        if p in seen:
            continue
        seen.add(j)
        out.append((j, p))
    return out


def _mode_cmap():
    from matplotlib.colors import ListedColormap

    return ListedColormap(_plt().get_cmap(MODE_CMAP)(np.linspace(0.0, 0.92, 256)))


def _mode_colors(K):
    cmap = _mode_cmap()
    return lambda j: cmap((j - 1) / max(K - 2, 1))


def plot_modes(traj, ax=None, title: str | None = None, live=None, legend: bool = True):
    """z_j(t) of the non-constant modes on a log-time axis.

    Colour = mode index (a colormap, so K = 64 stays readable); solid lines = live modes,
    dashed = dying ones. One line per distinct mode (cyclic partners are drawn once).

    Parameters
    ----------
    traj : Trajectory
        One trajectory (``s`` of shape (T, L, K)).
    ax : matplotlib Axes, optional
    title : str, optional
    live : array_like of bool, shape (K,) or (K-1,), optional
        Which modes are live (e.g. ``classify_limit(traj).live``); default: ``z_j(T) >= 0.1
        max z(T)`` at the last finite saved state.
    legend : bool, optional

    Returns
    -------
    matplotlib Axes
    """
    plt = _plt()
    from matplotlib.lines import Line2D

    ax = _new_ax(ax, (5.5, 3.8))
    t, z = np.asarray(traj.times, float), np.asarray(traj.z, float)
    keep = t > 0
    K = z.shape[-1]
    fin = np.all(np.isfinite(z), axis=-1)
    zT = z[np.nonzero(fin)[0][-1]] if fin.any() else np.zeros(K)
    given = live is not None
    if live is None:
        live = zT >= LIVE_REL * max(zT[1:].max(), 1e-300)
    else:
        live = np.asarray(live, bool)
        live = np.r_[False, live] if live.size == K - 1 else live
    color = _mode_colors(K)
    modes = _distinct_modes(traj.spec.G, K)
    few = len(modes) <= 8
    for j, p in modes:
        lab = (f"$z_{{{j}}}$" + (f" = $z_{{{p}}}$" if p != j else "")) if few else None
        ax.plot(t[keep], z[keep, j], color=color(j), lw=1.5 if live[j] else 1.0,
                ls="-" if live[j] else "--", alpha=1.0 if live[j] else 0.8, label=lab)
    ax.set_xscale("log")
    ax.set_xlabel("t (gradient-flow time)" if traj.kind == "flow" else "gradient-descent step")
    ax.set_ylabel("logit singular value $z_j$")
    sp = traj.spec
    ax.set_title(title or f"K={sp.K}, L={sp.L}, {sp.group}, {sp.loss}", fontsize=10)
    if legend:
        n_live = int(np.sum(live[1:]))
        if given:
            names = (f"live ({n_live})", f"dying ({K - 1 - n_live})")
        else:
            names = (f"$z_j(T) \\geq$ {LIVE_REL:g} max ({n_live})",
                     f"$z_j(T) <$ {LIVE_REL:g} max ({K - 1 - n_live})")
        style = [Line2D([], [], color="0.3", lw=1.5, ls="-", label=names[0]),
                 Line2D([], [], color="0.3", lw=1.0, ls="--", label=names[1])]
        style = [h for h, n in zip(style, (n_live, K - 1 - n_live)) if n > 0]
        if few:
            h, _ = ax.get_legend_handles_labels()
            ax.legend(handles=h + style, fontsize=7, ncol=2, loc="best", framealpha=0.85)
        else:
            ax.legend(handles=style, fontsize=7, loc="upper left", framealpha=0.85)
            sm = plt.cm.ScalarMappable(cmap=_mode_cmap(), norm=plt.Normalize(1, K - 1))
            cb = ax.figure.colorbar(sm, ax=ax, pad=0.02, fraction=0.05)
            cb.set_label("mode index j", fontsize=8)
            cb.ax.tick_params(labelsize=7)
    return ax


def save_modes_plot(traj, path, title: str | None = None, live=None) -> Path:
    """:func:`plot_modes` into a file (format from the suffix). Returns the path."""
    fig, ax = _plt().subplots(figsize=(5.8, 3.9))
    plot_modes(traj, ax, title, live)
    return save_figure(fig, path)


def save_grid_plot(trajs, path, titles=None) -> Path:
    """One panel of :func:`plot_modes` per trajectory (two columns). Returns the path."""
    plt = _plt()
    n = len(trajs)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 3.7 * rows), squeeze=False)
    for i, tr in enumerate(trajs):
        plot_modes(tr, axes[i // cols][i % cols], titles[i] if titles else None)
    for i in range(n, rows * cols):
        axes[i // cols][i % cols].axis("off")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- basins
def plot_basin_map(m: dict, ax=None):
    """K = 4 basin map: limit of ``z(0) = eps (0, 1, 1, r)`` on an (eps, r) grid.

    Parameters
    ----------
    m : dict
        :func:`svdyn.analysis.basins.k4_map` output (``eps`` (E,), ``r`` (R,), ``rank`` (E, R),
        ``decided`` (E, R) (or the older ``error``), ``depth``), optionally ``critical`` (list of
        :func:`~svdyn.analysis.basins.k4_critical_ratio` dicts).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    plt = _plt()
    from matplotlib.colors import BoundaryNorm, ListedColormap

    ax = _new_ax(ax, (5.2, 4.0))
    eps, r = np.asarray(m["eps"], float), np.asarray(m["r"], float)
    rank = np.asarray(m["rank"], float)
    if "decided" in m:       # certified classifier: undecided points are marked
        und = ~np.asarray(m["decided"], bool)
    else:                    # growth-exponent classifier (older maps)
        und = np.asarray(m["error"], float) > 0.25
    cmap = ListedColormap(["#4575b4", "#d73027"])
    norm = BoundaryNorm([-0.5, 0.5, 1.5], 2)
    img = np.where(rank >= 3, 1.0, 0.0)
    mesh = ax.pcolormesh(eps, r, img.T, shading="nearest", cmap=cmap, norm=norm)
    cb = ax.figure.colorbar(mesh, ax=ax, ticks=[0, 1], pad=0.02)
    cb.ax.set_yticklabels(["square code\n(rank 2)", "NC\n(rank 3)"], fontsize=8)
    cb.set_label("limit of the flow", fontsize=8)
    if und.any():
        E, R = np.meshgrid(eps, r, indexing="ij")
        ax.plot(E[und], R[und], "k.", ms=2, label=f"undecided ({int(und.sum())} point"
                f"{'' if int(und.sum()) == 1 else 's'})")
    if m.get("critical"):
        ce = [c["init_scale"] for c in m["critical"]]
        cr = [c["critical_ratio"] for c in m["critical"]]
        ax.plot(ce, cr, "o-", color="white", mec="k", mew=0.6, ms=4, lw=1.2,
                label="critical ratio $r_c(\\varepsilon)$")
    if und.any() or m.get("critical"):
        ax.legend(loc="lower right", fontsize=7, framealpha=0.85)
    ax.set_xscale("log")
    ax.set_xlabel("init scale $\\varepsilon$")
    ax.set_ylabel("ratio $r$")
    ax.set_title(f"K = 4 (walsh), depth L = {m['depth']}: "
                 "$z(0) = \\varepsilon\\,(0, 1, 1, r)$", fontsize=9)
    return ax


def save_basin_map(m: dict, path) -> Path:
    """:func:`plot_basin_map` into a file. Returns the path."""
    fig, ax = _plt().subplots(figsize=(5.4, 4.0))
    plot_basin_map(m, ax)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- max margin
def _regime_cost(z, Ls):
    z = np.asarray(z, float)
    v = z[z > 1e-12]
    return np.array([np.sum(v ** (2.0 / L)) for L in Ls])


def maxmargin_cost_curves(results, Ls):
    """Optimal cost / NC cost over depth from :func:`svdyn.analysis.maxmargin.solve` dicts.

    Parameters
    ----------
    results : list of dict
        ``solve`` outputs (each with ``regimes``, ``crossovers``, ``classes``, ``nc_cost``).
    Ls : array_like, shape (D,)
        Depths.

    Returns
    -------
    list of dict
        ``{"classes", "group", "L" (D,), "ratio" (D,), "crossovers" (C,), "exact"}``.
    """
    from .analysis.maxmargin import nc_cost

    Ls = np.asarray(Ls, float)
    out = []
    for res in results:
        K = res["classes"]
        ratio = np.full(Ls.shape, np.inf)
        for reg in res["regimes"]:
            ratio = np.minimum(ratio, _regime_cost(reg["z"], Ls))
        nc = np.array([nc_cost(K, L, res.get("samples_per_class", 1)) for L in Ls])
        out.append({"classes": K, "group": res["group"], "L": Ls, "ratio": ratio / nc,
                    "crossovers": np.array([c["depth"] for c in res["crossovers"]], float),
                    "exact": bool(res["exact"])})
    return out


def plot_maxmargin_cost(curves, ax=None):
    """Optimal max-margin cost / NC cost against depth, crossover depths marked.

    Parameters
    ----------
    curves : list of dict
        :func:`maxmargin_cost_curves` output.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax = _new_ax(ax, (5.8, 4.0))
    cmap = _plt().get_cmap("plasma")
    n = len(curves)
    lo, hi = min(c["L"][0] for c in curves), max(c["L"][-1] for c in curves)
    for i, c in enumerate(curves):
        col = cmap(0.85 * i / max(n - 1, 1))
        ax.plot(c["L"], c["ratio"], color=col, lw=1.5,
                label=f"K={c['classes']} {c['group']}" + ("" if c["exact"] else " (search)"))
        xs = c["crossovers"][(c["crossovers"] >= lo) & (c["crossovers"] <= hi)]
        if xs.size:
            ys = np.interp(xs, c["L"], c["ratio"])
            ax.plot(xs, ys, "o", color=col, mec="k", mew=0.6, ms=5)
            if i == 0:
                for x, y in zip(xs, ys):
                    ax.annotate(f"$L^*$={x:.3f}", (x, y), textcoords="offset points",
                                xytext=(-4, -13), ha="right", fontsize=7)
    ax.plot([], [], "o", color="0.6", mec="k", mew=0.6, ms=5, label="crossover depth")
    ax.axhline(1.0, color="k", lw=0.6, ls=":")
    ax.set_xscale("log")
    ticks = [t for t in (2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100) if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo, hi)
    ax.set_xlabel("depth L (trainable factors)")
    ax.set_ylabel("optimal cost / NC cost")
    ax.set_title("spectral max-margin problem: min $\\Sigma_j\\, z_j^{2/L}$ s.t. margins $\\geq$ 1",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower left", framealpha=0.85)
    return ax


def save_maxmargin_cost(results, path, Ls=None) -> Path:
    """Cost plot of ``solve`` results over depth 2..20 (walsh groups only). Returns the path."""
    Ls = np.geomspace(2, 20, 400) if Ls is None else Ls
    sel = sorted((r for r in results if r["group"] == "walsh"), key=lambda r: r["classes"])
    fig, ax = _plt().subplots(figsize=(5.8, 4.0))
    plot_maxmargin_cost(maxmargin_cost_curves(sel, Ls), ax)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- width
def plot_width_effect(rows, ax=None, title: str | None = None):
    """Final effective rank of the centred logits against hidden width (random init, full
    model): mean +- standard deviation over seeds, single seeds as grey dots.

    Parameters
    ----------
    rows : list of dict
        Each with ``depth``, ``width``, ``seed``, ``effective_rank``.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _new_ax(ax, (5.4, 3.8))
    for i, L in enumerate(sorted({r["depth"] for r in rows})):
        sub = [r for r in rows if r["depth"] == L]
        ws = sorted({r["width"] for r in sub})
        vals = [[r["effective_rank"] for r in sub if r["width"] == w] for w in ws]
        ns = sorted({len(v) for v in vals})
        for w, v in zip(ws, vals):
            ax.plot([w] * len(v), v, ".", color="0.65", ms=4, zorder=1)
        seeds = f"{ns[0]} seeds" if len(ns) == 1 else f"{ns[0]}-{ns[-1]} seeds"
        ax.errorbar(ws, [np.mean(v) for v in vals], yerr=[np.std(v) for v in vals],
                    fmt="o-", capsize=3, color=f"C{i}", zorder=2,
                    label=f"L={L}: mean ± std ({seeds})")
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log", base=2)
    allw = sorted({r["width"] for r in rows})
    ax.xaxis.set_major_locator(FixedLocator(allw))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("hidden width d")
    ax.set_ylabel("effective rank of centred logits")
    ax.set_title(title or "random init, full model (torch)", fontsize=9)
    ax.legend(fontsize=7, framealpha=0.85)
    return ax


def save_width_effect(rows, path, title: str | None = None) -> Path:
    """:func:`plot_width_effect` into a file. Returns the path."""
    fig, ax = _plt().subplots(figsize=(5.4, 3.8))
    plot_width_effect(rows, ax, title)
    return save_figure(fig, path)


def save_random_validation(out: dict, path) -> Path:
    """``svdyn validate --init-kind random`` sweep: effective rank against width, the NC value
    K-1 dotted. Returns the path."""
    rows = []
    for key, v in out["effective_rank_by_width"].items():
        w = max(int(t) for t in key.split(":"))
        rows += [{"depth": out["spec"]["depth"], "width": w, "seed": i, "effective_rank": e}
                 for i, e in enumerate(v["values"])]
    K = out["spec"]["classes"]
    sig = (f"{out['init_scale']}/sqrt(fan-in)" if out.get("fan_in")
           else f"{out['init_scale']}")
    fig, ax = _plt().subplots(figsize=(5.4, 3.8))
    ax.axhline(K - 1, ls=":", color="k", lw=1, label=f"NC (K-1 = {K - 1})")
    plot_width_effect(rows, ax, f"random init, K={K}, L={out['spec']['depth']}, "
                      f"$\\sigma$={sig}, {out['steps']} GD steps")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- validation
def plot_order_check(oc: dict, ax=None):
    """GD -> gradient flow: error at ``t_end`` against the step size, log-log, with the
    first-order reference slope.

    Parameters
    ----------
    oc : dict
        :func:`svdyn.fullmodel.order_check` output (``lrs``, ``errors_full``,
        ``errors_reduced``, ``order``, ``t_end``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _new_ax(ax, (4.2, 3.6))
    lr = np.asarray(oc["lrs"], float)
    ef = np.asarray(oc["errors_full"], float)
    er = np.asarray(oc["errors_reduced"], float)
    ax.loglog(lr, ef, "o", ms=6, mfc="none", color="C0",
              label=f"full torch GD (order {oc['order']:.3f})")
    ax.loglog(lr, er, "x-", ms=5, lw=0.8, color="C1", label="reduced GD map")
    ax.loglog(lr, ef[0] * lr / lr[0], ":", color="k", lw=1, label="slope 1 (Euler)")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.xaxis.set_major_locator(FixedLocator(lr))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.4g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("step size $\\eta$")
    ax.set_ylabel("$\\max|s_{GD} - s_{flow}|\\,/\\,\\max s$" + f"  at t = {oc['t_end']:g}")
    ax.set_title("GD $\\to$ gradient flow", fontsize=9)
    ax.legend(fontsize=7, framealpha=0.85)
    return ax


def save_spectral_validation(spec, r: dict, path, order: dict | None = None) -> Path:
    """Full torch GD vs the reduced engine: z_j over the steps (lines reduced, circles full),
    the deviation and leakage, and (with ``order``) the GD -> flow order check.

    Parameters
    ----------
    spec : ModelSpec
    r : dict
        :func:`svdyn.fullmodel.validate_spectral` output.
    path : str or Path
    order : dict, optional
        :func:`svdyn.fullmodel.order_check` output.

    Returns
    -------
    Path
    """
    plt = _plt()
    from matplotlib.lines import Line2D

    n = 3 if order else 2
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.8))
    a1, a2 = axes[0], axes[1]
    steps = np.asarray(r["saved_steps"], float)
    if r.get("z_reduced_series") is not None:
        zr, zf = np.asarray(r["z_reduced_series"]), np.asarray(r["z_full_series"])
        color = _mode_colors(spec.K)
        every = max(1, len(steps) // 25)
        for j, _ in _distinct_modes(spec.G, spec.K):
            a1.plot(steps, zr[:, j], "-", lw=1.2, color=color(j))
            a1.plot(steps[::every], zf[::every, j], "o", ms=3.5, mfc="none", mew=0.8,
                    color=color(j))
        a1.legend(handles=[Line2D([], [], color="0.3", lw=1.2, label="reduced engine"),
                           Line2D([], [], color="0.3", ls="", marker="o", mfc="none",
                                  label="full torch GD")], fontsize=7, loc="best")
        a1.set_ylabel("logit singular value $z_j$ (colour = mode)")
    else:
        a1.plot(steps, r["loss_reduced"], "-", lw=1.5, label="reduced engine")
        a1.plot(steps, r["loss_full"], "o", ms=3, mfc="none", label="full torch GD")
        a1.set_yscale("log")
        a1.set_ylabel("loss")
        a1.legend(fontsize=7)
    a1.set_xlabel("GD step")
    a2.semilogy(steps, np.maximum(r["rel_dev_series"], 1e-18), "-", lw=1.2,
                label="max relative deviation (s, z)")
    a2.semilogy(steps, np.maximum(r["leakage_series"], 1e-18), "--", lw=1.2,
                label="leakage out of the frames")
    a2.axhline(np.finfo(float).eps, color="0.5", lw=0.6, ls=":", label="float64 eps")
    a2.set_xlabel("GD step")
    a2.set_ylabel("relative size")
    a2.legend(fontsize=7)
    if order:
        plot_order_check(order, axes[2])
    fig.suptitle(f"K={spec.K}, L={spec.L}, {spec.group}, {spec.loss}, lr {r['lr']:g}; "
                 f"device {r['device']}: max rel. dev {r['max_rel_dev']:.1e}, "
                 f"leakage {r['max_leakage']:.1e}", fontsize=9)
    return save_figure(fig, path)
