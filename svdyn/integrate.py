"""Adaptive gradient-flow integration of the reduced dynamics (numba, batched).

One generic embedded explicit Runge--Kutta engine (:func:`_integrate_one`) driven by a tableau
held as data (``tableaux.py``; default Dormand--Prince 5(4)). Step control follows
scipy.integrate.RK45: error norm ``rms(err / (atol + rtol max(|y|, |y_new|)))``, new step
``h * clip(SAFETY err^(-1/(q+1)), MIN_FACTOR, MAX_FACTOR)``. Save times are hit exactly (the
step is shortened to land on them), so log-spaced grids cost nothing extra: late-time CE
dynamics slow down like 1/t, the accepted step grows like t, and the number of steps grows like
``log(t_end)``.

Failures never raise inside the compiled loop: each trajectory returns a status code
(:data:`STATUS_MESSAGES`), and saved points after a failure are NaN with the status saying why.
"""
from __future__ import annotations

import time

import numba as nb
import numpy as np

from .field import N_WORK, rhs
from .groups import SpecError
from .result import Trajectory
from .spec import ModelSpec
from .steady import newton_steady
from .tableaux import TABLEAUX

SAFETY = 0.9
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
#: Every STEADY_WINDOW accepted steps, if at least STEADY_REJECT_FRACTION of the attempts in
#: that window were rejected (the symptom of stiffness at a fixed point), try the hand-off of
#: ``steady.newton_steady``.
STEADY_WINDOW = 256
STEADY_REJECT_FRACTION = 0.05

OK, MAX_STEPS, STEP_TOO_SMALL, NON_FINITE = 0, 1, 2, 3
STATUS_MESSAGES = {
    OK: "ok",
    MAX_STEPS: "max_steps reached before the last save time; raise max_steps or loosen rtol. "
               "Flows that converge to a fixed point (weight decay, mse, label smoothing) are "
               "stiff there (cost ~ t * largest Hessian eigenvalue): end earlier, or find the "
               "fixed point directly with `svdyn critical`",
    STEP_TOO_SMALL: "step size fell below 10 ulp of t; the system is too stiff for this "
                    "explicit method at this tolerance",
    NON_FINITE: "the state became non-finite (overflow); shorten t_end or lower the init scale",
}


@nb.njit(cache=True)
def _rms_scaled(a, y, atol, rtol):
    acc = 0.0
    L, K = a.shape
    for l in range(L):
        for j in range(K):
            sc = atol + rtol * abs(y[l, j])
            r = a[l, j] / sc
            acc += r * r
    return np.sqrt(acc / (L * K))


@nb.njit(cache=True)
def _initial_step(y0, f0, t_span, err_order, rtol, atol, work, tmp, ftmp,
                  kind, dims, cs, sn, offs, code, eps, n, lam):
    """scipy's heuristic (Hairer, Norsett & Wanner, Sec. II.4) for the first step."""
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
    rhs(tmp, ftmp, work, kind, dims, cs, sn, offs, code, eps, n, lam)
    for l in range(L):
        for j in range(K):
            tmp[l, j] = ftmp[l, j] - f0[l, j]
    d2 = _rms_scaled(tmp, y0, atol, rtol) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (err_order + 1))
    return min(100.0 * h0, h1, t_span)


@nb.njit(cache=True)
def _integrate_one(y0, t_save, rtol, atol, h_init, max_steps, steady, A, b, e, c, err_order,
                   out_s, out_loss, out_mm, kind, dims, cs, sn, offs, code, eps, n, lam):
    """Integrate one trajectory from t = 0; fill ``out_*[i]`` at ``t_save[i]`` (sorted, >= 0).

    Returns ``(status, n_accepted, n_rejected, t_reached, t_steady)``; ``t_steady >= 0`` when
    the run handed off to a stable fixed point at that time (``steady`` enables it).
    """
    L, K = y0.shape
    S = b.shape[0]
    T = t_save.shape[0]
    work = np.empty((N_WORK + 2, K))
    k = np.empty((S, L, K))
    y = y0.copy()
    ynew = np.empty((L, K))
    ytmp = np.empty((L, K))
    err = np.empty((L, K))
    loss, mm = rhs(y, k[0], work, kind, dims, cs, sn, offs, code, eps, n, lam)
    t = 0.0
    idx = 0
    while idx < T and t_save[idx] <= 0.0:
        out_s[idx] = y
        out_loss[idx] = loss
        out_mm[idx] = mm
        idx += 1
    if idx == T:
        return OK, 0, 0, t, -1.0
    if h_init > 0:
        h = h_init
    else:
        h = _initial_step(y, k[0], t_save[T - 1], err_order, rtol, atol, work, ytmp, ynew,
                          kind, dims, cs, sn, offs, code, eps, n, lam)
    nacc = 0
    nrej = 0
    step_rejected = False
    inv = -1.0 / (err_order + 1)
    status = OK
    t_steady = -1.0
    win_acc = 0
    win_rej = 0
    last_nonfinite = False
    lo = loss
    mg = mm
    while idx < T:
        if nacc >= max_steps:
            status = MAX_STEPS
            break
        target = t_save[idx]
        hit = t + h * (1.0 + 1e-10) >= target  # never leave a sliver of 1e-10 h behind
        h_eff = target - t if hit else h
        if h_eff <= 10.0 * np.finfo(np.float64).eps * max(abs(t), 1e-300):
            status = NON_FINITE if last_nonfinite else STEP_TOO_SMALL
            break
        # stages (row-wise over contiguous memory so the loops vectorise)
        for i in range(1, S):
            for l in range(L):
                for j in range(K):
                    ytmp[l, j] = y[l, j]
            for m in range(i):
                cm = h_eff * A[i, m]
                if cm != 0.0:
                    for l in range(L):
                        for j in range(K):
                            ytmp[l, j] += cm * k[m, l, j]
            lo, mg = rhs(ytmp, k[i], work, kind, dims, cs, sn, offs, code, eps, n, lam)
        # FSAL: with c[S-1] = 1 and A[S-1] = b, the last stage point is y_new
        for l in range(L):
            for j in range(K):
                ynew[l, j] = 0.0
                err[l, j] = 0.0
        for m in range(S):
            bm = b[m]
            em = e[m]
            for l in range(L):
                for j in range(K):
                    km = k[m, l, j]
                    ynew[l, j] += bm * km
                    err[l, j] += em * km
        finite = True
        for l in range(L):
            for j in range(K):
                v = y[l, j] + h_eff * ynew[l, j]
                ynew[l, j] = v
                err[l, j] *= h_eff
                if not np.isfinite(v):
                    finite = False
        if finite:
            acc = 0.0
            for l in range(L):
                for j in range(K):
                    sc = atol + rtol * max(abs(y[l, j]), abs(ynew[l, j]))
                    r = err[l, j] / sc
                    acc += r * r
            en = np.sqrt(acc / (L * K))
        else:
            en = np.inf
        if en < 1.0:
            if en == 0.0:
                factor = MAX_FACTOR
            else:
                factor = min(MAX_FACTOR, SAFETY * en ** inv)
            if step_rejected:
                factor = min(1.0, factor)
            t = target if hit else t + h_eff
            y[:, :] = ynew
            k[0, :, :] = k[S - 1]
            loss = lo
            mm = mg
            nacc += 1
            step_rejected = False
            h_next = h_eff * factor
            h = max(h_next, h) if hit else h_next
            while idx < T and t_save[idx] <= t:
                out_s[idx] = y
                out_loss[idx] = loss
                out_mm[idx] = mm
                idx += 1
            win_acc += 1
            if win_acc >= STEADY_WINDOW:
                if (steady and idx < T and
                        win_rej >= STEADY_REJECT_FRACTION * (win_acc + win_rej) and
                        newton_steady(y, k[0], ytmp, work, rtol, atol, kind, dims, cs, sn, offs,
                                      code, eps, n, lam)):
                    t_steady = t
                    loss, mm = rhs(ytmp, ynew, work, kind, dims, cs, sn, offs, code, eps, n,
                                   lam)
                    while idx < T:
                        out_s[idx] = ytmp
                        out_loss[idx] = loss
                        out_mm[idx] = mm
                        idx += 1
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
    while idx < T:
        out_s[idx] = np.nan
        out_loss[idx] = np.nan
        out_mm[idx] = np.nan
        idx += 1
    return status, nacc, nrej, t, t_steady


@nb.njit(cache=True)
def _integrate_into(i, Y0, t_save, rtol, atol, h_init, max_steps, steady, A, b, e, c,
                    err_order, out_s, out_loss, out_mm, info, kind, dims, cs, sn, offs, code,
                    eps, n, lam):
    st, na, nr, tr, ts = _integrate_one(Y0[i], t_save, rtol, atol, h_init, max_steps, steady,
                                        A, b, e, c, err_order, out_s[i], out_loss[i],
                                        out_mm[i], kind, dims, cs, sn, offs, code, eps, n, lam)
    info[i, 0] = st
    info[i, 1] = na
    info[i, 2] = nr
    info[i, 3] = tr
    info[i, 4] = ts


@nb.njit(cache=True, parallel=True)
def _integrate_batch_par(Y0, *args):
    for i in nb.prange(Y0.shape[0]):
        _integrate_into(i, Y0, *args)


@nb.njit(cache=True)
def _integrate_batch_ser(Y0, *args):
    for i in range(Y0.shape[0]):
        _integrate_into(i, Y0, *args)


# Entering numba's parallel region costs ~15 ms per call on this 2-core machine (a one-step
# flow took 16 ms in parallel, 0.06 ms serially), so small batches run serially.
PARALLEL_MIN_BATCH = 8


def log_grid(t_end: float, n: int = 200, t_min: float | None = None) -> np.ndarray:
    """Save grid ``[0] + logspace(t_min, t_end, n)``; ``t_min`` defaults to ``t_end * 1e-6``
    capped at 1e-2."""
    if t_min is None:
        t_min = min(1e-2, t_end * 1e-6)
    return np.concatenate([[0.0], np.geomspace(t_min, t_end, n)])


def _check_tol(rtol, atol):
    if not (np.isfinite(rtol) and 1e-14 <= rtol < 1):
        raise SpecError(f"rtol must lie in [1e-14, 1), got {rtol}")
    if not (np.isfinite(atol) and atol > 0):
        raise SpecError(f"atol must be > 0, got {atol}")


def flow(spec: ModelSpec, s0, t_end: float | None = None, *, save_at=None, rtol: float = 1e-9,
         atol: float = 1e-12, max_steps: int = 2_000_000, method: str = "dopri5",
         first_step: float = 0.0, steady_handoff: bool = True) -> Trajectory:
    """Integrate the reduced gradient flow.

    Main arguments
    --------------
    spec : ModelSpec
    s0 : (L, K) or (B, L, K) initial singular values (paired modes equal)
    t_end : final time (> 0); with ``save_at=None`` the state is saved on :func:`log_grid`.
    save_at : sorted times >= 0 to save at (hit exactly); ``t_end`` defaults to its last entry.

    Other arguments
    ---------------
    rtol, atol : error tolerances (mixed, per component)
    max_steps : accepted-step limit per trajectory
    method : tableau name in ``svdyn.tableaux.TABLEAUX``
    first_step : initial step (0 = automatic)
    steady_handoff : at a stiff stable fixed point, hand off to it (``svdyn.steady``); the time
        it happened is ``stats["t_steady"]`` (-1 when it did not)

    Returns
    -------
    Trajectory with ``times (T,)``, ``s (T, L, K)`` (or ``(B, T, L, K)``), ``z``, ``loss``,
    ``min_margin``, ``status`` (``"ok"`` or a reason; a list for batches) and ``stats``
    (accepted / rejected steps, wall time).
    """
    s0 = spec.check_state(s0, "initial state")
    _check_tol(rtol, atol)
    if save_at is None:
        if t_end is None or not (np.isfinite(t_end) and t_end > 0):
            raise SpecError(f"t_end must be a finite number > 0, got {t_end}")
        times = log_grid(float(t_end))
    else:
        times = np.asarray(save_at, dtype=np.float64).ravel()
        if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times < 0):
            raise SpecError("save times must be finite and >= 0")
        if np.any(np.diff(times) < 0):
            raise SpecError("save times must be sorted ascending")
        if t_end is not None:
            if not (np.isfinite(t_end) and t_end > 0):
                raise SpecError(f"t_end must be a finite number > 0, got {t_end}")
            if times[-1] > t_end:
                raise SpecError(f"save time {times[-1]} lies beyond t_end={t_end}")
            if times[-1] < t_end:
                times = np.append(times, t_end)
    if method not in TABLEAUX:
        raise SpecError(f"unknown method {method!r}; choose from {sorted(TABLEAUX)}")
    A, b, e, c, q = TABLEAUX[method]
    single = s0.ndim == 2
    Y0 = s0[None] if single else s0
    B, T = Y0.shape[0], times.size
    out_s = np.empty((B, T, spec.L, spec.K))
    out_loss = np.empty((B, T))
    out_mm = np.empty((B, T))
    info = np.zeros((B, 5))
    t0 = time.perf_counter()
    kernel = _integrate_batch_par if B >= PARALLEL_MIN_BATCH else _integrate_batch_ser
    kernel(Y0, times, float(rtol), float(atol), float(first_step), int(max_steps),
           bool(steady_handoff), A, b, e, c, q, out_s, out_loss, out_mm, info,
           *spec.kernel_args())
    wall = time.perf_counter() - t0
    status = [STATUS_MESSAGES[int(st)] for st in info[:, 0]]
    stats = {"accepted_steps": info[:, 1].astype(int).tolist(),
             "rejected_steps": info[:, 2].astype(int).tolist(),
             "t_reached": info[:, 3].tolist(), "t_steady": info[:, 4].tolist(),
             "seconds": wall, "method": method,
             "rtol": rtol, "atol": atol}
    if single:
        return Trajectory(spec, times, out_s[0], out_loss[0], out_mm[0], status[0], stats,
                          kind="flow")
    return Trajectory(spec, times, out_s, out_loss, out_mm, status, stats, kind="flow")
