"""Critical families with weight decay, family comparison, Hessians ([P], [U]); issue 6."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from svdyn.field import logit_gradient, vector_field
from svdyn.groups import SpecError
from svdyn.landscape.compare import (maxmargin_costs, multistart, p_predicts_dnc_loses,
                                     pairs_singleton)
from svdyn.landscape.critical import (critical_points, data_hessian, family_names,
                                      family_support, reduced_hessian, solve_critical)
from svdyn.spec import ModelSpec

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _fams(spec):
    return {p.name: p for p in critical_points(spec, "all")}


# ----------------------------------------------------------------------------- derivatives
@pytest.mark.parametrize("K,group,loss,n", [(6, "cyclic", "ce", 2), (8, "walsh", "ls:0.1", 1),
                                            (4, "walsh", "mse", 3), (10, "2,5", "ce", 1)])
def test_data_hessian_matches_finite_differences(K, group, loss, n):
    spec = ModelSpec(K, depth=3, loss=loss, group=group, samples_per_class=n, weight_decay=1e-2)
    rng = np.random.default_rng(1)
    z = rng.uniform(0.5, 4.0, K)
    z[spec.G.partner] = z  # pair-symmetric
    z = np.maximum(z, z[spec.G.partner])
    H = data_hessian(spec, z)
    h = 1e-5
    fd = np.empty((K, K))
    for k in range(K):
        e = np.zeros(K)
        e[k] = h
        fd[:, k] = -(logit_gradient(spec, z + e)[0] - logit_gradient(spec, z - e)[0]) / (2 * h)
    # g_0 = 0 by construction for ce (mode 0 never moves): compare the other rows
    rows = slice(1, K) if loss != "mse" else slice(0, K)
    assert np.allclose(H[rows], fd[rows], atol=1e-8, rtol=1e-6)


def test_reduced_hessian_matches_finite_differences():
    spec = ModelSpec(8, depth=3, weight_decay=3e-2)
    rng = np.random.default_rng(2)
    s = rng.uniform(0.5, 2.0, (3, 8))
    H = reduced_hessian(spec, s)
    h = 1e-6
    fd = np.empty_like(H)
    for i in range(24):
        e = np.zeros(24)
        e[i] = h
        dp = -vector_field(spec, s + e.reshape(3, 8))[0].ravel()
        dm = -vector_field(spec, s - e.reshape(3, 8))[0].ravel()
        fd[:, i] = (dp - dm) / (2 * h)
    assert np.allclose(H, fd, atol=1e-7)


# ----------------------------------------------------------------------------- families
def test_family_supports():
    w = ModelSpec(8, depth=3, weight_decay=1e-3)
    assert np.flatnonzero(family_support(w, "pairing")).tolist() == [1, 3, 5, 7]  # odd modes
    assert np.flatnonzero(family_support(w, "hypercube")).tolist() == [1, 2, 4]
    p = ModelSpec(10, depth=3, weight_decay=1e-3, group="2,5")
    assert np.flatnonzero(family_support(p, "pairing")).tolist() == [5, 6, 7, 8, 9]
    c = ModelSpec(6, depth=3, weight_decay=1e-3, group="cyclic")
    assert np.flatnonzero(family_support(c, "polygon")).tolist() == [1, 5]
    assert np.flatnonzero(family_support(c, "pairing")).tolist() == [1, 3, 5]
    with pytest.raises(SpecError):
        family_support(ModelSpec(5, depth=3, weight_decay=1e-3), "pairing")
    with pytest.raises(SpecError):
        family_support(w, "polygon")
    assert "zero" in family_names(w) and "hybrid:pairing" in family_names(w)


@pytest.mark.parametrize("K,L,lam,group,loss,n", [(8, 3, 1e-3, "walsh", "ce", 1),
                                                  (6, 4, 1e-2, "cyclic", "ce", 2),
                                                  (10, 3, 1e-3, "2,5", "ce", 1),
                                                  (4, 3, 1e-2, "walsh", "mse", 2)])
def test_critical_points_are_stationary_and_balanced(K, L, lam, group, loss, n):
    spec = ModelSpec(K, depth=L, weight_decay=lam, group=group, loss=loss, samples_per_class=n)
    pts = critical_points(spec, "all")
    assert len(pts) >= 3
    for p in pts:
        assert p.converged
        ds, loss_v, _ = vector_field(spec, p.s)          # independent evaluation
        assert np.linalg.norm(ds) < 1e-12 * max(1.0, float(np.abs(p.s).max()))
        assert loss_v == pytest.approx(p.loss, rel=1e-14)
        assert np.allclose(p.s, p.s[0][None, :])         # balanced
        assert np.allclose(p.z, p.z[spec.G.partner])     # pairs equal
    assert [p.loss for p in pts] == sorted(p.loss for p in pts)


def test_mse_dnc_solves_the_scalar_equation():
    # mse separates: (sqrt n - z) z^(1 - 2/L) = N lambda for every mode (the larger root)
    for L, n, lam in [(2, 1, 1e-2), (3, 2, 1e-2), (4, 1, 5e-2)]:
        spec = ModelSpec(4, depth=L, loss="mse", samples_per_class=n, weight_decay=lam)
        p = critical_points(spec, "dnc")[0]
        z = p.z[0]
        assert np.allclose(p.z, z)
        N = 4 * n
        assert (math.sqrt(n) - z) * z ** (1 - 2 / L) == pytest.approx(N * lam, rel=1e-10)
        # it is the larger root: the function decreases through it
        f = lambda x: (math.sqrt(n) - x) * x ** (1 - 2 / L) - N * lam  # noqa: E731
        assert f(z * 1.01) < 0 < f(z * 0.99) or L == 2


def test_pairing_is_the_rank_half_cross_polytope():
    spec = ModelSpec(8, depth=4, weight_decay=1e-3)
    p = critical_points(spec, "pairing")[0]
    assert p.rank == 4
    C = spec.G.char_table
    u = C @ p.z / 8.0                                    # class-0 logits
    assert u[0] > 0 and u[1] == pytest.approx(-u[0]) and np.allclose(u[2:], 0, atol=1e-12)


def test_solve_critical_from_generic_start_and_flow_fallback(monkeypatch):
    spec = ModelSpec(8, depth=3, weight_decay=1e-2)
    rng = np.random.default_rng(3)
    a0 = np.concatenate([[0.0], rng.uniform(1.5, 2.5, 7)])
    p = solve_critical(spec, a0)
    assert p.converged and p.grad_norm < 1e-12
    # force the fallback: the first Newton run fails, the polish after the flow is real
    from svdyn.landscape import critical as cr
    real = cr.newton
    calls = []

    def failing_first(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            return real(*args, maxit=0)[0], False, 0, np.inf
        return real(*args, **kw)

    monkeypatch.setattr(cr, "newton", failing_first)
    q = solve_critical(spec, a0 * 0.2)
    assert q.method == "flow+newton" and q.converged and q.grad_norm < 1e-12
    assert q.loss <= float(vector_field(spec, spec.balanced((a0 * 0.2) ** 3))[1])


def test_which_structure_wins_matches_p_thresholds():
    lam = 1e-3
    for K, L, dnc_loses in [(4, 2, False), (6, 2, False), (4, 3, False), (6, 3, True),
                            (8, 3, True), (4, 4, True), (6, 4, True)]:
        f = _fams(ModelSpec(K, depth=L, weight_decay=lam))
        best_other = min(p.loss for k, p in f.items() if k not in ("dnc", "zero"))
        assert (best_other < f["dnc"].loss) == dnc_loses, (K, L)
        assert p_predicts_dnc_loses(K, L) == dnc_loses


def test_small_lambda_cost_criterion_equals_p_threshold_for_even_k():
    for K in range(4, 17, 2):
        for L in range(2, 9):
            c = maxmargin_costs(K, L)
            assert (c["pairing"] < c["dnc"]) == p_predicts_dnc_loses(K, L), (K, L)


def test_pairs_singleton_beats_dnc_for_odd_k7_at_depth3():
    r = pairs_singleton(7, 3, 1e-3)
    dnc = critical_points(ModelSpec(7, depth=3, weight_decay=1e-3), "dnc")[0]
    assert r["grad_norm"] < 1e-8
    assert r["loss"] < dnc.loss * 0.97 and r["rank"] == 4


def test_multistart_labels_families():
    res = multistart(ModelSpec(8, depth=3, weight_decay=1e-3), n_starts=12, scale=0.1)
    assert sum(g["count"] for g in res) == 12
    assert {g["label"] for g in res} <= {"dnc", "pairing", "hypercube", "block:4"} | {
        g["label"] for g in res if g["label"].startswith("other")}
    assert all(g["converged"] for g in res)
    with pytest.raises(SpecError):
        multistart(ModelSpec(6, depth=3, weight_decay=1e-3, group="cyclic"), n_starts=2)


# ----------------------------------------------------------------------------- full model
@pytest.mark.parametrize("K,L,lam,fam,loss,n", [(4, 3, 1e-2, "dnc", "ce", 1),
                                                (4, 3, 1e-2, "pairing", "ce", 1),
                                                (4, 4, 1e-2, "pairing", "ce", 2),
                                                (4, 3, 1e-2, "dnc", "mse", 1)])
def test_reduced_critical_points_match_full_gd(K, L, lam, fam, loss, n):
    from svdyn.landscape.hessian import full_gd_to_convergence, hessian_at
    spec = ModelSpec(K, depth=L, weight_decay=lam, loss=loss, samples_per_class=n)
    p = critical_points(spec, fam)[0]
    h = hessian_at(spec, p.s, K + 1, device="cpu")
    s0 = p.s * 0.8
    s0[0] *= 1.1                                           # aligned, unbalanced start
    r = full_gd_to_convergence(spec, s0, K + 1, 1.0 / h["max_eig"], max_steps=20000, tol=1e-12)
    assert r["grad_norm"] < 1e-12
    assert abs(r["loss"] - p.loss) < 1e-8
    assert np.allclose(r["s"], p.s, atol=1e-9) and max(r["leakage"]) < 1e-10


@pytest.mark.parametrize("K,L,lam,n,w,group", [(4, 3, 1e-2, 1, 6, "walsh"),
                                               (3, 2, 1e-2, 2, 5, "cyclic"),
                                               (3, 4, 5e-3, 2, [4, 5, 6], "cyclic")])
def test_mse_dnc_hessian_closed_form(K, L, lam, n, w, group):
    from svdyn.landscape.hessian import expand, hessian_at, mse_dnc_closed_form
    spec = ModelSpec(K, depth=L, weight_decay=lam, loss="mse", samples_per_class=n, group=group)
    cf = mse_dnc_closed_form(spec, w)
    p = critical_points(spec, "dnc")[0]
    assert cf["s"] == pytest.approx(p.s[0, 0], rel=1e-13)
    h = hessian_at(spec, p.s, w, device="cpu", layers=True)
    assert h["n_params"] == cf["n_params"]
    assert np.max(np.abs(expand(cf["full"]) - np.asarray(h["eigenvalues"]))) < 1e-12
    # K^2 outliers, in two values L a + L lam and L a - (L - 2) lam
    top = np.sort(h["eigenvalues"])[::-1][:K * K]
    hi, lo = cf["outlier_values"]
    want = np.r_[np.full(K * (K - 1) // 2, hi), np.full(K * (K + 1) // 2, lo)]
    assert np.allclose(np.sort(top), np.sort(want), atol=1e-12)
    # layer Hessians: K^2 (layer 1: K N) equal outliers a + lam over a bulk at lam
    for l, ev in enumerate(h["layer_eigenvalues"]):
        ev = np.sort(ev)[::-1]
        c = cf["layer_outlier_counts"][l]
        assert np.allclose(ev[:c], cf["layer_outlier"], atol=1e-12)
        assert np.allclose(ev[c:], lam, atol=1e-12)
    assert h["outliers"]["count"] == K * K + K * (n * K - K)


def test_ce_dnc_hessian_psd_small_lambda_saddle_large():
    from svdyn.landscape.hessian import min_eig_vs_lambda
    rows = min_eig_vs_lambda(8, 3, [1e-1, 1e-2], "dnc", width=9, device="cpu")
    assert rows[0]["n_negative"] > 0 and rows[0]["min_eig"] < -1e-3
    assert rows[1]["n_negative"] == 0 and rows[1]["min_eig"] > -1e-12
    assert rows[1]["n_zero"] > 0  # frame rotations


def test_gradient_alignment_early_phase():
    from svdyn.landscape.hessian import gradient_alignment
    spec = ModelSpec(4, depth=3, weight_decay=1e-2, loss="mse")
    al = gradient_alignment(spec, 6, lr=0.5, at=(0, 10))
    for a in al:
        assert 0.0 <= a["alignment"] <= 1.0 + 1e-12
    assert al[0]["alignment"] > 2 * al[0]["random_baseline"]
    # independent check of the projection: all eigenvectors -> fraction 1
    al_all = gradient_alignment(spec, 6, lr=0.5, at=(0,), k_top=84)
    assert al_all[0]["alignment"] == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------- CLI
def test_cli_critical_and_hessian(tmp_path, capsys):
    from svdyn.cli.main import main
    out = tmp_path / "c.json"
    assert main(["critical", "--classes", "8", "--depth", "4", "--weight-decay", "1e-3",
                 "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    names = [f["name"] for f in d["families"]]
    assert names[0] == "pairing" and "dnc" in names
    for f in d["families"]:
        assert {"name", "loss", "z", "rank", "grad_norm"} <= set(f)
    out2 = tmp_path / "h.json"
    assert main(["hessian", "--classes", "4", "--depth", "3", "--weight-decay", "1e-2",
                 "--loss", "mse", "--width", "5", "--json", str(out2)]) == 0
    h = json.loads(out2.read_text())
    assert {"eigenvalues", "min_eig", "n_negative", "outliers"} <= set(h)
    assert h["outliers"]["count"] == 16 and h["closed_form"]["max_abs_error"] < 1e-12
    assert main(["critical", "--classes", "5", "--depth", "3", "--weight-decay", "1e-2",
                 "--family", "pairing"]) == 2
    assert main(["critical", "--classes", "4", "--depth", "3", "--family", "dnc"]) == 2
    assert main(["critical", "--classes", "4", "--depth", "3", "--weight-decay", "1e-2",
                 "--family", "nope"]) == 2
    capsys.readouterr()
