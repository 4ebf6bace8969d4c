"""Limit geometry: normalised-time continuation against the t-integrator, the classifier
against a much longer integration, rank measures, the classify CLI."""
import json

import numpy as np
import pytest

from svdyn.analysis.geometry import (classify_states, classify_trajectory, describe,
                                     normalised_margin)
from svdyn.analysis.maxmargin import margin_matrix
from svdyn.analysis.normtime import run_to_margin
from svdyn.cli.main import main
from svdyn.groups import SpecError
from svdyn.integrate import flow
from svdyn.spec import ModelSpec


def test_normalised_time_follows_the_same_orbit():
    # the normalised-time run stops at some margin m*; the t-integrator's state at the time
    # where its min margin equals m* (interpolated on a dense save grid) must coincide
    spec = ModelSpec(4, 3)
    s0 = spec.balanced(np.array([0.0, 0.3, 0.2, 0.1]))
    o = run_to_margin(spec, s0, m_mid=2.0, m_end=4.0, rtol=1e-11)
    ts = np.linspace(0.0, 60.0, 6001)
    tr = flow(spec, s0, save_at=ts, rtol=1e-11, atol=1e-14)
    mm = np.asarray(tr.min_margin)
    assert mm[-1] > o["m_end"] and np.all(np.diff(mm) > 0)
    z_t = np.array([np.interp(o["m_end"], mm, tr.z[:, j]) for j in range(4)])
    assert np.allclose(z_t, o["z_end"], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("L,z0,rank", [
    (3, [0, 0.1, 0.1, 0.01], 2),      # far below r_c: the square
    (3, [0, 0.1, 0.1, 0.09], 3),      # near r = 1: NC
    (6, [0, 0.01, 0.01, 0.005], 2),
    (2, [0, 0.01, 0.01, 0.001], 3),   # depth 2: NC from every start
    (4, [0, 0.5, 0.2, 0.1], 2),       # asymmetric start
])
def test_classification_agrees_with_much_longer_integration(L, z0, rank):
    spec = ModelSpec(4, L)
    s0 = spec.balanced(np.array(z0, float))
    short = classify_states(spec, s0, 1e1, 1e3)
    long = classify_states(spec, s0, 1e3, 1e5)  # 100x further in margin
    assert short["status"] == long["status"] == "ok"
    assert short["support"] == long["support"]
    assert short["rank"] == rank
    assert long["error"] < 0.1


def test_classification_of_t_trajectory_matches_its_own_continuation():
    spec = ModelSpec(8, 4)
    rng = np.random.default_rng(5)
    z0 = np.r_[0.0, 0.05 * rng.uniform(0.5, 1.5, 7)]
    s0 = spec.balanced(z0)
    tr = flow(spec, s0, 1e6)
    c = classify_trajectory(tr)
    direct = classify_states(spec, s0, 1e4, 1e6)
    assert c["classification"]["support"] == direct["support"] == [1, 2, 4, 7]
    assert c["classification"]["decided"] and direct["decided"]
    # mode 3 dies slowly: at the fixed horizon 1e4 it still looks live, and the error says so
    fixed = classify_states(spec, s0, adaptive=False)
    assert fixed["support"] == [1, 2, 3, 4, 7] and not fixed["decided"]
    # rank 4 = the K=8 max-margin optimum at L = 4 (basis + sum, one-vs-rest "simplex" code)


def test_describe_ranks_and_margins():
    spec = ModelSpec(4, 4)
    z = np.array([0.0, 2.0, 2.0, 0.0])
    d = describe(spec.G, z, 4)
    assert d["numerical_rank"] == 2
    assert d["effective_rank"] == pytest.approx(2.0)
    assert d["stable_rank"] == pytest.approx(2.0)
    assert d["min_margin"] == pytest.approx(1.0)
    # normalised margin = 1 / cost^(L/2) at the optimum (cost 2 * 2^(1/2))
    assert d["normalised_margin"] == pytest.approx((2 * 2 ** 0.5) ** -2)
    assert normalised_margin(spec.G, 7 * z, 4) == pytest.approx(d["normalised_margin"])
    M = margin_matrix(spec.G)
    assert np.allclose(M @ z, [1.0, 1.0, 2.0])


def test_classify_rejects_weight_decay():
    spec = ModelSpec(4, 3, weight_decay=(1e-3,))
    with pytest.raises(SpecError):
        classify_states(spec, spec.balanced(np.array([0, 1.0, 1.0, 1.0])))


def test_cli_classify(tmp_path, capsys):
    traj = tmp_path / "t.json"
    assert main(["flow", "--classes", "4", "--depth", "3", "--init", "0.1,0.1,0.01",
                 "--t-end", "1e4", "--json", str(traj)]) == 0
    capsys.readouterr()
    out = tmp_path / "c.json"
    assert main(["classify", str(traj), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["classification"]["rank"] == 2 and d["classification"]["support"] == [1, 2]
    assert d["geometry"]["numerical_rank"] in (2, 3)
    assert main(["classify", str(tmp_path / "missing.json")]) == 2
    assert main(["classify", "--json", str(traj)]) == 2     # the old form names the new one
    assert "svdyn classify TRAJ.json" in capsys.readouterr().err
