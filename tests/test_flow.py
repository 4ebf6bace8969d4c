"""Gradient flow: scipy as oracle, a lockstep test against scipy's RK45, invariants, statuses."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.integrate import RK45, solve_ivp

from svdyn.descent import descend
from svdyn.field import vector_field
from svdyn.integrate import flow, log_grid
from svdyn.spec import ModelSpec


def _z0(spec, scale, seed):
    rng = np.random.default_rng(seed)
    z = scale * rng.uniform(0.5, 1.5, spec.K)
    z = 0.5 * (z + z[spec.G.partner])
    z[0] = 0.0
    return z


def _f(spec):
    shape = (spec.L, spec.K)
    return lambda t, y: vector_field(spec, y.reshape(shape))[0].ravel()


@pytest.mark.parametrize("K,L,group,loss,wd,scale", [
    (8, 2, "walsh", "ce", 0.0, 0.3),
    (8, 3, "walsh", "ce", 0.0, 0.5),
    (6, 4, "cyclic", "ce", 0.0, 1.0),
    (10, 3, "2,5", "ls:0.1", 0.0, 0.5),
    (8, 3, "walsh", "mse", 0.01, 0.5),
    (4, 2, "walsh", "ce", 1e-3, 1.0),
])
def test_flow_matches_scipy(K, L, group, loss, wd, scale):
    spec = ModelSpec(K, L, 1, loss, wd, group)
    s0 = spec.balanced(_z0(spec, scale, K + L))
    s0[0] *= 1.2  # also unbalanced
    times = [0.0, 10.0, 1e3, 1e6]
    tr = flow(spec, s0, save_at=times, rtol=1e-11, atol=1e-14)
    assert tr.status == "ok"
    # converging losses (weight decay, label smoothing, mse) are stiff near their fixed point
    method = "DOP853" if (loss == "ce" and wd == 0) else "LSODA"
    ref = solve_ivp(_f(spec), (0, 1e6), s0.ravel(), method=method, rtol=1e-11, atol=1e-14,
                    t_eval=times[1:])
    assert ref.success
    ys = ref.y.T.reshape(-1, L, K)
    for i in range(3):
        rel = np.abs(tr.s[i + 1] - ys[i]).max() / np.abs(ys[i]).max()
        assert rel < 1e-7, (times[i + 1], rel)


def test_lockstep_with_scipy_rk45():
    """Same tableau and step control as scipy's RK45: identical step sequence and states."""
    spec = ModelSpec(8, 3)
    s0 = spec.balanced(_z0(spec, 0.5, 1))
    rtol, atol, h0 = 1e-6, 1e-9, 1e-3
    solver = RK45(_f(spec), 0.0, s0.ravel(), 1e9, rtol=rtol, atol=atol, first_step=h0)
    ts, ys = [], []
    for _ in range(60):
        solver.step()
        ts.append(solver.t)
        ys.append(solver.y.copy())
    for k in (1, 2, 5, 17, 40, 60):
        tr = flow(spec, s0, save_at=[ts[k - 1]], rtol=rtol, atol=atol, first_step=h0,
                  method="dopri5")
        assert tr.stats["accepted_steps"][0] == k
        np.testing.assert_allclose(tr.s[-1].ravel(), ys[k - 1], rtol=1e-12, atol=1e-15)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 5), st.floats(0.05, 2.0), st.integers(0, 10_000))
def test_balancedness_conserved(L, scale, seed):
    spec = ModelSpec(8, L)
    rng = np.random.default_rng(seed)
    s0 = spec.balanced(_z0(spec, scale, seed)) + rng.uniform(0, 0.3, (L, 8))
    tr = flow(spec, s0, save_at=[0, 1.0, 100.0, 1e4], rtol=1e-11, atol=1e-14)
    sq = tr.s ** 2
    d = sq[:, :, None, :] - sq[:, None, :, :]  # (T, L, L, K)
    scale_ = np.maximum(sq.max(axis=1), 1.0)[:, None, None, :]
    assert np.abs((d - d[0]) / scale_).max() < 1e-8


def test_mode0_fixed_under_ce_and_moves_under_mse():
    spec = ModelSpec(8, 3)
    z = _z0(spec, 0.5, 2)
    z[0] = 0.7
    tr = flow(spec, spec.balanced(z), 1e5)
    assert np.all(tr.s[:, :, 0] == tr.s[0, :, 0])
    mse = flow(ModelSpec(8, 3, loss="mse"), spec.balanced(z), 1e3)
    assert abs(mse.z[-1, 0] - 1.0) < 1e-6  # converges to z_0 = sqrt(n)


def test_long_horizon_k1024_depth4_no_overflow():
    spec = ModelSpec(1024, 4)
    s0 = spec.balanced(_z0(spec, 0.5, 0))
    tr = flow(spec, s0, 1e12, save_at=log_grid(1e12, 30))
    assert tr.status == "ok"
    assert np.all(np.isfinite(tr.s)) and np.all(np.isfinite(tr.loss))
    assert np.all(np.diff(tr.loss) <= 0)
    assert tr.stats["accepted_steps"][0] < 20_000


def test_steps_grow_like_log_t():
    spec = ModelSpec(16, 3)
    s0 = spec.balanced(_z0(spec, 0.5, 3))
    n = [flow(spec, s0, save_at=[T]).stats["accepted_steps"][0] for T in (1e4, 1e8, 1e12)]
    # equal spacing in log t costs about the same number of steps
    assert abs((n[2] - n[1]) - (n[1] - n[0])) < 0.5 * (n[1] - n[0])


def test_failure_is_a_status_not_nan():
    spec = ModelSpec(8, 3)
    tr = flow(spec, spec.balanced(_z0(spec, 0.5, 4)), 1e6, max_steps=5)
    assert tr.status.startswith("max_steps")
    assert np.isnan(tr.s[-1]).all()


def test_batch_equals_single():
    spec = ModelSpec(6, 3, group="cyclic")
    S0 = np.stack([spec.balanced(_z0(spec, 0.5, i)) for i in range(4)])
    b = flow(spec, S0, 1e4)
    for i in range(4):
        np.testing.assert_array_equal(flow(spec, S0[i], 1e4).s, b.s[i])


@pytest.mark.parametrize("group,K", [("cyclic", 6), ("2,5", 10), ("3,3", 9)])
def test_paired_modes_stay_exactly_equal_at_depth(group, K):
    """The pair-splitting direction is unstable at L >= 3: round-off must never enter it."""
    spec = ModelSpec(K, 4, weight_decay=1e-3, group=group)
    z = _z0(spec, 0.1, 0)
    tr = flow(spec, spec.balanced(z), 2e5)
    assert tr.status == "ok"
    for j, p in spec.G.pairs:
        assert np.array_equal(tr.s[..., j], tr.s[..., p])
    d = descend(spec, spec.balanced(z), 1.0, 3000, 100)
    for j, p in spec.G.pairs:
        assert np.array_equal(d.s[..., j], d.s[..., p])


@pytest.mark.parametrize("K,L,group,loss,wd", [
    (8, 3, "walsh", "ce", 1e-3), (8, 3, "walsh", "mse", 1e-2), (8, 2, "walsh", "ls:0.1", 0.0),
    (6, 4, "cyclic", "ce", 1e-3), (10, 3, "2,5", "mse", 1e-3)])
def test_steady_handoff_matches_explicit_and_reaches_1e12(K, L, group, loss, wd):
    """Converging flows are stiff at their fixed point; the Newton hand-off agrees with the
    explicit integration (within the tolerance) and makes t = 1e12 cheap."""
    spec = ModelSpec(K, L, 1, loss, wd, group)
    s0 = spec.balanced(_z0(spec, 0.5, 11))
    times = [1e2, 1e4, 1e5]
    ref = flow(spec, s0, save_at=times, steady_handoff=False)
    tr = flow(spec, s0, save_at=times + [1e12])
    assert tr.status == "ok" and ref.status == "ok"
    assert tr.stats["t_steady"][0] > 0
    assert tr.stats["accepted_steps"][0] < ref.stats["accepted_steps"][0]
    rel = np.abs(tr.s[:3] - ref.s).max() / np.abs(ref.s).max()
    assert rel < 1e-7, rel
    _, loss_ref, _ = vector_field(spec, ref.s[-1])
    assert abs(tr.loss[-1] - loss_ref) < 1e-8 * abs(loss_ref)


def test_no_handoff_without_fixed_point():
    spec = ModelSpec(8, 2)
    tr = flow(spec, spec.balanced(_z0(spec, 0.5, 1)), 1e12)
    assert tr.stats["t_steady"][0] == -1.0 and tr.status == "ok"


@pytest.mark.parametrize("K, B", [(4, None), (4, 3), (64, None), (64, 5)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_initial_state_is_refused(K, B, bad):
    """Small states take check_state's list path, larger ones numpy's: both refuse."""
    from svdyn.groups import SpecError
    spec = ModelSpec(K, 2)
    s0 = spec.balanced(np.full(K, 0.1) if B is None else np.full((B, K), 0.1))
    s0[(..., 1, K - 1)] = bad
    with pytest.raises(SpecError, match="non-finite"):
        flow(spec, s0, t_end=1.0, progress=False)
