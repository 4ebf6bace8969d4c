"""Sweeps: phase diagrams over grids of models and inits, resumable, on any executor.

``svdyn.sweep.run(grid, out=DIR, executor=None)`` runs a grid (a TOML file, its dict, or a
:class:`~svdyn.sweep.grid.Grid`) into DIR (one Parquet file per chunk, hive-partitioned by the
grid axes); ``status(DIR)`` counts done / pending / failed chunks; ``collect(DIR)`` (``summary.py``) builds the
per-cell summary table and the standard figures. See ``grid.py`` for the grid format,
``executors.py`` for in-process / processes / Dask, ``store.py`` for the folder layout.

Imports are lazy: importing this package (as every worker process does first) loads neither
numba nor pyarrow.
"""
from __future__ import annotations

__all__ = ["run", "status", "collect", "Grid", "load_grid"]


def __getattr__(name):
    if name in ("run", "status"):
        from . import runner
        return getattr(runner, name)
    if name == "collect":
        from .summary import collect
        return collect
    if name == "Grid":
        from .grid import Grid
        return Grid
    if name == "load_grid":
        from .grid import Grid
        return Grid.load
    raise AttributeError(name)
