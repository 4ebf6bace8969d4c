"""The one stepper: an embedded Runge--Kutta step and its driver, the gradient-descent map, the
batch wrapper and the Python slice loop (numba).

Every integrator of svdyn runs here: the physical-time flow (``integrate.flow``), the normalised
time of the limit classifier (``analysis.normtime.run_to_margin``), the certification clock
(``integrate.flow_y``) -- the clock is a field of the model bundle -- and gradient descent
(``descent.descend``). Kernels take the named bundles of ``svdyn.bundle``: ``(i, run, m, tab,
ctrl)`` = trajectory index, :class:`~svdyn.bundle.Run`, :class:`~svdyn.bundle.Model`,
:class:`~svdyn.tableaux.Tableau`, :class:`~svdyn.bundle.Ctrl`.

Step control follows scipy.integrate.RK45 (and DOP853 for its combined estimate): error norm
``rms(err / (atol + rtol max(|y|, |y_new|)))``, new step ``h * clip(SAFETY err^(-1/(q+1)),
MIN_FACTOR, MAX_FACTOR)`` with q the tableau's error order. Stops are

* save times (``STOP_TIME``): with ``dense`` only the last one is hit exactly and the others are
  read off the tableau's dense output (a save grid costs no steps); otherwise every one is hit;
* event thresholds (``STOP_MARGIN``: minimum margin; ``STOP_YMIN``: ``-min_j y_j``): located on
  the dense output by a bracketed root polish (Illinois) to round-off.

Nothing can loop or raise: every attempted step counts toward ``max_steps``, a non-finite state,
field or step size ends the trajectory with a status (:data:`STATUS_MESSAGES`), and kernels use
numpy's error model (a division by zero gives inf, never ZeroDivisionError). Compiled work runs
in slices of ``slice_steps`` attempts; :func:`drive` re-enters between slices (sized to
~``SLICE_SECONDS``), so Ctrl-C stops a run within about a second (the partial run is discarded:
the exception propagates before any result is built).
"""
from __future__ import annotations

import math
import time

import numba as nb
import numpy as np
from numba._dispatcher import compute_fingerprint

from .bundle import (CLOCK_T, F_EV, F_H, F_LOSS, F_MM, F_T, F_TSTEADY, I_ATTEMPTS, I_DONE,
                     I_IDX, I_NACC, I_NONFIN, I_NREJ, I_REJ, I_STARTED, I_STATUS, I_WINACC,
                     I_WINREJ, JOB_GD, JOB_RK, STOP_MARGIN, STOP_TIME, STOP_YMIN)
from .field import (GENERAL, NO_LOSS, WALSH_CE, WITH_LOSS, field_into, logits_into,
                    new_scratch, symmetrise_pairs, walsh4_field, z_of_y)
from .groups import WALSH
from .jit import inline as _inline, kernel as _njit, leaf, parallel as _parallel  # jit.py
from .softmax import class_margins, group_transform, min_margin_of
from .spec import LOSS_CE
from .steady import _lu, _lu_solve, newton_steady

SAFETY = 0.9
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
#: below this, DOP853's sum of squared scaled errors is recomputed with the step applied first
#: (see rk_advance: the squares underflow at extreme horizons)
DOP853_TINY = 1e-200
#: Every STEADY_WINDOW accepted steps, if the window shows stiffness, try the hand-off of
#: ``steady.newton_steady``. Stiff means either of: at least STEADY_REJECT_FRACTION of the
#: attempts in the window were rejected (dopri5's step control at its stability limit), or the
#: window's last step is stability-limited, ``h |lambda| >= STEADY_STIFF_FRACTION *
#: tab.stab_real`` with ``|lambda|`` Hairer's estimate ``||f(y_new) - f(Y_s)|| / ||y_new -
#: Y_s||`` from the two stages at c = 1 (DOPRI5/DOP853 codes, Hairer, Norsett & Wanner I,
#: Sec. II.10; free: no extra field evaluation). dop853 and tsit5 run at their stability limit
#: with almost no rejections, so they need the second test (see bench/RESULTS.md).
STEADY_WINDOW = 256
STEADY_REJECT_FRACTION = 0.05
STEADY_STIFF_FRACTION = 0.5
SLICE_SECONDS = 0.2

OK, MAX_STEPS, STEP_TOO_SMALL, NON_FINITE, PRECISION, STOP_PASSED = 0, 1, 2, 3, 4, 5
STATUS_MESSAGES = {
    OK: "ok",
    MAX_STEPS: "max_steps reached before the last save time; raise max_steps or loosen rtol. "
               "Flows that converge to a fixed point (weight decay, mse, label smoothing) are "
               "stiff there (cost ~ t * largest Hessian eigenvalue): end earlier, or find the "
               "fixed point directly with `svdyn critical`",
    STEP_TOO_SMALL: "step size fell below 10 ulp of t; the system is too stiff for this "
                    "explicit method at this tolerance",
    NON_FINITE: "the state became non-finite (overflow); shorten t_end or lower the init scale",
    PRECISION: "a stop lies beyond the precision limit of float64 margins (see the stop "
               "floor of the clock); results up to the last usable stop are kept",
    STOP_PASSED: "the start already lies beyond the first stop",
}


# --------------------------------------------------------------------------- helpers
@leaf
def _rms_scaled(a, y, atol, rtol):
    acc = 0.0
    L, K = a.shape
    for l in range(L):
        for j in range(K):
            sc = atol + rtol * abs(y[l, j])
            r = a[l, j] / sc
            acc += r * r
    return np.sqrt(acc / (L * K))


@leaf
def _scale(a, w):
    """``a *= w`` for an (L, K) array (the log clock's stage weight, see rk_advance)."""
    L, K = a.shape
    for l in range(L):
        for j in range(K):
            a[l, j] *= w


@leaf
def _all_finite(a):
    L, K = a.shape
    for l in range(L):
        for j in range(K):
            if not np.isfinite(a[l, j]):
                return False
    return True


@_inline
def _field(y, out, sc, m, with_loss, general, k4, kn):
    """The field at the stepper's call sites other than the stages: ``field.walsh4_field``
    (the same bits as ``field_into``) in the kernels of walsh ce flows at K = 4, which then
    never compile ``field_into`` (~3 s of a first compile), ``field.field_into`` elsewhere.
    numba prunes a branch only on a test of an argument that is None, so the choice comes
    twice: ``k4`` is ``ON`` in those kernels and None elsewhere, ``kn`` the reverse; the nested
    tests below compile one of the two calls in every kernel."""
    lo, mm = np.nan, np.nan
    if kn is None:
        if k4 is not None:
            lo, mm = walsh4_field(y, out, sc.g, sc.pre, sc.suf, m.n, m.lam, with_loss)
    else:
        lo, mm = field_into(y, out, sc, m, with_loss, general)
    return lo, mm


@_inline
def _initial_step(y0, f0, t_span, err_order, rtol, atol, tmp, ftmp, sc, m, general, k4, kn,
                  t0):
    """scipy's heuristic (Hairer, Norsett & Wanner, Sec. II.4) for the first step; may return
    0 or nan (the caller turns that into a status). Inlined into ``rk_advance`` (as is
    :func:`_dense_stages`): compiled apart, each linked and re-optimised the field's code once
    more; a first flow's compile 20.4-22.0 -> 18.6-19.1 s (numba compile events, 2 rounds)."""
    d0 = _rms_scaled(y0, y0, atol, rtol)
    d1 = _rms_scaled(f0, y0, atol, rtol)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = min(h0, t_span)
    L, K = y0.shape
    for l in range(L):
        for j in range(K):
            tmp[l, j] = y0[l, j] + h0 * f0[l, j]
    _field(tmp, ftmp, sc, m, NO_LOSS, general, k4, kn)
    if t0 > 0.0:   # the log clock (see rk_advance): the field at tau = h0
        _scale(ftmp, t0 * math.exp(h0))
    for l in range(L):
        for j in range(K):
            tmp[l, j] = ftmp[l, j] - f0[l, j]
    d2 = _rms_scaled(tmp, y0, atol, rtol) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (err_order + 1))
    return min(100.0 * h0, h1, t_span)


@leaf
def _transform(x, out, sc, m):
    """``group_transform`` compiled once, for the Jacobian's five transforms."""
    group_transform(x, out, sc, m)


@leaf
def _event(y, mm, sc, m, kind):
    """Increasing event value of a state: the minimum margin, or ``-min_j y_j`` over the moving
    modes (y clock). ``mm`` is the state's min margin when already known (else nan)."""
    if kind == STOP_YMIN:
        v = np.inf
        for j in range(y.shape[1]):
            if y[0, j] > 0.0 and y[0, j] < v:
                v = y[0, j]
        return -v
    if np.isfinite(mm):
        return mm
    return min_margin_of(logits_into(y, sc, m), sc, m)


@_inline
def _dense_stages(y, k, h, tab, ytmp, sc, m, general, k4, kn, t, t0):
    """Extra stages only the dense output needs (DOP853: 3); ``t``: the clock at the start of
    the step, ``t0 > 0``: the log clock (see rk_advance)."""
    L, K = y.shape
    for i in range(tab.n_stages, tab.n_dense):
        for l in range(L):
            for j in range(K):
                ytmp[l, j] = y[l, j]
        for q in range(i):
            cq = h * tab.A[i, q]
            if cq != 0.0:
                for l in range(L):
                    for j in range(K):
                        ytmp[l, j] += cq * k[q, l, j]
        _field(ytmp, k[i], sc, m, NO_LOSS, general, k4, kn)
        if t0 > 0.0:
            _scale(k[i], t0 * math.exp(t + tab.c[i] * h))


@leaf
def _interpolate(y, k, h, theta, tab, out):
    """Dense output ``out = y(t + theta h)`` from the step's stages."""
    L, K = y.shape
    for l in range(L):
        for j in range(K):
            out[l, j] = y[l, j]
    R = tab.P.shape[1]
    for i in range(tab.n_dense):
        w = 0.0
        p = theta
        for r in range(R):
            w += tab.P[i, r] * p
            p *= theta
        cw = h * w
        if cw != 0.0:
            for l in range(L):
                for j in range(K):
                    out[l, j] += cw * k[i, l, j]


@leaf
def _stiff_ratio(y, k, h, tab):
    """``|lambda|`` estimated from the last step's stages at c = 1 (``tab.stiff_stage`` and
    the FSAL stage ``f(y_new)``): ``||k_F - k_s|| / ||Y_F - Y_s||``, ``Y_F - Y_s = h sum_q
    (A_Fq - A_sq) k_q``; 0 when the stages coincide. Call before ``k[0]`` is overwritten."""
    s = tab.stiff_stage
    F = tab.n_stages - 1
    L, K = y.shape
    num = 0.0
    den = 0.0
    for l in range(L):
        for j in range(K):
            dk = k[F, l, j] - k[s, l, j]
            dy = 0.0
            for q in range(F):
                dy += (tab.A[F, q] - tab.A[s, q]) * k[q, l, j]
            num += dk * dk
            den += dy * dy
    if not (den > 0.0):
        return 0.0
    return np.sqrt(num / den) / h


@leaf
def _record(run, i, idx, ys, loss, mm, t):
    o = run.out_s[i, idx]
    L, K = ys.shape
    for l in range(L):
        for j in range(K):
            o[l, j] = ys[l, j]
    run.out_loss[i, idx] = loss
    run.out_mm[i, idx] = mm
    run.out_t[i, idx] = t


@leaf
def _root_theta(y, k, h, tab, ev0, ev1, target, yint, sc, m, kind):
    """theta in (0, 1] with event(y(theta)) = target, given event(y(0)) = ev0 < target <=
    ev1 = event(y(1)): Illinois regula falsi, to round-off in theta."""
    a, fa = 0.0, ev0 - target
    b, fb = 1.0, ev1 - target
    if fb == 0.0:
        return 1.0
    side = 0
    for _ in range(100):
        x = (a * fb - b * fa) / (fb - fa)
        if not (x > a and x < b):
            x = 0.5 * (a + b)
        _interpolate(y, k, h, x, tab, yint)
        fx = _event(yint, np.nan, sc, m, kind) - target
        if fx == 0.0:
            return x
        if (fx > 0.0) == (fb > 0.0):
            b, fb = x, fx
            if side == -1:
                fa *= 0.5
            side = -1
        else:
            a, fa = x, fx
            if side == 1:
                fb *= 0.5
            side = 1
        if b - a <= 4e-16 * b:
            break
    return b


# ---------------------------------------------------------------------------- Rosenbrock
@_njit
def y_jacobian(y, J, sc, m):
    """Analytic Jacobian ``J = d(dy/dtau)/dy`` (K, K) of the y-clock field at ``y`` (1, K).

    With ``w_c = e^{m_min} p_c`` (the scaled softmax weights), ``G_j = sum_c M_cj w_c`` (``M_cj =
    (1 - C[c, j]) / (K sqrt n)``, ``f_j = -(L-2) G_j``) and ``c*`` the minimising class:
    ``dG_j/dz_k = G_j r_k - sum_c M_cj M_ck w_c`` with ``r_k = M_{c*,k} + sum_c p_c M_ck``,
    and ``dz_k/dy_k = -(L/(L-2)) z_k / y_k``; rows and columns of modes that do not move are 0.
    Costs 2K + 3 transforms."""
    K = y.shape[1]
    L = m.depth
    z = sc.z
    for j in range(K):
        z[j] = z_of_y(y[0, j], L)
    mmin, _ = class_margins(z, sc, m)
    w = sc.w
    cstar = 1
    for c in range(1, K):
        if w[c] == mmin:
            cstar = c
            break
    q = np.empty(K)
    p = np.empty(K)
    q[0] = 0.0
    p[0] = 0.0
    S = 0.0
    for c in range(1, K):
        q[c] = math.exp(-(w[c] - mmin))
        S += q[c]
    if mmin >= 0.0:
        em = math.exp(-mmin)
        F = 1.0 / (1.0 + em * S)
        for c in range(1, K):
            p[c] = q[c] * em * F
    else:
        ep = math.exp(mmin)
        F = ep / (ep + S)
        for c in range(1, K):
            p[c] = q[c] / (ep + S)
    wts = np.empty(K)
    wts[0] = 0.0
    Wsum = 0.0
    Psum = 0.0
    for c in range(1, K):
        wts[c] = q[c] * F
        Wsum += wts[c]
        Psum += p[c]
    kr = 1.0 / (K * math.sqrt(m.n))
    What = np.empty(K)
    _transform(wts, What, sc, m)      # sum_c w_c C_cj
    Phat = np.empty(K)
    _transform(p, Phat, sc, m)        # sum_c p_c C_ck
    e = np.zeros(K)
    e[cstar] = 1.0
    crow = np.empty(K)
    _transform(e, crow, sc, m)        # C[c*, k]
    G = np.empty(K)
    r = np.empty(K)
    for j in range(K):
        G[j] = kr * (Wsum - What[j])
        r[j] = kr * ((1.0 - crow[j]) + (Psum - Phat[j]))
    row = np.empty(K)
    v = np.empty(K)
    X = np.empty(K)
    for k in range(K):
        for j in range(K):
            J[j, k] = 0.0
        if not y[0, k] > 0.0:
            continue
        for j in range(K):
            e[j] = 0.0
        e[k] = 1.0
        _transform(e, row, sc, m)     # C[k, c] = C[c, k]
        v[0] = 0.0
        Ak = 0.0
        for c in range(1, K):
            v[c] = (1.0 - row[c]) * wts[c]
            Ak += v[c]
        _transform(v, X, sc, m)       # sum_c C_cj (1 - C_ck) w_c
        dz = -(L / (L - 2.0)) * z[k] / y[0, k]
        for j in range(K):
            if y[0, j] > 0.0:
                dG = G[j] * r[k] - kr * kr * (Ak - X[j])
                J[j, k] = -(L - 2.0) * dG * dz
    return mmin


@_njit
def _ros_step(y, f0, h, tab, sc, m, ynew, err, U, W, piv, J, ytmp, ftmp, rhs_):
    """One Rosenbrock step (state (1, K), y clock): ``(1/(h gamma) - J) u_i = f(y + sum_j
    a_ij u_j) + sum_j (c_ij / h) u_j``, ``y_new = y + sum_i m_i u_i``, ``err = sum_i e_i u_i``
    (Hairer & Wanner's formulation, IV.7). Returns (ok, loss, min margin) of the last stage."""
    K = y.shape[1]
    S = tab.b.shape[0]
    ns = 0
    for i in range(S):
        if tab.b[i] != 0.0 or tab.e[i] != 0.0:
            ns = i + 1
    y_jacobian(y, J, sc, m)
    d = 1.0 / (h * tab.gamma)
    for r in range(K):
        for c in range(K):
            W[r, c] = -J[r, c]
        W[r, r] += d
    if not _lu(W, piv):
        return False, np.nan, np.nan
    lo = np.nan
    mg = np.nan
    for i in range(ns):
        if i == 0:
            for j in range(K):
                rhs_[j] = f0[0, j]
        else:
            for j in range(K):
                ytmp[0, j] = y[0, j]
            for q in range(i):
                a = tab.A[i, q]
                if a != 0.0:
                    for j in range(K):
                        ytmp[0, j] += a * U[q, j]
            lo, mg = field_into(ytmp, ftmp, sc, m, WITH_LOSS, GENERAL)
            for j in range(K):
                rhs_[j] = ftmp[0, j]
            for q in range(i):
                cq = tab.G[i, q] / h
                if cq != 0.0:
                    for j in range(K):
                        rhs_[j] += cq * U[q, j]
        _lu_solve(W, piv, rhs_)
        for j in range(K):
            U[i, j] = rhs_[j] if y[0, j] > 0.0 else 0.0
        if m.kind != WALSH:
            symmetrise_pairs(U[i], m.dims)
    finite = True
    for j in range(K):
        acc = y[0, j]
        ea = 0.0
        for i in range(ns):
            acc += tab.b[i] * U[i, j]
            ea += tab.e[i] * U[i, j]
        ynew[0, j] = acc
        err[0, j] = ea
        if not np.isfinite(acc):
            finite = False
    return finite, lo, mg


# --------------------------------------------------------------------------- RK slice
@_njit
def rk_advance(i, run, m, tab, ctrl, ros, sty, evs, general, k4, kn):
    """Advance trajectory ``i`` by at most ``ctrl.slice_steps`` attempted steps.

    ``ros``: ``ON`` in the kernels for implicit (Rosenbrock) tableaux, None in the explicit
    ones; numba prunes the ``ros is not None`` branch when ``ros`` is None, so the explicit
    kernels never compile the Rosenbrock step and its analytic Jacobian (~4 s of a first
    compile). ``sty``: likewise for the steady hand-off (stiffness detection and
    ``steady.newton_steady``): None in the kernels of flows that have no finite fixed point
    (unregularised ce, or the hand-off turned off), which then never compile it. ``evs``:
    ``ON`` in the kernels of event stops (``STOP_MARGIN``, ``STOP_YMIN``), None in those of
    save times (``STOP_TIME``), which then never compile the event and root-finding helpers.
    ``general``: ``WALSH_CE`` (None) in the kernels of walsh ce flows in physical time, which
    then compile only that path of the field (``field.field_into``), ``GENERAL`` elsewhere.
    ``k4``, ``kn``: ``ON``, None in the kernels of walsh ce flows at K = 4, which evaluate
    every field through ``field.walsh4_field`` (inlined into the stages; ``field_into`` is then
    never compiled, ~3 s less of a first compile), None, ``ON`` elsewhere (see ``_field``).
    ``drive`` picks the kernel family whose flags fit the run (``_family``).

    ``ctrl.t0 > 0`` (explicit tableaux, save-time stops; ``flow(log_time=True)``): the clock of
    the run is ``tau = log(1 + t / t0)``, ``ds/dtau = (t + t0) f(s) = t0 e^tau f(s)``. Every
    stage is the field times its weight ``t0 e^(tau + c_i h)`` (one exp and one pass over the
    state per stage); the stops, the first step, ``fs[F_T]`` and ``fs[F_TSTEADY]`` are tau
    values (``flow`` converts them), and the steady hand-off is handed the field of t."""
    ist = run.ist[i]
    fs = run.fs[i]
    if ist[I_DONE]:
        return
    y = run.y[i]
    k = run.k[i]
    L, K = y.shape
    stops = run.stops
    T = stops.shape[0]
    S = tab.n_stages
    kind = ctrl.stop_kind
    sc = new_scratch(K, m.tmax)
    ynew = np.empty((L, K))
    ytmp = np.empty((L, K))
    err = np.empty((L, K))
    err3 = np.empty((L, K))
    yint = np.empty((L, K))
    implicit = tab.implicit != 0
    nU = tab.b.shape[0] if implicit else 1
    nJ = K if implicit else 1
    U = np.empty((nU, K))
    Wm = np.empty((nJ, nJ))
    Jm = np.empty((nJ, nJ))
    piv = np.empty(nJ, dtype=np.int64)
    rhs_ = np.empty(K)
    # flat views of the step's (L, K) arrays: the stage sums, the error norm and the update
    # run as one loop over L K values instead of two nested loops (small K: loop overhead)
    n = L * K
    yf = y.reshape(n)
    kf = k.reshape((k.shape[0], n))
    ytf = ytmp.reshape(n)
    ynf = ynew.reshape(n)
    erf = err.reshape(n)
    er3f = err3.reshape(n)
    t0c = ctrl.t0
    if not ist[I_STARTED]:
        ist[I_STARTED] = 1
        loss, mm = _field(y, k[0], sc, m, WITH_LOSS, general, k4, kn)
        if t0c > 0.0:   # the log clock's weight at tau = 0
            _scale(k[0], t0c)
        fs[F_LOSS] = loss
        fs[F_MM] = mm
        fs[F_T] = 0.0
        fs[F_TSTEADY] = -1.0
        if not _all_finite(k[0]):
            ist[I_STATUS] = NON_FINITE
            ist[I_DONE] = 1
            return
        idx = np.int64(0)   # not a literal 0: that compiled a second copy of _record
        if kind == STOP_TIME:
            while idx < T and stops[idx] <= 0.0:
                _record(run, i, idx, y, loss, mm, 0.0)
                idx += 1
        elif evs is not None:
            ev = _event(y, mm, sc, m, kind)
            fs[F_EV] = ev
            if kind == STOP_MARGIN:  # stops already passed: the start itself is recorded
                while idx < T and ev >= stops[idx]:
                    _record(run, i, idx, y, loss, mm, 0.0)
                    idx += 1
            elif ev >= stops[0]:
                ist[I_STATUS] = STOP_PASSED
                ist[I_DONE] = 1
                return
        else:   # an event stop in a save-time kernel (drive never does this)
            ist[I_STATUS] = NON_FINITE
            ist[I_DONE] = 1
            return
        ist[I_IDX] = idx
        if idx == T:
            ist[I_DONE] = 1
            return
        if ctrl.h0 > 0:
            h = ctrl.h0
        else:
            span = stops[T - 1] if kind == STOP_TIME else np.inf
            h = _initial_step(y, k[0], span, tab.order, ctrl.rtol, ctrl.atol, ytmp, ynew, sc,
                              m, general, k4, kn, t0c)
        fs[F_H] = h
    t = fs[F_T]
    h = fs[F_H]
    loss = fs[F_LOSS]
    mm = fs[F_MM]
    ev = fs[F_EV]
    idx = ist[I_IDX]
    nacc = ist[I_NACC]
    nrej = ist[I_NREJ]
    attempts = ist[I_ATTEMPTS]
    step_rejected = ist[I_REJ] != 0
    win_acc = ist[I_WINACC]
    win_rej = ist[I_WINREJ]
    last_nonfinite = ist[I_NONFIN] != 0
    status = 0
    done = False
    inv = -1.0 / (tab.order + 1)
    rtol = ctrl.rtol
    atol = ctrl.atol
    dense = ctrl.dense != 0 or kind != STOP_TIME
    budget = ctrl.slice_steps
    lo = loss
    mg = mm
    # what walsh4_field reads, taken out of the bundles once per slice
    g4 = sc.g
    pre4 = sc.pre
    suf4 = sc.suf
    lam4 = m.lam
    n4 = m.n
    while budget > 0:
        if attempts >= ctrl.max_steps:
            status = MAX_STEPS
            done = True
            break
        budget -= 1
        attempts += 1
        hit = False
        h_eff = h
        target = 0.0
        if kind == STOP_TIME:
            target = stops[T - 1] if dense else stops[idx]
            hit = t + h * (1.0 + 1e-10) >= target  # never leave a sliver of 1e-10 h behind
            if hit:
                h_eff = target - t
        if not (h_eff > 10.0 * 2.220446049250313e-16 * max(abs(t), 1e-300)):
            status = NON_FINITE if (last_nonfinite or not np.isfinite(h_eff)) else STEP_TOO_SMALL
            done = True
            break
        if implicit:
            if ros is not None:
                finite, lo, mg = _ros_step(y, k[0], h_eff, tab, sc, m, ynew, err, U, Wm, piv,
                                           Jm, ytmp, yint, rhs_)
            else:  # an implicit tableau in an explicit kernel (drive never does this)
                finite, lo, mg = False, np.nan, np.nan
        else:
            # stages (flat loops over contiguous memory, so they vectorise)
            for s_ in range(1, S):
                for p in range(n):
                    ytf[p] = yf[p]
                for q in range(s_):
                    cq = h_eff * tab.A[s_, q]
                    if cq != 0.0:
                        for p in range(n):
                            ytf[p] += cq * kf[q, p]
                # the loss only at the last (FSAL) stage, y_new: the others' is never read
                if kn is None:   # walsh ce, K = 4: few arguments, inlined (see _field)
                    if k4 is not None:
                        lo, mg = walsh4_field(ytmp, k[s_], g4, pre4, suf4, n4, lam4,
                                              s_ == S - 1)
                else:
                    lo, mg = field_into(ytmp, k[s_], sc, m, s_ == S - 1, general)
                if t0c > 0.0:   # the log clock: the stage's weight t0 e^(tau + c h)
                    w = t0c * math.exp(t + tab.c[s_] * h_eff)
                    for p in range(n):
                        kf[s_, p] *= w
            # FSAL: the last stage point is y_new
            for p in range(n):
                ynf[p] = 0.0
                erf[p] = 0.0
            if tab.err_kind == 1:   # DOP853: the 3rd-order estimate too
                for p in range(n):
                    er3f[p] = 0.0
                for q in range(S):
                    bq = tab.b[q]
                    eq = tab.e[q]
                    e3q = tab.e3[q]
                    for p in range(n):
                        kq = kf[q, p]
                        ynf[p] += bq * kq
                        erf[p] += eq * kq
                        er3f[p] += e3q * kq
            else:   # e3 is zero and never read: a third less of this pass
                for q in range(S):
                    bq = tab.b[q]
                    eq = tab.e[q]
                    for p in range(n):
                        kq = kf[q, p]
                        ynf[p] += bq * kq
                        erf[p] += eq * kq
            finite = True
            for p in range(n):
                v = yf[p] + h_eff * ynf[p]
                ynf[p] = v
                if not np.isfinite(v):
                    finite = False
        if finite:
            acc = 0.0
            acc3 = 0.0
            for p in range(n):
                sc_ = atol + rtol * max(abs(yf[p]), abs(ynf[p]))
                if tab.err_kind == 0:
                    r = h_eff * erf[p] / sc_
                    acc += r * r
                elif tab.err_kind == 2:
                    r = erf[p] / sc_
                    acc += r * r
                else:
                    r = erf[p] / sc_
                    r3 = er3f[p] / sc_
                    acc += r * r
                    acc3 += r3 * r3
            if tab.err_kind == 1 and acc < DOP853_TINY and abs(h_eff) > 1.0:
                # DOP853's sums of (e / sc)^2 underflow once k ~ 1/t is below ~1e-150 (t
                # clock beyond t ~ 1e150): the estimate became 0 and every step was accepted
                # (t = 1e200: a min margin of 467.76 at rtol 1e-9, 467.47 at 1e-12, against
                # 467.355 from the log clock and from scipy in log t). With h applied first,
                # as the other tableaux do, the same estimate (|h| a5 / sqrt(a5 + a3 / 100)
                # = a5' / sqrt(a5' + a3' / 100) with a' = h^2 a) stays representable.
                acc = 0.0
                acc3 = 0.0
                for p in range(n):
                    sc_ = atol + rtol * max(abs(yf[p]), abs(ynf[p]))
                    r = h_eff * erf[p] / sc_
                    r3 = h_eff * er3f[p] / sc_
                    acc += r * r
                    acc3 += r3 * r3
                if acc == 0.0 and acc3 == 0.0:
                    en = 0.0
                else:
                    en = acc / np.sqrt((acc + 0.01 * acc3) * (L * K))
            elif tab.err_kind != 1:
                en = np.sqrt(acc / (L * K))
            elif acc == 0.0 and acc3 == 0.0:
                en = 0.0
            else:
                en = abs(h_eff) * acc / np.sqrt((acc + 0.01 * acc3) * (L * K))
        else:
            en = np.inf
        if not ctrl.adaptive:
            en = 0.5 if finite else np.inf
        if en < 1.0:
            if en == 0.0:
                factor = MAX_FACTOR
            else:
                factor = min(MAX_FACTOR, SAFETY * en ** inv)
            if step_rejected:
                factor = min(1.0, factor)
            if not ctrl.adaptive:
                factor = 1.0
            t_old = t
            t = target if hit else t + h_eff
            nacc += 1
            if implicit:  # dense layout: k0 = f(y), k1 = (y_new - y) / h, k2 = f(y_new)
                lo, mg = _field(ynew, k[2], sc, m, WITH_LOSS, general, k4, kn)
                for l in range(L):
                    for j in range(K):
                        k[1, l, j] = (ynew[l, j] - y[l, j]) / h_eff
            step_rejected = False
            # ------------------------------------------------ stops inside this step
            have_dense = False
            if kind == STOP_TIME:
                if dense:
                    while idx < T and stops[idx] <= t:
                        if stops[idx] >= t:  # the final stop, hit exactly
                            _record(run, i, idx, ynew, lo, mg, t)
                        else:
                            if not have_dense:
                                _dense_stages(y, k, h_eff, tab, ytmp, sc, m, general, k4, kn,
                                              t_old, t0c)
                                have_dense = True
                            th = (stops[idx] - t_old) / h_eff
                            _interpolate(y, k, h_eff, th, tab, yint)
                            li, mi = _field(yint, err3, sc, m, WITH_LOSS, general, k4, kn)
                            _record(run, i, idx, yint, li, mi, stops[idx])
                        idx += 1
                else:
                    while idx < T and stops[idx] <= t:
                        _record(run, i, idx, ynew, lo, mg, t)
                        idx += 1
            elif evs is not None:
                ev_new = _event(ynew, mg if kind == STOP_MARGIN else np.nan, sc, m, kind)
                while idx < T and ev_new >= stops[idx]:
                    if not have_dense:
                        _dense_stages(y, k, h_eff, tab, ytmp, sc, m, general, k4, kn, t_old,
                                      t0c)
                        have_dense = True
                    th = _root_theta(y, k, h_eff, tab, ev, ev_new, stops[idx], yint, sc, m,
                                     kind)
                    _interpolate(y, k, h_eff, th, tab, yint)
                    li, mi = _field(yint, err3, sc, m, WITH_LOSS, general, k4, kn)
                    _record(run, i, idx, yint, li, mi, t_old + th * h_eff)
                    idx += 1
                ev = ev_new
            stiff = False
            if sty is not None:   # numba prunes on the argument alone: keep this test apart
                if (ctrl.steady != 0 and win_acc + 1 >= STEADY_WINDOW
                        and tab.stiff_stage >= 0 and m.clock == CLOCK_T):
                    hl = h_eff * _stiff_ratio(y, k, h_eff, tab)
                    stiff = hl >= STEADY_STIFF_FRACTION * tab.stab_real
            for p in range(n):
                yf[p] = ynf[p]
                kf[0, p] = kf[S - 1, p]
            loss = lo
            mm = mg
            h_next = h_eff * factor
            h = max(h_next, h) if (hit and ctrl.adaptive) else h_next
            if not ctrl.adaptive:
                h = ctrl.h0
            win_acc += 1
            if idx >= T:
                done = True
            elif win_acc >= STEADY_WINDOW:
                if sty is not None:
                    if (ctrl.steady != 0 and m.clock == CLOCK_T and
                            (stiff or win_rej >= STEADY_REJECT_FRACTION * (win_acc + win_rej))):
                        f_t = k[0]
                        if t0c > 0.0:   # the log clock's k[0] is weighted: the field of t
                            _field(y, err, sc, m, NO_LOSS, general, k4, kn)
                            f_t = err
                        if newton_steady(y, f_t, ytmp, sc, rtol, atol, m, general):
                            fs[F_TSTEADY] = t
                            ls, ms = _field(ytmp, ynew, sc, m, WITH_LOSS, general, k4, kn)
                            while idx < T:
                                _record(run, i, idx, ytmp, ls, ms, stops[idx])
                                idx += 1
                            done = True
                win_acc = 0
                win_rej = 0
        else:
            if np.isfinite(en):
                h = h_eff * max(MIN_FACTOR, SAFETY * en ** inv)
            else:
                h = h_eff * MIN_FACTOR
            nrej += 1
            win_rej += 1
            step_rejected = True
        last_nonfinite = not finite
        if done:
            break
    fs[F_T] = t
    fs[F_H] = h
    fs[F_LOSS] = loss
    fs[F_MM] = mm
    fs[F_EV] = ev
    ist[I_IDX] = idx
    ist[I_NACC] = nacc
    ist[I_NREJ] = nrej
    ist[I_ATTEMPTS] = attempts
    ist[I_REJ] = 1 if step_rejected else 0
    ist[I_WINACC] = win_acc
    ist[I_WINREJ] = win_rej
    ist[I_NONFIN] = 1 if last_nonfinite else 0
    if done:
        ist[I_STATUS] = status
        ist[I_DONE] = 1


# --------------------------------------------------------------------------- GD slice
@_njit
def gd_advance(i, run, m, tab, ctrl):
    """Advance gradient descent ``s <- s + lr field(s)`` of trajectory ``i`` by at most
    ``ctrl.slice_steps`` steps; saves at steps 0, k, 2k, ... and the last (``ist[I_NACC]`` =
    steps done, status 3 when the state overflows)."""
    ist = run.ist[i]
    if ist[I_DONE]:
        return
    y = run.y[i]
    d = run.k[i, 0]
    L, K = y.shape
    sc = new_scratch(K, m.tmax)
    steps = ctrl.gd_steps
    every = ctrl.save_every
    lr = ctrl.lr
    idx = ist[I_IDX]
    for _ in range(ctrl.slice_steps):
        it = ist[I_NACC]
        loss, mm = field_into(y, d, sc, m, WITH_LOSS, GENERAL)   # a leaf: no reference counting
        if it % every == 0 or it == steps:
            _record(run, i, idx, y, loss, mm, float(it))
            idx += 1
        if it == steps:
            ist[I_DONE] = 1
            break
        finite = True
        for l in range(L):
            for j in range(K):
                v = y[l, j] + lr * d[l, j]
                y[l, j] = v
                if not np.isfinite(v):
                    finite = False
        ist[I_NACC] = it + 1
        if not finite:
            ist[I_STATUS] = 3
            ist[I_DONE] = 1
            break
    ist[I_IDX] = idx


# --------------------------------------------------------------------------- batches
#: the "on" value of ``rk_advance``'s ``ros`` / ``sty`` / ``evs`` flags: a numpy bool, which
#: numba types as a plain ``bool`` both inside the loops and from Python (a literal ``True``
#: would be ``Literal[bool]`` in the loops and ``bool`` from Python: two compiled copies)
ON = np.bool_(True)

# The loops below differ only in the flags they pass: each is a module-level function so that
# numba caches it (``cache=True``) under its own name; a factory's closures would share one
# source location.


@_parallel
def rk_batch_par(run, m, tab, ctrl):
    """One RK slice of every unfinished trajectory, in parallel over the batch."""
    for i in nb.prange(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, ON, None, GENERAL, None, ON)


@_njit
def rk_batch_ser(run, m, tab, ctrl):
    """One RK slice of every unfinished trajectory, serially."""
    for i in range(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, ON, None, GENERAL, None, ON)


@_parallel
def rk_free_par(run, m, tab, ctrl):
    """``rk_batch_par`` without the steady hand-off (flows with no finite fixed point)."""
    for i in nb.prange(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, None, None, GENERAL, None, ON)


@_njit
def rk_free_ser(run, m, tab, ctrl):
    """``rk_batch_ser`` without the steady hand-off (flows with no finite fixed point)."""
    for i in range(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, None, None, GENERAL, None, ON)


@_parallel
def rk_walsh_ce_par(run, m, tab, ctrl):
    """``rk_free_par`` for walsh models with cross-entropy in physical time: the field's
    other groups, losses and clocks are not compiled (``field.WALSH_CE``)."""
    for i in nb.prange(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, None, None, WALSH_CE, None, ON)


@_njit
def rk_walsh_ce_ser(run, m, tab, ctrl):
    """``rk_free_ser`` for walsh models with cross-entropy in physical time."""
    for i in range(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, None, None, WALSH_CE, None, ON)


@_parallel
def rk_walsh_ce_steady_par(run, m, tab, ctrl):
    """``rk_batch_par`` for walsh models with cross-entropy in physical time and a fixed point
    (weight decay): the hand-off, with only that path of the field compiled."""
    for i in nb.prange(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, ON, None, WALSH_CE, None, ON)


@_njit
def rk_walsh_ce_steady_ser(run, m, tab, ctrl):
    """``rk_walsh_ce_steady_par``, serially."""
    for i in range(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, ON, None, WALSH_CE, None, ON)


@_parallel
def rk_walsh4_ce_par(run, m, tab, ctrl):
    """``rk_walsh_ce_par`` at K = 4: every field evaluation through ``field.walsh4_field``."""
    for i in nb.prange(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, None, None, WALSH_CE, ON, None)


@_njit
def rk_walsh4_ce_ser(run, m, tab, ctrl):
    """``rk_walsh_ce_ser`` at K = 4."""
    for i in range(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, None, None, WALSH_CE, ON, None)


@_parallel
def rk_event_par(run, m, tab, ctrl):
    """An RK slice of every unfinished trajectory run to event stops, in parallel."""
    for i in nb.prange(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, None, ON, GENERAL, None, ON)


@_njit
def rk_event_ser(run, m, tab, ctrl):
    """An RK slice of every unfinished trajectory run to event stops, serially."""
    for i in range(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, None, None, ON, GENERAL, None, ON)


@_parallel
def ros_batch_par(run, m, tab, ctrl):
    """One Rosenbrock slice (implicit tableaux) of every unfinished trajectory, in parallel
    (no steady hand-off: implicit tableaux run the y clock only)."""
    for i in nb.prange(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, ON, None, ON, GENERAL, None, ON)


@_njit
def ros_batch_ser(run, m, tab, ctrl):
    """One Rosenbrock slice (implicit tableaux) of every unfinished trajectory, serially."""
    for i in range(run.y.shape[0]):
        rk_advance(i, run, m, tab, ctrl, ON, None, ON, GENERAL, None, ON)


@_parallel
def gd_batch_par(run, m, tab, ctrl):
    """One gradient-descent slice of every unfinished trajectory, in parallel."""
    for i in nb.prange(run.y.shape[0]):
        gd_advance(i, run, m, tab, ctrl)


@_njit
def gd_batch_ser(run, m, tab, ctrl):
    """One gradient-descent slice of every unfinished trajectory, serially."""
    for i in range(run.y.shape[0]):
        gd_advance(i, run, m, tab, ctrl)


#: the per-trajectory function each serial kernel loops over, with the compile-time flags it
#: passes: ``drive`` runs a single trajectory through that function directly, so a first
#: single flow never compiles the serial loop (numba links and re-optimises the whole step into
#: each caller: the loop cost ~2 s of a ~14 s first compile; compile events, walsh K = 4).
#: The flags are typed as the loops type them (None, numpy bools), so a single trajectory and
#: a batch share one compiled ``rk_advance``.
SINGLE = {rk_walsh4_ce_ser: (rk_advance, (None, None, None, WALSH_CE, ON, None)),
          rk_walsh_ce_ser: (rk_advance, (None, None, None, WALSH_CE, None, ON)),
          rk_walsh_ce_steady_ser: (rk_advance, (None, ON, None, WALSH_CE, None, ON)),
          rk_free_ser: (rk_advance, (None, None, None, GENERAL, None, ON)),
          rk_batch_ser: (rk_advance, (None, ON, None, GENERAL, None, ON)),
          rk_event_ser: (rk_advance, (None, None, ON, GENERAL, None, ON)),
          ros_batch_ser: (rk_advance, (ON, None, ON, GENERAL, None, ON)),
          gd_batch_ser: (gd_advance, ())}

#: the batch kernels by job: (serial, parallel), and those of RK runs with an implicit tableau.
#: Separate so that a command compiles only the loop it runs (explicit flows never compile the
#: Rosenbrock step).
BATCH_KERNELS = {JOB_RK: (rk_batch_ser, rk_batch_par), JOB_GD: (gd_batch_ser, gd_batch_par)}
ROS_KERNELS = (ros_batch_ser, ros_batch_par)
#: explicit RK runs to save times that can never hand off to a fixed point (see
#: :func:`has_fixed_point`), and explicit RK runs to event stops (no hand-off either)
FREE_KERNELS = (rk_free_ser, rk_free_par)
#: the free kernels of walsh ce flows in physical time (the default ``svdyn flow``): only that
#: path of the field is compiled
WALSH_CE_KERNELS = (rk_walsh_ce_ser, rk_walsh_ce_par)
#: the hand-off kernels of walsh ce flows with a fixed point (weight decay), any K: only the
#: walsh ce path of the field is compiled, in the step and in the hand-off's Newton solve
WALSH_CE_STEADY_KERNELS = (rk_walsh_ce_steady_ser, rk_walsh_ce_steady_par)
#: those of walsh ce flows at K = 4 (the field in few arguments at every call site)
WALSH4_CE_KERNELS = (rk_walsh4_ce_ser, rk_walsh4_ce_par)
EVENT_KERNELS = (rk_event_ser, rk_event_par)


def has_fixed_point(m) -> bool:
    """Whether the flow of model bundle ``m`` can reach a finite stable fixed point (where the
    steady hand-off may fire): any loss other than plain ce, or a weight decay. Unregularised
    ce has none (its gradient vanishes only as the margins go to infinity), so its flows run
    kernels without the hand-off."""
    return m.code != LOSS_CE or bool(m.lam.any())


def is_walsh_ce(m) -> bool:
    """Whether model bundle ``m`` is a walsh model with cross-entropy in physical time (what
    the ``WALSH_CE`` kernels compute; weight decay allowed)."""
    return m.kind == WALSH and m.code == LOSS_CE and m.clock == CLOCK_T


# Entering numba's parallel region costs ~15 ms per call on this 2-core machine (a one-step
# flow took 16 ms in parallel, 0.06 ms serially), so small batches run serially.
PARALLEL_MIN_BATCH = 8


#: typical first-compile seconds of each job's kernels on the 2-core reference machine (from an
#: empty cache; bench/RESULTS.md "cold start"): a walsh ce flow's first compile is ~9 s of
#: numba compile events, other models' and parallel loops' more
TYPICAL_COMPILE_S = {JOB_RK: 10.0, JOB_GD: 6.0}


#: stage evaluations x K L in the first compiled slice of a run (see first_slice)
FIRST_SLICE_WORK = 2e6


def first_slice(B: int, work_per_step: float, slice_steps: int = 1 << 30) -> int:
    """Attempts per trajectory in the first compiled slice of :func:`drive` (about 2e6 stage
    evaluations x K L in all): pass it as ``make_ctrl(slice_steps=...)`` to save the
    ``Ctrl._replace`` of the first slice."""
    return max(1, min(slice_steps, int(FIRST_SLICE_WORK / max(1.0, B * work_per_step))))


def drive(run, m, tab, ctrl, *, bar=None, work_per_step: float = 1.0, what: str = "flow",
          fresh: bool = False, lazy_bar=None):
    """Run slices until every trajectory of ``run`` is done; returns the wall time (s).

    Slices start small and are resized to take about :data:`SLICE_SECONDS` each, so Python
    regains control (and Ctrl-C is honoured) at least that often. ``bar`` (an object with
    ``update(n)``) advances by the number of stops reached. ``lazy_bar`` (instead of ``bar``):
    a function that returns the bar, a context manager (or None for none), called only when
    the run goes on past its first slice; drive enters and closes it. A run that ends within
    its first slice (most single flows) then never asks whether stderr is a terminal (~2 us).
    ``fresh=True``: the caller guarantees that ``run`` is ``bundle.new_run``'s result,
    untouched (its numba type is then known without typing its nine arrays).
    """
    B = run.y.shape[0]
    ser, par = _family(m, tab, ctrl)
    kernel = par if B >= PARALLEL_MIN_BATCH else ser
    one = SINGLE.get(kernel) if B == 1 else None
    if one is not None and fresh and bar is None:
        # one fresh trajectory whose step is compiled (flow's common case): its first slice
        # by the entry point, without _drive's loop (~2 us a call); the rest, if any, by it
        fast = single_entry(run, m, tab, ctrl, work_per_step)
        if fast is not None:
            return run_single(fast, run, m, tab, ctrl, work_per_step, what, lazy_bar)
    if lazy_bar is not None:
        b = lazy_bar()
        if b is not None:
            with b:   # the bar counts the stops already reached at its first update
                return drive(run, m, tab, ctrl, bar=b, work_per_step=work_per_step, what=what,
                             fresh=fresh)
    if (kernel if one is None else one) not in _READY:  # first call here: maybe a compile
        from .progress import compile_notice

        used = [kernel] if one is None else [(one[0], (0, run, m, tab, ctrl) + one[1])]
        with compile_notice(what + (" (parallel)" if kernel is par else ""),
                            TYPICAL_COMPILE_S[ctrl.job], dispatchers=used):
            out = _drive(kernel, run, m, tab, ctrl, bar, work_per_step, True, fresh)
        _READY.add(kernel if one is None else one)
        return out
    return _drive(kernel, run, m, tab, ctrl, bar, work_per_step, False, fresh)


def single_entry(run, m, tab, ctrl, work_per_step: float):
    """``(entry, flags)`` such that ``entry(0, run, m, tab, ctrl, *flags)`` runs the first slice
    of the one fresh trajectory of ``run`` (``bundle.new_run``'s result, B = 1) exactly as
    :func:`drive` would, or None where drive must run it: a step not compiled in this process
    yet, no entry point, a first slice larger than ``first_slice(1, work_per_step)``. The same
    bundle objects give the same answer (flow keeps it in its plan)."""
    one = SINGLE.get(_family(m, tab, ctrl)[0])
    if (one is None or one not in _READY
            or ctrl.slice_steps * max(1.0, work_per_step) > FIRST_SLICE_WORK):
        return None
    ep = _entry(one[0], run, m, tab, ctrl, True, one[1])
    return None if ep is None else (ep, one[1])


def run_single(fast, run, m, tab, ctrl, work_per_step: float, what: str, lazy_bar=None):
    """Run the one fresh trajectory of ``run`` to its end: the first slice by ``fast``
    (:func:`single_entry`'s answer for these arguments), the rest, if any, by :func:`drive`
    (``lazy_bar`` as there); returns the wall time (s)."""
    t0 = time.perf_counter()
    fast[0](0, run, m, tab, ctrl, *fast[1])
    wall = time.perf_counter() - t0
    if run.ist[0, I_DONE]:
        return wall
    return wall + drive(run, m, tab, ctrl, work_per_step=work_per_step, what=what,
                        lazy_bar=lazy_bar)


def _family(m, tab, ctrl):
    """The (serial, parallel) batch kernels for this run (kept for the last arguments: flow
    reuses its bundle, tableau and Ctrl objects, and the tests below cost ~0.7 us)."""
    global _PICK
    p = _PICK
    if p[0] is ctrl and p[1] is tab and p[2] is m:
        return p[3]
    if ctrl.job != JOB_RK:
        fam = BATCH_KERNELS[ctrl.job]
    elif tab.implicit:
        fam = ROS_KERNELS
    elif ctrl.stop_kind != STOP_TIME:
        fam = EVENT_KERNELS
    elif ctrl.steady == 0 or m.clock != CLOCK_T or not has_fixed_point(m):
        fam = (FREE_KERNELS if not is_walsh_ce(m) else
               WALSH4_CE_KERNELS if m.classes == 4 else WALSH_CE_KERNELS)
    else:
        fam = WALSH_CE_STEADY_KERNELS if is_walsh_ce(m) else BATCH_KERNELS[JOB_RK]
    _PICK = (ctrl, tab, m, fam)
    return fam


_PICK: tuple = (None, None, None, None, GENERAL)
_READY: set = set()  # batch kernels already called in this process (dispatcher lookups of
#                      ``.signatures`` cost ~0.3 ms a call)

# ------------------------------------------------------------------ direct entry points
# numba's dispatch types every field of the four NamedTuple bundles on every call (~10 us at
# K = 4). The compiled overload's entry point takes the same arguments without that step, so
# ``_entry`` keys it on the arguments' fingerprints (``numba._dispatcher.compute_fingerprint``:
# class, field names, scalar kinds, array dtype/ndim/layout/writeability; numba's own type
# cache keys on the same fingerprints). The fingerprints of the long-lived bundles (models,
# tableaux: immutable, their arrays never change flags) are kept by identity; a run fresh from
# ``bundle.new_run`` always has the same one (nine fresh C float64/int64 arrays of fixed ndim),
# any other run is fingerprinted once per :func:`drive`; the controls (scalars only) are keyed
# by the Python types of their fields. Any miss (an unseen key, an argument numba cannot
# fingerprint, an overload reached only through a type conversion) goes through the
# dispatcher as before.
_ENTRY: dict = {}   # (kernel, fingerprints) -> compiled entry point
_FP: dict = {}      # id(bundle) -> (bundle, fingerprint) for models and tableaux
_FRESH_RUN_FP: list = []   # the fingerprint every new_run result has (set on first use)
_CTRL_SCALARS = frozenset((int, float))


def _fingerprint(obj):
    try:
        return compute_fingerprint(obj)
    except Exception:  # noqa: BLE001 -- not fingerprintable: no fast path
        return None


def _kept_fingerprint(obj):
    e = _FP.get(id(obj))
    if e is not None and e[0] is obj:
        return e[1]
    f = _fingerprint(obj)
    if len(_FP) > 1024:
        _FP.clear()
    _FP[id(obj)] = (obj, f)   # holds obj: its id cannot be reused while the entry lives
    return f


#: (kernel, m, tab, ctrl, entry, flags) of the last fresh-run lookup: one tuple, replaced whole,
#: so a thread reading it never mixes two lookups
_LAST: tuple = (None,) * 6


def _entry(kernel, run, m, tab, ctrl, fresh, flags=None):
    """The compiled entry point of ``kernel`` for these arguments, or None (use dispatch).
    ``flags``: ``kernel`` is a per-trajectory function of :data:`SINGLE`, called as
    ``kernel(0, run, m, tab, ctrl, *flags)``."""
    global _LAST
    last = _LAST
    if (fresh and last[0] is kernel and last[1] is m and last[2] is tab and last[3] is ctrl
            and last[5] is flags):
        return last[4]   # the same bundle objects as last time (flow reuses its Ctrl)
    fm, ft = _kept_fingerprint(m), _kept_fingerprint(tab)
    if fresh:
        if not _FRESH_RUN_FP:
            _FRESH_RUN_FP.append(_fingerprint(run))
        fr = _FRESH_RUN_FP[0]
    else:
        fr = _fingerprint(run)
    fc = tuple(map(type, ctrl))
    if fm is None or ft is None or fr is None or not _CTRL_SCALARS.issuperset(fc):
        return None
    key = (kernel, flags, fr, fm, ft, type(ctrl), fc)
    ep = _ENTRY.get(key)
    if ep is None:
        args = (run, m, tab, ctrl) if flags is None else (0, run, m, tab, ctrl) + flags
        sig = tuple(kernel.typeof_pyval(a) for a in args)
        cres = kernel.overloads.get(sig)
        if cres is None:   # not compiled yet (or only through a conversion): dispatch
            return None
        ep = _ENTRY[key] = cres.entry_point
    if fresh:
        _LAST = (kernel, m, tab, ctrl, ep, flags)
    return ep


#: attempts per trajectory that a slice of a split batch aims at (most trajectories finish
#: within one call), and the smallest window a batch is split into. A slice of the whole batch
#: sized to SLICE_SECONDS gives each trajectory only a few attempts once B is large (K = 64,
#: L = 4, B = 4096: ~2), so every trajectory re-entered the kernel ~30 times (buffers, cold
#: state) and cost 17-20 % more than at B = 256; windows of the batch keep that count flat.
WINDOW_STEPS = 256
WINDOW_MIN = 64


def _window(run, lo, hi):
    """Trajectories ``lo .. hi-1`` of ``run`` as a Run of row views (the same numba type)."""
    return run._replace(y=run.y[lo:hi], k=run.k[lo:hi], fs=run.fs[lo:hi], ist=run.ist[lo:hi],
                        out_s=run.out_s[lo:hi], out_loss=run.out_loss[lo:hi],
                        out_mm=run.out_mm[lo:hi], out_t=run.out_t[lo:hi])


def _single(one, run, m, tab, ctrl, fresh, compiling):
    """``call(run, m, tab, ctrl)`` advancing the one trajectory of ``run`` through the
    per-trajectory function of :data:`SINGLE` (its entry point when known, else dispatch)."""
    fn, flags = one
    ep = None if compiling else _entry(fn, run, m, tab, ctrl, fresh, flags)
    f = fn if ep is None else ep

    def call(r, m_, t_, c_):
        f(0, r, m_, t_, c_, *flags)
    return call


def _drive(kernel, run, m, tab, ctrl, bar, work_per_step, compiling, fresh=False):
    B = run.y.shape[0]
    slice_steps = first_slice(B, work_per_step, ctrl.slice_steps)
    t0 = time.perf_counter()
    shown = 0
    ist = run.ist
    one = SINGLE.get(kernel) if B == 1 else None
    if one is not None:
        call = _single(one, run, m, tab, ctrl, fresh, compiling)
    else:
        call = None if compiling else _entry(kernel, run, m, tab, ctrl, fresh)
        if call is None:
            call = kernel
    lo, width = 0, B          # the window of trajectories the next slice advances
    part = run
    while True:
        c = ctrl if ctrl.slice_steps == slice_steps else ctrl._replace(slice_steps=int(slice_steps))
        ts = time.perf_counter()
        call(part, m, tab, c)
        dt = time.perf_counter() - ts
        if bar is not None:
            reached = int(ist[:, I_IDX].sum())
            if reached > shown:
                bar.update(reached - shown)
                shown = reached
        n = part.ist.shape[0]
        if (part.ist[0, I_DONE] != 0) if n == 1 else part.ist[:, I_DONE].all():
            lo += n
            if lo >= B:
                break
        # resize toward SLICE_SECONDS (at most x4 per slice, never below one attempt); the
        # first slice of a fresh process may include the compile: it only grows the slice
        if compiling:
            compiling = False
            slice_steps *= 4
        elif dt > 0:
            steps = max(1, int(slice_steps * min(4.0, SLICE_SECONDS / dt)))
            if B > WINDOW_MIN and steps < WINDOW_STEPS:
                # keep the attempts per call up and split the batch into windows instead
                per = dt / (n * slice_steps)   # seconds per trajectory attempt (upper bound)
                width = int(min(4 * max(n, WINDOW_MIN), SLICE_SECONDS / (per * WINDOW_STEPS)))
                width = min(B, max(WINDOW_MIN, width))
                steps = WINDOW_STEPS
            slice_steps = steps
        else:
            slice_steps *= 4
        slice_steps = min(slice_steps, 1 << 40)
        hi = min(B, lo + width)
        part = run if (lo == 0 and hi == B) else _window(run, lo, hi)
    return time.perf_counter() - t0


def status_message(code: int) -> str:
    return STATUS_MESSAGES[int(code)]

