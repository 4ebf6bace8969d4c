"""Reduced momentum / Nesterov / Adam maps against torch's optimizers on the full model, the
sympy derivation, and the continuous-time limits."""
import numpy as np
import pytest

from svdyn.groups import SpecError
from svdyn.optimizers import continuous_limit, optimize
from svdyn.spec import ModelSpec

torch = pytest.importorskip("torch")
from svdyn import fullmodel as fm  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _start(spec, seed):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 1.5, spec.K)
    z = 0.5 * (z + z[spec.G.partner])
    s = rng.uniform(0.7, 1.3, (spec.L, spec.K))
    return 0.5 * (s + s[:, spec.G.partner]) * z ** (1 / spec.L)   # unbalanced


@pytest.mark.parametrize("group,K,L,wd", [("walsh", 8, 2, 0.01), ("walsh", 8, 3, (0.01, 0.0, 0.02)),
                                          ("cyclic", 6, 3, 0.005), ("2,5", 10, 2, (0.0, 0.01))])
@pytest.mark.parametrize("opt", ["momentum", "nesterov"])
def test_momentum_maps_equal_torch_sgd(group, K, L, wd, opt):
    """torch.optim.SGD(momentum, nesterov, per-factor weight_decay groups) on full matrices with
    random orthonormal frames of width K + 3 equals the reduced map to 1e-12 (relative)."""
    spec = ModelSpec(K, L, 2, "ce", wd, group)
    s0 = _start(spec, K + L)
    r = fm.validate_optimizer(spec, s0, K + 3, opt, 0.3, 150, 1, seed=L, device="cpu",
                              momentum=0.9)
    assert r["max_rel_dev"] < 1e-12, r["max_rel_dev"]
    assert r["max_leakage"] < 1e-13
    assert r["loss_rel_gap"] < 1e-12


def test_momentum_zero_is_gd_and_batch():
    from svdyn.descent import descend
    spec = ModelSpec(6, 3, group="cyclic", weight_decay=0.01)
    S0 = np.stack([_start(spec, i) for i in range(3)])
    gd = descend(spec, S0, 0.2, 40, 4)
    m0 = optimize(spec, S0, 0.2, 40, "momentum", momentum=0.0, save_every=4)
    assert np.allclose(m0.s, gd.s, rtol=1e-14, atol=0)
    nb = optimize(spec, S0, 0.2, 40, "nesterov", momentum=0.8, save_every=4)
    for i in range(3):
        one = optimize(spec, S0[i], 0.2, 40, "nesterov", momentum=0.8, save_every=4)
        assert np.array_equal(one.s, nb.s[i])
    bad = optimize(ModelSpec(4, 3, loss="mse"), S0[0][:, :4] * 50, 10.0, 50, "momentum")
    assert bad.status.startswith("state became non-finite")


@pytest.mark.parametrize("loss,wd,opt", [("ce", 1e-3, "adam"), ("mse", 0.0, "adam"),
                                         ("mse", 1e-3, "adamw"), ("ce", 1e-3, "sign-gd")])
def test_elementwise_exact_case_equals_torch(loss, wd, opt):
    """walsh, L = 2, signed-permutation hidden frames: torch's Adam / AdamW / sign-GD equal the
    reduced map. (Every entry of the model is then nonzero or exactly zero in floating point;
    ce needs coupled weight decay so that mode 0's gradient is not rounding noise.)"""
    spec = ModelSpec(8, 2, 2, loss, wd, "walsh")
    s0 = spec.balanced(np.random.default_rng(0).uniform(0.5, 1.5, 8))
    r = fm.validate_optimizer(spec, s0, 11, opt, 1e-2, 200, 1, device="cpu",
                              frames="signed-permutation")
    assert r["max_rel_dev"] < 1e-10, r["max_rel_dev"]


def test_elementwise_refused_where_not_exact_and_random_frames_leave():
    s0 = np.ones((2, 6))
    with pytest.raises(SpecError, match="walsh"):
        optimize(ModelSpec(6, 2, group="cyclic"), s0, 1e-2, 5, "adam")
    with pytest.raises(SpecError, match="depth 1"):
        optimize(ModelSpec(8, 1), np.ones((1, 8)), 1e-2, 5, "adam")
    # the same Adam run as the exact case, but with random orthonormal frames: not reduced
    spec = ModelSpec(8, 2, 2, "ce", 1e-3, "walsh")
    s0 = spec.balanced(np.random.default_rng(0).uniform(0.5, 1.5, 8))
    r = fm.validate_optimizer(spec, s0, 11, "adam", 1e-2, 20, 1, device="cpu", frames="random")
    assert r["max_leakage"] > 1e-3


def test_continuous_limits_orders():
    spec = ModelSpec(8, 3)
    s0 = spec.balanced(np.random.default_rng(0).uniform(0.5, 1.5, 8))
    r = continuous_limit(spec, s0, "momentum", t_end=2.0, lrs=(2e-3, 1e-3, 5e-4))
    assert abs(r["order"] - 1.0) < 0.05, r
    r = continuous_limit(spec, s0, "nesterov", t_end=3.0, damping=2.0,
                         lrs=(1e-2, 2.5e-3, 6.25e-4))
    assert abs(r["order"] - 0.5) < 0.05, r


def test_momentum_derivation():
    from derivations.momentum import EXPECTED, run
    out = run()
    assert {k: out[k] for k in EXPECTED} == EXPECTED


@pytest.mark.parametrize("opt", ["adam", "rmsprop", "sign-gd"])
def test_elementwise_reduced_map_depth3_with_projected_gradients(opt):
    """At L = 3 floating-point rounding in the exactly-zero gradient entries makes the full Adam
    leave the manifold, so the reduced map's hidden-layer scales are checked against torch's
    optimizer fed the gradient with that rounding noise removed (its spectral part on the
    signed-permutation frames, equal to the exact gradient up to rounding)."""
    from svdyn.stability import spectral_part
    spec = ModelSpec(8, 3, 1, "ce", 1e-3, "walsh")
    s0 = spec.balanced(np.random.default_rng(1).uniform(0.5, 1.5, 8))
    fr = fm.make_frames(spec, 11, "signed-permutation", 0, "cpu")
    params = [F.clone() for F in fm.build_spectral_factors(spec, s0, 11, frames=fr)]
    optim = fm.make_torch_optimizer(opt, params, 1e-2, spec.weight_decay)
    dspec = fm.data_spec(spec)
    tr = optimize(spec, s0, 1e-2, 100, opt, save_every=100)
    for _ in range(100):
        _, grads = fm.full_grads(dspec, params)
        for l, (p, g) in enumerate(zip(params, grads)):
            p.grad = spectral_part(g, fr[l + 1], fr[l])
        optim.step()
    s_full, leak = fm.project(params, fr)
    assert np.max(leak) < 1e-14
    assert np.max(np.abs(s_full - tr.s[-1])) < 1e-11 * np.max(np.abs(tr.s[-1]))
