"""Sweep grids, tasks, chunk store and collect (in-process executor)."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from svdyn.groups import SpecError  # noqa: E402
from svdyn.sweep import collect, run, status  # noqa: E402
from svdyn.sweep.summary import wilson  # noqa: E402
from svdyn.sweep.grid import Grid, chunk_entropy  # noqa: E402
from svdyn.sweep import store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def tiny(task="classify", **over):
    g = {"model": {"K": 4}, "axes": {"L": [2, 3], "eps": [0.05, 0.5]},
         "init": {"samples": 6, "seed": 3}, "task": {"kind": task},
         "run": {"chunk": 4}}
    for k, v in over.items():
        g[k] = v
    return g


# ----------------------------------------------------------------------------- grid files
@pytest.mark.parametrize("raw, words", [
    ({"model": {"K": 4, "colour": 1}}, ["[model]", "colour"]),
    ({"model": {"K": "four"}}, ["[model] K", "integer"]),
    ({"axes": {"L": []}}, ["[axes] L", "empty"]),
    ({"axes": {"eps": {"log": [1e-3, 1, 0]}}}, ["[axes] eps.log"]),
    ({"axes": {"depth": [2]}}, ["[axes]", "depth", "sweepable"]),
    ({"axes": {"K": [4]}}, ["K", "also fixed"]),
    ({"task": {"kind": "classify", "z_final": "big"}}, ["[task] z_final", "number"]),
    ({"task": {"kind": "classify", "z_retry": 1e20}}, ["[task] z_retry", "no second stage"]),
    ({"task": {"kind": "classify", "limit_decades": -1}}, ["[task] limit_decades",
                                                           "no limit stage"]),
    ({"task": {"kind": "classify", "classifier": "growth", "m_end": "big"}},
     ["[task] m_end", "number"]),
    ({"task": {"kind": "classify", "max_end": 1e4}},
     ["[task] max_end", 'classifier = "growth"']),
    ({"task": {"kind": "basin_k4", "m_mid": 1e2}}, ["[task] m_mid", 'classifier = "growth"']),
    ({"task": {"kind": "classify", "classifier": "growth", "n_stops": 4}},
     ["[task] n_stops", 'classifier = "certified"']),
    ({"task": {"kind": "classify", "classifier": "exact"}}, ["[task] classifier", "exact"]),
    ({"task": {"kind": "classify", "n_stops": 2}}, ["[task] n_stops", ">= 3"]),
    ({"task": {"kind": "dance"}}, ["[task] kind", "dance"]),
    ({"results": {}}, ["unknown section", "results"]),
    ({"run": {"chunk": 0}}, ["[run] chunk"]),
    ({"model": {"K": 4, "lam": 0.1}}, ["lam = 0"]),
])
def test_grid_errors_name_the_key(raw, words):
    g = tiny()
    for sec, d in raw.items():
        g[sec] = dict(g.get(sec, {}), **d) if sec != "axes" else dict(d)
    with pytest.raises(SpecError) as e:
        Grid.from_dict(g)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_axis_ranges_match_numpy():
    g = Grid.from_dict({"model": {"K": 4}, "axes": {
        "eps": {"log": [1e-3, 1.0, 7]}, "L": {"range": [2, 8, 3]},
        "lam": {"linear": [0.0, 0.1, 3]}}, "task": {"kind": "flow", "t_end": 1.0}})
    np.testing.assert_allclose(g.axes["eps"], np.geomspace(1e-3, 1, 7), rtol=1e-11)
    assert g.axes["L"] == [2, 5, 8]
    np.testing.assert_allclose(g.axes["lam"], [0.0, 0.05, 0.1])
    assert len(g.cells()) == 7 * 3 * 3
    assert g.normal["tolerances"]["atol"] == 1e-12  # the flow default


def test_examples_parse():
    for p in sorted((ROOT / "examples").glob("sweep_*.toml")):
        g = Grid.load(p)
        assert g.chunks(), p
    phase = Grid.load(ROOT / "examples" / "sweep_phase.toml")
    assert sum(c.rows for c in phase.cells()) == 100352


def test_chunk_seeds_independent_of_chunking_elsewhere_and_of_axis_extension():
    a = Grid.from_dict(tiny())
    b = Grid.from_dict(tiny(axes={"L": [2, 3, 5], "eps": [0.05, 0.5]}))
    ha = {c.id: a.task_hash(c) for c in a.chunks()}
    hb = {c.id: b.task_hash(c) for c in b.chunks()}
    assert all(hb[k] == v for k, v in ha.items())  # existing cells keep their hash
    assert len(set(ha.values())) == len(ha)
    c0 = a.chunks()[0]
    e = chunk_entropy(3, c0.cell, 0)
    assert e != chunk_entropy(3, c0.cell, 1) and e != chunk_entropy(4, c0.cell, 0)


def test_wilson_interval_closed_form():
    # the Wilson bounds are the roots in p of (phat - p)^2 = z^2 p (1 - p) / n
    z = 1.959963984540054
    for k, n in ((0, 10), (3, 10), (10, 10), (37, 120)):
        ph = k / n
        roots = np.sort(np.roots([1 + z * z / n, -(2 * ph + z * z / n), ph * ph]).real)
        lo, hi = wilson(k, n)
        np.testing.assert_allclose([lo, hi], np.clip(roots, 0, 1), atol=1e-12)
    assert all(math.isnan(x) for x in wilson(0, 0))


# ----------------------------------------------------------------------------- tasks
def test_classifier_defaults_are_certify_defaults():
    from svdyn.analysis import certify
    from svdyn.sweep.grid import CLASSIFIERS
    t = Grid.from_dict(tiny()).normal["task"]
    d = {"z_final": certify.Z_FINAL, "n_stops": certify.N_STOPS, "z_retry": 0.0,
         "limit_decades": certify.LIMIT_DECADES}
    assert t == {"kind": "classify", "classifier": "certified", **d}
    assert {k: d for k, (_, d) in CLASSIFIERS["certified"].items()} == d
    import inspect
    sig = inspect.signature(certify.certify_limit).parameters
    assert sig["z_retry"].default is None and sig["limit_decades"].default == d["limit_decades"]
    raw = tiny()
    raw["task"] = {"kind": "classify", "classifier": "growth"}
    g = Grid.from_dict(raw)
    assert set(g.normal["task"]) == {"kind", "classifier", "m_mid", "m_end", "max_end",
                                     "adaptive"}


def test_classify_sweep_matches_direct_calls_and_pandas(tmp_path):
    from svdyn.analysis.certify import certify_limit
    from svdyn.spec import ModelSpec, random_init_z
    g = Grid.from_dict(tiny())
    rep = run(g, tmp_path / "s", quiet=True)
    assert (rep.computed, rep.failed) == (len(g.chunks()), 0)
    # every chunk equals a direct library call on inits drawn from its own seed
    for ch in g.chunks():
        cols = store.read_chunk(tmp_path / "s" / ch.relpath)
        spec = ModelSpec(4, ch.cell.params["L"])
        rng = np.random.default_rng(np.random.SeedSequence(chunk_entropy(3, ch.cell, ch.index)))
        z0 = random_init_z(spec, ch.cell.params["eps"], rng, batch=ch.stop - ch.start)
        np.testing.assert_array_equal(cols["z0"], z0)
        c = certify_limit(spec, z0, is_z=True)
        np.testing.assert_array_equal(cols["rank"], c.rank)
        np.testing.assert_array_equal(cols["nc"], c.nc)
        np.testing.assert_array_equal(cols["decided"], c.decided)
        np.testing.assert_array_equal(cols["error"], c.direction_error)
        np.testing.assert_array_equal(cols["steps"], c.steps)
        assert [list(x) for x in cols["support"]] == \
            [np.nonzero(row)[0].tolist() for row in c.support]
        for k in ("label", "support_class", "reason", "status"):
            assert list(cols[k]) == list(getattr(c, k)), k
    summ = collect(tmp_path / "s")
    assert [Path(p).name for p in summ.figures] == ["nc_fraction.png", "rank_hist.png"]
    assert (tmp_path / "s" / "summary.csv").read_text().count("\n") == 5
    pivot = (tmp_path / "s" / "nc_fraction.md").read_text()
    r3 = next(r for r in summ.rows if r["L"] == 3 and r["eps"] == 0.5)
    assert f"| 3 | " in pivot and f"{r3['nc_fraction']:.3f} (6, {r3['undecided']})" in pivot
    for row in summ.rows:     # undecided apart; fractions and histograms over decided rows
        assert row["decided"] + row["undecided"] == row["count"] == 6
        assert sum(int(p.split(":")[1]) for p in row["rank_hist"].split()) == row["decided"]
        assert sum(int(p.rsplit(":", 1)[1]) for p in row["support_hist"].split("; ")
                   if p) == row["decided"]
        if row["L"] == 2:     # NC by the theorem of [H]
            assert row["nc_fraction"] == 1.0 and row["rank_hist"] == "3:6"
    st = status(tmp_path / "s")
    assert (st["done"], st["pending"], st["failed"]) == (len(g.chunks()), 0, 0)
    # pandas reads the hive tree directly; its NC fractions agree with the summary
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(tmp_path / "s" / "chunks")
    assert len(df) == 4 * 6 and set(df.columns) >= {"L", "eps", "nc", "rank", "support"}
    for row in summ.rows:
        sel = df[(df.L.astype(str) == str(row["L"])) & (df.eps.astype(str) == repr(row["eps"]))]
        assert len(sel) == row["count"] == 6
        dec = sel[sel.decided]
        assert (row["nc_fraction"] == dec.nc.mean() if len(dec) else
                math.isnan(row["nc_fraction"]))
        assert row["nc_lo"] <= row["nc_fraction"] <= row["nc_hi"]


def test_growth_classifier_path_matches_classify_states(tmp_path):
    from svdyn.analysis.geometry import DECIDED, classify_states
    from svdyn.spec import ModelSpec, random_init_z
    raw = tiny(axes={"L": [3], "eps": [0.5]})
    raw["task"] = {"kind": "classify", "classifier": "growth", "max_end": 1e4}
    g = Grid.from_dict(raw)
    run(g, tmp_path / "g", quiet=True)
    for ch in g.chunks():
        cols = store.read_chunk(tmp_path / "g" / ch.relpath)
        spec = ModelSpec(4, 3)
        rng = np.random.default_rng(np.random.SeedSequence(chunk_entropy(3, ch.cell, ch.index)))
        z0 = random_init_z(spec, 0.5, rng, batch=ch.stop - ch.start)
        c = classify_states(spec, spec.balanced(z0), 1e2, 1e4, max_end=1e4)
        np.testing.assert_array_equal(cols["rank"], c["rank"])
        np.testing.assert_array_equal(cols["nc"], c["nc"])
        np.testing.assert_array_equal(cols["horizon"], c["horizon"])
        np.testing.assert_array_equal(cols["decided"], np.asarray(c["error"]) <= DECIDED)
    summ = collect(tmp_path / "g", figures=False)
    assert "support_hist" not in summ.columns and "horizon" not in summ.columns
    assert summ.rows[0]["decided"] + summ.rows[0]["undecided"] == 6


def test_flow_task_matches_batched_flow(tmp_path):
    from svdyn.integrate import flow
    from svdyn.spec import ModelSpec, random_init_z
    raw = {"model": {"K": 4, "L": 3, "lam": 1e-2}, "axes": {"eps": [0.1, 0.3]},
           "init": {"samples": 5, "seed": 1}, "task": {"kind": "flow", "t_end": 20.0},
           "run": {"chunk": 5}}
    g = Grid.from_dict(raw)
    run(g, tmp_path / "f", quiet=True)
    spec = ModelSpec(4, 3, weight_decay=1e-2)
    for ch in g.chunks():
        cols = store.read_chunk(tmp_path / "f" / ch.relpath)
        rng = np.random.default_rng(np.random.SeedSequence(chunk_entropy(1, ch.cell, 0)))
        z0 = random_init_z(spec, ch.cell.params["eps"], rng, batch=5)
        tr = flow(spec, spec.balanced(z0), save_at=[20.0], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(cols["z"], tr.z[:, -1])
        np.testing.assert_array_equal(cols["s"], tr.s[:, -1].reshape(5, -1))
        assert cols["status"].tolist() == ["ok"] * 5


def test_critical_and_basin_tasks(tmp_path):
    from svdyn.analysis.basins import K4_Z_FINAL, k4_map
    from svdyn.landscape.critical import critical_points
    from svdyn.spec import ModelSpec
    g = Grid.from_dict({"model": {"lam": 1e-2}, "axes": {"K": [4, 8], "L": [2, 3]},
                        "task": {"kind": "critical"}})
    summ_dir = tmp_path / "c"
    run(g, summ_dir, quiet=True)
    summ = collect(summ_dir)
    for row in summ.rows:
        pts = critical_points(ModelSpec(row["K"], row["L"], weight_decay=1e-2))
        best = min(pts, key=lambda p: p.loss)
        assert row["winner"] == best.name and row["winner_loss"] == best.loss
    assert [Path(p).name for p in summ.figures] == ["critical_winner.png"]
    rs = [0.1, 0.5, 0.9, 1.2]
    gb = Grid.from_dict({"axes": {"L": [3], "eps": [0.1]}, "init": {"kind": "k4_plane",
                         "r": rs}, "task": {"kind": "basin_k4", "z_final": K4_Z_FINAL},
                         "run": {"chunk": 3}})
    run(gb, tmp_path / "b", quiet=True)
    sb = collect(tmp_path / "b")
    ref = k4_map(3, [0.1], rs)
    cols = [store.read_chunk(tmp_path / "b" / ch.relpath) for ch in gb.chunks()]
    np.testing.assert_array_equal(np.concatenate([c["rank"] for c in cols]), ref["rank"][0])
    np.testing.assert_array_equal(np.concatenate([c["decided"] for c in cols]),
                                  ref["decided"][0])
    ranks = np.array(ref["rank"][0])
    assert sb.rows[0]["nc"] == int(np.sum(ranks == 3))
    assert sb.rows[0]["undecided"] == ref["undecided"]
    assert [Path(p).name for p in sb.figures] == ["basin_map.png"]


# ----------------------------------------------------------------------------- failures
def test_failed_chunk_recorded_then_retried(tmp_path, monkeypatch):
    g = Grid.from_dict(tiny())
    ch = g.chunks()[1]
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv("SVDYN_SWEEP_FAULT_DIR", str(faults))
    (faults / (ch.id.replace("/", "__") + ".raise")).touch()
    rep = run(g, tmp_path / "s", quiet=True)
    assert rep.failed == 1 and rep.computed == len(g.chunks()) - 1
    rec = store.read_failure(tmp_path / "s", ch)
    assert "injected failure" in rec["error"] and "Traceback" in rec["traceback"]
    st = status(tmp_path / "s")
    assert st["failed"] == 1 and st["failures"][0]["chunk"] == ch.id
    assert collect(tmp_path / "s", figures=False).rows[0]["chunks_failed"] == 1
    (faults / (ch.id.replace("/", "__") + ".raise")).unlink()
    rep = run(g, tmp_path / "s", quiet=True)
    assert (rep.computed, rep.skipped, rep.failed) == (1, len(g.chunks()) - 1, 0)
    assert store.read_failure(tmp_path / "s", ch) is None


def test_corrupted_and_foreign_chunks_are_recomputed(tmp_path):
    g = Grid.from_dict(tiny())
    out = tmp_path / "s"
    run(g, out, quiet=True)
    chs = g.chunks()
    a, b = out / chs[0].relpath, out / chs[1].relpath
    orig = store.read_chunk(a)
    a.write_bytes(a.read_bytes()[:50] + b"garbage" * 10)      # corrupted
    b.write_bytes((out / chs[2].relpath).read_bytes())         # foreign: valid, wrong hash
    rep = run(g, out, quiet=True)
    assert (rep.computed, rep.skipped) == (2, len(chs) - 2)
    again = store.read_chunk(a)
    for k in orig:
        np.testing.assert_array_equal(np.asarray(again[k], dtype=object),
                                      np.asarray(orig[k], dtype=object))
    assert store.chunk_info(b)[0] == g.task_hash(chs[1])


# ----------------------------------------------------------------------------- CLI
def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "svdyn.cli.main", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nK = 4\n[axes]\neps = []\n[task]\nkind = "classify"\n')
    r = _cli("sweep", "run", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "svdyn sweep: error: [axes] eps: the axis is empty; give at least one value"]
    r = _cli("sweep", "status", str(tmp_path / "nothing"))
    assert r.returncode == 2 and r.stderr.startswith("svdyn sweep: error:")
    bad.write_text("[model\n")
    r = _cli("sweep", "run", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not valid TOML" in r.stderr
