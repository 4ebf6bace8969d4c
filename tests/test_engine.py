"""The one engine: bundles, tableaux (order of convergence, scipy DOP853), dense output, the
fast-transform margins, the clocks, and the certification clock ``flow_y``."""
import numpy as np
import pytest
from scipy.integrate import DOP853, solve_ivp

from svdyn import softmax
from svdyn.analysis.maxmargin import margin_matrix
from svdyn.bundle import CLOCK_NORM, CLOCK_Y, JOB_RK, STOP_TIME, Model, make_ctrl, new_run
from svdyn.field import new_scratch
from svdyn.groups import SpecError
from svdyn.stepper import drive, y_jacobian
from svdyn.field import vector_field, y_field
from svdyn.integrate import flow, flow_y, y_floor
from svdyn.spec import ModelSpec
from svdyn.stepper import MAX_STEPS, OK, PRECISION, STOP_PASSED
from svdyn.tableaux import IMPLICIT, TABLEAUX

EXPLICIT = sorted(set(TABLEAUX) - IMPLICIT)


def _f(spec):
    shape = (spec.L, spec.K)
    return lambda t, y: vector_field(spec, y.reshape(shape))[0].ravel()


def _s0():
    spec = ModelSpec(4, 3)
    s0 = spec.balanced(np.array([0, 1.0, 0.7, 0.4]))
    s0[0] *= 1.3
    return spec, s0


def test_bundle_is_named_and_complete():
    spec = ModelSpec(10, 3, 2, "ls:0.1", (0.1, 0.2, 0.3), "2,5")
    m = spec.bundle()
    assert isinstance(m, Model)
    assert (m.code, m.eps, m.n, m.depth, m.classes) == (2, 0.1, 2.0, 3, 10)
    assert list(m.lam) == [0.1, 0.2, 0.3] and list(m.dims) == [2, 5] and m.tmax == 5
    assert spec.bundle(CLOCK_NORM).clock == CLOCK_NORM


def test_dop853_coefficients_are_scipys():
    t = TABLEAUX["dop853"]
    assert np.array_equal(t.A[:12, :12], DOP853.A) and np.array_equal(t.b[:12], DOP853.B)
    assert np.array_equal(t.e[:13], DOP853.E5) and np.array_equal(t.e3[:13], DOP853.E3)


@pytest.mark.parametrize("method", EXPLICIT)
def test_tableau_consistency(method):
    t = TABLEAUX[method]
    assert np.allclose(t.A.sum(axis=1), t.c, atol=1e-14)  # row sums = nodes
    assert abs(t.b.sum() - 1) < 1e-14
    assert np.allclose(t.A[t.n_stages - 1, :t.n_stages], t.b[:t.n_stages], atol=0)  # FSAL
    # the dense output at theta = 1 is the solution
    assert np.allclose(t.P.sum(axis=1), t.b, atol=1e-13)


@pytest.mark.parametrize("method,ns,lo", [("dopri5", (16, 32), 4.6), ("tsit5", (16, 32), 4.6),
                                          ("dop853", (3, 6), 7.5)])
def test_order_of_convergence(method, ns, lo):
    """Fixed steps h and h/2 against a tight scipy reference: error ratio 2^order."""
    spec, s0 = _s0()
    T = 4.0
    ref = solve_ivp(_f(spec), (0, T), s0.ravel(), method="DOP853", rtol=1e-13, atol=1e-16)
    yr = ref.y[:, -1].reshape(spec.L, spec.K)
    err = [np.abs(flow(spec, s0, save_at=[T], adaptive=False, first_step=T / n,
                       method=method).s[-1] - yr).max() for n in ns]
    order = np.log2(err[0] / err[1])
    assert lo < order < TABLEAUX[method].sol_order + 1.5, (err, order)


@pytest.mark.parametrize("method", EXPLICIT)
def test_dense_output_order(method):
    """Inside one fixed step the interpolant's error falls like h^(p+1), p its order."""
    spec, s0 = _s0()
    errs = []
    for h in (0.4, 0.2):
        a = flow(spec, s0, save_at=[0.3 * h, h], adaptive=False, first_step=h,
                 method=method).s[0]
        ref = solve_ivp(_f(spec), (0, 0.3 * h), s0.ravel(), method="DOP853", rtol=1e-13,
                        atol=1e-16)
        errs.append(np.abs(a.ravel() - ref.y[:, -1]).max())
    p = {"dopri5": 4, "tsit5": 4, "dop853": 7}[method]
    assert np.log2(errs[0] / errs[1]) > p + 0.5, errs


@pytest.mark.parametrize("method", EXPLICIT)
def test_methods_agree_with_scipy_dop853(method):
    spec = ModelSpec(8, 3, group="walsh")
    rng = np.random.default_rng(3)
    z = np.r_[0.0, 0.5 * rng.uniform(0.5, 1.5, 7)]
    s0 = spec.balanced(z)
    s0[1] *= 0.9
    times = [0.0, 3.0, 100.0, 1e4]
    tr = flow(spec, s0, save_at=times, rtol=1e-11, atol=1e-14, method=method)
    ref = solve_ivp(_f(spec), (0, 1e4), s0.ravel(), method="DOP853", rtol=1e-12, atol=1e-15,
                    t_eval=times)
    rel = np.abs(tr.s - ref.y.T.reshape(tr.s.shape)).max() / np.abs(ref.y).max()
    assert tr.status == "ok" and rel < 1e-8, rel


def test_lockstep_with_scipy_dop853():
    """Same coefficients and step control as scipy's DOP853: identical steps and states."""
    spec = ModelSpec(8, 3)
    rng = np.random.default_rng(1)
    s0 = spec.balanced(np.r_[0.0, 0.5 * rng.uniform(0.5, 1.5, 7)])
    solver = DOP853(_f(spec), 0.0, s0.ravel(), 1e9, rtol=1e-6, atol=1e-9, first_step=1e-3)
    ts, ys = [], []
    for _ in range(30):
        solver.step()
        ts.append(solver.t)
        ys.append(solver.y.copy())
    for k in (1, 7, 30):
        tr = flow(spec, s0, save_at=[ts[k - 1]], rtol=1e-6, atol=1e-9, first_step=1e-3,
                  method="dop853")
        assert tr.stats["accepted_steps"][0] == k
        np.testing.assert_allclose(tr.s[-1].ravel(), ys[k - 1], rtol=1e-12, atol=1e-15)


def test_dense_save_grid_costs_no_steps_and_matches_hitting():
    spec = ModelSpec(16, 4)
    rng = np.random.default_rng(0)
    s0 = spec.balanced(np.r_[0.0, 0.3 * rng.uniform(0.5, 1.5, 15)])
    dense = flow(spec, s0, 1e7, rtol=1e-10)
    hit = flow(spec, s0, 1e7, rtol=1e-10, hit_save_times=True)
    bare = flow(spec, s0, save_at=[1e7], rtol=1e-10)
    assert dense.stats["accepted_steps"] == bare.stats["accepted_steps"]
    assert hit.stats["accepted_steps"][0] > 1.5 * dense.stats["accepted_steps"][0]
    assert np.abs(dense.s - hit.s).max() < 1e-7 * np.abs(hit.s).max()
    assert np.allclose(dense.loss, hit.loss, rtol=1e-7, atol=0)
    assert np.allclose(dense.min_margin, hit.min_margin, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("group,K", [("walsh", 8), ("cyclic", 6), ("cyclic", 7), ("2,5", 10),
                                     ("3,3", 9)])
def test_fast_margins_equal_the_dense_matrix(group, K):
    spec = ModelSpec(K, 3, group=group)
    rng = np.random.default_rng(K)
    z = spec.G.symmetrise(rng.uniform(0, 3, (5, K)))
    M = margin_matrix(spec.G, 2)
    assert np.allclose(softmax.margins(spec.G, z, 2), z @ M.T, rtol=1e-13, atol=1e-13)
    r, m = softmax.scaled_residual(spec.G, z, 2)
    w = np.exp(-(m - m.min(axis=-1, keepdims=True)))
    assert np.allclose(r, w @ (1 - spec.G.char_table[1:, :]), rtol=1e-12, atol=1e-12)


def test_normalised_clock_is_the_rescaled_t_field():
    spec = ModelSpec(6, 4, group="cyclic")
    rng = np.random.default_rng(2)
    s = spec.balanced(spec.G.symmetrise(np.r_[0.0, rng.uniform(2, 5, 5)]))
    ft, loss, mm = vector_field(spec, s)
    fn, _, mm2 = vector_field(spec, s, clock=CLOCK_NORM)
    m = softmax.margins(spec.G, s.prod(axis=0))
    scale = np.exp(mm) * (1 + np.exp(-m).sum())
    assert mm == mm2 and np.allclose(fn, ft * scale, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------- flow_y
def _balanced_dz(spec, z):
    s = spec.balanced(z)
    ds, _, mm = vector_field(spec, s)
    # dz_j/dt = sum_l ds_l,j prod_{m != l} s_m,j
    return np.array([sum(ds[l, j] * np.prod(np.delete(s[:, j], l)) for l in range(spec.L))
                     for j in range(spec.K)]), mm


@pytest.mark.parametrize("L,group,K", [(3, "walsh", 4), (4, "cyclic", 6), (5, "walsh", 8)])
def test_y_field_is_the_mapped_t_field(L, group, K):
    """dy/dtau = (dy/dz)(dz/dt) / (dtau/dt) with the t-field of the factors (chain rule) and a
    finite difference of y along the t-flow."""
    spec = ModelSpec(K, L, group=group)
    rng = np.random.default_rng(L)
    z = spec.G.symmetrise(np.r_[0.0, rng.uniform(1, 4, K - 1)])
    y = np.r_[-1.0, z[1:] ** (-(L - 2) / L)]
    dy, _, mm = y_field(spec, y)
    dz, mm_t = _balanced_dz(spec, z)
    expect = -(L - 2) / L * z[1:] ** (-(L - 2) / L - 1) * dz[1:] * np.exp(mm_t)
    assert np.allclose(dy[1:], expect, rtol=1e-10, atol=0) and dy[0] == 0
    # finite difference along the actual flow, mapped through y and tau
    h = 1e-4
    tr = flow(spec, spec.balanced(z), save_at=[0, h, 2 * h], rtol=1e-13, atol=1e-16,
              hit_save_times=True)
    yt = tr.z[:, 1:] ** (-(L - 2) / L)
    dydt = (yt[2] - yt[0]) / (2 * h)  # at t = h
    dy_h = y_field(spec, np.r_[-1.0, yt[1]])[0]
    assert np.allclose(dy_h[1:], dydt * np.exp(tr.min_margin[1]), rtol=1e-7)
    for j, p in spec.G.pairs:
        assert dy[j] == dy[p]


def test_flow_y_stops_match_the_t_flow():
    """The y-clock state where min y reaches a stop equals the t-flow's state where it does,
    and tau is the integral of e^{-m_min} dt."""
    spec = ModelSpec(4, 3)
    z0 = np.array([0.0, 0.3, 0.2, 0.1])
    s0 = spec.balanced(z0)
    ts = np.linspace(0, 60, 6001)
    tr = flow(spec, s0, save_at=ts, rtol=1e-12, atol=1e-15)
    ymin = (tr.z[:, 1:] ** (-1 / 3)).min(axis=1)
    stops = [ymin[1000], ymin[3000], ymin[5000] * 1.0001]
    yf = flow_y(spec, z0, stops, rtol=1e-12)
    assert yf.status[0] == OK, yf.message
    got_min = np.min(yf.y[0, :, 1:], axis=-1)
    assert np.allclose(got_min, stops, rtol=1e-13, atol=0)  # each stop hit exactly
    tau_t = np.concatenate([[0], np.cumsum(0.5 * (np.exp(-tr.min_margin[1:])
                                                  + np.exp(-tr.min_margin[:-1])) * np.diff(ts))])
    for i, st in enumerate(stops):
        k = np.searchsorted(-ymin, -st)  # ymin decreasing
        w = (ymin[k - 1] - st) / (ymin[k - 1] - ymin[k])
        zt = (1 - w) * tr.z[k - 1] + w * tr.z[k]
        assert np.allclose(yf.z_at_stop[0, i, 1:], zt[1:], rtol=1e-5)
        taut = (1 - w) * tau_t[k - 1] + w * tau_t[k]
        assert abs(yf.tau[0, i] - taut) < 1e-5 * taut
    assert yf.y[0, 0, 0] == np.inf and yf.z_at_stop[0, 0, 0] == 0.0


def test_flow_y_batch_pairs_floor_and_errors():
    spec = ModelSpec(6, 4, group="cyclic")
    rng = np.random.default_rng(4)
    Z = spec.G.symmetrise(np.c_[np.zeros(3), rng.uniform(0.05, 0.2, (3, 5))])
    Z[2, 3] = 0.0  # a mode that never moves (self-conjugate mode 3 of Z_6)
    y0min = (Z[Z > 0] ** -0.5).min()
    stops = [0.95 * y0min, 0.9 * y0min, 1e-9]
    yb = flow_y(spec, Z, stops, max_steps=20_000)
    for i in range(3):
        one = flow_y(spec, Z[i], stops, max_steps=20_000)
        assert np.array_equal(one.y[0], yb.y[i], equal_nan=True)
    assert np.isinf(yb.y[2, 0, 3]) and yb.z_at_stop[2, 0, 3] == 0.0
    for j, p in spec.G.pairs:
        assert np.array_equal(yb.y[..., j], yb.y[..., p], equal_nan=True)
    assert 1e-9 < y_floor(4) and list(yb.status) == [PRECISION] * 3  # last stop not usable
    assert np.isnan(yb.y[:, 2]).all() and np.isfinite(yb.tau[:, :2]).all()
    assert "1e+10" in yb.message[0]
    # the start already past the first stop
    past = flow_y(spec, Z[0], [10 * Z[0, 1] ** -0.5])
    assert past.status[0] == STOP_PASSED
    # limits are statuses
    lim = flow_y(spec, Z[0], [2.0, 1e-3], max_steps=5)
    assert lim.status[0] == MAX_STEPS and lim.steps[0] + lim.n_rejected[0] <= 5
    for bad in (ModelSpec(4, 2), ModelSpec(4, 3, loss="mse"), ModelSpec(4, 3, weight_decay=1e-3)):
        with pytest.raises(ValueError, match="flow_y needs"):
            flow_y(bad, np.ones(4), [1.0])
    with pytest.raises(ValueError, match="decreasing"):
        flow_y(spec, Z[0], [1.0, 2.0])


def _y_at_tau(spec, y0, tau, method, **kw):
    """The y-clock state at clock time tau (internal API: time stops in the y clock)."""
    tab = TABLEAUX[method]
    run = new_run(np.asarray(y0, float)[None, None, :], tab.n_dense, [tau])
    drive(run, spec.bundle(CLOCK_Y), tab, make_ctrl(JOB_RK, stop_kind=STOP_TIME, **kw))
    return run.out_s[0, -1, 0]


@pytest.mark.parametrize("spec", [ModelSpec(4, 3), ModelSpec(6, 4, group="cyclic")])
def test_y_jacobian_matches_finite_differences(spec):
    rng = np.random.default_rng(0)
    L = spec.L
    z = spec.G.symmetrise(np.r_[0.0, rng.uniform(1, 3, spec.K - 1)])
    y = np.r_[-1.0, z[1:] ** (-(L - 2) / L)]
    m = spec.bundle(CLOCK_Y)
    J = np.empty((spec.K, spec.K))
    y_jacobian(y[None], J, new_scratch(spec.K, m.tmax), m)
    fd = np.zeros_like(J)
    for k in range(1, spec.K):
        e = np.zeros(spec.K)
        e[k] = 1e-6 * y[k]
        fd[:, k] = (y_field(spec, y + e)[0] - y_field(spec, y - e)[0]) / (2 * e[k])
    assert np.abs(J - fd).max() < 1e-8 * np.abs(J).max()
    assert not J[0].any() and not J[:, 0].any()


def test_rodas4_order_of_convergence():
    spec = ModelSpec(4, 3)
    y0 = np.r_[-1.0, np.array([0.3, 0.2, 0.1]) ** (-1 / 3)]
    tau = 1.0
    ref = _y_at_tau(spec, y0, tau, "dop853", rtol=1e-13, atol=1e-16)
    err = [np.abs(_y_at_tau(spec, y0, tau, "rodas4", adaptive=False, h0=tau / n) - ref)[1:].max()
           for n in (8, 16)]
    assert 3.5 < np.log2(err[0] / err[1]) < 5.0, err


def test_rodas4_crosses_the_stiff_tie_where_explicit_pairs_crawl():
    """K = 4, L = 3 from (0, .1, .1, .01): the square code, two tied margins. dopri5 and
    rodas4 agree where dopri5 gets; rodas4 reaches z ~ 1e10 in a few hundred steps."""
    spec = ModelSpec(4, 3)
    z0 = np.array([0.0, 0.1, 0.1, 0.01])
    stops = [1.0, 0.1, 0.03]
    a = flow_y(spec, z0, stops, method="dopri5", rtol=1e-10)
    b = flow_y(spec, z0, stops + [1e-3, 5e-4], method="rodas4", rtol=1e-10)
    assert a.status[0] == OK and b.status[0] == OK, (a.message, b.message)
    assert np.allclose(b.tau[0, :3], a.tau[0], rtol=1e-7)
    assert np.allclose(b.z_at_stop[0, :3], a.z_at_stop[0], rtol=1e-6)
    assert b.steps[0] + b.n_rejected[0] < 2000
    assert np.allclose(b.y[0, :, 1:].min(axis=-1), b.y_stops, rtol=1e-12)
    assert b.y[0, -1, 1] == b.y[0, -1, 2]  # the tied pair of live modes stays tied
    with pytest.raises(SpecError, match="flow_y"):
        flow(spec, spec.balanced(z0), 1.0, method="rodas4")
