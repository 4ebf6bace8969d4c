"""A stiff integrator of the y clock (numba): the certifier's default route to tiny y_min.

The y clock ``dy_j/dtau = -(L-2) ghat_j(z)``, ``z_j = y_j^(-L/(L-2))`` (see ``certify.py``)
is stiff late in the flow: the differences of the active margins relax at a rate
``~ L z^(2-2/L)`` in tau, so an explicit method needs ``~ z_max`` steps to reach ``z_max``
(measured: scipy DOP853 did not reach z = 1e4 on K = 4, L = 3, z(0) = (0, .1, .1, .09) within
two minutes, while Radau takes 334 steps to z = 1e6). This module integrates it in the
variables ``w_j = log y_j`` (moving modes) and the clock ``dsigma = dtau / Y``,
``Y = 1 / sum_j 1/y_j`` (a smooth minimum of y), ``dw_j/dsigma = -(L-2) ghat_j Y / y_j``:
an error in w is a relative error in y at every scale, no step can drive a y negative, and
late in the flow the survivors' w fall with slope -> -1 while the dying modes' w stop. The
L-stable Rosenbrock 2(3) pair of Shampine & Reichelt (MATLAB ``ode23s``) integrates it with
the analytic Jacobian

    dghat_j / dm_k = ghat_j ([k = argmin m] + p_k) - M[k, j] w_k,    dm_k / dw_i = M[k, i] a z_i,
    dF_j / dw_i = -(L-2) (dghat_j/dw_i r_j + ghat_j (r_i r_j - [i = j] r_j)),  r = Y / y,

``w = e^(-(m - m_min)) / (1 + sum_c e^(-m_c))`` (the scaled softmax residual), ``p = w e^(-m_min)``
(computed through the symmetric ``M^T diag(w) M``, with ``sum_k w_k M[k, i] = ghat_i``),
``a = -L/(L-2)`` (checked against central differences to 1e-9 relative; at z_max = 1e9,
``tests/test_certify.py``, to 1e-5 of the largest entry ~1e7). Against the same
pair in the y variables (``NUMBA_NUM_THREADS=1``, walsh K = 8, L = 3, eps = 0.01, 100 starts
decided at z = 1e9): median steps 1515 vs 1493 to z = 1e9, and to z = 1e11 (400k-step limit)
98 vs 92 of 100 runs reach the last stop in 4.7 vs 12.7 s CPU. The Jacobian is dense
(K x K), so one step costs O(K^3): fine to K = 256 for single starts, not for K = 1024
batches (measured ``NUMBA_NUM_THREADS=1 python bench/yclock_step_cost.py``, rtol 1e-7, 16
starts to z = 1e9 (4 at K = 64), idle machine, 2026-12-02: 1.78, 6.71 and 184 us per step at
K = 8, 16, 64).

Late in the flow the active margins are ~z_max while their gaps ``m_c - m_min``, which the
field feels through ``e^(-(m_c - m_min))``, are O(1). Three things keep that regime cheap and
accurate:

* the stages of a step evaluate the field at the step's base point plus a smooth offset,
  ``m_c = m_c(base) + sum_j M[c, j] z_j(base) expm1(a d_j)``, so the field is smooth in the
  offset d instead of jumping by ~z_max * 1e-15 whenever a stage's w rounds differently;
* the embedded error estimate is filtered through the step's factorised ``I - h d J`` (the
  device of Hairer & Wanner's RADAU5 and Shampine's stiff solvers), which removes the spurious
  stiff part of the estimate;
* the error is also measured in margin units, ``max_c |dm_c - dm_min| e^(-(m_c - m_min))``,
  against ``GTOL`` (absolute) on top of rtol in w: an error of 1e-8 in w moves a gap by
  ~1e-8 z_max, which at z_max = 1e9 is 10 and reweights the softmax by e^10.

Measured before -> after on one walsh K = 16, L = 3, eps = 0.1 start whose old run hit a wall
(rtol 1e-8): steps to z_max = 1e9 19,662 -> 7,608, to 1e11 > 400,000 (the step size fell to
~1e-6 while accepted steps threw three active gaps from O(0.4) to O(10)) -> 50,751; on 200
Monte Carlo starts at that cell (seed 1) the certifier left 12 -> 8 undecided. Every stop
``min_j y_j = delta`` is landed on by secant iteration on the step size
(``log y_min`` within 1e-10). Failures are status codes, never exceptions inside the
compiled loop.

The same kernel integrates the *frozen-scale* clock of the certifier's limit stage
(``frozen_flow_y``; ``lam > 0`` in ``_field`` and ``_base``): ``z_j = lam (y_j / Y)^(-L/(L-2))``
keeps the largest z within [lam / K^(L/(L-2)), lam] while every y falls, so the stops may go
arbitrarily far below the hand-off state (see ``certify.py`` for what it approximates); its
Jacobian carries the extra term of the moving scale Y (checked against central differences in
``tests/test_certify.py``, derived in ``derivations/certify_clock.py``).

Why it is kept next to the engine's ``svdyn.integrate.flow_y(method="rodas4")`` (measured
``NUMBA_NUM_THREADS=1 python bench/yclock_vs_engine.py [labels]``, walsh, eps = 0.01, rtol 1e-8,
the stops of ``certify.y_stops``): rodas4 takes 3-4x fewer steps but costs 0.85-2.8x the CPU
time (K = 16: 0.45 vs 0.53 s; K = 4, L = 4: 0.037 vs 0.013 s, 16 starts), and inside
``certify_limit`` on 100 starts (K = 8, L = 4, eps = 0.01) it cost 2.02 vs 0.86 s and left one
start undecided that this clock certifies (rank-4 code): rodas4's y at z = 1e9 was off by
7.9e-3 against a rtol 1e-11 run, this clock by 1.3e-5. Labels agreed on 399 of 400 starts
(K = 8, L = 3, 4, eps = 0.01, 0.1).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..jit import leaf  # no reference counting in the per-step kernels (svdyn/jit.py)

#: absolute tolerance on the gaps m_c - m_min of the margins the field feels (weight
#: e^(-(m_c - m_min))), on top of rtol in w; 0 turns the margin-unit error off
GTOL = 1e-3
OK, MAX_STEPS, STEP_TOO_SMALL, NON_FINITE = 0, 1, 2, 3
STATUS = {OK: "ok", MAX_STEPS: "max_steps reached before the last stop",
          STEP_TOO_SMALL: "step size underflow", NON_FINITE: "non-finite state"}


@leaf
def _field(w, d, zb, mb, mv, M, a, Lm2, lam, out, z, m, u, r, want_jac, J, tj):
    """out = dw/dsigma at w + d (w = log y of the moving modes, d a stage's offset from the
    step's base point w, where ``zb``, ``mb`` are z and the margins); J (K, K) its Jacobian
    when want_jac (``tj`` (K,) scratch); ``r`` receives Y / y. Returns the min margin.

    With the clock ``dsigma = dtau / Y``, ``Y = 1 / sum_i 1/y_i`` (a smooth minimum of the
    moving y): ``dw_j/dsigma = -(L-2) ghat_j r_j``, ``r_j = Y / y_j``. Late in the flow the
    survivors' w fall with slope -> -1 and the dying modes' w stop, so the solution is close
    to linear in sigma (few steps per decade of y), where the y clock itself needs steps
    ~ a fixed fraction of tau* - tau.

    ``lam > 0`` gives the *frozen-scale* field: z_j = lam (y_j / Y)^(-L/(L-2)) (the largest z
    stays within [lam / K^(L/(L-2)), lam] while every y falls; see ``_base``), whose offset
    from the base point is ``zb_j expm1(a (d_j - dl))`` with ``dl = log Y(w + d) - log Y(w)``
    taken smoothly as ``-log1p(sum_j rb_j expm1(-d_j))`` (rb = Y / y at the base)."""
    C1, K = M.shape
    dl = 0.0
    if lam > 0.0:
        wb = _wmin(w, mv)
        sb = 0.0
        se = 0.0
        for j in range(K):
            if mv[j]:
                e = math.exp(-(w[j] - wb))
                sb += e
                se += e * math.expm1(-d[j])
        dl = -math.log1p(se / sb)
    wmin = np.inf
    for j in range(K):
        if mv[j] and w[j] + d[j] < wmin:
            wmin = w[j] + d[j]
    sr = 0.0
    for j in range(K):
        r[j] = math.exp(-((w[j] - wmin) + d[j])) if mv[j] else 0.0
        sr += r[j]
    for j in range(K):
        r[j] /= sr        # r_j = Y / y_j
    for j in range(K):
        z[j] = zb[j] * math.expm1(a * (d[j] - dl)) if mv[j] else 0.0   # z - zb
    mmin = np.inf
    imin = 0
    for c in range(C1):
        acc = 0.0
        for j in range(K):
            acc += M[c, j] * z[j]
        acc += mb[c]
        m[c] = acc
        if acc < mmin:
            mmin = acc
            imin = c
    for j in range(K):
        z[j] += zb[j]
    em = math.exp(-mmin) if mmin < 700.0 else 0.0
    tot = 0.0
    for c in range(C1):
        u[c] = math.exp(-(m[c] - mmin))
        tot += u[c]
    den = 1.0 + em * tot  # = 1 + sum_c e^(-m_c)
    for c in range(C1):
        u[c] /= den           # e^(-(m_c - m_min)) / (1 + sum e^(-m))
    for j in range(K):        # out = ghat for now
        g = 0.0
        if mv[j]:
            for c in range(C1):
                g += M[c, j] * u[c]
        out[j] = g
    if want_jac:
        # dghat_j/dm_k = ghat_j ([k = argmin m] + e^(-m_k)/(1+S)) - M[k, j] u_k, so with
        # dm_k/dw_i = M[k, i] a z_i and sum_k u_k M[k, i] = ghat_i:
        # dghat_j/dw_i = (ghat_j (em ghat_i + M[imin, i]) - (M^T diag(u) M)[j, i]) a z_i,
        # dF_j/dw_i = -(L-2) (dghat_j/dw_i r_j + ghat_j (r_i r_j - [i = j] r_j)).
        # Frozen scale: dm_k/dw_i = a (M[k, i] z_i - r_i m_k) adds -a r_i T_j to
        # dghat_j/dw_i, T_j = sum_k dghat_j/dm_k m_k = ghat_j sum_k p_k m_k
        # - sum_k M[k, j] u_k (m_k - m_min) (the m_min parts cancel exactly)
        for j in range(K):
            t = 0.0
            if lam > 0.0 and mv[j]:
                sp = 0.0
                for c in range(C1):
                    sp += em * u[c] * m[c]
                    t -= M[c, j] * u[c] * (m[c] - mmin)
                t += out[j] * sp
            tj[j] = t
        for i in range(K):
            for j in range(i + 1):
                acc = 0.0
                if mv[i] and mv[j]:
                    for c in range(C1):
                        acc += M[c, j] * u[c] * M[c, i]
                J[j, i] = acc
                J[i, j] = acc
        for i in range(K):
            gi = em * out[i] + M[imin, i]
            dz = a * z[i]
            for j in range(K):
                if not (mv[j] and mv[i]):
                    J[j, i] = 0.0
                    continue
                v = ((out[j] * gi - J[j, i]) * dz - a * r[i] * tj[j]) * r[j] \
                    + out[j] * r[i] * r[j]
                if i == j:
                    v -= out[j] * r[j]
                J[j, i] = -Lm2 * v
    for j in range(K):
        out[j] = -Lm2 * out[j] * r[j]
    return mmin


@leaf
def _base(w, mv, M, a, lam, zb, mb):
    """z and the margins at the step's base point w (the stages add smooth offsets to these).
    ``lam > 0``: the frozen scale, ``z_j = lam exp(a (w_j - log Y))``, ``Y = 1 / sum 1/y``."""
    C1, K = M.shape
    lY = 0.0
    if lam > 0.0:
        wb = _wmin(w, mv)
        sb = 0.0
        for j in range(K):
            if mv[j]:
                sb += math.exp(-(w[j] - wb))
        lY = wb - math.log(sb)
    for j in range(K):
        if mv[j]:
            zb[j] = lam * math.exp(a * (w[j] - lY)) if lam > 0.0 else math.exp(a * w[j])
        else:
            zb[j] = 0.0
    for c in range(C1):
        acc = 0.0
        for j in range(K):
            acc += M[c, j] * zb[j]
        mb[c] = acc


@leaf
def _solve(LU, piv, b, x):
    n = b.shape[0]
    for i in range(n):
        x[i] = b[piv[i]]
    for i in range(n):
        for k in range(i):
            x[i] -= LU[i, k] * x[k]
    for i in range(n - 1, -1, -1):
        for k in range(i + 1, n):
            x[i] -= LU[i, k] * x[k]
        x[i] /= LU[i, i]


@leaf
def _lu(A, piv):
    n = A.shape[0]
    for i in range(n):
        piv[i] = i
    for k in range(n):
        p = k
        mx = abs(A[k, k])
        for i in range(k + 1, n):
            if abs(A[i, k]) > mx:
                mx = abs(A[i, k])
                p = i
        if mx == 0.0:
            return False
        if p != k:
            for j in range(n):
                t = A[k, j]
                A[k, j] = A[p, j]
                A[p, j] = t
            t2 = piv[k]
            piv[k] = piv[p]
            piv[p] = t2
        for i in range(k + 1, n):
            A[i, k] /= A[k, k]
            f = A[i, k]
            for j in range(k + 1, n):
                A[i, j] -= f * A[k, j]
    return True


@leaf
def _wmin(w, mv):
    r = np.inf
    for j in range(w.shape[0]):
        if mv[j] and w[j] < r:
            r = w[j]
    return r


@nb.njit(cache=True)
def _run_one(y0, mv, M, a, Lm2, lam, stops, rtol, atol, gtol, max_steps, yout, info):
    K = y0.shape[0]
    C1 = M.shape[0]
    w = np.zeros(K)
    for j in range(K):
        if mv[j]:
            w[j] = math.log(y0[j])
    F0 = np.empty(K)
    F1 = np.empty(K)
    F2 = np.empty(K)
    k1 = np.empty(K)
    k2 = np.empty(K)
    k3 = np.empty(K)
    wn = np.empty(K)
    rhs = np.empty(K)
    z = np.empty(K)
    m = np.empty(C1)
    u = np.empty(C1)
    J = np.zeros((K, K))
    tj = np.zeros(K)
    r = np.empty(K)
    W = np.empty((K, K))
    piv = np.empty(K, dtype=np.int64)
    zb = np.empty(K)
    mb = np.empty(C1)
    gw = np.empty(C1)
    d0 = np.zeros(K)
    dd = np.empty(K)
    ev = np.empty(K)
    d = 1.0 / (2.0 + math.sqrt(2.0))
    e32 = 6.0 + math.sqrt(2.0)
    S = stops.shape[0]
    lst = np.log(stops)
    sc = atol + rtol          # w = log y: an absolute error in w is a relative one in y
    s = 0
    steps = 0
    status = OK
    wm = _wmin(w, mv)
    while s < S and wm <= lst[s]:
        for j in range(K):
            yout[s, j] = math.exp(w[j])
        s += 1
    # first step: 1e-3 of the time scale of the fastest mode
    _base(w, mv, M, a, lam, zb, mb)
    _field(w, d0, zb, mb, mv, M, a, Lm2, lam, F0, z, m, u, r, False, J, tj)
    rate = 0.0
    for j in range(K):
        if mv[j] and abs(F0[j]) > rate:
            rate = abs(F0[j])
    h = 1e-3 / rate if rate > 0 else 1e-3
    sig = 0.0
    landing = False
    while s < S:
        if steps >= max_steps:
            status = MAX_STEPS
            break
        _base(w, mv, M, a, lam, zb, mb)
        ib = 0
        for c in range(C1):
            if mb[c] < mb[ib]:
                ib = c
        for c in range(C1):   # how much each margin's gap matters: e^(-(m_c - m_min))
            gw[c] = math.exp(-(mb[c] - mb[ib]))
        _field(w, d0, zb, mb, mv, M, a, Lm2, lam, F0, z, m, u, r, True, J, tj)
        tries = 0
        while True:
            for i in range(K):
                for j in range(K):
                    W[i, j] = -h * d * J[i, j]
                W[i, i] += 1.0
            if not _lu(W, piv):
                h *= 0.5
                tries += 1
                if tries > 60:
                    status = NON_FINITE
                    break
                continue
            _solve(W, piv, F0, k1)
            for j in range(K):
                dd[j] = 0.5 * h * k1[j] if mv[j] else 0.0
            _field(w, dd, zb, mb, mv, M, a, Lm2, lam, F1, z, m, u, r, False, J, tj)
            for j in range(K):
                rhs[j] = F1[j] - k1[j]
            _solve(W, piv, rhs, k2)
            for j in range(K):
                k2[j] += k1[j]
                dd[j] = h * k2[j] if mv[j] else 0.0
                wn[j] = w[j] + dd[j]
            _field(w, dd, zb, mb, mv, M, a, Lm2, lam, F2, z, m, u, r, False, J, tj)
            for j in range(K):
                rhs[j] = F2[j] - e32 * (k2[j] - F1[j]) - 2.0 * (k1[j] - F0[j])
            _solve(W, piv, rhs, k3)
            for j in range(K):
                rhs[j] = h / 6.0 * (k1[j] - 2.0 * k2[j] + k3[j])
            _solve(W, piv, rhs, ev)   # filtered estimate (see module docstring)
            err = 0.0
            cnt = 0
            for j in range(K):
                if mv[j]:
                    err += (ev[j] / sc) ** 2
                    cnt += 1
            err = math.sqrt(err / max(cnt, 1))
            if gtol > 0.0:
                # the same error in margin units: a w error e_j moves m_c by sum_j M a z_j e_j,
                # and the field feels a margin through e^(-(m_c - m_min)); the gaps of the
                # margins that matter must stay within gtol (absolute), at every scale of z
                em_min = 0.0
                for c in range(C1):
                    acc = 0.0
                    for j in range(K):
                        if mv[j]:
                            acc += M[c, j] * a * zb[j] * ev[j]
                    m[c] = acc
                    if c == ib:
                        em_min = acc
                rev = 0.0   # frozen scale: dm_c also moves by -a (r . e) m_c
                if lam > 0.0:
                    for j in range(K):
                        if mv[j]:
                            rev += r[j] * ev[j]
                eg = 0.0
                for c in range(C1):
                    v = abs(m[c] - em_min - a * rev * (mb[c] - mb[ib])) * gw[c] / gtol
                    if v > eg:
                        eg = v
                if eg > err:
                    err = eg
            if not math.isfinite(err):
                h *= 0.3
                tries += 1
                if tries > 200:
                    status = NON_FINITE
                    break
                continue
            wmn = _wmin(wn, mv)
            if err <= 1.0 and wmn < lst[s] - 1e-10:
                # overshot the stop: secant on h (log y_min is nearly linear in sigma)
                h *= (wm - lst[s]) / (wm - wmn)
                tries += 1
                landing = True
                if tries > 200:
                    status = STEP_TOO_SMALL
                    break
                continue
            if err <= 1.0:
                break
            h *= max(0.2, 0.9 * err ** (-1.0 / 3.0))
            tries += 1
            if h < 1e-300 or tries > 200:
                status = STEP_TOO_SMALL
                break
        if status != OK:
            break
        steps += 1
        sig += h
        for j in range(K):
            w[j] = wn[j]
        wm = _wmin(w, mv)
        while s < S and wm <= lst[s] + 1e-10:
            for j in range(K):
                yout[s, j] = math.exp(w[j])
            s += 1
        fac = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err ** (-1.0 / 3.0)))
        if landing:
            fac = min(fac, 1.0)
            landing = False
        h *= fac
    info[0] = status
    info[1] = steps
    info[2] = sig


@nb.njit(cache=True, parallel=True)
def _run_batch(Y0, MV, M, a, Lm2, LAM, stops, rtol, atol, gtol, max_steps, yout, info):
    for i in nb.prange(Y0.shape[0]):
        _run_one(Y0[i], MV[i], M, a, Lm2, LAM[i], stops, rtol, atol, gtol, max_steps, yout[i],
                 info[i])


@nb.njit(cache=True)
def _run_serial(Y0, MV, M, a, Lm2, LAM, stops, rtol, atol, gtol, max_steps, yout, info):
    for i in range(Y0.shape[0]):
        _run_one(Y0[i], MV[i], M, a, Lm2, LAM[i], stops, rtol, atol, gtol, max_steps, yout[i],
                 info[i])


def stiff_flow_y(spec, z0, stops, rtol: float = 1e-8, atol: float = 1e-30,
                 max_steps: int = 20_000, gtol: float = GTOL):
    """y at the stops for balanced starts z0 (B, K): ``(y (B, S, K), status list, steps (B,),
    sigma (B,))``; non-moving modes (mode 0, z_j = 0) carry y = inf."""
    L = spec.L
    z0 = np.atleast_2d(np.asarray(z0, float))
    mv = z0 > 0
    mv[:, 0] = False
    with np.errstate(divide="ignore"):
        Y0 = np.where(mv, z0, 1.0) ** (-(L - 2.0) / L)
    return _integrate(spec, Y0, mv, stops, np.zeros(len(Y0)), rtol, atol, max_steps, gtol)


def frozen_flow_y(spec, y0, stops, scale, rtol: float = 1e-8, atol: float = 1e-30,
                  max_steps: int = 20_000, gtol: float = GTOL):
    """The frozen-scale clock (``_field`` with ``lam = scale``, one per start or one for all)
    from y0 (B, K) (non-finite where a mode does not move) to the stops (y_min values below
    y0's, with no lower bound: z never exceeds the scale): the outputs of ``stiff_flow_y``."""
    y0 = np.atleast_2d(np.asarray(y0, float))
    mv = np.isfinite(y0) & (y0 > 0)
    mv[:, 0] = False
    lam = np.broadcast_to(np.asarray(scale, float), (len(y0),))
    if not np.all(np.isfinite(lam) & (lam > 1.0)):
        raise ValueError(f"scale must be finite and > 1, got {scale!r}")
    return _integrate(spec, np.where(mv, y0, 1.0), mv, stops, lam, rtol, atol, max_steps,
                      gtol)


def _integrate(spec, Y0, mv, stops, lam, rtol, atol, max_steps, gtol):
    from .maxmargin import margin_matrix
    L = spec.L
    B, K = Y0.shape
    stops = np.ascontiguousarray(stops, float)
    M = np.ascontiguousarray(margin_matrix(spec.G, spec.n))
    yout = np.full((B, stops.size, K), np.nan)
    info = np.zeros((B, 3))
    run = _run_batch if B >= 8 else _run_serial
    run(np.ascontiguousarray(Y0), np.ascontiguousarray(mv), M, -L / (L - 2.0), float(L - 2),
        np.ascontiguousarray(lam, float), stops, float(rtol), float(atol), float(gtol),
        int(max_steps), yout, info)
    yout[~np.broadcast_to(mv[:, None, :], yout.shape)] = np.inf
    return yout, [STATUS[int(v)] for v in info[:, 0]], info[:, 1].astype(int), info[:, 2]
