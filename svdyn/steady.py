"""Hand-off to a stable fixed point: the stiff end of converging flows (numba).

Flows that converge to a fixed point (weight decay, mse, label smoothing) are stiff there: an
explicit Runge--Kutta method needs ~ t * (largest Hessian eigenvalue) steps. Since the reduced
flow is a gradient flow, ``ds/dt = -grad loss(s)``, near a fixed point ``s*`` with a positive
definite Hessian the distance to ``s*`` decays monotonically (to leading order in it). So when
one Newton step ``delta = -J^{-1} f`` from the current state is already within the error
tolerance (``rms(delta / (atol + rtol |s|)) < 1``, the same test an accepted step passes) and the
Hessian (restricted to the coordinates that move) is positive definite,
every later state lies within that tolerance of ``s* = s + delta``, and the integrator saves
``s*`` at all remaining times (``Trajectory.stats["t_steady"]`` says when this happened). A
first step within 10 tolerances is also accepted when the second Newton step is within 0.01
of one (the iteration has converged; ``s*`` is the second iterate): methods whose step
control at the stability limit leaves the state hovering a few tolerances away (tsit5) hand
off too. When to try is decided by the stepper (``stepper.STEADY_WINDOW``).

Coordinates: one per pair of conjugate modes (paired modes move together and stay equal),
without the frozen ones (mode 0 under ce / label smoothing where ``lambda_l = 0``). The
Jacobian is a central finite difference of the field (``2 n`` evaluations, ``n`` coordinates);
the check is skipped when ``n > STEADY_MAX_DIM``.

No hand-off happens where the fixed points are not isolated: without weight decay the
conserved ``s_l^2 - s_m^2`` leave a manifold of fixed points (mse, label smoothing at depth
L >= 2) whose Hessian is singular; such flows stay explicit (and may end with ``max_steps``).
"""
from __future__ import annotations

import numpy as np

from .field import GENERAL, NO_LOSS, conjugate, field_into
from .groups import WALSH
from .jit import kernel
from .spec import LOSS_MSE

@kernel
def _lu(W, piv):
    """In-place LU with partial pivoting; False when singular (never raises)."""
    n = W.shape[0]
    for i in range(n):
        p = i
        big = abs(W[i, i])
        for r in range(i + 1, n):
            if abs(W[r, i]) > big:
                big = abs(W[r, i])
                p = r
        piv[i] = p
        if not (big > 0.0) or not np.isfinite(big):
            return False
        if p != i:
            for c in range(n):
                tmp = W[i, c]
                W[i, c] = W[p, c]
                W[p, c] = tmp
        d = W[i, i]
        for r in range(i + 1, n):
            f = W[r, i] / d
            W[r, i] = f
            if f != 0.0:
                for c in range(i + 1, n):
                    W[r, c] -= f * W[i, c]
    return True


@kernel
def _lu_solve(W, piv, b):
    n = W.shape[0]
    for i in range(n):
        p = piv[i]
        if p != i:
            tmp = b[i]
            b[i] = b[p]
            b[p] = tmp
    for i in range(n):
        acc = b[i]
        for c in range(i):
            acc -= W[i, c] * b[c]
        b[i] = acc
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for c in range(i + 1, n):
            acc -= W[i, c] * b[c]
        b[i] = acc / W[i, i]


STEADY_MAX_DIM = 512
STEADY_TOL = 1.0  # the Newton step must be within the error tolerance (rms-scaled)
#: ... or within STEADY_TOL_NEAR tolerances, if the next Newton step is within STEADY_TOL_2 of
#: one (converged): tsit5 at its stability limit keeps the state ~1.46 tolerances from the
#: fixed point for ever (its step control holds h |lambda| ~ 3.95, beyond its real stability
#: interval 3.51), so its first Newton step never gets below 1 (bench/RESULTS.md)
STEADY_TOL_NEAR = 10.0
STEADY_TOL_2 = 0.01


@kernel
def _coords(L, K, kind, dims, code, lam):
    """(n, 3) int array of (l, j, partner) for the coordinates that move."""
    out = np.empty((L * K, 3), dtype=np.int64)
    n = 0
    for j in range(K):
        p = j if kind == WALSH else conjugate(j, dims)
        if p < j:
            continue
        for l in range(L):
            if j == 0 and code != LOSS_MSE and lam[l] == 0.0:
                continue
            out[n, 0] = l
            out[n, 1] = j
            out[n, 2] = p
            n += 1
    return out[:n]


@kernel
def _newton_delta(y, f, co, sc, rtol, atol, model, delta, H, piv, general):
    """One Newton step ``delta = -J^{-1} f`` on the moving coordinates ``co`` at state ``y``
    with field ``f``; returns its scaled rms (:func:`_chord_delta`), or -1 when the Hessian
    there is not positive definite (or singular). Leaves the LU factors of ``-J`` in ``H,
    piv``."""
    L, K = y.shape
    m = co.shape[0]
    yp = np.empty((L, K))
    for l in range(L):
        for j in range(K):
            yp[l, j] = y[l, j]
    fp = np.empty((L, K))
    fm = np.empty((L, K))
    for c in range(m):
        l, j, p = co[c, 0], co[c, 1], co[c, 2]
        hc = 1e-6 * max(abs(y[l, j]), 1e-3)
        yp[l, j] = y[l, j] + hc
        yp[l, p] = y[l, p] + hc
        field_into(yp, fp, sc, model, NO_LOSS, general)
        yp[l, j] = y[l, j] - hc
        yp[l, p] = y[l, p] - hc
        field_into(yp, fm, sc, model, NO_LOSS, general)
        yp[l, j] = y[l, j]
        yp[l, p] = y[l, p]
        for r in range(m):
            lr, jr, pr = co[r, 0], co[r, 1], co[r, 2]
            mult = 2.0 if pr != jr else 1.0
            # Hessian of the loss restricted to the pair-symmetric subspace: -D J
            H[r, c] = -mult * (fp[lr, jr] - fm[lr, jr]) / (2.0 * hc)
    Hs = np.empty((m, m))
    for r in range(m):
        for c in range(m):
            Hs[r, c] = 0.5 * (H[r, c] + H[c, r])
    # positive definite? (Cholesky with pivots above 1e-8 of the largest diagonal entry, well
    # clear of the ~1e-10 relative error of the finite-difference Hessian)
    hmax = 0.0
    for i in range(m):
        hmax = max(hmax, abs(Hs[i, i]))
    Lc = np.zeros((m, m))
    for i in range(m):
        acc = Hs[i, i]
        for k in range(i):
            acc -= Lc[i, k] * Lc[i, k]
        if not (acc > 1e-8 * hmax):
            return -1.0
        Lc[i, i] = np.sqrt(acc)
        for r in range(i + 1, m):
            a = Hs[r, i]
            for k in range(i):
                a -= Lc[r, k] * Lc[i, k]
            Lc[r, i] = a / Lc[i, i]
    if not _lu(H, piv):
        return -1.0
    return _chord_delta(y, f, co, rtol, atol, delta, H, piv)


@kernel
def _chord_delta(y, f, co, rtol, atol, delta, H, piv):
    """``delta = (-J)^{-1} f`` with the LU factors ``H, piv`` of ``-J``; returns
    ``rms(delta / (atol + rtol |y|))`` (-1 if not finite)."""
    m = co.shape[0]
    for r in range(m):
        lr, jr, pr = co[r, 0], co[r, 1], co[r, 2]
        mult = 2.0 if pr != jr else 1.0
        delta[r] = mult * f[lr, jr]
    _lu_solve(H, piv, delta)
    acc = 0.0
    for r in range(m):
        lr, jr = co[r, 0], co[r, 1]
        v = delta[r] / (atol + rtol * abs(y[lr, jr]))
        acc += v * v
    rms = np.sqrt(acc / m)
    return rms if np.isfinite(rms) else -1.0


@kernel
def _apply(y, delta, co, out):
    L, K = y.shape
    for l in range(L):
        for j in range(K):
            out[l, j] = y[l, j]
    for r in range(co.shape[0]):
        lr, jr, pr = co[r, 0], co[r, 1], co[r, 2]
        out[lr, jr] = y[lr, jr] + delta[r]
        out[lr, pr] = out[lr, jr]


@kernel
def newton_steady(y, f, ystar, sc, rtol, atol, model, general=GENERAL):
    """Try the fixed-point hand-off at state ``y`` (L, K) with field ``f = field(y)`` (t clock;
    ``sc`` a field scratch, ``model`` the model bundle; ``general``: ``field.WALSH_CE`` (None)
    from the kernels of walsh ce flows, which then compile only that path of the field, as
    ``field.field_into`` says: the same operations, so the same bits).

    On success writes ``s*`` into ``ystar`` and returns True; returns False when the Hessian on
    the moving coordinates is not positive definite, the Newton step is not small enough, or
    the system is larger than :data:`STEADY_MAX_DIM`. Accepted: a first Newton step within
    :data:`STEADY_TOL` (``s* = y + delta``), or one within :data:`STEADY_TOL_NEAR` whose second
    step (from ``y + delta``, with the same Jacobian: a chord step) is within ``STEADY_TOL_2``
    (``s*`` = the second iterate).
    """
    L, K = y.shape
    co = _coords(L, K, model.kind, model.dims, model.code, model.lam)
    m = co.shape[0]
    if m == 0 or m > STEADY_MAX_DIM:
        return False
    delta = np.empty(m)
    H = np.empty((m, m))
    piv = np.empty(m, dtype=np.int64)
    r1 = _newton_delta(y, f, co, sc, rtol, atol, model, delta, H, piv, general)
    if r1 < 0.0 or not (r1 < STEADY_TOL_NEAR):
        return False
    _apply(y, delta, co, ystar)
    if r1 < STEADY_TOL:
        return True
    y1 = ystar.copy()
    f1 = np.empty((L, K))
    field_into(y1, f1, sc, model, NO_LOSS, general)
    r2 = _chord_delta(y1, f1, co, rtol, atol, delta, H, piv)
    if r2 < 0.0 or not (r2 < STEADY_TOL_2):
        return False
    _apply(y1, delta, co, ystar)
    return True
