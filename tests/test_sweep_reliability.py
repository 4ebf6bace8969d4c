"""Sweep reliability: bit-identical tables on every executor (in-process, processes, a real
dask LocalCluster of 2 single-threaded worker processes), workers killed mid-chunk, SIGINT,
resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from svdyn.sweep import collect, run, status  # noqa: E402
from svdyn.sweep import store  # noqa: E402
from svdyn.sweep.grid import Grid  # noqa: E402

GRID = {"model": {"K": 4}, "axes": {"L": [2, 3], "eps": [0.1, 1.0]},
        "init": {"samples": 8, "seed": 5}, "task": {"kind": "classify"},
        "run": {"chunk": 4}}


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    old = os.environ.get("SVDYN_SWEEP_FAULT_DIR")
    os.environ["SVDYN_SWEEP_FAULT_DIR"] = str(d)  # inherited by spawned / dask workers
    yield d
    if old is None:
        os.environ.pop("SVDYN_SWEEP_FAULT_DIR")
    else:
        os.environ["SVDYN_SWEEP_FAULT_DIR"] = old


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "s"
    rep = run(GRID, out, quiet=True)
    assert rep.computed == len(Grid.from_dict(GRID).chunks())
    collect(out, figures=False)
    return out


def _files(out: Path):
    return sorted(p.relative_to(out) for p in (out / "chunks").rglob("*") if p.is_file())


def _same_as_reference(out: Path, ref: Path):
    collect(out, figures=False)
    assert (out / "summary.csv").read_bytes() == (ref / "summary.csv").read_bytes()
    files = _files(out)
    assert files == _files(ref)  # nothing lost, nothing duplicated, no temp file left
    for rel in files:
        a, b = store.read_chunk(out / rel), store.read_chunk(ref / rel)
        assert list(a) == list(b)
        for k in a:
            if isinstance(a[k], np.ndarray):
                np.testing.assert_array_equal(a[k], b[k])
            else:
                assert a[k] == b[k]


def _arm(faults: Path, grid: Grid, i: int) -> Path:
    ch = grid.chunks()[i]
    p = faults / (ch.id.replace("/", "__") + ".exit")
    p.touch()
    return p.with_suffix(".fired")


def test_processes_and_dask_bit_identical_with_a_worker_killed(reference, faults, tmp_path):
    g = Grid.from_dict(GRID)
    fired = _arm(faults, g, 5)
    rep = run(GRID, tmp_path / "p", executor="processes", workers=2, quiet=True)
    assert fired.exists(), "the fault was not triggered"
    assert (rep.failed, rep.computed) == (0, len(g.chunks()))
    _same_as_reference(tmp_path / "p", reference)
    meta = [store.chunk_info(tmp_path / "p" / c.relpath)[1] for c in g.chunks()]
    assert {m["threads"] for m in meta} == {1}
    assert len({m["pid"] for m in meta}) >= 2

    pytest.importorskip("distributed")
    fired = _arm(faults, g, 2)
    rep = run(GRID, tmp_path / "d", executor="dask", workers=2, quiet=True)
    assert fired.exists(), "the fault was not triggered"
    assert (rep.failed, rep.computed) == (0, len(g.chunks()))
    assert rep.executor["executor"] == "dask" and rep.executor["workers"] == 2
    _same_as_reference(tmp_path / "d", reference)
    meta = [store.chunk_info(tmp_path / "d" / c.relpath)[1] for c in g.chunks()]
    assert {m["threads"] for m in meta} == {1}


def test_any_executor_from_python(reference, tmp_path):
    with ThreadPoolExecutor(2) as ex:
        rep = run(GRID, tmp_path / "t", executor=ex, quiet=True)
    assert rep.failed == 0
    _same_as_reference(tmp_path / "t", reference)


def test_sigint_keeps_finished_chunks_and_resumes(reference, tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('[model]\nK = 4\n[axes]\nL = [2, 3]\neps = [0.1, 1.0]\n'
                    '[init]\nsamples = 16\nseed = 5\n[task]\nkind = "classify"\n'
                    '[run]\nchunk = 2\n')
    out = tmp_path / "s"
    env = dict(os.environ, SVDYN_PROGRESS="0")
    env.pop("SVDYN_SWEEP_FAULT_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "svdyn.cli.main", "sweep", "run", str(grid),
                             "--out", str(out), "--executor", "processes", "--workers", "2"],
                            stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.time()
    while time.time() - t0 < 120:
        if len([p for p in (out / "chunks").rglob("*.parquet")
                if not p.name.startswith(".")]) >= 3:     # finished chunks, not temp files
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    t_sig = time.time()
    _, err = proc.communicate(timeout=60)
    stop_s = time.time() - t_sig
    assert proc.returncode == 130, err
    assert "interrupted" in err and stop_s < 30
    left = [p for p in out.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert left == [], left
    g = Grid.load(grid)
    kept = _files(out)
    st = status(out)
    assert st["done"] == len(kept) and 0 < st["done"] < len(g.chunks())
    assert st["running_pid"] is None and st["eta_seconds"] > 0
    rep = run(g, out, quiet=True)
    assert rep.skipped == len(kept) and rep.computed == len(g.chunks()) - len(kept)
    assert status(out)["pending"] == 0


def _children(pid: int) -> list:
    """Child pids of ``pid`` from /proc (no procps needed)."""
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(") ", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"      # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_workers_exit_when_the_parent_is_killed(tmp_path):
    """SIGKILL of `svdyn sweep run` (no handler runs): its process workers, busy in chunks of
    minutes, end within seconds instead of computing for nobody."""
    grid = tmp_path / "g.toml"
    grid.write_text('[model]\nK = 16\n[axes]\nL = [3]\neps = [0.01]\n'
                    '[init]\nsamples = 512\nseed = 5\n[task]\nkind = "classify"\n'
                    '[run]\nchunk = 256\n')
    env = dict(os.environ, SVDYN_PROGRESS="0")
    env.pop("SVDYN_SWEEP_FAULT_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "svdyn.cli.main", "sweep", "run", str(grid),
                             "--out", str(tmp_path / "s"), "--executor", "processes",
                             "--workers", "2"], stderr=subprocess.DEVNULL, env=env)
    t0 = time.time()
    kids = []
    while time.time() - t0 < 60 and len(kids) < 2:
        kids = [k for k in _children(proc.pid) if "spawn_main" in _cmdline(k)
                and "tracker_fd" in _cmdline(k)]
        time.sleep(0.2)
    assert len(kids) == 2, "workers did not start"
    time.sleep(3.0)                                  # inside their first chunk
    proc.kill()
    proc.wait(timeout=30)
    t_kill = time.time()
    while time.time() - t_kill < 20 and any(_alive(k) for k in kids):
        time.sleep(0.2)
    alive = [k for k in kids if _alive(k)]
    for k in alive:
        os.kill(k, signal.SIGKILL)
    assert not alive, f"orphaned workers still running {time.time() - t_kill:.0f} s after kill"
