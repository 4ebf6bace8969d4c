"""Assemble ``validation/REPORT.md``: every checkable claim of [H], [D], [P], [U] with the
numbers that test it, section by section.

Regenerate with ``svdyn report`` (writes ``validation/REPORT.md`` and ``validation/figures/``);
``svdyn report --only h,basins`` recomputes only those sections (see :func:`parse_only`).
``svdyn report --quick`` runs the same pipeline on small grids (smoke test, not committed).
"""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from .. import __version__

DEPTHS_MAP = (2, 3, 4, 6)


def _plt():
    from ..plotting import _plt as plt_
    return plt_()


def plot_k4_map(m: dict, path) -> Path:
    """Figure of a K = 4 basin map (eps log axis, r linear axis): NC vs square code."""
    from ..plotting import save_basin_map
    return save_basin_map(m, path)


def _plot_crossovers(tables: dict, path) -> Path:
    """Optimal cost / NC cost against depth for the walsh groups."""
    plt = _plt()
    from .maxmargin import _profiles, make_group, vertices
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    Ls = np.geomspace(2, 20, 300)
    for K in (4, 8, 16, 32):
        G = make_group("walsh", K)
        X, cls, exact, _ = vertices(G)
        profs = _profiles(G, X, cls, 1)
        best = [min(np.sum(p["values"] ** (2 / L)) for p in profs) / (K - 1) for L in Ls]
        ax.plot(Ls, best, label=f"K={K}" + ("" if exact else " (search)"))
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("depth L")
    ax.set_ylabel("optimal cost / NC cost")
    ax.set_title("spectral max-margin optimum (walsh)", fontsize=9)
    ax.legend(fontsize=8)
    from ..plotting import save_figure
    return save_figure(fig, path, dpi=110)


def _md_table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ============================================================================ sections
#
# The report is a fixed sequence of sections. Each section function computes its numbers and
# returns a :class:`Section` (markdown body + its rows of the summary table + data files). The
# markdown of each section sits between ``<!-- svdyn-report:KEY -->`` markers in REPORT.md and
# the summary rows in ``FIGURES/summary.json``, so ``svdyn report --only KEY,...`` recomputes
# only those sections and keeps the others as they are. No wall time and no time-capped solver
# result is written to a tracked file (timings go to stderr); every random draw is seeded, so
# regenerating on an unchanged tree rewrites the same bytes.

from dataclasses import dataclass, field as _field

SUMMARY_HEADER = ["paper", "claim", "verdict", "evidence (numbers)", "command"]


@dataclass
class Section:
    key: str
    markdown: str
    summary: list = _field(default_factory=list)   # rows of SUMMARY_HEADER
    files: dict = _field(default_factory=dict)     # name -> JSON-able data (written to figures)


@dataclass
class Context:
    figures: Path
    rel: Path
    quick: bool = False
    device: str = "auto"
    sweeps: object = None     # report_sweeps.SweepSettings: where / how grid studies run

    def sweep(self, study: str, raw: dict):
        """Run (or resume) a grid study through the sweep runner: ``(grid, cells)``."""
        from .report_sweeps import SweepSettings, run_study
        if self.sweeps is None:
            self.sweeps = SweepSettings(self.figures / "sweeps")
        grid, cells, _, _ = run_study(self.sweeps, study, raw, self.quick)
        return grid, cells


def _strip_seconds(obj):
    """Drop wall times (``seconds`` and ``*_seconds`` keys) from data written to tracked files."""
    if isinstance(obj, dict):
        return {k: _strip_seconds(v) for k, v in obj.items()
                if not (isinstance(k, str) and (k == "seconds" or k.endswith("_seconds")
                                                or k == "wall"))}
    if isinstance(obj, (list, tuple)):
        return [_strip_seconds(v) for v in obj]
    return obj


def _dumps(obj) -> str:
    """Standard JSON (non-finite numbers as ``null``, as every svdyn JSON writer does)."""
    from ..io import dumps_json
    plain = json.loads(json.dumps(_strip_seconds(obj), indent=None, sort_keys=False,
                                  default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    return dumps_json(plain)


VERDICT = {True: "**reproduced**", False: "**not reproduced**", "partly": "**partly reproduced**"}


def _v(ok) -> str:
    return VERDICT[ok] if ok in VERDICT else str(ok)


# ---------------------------------------------------------------------------- [H]
def sec_h(ctx: Context) -> Section:
    from . import rates
    return rates.section(quick=ctx.quick, figures=ctx.figures, rel=ctx.rel)


# ---------------------------------------------------------------------------- 1. max-margin
K32_NODE_LIMIT = 2000   # branch-and-bound nodes per K = 32 MILP bound (deterministic budget)


def sec_maxmargin(ctx: Context) -> Section:
    from . import maxmargin
    quick = ctx.quick
    mm_cases = [(4, "walsh"), (8, "walsh"), (16, "walsh"), (3, "cyclic"), (5, "cyclic"),
                (6, "cyclic"), (8, "cyclic"), (10, "2,5"), (12, "cyclic")]
    if not quick:
        mm_cases.insert(3, (32, "walsh"))
    mm_rows, mm_json = [], []
    from ..progress import track
    for K, g in track(mm_cases, "report: max-margin", unit="case"):
        r = maxmargin.solve(K, 3.0, g)
        mm_json.append(r)
        xs = "; ".join(f"{c['depth']:.6f} ({c['from_rank']}->{c['to_rank']}"
                       + (f", = {c['closed_form']}" if c["closed_form"] else "") + ")"
                       for c in r["crossovers"])
        mm_rows.append([K, r["group"], r["n_vertices"], "yes" if r["exact"] else "no (search)",
                        r["regimes"][-1]["rank"], xs or "none"])
    md = ["## [D] 1. Spectral max-margin problem and crossover depths\n",
          "`min sum_j z_j^(2/L)` s.t. all margins >= 1 (margins linear in z). Optimum rank "
          "as L -> inf and every depth where the optimum changes (real L in [2, 1000]); "
          "closed forms where both vertices are uniform. `exact = yes`: complete vertex "
          "enumeration (double description, walsh vertices re-checked in integer "
          "arithmetic); `no (search)`: successive-LP search, not certified. "
          f"K = 4 closed form: L* = 2 ln 2 / ln(3/2) = {maxmargin.k4_crossover():.10f}. "
          "Command: `svdyn maxmargin --classes K --group G --depth L`.\n",
          _md_table(["K", "group", "vertices", "exact", "rank at L->inf",
                     "crossovers L* (rank change, closed form)"], mm_rows) + "\n"]
    summary = []
    k4 = next(r for r in mm_json if r["classes"] == 4 and r["group"] == "walsh")
    k4x = k4["crossovers"][0]["depth"]
    summary.append(["[D]", "Depth favours low rank in the max-margin problem: the optimum "
                    "leaves NC at a finite depth L* and its rank falls with L",
                    _v(all(r["regimes"][-1]["rank"] < r["classes"] - 1 for r in mm_json
                           if r["classes"] > 3)),
                    f"K=4: L* = {k4x:.6f} (closed form 2 ln 2 / ln 1.5); rank at L->inf: "
                    + ", ".join(f"K={r['classes']} {r['group']}: {r['regimes'][-1]['rank']}"
                                for r in mm_json[:4]),
                    "`svdyn maxmargin --classes 8 --depth 6`"])
    if not quick:
        G32 = maxmargin.make_group("walsh", 32)
        X1, cls1, _, _ = maxmargin._vertices(G32, maxmargin.EXACT_MAX_DIM, 1)
        pr1 = maxmargin._profiles(G32, X1, cls1, 1)
        ch1 = [c[0] for c in maxmargin._envelope(pr1, 2.0, 1000.0)[2]]
        r32 = next(r for r in mm_json if r["classes"] == 32)
        ch0 = [c["depth"] for c in r32["crossovers"]]
        same = len(ch0) == len(ch1) and np.allclose(ch0, ch1, rtol=1e-10)
        cert_rows, certs = [], []
        for reg in r32["regimes"]:
            a, b = reg["depth_from"], reg["depth_to"]
            Lm = math.sqrt(a * b) if b is not None else 2 * a
            ce = maxmargin.lower_bound(G32, Lm, node_limit=K32_NODE_LIMIT)
            certs.append(ce)
            cert_rows.append([f"{Lm:.4f}", reg["rank"], f"{ce['upper_bound']:.10g}",
                              f"{ce['lower_bound']:.10g}", f"{ce['gap']:.2e}",
                              "yes" if ce["certified"] else "no"])
        md.append(f"K = 32: an independent search (seed 1, {len(X1)} vertices found) gives "
                  f"{'the same' if same else 'a DIFFERENT'} crossover depths "
                  f"({', '.join(f'{x:.6f}' for x in ch1)}). MILP lower bounds "
                  "(`maxmargin.lower_bound`: piecewise-linear chord underestimator through the "
                  "vertex values, GL(5,2) symmetry broken, HiGHS) at one depth inside each "
                  f"K = 32 regime, budget **{K32_NODE_LIMIT} branch-and-bound nodes per bound** "
                  "(a node limit, not a time limit, so every run returns the same bound); "
                  "`certified` = the bound meets the search optimum, so the search vertex is "
                  "the global optimum at that depth. Command: `svdyn maxmargin --classes 32 "
                  f"--depth L --certify-nodes {K32_NODE_LIMIT}`.\n")
        md.append(_md_table(["L", "search optimum rank", "search optimum cost",
                             "MILP lower bound", "relative gap", "certified"], cert_rows) + "\n")
        ncert = sum(c["certified"] for c in certs)
        summary.append(["[D]", "K = 32 walsh max-margin crossovers (search, not enumerated)",
                        "**partly reproduced**" if ncert < len(certs) else _v(True),
                        f"search optimum certified by MILP in {ncert}/{len(certs)} regimes "
                        f"(largest gap {max(c['gap'] for c in certs):.1e}, {K32_NODE_LIMIT} "
                        "nodes per bound); second search seed "
                        + ("agrees" if same else "DISAGREES"),
                        "`svdyn report --only mm`"])
    _plot_crossovers(mm_json, ctx.figures / "maxmargin_cost.png")
    md.append("![cost](%s)\n" % (ctx.rel / "maxmargin_cost.png"))
    return Section("mm", "\n".join(md), summary, {"maxmargin.json": mm_json})


# ---------------------------------------------------------------------------- 2. depth 2
def sec_depth2(ctx: Context) -> Section:
    from . import basins, maxmargin
    mm_cases = [(4, "walsh"), (8, "walsh"), (16, "walsh"), (3, "cyclic"), (5, "cyclic"),
                (6, "cyclic"), (8, "cyclic"), (10, "2,5"), (12, "cyclic")]
    depth2_nc = all(maxmargin.solve(K, 2.0, g)["optimum"]["nc"] for K, g in mm_cases)
    from .report_sweeps import mc_grid_over_k, mc_records
    mc_eps = (1e-3, 1e-1, 10.0)
    n_mc = 64 if ctx.quick else 400
    grid, cells = ctx.sweep("d2_monte_carlo", mc_grid_over_k((4, 8, 16), 2, mc_eps, n_mc,
                                                             seed=1, chunk=min(n_mc, 100)))
    recs = mc_records(grid, cells, "d2_monte_carlo")
    d2_rows = []
    for K in (4, 8, 16):
        for eps in mc_eps:
            r = next(x for x in recs if x["classes"] == K and x["init_scale"] == eps)
            d2_rows.append([K, eps, n_mc, "-" if r["nc_fraction"] is None
                            else f"{r['nc_fraction']:.3f}", r["undecided"]])
    d2_all_nc = all(r[3] == "1.000" for r in d2_rows)
    md = ["## [D] 2. Depth 2: NC from every spectral start\n",
          "Balanced spectral starts z_j(0) = eps U(0.5, 1.5) (walsh), certified limits; run "
          f"as the sweep `d2_monte_carlo` (`classify` task, {grid.chunk_size} starts per "
          "chunk, each chunk's starts drawn from SeedSequence((root seed 1, cell, chunk)); "
          "one cell alone: `svdyn basin --classes K --depth 2 --init-scale EPS --samples N`, "
          "with its own seed).\n",
          _md_table(["K", "eps", "inits", "NC fraction", "undecided"], d2_rows) + "\n"]
    summ = [["[H], [D]", "NC from every spectral start at depth 2", _v(d2_all_nc and depth2_nc),
             f"max-margin optimum at L=2 is NC for all {len(mm_cases)} groups; "
             f"{sum(1 for _ in d2_rows) * n_mc} random spectral flows at L=2 (K = 4, 8, 16, "
             f"eps 1e-3..10): NC fraction {min(r[3] for r in d2_rows)} minimum",
             "`svdyn report --only d2`"]]
    return Section("d2", "\n".join(md), summ)


# ---------------------------------------------------------------------------- 3. basins + MC
# (owned by the basin / certified-classifier work: regenerate with `svdyn report --only basins`)
def lowrank_cells(mc_json: list) -> dict:
    """HOOK (certified classifier): the Monte-Carlo cells that support "low-rank limits at depth
    >= 3", read from the Monte-Carlo table (``monte_carlo.json``), never hard-coded.

    A cell supports the claim if its NC fraction is < 1; it is *certain* if also no start in it
    is undecided (``undecided == 0``: every limit classified within the classifier's error).
    When the certified classifier lands, ``monte_carlo.json`` rows carry its verdicts and this
    function is the one place that reads them."""
    deep = [r for r in mc_json if r["depth"] >= 3]
    sup = [r for r in deep if r["nc_fraction"] is not None and r["nc_fraction"] < 1.0]
    certain = [r for r in sup if r.get("undecided", 0) == 0
               or r["nc_fraction"] + r.get("undecided", 0) / r["samples"] < 1.0]
    by_depth = {}
    for r in deep:
        d = by_depth.setdefault(r["depth"], {"cells": 0, "support": 0, "certain": 0})
        d["cells"] += 1
        d["support"] += r in sup
        d["certain"] += r in certain
    return {"cells": len(deep), "support": len(sup), "certain": len(certain),
            "by_depth": by_depth,
            "certified_classifier": any(r.get("classifier") == "certify_limit"
                                        or "certified" in r for r in mc_json)}


def sec_basins(ctx: Context) -> Section:
    from . import basins
    from .certify import certify_limit
    from .report_sweeps import (k4_critical_grid, k4_critical_records, k4_map_grid,
                                k4_map_records, mc_grid, mc_records)
    quick, figures, rel = ctx.quick, ctx.figures, ctx.rel
    ne = 12 if quick else 100
    # every grid study runs through the sweep runner (resumable, on any executor): the K = 4
    # basin maps, the Monte Carlo cells at K = 8, 16 and the critical-ratio searches
    grid, cells = ctx.sweep("basin_k4_maps", k4_map_grid(DEPTHS_MAP, 1e-3, 1.0, ne, 0.0, 1.5,
                                                         ne, basins.K4_Z_FINAL))
    maps = k4_map_records(grid, cells, "basin_k4_maps")
    n8, n16 = (64, 32) if quick else (2000, 1000)
    mc_json = []
    for K in (8, 16):
        study = f"monte_carlo_K{K}"
        grid, cells = ctx.sweep(study, mc_grid(K, range(2, 9), (0.1, 0.01),
                                               n8 if K == 8 else n16, seed=2))
        recs = mc_records(grid, cells, study)
        mc_json += sorted(recs, key=lambda r: (-r["init_scale"], r["depth"]))
    # certified brackets of the K = 4 critical ratio: one section search per (L, eps) cell
    crit_eps = (1.0, 0.1, 0.01, 0.001)
    crit_depths = (2, 3, 4, 5, 6, 7, 8)
    bw = 1e-2 if quick else 1e-3
    grid, cells = ctx.sweep("k4_critical_ratios", k4_critical_grid(crit_depths, crit_eps, bw,
                                                                   basins.K4_Z_FINAL))
    crit = k4_critical_records(grid, cells, "k4_critical_ratios")
    for L, m in maps.items():
        m["critical"] = [crit[(L, e)] for e in crit_eps]
    # classifier check: random points of the L = 3 plane certified with the last stop at
    # z = 1e6 and again at z = 1e12 (a 100x smaller y threshold at L = 3)
    rng = np.random.default_rng(3)
    nchk = 40 if quick else 300
    spec3 = basins._k4_spec(3)
    Z0 = basins.k4_z(10 ** rng.uniform(-3, 0, nchk), rng.uniform(0, 1.5, nchk))
    ca = certify_limit(spec3, Z0, z_final=1e6, is_z=True, limit_decades=0)   # one stage
    cb = certify_limit(spec3, Z0, z_final=1e12, is_z=True)
    both = ca.decided & cb.decided
    agree = float(np.mean([x == y for x, y, d in zip(ca.label, cb.label, both) if d])) \
        if both.any() else None
    check = {"n": nchk, "agree": agree, "both_decided": int(both.sum()),
             "undecided_1e6": ca.undecided, "undecided_1e12": cb.undecided,
             "classifier": "certify_limit"}
    # Monte Carlo readout check: the classifier's defaults vs every start through the limit
    # stage at a 100x smaller threshold, on fresh starts of the report's cells
    rdepths = (3, 5) if quick else (3, 4, 6, 8)
    check["readout"] = [
        {k: v for k, v in basins.readout_check(K, L, e, (8 if K == 8 else 4) if quick else
                                               (200 if K == 8 else 100), seed=5 + L).items()
         if not k.startswith("cpu")}
        for K in (8, 16) for e in (0.1, 0.01) for L in rdepths]
    for L in DEPTHS_MAP:
        plot_k4_map(maps[L], figures / f"basin_k4_depth{L}.png")
    return basins_section(crit, maps, mc_json, check, rel, quick, bw)


def basins_from_files(figures, rel) -> Section:
    """The basin section re-formatted from its saved data files (``critical_ratios_k4.json``,
    ``basin_k4_depth*.json``, ``monte_carlo.json``, ``basins_check.json``) without rerunning
    the flows; the maps are redrawn."""
    figures = Path(figures)
    crit = {(c["depth"], c["init_scale"]): c
            for c in json.loads((figures / "critical_ratios_k4.json").read_text())}
    maps = {L: json.loads((figures / f"basin_k4_depth{L}.json").read_text())
            for L in DEPTHS_MAP}
    mc = json.loads((figures / "monte_carlo.json").read_text())
    check = json.loads((figures / "basins_check.json").read_text())
    for L in DEPTHS_MAP:
        plot_k4_map(maps[L], figures / f"basin_k4_depth{L}.png")
    bw = max(c.get("width_target", 1e-3) for c in crit.values())
    return basins_section(crit, maps, mc, check, rel, bw=bw)


def _readout_text(rows) -> str:
    """The Monte Carlo readout check (``basins.readout_check`` rows) as a sentence."""
    if not rows:
        return ""
    nb = sum(r["both_decided"] for r in rows)
    same = sum(r["same"] for r in rows)
    cells = ", ".join(f"K={r['classes']} L={r['depth']} eps={r['init_scale']:g}: "
                      f"{r['same']}/{r['both_decided']}"
                      + (f" (undecided {r['undecided_default']}/{r['undecided_deep']})"
                         if r["undecided_default"] or r["undecided_deep"] else "")
                      for r in rows)
    per = {r["classes"]: r["samples"] for r in rows}
    return ("Readout check on fresh Monte Carlo starts (`basins.readout_check`; "
            + ", ".join(f"{n} per cell at K = {K}" for K, n in per.items()) + "): the classifier's "
            "defaults vs every start, decided or not, through the limit stage with "
            f"{rows[0]['deep_decades']} stops (a 100x smaller y threshold): the same certified "
            f"limit on {same} of the {nb} starts both decide ({100 * same / max(nb, 1):.2f} %); "
            "per cell same/both decided: " + cells + ".\n")


def _frac_cell(r) -> str:
    if not r["decided"]:
        return f"- / {r['undecided']}"
    lo, hi = r["nc_wilson95"]
    return f"{r['nc_fraction']:.3f} [{lo:.3f}, {hi:.3f}] / {r['undecided']}"


def basins_section(crit: dict, maps: dict, mc_json: list, check: dict, rel, quick=False,
                   bw: float = 1e-3):
    """Format the basin / Monte-Carlo section from its data: ``crit[(L, eps)]`` certified
    critical-ratio brackets, ``maps[L]`` basin maps, the Monte-Carlo rows and the classifier
    check. (Split from the computation so the section can be re-formatted from its saved data
    files.)"""
    crit_eps = (1.0, 0.1, 0.01, 0.001)
    crit_depths = tuple(sorted({L for L, _ in crit}))
    files = {f"basin_k4_depth{L}.json": m for L, m in maps.items()}

    def _br(c):
        lo, hi = c["bracket"]
        return f"[{lo:.4f}, {hi:.4f}]" + ("" if c["width_reached"] else " (width not reached)")
    rc_tab = [[L] + [_br(crit[(L, e)]) for e in crit_eps] for L in crit_depths]
    files["critical_ratios_k4.json"] = [
        {"depth": L, "init_scale": e, **{k: v for k, v in crit[(L, e)].items()
                                         if k in ("bracket", "critical_ratio", "width",
                                                  "width_target", "width_reached",
                                                  "undecided", "classified")}}
        for L in crit_depths for e in crit_eps]

    def _incr(a, b):  # certified brackets disjoint and in order
        return crit[b]["bracket"][0] > crit[a]["bracket"][1]
    inc_depth = all(_incr((L1, e), (L2, e))
                    for e in crit_eps for L1, L2 in zip(crit_depths, crit_depths[1:]))
    inc_eps = all(_incr((L, e1), (L, e2))
                  for L in crit_depths[1:] for e1, e2 in zip(crit_eps, crit_eps[1:]))
    inc_fail = [f"eps={e}: L={L1} vs {L2}" for e in crit_eps
                for L1, L2 in zip(crit_depths, crit_depths[1:]) if not _incr((L1, e), (L2, e))]
    inc_fail += [f"L={L}, eps={e2} vs {e1}" for L in crit_depths[1:]
                 for e1, e2 in zip(crit_eps, crit_eps[1:]) if not _incr((L, e1), (L, e2))]
    mc_rows = []
    for K in (8, 16):
        for eps in (0.1, 0.01):
            row = [K, eps]
            for L in range(2, 9):
                r = next(x for x in mc_json if x["classes"] == K and x["init_scale"] == eps
                         and x["depth"] == L)
                row.append(_frac_cell(r))
            mc_rows.append(row)
    hist_rows = [[r["classes"], r["init_scale"], r["depth"],
                  ", ".join(f"{k}: {v}" for k, v in r["limit_histogram"].items())]
                 for r in mc_json if r["depth"] >= 3]
    files["monte_carlo.json"] = mc_json
    files["basins_check.json"] = check
    lr = lowrank_cells(mc_json)
    n8 = max((r["samples"] for r in mc_json if r["classes"] == 8), default=0)
    n16 = max((r["samples"] for r in mc_json if r["classes"] == 16), default=0)
    agree = check.get("agree")
    md = ["## [D] 3. Basins of NC (K = 4, z(0) = eps (0, 1, 1, r))\n",
          "Regenerate this section alone: `svdyn report --only basins`. Critical ratio "
          "r_c(eps, L) (r < r_c: square code, r > r_c: NC) as a certified bracket of width "
          f"<= {bw:g} (`basins.k4_critical_ratio`"
          + ("; run as the sweep `k4_critical_ratios`, `k4_critical` task, one chunk per "
             "(L, eps)" if all("chunk" in m for m in maps.values()) else "")
          + "): section search on (0, 1], every ratio "
          "classified by the certified classifier (y-clock ratio exponents, the frozen-scale "
          "limit stage for the starts the true clock leaves undecided, and the KKT "
          "certificate, `svdyn.analysis.certify`); every ratio the search met below the "
          "bracket is a certified square, every one above it certified NC; undecided ratios "
          "stay inside. At L = 2 every r > 0 gives NC (r_c = 0). Command: `svdyn basin "
          "--classes 4 --depth L --init-scale EPS --critical-ratio`.\n",
          _md_table(["L"] + [f"eps={e:g}" for e in crit_eps], rc_tab) + "\n",
          f"Classifier check: {check['n']} random points of the L = 3 plane certified by the "
          "first stage alone with the last stop at z = 1e6 and again by the full classifier "
          "with the last stop at z = 1e12 (a 100x smaller y threshold at L = 3) and the limit "
          f"stage: undecided {check.get('undecided_1e6')} and {check.get('undecided_1e12')}; "
          + ("the labels agree on " + f"{agree * 100:.2f} % of the "
             f"{check.get('both_decided')} points decided by both.\n" if agree is not None
             else "no point was decided by both.\n")
          + _readout_text(check.get("readout"))
          + ("" if not inc_fail else "Monotonicity not established (brackets overlap) "
             "for: " + "; ".join(inc_fail) + ".\n")]
    mrows = [[L, maps[L]["n"], "-" if maps[L]["nc_fraction"] is None
              else f"{maps[L]['nc_fraction']:.4f}", maps[L]["undecided"], maps[L]["failed"]]
             for L in DEPTHS_MAP]
    swept = all("chunk" in m for m in maps.values())
    md.append("Maps (eps log-spaced 1e-3..1, r in 0..1.5"
              + ("; run as the sweep `basin_k4_maps`, `basin_k4` task, one chunk per (L, eps) "
                 "row of r values" if swept else "") + "; white dots: bracket midpoints of "
              "r_c; black dots: undecided; NC fraction over the decided points; the r = 0 row "
              "has mode 3 pinned at zero, hence rank 2 even at L = 2):\n")
    md.append(_md_table(["L", "inits", "NC fraction", "undecided", "failed"], mrows) + "\n")
    md.append(" ".join(f"![L={L}](%s)" % (rel / f"basin_k4_depth{L}.png") for L in DEPTHS_MAP)
              + "\n")
    if all("seeds" in r for r in mc_json):
        how = ("Run as the sweeps `monte_carlo_K8` and `monte_carlo_K16` (`classify` task, "
               + " and ".join(f"{r['chunk']} starts per chunk at K = {r['classes']}" for r in
                              {x["classes"]: x for x in mc_json}.values())
               + "); each chunk draws its starts from SeedSequence((root seed 2, cell, chunk)) "
               "(`svdyn.sweep.grid.chunk_entropy`), so the numbers do not depend on the "
               "executor or the worker count. One cell alone, with its own seed: `svdyn basin "
               "--classes K --depth L --init-scale EPS --samples N`.\n")
    else:
        how = ("Command: `svdyn basin --classes K --depth L --init-scale EPS --samples N "
               "--seed 2`.\n")
    md.append(f"Monte Carlo, z_j(0) = eps U(0.5, 1.5), walsh ({n8} inits for K = 8, {n16} for "
              "K = 16), certified limits: NC fraction over the decided starts [95 % Wilson "
              "interval] / undecided (never folded into the fraction). " + how)
    md.append(_md_table(["K", "eps"] + [f"L={L}" for L in range(2, 9)], mc_rows) + "\n")
    md.append("Certified limits by support class (value profile of the limit vertex, min "
              "margin 1):\n")
    md.append(_md_table(["K", "eps", "L", "limits"], hist_rows) + "\n")
    bd = lr["by_depth"]
    d3 = bd.get(3, {"cells": 0, "support": 0, "certain": 0})
    deeper = {L: v for L, v in bd.items() if L >= 4}
    ok4 = all(v["support"] == v["cells"] for v in deeper.values())
    md.append("Cells supporting \"low-rank limits at depth >= 3\" (NC fraction of the decided "
              "starts < 1; *certain*: the NC fraction stays < 1 even if every undecided start "
              "were NC), read from `monte_carlo.json` by `report.lowrank_cells`: " + "; ".join(
                  f"L={L}: {v['support']}/{v['cells']} cells ({v['certain']} certain)"
                  for L, v in sorted(bd.items())) + ". "
              + ("Classifier: certified." if lr["certified_classifier"] else
                 "Classifier: finite-horizon growth exponents.") + "\n")
    summ = [
        ["[D]", "Low-rank limits at depth >= 3",
         _v(ok4 and d3["certain"] == d3["cells"]) if lr["certified_classifier"] else
         (_v("partly") if ok4 else _v(False)),
         "Monte Carlo (K = 8, 16; eps 0.1, 0.01): NC fraction < 1 in "
         + ", ".join(f"{v['support']}/{v['cells']} cells at L={L}" for L, v in sorted(bd.items()))
         + f"; depth 3: {d3['certain']}/{d3['cells']} cells certain with the "
         + ("certified classifier" if lr["certified_classifier"] else
            "finite-horizon classifier"),
         "`svdyn report --only basins`"],
        ["[D]", "NC basin shrinks with depth", _v(inc_depth),
         "K=4 certified brackets of r_c disjoint and increasing with L at each eps (L = 2..8): "
         + ", ".join(f"eps={e:g}: " + " < ".join(f"{crit[(L, e)]['critical_ratio']:.3f}"
                                                 for L in (2, 3, 4, 8)) for e in (1.0, 0.01)),
         "`svdyn basin --classes 4 --depth L --init-scale EPS --critical-ratio`"],
        ["[D]", "NC basin shrinks with smaller init", _v(inc_eps),
         "K=4 certified r_c brackets increase as eps decreases at each L >= 3: L=3: "
         + " < ".join(f"{crit[(3, e)]['critical_ratio']:.3f}" for e in crit_eps)
         + " (eps 1..1e-3)", "`svdyn basin --classes 4 --depth 3 --init-scale EPS --critical-ratio`"],
    ]
    return Section("basins", "\n".join(md), summ, files)


# ---------------------------------------------------------------------------- 4. repulsion
def sec_repulsion(ctx: Context) -> Section:
    from . import repulsion
    from ..integrate import flow
    from ..spec import ModelSpec
    rep_rows, rep_ok = [], True
    for L in (1, 2, 3, 4, 6):
        spec = ModelSpec(4, L)
        z0 = np.array([0.0, 0.011, 0.01, 0.01])
        tr = flow(spec, spec.balanced(z0), 1e-3, save_at=np.linspace(0, 1e-3, 6), rtol=1e-12,
                  atol=1e-15)
        ms = repulsion.measure(tr, 1, 2)
        meas = ms["measured"][0]
        form = repulsion.rate_small_z(z0[1], z0[2], L, 4)
        sign = "repulsion" if meas > 0 else "attraction"
        rep_ok &= (meas > 0) == (L > 2)
        rep_rows.append([L, f"{meas:.4e}", f"{ms['formula'][0]:.4e}", f"{form:.4e}", sign,
                         f"{repulsion.sign_change_scale(L, 4):.4f}"])
    sym_ok = repulsion.symbolic_check(4)
    md = ["## [D] 4. Early repulsion\n",
          "K = 4, z(0) = (0, 0.011, 0.01, 0.01): d/dt log(z_1/z_2) at t = 1e-4, measured by "
          "finite differences on the flow, the exact formula L (z_1^(1-2/L) g_1 - "
          "z_2^(1-2/L) g_2), and the small-z expansion (L/(K sqrt n)) (phi(z_1) - "
          "phi(z_2)), phi(z) = z^(1-2/L) (1 - z/(K sqrt n)). Sign change scale z* = K "
          f"sqrt(n) (L-2)/(2(L-1)). sympy check of mu_j = z_j/K + O(z^2): {sym_ok}. "
          "Command: `svdyn report --only rep`.\n",
          _md_table(["L", "measured", "exact formula", "small-z", "sign", "z*"], rep_rows)
          + "\n"]
    summ = [["[D]", "Early repulsion among singular values at depth >= 3 (attraction at "
             "L <= 2)", _v(rep_ok and sym_ok),
             "d/dt log(z_1/z_2) at z(0) = (0, .011, .01, .01): " + ", ".join(
                 f"L={r[0]}: {r[1]}" for r in rep_rows) + "; flow = exact formula to 4 digits",
             "`svdyn report --only rep`"]]
    return Section("rep", "\n".join(md), summ)


# ---------------------------------------------------------------------------- 5. codes
def sec_codes(ctx: Context) -> Section:
    from . import basins, codes, maxmargin
    from .geometry import classify_states
    code_cases = [(2, 4), (3, 4), (2, 5), (2, 8), (3, 8)] + ([] if ctx.quick else [(4, 16)])
    code_rows, code_json = [], []
    from ..progress import track
    for d, K in track(code_cases, "report: softmax codes", unit="code"):
        c = codes.compare(d, K, restarts=4 if ctx.quick else 8)
        code_json.append(c)
        for s in c["spectral"]:
            code_rows.append([d, K, f"{c['margin']:.6f}", s["group"],
                              "-" if s["margin"] is None else f"{s['margin']:.6f}",
                              "yes" if s["reachable"] else "no"])
    sq = classify_states(basins._k4_spec(4), basins.k4_states(basins._k4_spec(4), 0.01, 0.2)[0])
    sq_margin = codes.code_margin(codes.spectral_code(4, np.r_[0.0, sq["limit_direction"]],
                                                      "walsh")) if sq["rank"] == 2 else None
    k4x = maxmargin.k4_crossover()
    # which (d, K, group) spectral codes ARE softmax codes (margins equal to 1e-6)
    yes, no = [], []
    for c in code_json:
        for s in c["spectral"]:
            tag = f"K={c['classes']} d={c['dim']} {s['group']}"
            good = s["margin"] is not None and abs(s["margin"] - c["margin"]) < 1e-6
            (yes if good else no).append(
                (tag, s["margin"], c["margin"]))
    md = ["## [D] 5. Softmax codes vs spectral codes\n",
          "One-vs-rest margin min_k dist(w_k, conv(w_j, j != k)) of unit codes; softmax "
          "code by SLSQP from random starts; spectral: best vertex of that rank of the "
          "max-margin polytope. `reachable = no`: spectral initialisation of that group "
          "cannot produce the softmax code. Command: `svdyn code --dim D --classes K`.\n",
          _md_table(["d", "K", "softmax code margin", "group", "best spectral margin",
                     "reachable"], code_rows) + "\n",
          f"Flow limit, K = 4, L = 4, eps = 0.01, r = 0.2: rank {sq['rank']}, one-vs-rest "
          f"margin {sq_margin}.\n",
          "Which deep limits are softmax codes: the spectral code equals the softmax code "
          "(margin within 1e-6) for " + (", ".join(t for t, _, _ in yes) or "none")
          + "; it is not for " + (", ".join(
              f"{t} ({'-' if a is None else f'{a:.3f}'} vs {b:.3f})" for t, a, b in no)
              or "none") + ".\n"]
    k4_ok = sq_margin is not None and abs(sq_margin - 1.0) < 1e-6 and 3 < k4x < 4
    summ = [["[D]", "Deep (low-rank) limits are softmax codes",
             _v("partly") if k4_ok and no else _v(k4_ok),
             f"yes for K = 4 (max-margin optimum switches NC -> square at L* = {k4x:.6f}; flow "
             f"limit at L=4 has one-vs-rest margin {sq_margin} = softmax code (2,4)) and "
             + ", ".join(t for t, _, _ in yes if not t.startswith("K=4 "))
             + "; no for " + ", ".join(
                 f"{t} ({'unreachable' if a is None else f'{a:.3f}'} vs {b:.3f})"
                 for t, a, b in no), "`svdyn code --dim 3 --classes 8`"]]
    return Section("codes", "\n".join(md), summ, {"codes.json": code_json})


# ---------------------------------------------------------------------------- 6. width
WIDTHS = (4, 8, 16, 32, 64)
WIDTH_SEEDS = tuple(range(6))
WIDTH_CHECKPOINTS = (1000, 4000, 10000)


def sec_width(ctx: Context) -> Section:
    from . import width as wmod
    ws = (4, 16) if ctx.quick else WIDTHS
    seeds = (0, 1) if ctx.quick else WIDTH_SEEDS
    cps = (250, 1000) if ctx.quick else WIDTH_CHECKPOINTS
    runs = [wmod.run(L, w, seeds=seeds, checkpoints=cps) for L in (3, 4) for w in ws]
    rows = wmod.summarise(runs)
    last = [r for r in rows if r["step"] == cps[-1]]
    tab = []
    for L in (3, 4):
        for w in ws:
            rr = [r for r in rows if r["depth"] == L and r["width"] == w]
            run_ = next(x for x in runs if x.depth == L and x.width == w)
            hist = np.bincount(np.asarray(run_.numerical_rank[-1]), minlength=4)[1:]
            tab.append([L, w] + [f"{r['eff_mean']:.3f} ± {r['eff_se']:.3f}" for r in rr]
                       + [" / ".join(str(int(h)) for h in hist),
                          sum(r["changed"] or 0 for r in rr[1:]),
                          f"{np.mean(run_.min_margin[-1]):.2f}"])
    _plot_width_runs(runs, ctx.figures / "width_effect.png")
    md = ["## [D] 6. Width effect (random init, full model)\n",
          f"K = 4, n = 1, ce, no weight decay; {len(seeds)} seeds per cell; Gaussian factors "
          "0.3/sqrt(width) N(0, 1); full-batch GD, lr 0.5, all factors trained "
          "(`svdyn.analysis.width.run`, float64; it reproduces "
          "`svdyn.fullmodel.validate_random` seed by seed). Ranks of the class-centred "
          "logits: effective rank exp(H(sigma/sum sigma)) mean ± standard error over seeds at "
          "each checkpoint, numerical rank (sigma_i > 0.1 sigma_1) histogram at the end, and "
          "how many seeds changed numerical rank between checkpoints (settled = 0).\n",
          _md_table(["L", "width"] + [f"eff. rank @ {c} steps" for c in cps]
                    + ["seeds with num. rank 1 / 2 / 3 (end)", "rank changes after "
                       f"{cps[0]}", "mean min margin (end)"], tab) + "\n",
          "![width](%s)\n" % (ctx.rel / "width_effect.png")]
    detail, verdict_parts = [], []
    for L in (3, 4):
        m = [(r["width"], r["eff_mean"], r["eff_se"]) for r in last if r["depth"] == L]
        up = m[-1][1] - m[-1][2] > m[0][1] + m[0][2]
        dips = [(a[0], b[0]) for a, b in zip(m, m[1:])
                if b[1] + 2 * b[2] < a[1] - 2 * a[2]]   # a drop beyond 2 standard errors
        verdict_parts.append((up, dips))
        detail.append(f"L={L}: " + ", ".join(f"w{w}: {e:.2f}±{s:.2f}" for w, e, s in m)
                      + (f" (drops beyond 2 s.e.: {dips})" if dips else ""))
    changes = sum(r["changed"] or 0 for r in rows)
    ups = [u for u, _ in verdict_parts]
    anydip = any(d for _, d in verdict_parts)
    ok = True if all(ups) and not anydip else ("partly" if any(ups) else False)
    md.append("Reading: " + "; ".join(detail) + f". Numerical-rank changes after step "
              f"{cps[0]}: {changes} of {len(runs) * len(seeds)} seeds. At a fixed width the "
              "seeds split between rank-2 and rank-3 limits (histogram column), so the mean "
              "rank at a width is a share of seeds: with 2 seeds (the previous report) the mean "
              "could move by 0.5 from one seed's outcome, which is what made the old L = 4 row "
              "non-monotone.\n")
    summ = [["[D]", "Width raises the rank under random init", _v(ok),
             f"K=4, {len(seeds)} seeds, GD to {cps[-1]} steps (ranks settled: {changes} "
             "numerical-rank changes after step " f"{cps[0]}); effective rank at the end: "
             + "; ".join(detail), "`svdyn report --only width`"]]
    return Section("width", "\n".join(md), summ,
                   {"width_effect.json": {"runs": [r.to_dict() for r in runs], "rows": rows}})


def _plot_width_runs(runs: list, path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for L in sorted({r.depth for r in runs}):
        sub = sorted((r for r in runs if r.depth == L), key=lambda r: r.width)
        ws = [r.width for r in sub]
        e = [np.asarray(r.effective_rank[-1]) for r in sub]
        mean = [x.mean() for x in e]
        se = [x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else 0.0 for x in e]
        ax.errorbar(ws, mean, yerr=se, fmt="o-", capsize=3,
                    label=f"L={L} (mean ± s.e., {len(sub[0].seeds)} seeds)")
        for r in sub:
            ax.plot([r.width] * len(r.seeds), r.effective_rank[-1], ".", color="0.6", ms=3)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width")
    ax.set_ylabel("effective rank of centred logits")
    ax.set_title(f"K=4, random init, GD {runs[0].checkpoints[-1]} steps (grey: seeds)",
                 fontsize=9)
    ax.legend(fontsize=8)
    from ..plotting import save_figure
    return save_figure(fig, path, dpi=110)


# ---------------------------------------------------------------------------- [P] / [U]
def sec_pu(ctx: Context) -> Section:
    from ..landscape.report import section_parts
    md, summ = section_parts(quick=ctx.quick)
    return Section("pu", md, summ)


# ============================================================================ assembly
SECTIONS = [("h", sec_h), ("mm", sec_maxmargin), ("d2", sec_depth2), ("basins", sec_basins),
            ("rep", sec_repulsion), ("codes", sec_codes), ("width", sec_width), ("pu", sec_pu)]
ALIASES = {"d": ["mm", "d2", "basins", "rep", "codes", "width"], "p": ["pu"], "u": ["pu"],
           "all": [k for k, _ in SECTIONS]}
SECTION_TITLES = {"h": "[H] Lyapunov function, late-time rates, ce vs mse",
                  "mm": "[D] max-margin crossovers", "d2": "[D] depth 2: NC always",
                  "basins": "[D] basins and Monte Carlo", "rep": "[D] early repulsion",
                  "codes": "[D] softmax codes", "width": "[D] width effect",
                  "pu": "[P] / [U] weight decay, critical points, Hessians"}


def parse_only(text: str | None) -> list:
    """``"h,d"`` -> section keys in report order. Raises ValueError naming a bad key."""
    if text is None or text.strip() == "":
        return [k for k, _ in SECTIONS]
    keys = set()
    for t in (x.strip().lower() for x in text.split(",")):
        if t in ALIASES:
            keys.update(ALIASES[t])
        elif t in dict(SECTIONS):
            keys.add(t)
        else:
            raise ValueError(f"unknown report section {t!r}; use a comma-separated list of "
                             + ", ".join(list(dict(SECTIONS)) + sorted(ALIASES)))
    return [k for k, _ in SECTIONS if k in keys]


def _marker(key: str, end: bool = False) -> str:
    return f"<!-- {'/' if end else ''}svdyn-report:{key} -->"


def _existing_sections(text: str) -> dict:
    out = {}
    for key, _ in SECTIONS:
        a, b = text.find(_marker(key)), text.find(_marker(key, True))
        if a >= 0 and b > a:
            out[key] = text[a + len(_marker(key)):b].strip("\n")
    return out


def _summary_table(summ: dict) -> str:
    rows = []
    for key, _ in SECTIONS:
        rows += summ.get(key) or [[SECTION_TITLES[key].split(" ")[0], SECTION_TITLES[key],
                                   "not generated", "-", f"`svdyn report --only {key}`"]]
    order = {"[H]": 0, "[H] (map)": 0, "[H], [D]": 1, "[D]": 2, "[P]": 3, "[P], [U]": 4,
             "[U]": 4, "(training)": 5}
    rows.sort(key=lambda r: order.get(r[0], 6))   # stable: section order within a paper
    return _md_table(SUMMARY_HEADER, rows)


def build_report(out="validation/REPORT.md", figures="validation/figures", quick=False,
                 device="auto", only=None, log=None, *, work=None, executor=None,
                 workers=None, scheduler=None, progress=None) -> Path:
    """Run the sections named by ``only`` (all by default; see :func:`parse_only`) and write the
    report, keeping the other sections' text and summary rows from the existing report.
    Returns the report's path. Timings go to ``log`` (default stderr), never to the files.

    The grid studies (Monte Carlo cells, K = 4 basin maps) run through the sweep runner
    (:mod:`svdyn.analysis.report_sweeps`) into ``work`` (default ``FIGURES/sweeps``; ``--quick``
    grids under ``work/quick``) on ``executor`` (anything :func:`svdyn.sweep.run` takes, with
    ``workers`` / ``scheduler``); a rerun skips their finished chunks."""
    import sys
    from .report_sweeps import SweepSettings, SweepSetupError
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    keys = parse_only(only) if isinstance(only, (str, type(None))) else list(only)
    out, figures = Path(out), Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    rel = Path(figures.name) if figures.parent == out.parent else figures
    sweeps = SweepSettings(Path(work) if work is not None else figures / "sweeps", executor,
                           workers, scheduler, progress, log)
    ctx = Context(figures, rel, quick, device, sweeps)
    old = _existing_sections(out.read_text()) if out.exists() else {}
    summ_path = figures / "summary.json"
    summ = json.loads(summ_path.read_text()) if summ_path.exists() else {}
    bodies = dict(old)
    for key, fn in SECTIONS:
        if key not in keys:
            continue
        t0 = time.perf_counter()
        try:
            sec = fn(ctx)
        except SweepSetupError:       # the executor / sweep folder, not the study: stop
            raise
        except ImportError as e:      # an optional extra (torch) missing: say so, go on
            sec = Section(key, f"## {SECTION_TITLES[key]}\n\nThis section is not generated: "
                               f"`{type(e).__name__}: {e}` (install the extra it needs).")
        except Exception as e:        # one failing study must not lose the others
            import traceback
            log(traceback.format_exc())
            sec = Section(key, f"## {SECTION_TITLES[key]}\n\nThis section failed to "
                               f"generate: `{type(e).__name__}: {e}`; rerun "
                               f"`svdyn report --only {key}`.")
        bodies[key] = sec.markdown.strip("\n")
        summ[key] = sec.summary
        for name, data in sec.files.items():
            _atomic_write(figures / name, _dumps(data))
        # written after every section: an interrupted run keeps what finished
        _write_report(out, summ_path, bodies, summ, quick)
        log(f"svdyn report: section {key} done in {time.perf_counter() - t0:.0f} s")
    _write_report(out, summ_path, bodies, summ, quick)
    return out


def _write_report(out: Path, summ_path: Path, bodies: dict, summ: dict, quick: bool) -> None:
    md = ["# svdyn reproduction report: [H], [D], [P], [U] claim by claim\n",
          f"Generated by `svdyn report{' --quick' if quick else ''}` (svdyn {__version__}). "
          "Regenerate everything, or only some sections:\n\n"
          "```\nsvdyn report --out validation/REPORT.md --figures validation/figures\n"
          "svdyn report --only h,basins      # sections: " + ", ".join(k for k, _ in SECTIONS)
          + "; aliases d (all [D] sections), p / u (the [P]/[U] section)\n```\n",
          "Every number below is computed by that command (seeded; no wall times are "
          "written, so regenerating an unchanged tree rewrites the same file). Verdicts: "
          "**reproduced** = the numbers show the claim as the paper states it; **partly "
          "reproduced** = they show it for the cases listed and not for others; **not "
          "reproduced** = they contradict it. Conventions: depth L counts every factor "
          "(features included; [P]/[U]'s L is ours − 1); loss is the mean over samples. "
          "Limits of trajectories are classified by continuing the flow in normalised time "
          "and reading each mode's growth exponent dlog z_j / dlog m_min "
          "(`svdyn.analysis.geometry`).\n",
          "## Summary\n", _summary_table(summ) + "\n"]
    for key, _ in SECTIONS:
        body = bodies.get(key, f"## {SECTION_TITLES[key]}\n\nNot generated yet: run "
                               f"`svdyn report --only {key}`.")
        md += [_marker(key), body, _marker(key, True), ""]
    md.append(CLOSING_NOTE)
    from ..io import jsonable
    _atomic_write(summ_path, json.dumps(jsonable(summ), indent=1, ensure_ascii=False,
                                        allow_nan=False))
    _atomic_write(out, "\n".join(md).rstrip("\n") + "\n")


def _atomic_write(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


CLOSING_NOTE = """## Verdicts changed in this revision (issue 14), and why

- *Deep limits are softmax codes* ([D]): reproduced -> **partly reproduced**. The report's own
  code table shows it holds for K = 4 (the square) and the rank-2 cyclic codes, not for the
  walsh K = 8 and K = 16 deep limits (their best spectral codes have smaller one-vs-rest margins
  than the softmax codes: section 5 lists which are and which are not).
- *[P] thresholds*: partly -> **reproduced**, judged as [P] states it, a sufficient condition:
  the K = 5, L = 3 cells where DNC also loses (at the larger λ) lie outside the condition and
  are marked ◦, not counted as disagreements.
- *[P] DNC more prevalent in the landscape*: partly -> now measured as [P] means it, the
  dimension of each family's critical set in the full parameter space as width grows (flat
  directions of the full Hessian = the symmetry orbit, dimension Σ_l (r d_l − r(r+1)/2)); the
  shares of random spectral starts are dropped (they cannot see dimension).
- *[P] bounded rank as depth grows*: was tested on named families at a fixed λ (where at large
  L the zero point wins); now in [P]'s regime, λ = λ0/L, over named families plus generic
  critical points (Newton from random starts), to L = 48; the spectral-ansatz bound K − 1 is
  stated as trivial.
- *[U] gradient alignment*: partly -> **reproduced** for [U]'s statement (a layer's data-term
  gradient at deep NC lies in that layer's Hessian outliers); the old training-time quantity
  is kept and labelled as what it is (aligned early in GD only), not as [U]'s claim.
- *Low-rank limits at depth >= 3*: stays **reproduced**, now on the certified classifier:
  every Monte Carlo cell at L = 3..8 (K = 8, 16; eps 0.1, 0.01) has an NC fraction < 1
  even with every undecided start counted as NC (`report.lowrank_cells`, read from
  `monte_carlo.json`); the undecided share is largest at L = 3 (K = 16: 151/1000).
- *Width raises the rank* ([D], random init): partly -> **reproduced** for widths 4–64 at
  L = 3 and 4 (K = 4): 6 seeds, error bars, three checkpoints showing the numerical ranks
  settled (1 change in 60 seeds after step 1000). Width 128 was dropped for the time budget.
  The old non-monotone L = 4 row came from 2 seeds: at a fixed width the seeds split between
  rank-2 and rank-3 limits (section 6 gives the split), so a 2-seed mean jumps by ~0.5.
- *K = 32 max-margin certificates*: MILP bounds now run under a budget of 2000 branch-and-bound
  nodes, not a 120 s time limit, so the tracked bounds are the same on every run; within that
  budget 2 of 5 regimes are certified (the 120 s runs of the previous report certified 3,
  L = 4.74 included). No wall times are written anywhere.
- *[P] DNC more prevalent*: partly -> **reproduced** in the dimension sense (DNC's critical set
  is the largest at every width; tied only by same-rank hybrids).
- *[H] map outside the proof*: new, **partly reproduced**: unbalanced starts and depth >= 3
  violate monotonicity; per-layer weight decay from balanced starts showed no violation.
- New: the [H] section (reduction exactness, Lyapunov proof sketch and its monotonicity map,
  late-time rates by fits to t = 1e12, the direction's rate, ce vs mse).
"""
