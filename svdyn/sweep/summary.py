"""Collect a sweep: one summary row per cell, and the standard figures.

Summary columns (all tasks): the cell's axis values, ``rows`` (expected), ``count`` (rows in
finished chunks), ``chunks_failed``, ``chunks_pending``, then per task:

* ``classify`` / ``basin_k4``: ``decided``, ``undecided`` (counted apart, never folded into a
  fraction), ``nc`` (decided NC rows), ``nc_fraction = nc / decided`` with its 95 % Wilson
  interval ``nc_lo, nc_hi``, ``failed_rows`` (integration status not ``ok...``), ``mean_rank``
  and ``rank_hist`` (``rank:count`` pairs) over the decided rows, and (certified classifier)
  ``support_hist`` (``support class:count`` over the decided rows, ``; `` separated);
  ``basin_k4`` adds ``r_threshold`` (the smallest r above which every r is NC).
* ``flow``: ``ok``, ``failed_rows``, ``loss_median``, ``loss_max``, ``min_margin_median``,
  ``steps_mean``.
* ``k4_critical``: the certified bracket ``lo, hi`` of the K = 4 critical ratio,
  ``critical_ratio`` (its midpoint), ``width``, ``width_reached``, ``undecided_band``,
  ``classified``, ``undecided`` (ratios the searches classified / left undecided).
* ``critical``: ``families``, ``winner``, ``winner_loss``, ``winner_rank``, ``dnc_gap`` (DNC loss
  minus the winner's).
* ``validate``: ``max_rel_dev``, ``max_leakage``, ``max_loss_gap`` (spectral) or
  ``rank_mean``, ``rank_hist``, ``nc2_Z_median`` (gaussian).

Figures (``DIR/figures``): NC-fraction heatmaps over (L, eps) per K and rank histograms
(classify), basin maps over (eps, r) per L (basin_k4), the winning critical family over (K, L)
per lambda (critical). Only inputs enter the table (never timings), so the same grid gives a
byte-identical ``summary.csv`` on every executor.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import store
from .grid import Grid, format_value
from .runner import scan

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (``(nan, nan)`` when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, c - h), min(1.0, c + h)


@dataclass
class Summary:
    task: str
    axes: list
    columns: list
    rows: list                      # one dict per cell, grid order
    figures: list = field(default_factory=list)
    out: str = ""

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow([_fmt(r.get(c)) for c in self.columns])
        return buf.getvalue()

    def to_markdown(self, digits: int = 4) -> str:
        lines = ["| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        for r in self.rows:
            lines.append("| " + " | ".join(_fmt(r.get(c), digits) for c in self.columns) + " |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"task": self.task, "axes": self.axes, "columns": self.columns,
                "rows": self.rows, "figures": self.figures, "out": self.out}


def _fmt(v, digits=None) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return repr(v) if digits is None else f"{v:.{digits}g}"
    return str(v)


def _hist(values) -> str:
    vals, counts = np.unique(np.asarray(values, dtype=np.int64), return_counts=True)
    return " ".join(f"{int(v)}:{int(c)}" for v, c in zip(vals, counts))


def _concat(parts: list) -> dict:
    if not parts:
        return {}
    out = {}
    for k in parts[0]:
        vs = [p[k] for p in parts]
        if all(isinstance(v, np.ndarray) for v in vs) and len({v.shape[1:] for v in vs}) == 1:
            out[k] = np.concatenate(vs)
        else:
            out[k] = [x for v in vs for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    return out


def load_cells(out, grid: Grid | None = None):
    """``[(cell, columns of its finished chunks, {"failed": n, "pending": n})]`` in grid order."""
    out = Path(out)
    if grid is None:
        grid = Grid(store.read_manifest(out)["grid"])
    by_cell = {}
    for ch, h, st, info in scan(out, grid):
        d = by_cell.setdefault(ch.cell.index, {"cell": ch.cell, "parts": [], "failed": 0,
                                               "pending": 0})
        if st == "done":
            d["parts"].append((ch.index, store.read_chunk(out / ch.relpath)))
        else:
            d[st] += 1
    res = []
    for i in sorted(by_cell):
        d = by_cell[i]
        parts = [p for _, p in sorted(d["parts"], key=lambda x: x[0])]
        res.append((d["cell"], _concat(parts), {"failed": d["failed"], "pending": d["pending"]}))
    return grid, res


# ----------------------------------------------------------------------------- per task
def _classify_row(c: dict) -> dict:
    n = len(c.get("nc", []))
    if n == 0:
        return {"count": 0}
    dec = np.asarray(c["decided"], bool)
    nd = int(dec.sum())
    nc = int(np.sum(np.asarray(c["nc"], bool) & dec))
    lo, hi = wilson(nc, nd)
    rank = np.asarray(c["rank"])[dec]
    row = {"count": n, "decided": nd, "undecided": n - nd, "nc": nc,
           "nc_fraction": nc / nd if nd else math.nan, "nc_lo": lo, "nc_hi": hi,
           "failed_rows": int(sum(not str(s).startswith("ok") for s in c["status"])),
           "mean_rank": float(np.mean(rank)) if nd else math.nan,
           "rank_hist": _hist(rank) if nd else ""}
    if "support_class" in c:
        cls = [k for k, d in zip(c["support_class"], dec) if d]
        names, counts = np.unique(np.asarray(cls, dtype=str), return_counts=True) if cls \
            else ([], [])
        row["support_hist"] = "; ".join(f"{k}:{int(v)}" for k, v in zip(names, counts))
    return row


def _basin_row(c: dict) -> dict:
    row = _classify_row(c)
    if row["count"]:
        order = np.argsort(c["r"], kind="stable")
        r, nc = np.asarray(c["r"])[order], np.asarray(c["nc"], bool)[order]
        bad = np.nonzero(~nc)[0]
        row["r_threshold"] = (float(r[0]) if bad.size == 0 else
                              float(r[bad[-1] + 1]) if bad[-1] + 1 < r.size else math.nan)
    return row


def _flow_row(c: dict) -> dict:
    n = len(c.get("status", []))
    if n == 0:
        return {"count": 0}
    ok = np.array([s == "ok" for s in c["status"]])
    loss = np.asarray(c["loss"])[ok]
    mm = np.asarray(c["min_margin"])[ok]
    return {"count": n, "ok": int(ok.sum()), "failed_rows": int((~ok).sum()),
            "loss_median": float(np.median(loss)) if loss.size else math.nan,
            "loss_max": float(np.max(loss)) if loss.size else math.nan,
            "min_margin_median": float(np.median(mm)) if mm.size else math.nan,
            "steps_mean": float(np.mean(c["steps"]))}


def _critical_row(c: dict) -> dict:
    n = len(c.get("family", []))
    if n == 0:
        return {"count": 0, "families": 0}
    fam = list(c["family"])
    win = np.nonzero(np.asarray(c["winner"], bool))[0]
    row = {"count": n, "families": n}
    if win.size:
        w = int(win[0])
        row.update(winner=fam[w], winner_loss=float(c["loss"][w]),
                   winner_rank=int(c["rank"][w]))
        if "dnc" in fam:
            row["dnc_gap"] = float(c["loss"][fam.index("dnc")] - c["loss"][w])
    return row


def _validate_row(c: dict) -> dict:
    n = len(c.get("seed", []))
    if n == 0:
        return {"count": 0}
    if "max_rel_dev" in c:
        return {"count": n, "max_rel_dev": float(np.max(c["max_rel_dev"])),
                "max_leakage": float(np.max(c["max_leakage"])),
                "max_loss_gap": float(np.max(c["loss_gap"]))}
    return {"count": n, "rank_mean": float(np.mean(c["numerical_rank"])),
            "rank_hist": _hist(c["numerical_rank"]),
            "nc2_Z_median": float(np.median(c["nc2_Z"]))}


def _k4_critical_row(c: dict) -> dict:
    if len(c.get("lo", [])) == 0:
        return {"count": 0}
    return {"count": 1, "lo": float(c["lo"][0]), "hi": float(c["hi"][0]),
            "critical_ratio": float(c["critical_ratio"][0]), "width": float(c["width"][0]),
            "width_reached": bool(c["width_reached"][0]),
            "undecided_band": float(c["undecided_band"][0]),
            "classified": int(c["classified"][0]), "undecided": int(c["undecided"][0])}


ROWS = {"classify": _classify_row, "basin_k4": _basin_row, "k4_critical": _k4_critical_row,
        "flow": _flow_row,
        "critical": _critical_row, "validate": _validate_row}
COLUMNS = {
    "classify": ["decided", "undecided", "nc", "nc_fraction", "nc_lo", "nc_hi", "failed_rows",
                 "mean_rank", "rank_hist", "support_hist"],
    "basin_k4": ["decided", "undecided", "nc", "nc_fraction", "nc_lo", "nc_hi", "failed_rows",
                 "mean_rank", "rank_hist", "support_hist", "r_threshold"],
    "k4_critical": ["lo", "hi", "critical_ratio", "width", "width_reached", "undecided_band",
                    "classified", "undecided"],
    "flow": ["ok", "failed_rows", "loss_median", "loss_max", "min_margin_median", "steps_mean"],
    "critical": ["families", "winner", "winner_loss", "winner_rank", "dnc_gap"],
    "validate": ["max_rel_dev", "max_leakage", "max_loss_gap", "rank_mean", "rank_hist",
                 "nc2_Z_median"],
}


def summarise(out, grid: Grid | None = None) -> tuple[Summary, list]:
    grid, cells = load_cells(out, grid)
    f = ROWS[grid.task]
    rows = []
    for cell, cols, cnt in cells:
        row = dict(cell.axes)
        row["rows"] = cell.rows
        row.update(f(cols))
        row["chunks_failed"] = cnt["failed"]
        row["chunks_pending"] = cnt["pending"]
        rows.append(row)
    extra = COLUMNS[grid.task]
    if grid.task == "validate":
        extra = [c for c in extra if any(c in r for r in rows)]
    elif grid.task in ("classify", "basin_k4") and not any("support_hist" in r for r in rows):
        extra = [c for c in extra if c != "support_hist"]      # growth classifier
    columns = list(grid.axes) + ["rows", "count"] + extra + ["chunks_failed", "chunks_pending"]
    return Summary(grid.task, list(grid.axes), columns, rows, out=str(out)), cells


def nc_pivot(summ: Summary, fixed: dict | None = None) -> str:
    """Markdown: the NC fraction over (L rows, eps columns), one table per K (and per value of
    any other axis); each entry ``fraction (count, undecided)``, the fraction over the decided
    starts."""
    fixed = fixed or {}
    get = (lambda r, k: r.get(k, fixed.get(k)))
    others = [a for a in summ.axes if a not in ("L", "eps")]
    out = []
    keys = sorted({tuple(get(r, a) for a in others) for r in summ.rows})
    for key in keys:
        rows = [r for r in summ.rows if tuple(get(r, a) for a in others) == key]
        Ls = sorted({get(r, "L") for r in rows})
        es = sorted({get(r, "eps") for r in rows})
        title = ", ".join(f"{a} = {v}" for a, v in zip(others, key))
        out.append(f"NC fraction{' (' + title + ')' if title else ''}; entries: NC fraction of "
                   "the decided inits (inits, undecided)\n")
        out.append("| L \\ eps | " + " | ".join(f"{e:g}" for e in es) + " |")
        out.append("|---" * (len(es) + 1) + "|")
        for L in Ls:
            cells = []
            for e in es:
                r = next((r for r in rows if get(r, "L") == L and get(r, "eps") == e), None)
                if r is None or not r.get("count"):
                    cells.append("")
                else:
                    cells.append(f"{r['nc_fraction']:.3f} ({r['count']}, {r['undecided']})")
            out.append(f"| {L} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def collect(out, figures: bool = True, fig_dir=None) -> Summary:
    """Summarise the finished chunks of the sweep in ``out``; write ``summary.csv``,
    ``summary.md``, ``summary.json`` and (``figures``) the standard PNGs into ``out``."""
    out = Path(out)
    summ, cells = summarise(out)
    store.atomic_write_bytes(out / "summary.csv", summ.to_csv().encode())
    store.atomic_write_bytes(out / "summary.md", summ.to_markdown().encode())
    if summ.task == "classify" and cells:
        store.atomic_write_bytes(out / "nc_fraction.md",
                                 nc_pivot(summ, cells[0][0].params).encode())
    if figures:
        from .figures import standard_figures
        summ.figures = [str(p) for p in standard_figures(summ, cells, Path(fig_dir) if fig_dir
                                                        else out / "figures")]
    store.atomic_write_bytes(out / "summary.json",
                             json.dumps(summ.to_dict(), default=_json_default).encode())
    return summ


def _json_default(o):
    if isinstance(o, (np.integer, np.floating, np.bool_)):
        return o.item()
    raise TypeError(type(o))


__all__ = ["collect", "summarise", "wilson", "Summary", "format_value"]
