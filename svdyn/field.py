"""The reduced vector field on singular values (numba, float64).

State ``s`` has shape ``(L, K)``: ``s[l, j]`` is the j-th singular value of factor ``F_{l+1}``
in the frozen spectral frames, and ``z_j = prod_l s[l, j]``. With ``g = -d loss_data / d z``:

    ds[l, j]/dt = g_j * prod_{m != l} s[m, j] - lambda_l s[l, j].

For cross-entropy ``g_j = (1 - mu_j) / (K sqrt n)`` with ``mu = C softmax(C z / (K sqrt n))``
(``C`` the real character table, applied by a fast transform). Margins and the stable residual
``1 - mu = C (e_0 - p)`` live in ``svdyn.softmax``: late-time values such as ``e^{-65}`` keep
full relative precision and logits of 1e4 neither overflow nor produce NaN.

Kernels take the state, an output, a :class:`svdyn.bundle.Scratch` (``new_scratch``) and the
model bundle ``m`` (:class:`svdyn.bundle.Model`, ``spec.bundle(clock)``):

* ``rhs(s, out, sc, m)``      ds/dclock for the t and normalised clocks -> (loss, min margin)
* ``field(y, out, sc, m)``    the field of ``m.clock``; the y clock
                              (state (1, K)): ``dy_j/dtau = -(L-2) g_j e^{m_min}``
* ``field_into(y, out, sc, m, with_loss, general)``  the same; ``NO_LOSS`` skips the loss
                              (nan), what the stepper's inner stages call; ``general=WALSH_CE``
                              compiles the walsh / ce / t-clock path alone
* ``logit_grad(z, g, sc, m)`` ``g = -d loss_data / d z`` -> (data loss, min margin)
"""
from __future__ import annotations

import math

import numpy as np

from .bundle import CLOCK_T, CLOCK_Y, Scratch
from .groups import WALSH
from .jit import (inline as _inline, kernel as _njit, leaf,  # decorator flags: svdyn/jit.py
                  leaf_forced)
from .kernels import ce_grad, ls_grad, ls_loss_extra, mse_grad, mse_loss_term
from .softmax import EXP_FLOOR, GENERAL, WALSH_CE, class_margins, softmax_residual  # noqa: F401
from .spec import LOSS_CE, LOSS_MSE, ModelSpec


@_njit
def new_scratch(K, tmax):
    """A fresh :class:`svdyn.bundle.Scratch` for K classes (``tmax = m.tmax``)."""
    return Scratch(np.empty(K), np.empty(K), np.empty(K), np.empty(K), np.empty(K),
                   np.empty(K), np.empty(K), np.empty(K), np.empty(K), np.empty(tmax),
                   np.empty(tmax))


@_njit
def conjugate(j, dims):
    """Index of the conjugate character of ``j`` on ``Z_{dims[0]} x ...`` (row-major)."""
    out = 0
    rem = j
    stride = 1
    for a in range(dims.shape[0] - 1, -1, -1):
        m = dims[a]
        d = rem % m
        rem //= m
        out += ((m - d) % m) * stride
        stride *= m
    return out


@_njit
def symmetrise_pairs(g, dims):
    """Average paired (conjugate) modes in place so they stay bitwise equal.

    Paired modes carry equal values exactly in the model, but the transform's round-off can
    make their computed gradients differ in the last bits; at depth >= 3 that difference is
    amplified (the pair-splitting direction is unstable), so it must never enter the state.
    """
    for j in range(g.shape[0]):
        p = conjugate(j, dims)
        if p > j:
            v = 0.5 * (g[j] + g[p])
            g[j] = v
            g[p] = v


@_inline
def logit_grad(z, g, sc, m, with_loss=True, general=GENERAL):
    """``g = -d loss_data / d z`` at logit singular values ``z`` (K,), scaled by the clock of
    ``m`` (see ``svdyn.softmax``); returns (data loss, min margin). ``g`` may be ``sc.g``,
    not ``z``. ``with_loss=False``: the cross-entropy loss is not formed (nan; one log less)."""
    K = z.shape[0]
    rn = math.sqrt(m.n)
    mmin, msum = class_margins(z, sc, m, general)
    if general is not None and m.code == LOSS_MSE:
        loss = 0.0
        for j in range(K):
            g[j] = mse_grad(z[j], K, rn)
            loss += mse_loss_term(z[j], K, rn)
        if m.kind != WALSH:
            symmetrise_pairs(g, m.dims)
        return loss, mmin
    loss = softmax_residual(mmin, sc, m, with_loss, general)
    omm = sc.omm
    if general is None or m.code == LOSS_CE:
        _ce_grad_into(omm, g, K, rn)
    else:  # LOSS_LS
        g[0] = 0.0
        for j in range(1, K):
            g[j] = ls_grad(omm[j], m.eps, K, rn)
        loss += ls_loss_extra(msum, m.eps, K)
    if general is not None and m.kind != WALSH:
        symmetrise_pairs(g, m.dims)
    return loss, mmin


@_inline
def _ce_grad_into(omm, g, K, rn):
    """``g`` of cross-entropy from the residual ``omm`` (``g[0] = 0``: the mean logit does not
    move)."""
    g[0] = 0.0
    for j in range(1, K):
        g[j] = ce_grad(omm[j], K, rn)


@_inline
def _walsh_ce_grad(z, g, sc, m, with_loss):
    """:func:`logit_grad` of a walsh model with cross-entropy in physical time: the same
    helpers in the same order, so the same bits, without the other losses' code (its IR is
    copied into each kernel that inlines it: 1.1 s of a first flow's compile for logit_grad
    against ~0.6 s for this)."""
    mmin, _ = class_margins(z, sc, m, WALSH_CE)
    loss = softmax_residual(mmin, sc, m, with_loss, WALSH_CE)
    _ce_grad_into(sc.omm, g, z.shape[0], math.sqrt(m.n))
    return loss, mmin


@leaf
def logit_grad_once(z, g, sc, m):
    """:func:`logit_grad` compiled once and called (not inlined) by :func:`rhs` (the kernels
    of ``svdyn.optimizers`` inline ``rhs``): one copy of the loss code per caller tree."""
    return logit_grad(z, g, sc, m)


@_inline
def rhs(s, out, sc, m):
    """Reduced vector field ``out = ds/dclock`` at ``s`` (L, K) (t or normalised clock).
    Returns (total loss incl. ``sum_l lambda_l / 2 ||s_l||^2``, min margin)."""
    logits_into(s, sc, m)
    loss, mmin = logit_grad_once(sc.z, sc.g, sc, m)
    return loss + _factor_chain(s, out, sc.g, sc.pre, sc.suf, m.lam, s.shape[1]), mmin


@_inline
def _factor_chain(s, out, g, pre, suf, lam, K):
    """``out[l, j] = g_j prod_{m != l} s[m, j] - lambda_l s[l, j]`` for the ``K`` modes of ``s``
    (``pre``, ``suf``: (K,) scratch, used from L = 3 on); returns the weight-decay term
    ``sum_l lambda_l / 2 ||s_l||^2`` (rows with lambda_l = 0 add nothing). ``K`` is passed so
    that a caller with a constant K (:func:`walsh4_field`) gets loops of constant length."""
    L = s.shape[0]
    if L == 1:
        lm = lam[0]
        for j in range(K):
            out[0, j] = g[j] - lm * s[0, j]
    elif L == 2:
        # one pass, no prefix / suffix buffers; the same products as the general loop below
        # (A/B in a compiled loop, walsh K = 4: 114 -> 96 ns per field, K = 16 239 -> 204)
        l0 = lam[0]
        l1 = lam[1]
        for j in range(K):
            a = s[0, j]
            b = s[1, j]
            gj = g[j]
            out[0, j] = gj * b - l0 * a
            out[1, j] = a * gj - l1 * b
    else:
        # prefix / suffix products (no division by s, which may be 0). Row-wise loops over
        # contiguous memory: 2x faster than per-mode loops at K = 64, L = 4. The first prefix
        # (1) and the first suffix (g) are not stored: row 0 reads the suffix alone.
        for j in range(K):
            pre[j] = s[0, j]
        for l in range(1, L - 1):
            for j in range(K):
                out[l, j] = pre[j]
                pre[j] *= s[l, j]
        lm = lam[L - 1]
        for j in range(K):
            v = s[L - 1, j]
            out[L - 1, j] = pre[j] * g[j] - lm * v
            suf[j] = g[j] * v
        for l in range(L - 2, 0, -1):
            lm = lam[l]
            for j in range(K):
                v = s[l, j]
                out[l, j] = out[l, j] * suf[j] - lm * v
                suf[j] *= v
        lm = lam[0]
        for j in range(K):
            out[0, j] = suf[j] - lm * s[0, j]
    return _decay(s, lam, K)


@_inline
def _decay(s, lam, K):
    """``sum_l lambda_l / 2 ||s_l||^2``, rows from the last to the first."""
    L = s.shape[0]
    reg = 0.0
    for l in range(L - 1, -1, -1):
        lm = lam[l]
        if lm != 0.0:
            for j in range(K):
                v = s[l, j]
                reg += 0.5 * lm * v * v
    return reg


@_inline
def y_of_z(zj, L):
    """``y = z^{-(L-2)/L}`` for a moving mode (z > 0); -1 marks a mode that does not move."""
    return zj ** (-(L - 2.0) / L) if zj > 0.0 else -1.0


@_inline
def z_of_y(yj, L):
    """Inverse of :func:`y_of_z` (0 for the marker -1)."""
    return yj ** (-L / (L - 2.0)) if yj > 0.0 else 0.0


@_inline
def _y_out(y, out, g, L):
    """``out = -(L-2) g`` on the moving modes of the y clock, 0 on the others."""
    c = -(L - 2.0)
    for j in range(y.shape[1]):
        out[0, j] = c * g[j] if y[0, j] > 0.0 else 0.0


#: ``field_into``'s ``with_loss`` flags. numpy bools, not Python ones: numba types a Python
#: ``True`` passed to a compiled function as a literal and compiles a second copy of the whole
#: field for it (seconds of first compile); a global numpy bool is a plain ``bool``, one copy
#: for both values.
WITH_LOSS = np.bool_(True)
NO_LOSS = np.bool_(False)


@leaf
def field(y, out, sc, m):
    """:func:`field_into` with the loss: the field of ``m.clock``; returns (loss, min margin).
    The engine's kernels (stepper, steady hand-off) call ``field_into`` itself, so their
    compile holds one copy of the field. Not inlined: an IR-inlined wrapper in a reference-
    counted caller increfs and decrefs every array of the bundles it passes on (158 instead of
    85 ns per evaluation in a compiled loop at walsh K = 4)."""
    return field_into(y, out, sc, m, WITH_LOSS, GENERAL)


@leaf
def field_into(y, out, sc, m, with_loss, general):
    """The stepper's right-hand side for the bundle's clock; returns (loss, min margin).
    ``with_loss=False`` (stages whose loss nobody reads): the cross-entropy loss is not formed
    and comes back nan, one log less per evaluation; the field and the margin are the same bits.
    ``general``: ``GENERAL``, or ``WALSH_CE`` (None) from kernels that only run walsh models
    with cross-entropy in physical time: numba then compiles that path alone (the same
    operations, so the same bits; at K = 4 the general walsh loops, which give the bits of
    ``_walsh4_ce_grad``, while the stepper's stages call :func:`walsh4_field`).

    t / normalised clocks: :func:`rhs`; y clock: ``dy_j/dtau = -(L-2) g_j e^{m_min}`` at
    ``z_j = y_j^{-L/(L-2)}`` (balanced, ce, no weight decay; modes marked ``y_j < 0`` do not
    move). The loss code is inlined here rather than called compiled apart (as ``rhs`` does):
    that call passes the bundles argument by argument. A/B against the called version
    (bench/RESULTS.md "field inlining", 2026-12-05): 158-164 -> 125-132 ns per field at walsh
    K = 4, L = 2; a dop853 flow to 1e7 0.183 -> 0.165-0.170 ms; K >= 64 unchanged."""
    if general is None:   # walsh ce (K = 4 too: the stepper's stages call walsh4_field there)
        logits_into(y, sc, m, general)
        loss, mmin = _walsh_ce_grad(sc.z, sc.g, sc, m, with_loss)
    elif y.shape[1] == 4 and m.kind == WALSH and m.code == LOSS_CE and m.clock == CLOCK_T:
        loss, mmin = _walsh4_ce_grad(y, sc.g, m.n, with_loss)
    else:
        logits_into(y, sc, m, general)
        loss, mmin = logit_grad(sc.z, sc.g, sc, m, with_loss, general)
        if general is not None and m.clock == CLOCK_Y:
            _y_out(y, out, sc.g, m.depth)
            return loss, mmin
    # one inlined copy of the chain for both branches (each copy costs ~1 s of first compile)
    return loss + _factor_chain(y, out, sc.g, sc.pre, sc.suf, m.lam, y.shape[1]), mmin


@leaf_forced
def walsh4_field(y, out, g, pre, suf, n, lam, with_loss):
    """:func:`field_into` of a walsh K = 4 model with cross-entropy in physical time (the same
    bits), on the few arrays it reads: a call of ``field_into`` passes the two bundles member
    by member (~150 machine words; at K = 4 the call cost more than the field). The stepper's
    stages call this in the ``WALSH_CE`` kernels. ``g``, ``pre``, ``suf``: (4,) scratch."""
    loss, mmin = _walsh4_ce_grad(y, g, n, with_loss)
    return loss + _factor_chain(y, out, g, pre, suf, lam, 4), mmin


@_inline
def _walsh4_ce_grad(y, g, n, with_loss):
    """:func:`logit_grad` for walsh K = 4, ce, t clock, on scalars: the same operations in the
    same order as the general path (``logits_into``, ``class_margins``, ``softmax_residual``
    with the radix-4 butterfly of ``transforms.fwht``), so the same bits, without its ten loops
    over four values and two transform calls. Returns (data loss, min margin).

    A/B in a compiled loop over ``field`` (walsh K = 4, L = 2; bench/RESULTS.md "K = 4 walsh
    path", 2026-12-05): 115-131 -> 82-84 ns per evaluation; dop853 flows to t = 1e7 at
    K = 4 0.173-0.182 -> 0.121-0.125 ms (L = 2), 0.206-0.212 -> 0.146-0.148 ms (L = 4)."""
    L = y.shape[0]
    z0 = y[0, 0]
    z1 = y[0, 1]
    z2 = y[0, 2]
    z3 = y[0, 3]
    for l in range(1, L):
        z0 *= y[l, 0]
        z1 *= y[l, 1]
        z2 *= y[l, 2]
        z3 *= y[l, 3]
    b0 = z0 + z1
    b1 = z0 - z1
    b2 = z2 + z3
    b3 = z2 - z3
    rn = math.sqrt(n)
    scale = 1.0 / (4 * rn)
    u0 = (b0 + b2) * scale
    m1 = u0 - (b1 + b3) * scale
    m2 = u0 - (b0 - b2) * scale
    m3 = u0 - (b1 - b3) * scale
    mmin = np.inf
    if m1 < mmin:
        mmin = m1
    if m2 < mmin:
        mmin = m2
    if m3 < mmin:
        mmin = m3
    a = max(0.0, -mmin)
    x1 = -a - m1
    x2 = -a - m2
    x3 = -a - m3
    q1 = math.exp(x1) if x1 > EXP_FLOOR else 0.0
    q2 = math.exp(x2) if x2 > EXP_FLOOR else 0.0
    q3 = math.exp(x3) if x3 > EXP_FLOOR else 0.0
    S = 0.0
    S += q1
    S += q2
    S += q3
    Zp = math.exp(-a) + S
    if not with_loss:
        loss = np.nan
    elif a == 0.0:
        loss = math.log1p(S)
    else:
        loss = a + math.log(Zp)
    fac = -1.0 / Zp
    w0 = S / Zp
    w1 = q1 * fac
    w2 = q2 * fac
    w3 = q3 * fac
    b0 = w0 + w1
    b1 = w0 - w1
    b2 = w2 + w3
    b3 = w2 - w3
    g[0] = 0.0
    g[1] = ce_grad(b1 + b3, 4, rn)
    g[2] = ce_grad(b0 - b2, 4, rn)
    g[3] = ce_grad(b1 - b3, 4, rn)
    return loss, mmin


@_inline
def logits_into(y, sc, m, general=GENERAL):
    """The logit singular values z of a state for the bundle's clock, written into ``sc.z``
    (factor products for the t / normalised clocks, z = y^(-L/(L-2)) for the y clock)."""
    L, K = y.shape
    z = sc.z
    if general is not None and m.clock == CLOCK_Y:
        for j in range(K):
            z[j] = z_of_y(y[0, j], m.depth)
    else:
        for j in range(K):
            z[j] = y[0, j]
        for l in range(1, L):
            for j in range(K):
                z[j] *= y[l, j]
    return z


@_njit
def rhs_batch(S, out, m):
    """Batched field: ``S`` (B, L, K) -> ``out`` (B, L, K); returns (loss (B,), min margin (B,))."""
    B, L, K = S.shape
    loss = np.empty(B)
    mm = np.empty(B)
    sc = new_scratch(K, m.tmax)
    for b in range(B):
        lo, mg = field(S[b], out[b], sc, m)
        loss[b] = lo
        mm[b] = mg
    return loss, mm


# ---------------------------------------------------------------------- python API
def vector_field(spec: ModelSpec, s: np.ndarray, clock: int = CLOCK_T):
    """ds/dt for a state (L, K) or a batch (B, L, K).

    Returns ``(ds, loss, min_margin)`` with ``ds`` shaped like ``s`` and loss / margin scalars
    (or (B,) arrays for a batch). ``clock=CLOCK_NORM`` gives the normalised-time field.
    """
    s = spec.check_state(s)
    m = spec.bundle(clock)
    out = np.empty_like(s)
    if s.ndim == 2:
        loss, mm = field(s, out, new_scratch(spec.K, m.tmax), m)
        return out, loss, mm
    loss, mm = rhs_batch(s, out, m)
    return out, loss, mm


def y_field(spec: ModelSpec, y: np.ndarray):
    """The certification-clock field ``dy/dtau`` at ``y`` (K,) (entries < 0 mark modes that do
    not move, as in ``svdyn.integrate.flow_y``); returns ``(dy, loss, min_margin)``."""
    y = np.ascontiguousarray(y, dtype=np.float64).reshape(1, spec.K)
    out = np.empty_like(y)
    m = spec.bundle(CLOCK_Y)
    loss, mm = field(y, out, new_scratch(spec.K, m.tmax), m)
    return out[0], loss, mm


def logit_gradient(spec: ModelSpec, z: np.ndarray):
    """``g = -d loss_data/d z`` at z (K,); returns ``(g, data_loss, min_margin)``."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    if z.shape != (spec.K,):
        raise ValueError(f"z must have shape ({spec.K},), got {z.shape}")
    g = np.empty(spec.K)
    m = spec.bundle()
    loss, mm = logit_grad(z, g, new_scratch(spec.K, m.tmax), m)
    return g, loss, mm


def loss_of(spec: ModelSpec, s: np.ndarray) -> float:
    """Total loss (data + weight decay) at a state (L, K)."""
    return vector_field(spec, s)[1]
