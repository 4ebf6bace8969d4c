"""Run a sweep: skip finished chunks, compute the rest on an executor, write each atomically.

Resume rule: a chunk is skipped only when its file reads and its stored content hash equals
the hash of the task the current grid asks for (``Grid.task_hash``); anything else -- missing,
truncated, corrupted, or written by another grid -- is recomputed. Failed chunks are recorded
in ``DIR/failed/`` with the error and retried by the next run.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..groups import SpecError
from . import store
from .grid import Grid


@dataclass
class RunReport:
    out: str
    chunks: int
    skipped: int
    computed: int
    failed: int
    rows: int
    seconds: float
    executor: dict
    interrupted: bool = False
    errors: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def as_grid(grid) -> Grid:
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, dict):
        return Grid.from_dict(grid)
    return Grid.load(grid)


def scan(out: Path, grid: Grid):
    """``[(chunk, hash, state, info)]`` with state ``done`` / ``failed`` / ``pending``; info is
    the chunk file's metadata (done) or the failure record (failed)."""
    res = []
    for ch in grid.chunks():
        h = grid.task_hash(ch)
        got = store.chunk_info(Path(out) / ch.relpath)
        if got is not None and got[0] == h:
            res.append((ch, h, "done", got[1]))
            continue
        f = store.read_failure(out, ch)
        if f is not None and f.get("hash") == h:
            res.append((ch, h, "failed", f))
        else:
            res.append((ch, h, "pending", None))
    return res


def payload(grid: Grid, ch, chunk_id=None) -> dict:
    from .grid import chunk_entropy
    return {"normal": grid.normal, "params": ch.cell.params, "start": ch.start,
            "stop": ch.stop, "entropy": chunk_entropy(grid.root_seed, ch.cell, ch.index),
            "chunk_id": ch.id}


def _store_result(out, ch, h, res):
    meta = {"seconds": res["seconds"], "host": res["host"], "pid": res["pid"],
            "threads": res["threads"], "rows": [ch.start, ch.stop], "chunk": ch.id,
            "written": time.time()}
    store.write_chunk(Path(out) / ch.relpath, res["columns"], h, meta)
    store.clear_failure(out, ch)


def _status_line(msg: str, quiet: bool):
    if not quiet:
        import sys
        print(f"svdyn sweep: {msg}", file=sys.stderr, flush=True)


def run(grid, out, executor=None, *, workers: int | None = None, scheduler: str | None = None,
        progress=None, retries: int = 2, quiet: bool = False,
        label: str | None = None) -> RunReport:
    """Run (or resume) the sweep ``grid`` into the folder ``out``.

    Parameters
    ----------
    grid : Grid, dict (the TOML content) or path of a grid file
    out : output folder (created; see :mod:`svdyn.sweep.store` for its layout)
    executor : ``None``/``"inprocess"`` (default), ``"processes"``, ``"dask"``, or any
        ``concurrent.futures.Executor`` (e.g. ``distributed.Client.get_executor()``)
    workers : worker count for ``processes`` / a dask LocalCluster (default: all cores)
    scheduler : dask scheduler address for an existing cluster (``tcp://HOST:8786``)
    progress : progress bar on stderr (None: when stderr is a terminal)
    retries : how often a chunk whose worker died is resubmitted within this run
    label : the progress bar's label (default ``sweep TASK``)

    Returns
    -------
    RunReport (counts of skipped / computed / failed chunks, wall seconds, executor).
    KeyboardInterrupt propagates after the finished chunks are safely on disk.
    """
    from ..progress import progress_bar
    from .executors import open_pool
    grid = as_grid(grid)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lock = store.acquire_lock(out)
    store.remove_stale_temps(out)  # left by a run killed with SIGKILL mid-write
    pool = None
    interrupted = False
    state = scan(out, grid)
    store.write_manifest(out, grid, len(state))
    # coarse to fine: every cell's chunk 0, then every cell's chunk 1, ... so that a partial
    # run covers the whole grid with fewer samples per cell
    todo = sorted(((ch, h) for ch, h, st, _ in state if st != "done"),
                  key=lambda x: (x[0].index, x[0].cell.index))
    skipped = len(state) - len(todo)
    computed = failed = rows = 0
    errors = []
    desc = {"executor": "inprocess", "workers": 1, "threads": None}
    try:
        pool = open_pool(executor, grid.normal, workers, scheduler) if todo else None
        if pool is not None:
            desc = pool.describe
        else:
            try:
                import numba
                desc["threads"] = int(numba.get_num_threads())
            except ImportError:  # pragma: no cover
                pass
        store.describe_lock(lock, desc)
        n_rows = sum(ch.stop - ch.start for ch, _ in todo)
        _status_line(f"{len(state)} chunks, {skipped} done, {len(todo)} to run ({n_rows} rows) "
                     f"on {desc['executor']}" + (f" ({desc['workers']} workers)"
                                                 if pool is not None else ""), quiet)
        with progress_bar(n_rows, label or f"sweep {grid.task}", enabled=progress, unit="row") as bar:
            def ok(ch, h, res):
                nonlocal computed, rows
                _store_result(out, ch, h, res)
                computed += 1
                rows += ch.stop - ch.start
                bar.update(ch.stop - ch.start)

            def bad(ch, h, err, tb=""):
                nonlocal failed
                store.record_failure(out, ch, h, err, tb)
                failed += 1
                errors.append(f"{ch.id}: {err}")
                bar.update(ch.stop - ch.start)

            if pool is None:
                from .worker import compute
                for ch, h in todo:
                    try:
                        res = compute(payload(grid, ch))
                    except Exception as e:
                        bad(ch, h, f"{type(e).__name__}: {e}", traceback.format_exc())
                    else:
                        ok(ch, h, res)
            else:
                _drive(pool, grid, todo, ok, bad, retries)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if pool is not None:
            pool.close(interrupted)
        wall = time.perf_counter() - t0
        entry = {"start": time.time() - wall, "seconds": wall, "host": socket.gethostname(),
                 "pid": os.getpid(), "computed": computed, "skipped": skipped,
                 "failed": failed, "rows": rows, "interrupted": interrupted, **desc}
        store.append_run_log(out, entry)
        store.release_lock(lock)
    return RunReport(str(out), len(state), skipped, computed, failed, rows, wall, desc,
                     interrupted, errors)


def _drive(pool, grid, todo, ok, bad, retries):
    """Keep ``pool.window`` chunks in flight; resubmit chunks whose worker died."""
    queue = collections.deque(todo)
    inflight = {}
    deaths = collections.Counter()
    broken = False
    while queue or inflight:
        while queue and not broken and len(inflight) < pool.window:
            ch, h = queue.popleft()
            try:
                fut = pool.submit(payload(grid, ch))
            except cf.BrokenExecutor:
                queue.appendleft((ch, h))
                broken = True
                break
            inflight[fut] = (ch, h)
        if inflight:
            done, _ = cf.wait(list(inflight), timeout=0.5, return_when=cf.FIRST_COMPLETED)
        else:
            done = ()
        for fut in done:
            ch, h = inflight.pop(fut)
            try:
                res = fut.result()
            except cf.BrokenExecutor as e:
                broken = True
                deaths[ch.id] += 1
                if deaths[ch.id] > retries:
                    bad(ch, h, f"worker died {deaths[ch.id]} times running this chunk ({e})")
                else:
                    queue.appendleft((ch, h))
            except cf.CancelledError:
                queue.appendleft((ch, h))
            except Exception as e:  # the task raised (or dask gave up: KilledWorker)
                tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
                bad(ch, h, f"{type(e).__name__}: {e}", tb)
            else:
                ok(ch, h, res)
        if broken and not inflight:
            if not pool.restartable:
                for ch, h in queue:
                    bad(ch, h, "the executor broke (a worker died) and cannot be restarted")
                queue.clear()
                break
            pool.restart()
            broken = False


def status(out) -> dict:
    """Done / pending / failed chunk counts of a sweep folder, with an ETA.

    The ETA is the measured seconds per row of the finished chunks times the pending rows,
    divided by the worker count of the running run (else the last one)."""
    out = Path(out)
    man = store.read_manifest(out)
    grid = Grid(man["grid"])
    state = scan(out, grid)
    counts = collections.Counter(st for _, _, st, _ in state)
    sec = [info.get("seconds", 0.0) for _, _, st, info in state if st == "done"]
    done_rows = sum(ch.stop - ch.start for ch, _, st, _ in state if st == "done")
    todo_rows = sum(ch.stop - ch.start for ch, _, st, _ in state if st != "done")
    runs = store.read_run_log(out)
    running = store.lock_holder(out)
    par = 1
    last = store.lock_description(out) if running else (runs[-1] if runs else None)
    if last:
        par = int(last.get("workers") or 1)
        if last.get("executor") == "inprocess":
            par = int(last.get("threads") or 1)
    eta = None
    if done_rows and sec:
        eta = sum(sec) / done_rows * todo_rows / max(par, 1)
    failures = [{"chunk": ch.id, "error": info.get("error", "")}
                for ch, _, st, info in state if st == "failed"]
    return {"out": str(out), "task": grid.task, "cells": len(grid.cells()),
            "chunks": len(state), "done": counts["done"], "pending": counts["pending"],
            "failed": counts["failed"], "rows_done": done_rows, "rows_todo": todo_rows,
            "compute_seconds": sum(sec), "eta_seconds": eta, "eta_parallelism": par,
            "running_pid": running, "failures": failures, "runs": len(runs)}


def load_grid_from(out) -> Grid:
    man = store.read_manifest(Path(out))
    try:
        return Grid(man["grid"])
    except (KeyError, TypeError):
        raise SpecError(f"{out}/manifest.json has no grid") from None
