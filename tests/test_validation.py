"""Full-matrix torch model (svdyn.fullmodel) vs the reduced engine; `svdyn validate`; campaign."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from svdyn import fullmodel as fm  # noqa: E402
from svdyn.spec import random_init_z  # noqa: E402
from svdyn.cli.main import main  # noqa: E402
from svdyn.field import vector_field  # noqa: E402
from svdyn.ranks import effective_rank, numerical_rank, stable_rank  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)  # tiny matrices; threads only contend on a shared machine


def _state(spec, scale=1.0, seed=0, jitter=0.0):
    rng = np.random.default_rng(seed)
    s = spec.balanced(random_init_z(spec, scale, rng, mode0=0.3))
    if jitter:
        s = s * rng.uniform(1 - jitter, 1 + jitter, size=(spec.L, 1))
    return spec.check_state(s)


# ------------------------------------------------------------------ the full model itself
@pytest.mark.parametrize("loss", ["ce", "mse", "ls:0.1"])
@pytest.mark.parametrize("group,K", [("walsh", 8), ("cyclic", 6), ("2,5", 10)])
def test_full_model_matches_autograd_and_reduced_field(loss, group, K):
    """Hand-written gradients == autograd of full_loss; loss == reduced loss; the gradient
    stays in the frames and its diagonal is minus the reduced vector field."""
    spec = ModelSpec(K, 3, 2, loss, (0.01, 0.02, 0.03), group)
    s = _state(spec, jitter=0.2)
    frames = fm.spectral_frames(spec, [K + 3, K + 5], seed=2)
    F = fm.build_spectral_factors(spec, s, None, frames=frames)
    Fg = [f.clone().requires_grad_(True) for f in F]
    L_auto = fm.full_loss(spec, Fg)
    g_auto = torch.autograd.grad(L_auto, Fg)
    L_hand, g_hand = fm.full_grads(spec, F)
    ds, L_red, _ = vector_field(spec, s)
    assert abs(L_hand - L_red) < 1e-13 * max(1.0, abs(L_red))
    assert abs(L_auto.item() - L_red) < 1e-13 * max(1.0, abs(L_red))
    for a, b in zip(g_auto, g_hand):
        assert float((a - b).abs().max()) < 1e-14
    proj, leak = fm.project([-g for g in g_hand], frames)
    assert np.max(np.abs(proj - ds)) < 1e-14
    assert np.max(leak) < 1e-13


def test_full_loss_twice_differentiable():
    """Hessian of full_loss (autograd) == finite differences of the hand-written gradient."""
    spec = ModelSpec(4, 2, 1, "ce", (0.01,), "walsh")
    F = fm.build_random_factors(spec, 5, 0.7, seed=3)
    shapes = [f.shape for f in F]
    sizes = [f.numel() for f in F]
    x0 = torch.cat([f.reshape(-1) for f in F])

    def unflat(x):
        return [c.reshape(sh) for c, sh in zip(torch.split(x, sizes), shapes)]

    H = torch.autograd.functional.hessian(lambda x: fm.full_loss(spec, unflat(x)), x0)
    h = 1e-6
    for i in (0, 7, 19, x0.numel() - 1):
        e = torch.zeros_like(x0)
        e[i] = h
        gp = torch.cat([g.reshape(-1) for g in fm.full_grads(spec, unflat(x0 + e))[1]])
        gm = torch.cat([g.reshape(-1) for g in fm.full_grads(spec, unflat(x0 - e))[1]])
        assert float(((gp - gm) / (2 * h) - H[:, i]).abs().max()) < 1e-7
    assert float((H - H.T).abs().max()) < 1e-12


def test_stable_residual_keeps_tiny_gradients():
    """At margins ~60 the CE gradient (~e^-60) keeps full relative precision (naive softmax
    minus one would return exactly 0), matching the reduced field."""
    spec = ModelSpec(4, 2, 1, "ce", (0.0,), "walsh")
    s = spec.balanced(np.array([0.0, 150.0, 150.0, 150.0]))
    frames = fm.spectral_frames(spec, 6, seed=1)
    F = fm.build_spectral_factors(spec, s, None, frames=frames)
    loss, g = fm.full_grads(spec, F)
    ds, L_red, mm = vector_field(spec, s)
    assert mm > 50 and 0 < L_red < 1e-20
    proj, _ = fm.project([-x for x in g], frames)
    assert np.max(np.abs(proj[:, 1:] - ds[:, 1:]) / np.abs(ds[:, 1:])) < 1e-12
    assert abs(loss - L_red) < 1e-12 * L_red


def test_nc_metrics_at_spectral_points():
    spec = ModelSpec(8, 3, 2, "ce", (0.0,), "walsh")
    # an exact NC point: all non-constant z_j equal, constant mode 0
    s_nc = spec.balanced(np.array([0.0] + [2.0] * 7))
    m = fm.nc_metrics(spec, fm.build_spectral_factors(spec, s_nc, 12, seed=4))
    assert m["nc1"] < 1e-20 and m["nc2_Z"] < 1e-12 and m["nc2_W"] < 1e-12
    assert m["nc2_H"] < 1e-12 and m["nc3"] < 1e-12
    assert m["numerical_rank"] == 7
    assert abs(m["effective_rank"] - 7) < 1e-9 and abs(m["stable_rank"] - 7) < 1e-9
    # a generic spectral point: ranks of the centred logits are those of z_1..z_{K-1}, and the
    # min margin / loss equal the reduced engine's
    s = _state(spec, seed=5)
    m = fm.nc_metrics(spec, fm.build_spectral_factors(spec, s, 12, seed=4))
    z = np.prod(s, axis=0)[1:]
    assert abs(m["effective_rank"] - effective_rank(z)) < 1e-10
    assert abs(m["stable_rank"] - stable_rank(z)) < 1e-10
    assert m["numerical_rank"] == numerical_rank(z)
    _, loss, mm = vector_field(spec, s)
    assert abs(m["min_margin"] - mm) < 1e-12 and abs(m["loss"] - loss) < 1e-12
    assert m["nc2_Z"] > 1e-3


def test_nc_metrics_match_numpy_at_random_point():
    """NC1 / NC2 / NC3 / margin at a random full model against a direct numpy computation."""
    K, n, L = 5, 3, 3
    spec = ModelSpec(K, L, n, "ce", (0.0,), "cyclic")
    F = fm.build_random_factors(spec, [7, 6], 0.8, seed=11)
    m = fm.nc_metrics(spec, F)
    Fn = [f.numpy() for f in F]
    H = Fn[1] @ Fn[0]
    W = Fn[2]
    Z = W @ H
    y = np.repeat(np.arange(K), n)
    M = np.stack([H[:, y == c].mean(axis=1) for c in range(K)], axis=1)
    g = M.mean(axis=1, keepdims=True)
    Sw = sum(np.outer(H[:, i] - M[:, y[i]], H[:, i] - M[:, y[i]]) for i in range(K * n)) / (K * n)
    Sb = (M - g) @ (M - g).T / K
    nc1 = np.trace(Sw @ np.linalg.pinv(Sb)) / K
    P = np.eye(K) - 1.0 / K

    def etf(G):
        return np.linalg.norm(G / np.linalg.norm(G) - P / np.linalg.norm(P))

    U = np.stack([Z[:, y == c].mean(axis=1) for c in range(K)], axis=1)
    Mc = M - g
    assert abs(m["nc1"] - nc1) < 1e-10 * nc1
    assert abs(m["nc2_W"] - etf(W @ W.T)) < 1e-12
    assert abs(m["nc2_H"] - etf(Mc.T @ Mc)) < 1e-12
    assert abs(m["nc2_Z"] - etf(P @ U @ P)) < 1e-12
    nc3 = np.linalg.norm(W.T / np.linalg.norm(W) - Mc / np.linalg.norm(Mc))
    assert abs(m["nc3"] - nc3) < 1e-12
    margins = [Z[y[i], i] - np.max(np.delete(Z[:, i], y[i])) for i in range(K * n)]
    assert abs(m["min_margin"] - min(margins)) < 1e-12
    sv = np.linalg.svd(P @ Z, compute_uv=False)[:K - 1]
    assert abs(m["effective_rank"] - effective_rank(sv)) < 1e-10


# ------------------------------------------------------------------ acceptance: spectral
SPECTRAL_CASES = [  # (K, L, n, group, width, loss)
    (16, 3, 2, "walsh", 20, "ce"),
    (6, 3, 2, "cyclic", 10, "ce"),
    (10, 3, 2, "2,5", 14, "ce"),
    (8, 4, 1, "walsh", [9, 12, 10], "ls:0.1"),
    (6, 2, 3, "cyclic", 7, "mse"),
]


@pytest.mark.parametrize("wd", [0.0, 1e-3])
@pytest.mark.parametrize("K,L,n,group,width,loss", SPECTRAL_CASES)
def test_spectral_full_gd_matches_reduced(K, L, n, group, width, loss, wd):
    spec = ModelSpec(K, L, n, loss, (wd,), group)
    lr = 0.5 if loss != "mse" else 0.2
    r = fm.validate_spectral(spec, _state(spec), width, lr, 500, 25, seed=1, device="cpu",
                             svd_every=1 if L < 4 else 7)
    assert r["device"] == "cpu" and r["dtype"] == "float64"
    assert r["max_rel_dev"] < 1e-10, r
    assert r["max_leakage"] < 1e-10, r
    assert r["max_svd_tail"] < 1e-12
    assert r["svd_checked_steps"] == (r["saved_steps"] if L < 4 else
                                      [0.0, 175.0, 350.0, 500.0])
    assert r["loss_gap"] < 1e-12
    # the run actually moved: z changed by O(1)
    assert np.max(np.abs(np.array(r["z_final_reduced"]) - np.prod(_state(spec), axis=0))) > 0.1


def test_gd_to_flow_order():
    spec = ModelSpec(16, 3, 2, "ce", (0.0,), "walsh")
    oc = fm.order_check(spec, _state(spec), 20, 0.2, 4.0, levels=4, device="cpu")
    assert abs(oc["order"] - 1.0) < 0.1, oc
    assert abs(oc["order_reduced"] - 1.0) < 0.1
    assert np.all(np.diff(oc["errors_full"]) < 0)
    # full GD and the exact reduced map agree, so their errors do too
    assert np.allclose(oc["errors_full"], oc["errors_reduced"], rtol=1e-6)


# ------------------------------------------------------------------ acceptance: random init
def test_random_init_effective_rank_grows_with_width():
    """K = 8, L = 3, widths 8 and 256, seeds 0..2, sigma 0.1 per entry, 500 steps of lr 0.5."""
    spec = ModelSpec(8, 3, 1, "ce", (0.0,), "walsh")
    eff = {}
    for w in (8, 256):
        eff[w] = []
        for sd in range(3):
            r = fm.validate_random(spec, w, 0.1, 0.5, 500, 250, sd, "cpu")
            assert r["final"]["loss"] < r["series"]["loss"][0]
            assert r["final"]["min_margin"] > 0
            eff[w].append(r["final"]["effective_rank"])
    assert min(eff[256]) > max(eff[8]) + 1.0, eff
    assert min(eff[256]) > 6.5 and max(eff[8]) < 4.5, eff


# ------------------------------------------------------------------ CLI and campaign
def test_cli_validate_spectral_json(tmp_path, capsys):
    out = tmp_path / "v.json"
    rc = main(["validate", "--classes", "10", "--group", "2,5", "--depth", "3", "--width", "12",
               "--samples-per-class", "2", "--weight-decay", "1e-3", "--lr", "0.5", "--steps",
               "200", "--init-scale", "1", "--device", "cpu", "--order-check", "2",
               "--json", str(out), "--plot", str(tmp_path / "v.png"), "--quiet"])
    assert rc == 0
    d = json.loads(out.read_text())
    for k in ("device", "dtype", "max_rel_dev", "max_leakage", "loss_gap", "reduced_seconds",
              "full_seconds", "order"):
        assert k in d
    assert d["device"] == "cpu" and d["max_rel_dev"] < 1e-10 and d["max_leakage"] < 1e-10
    assert abs(d["order"] - 1) < 0.1
    assert (tmp_path / "v.png").stat().st_size > 0
    assert "max_rel_dev" in capsys.readouterr().out


def test_cli_validate_random_sweep(tmp_path):
    out = tmp_path / "r.json"
    rc = main(["validate", "--classes", "4", "--depth", "3", "--width", "4,32",
               "--samples-per-class", "2", "--lr", "0.5", "--steps", "60", "--init-kind",
               "random", "--init-scale", "0.5", "--fan-in", "--seeds", "2", "--device", "cpu",
               "--json", str(out), "--plot", str(tmp_path / "r.png"), "--quiet"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["device"] == "cpu" and set(d["effective_rank_by_width"]) == {"4", "32"}
    assert len(d["runs"]) == 4
    ser = d["runs"][0]["series"]
    for k in ("step", "loss", "nc1", "nc2_W", "nc2_H", "nc2_Z", "nc3", "numerical_rank",
              "effective_rank", "stable_rank", "min_margin"):
        assert len(ser[k]) == len(ser["step"]) > 2
    assert (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.parametrize("argv,msg", [
    (["--width", "6"], "width 6 < K = 8"),
    (["--width", "12", "--init-kind", "random", "--init", "1,1,1,1,1,1,1"], "--init-scale"),
    (["--width", "1x2"], "--width"),
])
def test_cli_validate_bad_input(argv, msg, capsys):
    rc = main(["validate", "--classes", "8", "--depth", "2", "--lr", "0.1", "--steps", "2",
               "--device", "cpu", "--quiet"] + argv)
    assert rc == 2
    assert msg in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cli_validate_cuda_without_gpu(capsys):
    rc = main(["validate", "--classes", "4", "--depth", "2", "--width", "4", "--lr", "0.1",
               "--steps", "1", "--device", "cuda"])
    assert rc == 2 and "no CUDA device" in capsys.readouterr().err


def test_campaign_small_on_cpu(tmp_path):
    out = tmp_path / "c.json"
    p = subprocess.run([sys.executable, str(ROOT / "validation" / "gpu_campaign.py"), "--small",
                        "--device", "cpu", "--timeout", "120", "--out", str(out)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(out.read_text())
    assert d["device"] == "cpu" and all(e["status"] == "ok" for e in d["phases"])
    assert d["max_rel_dev"] < 1e-10 and d["max_leakage"] < 1e-10
    assert "summary" in p.stdout


def test_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import svdyn, svdyn.fullmodel, svdyn.cli.validate\n"
            "from svdyn.cli.main import build_parser; build_parser()\n"
            "from svdyn.groups import SpecError\n"
            "try:\n    svdyn.fullmodel.resolve_device('cpu')\nexcept SpecError as e:\n"
            "    print('ok', e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok") and "torch" in p.stdout
