"""The report's grid studies as sweeps: grids, running them, and their records.

The chunkable studies of ``svdyn report`` -- the Monte Carlo cells of sections d2 and basins
(``classify`` task), the K = 4 basin maps (``basin_k4`` task) and the K = 4 critical-ratio
brackets (``k4_critical`` task, one section search per (L, eps) cell) -- are sweep grids
(:mod:`svdyn.sweep.grid`) run by :func:`svdyn.sweep.run` into ``WORK/<study>/`` (default
``FIGURES/sweeps/``; ``--quick`` grids go to ``WORK/quick/<study>/`` so that a smoke test never
overwrites the full run's chunks). So the report shows the runner's progress bar, resumes an
interrupted run chunk by chunk (a rerun of the same command skips every finished chunk), and
runs on any executor of the runner (in-process, processes, dask, a cluster's
``concurrent.futures.Executor``).

Seeds: every chunk draws its starts from the sweep's derivation, ``SeedSequence((root seed, the
cell's axis values, chunk index))`` (:func:`svdyn.sweep.grid.chunk_entropy`), so the numbers do
not depend on the executor, the worker count or the order of completion; the root seed is the
report's old seed of the study.

The records built here have the same keys as :func:`basins.monte_carlo` and
:func:`basins.k4_map` (built by the same functions, :func:`basins.mc_result` and
:func:`basins.map_result`), so the report's data files keep their format.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..groups import SpecError

#: rows per chunk file of the Monte Carlo studies (about 1-4 s of certification per chunk on
#: one core at K = 8, 16)
MC_CHUNK = {8: 200, 16: 100}
MC_CHUNK_DEFAULT = 200


class SweepSetupError(SpecError):
    """The sweep could not start (executor, scheduler, a run holding the folder's lock): not a
    failure of the study, so the report stops with this message instead of going on."""


@dataclass
class SweepSettings:
    """Where and how the report runs its sweeps (``svdyn report --work --executor --workers
    --scheduler``). ``executor`` is anything :func:`svdyn.sweep.run` takes."""

    work: Path
    executor: object = None
    workers: int | None = None
    scheduler: str | None = None
    progress: bool | None = None
    log: object = None

    def folder(self, study: str, quick: bool) -> Path:
        return Path(self.work) / ("quick" if quick else "") / study


# ----------------------------------------------------------------------------- grids
def mc_grid(K: int, depths, eps, samples: int, seed: int, chunk: int | None = None) -> dict:
    """Monte Carlo over (L, eps) at one K: ``z_j(0) = eps U(0.5, 1.5)`` (walsh for K a power
    of two), certified limits (``classify`` task, the certified classifier's defaults)."""
    return {"model": {"K": int(K), "loss": "ce"},
            "axes": {"L": [int(L) for L in depths], "eps": [float(e) for e in eps]},
            "init": {"kind": "scale", "samples": int(samples), "seed": int(seed)},
            "task": {"kind": "classify", "classifier": "certified"},
            "run": {"chunk": int(chunk or min(samples, MC_CHUNK.get(K, MC_CHUNK_DEFAULT)))}}


def mc_grid_over_k(Ks, depth: int, eps, samples: int, seed: int, chunk: int) -> dict:
    """Monte Carlo over (K, eps) at one depth (section d2)."""
    return {"model": {"L": int(depth), "loss": "ce"},
            "axes": {"K": [int(K) for K in Ks], "eps": [float(e) for e in eps]},
            "init": {"kind": "scale", "samples": int(samples), "seed": int(seed)},
            "task": {"kind": "classify", "classifier": "certified"},
            "run": {"chunk": int(chunk)}}


def k4_map_grid(depths, eps_lo: float, eps_hi: float, n_eps: int, r_lo: float, r_hi: float,
                n_r: int, z_final: float) -> dict:
    """K = 4 basin maps: cells (L, eps), rows r of ``z(0) = eps (0, 1, 1, r)`` (``basin_k4``
    task, certified classifier with its last stop at ``z_final``); one chunk per cell."""
    return {"model": {"loss": "ce"},
            "axes": {"L": [int(L) for L in depths], "eps": {"log": [eps_lo, eps_hi, n_eps]}},
            "init": {"kind": "k4_plane", "r": {"linear": [r_lo, r_hi, n_r]}},
            "task": {"kind": "basin_k4", "classifier": "certified", "z_final": float(z_final)},
            "run": {"chunk": int(n_r)}}


def k4_critical_grid(depths, eps, bracket_width: float, z_final: float) -> dict:
    """Certified brackets of the K = 4 critical ratio over (L, eps) (``k4_critical`` task:
    one :func:`basins.k4_critical_ratio` section search per cell, one chunk each)."""
    return {"model": {"loss": "ce"},
            "axes": {"L": [int(L) for L in depths], "eps": [float(e) for e in eps]},
            "init": {"kind": "none"},
            "task": {"kind": "k4_critical", "bracket_width": float(bracket_width),
                     "z_final": float(z_final)},
            "run": {"chunk": 1}}


# ----------------------------------------------------------------------------- running
def run_study(settings: SweepSettings, study: str, raw: dict, quick: bool = False):
    """Run (or resume) one study's grid into its sweep folder, collect it (``summary.*`` in
    that folder) and return ``(grid, cells, folder, run report)`` with ``cells`` as
    :func:`svdyn.sweep.summary.load_cells` gives them. A failed chunk fails the study with
    the chunk's error (a rerun retries it); KeyboardInterrupt propagates with the finished
    chunks on disk."""
    from ..sweep.grid import Grid
    from ..sweep.runner import run
    from ..sweep.summary import collect, load_cells
    grid = Grid.from_dict(raw)
    out = settings.folder(study, quick)
    log = settings.log or (lambda m: print(m, file=sys.stderr, flush=True))
    log(f"svdyn report: sweep {study} -> {out}")
    try:
        rep = run(grid, out, settings.executor, workers=settings.workers,
                  scheduler=settings.scheduler, progress=settings.progress,
                  label=f"report: {study}")
    except SpecError as e:
        raise SweepSetupError(f"sweep {study} ({out}): {e}") from None
    if rep.failed:
        first = rep.errors[0].splitlines()[0] if rep.errors else "?"
        raise RuntimeError(f"sweep {study}: {rep.failed} of {rep.chunks} chunks failed "
                           f"(first: {first}); details in {out}/failed/; rerun the same "
                           "command to retry them")
    collect(out, figures=False)
    grid, cells = load_cells(out, grid)
    return grid, cells, out, rep


def _check_complete(cells, study: str, out) -> None:
    for cell, cols, cnt in cells:
        if cnt["failed"] or cnt["pending"] or len(cols.get("nc", [])) != cell.rows:
            raise RuntimeError(f"sweep {study}: cell {cell.path} is incomplete in {out}; "
                               "rerun the same command")


# ----------------------------------------------------------------------------- records
def mc_records(grid, cells, study: str = "", out=None) -> list:
    """One :func:`basins.monte_carlo`-style record per cell (grid order), plus ``seed`` = the
    grid's root seed, ``seeds`` (how the chunk seeds derive from it) and ``chunk``."""
    from . import basins
    from ..spec import ModelSpec
    _check_complete(cells, study, out)
    recs = []
    for cell, cols, _ in cells:
        p = cell.params
        group = ModelSpec(p["K"], p["L"], group=p.get("group", "")).group
        r = basins.mc_result(p["K"], p["L"], group, p["eps"], grid.root_seed, cols["decided"],
                             cols["nc"], cols["rank"], cols["support_class"], cols["reason"],
                             cols["status"])
        r["seeds"] = "sweep: SeedSequence((root seed, cell axis values, chunk index))"
        r["chunk"] = grid.chunk_size
        recs.append(r)
    return recs


def k4_critical_records(grid, cells, study: str = "", out=None) -> dict:
    """``{(L, eps): basins.k4_critical_ratio-style record}`` (without wall times) from a
    :func:`k4_critical_grid` sweep."""
    for cell, cols, cnt in cells:
        if cnt["failed"] or cnt["pending"] or len(cols.get("lo", [])) != 1:
            raise RuntimeError(f"sweep {study}: cell {cell.path} is incomplete in {out}; "
                               "rerun the same command")
    t = grid.normal["task"]
    out_ = {}
    for cell, c, _ in cells:
        L, eps = cell.params["L"], cell.params["eps"]
        lo, hi = float(c["lo"][0]), float(c["hi"][0])
        out_[(L, eps)] = {
            "classes": 4, "depth": L, "init_scale": eps, "bracket": [lo, hi],
            "critical_ratio": float(c["critical_ratio"][0]), "width": float(c["width"][0]),
            "width_target": t["bracket_width"], "width_reached": bool(c["width_reached"][0]),
            "undecided_band": float(c["undecided_band"][0]),
            "classified": int(c["classified"][0]), "undecided": int(c["undecided"][0]),
            "z_final": t["z_final"], "init": "z(0) = eps * (0, 1, 1, r), balanced, walsh",
            "classifier": "certify_limit"}
    return out_


def k4_map_records(grid, cells, study: str = "", out=None) -> dict:
    """``{L: basins.k4_map-style record}`` from a :func:`k4_map_grid` sweep."""
    from . import basins
    _check_complete(cells, study, out)
    r_grid = np.asarray(grid.normal["init"]["r"], float)
    z_final = grid.normal["task"]["z_final"]
    maps = {}
    for L in grid.axes["L"]:
        rows = [(cell.params["eps"], cols) for cell, cols, _ in cells
                if cell.params["L"] == L]
        rows.sort(key=lambda x: x[0])
        for _, cols in rows:
            if not np.array_equal(np.asarray(cols["r"], float), r_grid):
                raise RuntimeError(f"sweep {study}: a chunk's r values differ from the grid's")
        eps = [e for e, _ in rows]
        rank = np.array([np.asarray(c["rank"]) for _, c in rows])
        dec = np.array([np.asarray(c["decided"], bool) for _, c in rows])
        nc = np.concatenate([np.asarray(c["nc"], bool) for _, c in rows])
        status = [s for _, c in rows for s in c["status"]]
        maps[L] = basins.map_result(L, eps, r_grid, rank, dec, nc, status, z_final)
        maps[L]["chunk"] = grid.chunk_size
    return maps
