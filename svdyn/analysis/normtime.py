"""Gradient flow in normalised time, for reading off the limit of a CE trajectory honestly.

Under unregularised cross-entropy the reduced flow is (``MODEL.md`` section 2)

    ds_{l,j}/dt = g_j prod_{m != l} s_{m,j},   g_j = (1/(K sqrt n)) sum_c (1 - C[c,j]) p_c,

``p_c = e^{-m_c} / (1 + sum_c' e^{-m_c'})``. Late in training ``g ~ e^{-m_min}`` and the flow
crawls (margins grow like log t). With the time change

    d tau / d t = e^{-m_min} / (1 + sum_c e^{-m_c})

the field becomes ``ds_{l,j}/dtau = (1/(K sqrt n)) sum_c (1 - C[c,j]) e^{-(m_c - m_min)}
prod_{m != l} s_{m,j}``: the same orbits, the weights ``e^{-(m_c - m_min)}`` lie in (0, 1] and
never underflow as a whole, and margins of 10^6 are reached in a few hundred adaptive steps
(for L >= 3 the live modes blow up at a finite tau, see ``geometry.py``). Margins are formed
densely from ``M = (1 - C[1:, :]) / (K sqrt n)`` (K <= 64 here), so at margin 1e6 the margin
differences that set the weights still carry ~1e-10 absolute accuracy.

The integrator (Dormand--Prince 5(4), the coefficients of ``svdyn.tableaux``) stops when the
minimum margin first exceeds ``m_end``; it also records the state when the minimum margin
first exceeds ``m_mid``. The growth exponent of each mode over that stretch,

    e_j = log(z_j(end) / z_j(mid)) / log(m_min(end) / m_min(mid)),

tends to 1 for live modes (z_j proportional to the margin) and to 0 for dead ones (z_j
converging); see :func:`svdyn.analysis.geometry.classify_states`.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..groups import SpecError
from ..spec import LOSS_CE, ModelSpec
from ..tableaux import DOPRI5
from .maxmargin import margin_matrix

OK, MAX_STEPS, STEP_TOO_SMALL, NON_FINITE = 0, 1, 2, 3
STATUS = {OK: "ok", MAX_STEPS: "max_steps reached before m_end",
          STEP_TOO_SMALL: "step size underflow", NON_FINITE: "non-finite state"}


@nb.njit(cache=True)
def _field(s, out, M, z, m, w):
    """ds/dtau at s (L, K); returns min margin. M (K-1, K): margins ``m = M z``; the same
    matrix weights the field, ``g = M^T exp(-(m - m_min))``."""
    L, K = s.shape
    for j in range(K):
        p = 1.0
        for l in range(L):
            p *= s[l, j]
        z[j] = p
    C1 = M.shape[0]
    mmin = np.inf
    for c in range(C1):
        acc = 0.0
        for j in range(K):
            acc += M[c, j] * z[j]
        m[c] = acc
        if acc < mmin:
            mmin = acc
    for c in range(C1):
        w[c] = math.exp(-(m[c] - mmin))
    for j in range(K):
        g = 0.0
        for c in range(C1):
            g += M[c, j] * w[c]
        pre = 1.0
        for l in range(L):
            out[l, j] = pre
            pre *= s[l, j]
        suf = 1.0
        for l in range(L - 1, -1, -1):
            out[l, j] = g * out[l, j] * suf
            suf *= s[l, j]
    return mmin


@nb.njit(cache=True)
def _run_one(s0, M, m_mid, m_end, rtol, atol, max_steps, A, b, e, zmid, zend, info):
    L, K = s0.shape
    ns = b.shape[0]
    y = s0.copy()
    k = np.zeros((ns, L, K))
    ytmp = np.empty((L, K))
    ynew = np.empty((L, K))
    z = np.empty(K)
    m = np.empty(M.shape[0])
    w = np.empty(M.shape[0])
    mm = _field(y, k[0], M, z, m, w)
    got_mid = False
    if mm >= m_mid:
        for j in range(K):
            zmid[j] = z[j]
        info[2] = mm
        got_mid = True
    # first step: 1 % of the time for the fastest relative change
    rate = 0.0
    for l in range(L):
        for j in range(K):
            r = abs(k[0, l, j]) / (atol + rtol * abs(y[l, j])) * rtol
            if r > rate:
                rate = r
    h = 0.01 / rate if rate > 0 else 1.0
    tau = 0.0
    mm_new = mm
    steps = 0
    status = 0
    while True:
        if mm >= m_end:
            break
        if steps >= max_steps:
            status = 1
            break
        for i in range(1, ns):
            for l in range(L):
                for j in range(K):
                    acc = y[l, j]
                    for q in range(i):
                        acc += h * A[i, q] * k[q, l, j]
                    ytmp[l, j] = acc
            if i == ns - 1:
                for l in range(L):
                    for j in range(K):
                        ynew[l, j] = ytmp[l, j]
                mm_new = _field(ytmp, k[i], M, z, m, w)  # FSAL: f(y_new), z of y_new
            else:
                _field(ytmp, k[i], M, z, m, w)
        err = 0.0
        for l in range(L):
            for j in range(K):
                acc = 0.0
                for q in range(ns):
                    acc += e[q] * k[q, l, j]
                sc = atol + rtol * max(abs(y[l, j]), abs(ynew[l, j]))
                r = h * acc / sc
                err += r * r
        err = math.sqrt(err / (L * K))
        if not math.isfinite(err):
            h *= 0.2
            if h < 1e-300:
                status = 3
                break
            continue
        if err <= 1.0:
            tau += h
            steps += 1
            for l in range(L):
                for j in range(K):
                    y[l, j] = ynew[l, j]
                    k[0, l, j] = k[ns - 1, l, j]
            mm = mm_new
            if (not got_mid) and mm >= m_mid:
                for j in range(K):
                    zmid[j] = z[j]
                info[2] = mm
                got_mid = True
            fac = 10.0 if err == 0.0 else min(10.0, max(0.2, 0.9 * err ** (-0.2)))
            h *= fac
        else:
            h *= max(0.2, 0.9 * err ** (-0.2))
            if h < 1e-14 * max(tau, 1e-300):
                status = 2
                break
    mm = _field(y, k[0], M, z, m, w)
    for j in range(K):
        zend[j] = z[j]
    info[0] = status
    info[1] = steps
    info[3] = mm
    info[4] = tau


@nb.njit(cache=True, parallel=True)  # measured: 2500 K=4 starts, 1.51 s on 1 thread, 0.98 s on 2
def _run_batch(S0, M, m_mid, m_end, rtol, atol, max_steps, A, b, e, zmid, zend, info):
    for i in nb.prange(S0.shape[0]):
        _run_one(S0[i], M, m_mid, m_end, rtol, atol, max_steps, A, b, e, zmid[i], zend[i],
                 info[i])


def check_spec(spec: ModelSpec) -> None:
    if spec.loss_code[0] != LOSS_CE or np.any(spec.lam != 0):
        raise SpecError("limit classification needs unregularised cross-entropy (--loss ce, "
                        "--weight-decay 0): with weight decay or MSE the flow converges to a "
                        "finite critical point, whose geometry `svdyn flow` reports directly")


def run_to_margin(spec: ModelSpec, s0, m_mid: float = 1e4, m_end: float = 1e6,
                  rtol: float = 1e-9, atol: float = 1e-14, max_steps: int = 1_000_000) -> dict:
    """Integrate (L, K) or (B, L, K) initial states in normalised time up to ``m_min = m_end``.

    Returns ``{"z_mid", "m_mid", "z_end", "m_end", "status", "steps", "tau"}`` (arrays with a
    leading batch axis when s0 is a batch). Where the start already exceeds ``m_mid`` the
    start itself is recorded as the mid state.
    """
    check_spec(spec)
    s0 = spec.check_state(s0)
    if not (0 < m_mid < m_end and math.isfinite(m_end)):
        raise SpecError(f"need 0 < m_mid < m_end, got {m_mid}, {m_end}")
    single = s0.ndim == 2
    S = s0[None] if single else s0
    B = S.shape[0]
    M = np.ascontiguousarray(margin_matrix(spec.G, spec.n))
    A, b, e, c, q = DOPRI5
    zmid = np.full((B, spec.K), np.nan)
    zend = np.full((B, spec.K), np.nan)
    info = np.zeros((B, 5))
    info[:, 2] = np.nan
    _run_batch(np.ascontiguousarray(S), M, float(m_mid), float(m_end), float(rtol),
               float(atol), int(max_steps), A, b, e, zmid, zend, info)
    out = {"z_mid": zmid, "m_mid": info[:, 2], "z_end": zend, "m_end": info[:, 3],
           "status": [STATUS[int(x)] for x in info[:, 0]], "steps": info[:, 1].astype(int),
           "tau": info[:, 4]}
    if single:
        out = {k: (v[0] if k != "status" else v[0]) for k, v in out.items()}
    return out
