"""Basins of NC for K = 4 on the certified classifier: critical ratios grow with depth and with
smaller init; maps, Monte Carlo and the basin CLI."""
import json

import numpy as np

from svdyn.analysis import basins
from svdyn.analysis.report import plot_k4_map
from svdyn.cli.main import main


def test_critical_ratio_increases_with_depth_and_smaller_init():
    br = {(L, e): basins.k4_critical_ratio(L, e, width=1e-2)["bracket"]
          for L in (3, 4, 6) for e in (0.1, 0.01)}
    for e in (0.1, 0.01):  # disjoint certified brackets, in order
        assert br[(3, e)][1] < br[(4, e)][0] and br[(4, e)][1] < br[(6, e)][0]
    for L in (3, 4, 6):
        assert br[(L, 0.1)][1] < br[(L, 0.01)][0]
    assert all(0 < lo < hi < 1 for lo, hi in br.values())


def test_depth2_has_no_square_basin():
    r = basins.k4_critical_ratio(2, 0.1, width=1e-3)
    assert r["bracket"][1] <= 1e-3 and r["undecided"] == 0


def test_map_and_monte_carlo(tmp_path):
    m = basins.k4_map(4, np.geomspace(0.01, 1, 3), np.array([0.05, 0.99]))
    rank = np.asarray(m["rank"])
    assert rank[:, 0].tolist() == [2, 2, 2] and rank[:, 1].tolist() == [3, 3, 3]
    assert m["failed"] == 0 and m["undecided"] == 0
    png = plot_k4_map(m, tmp_path / "m.png")
    assert png.stat().st_size > 1000
    mc = basins.monte_carlo(8, 2, 0.1, 16, seed=1)
    assert mc["nc_fraction"] == 1.0 and mc["rank_histogram"] == {7: 16}
    assert mc["limit_histogram"] == {"NC": 16, "undecided": 0}


def test_cli_basin(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["basin", "--classes", "4", "--depth", "3", "--init-scale", "0.1",
                 "--critical-ratio", "--bracket-width", "1e-2", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    lo, hi = d["bracket"]
    assert 0 < lo < hi < 1 and hi - lo <= 1e-2
    assert "certified square below" in capsys.readouterr().out
    assert main(["basin", "--classes", "4", "--depth", "3", "--init-scale", "0.1",
                 "--critical-ratio", "--tol", "1e-3"]) == 2
    assert "--bracket-width" in capsys.readouterr().err
    assert main(["basin", "--classes", "8", "--depth", "3", "--critical-ratio",
                 "--init-scale", "0.1"]) == 2
    assert main(["basin", "--classes", "4", "--depth", "3"]) == 2
    assert main(["basin", "--classes", "8", "--depth", "3", "--init-scale", "0.1",
                 "--samples", "8", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["decided"] + d["undecided"] == 8 and "undecided" in capsys.readouterr().out


def test_report_landscape_section_fallback(monkeypatch, tmp_path):
    import sys
    from svdyn.analysis import report
    monkeypatch.setitem(sys.modules, "svdyn.landscape.report", None)  # import fails
    out = report.build_report(tmp_path / "R.md", tmp_path / "f", quick=True, only="pu",
                              log=lambda m: None)
    assert "not generated" in out.read_text()


def test_readout_check_agrees_with_a_100x_deeper_limit_stage():
    """The classifier's defaults against every start read by the limit stage at a 100x
    smaller y threshold (walsh K = 8, L = 3, eps = 0.01: a cell with slow exits)."""
    r = basins.readout_check(8, 3, 0.01, 24, seed=1)
    assert r["undecided_default"] == 0 and r["undecided_deep"] == 0
    assert r["both_decided"] == 24 and r["same"] == 24 and r["differ"] == []
    assert r["deep_decades"] == 8
