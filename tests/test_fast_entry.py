"""The compiled entry-point fast path of ``stepper.drive``: same results as numba's dispatch,
and a fall-back to dispatch for arguments whose type it cannot vouch for."""
import numpy as np

import svdyn.integrate as integrate
import svdyn.stepper as st
from svdyn.bundle import CLOCK_T, I_ATTEMPTS, JOB_RK, STOP_TIME, make_ctrl, new_run
from svdyn.integrate import flow
from svdyn.spec import ModelSpec
from svdyn.tableaux import TABLEAUX


def _starts(spec, B, seed=0):
    rng = np.random.default_rng(seed)
    z = 0.5 * rng.uniform(0.5, 1.5, (B, spec.K))
    z = 0.5 * (z + z[:, spec.G.partner])
    z[:, 0] = 0.0
    return spec.balanced(z)


def test_entry_point_results_equal_dispatch(monkeypatch):
    spec = ModelSpec(6, 3, group="cyclic", weight_decay=1e-3)
    S = _starts(spec, 3)
    wce = ModelSpec(8, 2)   # walsh ce: the WALSH_CE kernels (one trajectory: rk_advance itself)
    W = _starts(wce, 3)
    kw = dict(save_at=[0.0, 1.0, 1e3, 1e6], progress=False)

    def runs():
        return [flow(spec, S[0], **kw), flow(spec, S, **kw),
                flow(spec, S[1], method="dopri5", **kw), flow(wce, W[0], **kw),
                flow(wce, W[0], **kw), flow(wce, W, **kw), flow(wce, W, **kw)]
    fast = runs()
    assert st._ENTRY   # the fast path was taken
    monkeypatch.setattr(st, "_entry", lambda *a: None)
    monkeypatch.setattr(integrate, "_PLANS", {})   # flow's plans keep the entry they found
    slow = runs()
    for r in range(3):   # a single trajectory and the same one as row r of a batch
        np.testing.assert_array_equal(slow[5].s[r], flow(wce, W[r], **kw).s)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a.s, b.s)
        np.testing.assert_array_equal(a.loss, b.loss)
        assert a.stats["accepted_steps"] == b.stats["accepted_steps"]
        assert a.stats["t_steady"] == b.stats["t_steady"]


def test_unvouched_arguments_dispatch():
    spec = ModelSpec(4, 2)
    s0 = _starts(spec, 1)
    tab, m = TABLEAUX["dop853"], spec.bundle(CLOCK_T)
    times = np.array([0.0, 1e-3, 1.0])
    ctrl = make_ctrl(JOB_RK, 1e-9, 1e-12, 10_000, 1 << 20, True, True, STOP_TIME, 0.0)
    ref = new_run(s0, tab.n_dense, times)
    st.drive(ref, m, tab, ctrl)
    # one walsh ce trajectory (K = 4) runs the per-trajectory step with the walsh ce K = 4 flags
    k, flags = st.SINGLE[st.WALSH4_CE_KERNELS[0]]
    assert st._entry(k, new_run(s0, tab.n_dense, times), m, tab, ctrl, True, flags) is not None
    odd = ctrl._replace(h0=np.float64(0.0))   # a numpy scalar: not keyed, dispatch
    assert st._entry(k, new_run(s0, tab.n_dense, times), m, tab, odd, False, flags) is None
    run = new_run(s0, tab.n_dense, times)
    st.drive(run, m, tab, odd)
    np.testing.assert_array_equal(run.out_s, ref.out_s)
    # a run whose stops are read-only has another fingerprint (and numba type): no entry
    ro = new_run(s0, tab.n_dense, times)
    ro.stops.setflags(write=False)
    assert st._entry(k, ro, m, tab, ctrl, False, flags) is None
    # a batch runs the loop kernel, keyed apart from the step with the same bundles
    S2 = np.concatenate([s0, s0])
    st.drive(new_run(S2, tab.n_dense, times), m, tab, ctrl)
    loop = st.WALSH4_CE_KERNELS[0]
    assert st._entry(loop, new_run(S2, tab.n_dense, times), m, tab, ctrl, True) is not None


def test_new_run_copies_a_read_only_state():
    y = np.ones((1, 2, 4))
    y.setflags(write=False)
    run = new_run(y, 7, np.array([1.0]), copy=False)
    assert run.y.flags.writeable and run.y.flags.c_contiguous
    assert all(a.flags.writeable and a.flags.c_contiguous for a in run)


def test_flows_without_a_fixed_point_skip_the_hand_off_kernels():
    """Unregularised ce has no finite fixed point: its flows run the kernels compiled without
    the steady hand-off, with results identical to the hand-off kernels; any weight decay,
    another loss, or the hand-off turned off chooses as documented, and a regularised flow
    still hands off (t_steady >= 0)."""
    tab = TABLEAUX["dop853"]
    ce = ModelSpec(8, 3)
    assert not st.has_fixed_point(ce.bundle(CLOCK_T))
    assert st.has_fixed_point(ModelSpec(8, 3, weight_decay=1e-3).bundle(CLOCK_T))
    assert st.has_fixed_point(ModelSpec(8, 3, loss="mse").bundle(CLOCK_T))
    assert st.has_fixed_point(ModelSpec(8, 3, loss="ls:0.1").bundle(CLOCK_T))
    S = _starts(ce, 2)
    times = np.array([0.0, 1.0, 1e4, 1e8])
    ctrl = make_ctrl(JOB_RK, 1e-9, 1e-12, 100_000, 1 << 20, True, True, STOP_TIME, 0.0)
    runs = []
    for kern in (st.WALSH_CE_KERNELS[0], st.FREE_KERNELS[0], st.BATCH_KERNELS[JOB_RK][0]):
        run = new_run(S, tab.n_dense, times)
        st._drive(kern, run, ce.bundle(CLOCK_T), tab, ctrl, None, 1.0, True)
        runs.append(run)
    for r in runs[1:]:   # the walsh ce field alone, the general field, and the hand-off
        np.testing.assert_array_equal(runs[0].out_s, r.out_s)
        np.testing.assert_array_equal(runs[0].ist, r.ist)
    reg = ModelSpec(4, 2, weight_decay=1e-2)
    tr = flow(reg, _starts(reg, 1)[0], 1e8, progress=False)
    assert tr.stats["t_steady"][0] >= 0


def test_walsh4_kernels_give_the_bits_of_the_general_ones():
    """At K = 4 the walsh ce kernels evaluate every field through ``field.walsh4_field``: the
    states, losses, margins and step counts are the bits of the K-generic walsh ce kernels and
    of the general ones, at depths 1-3, with and without weight decay (hand-off off), for the
    three explicit tableaux, dense output on."""
    times = np.array([0.0, 1e-3, 0.7, 1e3, 1e6])
    for L, wd in ((1, 0.0), (2, 0.0), (3, 0.0), (2, 1e-3)):
        spec = ModelSpec(4, L, weight_decay=wd)
        m = spec.bundle(CLOCK_T)
        S = _starts(spec, 2)
        for meth in ("dop853", "dopri5", "tsit5"):
            tab = TABLEAUX[meth]
            ctrl = make_ctrl(JOB_RK, 1e-9, 1e-12, 100_000, 1 << 20, False, True, STOP_TIME, 0.0)
            assert st._family(m, tab, ctrl) == st.WALSH4_CE_KERNELS
            runs = []
            for kern in (st.WALSH4_CE_KERNELS[0], st.WALSH_CE_KERNELS[0], st.FREE_KERNELS[0]):
                run = new_run(S, tab.n_dense, times)
                st._drive(kern, run, m, tab, ctrl, None, 1.0, True)
                runs.append(run)
            assert (runs[0].ist[:, 0] == 0).all()   # status ok
            for r in runs[1:]:
                for a, b in zip(runs[0], r):
                    np.testing.assert_array_equal(a, b)


def test_single_fast_path_continues_unfinished_runs_in_slices(monkeypatch):
    """``drive``'s path for one fresh trajectory runs the first slice by the entry point and
    hands an unfinished run to the slice loop: the results are the bits of one long slice."""
    seen = []
    loop = st._drive

    def spy(kernel, run, *a):
        seen.append(int(run.ist[0, I_ATTEMPTS]))   # attempts before the loop took over
        return loop(kernel, run, *a)
    monkeypatch.setattr(st, "_drive", spy)
    spec = ModelSpec(4, 3)
    s0 = _starts(spec, 1)
    tab, m = TABLEAUX["dop853"], spec.bundle(CLOCK_T)
    times = np.array([0.0, 1.0, 1e3, 1e7])
    work = tab.n_stages * spec.L * spec.K
    whole = make_ctrl(JOB_RK, 1e-9, 1e-12, 100_000, 1 << 20, False, True, STOP_TIME, 0.0)
    ref = new_run(s0, tab.n_dense, times)
    st.drive(ref, m, tab, whole, work_per_step=work)
    assert ref.ist[0, 0] == 0 and ref.ist[0, 1] > 40   # ok, and more steps than one slice
    for _ in range(2):   # the second call finds the step compiled: the fast path
        run = new_run(s0, tab.n_dense, times)
        st.drive(run, m, tab, whole._replace(slice_steps=3), work_per_step=work, fresh=True)
        for a, b in zip(ref, run):
            np.testing.assert_array_equal(a, b)
    assert seen[-1] == 3   # the last call: a first slice of 3 attempts, then the loop


def test_flow_plan_cache_keeps_every_check():
    """flow's cache of checked arguments: a hit never lets a bad value through (max_steps=True
    after max_steps=1), a new spec of equal fields gets its own plan, and each trajectory owns
    its default save grid."""
    import pytest

    from svdyn.groups import SpecError
    spec = ModelSpec(4, 2)
    s0 = _starts(spec, 1)[0]
    a = flow(spec, s0, 1.0, max_steps=1, progress=False)
    assert a.status != "ok"   # one attempt is not enough
    with pytest.raises(SpecError, match="max_steps"):
        flow(spec, s0, 1.0, max_steps=True, progress=False)
    with pytest.raises(SpecError, match="rtol"):
        flow(spec, s0, 1.0, rtol=float("nan"), progress=False)
    other = ModelSpec(4, 2, weight_decay=1e-3)
    b = flow(other, s0, 1e3, progress=False)
    c = flow(ModelSpec(4, 2, weight_decay=1e-3), s0, 1e3, progress=False)
    np.testing.assert_array_equal(b.s, c.s)
    d = flow(spec, s0, 1e3, progress=False)
    assert not np.array_equal(b.s, d.s)   # the weight decay was not taken from another plan
    d.times[:] = -1.0
    assert flow(spec, s0, 1e3, progress=False).times[-1] == 1e3


def test_new_run_hands_out_fresh_arrays_every_call():
    """new_run copies kept arrays for small runs: each run owns its arrays (NaN outputs, zero
    state), and what a run writes never reaches the next one."""
    s0 = np.ones((1, 2, 4))
    times = np.array([0.0, 1.0])
    a = new_run(s0, 16, times)
    for arr in a[1:]:
        arr[...] = 7
    b = new_run(s0, 16, times)
    assert all(x is not y and not np.shares_memory(x, y) for x, y in zip(a, b))
    assert np.isnan(b.out_s).all() and np.isnan(b.out_loss).all() and np.isnan(b.out_t).all()
    assert not b.k.any() and not b.fs.any() and not b.ist.any()
    np.testing.assert_array_equal(b.stops, times)
    assert b.stops is not times and b.y is not s0
    for x in b:
        assert x.flags.c_contiguous and x.flags.writeable
    big = new_run(np.ones((64, 4, 64)), 16, np.linspace(0, 1, 200))   # not kept: allocated
    assert big.out_s.shape == (64, 200, 4, 64) and np.isnan(big.out_s).all()
