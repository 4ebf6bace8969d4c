"""The generated kernel module: byte-identical regeneration, and agreement with torch autograd
on the full matrix model (random points and logits near 1e4), and with independent
high-precision evaluations."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import svdyn._generated_kernels as gen  # noqa: E402
import svdyn.kernels as kernels  # noqa: E402
from svdyn.field import logit_gradient, vector_field  # noqa: E402
from svdyn.lyapunov import margins_of, rate, rate_l2, value  # noqa: E402
from svdyn.spec import ModelSpec  # noqa: E402

torch = pytest.importorskip("torch")
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def test_regeneration_is_byte_identical():
    from derivations.codegen import TARGET, generate

    assert TARGET == ROOT / "svdyn" / "_generated_kernels.py"
    assert generate() == TARGET.read_text(), "run `svdyn derive` and commit the result"


def test_header_names_source_and_command():
    head = (ROOT / "svdyn" / "_generated_kernels.py").read_text()[:1200]
    assert "GENERATED" in head and "derivations/closed_forms.py" in head
    assert "derivations/lyapunov.py" in head and "svdyn derive" in head


def test_library_runs_generated_kernels():
    for name in ("ce_grad", "ls_grad", "mse_grad", "mse_loss_term", "ls_loss_extra",
                 "lyapunov_value", "lyapunov_rate", "lyapunov_rate_l2"):
        assert getattr(kernels, name) is getattr(gen, name)
    import svdyn.field as field
    assert field.ce_grad is gen.ce_grad and field.mse_grad is gen.mse_grad


# ------------------------------------------------------------------ full model in torch
def _orth(rng, d, K):
    q, _ = np.linalg.qr(rng.standard_normal((d, K)))
    return q


def full_model(spec: ModelSpec, s: np.ndarray, rng, extra: int = 2):
    """Loss and reduced gradient -[R_l^T dloss/dF_l R_{l-1}]_jj of the full model (torch)."""
    K, L, n = spec.K, spec.L, spec.n
    N = n * K
    Q = spec.G.Q
    B = np.kron(Q, np.ones((n, 1))) / math.sqrt(n)
    frames = [B] + [_orth(rng, K + extra, K) for _ in range(L - 1)] + [Q]
    t = lambda a: torch.tensor(a, dtype=torch.float64, device=DEV)  # noqa: E731
    F = [t(frames[l + 1] @ np.diag(s[l]) @ frames[l].T).requires_grad_(True) for l in range(L)]
    Z = F[0]
    for l in range(1, L):
        Z = F[l] @ Z
    y = torch.arange(K, device=DEV).repeat_interleave(n)
    code, eps = spec.loss_code
    if spec.loss == "mse":
        Y = torch.nn.functional.one_hot(y, K).to(torch.float64).T
        data = ((Z - Y) ** 2).sum() / (2 * N)
    else:
        data = torch.nn.functional.cross_entropy(Z.T, y, label_smoothing=eps)
    loss = data + sum(0.5 * lam * (f ** 2).sum() for lam, f in zip(spec.lam, F))
    loss.backward()
    red = np.empty((L, K))
    for l in range(L):
        G = F[l].grad.detach().cpu().numpy()
        P = frames[l + 1].T @ G @ frames[l]
        red[l] = -np.diag(P)
        off = P - np.diag(np.diag(P))
        assert np.max(np.abs(off)) <= 1e-9 * max(1.0, np.max(np.abs(P))), "not diagonal"
    return float(loss.detach()), float(data.detach()), red


CASES = [
    dict(classes=4, depth=2, samples_per_class=2, loss="ce", weight_decay=0.01),
    dict(classes=5, depth=3, loss="ls:0.1", group="cyclic"),
    dict(classes=6, depth=2, loss="mse", group="2,3", weight_decay=(0.01, 0.02)),
    dict(classes=6, depth=3, samples_per_class=2, loss="ls:0.2", group="2,3"),
    dict(classes=10, depth=3, samples_per_class=2, loss="ce", group="2,5", weight_decay=0.003),
    dict(classes=8, depth=4, loss="ce"),
]


def _state(spec, rng, scale=1.0):
    z = scale * rng.uniform(0.5, 1.5, spec.K)
    z = np.where(np.arange(spec.K) > spec.G.partner, z[spec.G.partner], z)
    s = spec.balanced(z) * np.exp(0.3 * rng.standard_normal((spec.L, spec.K)))
    s[:, np.arange(spec.K) > spec.G.partner] = s[:, spec.G.partner][:, np.arange(spec.K) >
                                                                    spec.G.partner]
    return np.ascontiguousarray(s)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"K{c['classes']}L{c['depth']}{c['loss']}")
def test_field_matches_torch_autograd(case):
    spec = ModelSpec(**case)
    rng = np.random.default_rng(1)
    s = _state(spec, rng)
    loss_t, _, red = full_model(spec, s, rng)
    ds, loss, _ = vector_field(spec, s)
    np.testing.assert_allclose(ds, red, rtol=1e-10, atol=1e-13)
    assert loss == pytest.approx(loss_t, rel=1e-12)


@pytest.mark.parametrize("loss", ["ce", "ls:0.1"])
def test_logits_near_1e4_common_shift(loss):
    """Mode 0 carries 1e4: every logit is ~1e4 (naive exp overflows), margins stay O(1)."""
    spec = ModelSpec(classes=8, depth=2, loss=loss)
    rng = np.random.default_rng(2)
    z = rng.uniform(0.5, 3.0, 8)
    z[0] = 1e4 * spec.K        # u_g = 1e4 + O(1)
    s = spec.balanced(z)
    loss_t, _, red = full_model(spec, s, rng)
    ds, lo, mm = vector_field(spec, s)
    assert np.all(np.isfinite(ds)) and math.isfinite(lo)
    # logits of 1e4 carry absolute rounding ~1e-12 in the full model
    np.testing.assert_allclose(ds[:, 1:], red[:, 1:], rtol=1e-8, atol=1e-10)
    assert np.all(ds[:, 0] == 0.0)    # mode 0 never moves under ce / ls
    assert lo == pytest.approx(loss_t, rel=1e-9)


def test_margins_near_1e4():
    """Margins ~1e4 (the true class logit exceeds the others by 1e4): finite, correct."""
    spec = ModelSpec(classes=4, depth=2)
    z = np.array([0.0, 1.0e4, 1.1e4, 0.9e4]) * 2      # margins (2 z_a + 2 z_b)/4 ~ 1e4
    s = spec.balanced(z)
    rng = np.random.default_rng(3)
    loss_t, _, red = full_model(spec, s, rng)
    ds, lo, mm = vector_field(spec, s)
    assert mm > 9e3 and np.all(np.isfinite(ds)) and math.isfinite(lo)
    np.testing.assert_allclose(ds, red, atol=1e-300)
    assert lo == loss_t == 0.0           # e^{-1e4} underflows in both


@pytest.mark.parametrize("margin", [40.0, 300.0, 700.0])
def test_ce_grad_full_relative_precision(margin):
    """Late-time values (1 - mu ~ e^{-700}) keep full relative precision (mpmath reference)."""
    spec = ModelSpec(classes=4, depth=2)
    z = np.array([0.0, 1.0, 1.3, 0.8])
    z *= margin / margins_of(spec, z)[1:].min()
    g, _, _ = logit_gradient(spec, z)
    mpmath.mp.dps = 50
    C = spec.G.char_table
    u = [sum(mpmath.mpf(C[a, j]) * mpmath.mpf(z[j]) for j in range(4)) / 4 for a in range(4)]
    w = [mpmath.exp(x - u[0]) for x in u]
    p = [x / sum(w) for x in w]
    for j in range(1, 4):
        omm = sum(((1 if a == 0 else 0) - p[a]) * mpmath.mpf(C[a, j]) for a in range(4))
        assert g[j] == pytest.approx(float(omm / 4), rel=1e-12)
        assert gen.ce_grad(float(omm), 4, 1.0) == pytest.approx(float(omm / 4), rel=1e-15)


# ------------------------------------------------------------------ Lyapunov kernels vs torch
def _torch_V(z):
    zt = torch.tensor(z[1:], dtype=torch.float64, requires_grad=True)
    q = zt / zt.sum()
    M = zt.numel()
    V = (torch.log(torch.tensor(1.0 / M, dtype=torch.float64) / q)).sum() / M
    V.backward()
    return float(V.detach()), np.concatenate([[0.0], zt.grad.numpy()])


@pytest.mark.parametrize("case", [dict(classes=8, depth=2), dict(classes=6, depth=2, group="2,3"),
                                  dict(classes=8, depth=3), dict(classes=5, depth=2,
                                                                 group="cyclic", weight_decay=0.01)])
def test_lyapunov_kernels_match_torch(case):
    spec = ModelSpec(**case)
    rng = np.random.default_rng(4)
    for scale in (0.05, 1.0, 30.0):
        z = scale * rng.uniform(0.5, 1.5, spec.K)
        z = np.where(np.arange(spec.K) > spec.G.partner, z[spec.G.partner], z)
        z[0] = 0.0
        s = spec.balanced(z)
        Vt, gradV = _torch_V(z)
        assert value(z) == pytest.approx(Vt, rel=1e-11)
        ds, _, _ = vector_field(spec, s)
        zdot = np.array([sum(ds[l, j] * np.prod(np.delete(s[:, j], l)) for l in range(spec.L))
                         for j in range(spec.K)])
        ref = float(gradV @ zdot)
        assert rate(spec, s) == pytest.approx(ref, rel=1e-9, abs=1e-15)
        if spec.L == 2:
            assert rate_l2(spec, z) == pytest.approx(ref, rel=1e-9, abs=1e-15)
            assert rate_l2(spec, z) <= 0.0


def test_lyapunov_kernels_finite_at_1e4():
    spec = ModelSpec(classes=8, depth=2)
    z = np.array([0.0] + [1e4 * (1 + 0.1 * j) for j in range(7)])
    assert math.isfinite(value(z)) and value(z) > 0
    r = rate_l2(spec, z)
    assert math.isfinite(r) and r <= 0.0
    m = np.array([0.0, -1e4, 2e4, 5.0, 1e4, -3.0, 7.0, 1.0])   # either sign
    assert math.isfinite(gen.lyapunov_rate_l2(m, 1.0))
    # phi near 0: series branch equals the closed form in high precision
    mpmath.mp.dps = 40
    for x in (1e-9, -3e-5, 0.099, -0.0999, 0.2):
        ref = mpmath.mpf(x) - mpmath.log1p(mpmath.mpf(x))
        assert gen._phi(x) == pytest.approx(float(ref), rel=1e-14)


def test_generated_match_handwritten_formulas():
    """The formulas the kernels replaced (MODEL.md / the former svdyn/kernels.py)."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        omm, z, eps, ms = rng.uniform(-2, 2), rng.uniform(-5, 5), rng.uniform(0, 1), rng.uniform(0, 50)
        K, rn = int(rng.integers(2, 64)), math.sqrt(int(rng.integers(1, 9)))
        assert gen.ce_grad(omm, K, rn) == pytest.approx(omm / (K * rn), rel=1e-15)
        assert gen.ls_grad(omm, eps, K, rn) == pytest.approx((omm - eps) / (K * rn), rel=1e-13)
        assert gen.mse_grad(z, K, rn) == pytest.approx((1.0 - z / rn) / (K * rn), rel=1e-12,
                                                       abs=1e-15)
        d = z / rn - 1.0
        assert gen.mse_loss_term(z, K, rn) == pytest.approx(0.5 * d * d / K, rel=1e-12)
        assert gen.ls_loss_extra(ms, eps, K) == pytest.approx(eps * ms / K, rel=1e-15)
