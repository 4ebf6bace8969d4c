"""The report's new measurements, each against an independent computation: the width study vs
torch autograd GD, the symmetry orbit vs its closed form and loss invariance, Hessian flat
directions vs the mse deep-NC closed form, [U]'s gradient fraction vs its closed form (1),
the late-time fits vs a scipy integration of the scalar NC ODE, the mse decay rate vs its
closed form, the Lyapunov floors, deterministic report sections and ``--only``."""
from __future__ import annotations

import math

import numpy as np
import pytest

from svdyn.spec import ModelSpec

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------- width study
def test_width_batched_gd_matches_fullmodel_autograd():
    from svdyn.analysis import width
    from svdyn.fullmodel import validate_random
    spec = ModelSpec(4, 3)
    r = width.run(3, 6, seeds=(0, 1), checkpoints=(150,))
    for i, sd in enumerate((0, 1)):
        ref = validate_random(spec, 6, 0.3 / math.sqrt(6), 0.5, 150, save_every=150, seed=sd,
                              device="cpu")
        assert r.effective_rank[-1][i] == pytest.approx(ref["final"]["effective_rank"],
                                                        rel=1e-9)
        assert r.min_margin[-1][i] == pytest.approx(ref["final"]["min_margin"], rel=1e-9)
        sv = np.asarray(ref["final_centred_logit_singular_values"])[:3]
        assert np.allclose(r.singular_values[i], sv, rtol=1e-9)


def test_ce_loss_grad_finite_differences():
    from svdyn.analysis.width import ce_loss_grad
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((2, 4, 8)) * 3.0
    Z[1] *= 20.0                           # large margins: the shifted form must not overflow
    loss, G = ce_loss_grad(Z, 4)
    h = 1e-6
    for b, c, i in [(0, 0, 0), (0, 2, 5), (1, 1, 3), (1, 3, 7)]:
        Zp, Zm = Z.copy(), Z.copy()
        Zp[b, c, i] += h
        Zm[b, c, i] -= h
        fd = (ce_loss_grad(Zp, 4)[0][b] - ce_loss_grad(Zm, 4)[0][b]) / (2 * h)
        assert G[b, c, i] == pytest.approx(fd, rel=1e-5, abs=1e-10)
    # the loss against a direct log-sum-exp
    y = np.repeat(np.arange(4), 2)
    ref = np.mean([np.logaddexp.reduce(Z[0][:, i]) - Z[0][y[i], i] for i in range(8)])
    assert loss[0] == pytest.approx(ref, rel=1e-12)


# ----------------------------------------------------------------------------- manifold
def _point(K, L, lam, fam, loss="ce"):
    from svdyn.landscape.critical import critical_points
    spec = ModelSpec(K, depth=L, weight_decay=lam, loss=loss)
    return spec, critical_points(spec, fam)[0]


def test_symmetry_generators_keep_the_loss_and_match_closed_form():
    from svdyn import fullmodel as fm
    from svdyn.landscape.manifold import (orbit_dimension_closed_form, symmetry_generators,
                                          _rank)
    spec, p = _point(4, 3, 1e-3, "pairing")
    factors = fm.build_spectral_factors(spec, p.s, [5, 6], seed=1, device="cpu")
    T = symmetry_generators(factors)
    assert _rank(T) == orbit_dimension_closed_form(p.rank, [5, 6]) == 2 * 5 - 3 + 2 * 6 - 3
    x0 = torch.cat([f.reshape(-1) for f in factors])
    shapes = [f.shape for f in factors]

    def loss(x):
        fs, i = [], 0
        for sh in shapes:
            n = sh[0] * sh[1]
            fs.append(x[i:i + n].reshape(sh))
            i += n
        return float(fm.full_loss(spec, fs))
    # a rotation exp(eps A) changes nothing, so along an orbit tangent the loss changes at
    # third order only; a generic unit direction changes it at second order (H is PSD here)
    rng = np.random.default_rng(0)
    eps = 1e-3
    g = torch.as_tensor(rng.standard_normal(x0.numel()))
    d_gen = abs(loss(x0 + eps * g / torch.linalg.norm(g)) - loss(x0))
    assert d_gen > 1e-12
    for k in rng.choice(T.shape[1], 4, replace=False):
        v = torch.as_tensor(T[:, k])
        d = abs(loss(x0 + eps * v / torch.linalg.norm(v)) - loss(x0))
        assert d < 1e-2 * d_gen


def test_flat_dimension_matches_mse_closed_form_zero_count():
    """mse deep NC: the closed form has (L-1)K(K-1)/2 + sum_l K(d_l - K) zero eigenvalues
    (hessian.mse_dnc_closed_form), which is the orbit dimension of a rank-K point."""
    from svdyn.landscape.hessian import mse_dnc_closed_form
    from svdyn.landscape.manifold import manifold_dimension
    spec = ModelSpec(4, depth=3, weight_decay=1e-2, loss="mse")
    cf = mse_dnc_closed_form(spec, [5, 6])
    zeros = sum(m for v, m in cf["full"] if v == 0.0)
    d = manifold_dimension(spec, cf["s"] * np.ones((3, 4)), [5, 6])
    assert d["null_dim"] == zeros == d["orbit_dim"] == d["orbit_dim_closed_form"]
    assert d["excess"] == 0 and d["orbit_in_null"] < 1e-12


def test_data_gradient_in_layer_outliers_closed_form():
    """At mse deep NC the data gradient is -lambda F_l (stationarity), inside the outlier span:
    fraction exactly 1."""
    from svdyn.landscape.manifold import data_gradient_alignment
    spec = ModelSpec(4, depth=3, weight_decay=1e-2, loss="mse")
    al = data_gradient_alignment(spec, 6)
    assert [a["outliers"] for a in al] == [16, 16, 16]
    for a in al:
        assert a["alignment"] == pytest.approx(1.0, abs=1e-10)
        assert a["baseline"] < 0.7
        assert a["outlier_value"] > 10 * a["bulk_max"]


def test_random_critical_points_are_critical():
    from svdyn.field import vector_field
    from svdyn.landscape.manifold import random_critical_points
    spec = ModelSpec(8, depth=12, weight_decay=0.02 / 12)
    pts = random_critical_points(spec, 8, seed=3)
    assert len(pts) >= 3
    for p in pts:
        ds, _, _ = vector_field(spec, p.s)
        assert np.max(np.abs(ds)) < 1e-10


# ----------------------------------------------------------------------------- [H] rates
def test_late_time_margin_matches_scalar_ode_and_fit_recovers_beta():
    """Along NC (n = 1) the margin obeys dm/dt = L m^(2-2/L) / (K - 1 + e^m); integrate it with
    scipy (log time) and compare with the engine at t = 1e12; the margin-law fit on the scipy
    solution gives the same beta as on the engine's."""
    from scipy.integrate import solve_ivp
    from svdyn.analysis.rates import fit_margin_beta, late_time_rates
    K, L = 4, 3
    r = late_time_rates(K, (L,))[0]
    beta = 2 - 2 / L

    def rhs(tau, m):                       # tau = log t
        t = math.exp(tau)
        return [t * L * m[0] ** beta / (K - 1 + math.exp(m[0]))]
    # engine start z_j = 1, margins m = z / sqrt(n) = 1 at t = 0; integrate 0 -> 1 first
    s0 = solve_ivp(lambda t, m: [L * m[0] ** beta / (K - 1 + math.exp(m[0]))], (0, 1), [1.0],
                   rtol=1e-12, atol=1e-14)
    ts = np.asarray(r["t"])
    sol = solve_ivp(rhs, (0.0, math.log(ts[-1])), [s0.y[0, -1]], t_eval=np.log(ts),
                    rtol=1e-12, atol=1e-12, method="LSODA")
    assert np.allclose(sol.y[0], r["m"], rtol=1e-7)
    f = fit_margin_beta(ts, sol.y[0])
    assert f["beta"] == pytest.approx(r["beta_margin"], rel=1e-5)
    assert abs(r["beta_margin"] - beta) / beta < 0.1
    assert r["alpha_free"] == pytest.approx(1.0, abs=0.01)


def test_mse_decay_rate_closed_form():
    """Balanced depth 2, mse: dz/dt = 2 z (sqrt n - z)/N per mode, so near z* = sqrt n the
    deviation decays at 2 sqrt(n)/N and V at 4 sqrt(n)/N."""
    from svdyn.analysis.rates import ce_vs_mse, mse_decay_rate_linearised
    for K, n in ((8, 1), (4, 2)):
        spec = ModelSpec(K, depth=2, loss="mse", samples_per_class=n)
        zs = np.r_[0.0, np.full(K - 1, math.sqrt(n))]
        assert mse_decay_rate_linearised(spec, zs) == pytest.approx(4 * math.sqrt(n) / (n * K),
                                                                   rel=1e-7)
    c = ce_vs_mse(8)
    assert c["mse_rate_fit"] == pytest.approx(0.5, rel=0.02)


# ----------------------------------------------------------------------------- lyapunov floors
def test_lyapunov_floors_filter_noise_not_real_rises():
    from svdyn.groups import SpecError
    from svdyn.lyapunov import check
    spec = ModelSpec(4, depth=2, loss="mse")
    r = check(spec, 6, 1.0, seed=0, t_end=400.0)
    assert r["violations"] == 0 and r["floors"] == {"abs": 1e-20, "rel": 1e-9}
    assert r["raw_rises"] > 0 and r["max_increase_abs"] < 1e-20      # noise only
    r0 = check(spec, 6, 1.0, seed=0, t_end=400.0, abs_floor=0.0)
    assert r0["violations"] == r["raw_rises"]
    r3 = check(ModelSpec(8, depth=3), 6, 0.01, seed=0, t_end=50.0)
    assert r3["violations"] == 6 and r3["max_counted_increase"]["abs"] > 1e-3
    with pytest.raises(SpecError, match="--abs-floor"):
        check(spec, 2, 1.0, abs_floor=-1.0)


# ----------------------------------------------------------------------------- report plumbing
def test_report_only_is_deterministic_and_keeps_other_sections(tmp_path, monkeypatch):
    """``--only`` replaces one section between its markers and keeps the others; a seeded
    section (here a small Monte Carlo of random spectral flows, standing in for the long real
    sections, which are seeded the same way) rewrites the same bytes on a second run."""
    from svdyn.analysis import basins, report
    from svdyn.analysis.report import Section, _marker, build_report, parse_only
    assert parse_only("h,d") == ["h", "mm", "d2", "basins", "rep", "codes", "width"]
    assert parse_only("p,u") == ["pu"]
    with pytest.raises(ValueError, match="unknown report section 'x'"):
        parse_only("h,x")

    def small(ctx):
        r = basins.monte_carlo(4, 3, 0.05, 12, seed=5)
        return Section("rep", f"## small\n\nNC fraction {r['nc_fraction']:.6f}, mean rank "
                       f"{r['mean_rank']:.6f}", [["[D]", "small", "**reproduced**", "x", "y"]],
                       {"small.json": r})
    monkeypatch.setattr(report, "SECTIONS", [(k, small if k == "rep" else f)
                                             for k, f in report.SECTIONS])
    out, fig = tmp_path / "R.md", tmp_path / "figures"
    out.write_text(f"{_marker('codes')}\nKEEP ME 123\n{_marker('codes', True)}\n")
    build_report(out, fig, quick=True, only="rep", log=lambda m: None)
    a, j = out.read_bytes(), (fig / "small.json").read_bytes()
    assert b"KEEP ME 123" in a and b"NC fraction" in a and b"| [D] | small |" in a
    assert b"not generated" in a                       # sections never run are marked
    assert b'"seconds"' not in j                       # wall times stripped from data files
    build_report(out, fig, quick=True, only="rep", log=lambda m: None)
    assert out.read_bytes() == a and (fig / "small.json").read_bytes() == j


def test_cli_report_bad_only(capsys):
    from svdyn.cli.main import main
    assert main(["report", "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert "svdyn report: error: --only" in err and "nope" in err


def test_milp_node_limit_is_deterministic():
    from svdyn.analysis import maxmargin as mm
    G = mm.make_group("walsh", 8)
    a = mm.lower_bound(G, 3.0, node_limit=20)
    b = mm.lower_bound(G, 3.0, node_limit=20)
    assert a["lower_bound"] == b["lower_bound"] and a["node_limit"] == 20
    assert a["lower_bound"] <= a["upper_bound"] * (1 + 1e-9)
