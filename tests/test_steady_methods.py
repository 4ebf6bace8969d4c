"""The fixed-point hand-off under every explicit tableau: the stiffness estimate against linear
problems, the stability intervals against the roots of the stability polynomial, and the
hand-off against the explicit integration (as ``test_flow.py`` does for the default)."""
import numpy as np
import pytest

from svdyn.field import vector_field
from svdyn.integrate import flow, log_grid
from svdyn.spec import ModelSpec
from svdyn.stepper import _stiff_ratio
from svdyn.tableaux import TABLEAUX
from test_flow import _z0

EXPLICIT = [n for n, t in TABLEAUX.items() if not t.implicit]


@pytest.mark.parametrize("method", EXPLICIT)
def test_stability_interval_is_the_first_root_of_the_stability_polynomial(method):
    """|R(-x)| = 1 first at x = stab_real: R(z) = sum_k z^k b^T A^(k-1) 1 (explicit: a
    polynomial of degree S), roots of R(-x) -+ 1 by numpy."""
    t = TABLEAUX[method]
    S = t.n_stages
    A, b = t.A[:S, :S], t.b[:S]
    coef = [1.0]
    v = np.ones(S)
    for _ in range(S):
        coef.append(b @ v)
        v = A @ v
    poly = np.polynomial.Polynomial(coef)
    neg = poly(np.polynomial.Polynomial([0.0, -1.0]))   # R(-x)
    roots = np.concatenate([(neg - 1).roots(), (neg + 1).roots()])
    real = roots[(abs(roots.imag) < 1e-9) & (roots.real > 1e-9)].real
    assert abs(t.stab_real - real.min()) < 1e-9 * real.min()
    assert t.A[t.stiff_stage].sum() == pytest.approx(1.0) and t.stiff_stage < S - 1


@pytest.mark.parametrize("method", EXPLICIT)
def test_stiffness_estimate_is_exact_on_a_linear_field(method):
    """f(y) = -lam * y (per component): the two c = 1 stages give |lambda| exactly; on
    f(y) = M y it is a Rayleigh-like quotient between the smallest and largest |eigenvalue|."""
    t = TABLEAUX[method]
    S = t.n_stages
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 5))
    for lam, h in ((3.0, 0.5), (1e4, 1e-3)):
        k = np.zeros((t.A.shape[0], 2, 5))
        for i in range(S):
            k[i] = -lam * (y + h * np.tensordot(t.A[i, :i], k[:i], axes=1))
        assert _stiff_ratio(y, k, h, t) == pytest.approx(lam, rel=1e-9)
    M = np.diag([-1.0, -50.0]) @ np.array([[1.0, 0.3], [0.3, 1.0]])
    ev = np.abs(np.linalg.eigvals(M))
    y = np.array([[1.0, -2.0]])
    k = np.zeros((t.A.shape[0], 1, 2))
    for i in range(S):
        k[i] = (M @ (y + 0.01 * np.tensordot(t.A[i, :i], k[:i], axes=1))[0])[None]
    r = _stiff_ratio(y, k, 0.01, t)
    assert ev.min() * 0.99 <= r <= ev.max() * 1.01


@pytest.mark.parametrize("method", ["dop853", "tsit5"])
@pytest.mark.parametrize("K,L,group,loss,wd", [
    (8, 3, "walsh", "mse", 1e-2), (8, 2, "walsh", "ls:0.1", 0.0), (10, 3, "2,5", "mse", 1e-3)])
def test_steady_handoff_under_each_method(method, K, L, group, loss, wd):
    """dop853 and tsit5 step at their stability limit with few rejections: the hand-off still
    fires and agrees with the explicit integration of the same method (rel 1e-7), and the
    loss at t = 1e12 with the field's loss at the explicit state at 1e5."""
    spec = ModelSpec(K, L, 1, loss, wd, group)
    s0 = spec.balanced(_z0(spec, 0.5, 11))
    times = [1e2, 1e4, 1e5]
    ref = flow(spec, s0, save_at=times, steady_handoff=False, method=method)
    tr = flow(spec, s0, save_at=times + [1e12], method=method, max_steps=20_000)
    assert tr.status == "ok" and ref.status == "ok"
    assert 0 < tr.stats["t_steady"][0] < 1e5
    assert tr.stats["accepted_steps"][0] < ref.stats["accepted_steps"][0]
    rel = np.abs(tr.s[:3] - ref.s).max() / np.abs(ref.s).max()
    assert rel < 1e-7, rel
    _, loss_ref, _ = vector_field(spec, ref.s[-1])
    assert abs(tr.loss[-1] - loss_ref) < 1e-8 * abs(loss_ref)


@pytest.mark.parametrize("method", EXPLICIT)
def test_no_handoff_where_not_stiff(method):
    """ce without weight decay has no fixed point; hitting 400 save times makes the run take
    > 256 steps (stiffness windows are tested; h |lambda| there ~0.02-0.04): no hand-off."""
    spec = ModelSpec(16, 3)
    tr = flow(spec, spec.balanced(_z0(spec, 0.5, 1)), save_at=log_grid(1e7, 400), rtol=1e-12,
              atol=1e-16, method=method, hit_save_times=True)
    assert tr.status == "ok" and tr.stats["t_steady"][0] == -1.0
    assert tr.stats["accepted_steps"][0] > 256


def test_walsh_ce_hand_off_kernels_give_the_bits_of_the_general_ones(monkeypatch):
    """Walsh ce flows with weight decay run the WALSH_CE_STEADY kernels (the walsh ce path of
    the field only, in the step and in the hand-off's Newton solve): the same states, losses,
    step counts and hand-off times as the general hand-off kernels, single and batched, and
    the state handed off is a zero of the field."""
    import svdyn.integrate as integrate
    import svdyn.stepper as st
    spec = ModelSpec(8, 3, weight_decay=1e-3)
    z = np.stack([_z0(spec, 0.5, 0), _z0(spec, 0.3, 1)])
    S = spec.balanced(z)
    kw = dict(t_end=1e6, progress=False)

    def runs():
        return [flow(spec, S[0], **kw), flow(spec, S, **kw), flow(spec, S[1], method="dopri5",
                                                                 **kw)]
    new = runs()
    from svdyn.bundle import make_ctrl
    assert st._family(spec.bundle(), TABLEAUX["dop853"], make_ctrl(steady=True)) \
        is st.WALSH_CE_STEADY_KERNELS
    monkeypatch.setattr(st, "is_walsh_ce", lambda m: False)   # the general hand-off kernels
    monkeypatch.setattr(st, "_PICK", (None,) * 5)
    monkeypatch.setattr(integrate, "_PLANS", {})
    old = runs()
    assert new[0].stats["t_steady"][0] > 0   # the hand-off fired
    for a, b in zip(new, old):
        np.testing.assert_array_equal(a.s, b.s)
        np.testing.assert_array_equal(a.loss, b.loss)
        assert a.stats["accepted_steps"] == b.stats["accepted_steps"]
        assert a.stats["t_steady"] == b.stats["t_steady"]
    assert np.abs(vector_field(spec, new[0].s[-1])[0]).max() < 1e-8
