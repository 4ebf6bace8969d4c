"""Adaptive gradient-flow integration of the reduced dynamics, and the certification clock.

Both run on the one stepper (``svdyn.stepper``): an embedded explicit Runge--Kutta pair held as
data (``svdyn.tableaux``: ``dop853`` default, ``dopri5``, ``tsit5``), step control as
scipy.integrate.RK45 (DOP853's combined error estimate for dop853), save grids read off the
tableau's dense output (no extra steps; only the last save time is hit exactly unless
``hit_save_times=True``). Late-time CE dynamics slow down like 1/t, the accepted step grows
like t, and the number of steps grows like ``log(t_end)``. ``flow(log_time=True)`` integrates in
``tau = log(1 + t)`` instead (``ds/dtau = (1 + t) f(s)``), where those dynamics are smooth: the
same error for fewer steps (``flow``'s docstring has the numbers).

Failures never raise inside the compiled loop: each trajectory returns a status
(``stepper.STATUS_MESSAGES``), and saved points after a failure are NaN with the status saying
why. Every attempted step counts toward ``max_steps``; compiled work runs in slices so Ctrl-C
stops a run within about a second.

:func:`flow_y` integrates the balanced ce flow at depth L >= 3 in the coordinates ``y_j =
z_j^{-(L-2)/L}`` and the time ``dtau = e^{-m_min} dt`` (``dy_j/dtau = -(L-2) g_j e^{m_min}``,
O(1) at any margin), stopping where ``min_j y_j`` reaches given thresholds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field as dc_field

import numpy as np

from .bundle import (CLOCK_T, CLOCK_Y, F_T, F_TSTEADY, I_NACC, I_NREJ, I_STATUS, JOB_RK,
                     STOP_TIME, STOP_YMIN, make_ctrl, new_run)
from .groups import SpecError
from .progress import _NullBar, progress_bar, progress_enabled
from .result import Trajectory
from .spec import LOSS_CE, ModelSpec
from .stepper import (MAX_STEPS, NON_FINITE, OK, PARALLEL_MIN_BATCH, PRECISION,  # noqa: F401
                      STATUS_MESSAGES, STEP_TOO_SMALL, STOP_PASSED, drive, first_slice,
                      run_single, single_entry)
from .tableaux import IMPLICIT, TABLEAUX

__all__ = ["flow", "flow_y", "YFlow", "log_grid", "y_floor", "STATUS_MESSAGES", "Z_LIMIT"]


def log_grid(t_end: float, n: int = 200, t_min: float | None = None) -> np.ndarray:
    """Save grid ``[0] + logspace(t_min, t_end, n)``; ``t_min`` defaults to ``t_end * 1e-6``
    capped at 1e-2."""
    if t_min is None:
        t_min = min(1e-2, t_end * 1e-6)
    return np.concatenate([[0.0], np.geomspace(t_min, t_end, n)])


_GRIDS: dict = {}   # log_grid(t_end) by t_end (np.geomspace costs ~20 us a call)


def _default_grid(t_end: float) -> np.ndarray:
    """A fresh copy of ``log_grid(t_end)`` (the grid is kept; each trajectory owns its copy)."""
    g = _GRIDS.get(t_end)
    if g is None:
        if len(_GRIDS) > 256:
            _GRIDS.clear()
        g = _GRIDS[t_end] = log_grid(t_end)
    return g.copy()


def _finite(x) -> bool:
    """``np.isfinite`` for one number, at ``math.isfinite``'s cost (~0.05 us, not ~0.7 us)."""
    try:
        return math.isfinite(x)
    except TypeError:
        return bool(np.isfinite(x))


def _check_tol(rtol, atol):
    if not (_finite(rtol) and 1e-14 <= rtol < 1):
        raise SpecError(f"rtol must lie in [1e-14, 1), got {rtol}")
    if not (_finite(atol) and atol > 0):
        raise SpecError(f"atol must be > 0, got {atol}")


def _tableau(method, implicit_ok=False):
    if method not in TABLEAUX:
        raise SpecError(f"unknown method {method!r}; choose from {sorted(TABLEAUX)}")
    if TABLEAUX[method].implicit and not implicit_ok:
        raise SpecError(f"method {method!r} needs the analytic Jacobian of the y clock: use it "
                        f"with flow_y; choose from {sorted(set(TABLEAUX) - IMPLICIT)} here")
    return TABLEAUX[method]


_NULL_BAR = _NullBar()   # progress off (progress.progress_bar's no-op)


def _check_max_steps(max_steps):
    if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1:
        raise SpecError(f"max_steps must be an integer >= 1, got {max_steps}")
    return int(max_steps)


#: flow's checked arguments and what it builds from them, by the arguments:
#: ``(spec, tableau, work per step, Ctrl, model bundle)``. A hit skips the checks of the
#: tolerances, max_steps, first_step and method (they passed when the entry was made) and the
#: building of the immutable Ctrl (~2 us); the spec is keyed by identity (the entry holds it).
_PLANS: dict = {}

#: ``flow(log_time=True)`` integrates in ``tau = log(1 + t / LOG_TIME_T0)``
LOG_TIME_T0 = 1.0


def _bar(progress, total, desc, off=_NULL_BAR):
    """The bar of a run, or ``off`` when progress is off (resolve progress=None first: a bar
    object that shows nothing still cost the default call ~20 us, drive counting stops for it
    every slice)."""
    if progress is False or not progress_enabled(progress):
        return off
    return progress_bar(total, desc, enabled=True, unit="save")


def flow(spec: ModelSpec, s0, t_end: float | None = None, *, save_at=None, rtol: float = 1e-9,
         atol: float = 1e-12, max_steps: int = 2_000_000, method: str = "dop853",
         first_step: float = 0.0, steady_handoff: bool = True, dense: bool = True,
         hit_save_times: bool = False, adaptive: bool = True, progress=None,
         log_time: bool = False) -> Trajectory:
    """Integrate the reduced gradient flow.

    Main arguments
    --------------
    spec : ModelSpec
    s0 : (L, K) or (B, L, K) initial singular values (paired modes equal)
    t_end : final time (> 0); with ``save_at=None`` the state is saved on :func:`log_grid`.
    save_at : sorted times >= 0 to save at; ``t_end`` defaults to its last entry.

    Other arguments
    ---------------
    rtol, atol : error tolerances (mixed, per component)
    max_steps : limit on attempted steps (accepted + rejected) per trajectory
    method : tableau name in ``svdyn.tableaux.TABLEAUX``: ``dop853`` (default: the cheapest
        wherever the error asked is <= 1e-8, 1.03-3.5x against dopri5 in bench/RESULTS.md
        "Default method"), ``dopri5`` (steps in lockstep with scipy's RK45), ``tsit5``
    first_step : initial step (0 = automatic)
    steady_handoff : at a stiff stable fixed point, hand off to it (``svdyn.steady``); the time
        it happened is ``stats["t_steady"]`` (-1 when it did not)
    dense : read intermediate save times off the dense output (default; the last save time is
        always hit exactly). ``hit_save_times=True`` (or ``dense=False``) shortens steps to land
        on every save time instead.
    adaptive : False takes fixed steps of size ``first_step`` (convergence studies)
    progress : None (a bar on stderr iff it is a terminal or ``SVDYN_PROGRESS=1``; a single
        trajectory opens it only once it runs past its first compiled slice, so short runs
        show none), True or False
    log_time : integrate in ``tau = log(1 + t)`` instead of t (``ds/dtau = (1 + t) f(s)``;
        ``LOG_TIME_T0`` = 1). Late-time ce dynamics are smooth in log t, so the same rtol takes
        fewer steps: walsh, dop853, t_end 1e7, rtol 1e-8 on the t clock against 1e-9 on the log
        clock: a 2.5-3.2x smaller error in 37-53 attempted steps instead of 60-63 (K = 4, 16;
        64 at L = 4; bench/RESULTS.md "A log clock"). At equal rtol the log clock's error can
        be larger (up to 69x at K = 256, rtol 1e-8, still below rtol). ``first_step`` stays in
        units of t; ``stats["t_reached"]`` and ``stats["t_steady"]`` are reported in t as
        usual. Needs ``adaptive=True``.

    Returns
    -------
    Trajectory with ``times (T,)``, ``s (T, L, K)`` (or ``(B, T, L, K)``), ``z``, ``loss``,
    ``min_margin``, ``status`` (``"ok"`` or a reason; a list for batches) and ``stats``
    (accepted / rejected steps, time reached, wall time).
    """
    s0 = spec.check_state(s0, "initial state")
    single = s0.ndim == 2
    B = 1 if single else s0.shape[0]
    use_dense = dense and not hit_save_times
    try:
        key = (id(spec), method, rtol, atol, max_steps, type(max_steps), B, steady_handoff,
               use_dense, first_step, adaptive, log_time)   # max_steps=True is refused, 1 not
        plan = _PLANS.get(key)
    except TypeError:   # an unhashable argument: no plan, the checks below say what is wrong
        key = plan = None
    if plan is None or plan[0] is not spec:
        plan = None
        _check_tol(rtol, atol)
        max_steps = _check_max_steps(max_steps)
    own = False   # times is a fresh C array that flow made (the run may use it as it is)
    if save_at is None:
        if t_end is None or not (_finite(t_end) and t_end > 0):
            raise SpecError(f"t_end must be a finite number > 0, got {t_end}")
        times = _default_grid(float(t_end))
        own = True
    else:
        if type(save_at) is list and len(save_at) <= 16 and all(
                type(v) is float for v in save_at):   # a short list of floats (~0.4 us less)
            tl = save_at
            times = np.array(tl)
            own = True
        else:
            times = np.asarray(save_at, dtype=np.float64).ravel()
            tl = times.tolist() if times.size <= 16 else None
        if tl is not None:   # a few save times: checked as Python floats (~1 us, not ~4)
            bad = not tl or not all(map(math.isfinite, tl)) or min(tl) < 0
            unsorted = not bad and tl != sorted(tl)
        else:  # ndarray methods, not np.all/np.any/np.diff (each of those costs ~3 us a call)
            bad = not np.isfinite(times).all() or times.min() < 0
            unsorted = not bad and bool((times[1:] < times[:-1]).any())
        if bad:
            raise SpecError("save times must be finite and >= 0")
        if unsorted:
            raise SpecError("save times must be sorted ascending")
        if t_end is not None:
            if not (_finite(t_end) and t_end > 0):
                raise SpecError(f"t_end must be a finite number > 0, got {t_end}")
            if times[-1] > t_end:
                raise SpecError(f"save time {times[-1]} lies beyond t_end={t_end}")
            if times[-1] < t_end:
                times = np.append(times, t_end)
                own = True
    if plan is None:
        if not (_finite(first_step) and first_step >= 0):
            raise SpecError(f"first_step must be a finite number >= 0, got {first_step}")
        if not adaptive and not first_step > 0:
            raise SpecError("adaptive=False needs first_step > 0 (the fixed step size)")
        if type(log_time) is not bool:
            raise SpecError(f"log_time must be True or False, got {log_time!r}")
        if log_time and not adaptive:
            raise SpecError("log_time=True needs adaptive=True (fixed steps are steps in t)")
        tab = _tableau(method)
        work = tab.n_stages * spec.L * spec.K
        t0 = LOG_TIME_T0 if log_time else 0.0
        h0 = math.log1p(first_step / t0) if log_time else first_step
        plan = (spec, tab, work,
                make_ctrl(JOB_RK, rtol, atol, max_steps, first_slice(B, work), steady_handoff,
                          use_dense, STOP_TIME, h0, adaptive, t0=t0), spec.bundle(CLOCK_T),
                [None])   # stepper.single_entry's answer, once it has one
        if key is not None:
            if len(_PLANS) > 256:
                _PLANS.clear()
            _PLANS[key] = plan
    _, tab, work, ctrl, m, fast = plan
    T = times.size
    t0 = ctrl.t0
    if t0 > 0.0:   # the log clock: the run's stops are tau values
        if T <= 16:   # as Python floats (~1 us, not ~3 for two ufunc calls)
            tl = times.tolist()
            tau = [math.log1p(v / t0) for v in tl]
            stops, last_t, last_tau = np.array(tau), tl[-1], tau[-1]
        else:
            stops = np.log1p(times / t0)
            last_t, last_tau = float(times[-1]), float(stops[-1])
        own = True
    else:
        stops = times
    run = new_run(s0[None] if single else s0, tab.n_dense, stops, copy=False,  # s0: a copy
                  own_stops=own)
    if progress is None or progress is False:
        # None: a bar only for a run that goes on past its first slice
        lazy = None if progress is False else (lambda: _bar(None, B * T, "flow", None))
        if single and fast[0] is None:
            fast[0] = single_entry(run, m, tab, ctrl, work)
        if single and fast[0] is not None:   # drive's own first slice, without its lookups
            wall = run_single(fast[0], run, m, tab, ctrl, work, "flow", lazy)
        else:
            wall = drive(run, m, tab, ctrl, work_per_step=work, what="flow", fresh=True,
                         lazy_bar=lazy)
    else:
        with _bar(progress, B * T, "flow") as bar:
            wall = drive(run, m, tab, ctrl, bar=None if bar is _NULL_BAR else bar,
                         work_per_step=work, what="flow", fresh=True)
    if single:   # one row as a list, four one-entry lists (~1.5 us less than a batch's)
        i0, f0 = run.ist[0].tolist(), run.fs[0].tolist()
        status = STATUS_MESSAGES[i0[I_STATUS]]
        acc, rej, t_r, t_s = [i0[I_NACC]], [i0[I_NREJ]], [f0[F_T]], [f0[F_TSTEADY]]
        out_s, out_loss, out_mm = run.out_s[0], run.out_loss[0], run.out_mm[0]
    else:
        ist, fs = run.ist.T.tolist(), run.fs.T.tolist()   # one conversion each, then lists
        status = [STATUS_MESSAGES[st] for st in ist[I_STATUS]]
        acc, rej, t_r, t_s = ist[I_NACC], ist[I_NREJ], fs[F_T], fs[F_TSTEADY]
        out_s, out_loss, out_mm = run.out_s, run.out_loss, run.out_mm
    if t0 > 0.0:   # tau back to t
        # the final stop is hit exactly: report its t exactly
        t_r = [last_t if v == last_tau else t0 * math.expm1(v) for v in t_r]
        t_s = [t0 * math.expm1(v) if v >= 0.0 else v for v in t_s]
    stats = {"accepted_steps": acc, "rejected_steps": rej, "t_reached": t_r, "t_steady": t_s,
             "seconds": wall, "method": method, "rtol": rtol, "atol": atol,
             "dense": ctrl.dense != 0, "log_time": t0 > 0.0}
    return Trajectory(spec, times, out_s, out_loss, out_mm, status, stats, kind="flow")


# ------------------------------------------------------------------------- the y clock
#: Largest logit singular value at which margins (differences of logits of size ~z, each with
#: absolute rounding error ~1e-16 z) still fix the weights ``e^{-(m_c - m_min)}`` to ~1e-6.
Z_LIMIT = 1e10
NO_MOVING_MODE = 6
STATUS_MESSAGES.setdefault(NO_MOVING_MODE, "no mode moves (every z_j = 0 apart from mode 0); "
                           "min_j y_j is undefined")


def y_floor(L: int) -> float:
    """Smallest usable stop of :func:`flow_y` at depth L: ``Z_LIMIT^{-(L-2)/L}`` (L = 3:
    4.6e-4, L = 4: 1e-5, L = 8: 3.2e-8). Stops below it get status ``PRECISION``."""
    return float(Z_LIMIT ** (-(L - 2.0) / L))


@dataclass
class YFlow:
    """Result of :func:`flow_y` (B = 1 for a single start).

    Attributes
    ----------
    y : (B, S, K) float        y at each stop; +inf for modes that do not move (mode 0 and
                               z_j = 0); NaN for stops not reached
    tau : (B, S) float         clock time ``tau`` at each stop
    z_at_stop : (B, S, K)      logit singular values at each stop (mode 0 keeps its start value)
    status : (B,) int          0 ok, else a code of ``svdyn.stepper.STATUS_MESSAGES``
    message : list of str      the status messages
    steps : (B,) int           accepted steps
    n_rejected : (B,) int      rejected steps
    y_stops : (S,) float       the stops asked for
    method : str               tableau used
    """

    y: np.ndarray
    tau: np.ndarray
    z_at_stop: np.ndarray
    status: np.ndarray
    message: list
    steps: np.ndarray
    n_rejected: np.ndarray
    y_stops: np.ndarray = dc_field(default_factory=lambda: np.zeros(0))
    method: str = "rodas4"


def flow_y(spec: ModelSpec, z0, y_stops, *, rtol: float = 1e-10, atol: float = 1e-14,
           method: str = "rodas4", max_steps: int = 100_000, progress=None) -> YFlow:
    """Balanced ce flow in the certification clock, stopped where ``min_j y_j`` hits each stop.

    Coordinates ``y_j = z_j^{-(L-2)/L}`` for the modes that move (z_j > 0, j != 0), time
    ``dtau = e^{-m_min(z)} dt``; then ``dy_j/dtau = -(L-2) g_j(z) e^{m_min(z)}`` with ``g =
    -d loss / d z`` (mean loss), formed from the scaled stable softmax residual
    (``svdyn.softmax``), O(1) however large the margins. Paired modes stay bitwise equal.

    Parameters
    ----------
    spec : ModelSpec    depth L >= 3, loss ce, no weight decay
    z0 : (K,) or (B, K) balanced logit singular values, z_j >= 0 (paired modes equal)
    y_stops : (S,)      decreasing positive thresholds of ``min_j y_j``, each reached exactly
                        (dense output + root polish); stops below :func:`y_floor` (L) are not
                        integrated (status ``PRECISION``, NaN there)
    rtol, atol : error tolerances on y
    method : tableau name. Default ``rodas4`` (Rosenbrock, analytic Jacobian): the y clock is
        stiff wherever several margins are nearly active -- the softmax weights switch over
        ``delta y ~ y^{1 + L/(L-2)}``, so the Jacobian grows like ``y^{-1-L/(L-2)}`` (L = 3:
        1.4e7 at y = 0.0126). Explicit pairs then crawl: K = 4, L = 3, z0 = (0, .1, .1, .01)
        with dopri5 stops at y = 0.0126 after 20,000 attempts, while rodas4 reaches y = 5e-4
        (z = 8e9) in 377 steps; where both run they agree (tau to 1e-9).
    max_steps : limit on attempted steps per start

    Returns
    -------
    YFlow
    """
    if spec.L < 3:
        raise ValueError(f"flow_y needs depth L >= 3 (y = z^(-(L-2)/L) is constant at L = "
                         f"{spec.L}); got depth {spec.L}")
    if spec.loss_code[0] != LOSS_CE:
        raise ValueError(f"flow_y needs loss 'ce', got {spec.loss!r}")
    if np.any(spec.lam != 0):
        raise ValueError(f"flow_y needs no weight decay, got {list(spec.weight_decay)}")
    _check_tol(rtol, atol)
    max_steps = _check_max_steps(max_steps)
    tab = _tableau(method, implicit_ok=True)
    z = np.asarray(z0, dtype=np.float64)
    if z.ndim not in (1, 2) or z.shape[-1] != spec.K:
        raise ValueError(f"z0 must have shape (K,) or (B, K) with K = {spec.K}, got {z.shape}")
    if not np.all(np.isfinite(z)) or np.any(z < 0):
        raise ValueError("z0 must be finite and >= 0 (logit singular values)")
    spec.G.check_paired(z, "z0")
    z = spec.G.symmetrise(z)
    Z = z[None] if z.ndim == 1 else z
    stops = np.asarray(y_stops, dtype=np.float64).ravel()
    if stops.size == 0 or not np.all(np.isfinite(stops)) or np.any(stops <= 0):
        raise ValueError("y_stops must be finite positive numbers")
    if np.any(np.diff(stops) >= 0):
        raise ValueError("y_stops must be strictly decreasing")
    L, K = spec.L, spec.K
    B, S = Z.shape[0], stops.size
    moving = (Z > 0) & (np.arange(K) > 0)
    with np.errstate(divide="ignore"):
        Y0 = np.where(moving, Z ** (-(L - 2.0) / L), -1.0)
    usable = stops >= y_floor(L) * (1 - 1e-12)
    n_use = int(usable.sum())
    y = np.full((B, S, K), np.nan)
    tau = np.full((B, S), np.nan)
    status = np.zeros(B, dtype=np.int64)
    steps = np.zeros(B, dtype=np.int64)
    nrej = np.zeros(B, dtype=np.int64)
    live = moving.any(axis=1)
    status[~live] = NO_MOVING_MODE
    if n_use and live.any():
        sel = np.nonzero(live)[0]
        run = new_run(Y0[sel, None, :], tab.n_dense, -stops[:n_use])
        ctrl = make_ctrl(JOB_RK, rtol, atol, max_steps, 1 << 30, False, True, STOP_YMIN)
        m = spec.bundle(CLOCK_Y)
        with _bar(progress, len(sel) * n_use, "flow_y") as bar:
            drive(run, m, tab, ctrl, bar=bar, work_per_step=tab.n_stages * K, what="flow_y")
        y[sel, :n_use] = run.out_s[:, :, 0, :]
        tau[sel, :n_use] = run.out_t
        status[sel] = run.ist[:, I_STATUS]
        steps[sel] = run.ist[:, I_NACC]
        nrej[sel] = run.ist[:, I_NREJ]
    if n_use < S:
        status[status == OK] = PRECISION
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(y > 0, y ** (-L / (L - 2.0)), 0.0)
    zs = np.where(np.isnan(y), np.nan, zs)
    y = np.where(moving[:, None, :] & ~np.isnan(y), y, np.where(np.isnan(y), np.nan, np.inf))
    zs[..., 0] = np.where(np.isnan(tau), np.nan, Z[:, None, 0])
    msgs = []
    for st in status:
        msg = STATUS_MESSAGES[int(st)]
        if st == PRECISION:
            msg = (f"stops below y = {y_floor(L):.3g} (z > {Z_LIMIT:.0e}, where float64 margins "
                   f"lose the e^(m_min - m_c) weights) were not integrated; results up to "
                   f"y = {stops[n_use - 1]:.3g} are kept" if n_use else
                   f"every stop lies below the usable floor y = {y_floor(L):.3g} at L = {L}")
        msgs.append(msg)
    return YFlow(y=y, tau=tau, z_at_stop=zs, status=status, message=msgs, steps=steps,
                 n_rejected=nrej, y_stops=stops, method=method)
