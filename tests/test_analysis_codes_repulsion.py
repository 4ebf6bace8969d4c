"""Softmax codes against known geometry; repulsion rates against the flow."""
import json
import math

import numpy as np
import pytest

from svdyn.analysis import codes, repulsion
from svdyn.cli.main import main
from svdyn.integrate import flow
from svdyn.spec import ModelSpec


def test_one_vs_rest_known_codes():
    sq = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], float)
    assert codes.code_margin(sq) == pytest.approx(1.0)
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    assert codes.code_margin(tet) == pytest.approx(4 / 3)
    cube = np.array([[a, b, c] for a in (1, -1) for b in (1, -1) for c in (1, -1)], float)
    assert codes.code_margin(cube) == pytest.approx(2 / 3)
    for K in (5, 7):
        poly = np.array([[math.cos(2 * math.pi * k / K), math.sin(2 * math.pi * k / K)]
                         for k in range(K)])
        assert codes.code_margin(poly) == pytest.approx(1 - math.cos(2 * math.pi / K))


def test_softmax_code_polygon_and_spectral_reach():
    c = codes.compare(2, 5, restarts=3)
    assert c["margin"] == pytest.approx(1 - math.cos(2 * math.pi / 5), rel=1e-6)
    (cyc,) = c["spectral"]
    assert cyc["reachable"]
    # walsh K = 8 has no rank-2 vertex and its rank-3 code is the cube (2/3)
    assert codes.best_spectral_code(8, 2, "walsh") is None
    assert codes.best_spectral_code(8, 3, "walsh")["margin"] == pytest.approx(2 / 3)


def test_cli_code(tmp_path):
    out = tmp_path / "c.json"
    assert main(["code", "--dim", "2", "--classes", "4", "--restarts", "2",
                 "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["margin"] == pytest.approx(1.0, rel=1e-6)
    assert np.asarray(d["vectors"]).shape == (4, 2)


def test_repulsion_symbolic_and_sign():
    assert repulsion.symbolic_check(4)
    z0 = np.array([0.0, 0.011, 0.01, 0.01])
    for L in (1, 2, 3, 6):
        spec = ModelSpec(4, L)
        tr = flow(spec, spec.balanced(z0), 1e-3, save_at=np.linspace(0, 1e-3, 6), rtol=1e-12,
                  atol=1e-15)
        m = repulsion.measure(tr, 1, 2)
        assert np.allclose(m["measured"], m["formula"], rtol=2e-3)
        assert (m["measured"][0] > 0) == (L > 2)
        if L >= 2:
            assert repulsion.rate_small_z(0.011, 0.01, L, 4) == pytest.approx(
                repulsion.rate(spec, z0, 1, 2), rel=0.05)
    # beyond z* the second-order term wins: phi decreasing
    zs = repulsion.sign_change_scale(4, 4)
    assert repulsion.phi(0.9 * zs, 4, 4) < repulsion.phi(zs, 4, 4) > repulsion.phi(1.1 * zs, 4, 4)
