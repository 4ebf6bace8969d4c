"""Margins and the stable softmax residual: the one home of both, in numba and in numpy.

Conventions (``MODEL.md`` section 2): class logits ``u = C z / (K sqrt n)`` (``C`` the real
character table, applied by a fast transform, O(K log K) for walsh and powers of two), margins
``m_c = u_0 - u_c`` for the classes c = 1..K-1, softmax ``p_c = e^{-m_c} / (1 + sum e^{-m})``.
The residual ``1 - mu_j = sum_{c != 0} (1 - C[c, j]) p_c`` is formed as the transform of
``e_0 - p`` with ``(e_0 - p)_0 = sum_{c != 0} p_c`` -- never as ``1 - C p``, which returns 0 once
margins pass ~35. With ``q_c = e^{-(m_c - m_min)}`` in (0, 1] the residual scaled by a clock is

* physical time (``CLOCK_T``): ``1 - mu`` itself (shifted log-sum-exp, as before);
* normalised time (``CLOCK_NORM``): ``(1 - mu) (1 + sum e^{-m}) e^{m_min} = sum (1 - C) q``;
* the y clock (``CLOCK_Y``): ``(1 - mu) e^{m_min} = sum (1 - C) q / (1 + e^{-m_min} sum q)``
  (for m_min < 0: ``e^{m_min} sum (1 - C) q / (e^{m_min} + sum q)``),

all O(1) however large the margins: nothing underflows as a whole.

No dense K x K margin matrix is formed anywhere (``margin_matrix`` in ``analysis/maxmargin.py``
stays for the small linear programs that need it as a matrix).
"""
from __future__ import annotations

import math

import numpy as np

from .bundle import CLOCK_NORM, CLOCK_T
from .fastexp import EXP_FLOOR, exp_diff_into  # noqa: F401  (EXP_FLOOR re-exported)
from .groups import WALSH
from .jit import inline as _inline  # decorator flags: svdyn/jit.py
from .spec import LOSS_LS
from .transforms import char_transform, fwht


#: the ``general`` argument of the engine's kernels and helpers. ``GENERAL`` (a numpy bool, so
#: that numba types it as a plain ``bool``): every group, loss and clock, chosen at run time from
#: the bundle. ``WALSH_CE`` (None): the caller guarantees a walsh model with cross-entropy in
#: physical time, and numba prunes every other branch (``general is None or ...``) when it
#: compiles, so the default flow's kernels hold one group, one loss and one clock.
GENERAL = np.bool_(True)
WALSH_CE = None


@_inline
def group_transform(x, out, sc, m, general=GENERAL):
    """``out = C x`` (real character transform) for the model's group; uses ``sc.wre..tim``."""
    if general is None or m.kind == WALSH:
        for i in range(x.shape[0]):
            out[i] = x[i]
        fwht(out)
    else:
        char_transform(x, out, m.dims, m.cos_tab, m.sin_tab, m.offs, sc.wre, sc.wim, sc.tre,
                       sc.tim)


@_inline
def class_margins(z, sc, m, general=GENERAL):
    """Logits into ``sc.u`` and margins ``m_c = u_0 - u_c`` into ``sc.w[1:]`` (``sc.w[0]``
    untouched). Returns ``(m_min, sum_c m_c)``; the sum only for label smoothing (the one
    loss that reads it; 0 otherwise).

    Three loops instead of one, at every K (same bits as one fused loop): the margins
    (vectorised), the minimum in four interleaved running minima (the same value as one, in a
    quarter of the dependent compares), and the sum in index order. Fused, the two reductions'
    dependency chains bound the loop at ~4 cycles per class."""
    K = z.shape[0]
    u = sc.u
    w = sc.w
    group_transform(z, u, sc, m, general)
    scale = 1.0 / (K * math.sqrt(m.n))
    u0 = u[0] * scale
    for c in range(1, K):
        w[c] = u0 - u[c] * scale
    mmin = min_from(w, 1)
    msum = 0.0
    if general is not None and m.code == LOSS_LS:
        for c in range(1, K):
            msum += w[c]
    return mmin, msum


@_inline
def min_from(w, lo):
    """``min(w[lo:])`` (inf when empty; NaN entries are skipped as ``x < m`` skips them)."""
    K = w.shape[0]
    m0 = np.inf
    m1 = np.inf
    m2 = np.inf
    m3 = np.inf
    c = lo
    while c + 4 <= K:
        if w[c] < m0:
            m0 = w[c]
        if w[c + 1] < m1:
            m1 = w[c + 1]
        if w[c + 2] < m2:
            m2 = w[c + 2]
        if w[c + 3] < m3:
            m3 = w[c + 3]
        c += 4
    while c < K:
        if w[c] < m0:
            m0 = w[c]
        c += 1
    return min(min(m0, m1), min(m2, m3))


@_inline
def min_margin_of(z, sc, m, general=GENERAL):
    """Minimum margin at logit singular values ``z`` (K,)."""
    return class_margins(z, sc, m, general)[0]


@_inline
def softmax_residual(mmin, sc, m, with_loss=True, general=GENERAL):
    """From the margins in ``sc.w[1:]``: the clock-scaled residual into ``sc.omm`` (see the
    module docstring). Returns the cross-entropy data loss ``log(1 + sum e^{-m})`` (nan with
    ``with_loss=False``: one log less, the same residual)."""
    K = sc.w.shape[0]
    w = sc.w
    # t clock: softmax with shift a = max(0, -m_min), q_c = e^{-m_c - a}, q_0 = e^{-a};
    # other clocks: q_c = e^{-(m_c - m_min)}. One call site (the exp loop is the field's
    # biggest code: each inlined copy costs first-compile time)
    a = max(0.0, -mmin)
    off = mmin
    if general is None or m.clock == CLOCK_T:
        off = -a
    S = exp_diff_into(w, off)
    if general is None or m.clock == CLOCK_T:
        Zp = math.exp(-a) + S
        if not with_loss:
            loss = np.nan
        elif a == 0.0:
            loss = math.log1p(S)
        else:
            loss = a + math.log(Zp)
        w0 = S / Zp
        fac = -1.0 / Zp
    else:
        if mmin >= 0.0:
            em = math.exp(-mmin)
            loss = math.log1p(em * S) if with_loss else np.nan
            f = 1.0 if m.clock == CLOCK_NORM else 1.0 / (1.0 + em * S)
        else:
            ep = math.exp(mmin)
            loss = -mmin + math.log(ep + S) if with_loss else np.nan
            f = 1.0 if m.clock == CLOCK_NORM else ep / (ep + S)
        w0 = S * f
        fac = -f
    if general is None or m.kind == WALSH:  # scaled into omm, transformed in place: a pass fewer
        omm = sc.omm
        omm[0] = w0
        for c in range(1, K):
            omm[c] = w[c] * fac
        fwht(omm)
    else:
        w[0] = w0
        for c in range(1, K):
            w[c] *= fac
        group_transform(w, sc.omm, sc, m)
    return loss


# ------------------------------------------------------------------------ numpy level
def transform(G, x) -> np.ndarray:
    """``C x`` along the last axis of ``x`` (..., K), vectorised, O(K log K) per vector: a fast
    Walsh--Hadamard transform for walsh, the real part of an n-dimensional FFT otherwise."""
    x = np.asarray(x, dtype=np.float64)
    lead = x.shape[:-1]
    if G.kind == WALSH:
        m = int(round(math.log2(G.K)))
        y = x.reshape(lead + (2,) * m).copy()
        for ax in range(len(lead), len(lead) + m):
            a = np.take(y, 0, axis=ax)
            b = np.take(y, 1, axis=ax)
            y = np.stack([a + b, a - b], axis=ax)
        return y.reshape(x.shape)
    y = x.reshape(lead + tuple(G.dims))
    axes = tuple(range(len(lead), len(lead) + len(G.dims)))
    return np.fft.fftn(y, axes=axes).real.reshape(x.shape)


def margins(G, z, n: int = 1) -> np.ndarray:
    """Margins ``m_c``, c = 1..K-1, of logit singular values ``z`` (..., K): (..., K-1)."""
    u = transform(G, z) / (G.K * math.sqrt(n))
    return u[..., :1] - u[..., 1:]


def scaled_residual(G, z, n: int = 1):
    """``(r (..., K), m (..., K-1))`` with ``r_j = sum_{c != 0} (1 - C[c, j]) e^{-(m_c -
    m_min)}``: the ce gradient ``g_j`` times ``K sqrt(n) (1 + sum e^{-m}) e^{m_min}``, O(1) at
    any margin, and the margins."""
    m = margins(G, z, n)
    q = np.exp(-(m - m.min(axis=-1, keepdims=True)))
    v = np.concatenate([q.sum(axis=-1, keepdims=True), -q], axis=-1)
    return transform(G, v), m
