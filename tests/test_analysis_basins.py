"""Basins of NC for K = 4: critical ratios grow with depth and with smaller init."""
import json

import numpy as np
import pytest

from svdyn.analysis import basins
from svdyn.analysis.report import plot_k4_map
from svdyn.cli.main import main

H = {"m_mid": 1e1, "m_end": 1e3}  # one short fixed horizon: the ordering holds at each one


def test_critical_ratio_increases_with_depth_and_smaller_init():
    rc = {(L, e): basins.k4_critical_ratio(L, e, tol=1e-3, **H)["critical_ratio"]
          for L in (3, 4, 6) for e in (0.1, 0.01)}
    for e in (0.1, 0.01):
        assert rc[(3, e)] < rc[(4, e)] < rc[(6, e)]
    for L in (3, 4, 6):
        assert rc[(L, 0.1)] < rc[(L, 0.01)]
    assert all(0 < v < 1 for v in rc.values())


def test_critical_ratio_bracket_is_honest():
    # just below / above the reported bracket the outcome is square / NC
    from svdyn.analysis.geometry import classify_states
    r = basins.k4_critical_ratio(4, 0.1, tol=1e-3, **H)
    lo, hi = r["bracket"]
    spec = basins._k4_spec(4)
    c = classify_states(spec, basins.k4_states(spec, 0.1, [lo - 0.01, hi + 0.01]),
                        H["m_mid"], H["m_end"], adaptive=False)
    assert c["nc"].tolist() == [False, True]


def test_depth2_has_no_square_basin():
    r = basins.k4_critical_ratio(2, 0.1, tol=1e-3, **H)
    assert r["critical_ratio"] < 1e-3


def test_horizon_extrapolation_moves_up():
    r = basins.k4_critical_ratio(6, 0.1, tol=1e-3, horizons=(1e2, 1e3, 1e4))
    v = [h["critical_ratio"] for h in r["by_horizon"]]
    assert v[0] <= v[1] <= v[2] <= r["critical_ratio"] + 1e-3
    assert r["horizon_error"] < 0.01


def test_map_and_monte_carlo(tmp_path):
    m = basins.k4_map(4, np.geomspace(0.01, 1, 3), np.array([0.05, 0.99]))
    rank = np.asarray(m["rank"])
    assert rank[:, 0].tolist() == [2, 2, 2] and rank[:, 1].tolist() == [3, 3, 3]
    assert m["failed"] == 0
    png = plot_k4_map(m, tmp_path / "m.png")
    assert png.stat().st_size > 1000
    mc = basins.monte_carlo(8, 2, 0.1, 16, seed=1)
    assert mc["nc_fraction"] == 1.0 and mc["rank_histogram"] == {7: 16}


def test_cli_basin(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["basin", "--classes", "4", "--depth", "3", "--init-scale", "0.1",
                 "--critical-ratio", "--tol", "1e-3", "--margins", "1e1,1e3",
                 "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert 0 < d["critical_ratio"] < 1
    assert main(["basin", "--classes", "8", "--depth", "3", "--critical-ratio",
                 "--init-scale", "0.1"]) == 2
    assert main(["basin", "--classes", "4", "--depth", "3"]) == 2


def test_report_landscape_section_fallback(monkeypatch, tmp_path):
    import sys
    from svdyn.analysis import report
    monkeypatch.setitem(sys.modules, "svdyn.landscape.report", None)  # import fails
    out = report.build_report(tmp_path / "R.md", tmp_path / "f", quick=True, only="pu",
                              log=lambda m: None)
    assert "not generated" in out.read_text()
