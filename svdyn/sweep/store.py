"""The sweep directory on disk.

::

    DIR/manifest.json                      versions, normalised grid, root seed, chunk count
    DIR/chunks/K=8/L=3/eps=0.001/chunk-00000.parquet   one Parquet file per chunk (hive layout)
    DIR/failed/<chunk id with / -> __>.json   failed chunks: error, traceback, task hash
    DIR/runs.jsonl                         one line per run: executor, workers, counts, wall
    DIR/run.lock                           pid of the run writing DIR (removed at its end)

Every file is written to a temporary name in the same folder and renamed into place
(``os.replace``), so a reader -- or a run after a kill -- sees either the whole file or none.
Each chunk file stores, in its Parquet key-value metadata, the content hash of the task that
made it (``svdyn.sweep.hash``), the seconds it took, the worker and the svdyn version; a chunk
counts as done only when its file reads and that hash matches the current grid's.

Parquet needs ``pyarrow`` (``pip install svdyn[parquet]``); pandas, polars and duckdb read the
chunk tree directly, e.g. ``pandas.read_parquet("DIR/chunks")``.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from ..groups import SpecError
from ..io import atomic_path

HASH_KEY = b"svdyn.sweep.hash"
META_KEY = b"svdyn.sweep.meta"


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the environment
        raise SpecError("sweep results are Parquet files: install pyarrow "
                        "(`pip install svdyn[parquet]`)") from None
    return pa, pq


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`svdyn.io.atomic_path`), creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


# ----------------------------------------------------------------------------- chunk tables
def to_arrow(columns: dict):
    """``{name: values}`` -> pyarrow Table (2-D arrays and lists become list columns)."""
    pa, _ = _pa()
    arrays, names = [], []
    for k, v in columns.items():
        if isinstance(v, np.ndarray) and v.ndim == 2:
            flat = pa.array(np.ascontiguousarray(v).ravel())
            offsets = pa.array(np.arange(0, v.size + 1, max(v.shape[1], 1), dtype=np.int32)
                               if v.shape[1] else np.zeros(v.shape[0] + 1, np.int32))
            arr = pa.ListArray.from_arrays(offsets, flat)
        elif isinstance(v, np.ndarray):
            arr = pa.array(v)
        else:
            arr = pa.array(list(v))
        arrays.append(arr)
        names.append(k)
    return pa.Table.from_arrays(arrays, names=names)


def write_chunk(path: Path, columns: dict, task_hash: str, meta: dict) -> None:
    """Write one chunk table atomically with its hash and metadata."""
    pa, pq = _pa()
    table = to_arrow(columns)
    md = dict(table.schema.metadata or {})
    md[HASH_KEY] = task_hash.encode()
    md[META_KEY] = json.dumps(meta, sort_keys=True).encode()
    table = table.replace_schema_metadata(md)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, str(tmp))


def chunk_info(path: Path):
    """``(hash, meta)`` of a chunk file, or ``None`` when it is missing or unreadable."""
    pa, pq = _pa()
    try:
        md = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException, ValueError):
        return None
    if HASH_KEY not in md:
        return None
    try:
        meta = json.loads(md.get(META_KEY, b"{}"))
    except ValueError:
        meta = {}
    return md[HASH_KEY].decode(), meta


def read_chunk(path: Path) -> dict:
    """Columns of a chunk file as numpy arrays (list columns of equal length -> 2-D)."""
    _, pq = _pa()
    t = pq.read_table(path)
    out = {}
    for name in t.column_names:
        col = t.column(name).combine_chunks()
        if hasattr(col, "flatten") and hasattr(col, "offsets"):  # list column
            off = np.asarray(col.offsets)
            lens = np.diff(off)
            if len(lens) and np.all(lens == lens[0]) and lens[0] > 0:
                out[name] = np.asarray(col.flatten()).reshape(len(lens), lens[0])
            else:
                out[name] = col.to_pylist()
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


# ----------------------------------------------------------------------------- manifest etc.
def versions() -> dict:
    from .. import __version__
    out = {"svdyn": __version__, "python": platform.python_version(),
           "numpy": np.__version__}
    for mod in ("numba", "pyarrow", "dask", "distributed", "torch"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except ImportError:
            pass
    return out


def write_manifest(out: Path, grid, n_chunks: int) -> dict:
    man = {"format": "svdyn-sweep-1", "written": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()),
           "versions": versions(), "grid": grid.normal, "root_seed": grid.root_seed,
           "task": grid.task, "chunks": n_chunks,
           "cells": len(grid.cells()), "axes": list(grid.axes)}
    atomic_write_json(Path(out) / "manifest.json", man)
    return man


def read_manifest(out: Path) -> dict:
    p = Path(out) / "manifest.json"
    if not p.exists():
        raise SpecError(f"{out}: no manifest.json; not a sweep directory (run "
                        "`svdyn sweep run GRID.toml --out DIR` first)")
    try:
        return json.loads(p.read_text())
    except ValueError as e:
        raise SpecError(f"{p}: unreadable manifest ({e})") from None


def failure_path(out: Path, chunk) -> Path:
    return Path(out) / "failed" / (chunk.id.replace("/", "__") + ".json")


def record_failure(out: Path, chunk, task_hash: str, error: str, tb: str = "") -> None:
    atomic_write_json(failure_path(out, chunk), {
        "chunk": chunk.id, "hash": task_hash, "error": error, "traceback": tb,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def clear_failure(out: Path, chunk) -> None:
    try:
        os.unlink(failure_path(out, chunk))
    except FileNotFoundError:
        pass


def read_failure(out: Path, chunk):
    p = failure_path(out, chunk)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def append_run_log(out: Path, entry: dict) -> None:
    with open(Path(out) / "runs.jsonl", "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def read_run_log(out: Path) -> list:
    p = Path(out) / "runs.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_lock(out: Path) -> Path:
    """Create ``DIR/run.lock`` with this pid; a lock held by a live process is an error."""
    p = Path(out) / "run.lock"
    try:
        pid = int(p.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        raise SpecError(f"{out}: another sweep run (pid {pid}) is writing this directory; "
                        "wait for it or stop it first")
    atomic_write_bytes(p, f"{os.getpid()} {platform.node()}\n".encode())
    return p


def describe_lock(lock: Path, desc: dict) -> None:
    """Add the running executor's description (JSON, second line) to the lock file."""
    atomic_write_bytes(lock, f"{os.getpid()} {platform.node()}\n{json.dumps(desc)}\n".encode())


def lock_description(out: Path):
    try:
        lines = (Path(out) / "run.lock").read_text().splitlines()
        return json.loads(lines[1]) if len(lines) > 1 else None
    except (OSError, ValueError):
        return None


def remove_stale_temps(out: Path) -> int:
    """Delete temporary files (``.NAME.*.tmp[.SUFFIX]``, see :func:`svdyn.io.atomic_path`) under
    ``out``; call only while holding the
    lock (no other run is writing). Returns how many were removed."""
    n = 0
    for p in Path(out).rglob(".*.tmp*"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


def release_lock(lock: Path) -> None:
    try:
        if int(lock.read_text().split()[0]) == os.getpid():
            os.unlink(lock)
    except (OSError, ValueError, IndexError):
        pass


def lock_holder(out: Path):
    p = Path(out) / "run.lock"
    try:
        pid = int(p.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None
