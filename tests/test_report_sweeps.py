"""`svdyn report` runs its grid studies through the sweep runner: the same numbers as direct
certified-classifier calls on the chunks' seeds, no recomputation on a rerun, resume after an
interruption, a process pool, and one-line errors for bad executor options."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from svdyn.analysis import basins  # noqa: E402
from svdyn.analysis.certify import certify_limit  # noqa: E402
from svdyn.analysis.report_sweeps import (SweepSettings, k4_map_grid, k4_map_records,  # noqa: E402
                                          mc_grid, mc_records, run_study)
from svdyn.cli.main import main  # noqa: E402
from svdyn.spec import ModelSpec, random_init_z  # noqa: E402
from svdyn.sweep import status, store  # noqa: E402
from svdyn.sweep.grid import chunk_entropy  # noqa: E402


def _section(text: str, key: str) -> str:
    a = text.index(f"<!-- svdyn-report:{key} -->")
    return text[a:text.index(f"<!-- /svdyn-report:{key} -->")]


def _quiet(tmp_path) -> SweepSettings:
    return SweepSettings(tmp_path / "work", progress=False, log=lambda m: None)


def test_report_monte_carlo_and_maps_match_direct_certified_calls(tmp_path):
    # Monte Carlo: 12 starts per cell in chunks of 5, 5, 2
    raw = mc_grid(8, (2, 3), (0.1,), samples=12, seed=2, chunk=5)
    grid, cells, out, rep = run_study(_quiet(tmp_path), "mc", raw)
    assert (rep.chunks, rep.computed, rep.failed) == (6, 6, 0)
    assert out == tmp_path / "work" / "mc" and (out / "summary.csv").exists()
    recs = mc_records(grid, cells)
    assert [(r["classes"], r["depth"], r["init_scale"]) for r in recs] == [(8, 2, 0.1),
                                                                          (8, 3, 0.1)]
    for rec, cell in zip(recs, grid.cells()):
        spec = ModelSpec(8, cell.params["L"])
        z0 = np.concatenate([
            random_init_z(spec, 0.1, np.random.default_rng(np.random.SeedSequence(
                chunk_entropy(2, cell, j))), batch=b - a)
            for j, (a, b) in enumerate(((0, 5), (5, 10), (10, 12)))])
        c = certify_limit(spec, z0, is_z=True)      # one batch, not chunked
        nd = int(c.decided.sum())
        assert rec["samples"] == 12 and rec["decided"] == nd
        assert rec["undecided"] == c.undecided
        assert rec["nc_count"] == int(np.sum(c.nc & c.decided))
        assert rec["nc_fraction"] == (rec["nc_count"] / nd if nd else None)
        assert rec["limit_histogram"] == c.histogram()
        ranks = c.rank[c.decided]
        assert rec["rank_histogram"] == {int(r): int(np.sum(ranks == r))
                                         for r in np.unique(ranks)}
        assert rec["seed"] == 2 and rec["chunk"] == 5 and "SeedSequence" in rec["seeds"]
    assert recs[0]["nc_fraction"] == 1.0          # L = 2: NC from every start ([H])
    # K = 4 maps: one chunk per (L, eps) row equals basins.k4_map on the same grid
    raw = k4_map_grid((2, 3), 1e-2, 1.0, 3, 0.0, 1.5, 4, basins.K4_Z_FINAL)
    grid, cells, _, _ = run_study(_quiet(tmp_path), "maps", raw)
    maps = k4_map_records(grid, cells)
    for L in (2, 3):
        m = basins.k4_map(L, grid.axes["eps"], grid.normal["init"]["r"])
        for k in ("rank", "decided", "nc_fraction", "nc_wilson95", "undecided", "failed", "n",
                  "eps", "r", "z_final"):
            assert maps[L][k] == m[k], (L, k)


def test_k4_critical_task_matches_the_direct_section_search(tmp_path):
    from svdyn.analysis.report_sweeps import k4_critical_grid, k4_critical_records
    raw = k4_critical_grid((2, 3), (0.1,), 0.05, basins.K4_Z_FINAL)
    grid, cells, out, rep = run_study(_quiet(tmp_path), "crit", raw)
    assert (rep.chunks, rep.computed) == (2, 2)
    crit = k4_critical_records(grid, cells)
    for L in (2, 3):
        d = basins.k4_critical_ratio(L, 0.1, width=0.05)
        d.pop("seconds")
        assert crit[(L, 0.1)] == d, L
    assert crit[(3, 0.1)]["bracket"][0] > 0.3          # L = 3 square basin below r_c
    summ = (out / "summary.csv").read_text().splitlines()
    assert summ[0].startswith("L,eps,rows,count,lo,hi,critical_ratio") and len(summ) == 3


@pytest.mark.parametrize("task, words", [
    ({"bracket_width": 2.0}, ["bracket_width", "< r_max"]),
    ({"points": 1}, ["points = 1"]),
    ({"z_final": 0.5}, ["z_final"]),
    ({"width": 0.1}, ["[task] unknown key 'width'"]),
])
def test_k4_critical_grid_errors_name_the_key(task, words):
    from svdyn.groups import SpecError
    from svdyn.sweep.grid import Grid
    raw = {"axes": {"L": [3], "eps": [0.1]}, "init": {"kind": "none"},
           "task": dict({"kind": "k4_critical"}, **task)}
    with pytest.raises(SpecError) as e:
        Grid.from_dict(raw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    with pytest.raises(SpecError, match="K = 4"):
        Grid.from_dict({"model": {"K": 8}, "axes": {"L": [3]}, "init": {"kind": "none",
                        "eps": 0.1}, "task": {"kind": "k4_critical"}})


def _args(rep: Path, *extra):
    return ["report", "--quick", "--out", str(rep / "REPORT.md"), "--figures",
            str(rep / "figures"), "--no-progress", *extra]


def test_report_rerun_skips_chunks_and_processes_give_the_same_section(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert main(_args(a, "--only", "d2")) == 0
    folder = a / "figures" / "sweeps" / "quick" / "d2_monte_carlo"
    mtimes = {p: p.stat().st_mtime_ns for p in folder.rglob("*.parquet")}
    assert len(mtimes) == 9                        # 3 K x 3 eps, one 64-start chunk each
    first = (a / "REPORT.md").read_text()
    assert main(_args(a, "--only", "d2")) == 0
    last = store.read_run_log(folder)[-1]
    assert (last["computed"], last["skipped"]) == (0, 9)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.parquet")} == mtimes
    assert (a / "REPORT.md").read_text() == first
    # two worker processes, sweep folders in --work: the same section, byte for byte
    work = tmp_path / "work"
    assert main(_args(b, "--only", "d2", "--executor", "processes", "--workers", "2",
                      "--work", str(work))) == 0
    last = store.read_run_log(work / "quick" / "d2_monte_carlo")[-1]
    assert (last["executor"], last["workers"], last["computed"]) == ("processes", 2, 9)
    assert not (b / "figures" / "sweeps").exists()
    assert _section((b / "REPORT.md").read_text(), "d2") == _section(first, "d2")
    assert "| 16 | 10.0 | 64 | 1.000 | 0 |" in first
    capsys.readouterr()


def test_interrupted_report_resumes_from_its_finished_chunks(tmp_path, monkeypatch, capsys):
    from svdyn.sweep import tasks
    real = tasks.TASKS["basin_k4"]
    calls = {"n": 0}

    def interrupted_after_5(*a):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(*a)

    rep = tmp_path / "rep"
    rep.mkdir()
    monkeypatch.setitem(tasks.TASKS, "basin_k4", interrupted_after_5)
    assert main(_args(rep, "--only", "basins")) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ": interrupted" in ln]
    assert lines == [f"svdyn report: interrupted; finished sweep chunks are kept in "
                     f"{(rep / 'figures' / 'sweeps').resolve()}/; rerun the same command to "
                     "resume"]
    assert sorted(p.name for p in rep.iterdir()) == ["figures"]     # no report, no stage
    assert sorted(p.name for p in (rep / "figures").iterdir()) == ["sweeps"]
    assert [p for p in rep.rglob(".*")] == []                       # no temp file left
    folder = rep / "figures" / "sweeps" / "quick" / "basin_k4_maps"
    st = status(folder)
    assert (st["done"], st["pending"], st["running_pid"]) == (5, 43, None)
    monkeypatch.setitem(tasks.TASKS, "basin_k4", real)
    assert main(_args(rep, "--only", "basins")) == 0
    last = store.read_run_log(folder)[-1]
    assert (last["skipped"], last["computed"], last["failed"]) == (5, 43, 0)
    text = (rep / "REPORT.md").read_text()
    assert "run as the sweep `basin_k4_maps`" in _section(text, "basins")
    assert "run as the sweep `k4_critical_ratios`" in _section(text, "basins")
    # a second run recomputes no chunk of any of the four studies
    assert main(_args(rep, "--only", "basins")) == 0
    for study, n in (("basin_k4_maps", 48), ("monte_carlo_K8", 14), ("monte_carlo_K16", 14),
                     ("k4_critical_ratios", 28)):
        last = store.read_run_log(folder.parent / study)[-1]
        assert (last["skipped"], last["computed"]) == (n, 0), study
    assert (rep / "REPORT.md").read_text() == text
    # the saved map equals a direct basins.k4_map on the sweep's grid
    import json
    m = json.loads((rep / "figures" / "basin_k4_depth3.json").read_text())
    d = basins.k4_map(3, m["eps"], m["r"])
    assert (m["rank"], m["decided"], m["undecided"]) == (d["rank"], d["decided"],
                                                         d["undecided"])
    mc = json.loads((rep / "figures" / "monte_carlo.json").read_text())
    assert len(mc) == 28 and all(r["samples"] == (64 if r["classes"] == 8 else 32)
                                 for r in mc)
    capsys.readouterr()


@pytest.mark.parametrize("extra, words", [
    (["--executor", "threads"], ["--executor", "threads"]),
    (["--workers", "0"], ["--workers", "'0'", ">= 1"]),
    (["--workers", "two"], ["--workers", "'two'"]),
    (["--workers", "2"], ["--workers 2", "--executor processes"]),
    (["--executor", "processes", "--scheduler", "tcp://h:8786"], ["--scheduler", "dask"]),
    (["--scheduler", "localhost"], ["--scheduler", "tcp://HOST:8786"]),
])
def test_report_bad_executor_options_are_one_line(tmp_path, capsys, extra, words):
    assert main(_args(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("svdyn report: error:"), err
    for w in words:
        assert w in err[0], (w, err[0])
    assert list(tmp_path.iterdir()) == []


def test_report_stops_with_one_line_when_a_sweep_folder_is_locked(tmp_path, capsys):
    import os
    folder = tmp_path / "figures" / "sweeps" / "quick" / "d2_monte_carlo"
    folder.mkdir(parents=True)
    (folder / "run.lock").write_text(f"{os.getppid()} elsewhere\n")   # a live process
    assert main(_args(tmp_path, "--only", "d2")) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines()
           if not ln.startswith("svdyn report: sweep ")]
    assert len(err) == 1 and err[0].startswith("svdyn report: error: sweep d2_monte_carlo"), err
    assert f"another sweep run (pid {os.getppid()})" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures"]   # no report, no stage


@pytest.mark.parametrize("signame, rc", [("SIGINT", 130), ("SIGTERM", 143)])
def test_sigint_during_report_exits_130_and_keeps_chunks(tmp_path, signame, rc):
    """Ctrl-C (and SIGTERM, handled the same way, exit 143) stops the report, keeps the
    finished chunks and leaves no stage folder or temporary file."""
    import os
    import signal
    import subprocess
    import sys
    import time
    env = dict(os.environ, SVDYN_PROGRESS="0")
    env.pop("SVDYN_SWEEP_FAULT_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "svdyn.cli.main",
                             *_args(tmp_path, "--only", "basins")],
                            stderr=subprocess.PIPE, text=True, env=env)
    chunks = tmp_path / "figures" / "sweeps" / "quick" / "basin_k4_maps" / "chunks"
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None:
        if len([p for p in chunks.rglob("*.parquet") if not p.name.startswith(".")]) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(getattr(signal, signame))
    t_sig = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == rc, err
    assert time.time() - t_sig < 10
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if ": interrupted" in ln] == [
        f"svdyn report: interrupted; finished sweep chunks are kept in "
        f"{(tmp_path / 'figures' / 'sweeps').resolve()}/; rerun the same command to resume"]
    assert not (tmp_path / "REPORT.md").exists()
    assert [p for p in tmp_path.rglob(".*")] == []        # no stage, no temp file
    st = status(chunks.parent)
    assert st["done"] >= 3 and st["running_pid"] is None
