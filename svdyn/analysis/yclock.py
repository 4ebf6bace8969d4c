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
98 vs 92 of 100 runs reach the last stop in 4.7 vs 12.7 s CPU.

Margins never use a dense K x K matrix above ``DENSE_MAX`` (K = 8 walsh, 64 other groups): M z
and M^T u are one group transform each (FWHT, or the engine's character transform), and the
Jacobian's ``M^T diag(u) M`` comes from the character product rule in O(K^2) after one
transform (``_field``). What stays cubic is the LU of the K x K matrix ``I - h d J`` of each
step (K^3 / 3): above ``LAPACK_MIN`` LAPACK ``dgetrf`` (3.6x the clock's own loops at K = 256,
5.6x at K = 1024; whole clock 1.6-3.0x faster per step at K = 64-256, bench/RESULTS.md
"LAPACK LU"). Measured (``NUMBA_NUM_THREADS=1 python bench/yclock_step_cost.py 8 16 64 128
256``, old dense-M tree dcc7bbf and this one one after the other, 2026-12-02, same steps to
rounding): 1.84-2.68 vs 2.24-3.14, 6.72-7.80 vs 6.73-9.76, 199 vs 101, 2096 vs 620 us per step
at K = 8, 16, 64, 128, and 3644 us at K = 256 (where the old kernel's K^3 Jacobian alone took
10 ms per evaluation). K = 8 is 0.3-0.6 us per step slower than the old kernel (the named
buffers are more arguments per call); the machine's run-to-run noise was +-25 %.

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
import time
from typing import NamedTuple

import numba as nb
import numpy as np
from numba.np.linalg import _LAPACK, F_INT_nbtype  # numba's own LAPACK bridge (scipy's)

from ..bundle import CLOCK_Y, make_bundle
from ..field import conjugate
from ..groups import PRODUCT, WALSH
from ..jit import inline, kernel, leaf  # leaf: no reference counting in the step kernels
from ..softmax import group_transform

#: absolute tolerance on the gaps m_c - m_min of the margins the field feels (weight
#: e^(-(m_c - m_min))), on top of rtol in w; 0 turns the margin-unit error off
GTOL = 1e-3
OK, MAX_STEPS, STEP_TOO_SMALL, NON_FINITE = 0, 1, 2, 3
#: the per-start state a slice leaves in ``info`` (the integrator resumes from it exactly)
I_STATUS, I_STEPS, I_SIGMA, I_H, I_STOP, I_LANDING, I_PHASE = range(7)
FRESH, RUNNING, DONE = 0, 1, 2
#: target wall seconds of one compiled call (Ctrl-C is seen between calls)
SLICE_SECONDS = 0.2
STATUS = {OK: "ok", MAX_STEPS: "max_steps reached before the last stop",
          STEP_TOO_SMALL: "step size underflow", NON_FINITE: "non-finite state"}


#: up to this K the margin matrix is kept dense, transposed (K, K-1), in :class:`Work` (walsh,
#: other groups): its products cost K^2 but beat the transform's fixed cost there; above it
#: every product goes through the group transform. Measured (compiled loop over ``_field``,
#: old dense kernel vs this one, ns per field / Jacobian evaluation): walsh K = 8 dense
#: 218 / 493 vs transform 225 / 419, K = 16 455 / 1637 vs 394 / 1207, K = 256 93,677 /
#: 10,447,458 (old dense) vs 6,891 / 146,677; cyclic K = 64 3,166 / 62,092 vs 3,147 / 55,679,
#: K = 128 12,357 / 521,338 vs 6,516 / 213,314 (the cyclic transform is a complex FFT, an
#: O(m^2) DFT for factors m that are not powers of 2: K = 60 dense 2,844 vs 17,767 per field)
DENSE_MAX = {WALSH: 8, PRODUCT: 64}


class Work(NamedTuple):
    """Named work buffers of the y clock's field (built inside the kernels by ``new_work``).

    z      (K,) z at the stage (first the offset z - zb)
    mg     (K-1,) margins m_c, c = 1..K-1
    u      (K-1,) the scaled softmax residual weights e^(-(m_c - m_min)) / (1 + sum e^(-m))
    r      (K,) Y / y
    tj     (K,) the frozen-scale Jacobian term T_j
    x, y   (K,) transform input and output
    uh     (K,) the transform of u (the Jacobian's M^T diag(u) M, see ``_field``)
    row    (K,) row ``imin`` of the margin matrix
    ip, im (K,) int64 indices of the characters j + i and j - i for one j
    dg     (K, r) int64 digits of every index on the cyclic factors (row-major)
    cj     (K,) int64 index of the conjugate of every index (class or character)
    mt     (K, K-1) the transposed margin matrix M^T where dense (``DENSE_MAX``), else (0, 0)
    wre, wim, tre, tim  the character transform's buffers (as in the engine's ``Scratch``;
           ``wk`` itself is passed to ``group_transform``: every array a kernel receives is
           one more argument of each call, measurably so at K = 8)
    """

    z: np.ndarray
    mg: np.ndarray
    u: np.ndarray
    r: np.ndarray
    tj: np.ndarray
    x: np.ndarray
    y: np.ndarray
    uh: np.ndarray
    row: np.ndarray
    ip: np.ndarray
    im: np.ndarray
    dg: np.ndarray
    cj: np.ndarray
    mt: np.ndarray
    wre: np.ndarray
    wim: np.ndarray
    tre: np.ndarray
    tim: np.ndarray


@kernel
def new_work(mdl, dense):
    """Fresh :class:`Work` for the model bundle's K; ``dense``: with the dense M^T,
    ``M[c, j] = (1 - C[c, j]) / (K sqrt n)`` from the exact table (the transform's rounding
    of C would break the tie of conjugate classes' margins)."""
    K = mdl.classes
    r = mdl.dims.shape[0]
    wk = Work(np.empty(K), np.empty(K - 1), np.empty(K - 1), np.empty(K), np.zeros(K),
              np.empty(K), np.empty(K), np.empty(K), np.empty(K), np.empty(K, np.int64),
              np.empty(K, np.int64), np.empty((K, r), np.int64), np.empty(K, np.int64),
              np.empty((K if dense else 0, K - 1 if dense else 0)), np.empty(K), np.empty(K),
              np.empty(mdl.tmax), np.empty(mdl.tmax))
    for j in range(K):
        rem = j
        for ax in range(r - 1, -1, -1):
            wk.dg[j, ax] = rem % mdl.dims[ax]
            rem //= mdl.dims[ax]
        wk.cj[j] = conjugate(j, mdl.dims)
    if dense:   # C[c, j] = cos(2 pi sum_a (c_a j_a mod m_a) / m_a), as ``Group.char_table``
        s = 1.0 / (K * math.sqrt(mdl.n))
        for c in range(1, K):
            for j in range(K):
                ph = 0.0
                for ax in range(r):
                    ph += ((wk.dg[c, ax] * wk.dg[j, ax]) % mdl.dims[ax]) / mdl.dims[ax]
                C = math.cos(2.0 * np.pi * ph)
                if mdl.kind == WALSH:
                    C = float(np.rint(C))
                wk.mt[j, c - 1] = (1.0 - C) * s
    return wk


@inline
def _tie_conjugates(v, cj):
    """``v_j = v_cj(j)`` exactly for conjugate pairs (their mean): C is exactly symmetric
    under conjugation (Re chi_j(-g) = Re chi_j(g)), the FFT only to its rounding, which at
    margins ~1e9 breaks the tie of conjugate classes by ~1e-7 and, over the limit stage's
    decades, drives paired directions apart. ``field.symmetrise_pairs`` with the conjugates
    looked up (``wk.cj``) instead of recomputed: it runs on every transform here."""
    for j in range(v.shape[0]):
        k = cj[j]
        if k > j:
            t = 0.5 * (v[j] + v[k])
            v[j] = t
            v[k] = t


@inline
def _margins(x, out, mdl, wk):
    """``out = M x`` (the K-1 margins of x, linear in x): dense (``wk.mt``) for small K, else
    by the group transform, ``(M x)_c = ((C x)_0 - (C x)_c) / (K sqrt n)``, O(K log K)."""
    K = x.shape[0]
    mt = wk.mt
    if mt.shape[0] > 0:
        for c in range(K - 1):
            acc = 0.0
            for j in range(K):
                acc += mt[j, c] * x[j]
            out[c] = acc
        return
    group_transform(x, wk.y, wk, mdl)
    s = 1.0 / (K * math.sqrt(mdl.n))
    if mdl.kind != WALSH:
        _tie_conjugates(wk.y, wk.cj)
    for c in range(K - 1):
        out[c] = (wk.y[0] - wk.y[c + 1]) * s


@leaf
def _margins_of(x, out, mdl, wk):
    """``_margins`` as a call without reference counting (for the reference-counted driver,
    where each ``wk.*`` access inside a loop would count)."""
    _margins(x, out, mdl, wk)


@inline
def _mt(v, out, mdl, wk):
    """``out = M^T v`` for v (K-1,) (its first K-1 entries are read): dense for small K, else
    the transform of ``(sum_c v_c, -v_1, ..., -v_{K-1})`` (C is symmetric and C[0, :] = 1),
    as the engine's softmax residual is formed."""
    K = out.shape[0]
    if wk.mt.shape[0] > 0:
        for j in range(K):
            acc = 0.0
            for c in range(K - 1):
                acc += wk.mt[j, c] * v[c]
            out[j] = acc
        return
    S = 0.0
    for c in range(K - 1):
        S += v[c]
        wk.x[c + 1] = -v[c]
    wk.x[0] = S
    group_transform(wk.x, out, wk, mdl)
    s = 1.0 / (K * math.sqrt(mdl.n))
    if mdl.kind != WALSH:
        _tie_conjugates(out, wk.cj)
    for j in range(K):
        out[j] *= s


@leaf
def _plus_minus_row(j, kind, dims, dg, ip, im):
    """``ip[i]``, ``im[i]``: the indices of the characters ``j + i`` and ``j - i``."""
    K = ip.shape[0]
    if kind == WALSH:
        for i in range(K):
            ip[i] = j ^ i
            im[i] = j ^ i
        return
    r = dims.shape[0]
    for i in range(K):
        sp = 0
        sm = 0
        for ax in range(r):
            m = dims[ax]
            a = dg[j, ax] + dg[i, ax]
            b = dg[j, ax] - dg[i, ax]
            sp = sp * m + (a - m if a >= m else a)
            sm = sm * m + (b + m if b < 0 else b)
        ip[i] = sp
        im[i] = sm


@leaf
def _field(w, d, zb, mb, mv, mdl, wk, a, Lm2, lam, out, want_jac, J):
    """out = dw/dsigma at w + d (w = log y of the moving modes, d a stage's offset from the
    step's base point w, where ``zb``, ``mb`` are z and the margins); J (K, K) its Jacobian
    when want_jac; ``wk.r`` receives Y / y, ``wk.mg`` the margins. Returns the min margin.
    Every product with the margin matrix M goes through the group transform (O(K log K));
    the Jacobian costs O(K^2) beyond one transform (see below).

    With the clock ``dsigma = dtau / Y``, ``Y = 1 / sum_i 1/y_i`` (a smooth minimum of the
    moving y): ``dw_j/dsigma = -(L-2) ghat_j r_j``, ``r_j = Y / y_j``. Late in the flow the
    survivors' w fall with slope -> -1 and the dying modes' w stop, so the solution is close
    to linear in sigma (few steps per decade of y), where the y clock itself needs steps
    ~ a fixed fraction of tau* - tau.

    ``lam > 0`` gives the *frozen-scale* field: z_j = lam (y_j / Y)^(-L/(L-2)) (the largest z
    stays within [lam / K^(L/(L-2)), lam] while every y falls; see ``_base``), whose offset
    from the base point is ``zb_j expm1(a (d_j - dl))`` with ``dl = log Y(w + d) - log Y(w)``
    taken smoothly as ``-log1p(sum_j rb_j expm1(-d_j))`` (rb = Y / y at the base)."""
    K = w.shape[0]
    C1 = K - 1
    z = wk.z
    m = wk.mg
    u = wk.u
    r = wk.r
    tj = wk.tj
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
    _margins(z, m, mdl, wk)
    mmin = np.inf
    imin = 0
    for c in range(C1):
        m[c] += mb[c]
        if m[c] < mmin:
            mmin = m[c]
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
    _mt(u, out, mdl, wk)      # out = ghat = M^T u for now
    for j in range(K):
        if not mv[j]:
            out[j] = 0.0
    if want_jac:
        # dghat_j/dm_k = ghat_j ([k = argmin m] + e^(-m_k)/(1+S)) - M[k, j] u_k, so with
        # dm_k/dw_i = M[k, i] a z_i and sum_k u_k M[k, i] = ghat_i:
        # dghat_j/dw_i = (ghat_j (em ghat_i + M[imin, i]) - (M^T diag(u) M)[j, i]) a z_i,
        # dF_j/dw_i = -(L-2) (dghat_j/dw_i r_j + ghat_j (r_i r_j - [i = j] r_j)).
        # Frozen scale: dm_k/dw_i = a (M[k, i] z_i - r_i m_k) adds -a r_i T_j to
        # dghat_j/dw_i, T_j = sum_k dghat_j/dm_k m_k = ghat_j sum_k p_k m_k
        # - sum_k M[k, j] u_k (m_k - m_min) (the m_min parts cancel exactly).
        # M = (1 - C[1:, :]) / (K sqrt n) and Re chi_j Re chi_i = (Re chi_(j+i) +
        # Re chi_(j-i)) / 2 give (M^T diag(u) M)[j, i] = (U - uh_j - uh_i + (uh_(j+i) +
        # uh_(j-i)) / 2) / (K^2 n), U = sum u, uh = C (0, u): one transform, then O(K^2).
        if lam > 0.0:
            sp = 0.0
            for c in range(C1):
                sp += em * u[c] * m[c]
                wk.row[c] = u[c] * (m[c] - mmin)
            _mt(wk.row, tj, mdl, wk)
            for j in range(K):
                tj[j] = out[j] * sp - tj[j] if mv[j] else 0.0
        s = 1.0 / (K * math.sqrt(mdl.n))
        row = wk.row
        dense = wk.mt.shape[0] > 0
        if dense:
            for i in range(K):
                row[i] = em * out[i] + wk.mt[i, imin]        # em ghat_i + M[imin, i]
        else:
            U = 0.0
            wk.x[0] = 0.0
            for c in range(C1):
                U += u[c]
                wk.x[c + 1] = u[c]
            group_transform(wk.x, wk.uh, wk, mdl)
            for j in range(K):
                wk.x[j] = 0.0
            wk.x[imin + 1] = 1.0
            group_transform(wk.x, wk.y, wk, mdl)         # C[imin + 1, :]
            if mdl.kind != WALSH:
                _tie_conjugates(wk.uh, wk.cj)
                _tie_conjugates(wk.y, wk.cj)
            for i in range(K):
                row[i] = em * out[i] + (1.0 - wk.y[i]) * s
        s2 = s * s
        uh = wk.uh
        for i in range(K):    # z = r = 0 on the modes that do not move: their columns vanish
            wk.x[i] = a * z[i]
        if dense:     # (M^T diag(u) M)[j, i] into J first (symmetric)
            for j in range(K):
                for i in range(j + 1):
                    acc = 0.0
                    for c in range(C1):
                        acc += wk.mt[j, c] * u[c] * wk.mt[i, c]
                    J[j, i] = acc
                    J[i, j] = acc
        for j in range(K):
            if not mv[j]:
                for i in range(K):
                    J[j, i] = 0.0
                continue
            gj = out[j]
            rj = r[j]
            tjj = tj[j] if lam > 0.0 else 0.0
            if not dense:
                _plus_minus_row(j, mdl.kind, mdl.dims, wk.dg, wk.ip, wk.im)
            for i in range(K):
                if dense:
                    q = J[j, i]
                else:
                    q = (U - uh[j] - uh[i] + 0.5 * (uh[wk.ip[i]] + uh[wk.im[i]])) * s2
                J[j, i] = -Lm2 * (((gj * row[i] - q) * wk.x[i] - a * r[i] * tjj) * rj
                                  + gj * r[i] * rj)
            J[j, j] += Lm2 * gj * rj
    for j in range(K):
        out[j] = -Lm2 * out[j] * r[j]
    return mmin


@leaf
def _base(w, mv, mdl, wk, a, lam, zb, mb):
    """z and the margins at the step's base point w (the stages add smooth offsets to these).
    ``lam > 0``: the frozen scale, ``z_j = lam exp(a (w_j - log Y))``, ``Y = 1 / sum 1/y``."""
    K = w.shape[0]
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
    _margins(zb, mb, mdl, wk)


#: above this K the step's matrix ``I - h d J`` is factorised by LAPACK's blocked ``dgetrf``
#: (scipy's OpenBLAS, through numba's own LAPACK bridge, ``numba.np.linalg._LAPACK``: an
#: external symbol, so the kernels stay cacheable) instead of the loops of :func:`_lu`.
#: Measured (``OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python bench/yclock_lu.py``, one step's
#: factorisation + 4 solves, loops / LAPACK, 2026-12-05): 0.91 at K = 16, 1.08 at 24, 1.23 at
#: 32, 1.85 at 64, 3.61 at 256, 5.60 at 1024 (bench/RESULTS.md "LAPACK LU").
LAPACK_MIN = 24
_getrf = _LAPACK().numba_xxgetrf(nb.types.float64)
#: integer type of LAPACK's pivot vector in numba's bridge (int32 for scipy's LP64 build)
PIV_DTYPE = np.dtype(str(F_INT_nbtype))


@leaf
def _factor(J, hd, W, piv, ipv, lapack):
    """Factorise ``W = I - hd J`` in place; False when it is singular (or not finite). By
    :func:`_lu` (row-major, ``piv``), or with ``lapack`` by LAPACK ``dgetrf`` on W stored
    column-major (``W[j, i]`` holds entry (i, j); pivots 1-based in ``ipv``)."""
    K = J.shape[0]
    if not lapack:
        for i in range(K):
            for j in range(K):
                W[i, j] = -hd * J[i, j]
            W[i, i] += 1.0
        return _lu(W, piv)
    for i in range(K):
        for j in range(K):
            v = -hd * J[i, j]
            if not math.isfinite(v):   # LAPACK is never handed a non-finite matrix
                return False
            W[j, i] = v
        W[i, i] += 1.0
    return _getrf(ord("d"), K, K, W.ctypes, K, ipv.ctypes) == 0


@leaf
def _lsolve(W, piv, ipv, lapack, b, x):
    """``x = W^-1 b`` from :func:`_factor`'s factors (same ``lapack``; ``b`` is not changed)."""
    n = b.shape[0]
    if not lapack:
        _solve(W, piv, b, x)
        return
    for i in range(n):
        x[i] = b[i]
    for i in range(n):   # the row interchanges, in LAPACK's order
        p = ipv[i] - 1
        if p != i:
            t = x[i]
            x[i] = x[p]
            x[p] = t
    for k in range(n):   # unit lower triangle, column k = row k of W: contiguous
        xk = x[k]
        if xk != 0.0:
            for i in range(k + 1, n):
                x[i] -= W[k, i] * xk
    for k in range(n - 1, -1, -1):
        x[k] /= W[k, k]
        xk = x[k]
        for i in range(k):
            x[i] -= W[k, i] * xk


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


class Ctl(NamedTuple):
    """The y clock's constants and controls (one bundle for every start of a batch).

    a : float          ``-L / (L-2)`` (z = y^a)
    Lm2 : float        L - 2
    rtol, atol : float tolerances in w = log y
    gtol : float       absolute tolerance on the gaps of the margins the field feels
    max_steps : int    accepted steps per start
    dense : bool       keep the margin matrix dense (``DENSE_MAX``)
    lapack : bool      factorise the step matrix by LAPACK (``LAPACK_MIN``)
    """

    a: float
    Lm2: float
    rtol: float
    atol: float
    gtol: float
    max_steps: int
    dense: bool
    lapack: bool


@nb.njit(cache=True)
def _run_one(y0, mv, lam, mdl, ctl, stops, yout, info, w, slice_steps):
    """Advance one start by at most ``slice_steps`` accepted steps (its state: ``w`` and
    ``info``, see ``I_STATUS``...; a resumed start continues bit for bit as one long call)."""
    if info[I_PHASE] == DONE:
        return
    a = ctl.a
    Lm2 = ctl.Lm2
    rtol = ctl.rtol
    atol = ctl.atol
    gtol = ctl.gtol
    max_steps = ctl.max_steps
    lap = ctl.lapack
    K = y0.shape[0]
    C1 = K - 1
    wk = new_work(mdl, ctl.dense)
    F0 = np.empty(K)
    F1 = np.empty(K)
    F2 = np.empty(K)
    k1 = np.empty(K)
    k2 = np.empty(K)
    k3 = np.empty(K)
    wn = np.empty(K)
    rhs = np.empty(K)
    m = np.empty(C1)
    J = np.zeros((K, K))
    W = np.empty((K, K))
    piv = np.empty(K, dtype=np.int64)
    ipv = np.empty(K, dtype=PIV_DTYPE)
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
    status = OK
    if info[I_PHASE] == FRESH:
        for j in range(K):
            w[j] = math.log(y0[j]) if mv[j] else 0.0
        s = 0
        steps = 0
        wm = _wmin(w, mv)
        while s < S and wm <= lst[s]:
            for j in range(K):
                yout[s, j] = math.exp(w[j])
            s += 1
        # first step: 1e-3 of the time scale of the fastest mode
        _base(w, mv, mdl, wk, a, lam, zb, mb)
        _field(w, d0, zb, mb, mv, mdl, wk, a, Lm2, lam, F0, False, J)
        rate = 0.0
        for j in range(K):
            if mv[j] and abs(F0[j]) > rate:
                rate = abs(F0[j])
        h = 1e-3 / rate if rate > 0 else 1e-3
        sig = 0.0
        landing = False
    else:
        s = int(info[I_STOP])
        steps = int(info[I_STEPS])
        h = info[I_H]
        sig = info[I_SIGMA]
        landing = info[I_LANDING] != 0.0
        wm = _wmin(w, mv)
    taken = 0
    while s < S and taken < slice_steps:
        if steps >= max_steps:
            status = MAX_STEPS
            break
        _base(w, mv, mdl, wk, a, lam, zb, mb)
        ib = 0
        for c in range(C1):
            if mb[c] < mb[ib]:
                ib = c
        for c in range(C1):   # how much each margin's gap matters: e^(-(m_c - m_min))
            gw[c] = math.exp(-(mb[c] - mb[ib]))
        _field(w, d0, zb, mb, mv, mdl, wk, a, Lm2, lam, F0, True, J)
        tries = 0
        while True:
            if not _factor(J, h * d, W, piv, ipv, lap):
                h *= 0.5
                tries += 1
                if tries > 60:
                    status = NON_FINITE
                    break
                continue
            _lsolve(W, piv, ipv, lap, F0, k1)
            for j in range(K):
                dd[j] = 0.5 * h * k1[j] if mv[j] else 0.0
            _field(w, dd, zb, mb, mv, mdl, wk, a, Lm2, lam, F1, False, J)
            for j in range(K):
                rhs[j] = F1[j] - k1[j]
            _lsolve(W, piv, ipv, lap, rhs, k2)
            for j in range(K):
                k2[j] += k1[j]
                dd[j] = h * k2[j] if mv[j] else 0.0
                wn[j] = w[j] + dd[j]
            _field(w, dd, zb, mb, mv, mdl, wk, a, Lm2, lam, F2, False, J)
            for j in range(K):
                rhs[j] = F2[j] - e32 * (k2[j] - F1[j]) - 2.0 * (k1[j] - F0[j])
            _lsolve(W, piv, ipv, lap, rhs, k3)
            for j in range(K):
                rhs[j] = h / 6.0 * (k1[j] - 2.0 * k2[j] + k3[j])
            _lsolve(W, piv, ipv, lap, rhs, ev)   # filtered estimate (see module docstring)
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
                for j in range(K):
                    dd[j] = a * zb[j] * ev[j] if mv[j] else 0.0
                _margins_of(dd, m, mdl, wk)
                em_min = m[ib]
                rev = 0.0   # frozen scale: dm_c also moves by -a (r . e) m_c
                if lam > 0.0:
                    rr = wk.r
                    for j in range(K):
                        if mv[j]:
                            rev += rr[j] * ev[j]
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
        taken += 1
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
    info[I_STATUS] = status
    info[I_STEPS] = steps
    info[I_SIGMA] = sig
    info[I_H] = h
    info[I_STOP] = s
    info[I_LANDING] = 1.0 if landing else 0.0
    info[I_PHASE] = DONE if (status != OK or s >= S) else RUNNING


@nb.njit(cache=True, parallel=True)
def _run_batch(Y0, MV, LAM, mdl, ctl, stops, yout, info, W, slice_steps):
    for i in nb.prange(Y0.shape[0]):
        _run_one(Y0[i], MV[i], LAM[i], mdl, ctl, stops, yout[i], info[i], W[i], slice_steps)


@nb.njit(cache=True)
def _run_serial(Y0, MV, LAM, mdl, ctl, stops, yout, info, W, slice_steps):
    for i in range(Y0.shape[0]):
        _run_one(Y0[i], MV[i], LAM[i], mdl, ctl, stops, yout[i], info[i], W[i], slice_steps)


def field_at(spec, w, mv, lam: float = 0.0, d=None, jac: bool = False, dense=None):
    """The y clock's field at ``w + d`` from the base point w (log y (K,), ``mv`` the moving
    modes): ``(F, J, zb, mb)``, J the Jacobian (zeros unless ``jac``), zb and mb z and the
    margins at w; ``dense`` forces either margin route (default: ``DENSE_MAX``). The compiled
    kernels, called from Python (tests and checks)."""
    mdl = make_bundle(spec, CLOCK_Y)
    K = spec.K
    L = spec.L
    wk = new_work(mdl, bool(K <= DENSE_MAX[mdl.kind] if dense is None else dense))
    w = np.ascontiguousarray(w, float)
    mv = np.ascontiguousarray(mv, bool)
    d = np.zeros(K) if d is None else np.ascontiguousarray(d, float)
    zb, mb, F, J = np.empty(K), np.empty(K - 1), np.empty(K), np.zeros((K, K))
    a = -L / (L - 2.0)
    _base(w, mv, mdl, wk, a, float(lam), zb, mb)
    _field(w, d, zb, mb, mv, mdl, wk, a, float(L - 2), float(lam), F, bool(jac), J)
    return F, J, zb, mb


def stiff_flow_y(spec, z0, stops, rtol: float = 1e-8, atol: float = 1e-30,
                 max_steps: int = 20_000, gtol: float = GTOL, dense=None, lapack=None):
    """y at the stops for balanced starts z0 (B, K): ``(y (B, S, K), status list, steps (B,),
    sigma (B,))``; non-moving modes (mode 0, z_j = 0) carry y = inf. ``dense``: the margin
    route (default by ``DENSE_MAX``), ``lapack``: the step matrix's factorisation (default by
    ``LAPACK_MIN``); every choice gives the same flow to rounding."""
    L = spec.L
    z0 = np.atleast_2d(np.asarray(z0, float))
    mv = z0 > 0
    mv[:, 0] = False
    with np.errstate(divide="ignore"):
        Y0 = np.where(mv, z0, 1.0) ** (-(L - 2.0) / L)
    return _integrate(spec, Y0, mv, stops, np.zeros(len(Y0)), rtol, atol, max_steps, gtol,
                      dense, lapack)


def frozen_flow_y(spec, y0, stops, scale, rtol: float = 1e-8, atol: float = 1e-30,
                  max_steps: int = 20_000, gtol: float = GTOL, dense=None, lapack=None):
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
                      gtol, dense, lapack)


def _integrate(spec, Y0, mv, stops, lam, rtol, atol, max_steps, gtol, dense, lapack):
    L = spec.L
    B, K = Y0.shape
    stops = np.ascontiguousarray(stops, float)
    yout = np.full((B, stops.size, K), np.nan)
    info = np.zeros((B, 7))
    W = np.zeros((B, K))
    run = _run_batch if B >= 8 else _run_serial
    mdl = make_bundle(spec, CLOCK_Y)
    ctl = Ctl(a=-L / (L - 2.0), Lm2=float(L - 2), rtol=float(rtol), atol=float(atol),
              gtol=float(gtol), max_steps=int(max_steps),
              dense=bool(K <= DENSE_MAX[mdl.kind] if dense is None else dense),
              lapack=bool(K > LAPACK_MIN if lapack is None else lapack))
    args = (np.ascontiguousarray(Y0), np.ascontiguousarray(mv), np.ascontiguousarray(lam, float),
            mdl, ctl, stops, yout, info, W)
    # slices of about SLICE_SECONDS, so that Ctrl-C (seen between compiled calls) stops a
    # run promptly; the first call may include the compile and only grows the slice
    slice_steps, first = 16, True
    while True:
        t0 = time.perf_counter()
        run(*args, slice_steps)
        if (info[:, I_PHASE] == DONE).all():
            break
        dt = time.perf_counter() - t0
        grow = 4.0 if first or dt <= 0 else min(4.0, SLICE_SECONDS / dt)
        slice_steps = int(min(1 << 40, max(1, slice_steps * grow)))
        first = False
    yout[~np.broadcast_to(mv[:, None, :], yout.shape)] = np.inf
    return (yout, [STATUS[int(v)] for v in info[:, I_STATUS]], info[:, I_STEPS].astype(int),
            info[:, I_SIGMA])
