"""Exact reduced maps of momentum, Nesterov, Adam, AdamW, RMSprop and sign-GD (numba, batched).

Heavy ball and Nesterov (torch ``SGD`` conventions, dampening 0) with ``g = dloss/dF`` (weight
decay included in ``g``, as torch's coupled ``weight_decay`` does)::

    v <- beta v + g;   F <- F - lr v                  (momentum)
    v <- beta v + g;   F <- F - lr (g + beta v)       (nesterov)

keep the spectral form ``F_l = R_l diag(s_l) R_{l-1}^T`` for *any* frames: the gradient at a
spectral point is ``R_l diag(-ds_l/dt) R_{l-1}^T`` and the velocity, a linear combination of
past gradients, has the same frames (``derivations/momentum.py`` checks this symbolically).
The reduced map is the same two lines on ``(s, v)`` with ``g = -field(s)``.

Element-wise optimizers (Adam, AdamW, RMSprop, sign-GD) are exact **only** for the ``walsh``
group (``Z_2^m``, entries of ``Q`` all ``+-1/sqrt(K)``), depth ``L >= 2`` and hidden frames that
are signed (partial) permutations: then every nonzero entry of factor ``l`` is
``+- c_l s_{l,j}`` with ``c_1 = 1/sqrt(nK)``, hidden ``c_l = 1``, ``c_L = 1/sqrt(K)``, the
gradient has the same sign pattern with magnitudes ``c_l |g_{l,j}|``, and element-wise moments
``m, v`` are ``c_l m_j``, ``c_l^2 v_j``. Adam's update is then spectral with coefficient
``lr/bc1 * m_j / (c_l sqrt(v_j / bc2) + eps)``. Random orthonormal frames, cyclic or product
groups, or ``L = 1`` break it (entries of unequal size are normalised differently); this module
refuses those cases with a ``SpecError`` -- no reduced result is offered where it is not exact.
In floating point, full-matrix Adam normalises the rounding noise of the exact zeros into
finite steps, so even the exact case leaks (see :mod:`svdyn.stability`).

Status contract as :func:`svdyn.descent.descend`: a trajectory whose state overflows stops with
a status naming the step; later saved points are NaN.
"""
from __future__ import annotations

import math
import time

import numba as nb
import numpy as np

from .descent import check_steps
from .bundle import CLOCK_T
from .field import new_scratch, rhs
from .groups import SpecError
from .result import Trajectory
from .spec import ModelSpec

OPT_GD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAM, OPT_ADAMW, OPT_RMSPROP, OPT_SIGN = range(7)
OPTIMIZERS = {"gd": OPT_GD, "momentum": OPT_MOMENTUM, "nesterov": OPT_NESTEROV,
              "adam": OPT_ADAM, "adamw": OPT_ADAMW, "rmsprop": OPT_RMSPROP, "sign-gd": OPT_SIGN}
ELEMENTWISE = ("adam", "adamw", "rmsprop", "sign-gd")
#: hyper-parameter vector layout passed to the kernels
HP_LR, HP_BETA, HP_BETA1, HP_BETA2, HP_EPS, HP_ALPHA = range(6)


@nb.njit(cache=True)
def _field(y, d, sc, model):
    """The one call of the engine's field kernel (``d = ds/dt``, ``model`` the
    :class:`svdyn.bundle.Model` bundle); returns (loss, min margin)."""
    return rhs(y, d, sc, model)


@nb.njit(cache=True)
def _opt_one(y0, opt, hp, scale, wdec, steps, save_every, out_s, out_loss, out_mm, model):
    """Run ``steps`` optimizer steps from ``y0`` (L, K). Returns (status, steps done)."""
    L, K = y0.shape
    work = new_scratch(K, model.tmax)
    y = y0.copy()
    d = np.empty((L, K))
    m = np.zeros((L, K))
    v = np.zeros((L, K))
    lr = hp[HP_LR]
    beta = hp[HP_BETA]
    b1 = hp[HP_BETA1]
    b2 = hp[HP_BETA2]
    eps = hp[HP_EPS]
    alpha = hp[HP_ALPHA]
    idx = 0
    status = 0
    done = 0
    for it in range(steps + 1):
        loss, mm = _field(y, d, work, model)
        if it % save_every == 0 or it == steps:
            out_s[idx] = y
            out_loss[idx] = loss
            out_mm[idx] = mm
            idx += 1
        if it == steps:
            break
        t = it + 1
        bc1 = 1.0 - b1 ** t
        bc2s = math.sqrt(1.0 - b2 ** t)
        finite = True
        for l in range(L):
            c = scale[l]
            if opt == OPT_ADAMW:
                dec = 1.0 - lr * wdec[l]
                for j in range(K):
                    y[l, j] *= dec
            for j in range(K):
                g = -d[l, j]
                if opt == OPT_GD:
                    upd = g
                elif opt == OPT_MOMENTUM:
                    m[l, j] = beta * m[l, j] + g
                    upd = m[l, j]
                elif opt == OPT_NESTEROV:
                    m[l, j] = beta * m[l, j] + g
                    upd = g + beta * m[l, j]
                elif opt == OPT_ADAM or opt == OPT_ADAMW:
                    m[l, j] += (1.0 - b1) * (g - m[l, j])
                    v[l, j] = b2 * v[l, j] + (1.0 - b2) * g * g
                    upd = (m[l, j] / bc1) / (c * math.sqrt(v[l, j]) / bc2s + eps)
                elif opt == OPT_RMSPROP:
                    v[l, j] = alpha * v[l, j] + (1.0 - alpha) * g * g
                    upd = g / (c * math.sqrt(v[l, j]) + eps)
                else:  # sign-gd
                    upd = (1.0 if g > 0 else (-1.0 if g < 0 else 0.0)) / c
                val = y[l, j] - lr * upd
                y[l, j] = val
                if not np.isfinite(val):
                    finite = False
        done = it + 1
        if not finite:
            status = 3
            break
    while idx < out_s.shape[0]:
        out_s[idx] = np.nan
        out_loss[idx] = np.nan
        out_mm[idx] = np.nan
        idx += 1
    return status, done


@nb.njit(cache=True)
def _opt_into(i, Y0, opt, hp, scale, wdec, steps, save_every, out_s, out_loss, out_mm, info,
              model):
    st, done = _opt_one(Y0[i], opt, hp, scale, wdec, steps, save_every, out_s[i], out_loss[i],
                        out_mm[i], model)
    info[i, 0] = st
    info[i, 1] = done


@nb.njit(cache=True, parallel=True)
def _opt_batch_par(Y0, opt, hp, scale, wdec, steps, save_every, out_s, out_loss, out_mm, info,
                   model):
    for i in nb.prange(Y0.shape[0]):
        _opt_into(i, Y0, opt, hp, scale, wdec, steps, save_every, out_s, out_loss, out_mm, info,
                  model)


@nb.njit(cache=True)
def _opt_batch_ser(Y0, opt, hp, scale, wdec, steps, save_every, out_s, out_loss, out_mm, info,
                   model):
    for i in range(Y0.shape[0]):
        _opt_into(i, Y0, opt, hp, scale, wdec, steps, save_every, out_s, out_loss, out_mm, info,
                  model)


PARALLEL_MIN_BATCH = 8


def entry_scales(spec: ModelSpec) -> np.ndarray:
    """(L,) magnitudes ``c_l`` of the nonzero entries of a unit spectral mode of factor ``l``
    (walsh basis, signed-permutation hidden frames): ``1/sqrt(nK)``, 1, ..., ``1/sqrt(K)``."""
    c = np.ones(spec.L)
    c[0] = 1.0 / math.sqrt(spec.n * spec.K)
    c[-1] = 1.0 / math.sqrt(spec.K)
    return c


def elementwise_exact(spec: ModelSpec) -> tuple[bool, str]:
    """Whether element-wise optimizers keep the spectral form exactly (with signed-permutation
    hidden frames), and why not."""
    if spec.group != "walsh":
        return False, (f"group {spec.group!r}: element-wise optimizers keep the spectral form only "
                       "for the walsh basis (Z_2^m, all entries of Q equal +-1/sqrt(K))")
    if spec.L < 2:
        return False, ("depth 1: the single factor Q diag(s) B^T has entries of unequal size, "
                       "so element-wise normalisation leaves the spectral form; use depth >= 2")
    return True, ("exact for the walsh basis with signed-permutation hidden frames "
                  "(frames='signed-permutation'); not for random orthonormal frames")


def check_hyper(optimizer: str, lr: float, momentum: float, betas, eps: float,
                alpha: float) -> int:
    """Validate optimizer hyper-parameters; return the optimizer code."""
    if optimizer not in OPTIMIZERS:
        raise SpecError(f"--optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    if not (math.isfinite(lr) and lr > 0):
        raise SpecError(f"--lr must be a finite number > 0, got {lr}")
    if optimizer in ("momentum", "nesterov") and not (0.0 <= momentum < 1.0):
        raise SpecError(f"--momentum must lie in [0, 1), got {momentum}")
    b1, b2 = betas
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise SpecError(f"--betas must lie in [0, 1), got {b1}, {b2}")
    if not (math.isfinite(eps) and eps >= 0):
        raise SpecError(f"--eps must be a finite number >= 0, got {eps}")
    if not (0.0 <= alpha < 1.0):
        raise SpecError(f"--alpha must lie in [0, 1), got {alpha}")
    return OPTIMIZERS[optimizer]


def optimize(spec: ModelSpec, s0, lr: float, steps: int, optimizer: str = "momentum",
             momentum: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8, alpha: float = 0.99,
             save_every: int = 1) -> Trajectory:
    """Exact reduced optimizer map (see the module docstring for exactness).

    Parameters
    ----------
    spec : ModelSpec -- its ``weight_decay`` is coupled (added to the gradient, torch's
        ``weight_decay`` of SGD / Adam / RMSprop), except for ``adamw`` where it is decoupled
        (``F <- F (1 - lr lambda_l)`` before the Adam step, torch's ``AdamW``).
    s0 : (L, K) or (B, L, K) initial singular values; velocity / moments start at 0
    lr : step size > 0
    steps, save_every : as :func:`svdyn.descent.descend`
    optimizer : ``gd``, ``momentum``, ``nesterov``, ``adam``, ``adamw``, ``rmsprop``, ``sign-gd``
    momentum : beta of momentum / nesterov, in [0, 1)
    betas, eps : Adam / AdamW (torch defaults); ``eps`` also RMSprop's
    alpha : RMSprop smoothing constant (torch default 0.99)

    Returns
    -------
    Trajectory (``kind="descent"``, ``times`` = step counts, ``stats["optimizer"]``).
    Raises SpecError for element-wise optimizers where the reduction is not exact.
    """
    code = check_hyper(optimizer, lr, momentum, betas, eps, alpha)
    if optimizer in ELEMENTWISE:
        ok, why = elementwise_exact(spec)
        if not ok:
            raise SpecError(f"--optimizer {optimizer}: no exact reduced map: {why}")
    s0, steps, save_every, times = check_steps(spec, s0, lr, steps, save_every)
    single = s0.ndim == 2
    Y0 = s0[None] if single else s0
    B, T = Y0.shape[0], times.size
    out_s = np.empty((B, T, spec.L, spec.K))
    out_loss = np.empty((B, T))
    out_mm = np.empty((B, T))
    info = np.zeros((B, 2), dtype=np.int64)
    hp = np.array([lr, momentum, betas[0], betas[1], eps, alpha], dtype=np.float64)
    model = spec.bundle(CLOCK_T)
    wdec = np.zeros(spec.L)
    if optimizer == "adamw":  # decoupled: the field runs without weight decay
        wdec = spec.lam.copy()
        model = model._replace(lam=np.zeros(spec.L))
    t0 = time.perf_counter()
    kernel = _opt_batch_par if B >= PARALLEL_MIN_BATCH else _opt_batch_ser
    kernel(Y0, code, hp, entry_scales(spec), wdec, steps, save_every, out_s, out_loss, out_mm,
           info, model)
    wall = time.perf_counter() - t0
    status = ["ok" if st == 0 else f"state became non-finite after step {done}; lower --lr"
              for st, done in info]
    stats = {"steps": steps, "lr": lr, "seconds": wall, "optimizer": optimizer}
    if optimizer in ("momentum", "nesterov"):
        stats["momentum"] = momentum
    if optimizer in ("adam", "adamw"):
        stats.update(betas=list(betas), eps=eps)
    if optimizer == "rmsprop":
        stats.update(alpha=alpha, eps=eps)
    if single:
        return Trajectory(spec, times, out_s[0], out_loss[0], out_mm[0], status[0], stats,
                          kind="descent")
    return Trajectory(spec, times, out_s, out_loss, out_mm, status, stats, kind="descent")


def continuous_limit(spec: ModelSpec, s0, optimizer: str = "momentum", t_end: float = 2.0,
                     lrs=(2e-3, 1e-3, 5e-4, 2.5e-4), momentum: float = 0.9,
                     damping: float | None = None, rtol: float = 1e-12) -> dict:
    """Order of convergence of heavy ball / Nesterov to their continuous-time limits.

    ``damping=None`` (``beta = momentum`` fixed): the limit is gradient flow in the time
    ``t = eta k / (1 - beta)``; reference :func:`svdyn.integrate.flow` at ``t_end``; expected
    order 1 in ``eta``. ``damping=c``: ``beta = 1 - c sqrt(eta)``; the limit is the damped ODE
    ``s'' + c s' = field(s)``, ``s'(0) = 0``, in the time ``tau = k sqrt(eta)`` (scipy DOP853
    reference at ``tau = t_end``); expected order 1/2 in ``eta`` (1 in ``sqrt(eta)``).
    Returns ``{"lrs", "steps", "errors", "order"}`` (order = least-squares slope of
    ``log error`` against ``log eta``; error = max |s_k - s(t)| / max |s(t)|).
    """
    from scipy.integrate import solve_ivp

    from .field import vector_field
    from .integrate import flow
    s0 = spec.check_state(s0, "initial state")
    if damping is None:
        ft = flow(spec, s0, save_at=[0.0, float(t_end)], rtol=rtol, atol=1e-14)
        if ft.status != "ok":
            raise SpecError(f"reference flow failed: {ft.status}")
        ref = ft.s[-1]
    else:
        shape = s0.shape

        def f(_, y):
            x, w = y[:y.size // 2].reshape(shape), y[y.size // 2:]
            return np.concatenate([w, vector_field(spec, x)[0].ravel() - damping * w])

        sol = solve_ivp(f, (0.0, t_end), np.concatenate([s0.ravel(), np.zeros(s0.size)]),
                        method="DOP853", rtol=rtol, atol=1e-14)
        ref = sol.y[:s0.size, -1].reshape(shape)
    errs, steps_l, used = [], [], []
    for eta in lrs:
        if damping is None:
            beta = momentum
            k = int(round(t_end * (1 - beta) / eta))
            eta = t_end * (1 - beta) / k
        else:
            k = int(round(t_end / math.sqrt(eta)))
            eta = (t_end / k) ** 2
            beta = 1.0 - damping * math.sqrt(eta)
        tr = optimize(spec, s0, eta, k, optimizer, momentum=beta, save_every=k)
        errs.append(float(np.max(np.abs(tr.s[-1] - ref)) / np.max(np.abs(ref))))
        steps_l.append(k)
        used.append(eta)
    order = float(np.polyfit(np.log(used), np.log(errs), 1)[0])
    return {"optimizer": optimizer, "limit": "gradient flow, t = eta k / (1 - beta)"
            if damping is None else "s'' + c s' = field(s), tau = k sqrt(eta)",
            "momentum": momentum if damping is None else None, "damping": damping,
            "t_end": t_end, "lrs": used, "steps": steps_l, "errors": errs, "order": order}
