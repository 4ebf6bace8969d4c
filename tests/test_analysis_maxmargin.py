"""Spectral max-margin problem: exact facts (depth-2 NC, K=4 closed-form crossover), and the
vertex enumeration against independent computations."""
import itertools
import json
import math

import numpy as np
import pytest

from svdyn.analysis import maxmargin as mm
from svdyn.cli.main import main
from svdyn.groups import make_group

CASES = [(4, "walsh"), (8, "walsh"), (16, "walsh"), (3, "cyclic"), (5, "cyclic"),
         (6, "cyclic"), (7, "cyclic"), (8, "cyclic"), (10, "2,5")]


@pytest.mark.parametrize("K,g", CASES)
def test_depth2_optimum_is_nc(K, g):
    r = mm.solve(K, 2.0, g)
    assert r["exact"]
    assert r["optimum"]["nc"] and r["optimum"]["rank"] == K - 1
    assert r["optimum"]["cost"] == pytest.approx(K - 1, rel=1e-12)
    assert r["nc_cost"] == pytest.approx(K - 1)
    # NC point: every margin exactly 1
    m = mm.margins(make_group(g, K), r["optimum"]["z"])
    assert np.allclose(m, 1.0)
    # below L = 2 nothing else is cheaper either (power-mean argument)
    assert mm.solve(K, 1.5, g)["optimum"]["nc"]


def test_margin_sum_identity():
    # sum_c m_c = (1/sqrt n) sum_{j>=1} z_j for every group (columns of 1 - C sum to K)
    rng = np.random.default_rng(0)
    for K, g in CASES:
        G = make_group(g, K)
        z = rng.uniform(0, 2, K)
        z[np.arange(K) > G.partner] = z[G.partner[np.arange(K) > G.partner]]
        for n in (1, 4):
            assert mm.margins(G, z, n).sum() == pytest.approx(z[1:].sum() / math.sqrt(n))


def test_k4_crossover_closed_form():
    r = mm.solve(4, 3.0, "walsh")
    assert r["optimum"]["nc"]
    (c,) = r["crossovers"]
    assert 3 < c["depth"] < 4
    assert c["depth"] == pytest.approx(2 * math.log(2) / math.log(1.5), abs=1e-12)
    assert c["depth"] == pytest.approx(mm.k4_crossover(), abs=1e-12)
    assert c["closed_form_value"] == pytest.approx(mm.k4_crossover(), abs=1e-14)
    assert (c["from_rank"], c["to_rank"]) == (3, 2)
    # square (2,2,0): costs equal at L*
    L = c["depth"]
    assert 2 * 2 ** (2 / L) == pytest.approx(3.0, rel=1e-12)
    r4 = mm.solve(4, 4.0, "walsh")
    assert r4["optimum"]["rank"] == 2 and sorted(r4["optimum"]["z"]) == [0, 0, 2, 2]
    assert r4["optimum"]["cost"] == pytest.approx(2 * 2 ** 0.5)


def _brute_vertices(A):
    """Independent vertex enumeration: every choice of D tight rows among [A; I]."""
    M, D = A.shape
    rows = np.vstack([A, np.eye(D)])
    rhs = np.r_[np.ones(M), np.zeros(D)]
    out = set()
    for T in itertools.combinations(range(M + D), D):
        Bm = rows[list(T)]
        if abs(np.linalg.det(Bm)) < 1e-9:
            continue
        x = np.linalg.solve(Bm, rhs[list(T)])
        if np.all(x >= -1e-9) and np.all(A @ x >= 1 - 1e-9):
            out.add(tuple(np.round(x, 9) + 0.0))
    return out


@pytest.mark.parametrize("K,g", [(8, "walsh"), (8, "cyclic"), (10, "2,5")])
def test_double_description_matches_brute_force(K, g):
    A, _ = mm.reduced_problem(make_group(g, K))
    V = mm.double_description(A)
    got = {tuple(np.round(v, 9) + 0.0) for v in V}
    assert got == _brute_vertices(A)


def test_walsh_envelopes():
    r8 = mm.solve(8, 3.0, "walsh")
    assert [c["depth"] for c in r8["crossovers"]] == pytest.approx(
        [2 * math.log(2) / math.log(7 / 4), 2 * math.log(2) / math.log(4 / 3)], abs=1e-10)
    assert r8["regimes"][-1]["rank"] == 3  # the cube at infinite depth
    r16 = mm.solve(16, 3.0, "walsh")
    assert r16["n_vertices"] == 9384
    assert [(c["from_rank"], c["to_rank"]) for c in r16["crossovers"]] == [(15, 8), (8, 5),
                                                                          (5, 4)]


def test_search_recovers_exact_envelope_k8():
    G = make_group("walsh", 8)
    A, cls = mm.reduced_problem(G)
    X = mm.search_vertices(A, np.ones(A.shape[1]), np.linspace(0.1, 1, 5), starts=10)
    ex = {tuple(np.round(x, 9) + 0.0) for x in mm.double_description(A)}
    assert {tuple(np.round(x, 9) + 0.0) for x in X} <= ex
    for L in (2.2, 3.0, 4.0, 8.0):
        best_ex = min(np.sum(np.asarray(v)[np.asarray(v) > 0] ** (2 / L)) for v in ex)
        best_se = min(np.sum(x[x > 0] ** (2 / L)) for x in X)
        assert best_se == pytest.approx(best_ex, rel=1e-12)


def test_cli_maxmargin_json(tmp_path):
    out = tmp_path / "mm.json"
    assert main(["maxmargin", "--classes", "4", "--depth", "3.5", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert set(d["optimum"]) >= {"support", "z", "rank", "cost"}
    assert d["optimum"]["rank"] == 2 and d["optimum"]["support"] in ([1, 2], [1, 3], [2, 3])
    assert d["nc_cost"] == pytest.approx(3.0)
    assert d["crossovers"][0]["depth"] == pytest.approx(mm.k4_crossover())
    assert main(["maxmargin", "--classes", "6", "--depth", "3", "--group", "walsh"]) == 2


@pytest.mark.parametrize("L", [2.0, 3.0, 6.0])
def test_milp_lower_bound_certifies_k8(L):
    G = make_group("walsh", 8)
    lb = mm.lower_bound(G, L, time_limit=30)
    assert lb["certified"]
    assert lb["lower_bound"] == pytest.approx(mm.solve(8, L, "walsh")["optimum"]["cost"],
                                              rel=1e-9)
    # a coarser breakpoint set still gives a valid (lower) bound
    lb2 = mm.lower_bound(G, L, time_limit=30, breakpoints=[1.0])
    assert lb2["lower_bound"] <= lb["lower_bound"] * (1 + 1e-9)


def test_cli_certify(tmp_path):
    out = tmp_path / "c.json"
    assert main(["maxmargin", "--classes", "8", "--depth", "4", "--certify", "20",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["certificate"]["certified"]
