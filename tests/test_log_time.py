"""``flow(log_time=True)``: the stepper in ``tau = log(1 + t)``, checked against scipy on the
physical clock, against svdyn's own t clock, and for what it must leave unchanged (save times,
the stats, the steady hand-off, batches, argument checks)."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from svdyn.field import vector_field
from svdyn.groups import SpecError
from svdyn.integrate import flow, log_grid
from svdyn.spec import ModelSpec
from test_flow import _z0


def _scipy(spec, s0, times, method="DOP853", rtol=1e-12, atol=1e-15):
    shape = (spec.L, spec.K)
    sol = solve_ivp(lambda t, y: vector_field(spec, y.reshape(shape))[0].ravel(),
                    (0.0, times[-1]), s0.ravel(), method=method, rtol=rtol, atol=atol,
                    t_eval=times)
    assert sol.success
    return sol.y.T.reshape(-1, *shape)


@pytest.mark.parametrize("K,L,group,loss,method", [
    (4, 2, "walsh", "ce", "dop853"),      # the K = 4 kernels
    (8, 3, "walsh", "ce", "dop853"),      # walsh ce kernels
    (8, 3, "walsh", "ce", "dopri5"),
    (8, 3, "walsh", "ce", "tsit5"),
    (6, 4, "cyclic", "ce", "dop853"),     # the general kernels
    (10, 3, "2,5", "ls:0.1", "dop853"),
])
def test_log_time_matches_scipy_at_every_save_time(K, L, group, loss, method):
    """Intermediate save times come off the dense output (DOP853's three extra stages are
    weighted too), the last is hit exactly; all agree with scipy on the t clock."""
    spec = ModelSpec(K, L, 1, loss, 0.0, group)
    s0 = spec.balanced(_z0(spec, 0.5, K + L))
    s0[0] *= 1.2
    times = [0.0, 0.3, 10.0, 1e3, 1e6]
    tr = flow(spec, s0, save_at=times, rtol=1e-11, atol=1e-14, method=method, log_time=True)
    assert tr.status == "ok" and tr.stats["log_time"] is True
    np.testing.assert_array_equal(tr.times, times)
    ref = _scipy(spec, s0, times, "DOP853" if loss == "ce" else "LSODA")
    np.testing.assert_array_equal(tr.s[0], s0)
    for i in range(1, len(times)):
        rel = np.abs(tr.s[i] - ref[i]).max() / np.abs(ref[i]).max()
        assert rel < 1e-7, (times[i], rel)
    # the loss and the margin are those of the saved state
    for i in (2, 4):
        _, loss_i, mm_i = vector_field(spec, tr.s[i])
        assert tr.loss[i] == pytest.approx(loss_i, rel=1e-12)
        assert tr.min_margin[i] == pytest.approx(mm_i, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("K,L,t_end", [(4, 2, 1e7), (16, 2, 1e9)])
def test_log_time_takes_fewer_steps_for_a_smaller_error(K, L, t_end):
    """Late ce dynamics are smooth in log t: the log clock at rtol 1e-10 takes fewer attempted
    steps than the t clock at 1e-9 and ends closer to a tight reference (here 50 against 77
    steps, 2.4e-13 against 1.2e-12 at K = 4; 62 against 93, 3.5e-13 against 2.7e-12 at
    K = 16)."""
    spec = ModelSpec(K, L)
    s0 = spec.balanced(_z0(spec, 0.5, 3 if K == 4 else 5))
    ref = flow(spec, s0, save_at=[t_end], rtol=1e-13, atol=1e-16).s[-1]
    t_clock = flow(spec, s0, save_at=[t_end], rtol=1e-9, atol=1e-12)
    log_clock = flow(spec, s0, save_at=[t_end], rtol=1e-10, atol=1e-12, log_time=True)
    err_t = np.abs(t_clock.s[-1] - ref).max() / np.abs(ref).max()
    err_log = np.abs(log_clock.s[-1] - ref).max() / np.abs(ref).max()
    steps_t = t_clock.stats["accepted_steps"][0] + t_clock.stats["rejected_steps"][0]
    steps_log = log_clock.stats["accepted_steps"][0] + log_clock.stats["rejected_steps"][0]
    assert steps_log < 0.75 * steps_t, (steps_log, steps_t)
    assert err_log < 0.5 * err_t, (err_log, err_t)


def test_log_time_steps_still_grow_like_log_t():
    spec = ModelSpec(16, 3)
    s0 = spec.balanced(_z0(spec, 0.5, 3))
    n = [flow(spec, s0, save_at=[T], log_time=True).stats["accepted_steps"][0]
         for T in (1e4, 1e8, 1e12)]
    assert abs((n[2] - n[1]) - (n[1] - n[0])) < 0.5 * (n[1] - n[0]), n


def test_log_time_reports_times_in_t():
    spec = ModelSpec(8, 2)
    s0 = spec.balanced(_z0(spec, 0.5, 1))
    tr = flow(spec, s0, 1e7, log_time=True)
    assert tr.stats["t_reached"] == [1e7]          # the final stop, exactly
    assert tr.stats["t_steady"] == [-1.0]
    np.testing.assert_array_equal(tr.times, log_grid(1e7))
    assert np.all(np.diff(tr.loss) <= 0)


def test_log_time_steady_handoff_agrees_with_the_t_clock():
    """With weight decay the flow has a fixed point: the hand-off gets the field of t (not the
    log clock's weighted stage), lands on the same state and reports t_steady in t."""
    spec = ModelSpec(8, 3, 1, "ce", 1e-3)
    s0 = spec.balanced(_z0(spec, 0.5, 11))
    times = [1e2, 1e4, 1e5, 1e12]
    ref = flow(spec, s0, save_at=times[:3], steady_handoff=False)
    tr = flow(spec, s0, save_at=times, log_time=True)
    assert tr.status == "ok"
    t_s = tr.stats["t_steady"][0]
    assert 1e2 < t_s < 1e12
    rel = np.abs(tr.s[:3] - ref.s).max() / np.abs(ref.s).max()
    assert rel < 1e-7, rel
    f, _, _ = vector_field(spec, tr.s[-1])
    assert np.abs(f).max() < 1e-9


def test_log_time_batch_equals_single():
    spec = ModelSpec(6, 3, group="cyclic")
    S0 = np.stack([spec.balanced(_z0(spec, 0.5, i)) for i in range(4)])
    b = flow(spec, S0, 1e6, log_time=True)
    for i in range(4):
        one = flow(spec, S0[i], 1e6, log_time=True)
        np.testing.assert_array_equal(one.s, b.s[i])
        assert one.stats["t_reached"][0] == b.stats["t_reached"][i] == 1e6


def test_log_time_first_step_is_in_units_of_t():
    """first_step = h in t is the step log(1 + h) in tau: the first save time at t = h is then
    reached in one step."""
    spec = ModelSpec(8, 2)
    s0 = spec.balanced(_z0(spec, 0.5, 2))
    tr = flow(spec, s0, save_at=[0.0, 1e-3], first_step=1e-3, log_time=True, rtol=1e-6)
    assert tr.stats["accepted_steps"][0] == 1 and tr.stats["t_reached"][0] == 1e-3
    ref = _scipy(spec, s0, [0.0, 1e-3])
    assert np.abs(tr.s[-1] - ref[-1]).max() < 1e-9


@pytest.mark.parametrize("kw,msg", [({"log_time": "yes"}, "log_time must be True or False"),
                                    ({"log_time": True, "adaptive": False, "first_step": 0.1},
                                     "log_time=True needs adaptive=True")])
def test_log_time_arguments_are_checked(kw, msg):
    spec = ModelSpec(4, 2)
    with pytest.raises(SpecError, match=msg):
        flow(spec, spec.balanced(_z0(spec, 0.5, 0)), 10.0, **kw)


@pytest.mark.parametrize("method", ["dop853", "dopri5"])
def test_extreme_horizon_t_clock_agrees_with_log_clock(method):
    """At t = 1e200 the field is ~1e-200: DOP853's sums of squared scaled errors underflowed
    there, its error estimate became 0 and every step was accepted (min margin 467.76 at rtol
    1e-9, 467.47 at 1e-12). Both clocks and both methods now agree with the log clock at a
    tight tolerance."""
    spec = ModelSpec(8, 2)
    s0 = spec.balanced(_z0(spec, 0.5, 0))
    ref = flow(spec, s0, save_at=[1e200], rtol=1e-12, log_time=True)
    tr = flow(spec, s0, save_at=[1e200], rtol=1e-9, method=method)
    assert tr.status == "ok" and ref.status == "ok"
    # before the fix dop853 ended 4.3e-4 (relative) away; dopri5 ends 1.1e-9 away
    np.testing.assert_allclose(tr.s[-1], ref.s[-1], rtol=1e-7)
    assert tr.min_margin[-1] == pytest.approx(ref.min_margin[-1], rel=1e-7)
