"""The sympy derivations (derivations/): reduction from the full model, closed forms,
conservation laws, Lyapunov identities, fixed points. A fast subset of what `svdyn derive`
runs; the report run covers the full grid."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from derivations import closed_forms as cf  # noqa: E402
from derivations import conservation, lyapunov, reduction  # noqa: E402
from derivations.symgroup import sym_group  # noqa: E402


@pytest.mark.parametrize("cfg", [("walsh", 2, 2, 2, "ce"), ("cyclic", 3, 3, 1, "ls"),
                                 ("walsh", 4, 2, 1, "mse"), ("2,3", 6, 2, 1, "ce")])
def test_reduction_from_full_model(cfg):
    r = reduction.check_reduction(*cfg)
    assert r["lemma"] and r["even"]
    assert r["offdiag_zero"] and r["outside_zero"]
    assert r["diag_match"]


def test_reduction_negative_control():
    """A rational orthogonal matrix that is not a character basis breaks the lemma."""
    H = reduction.householder_frame(3, 3, 5)
    assert sp.simplify(H.T * H - sp.eye(3)) == sp.zeros(3, 3)
    r = reduction.check_reduction("cyclic", 3, 2, 1, "ce", basis=H)
    assert not r["lemma"]


def test_config_grid_covers_the_issue():
    cfgs = reduction.CONFIGS
    for spec, K in (("walsh", 2), ("cyclic", 3), ("walsh", 4)):
        for L in (2, 3):
            for n in (1, 2):
                for loss in ("ce", "mse", "ls"):
                    assert (spec, K, L, n, loss) in cfgs
    assert {c[4] for c in cfgs if c[0] == "2,3"} == {"ce", "mse", "ls"}


def test_general_kernels():
    k = cf.general_kernels()
    K, rn, omm, eps, z, ms = cf.K, cf.rn, cf.omm, cf.eps, cf.zj, cf.msum
    assert sp.simplify(k["ce_grad"]["expr"] - omm / (K * rn)) == 0
    assert sp.simplify(k["ls_grad"]["expr"] - (omm - eps) / (K * rn)) == 0
    assert sp.simplify(k["mse_loss_term"]["expr"] - (z / rn - 1) ** 2 / (2 * K)) == 0
    assert sp.simplify(k["mse_grad"]["expr"] - (1 - z / rn) / (K * rn)) == 0
    assert sp.simplify(k["ls_loss_extra"]["expr"] - eps * ms / K) == 0


@pytest.mark.parametrize("spec,K", [("walsh", 4), ("cyclic", 5), ("2,3", 6)])
def test_group_facts(spec, K):
    G = sym_group(spec, K)
    assert all(cf.identity_checks(G))
    assert cf.reduced_loss_check(G)
    assert cf.mode0_fixed(G)
    g0 = cf.g_at_zero(G)
    assert g0[0] == 0 and all(sp.simplify(x - 1 / (K * cf.rn)) == 0 for x in g0[1:])
    sup = cf.support_table(G)
    assert sup["agree"]


def test_supports_walsh4_are_pairs():
    """Walsh K=4: any two non-constant modes give all-positive margins, one does not."""
    sup = cf.support_table(sym_group("walsh", 4))
    assert sorted(sup["minimal"]) == [(1, 2), (1, 3), (2, 3)]


def test_conservation_laws():
    c = conservation.derive(depths=(2, 3))
    assert all(v for k, v in c.items() if k.endswith("_ok"))
    assert c["balanced_invariant"]


def test_lyapunov_identities():
    assert all(lyapunov.value_forms(4).values())
    g = lyapunov.general_closed_form()
    assert g["ok"] and g["chebyshev"] and g["sign_ok"]
    for spec, K in (("walsh", 4), ("cyclic", 3)):
        r = lyapunov.identities(spec, K)
        assert r["A1"] and r["A2"] and r["A3"] and r["closed_form"] and r["equality_is_nc"]


def test_fixed_point_closed_form_matches_library():
    from svdyn.field import vector_field
    from svdyn.spec import ModelSpec

    fp = cf.fixed_points()
    assert all(fp["nc_omm_checks"])
    sy = {x.name: x for x in fp["ce_L2"][0].free_symbols}
    lam, K, rn = sy["lambda"], sy["K"], sy["rn"]
    assert sp.simplify(fp["ce_L2"][0] - rn * sp.log(1 / (lam * rn) - K + 1)) == 0
    # numerically: the ce field vanishes there (K=8, n=2, lambda=0.005)
    f = sp.lambdify((lam, K, rn), fp["ce_L2"][0])
    spec = ModelSpec(classes=8, depth=2, samples_per_class=2, weight_decay=0.005)
    zs = f(0.005, 8, math.sqrt(2))
    z = np.full(8, zs)
    z[0] = 0.0
    ds, _, _ = vector_field(spec, spec.balanced(z))
    assert np.max(np.abs(ds)) < 1e-12
    # mse and ls fixed points likewise
    for loss, key, args in (("mse", "mse_L2", (0.01,)), ("ls:0.1", "ls_L2", (0.01,))):
        sy = {x.name: x for x in fp[key][0].free_symbols}
        zs = float(fp[key][0].subs({sy[k]: v for k, v in
                                    (("eps", 0.1), ("lambda", args[0]), ("K", 4), ("rn", 1))
                                    if k in sy}))
        spec = ModelSpec(classes=4, depth=2, loss=loss, weight_decay=args[0])
        z = np.full(4, zs)
        z[0] = 0.0 if loss != "mse" else 1.0 - 4 * args[0]   # mse: mode 0 has its own point
        ds, _, _ = vector_field(spec, spec.balanced(z))
        assert np.max(np.abs(ds)) < 1e-12, (loss, ds)
