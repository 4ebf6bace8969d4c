"""The exact gradient-descent map of the reduced model (numba, batched, parallel over the batch).

Under spectral initialisation full-batch gradient descent on all factors at once,
``F_l <- F_l - lr dloss/dF_l``, keeps the frames frozen for *any* step size, so
``s <- s + lr * field(s)`` reproduces it exactly (``tests/test_descent.py`` checks this against
full matrices to 1e-12).
"""
from __future__ import annotations

import time

import numba as nb
import numpy as np

from .field import N_WORK, rhs
from .groups import SpecError
from .result import Trajectory
from .spec import ModelSpec


@nb.njit(cache=True)
def _descend_one(y0, lr, steps, save_every, out_s, out_loss, out_mm,
                 kind, dims, cs, sn, offs, code, eps, n, lam):
    """Run ``steps`` GD steps; save at steps 0, k, 2k, ... and the last. Returns (status, step)."""
    L, K = y0.shape
    work = np.empty((N_WORK + 2, K))
    y = y0.copy()
    d = np.empty((L, K))
    idx = 0
    status = 0
    done = 0
    for it in range(steps + 1):
        loss, mm = rhs(y, d, work, kind, dims, cs, sn, offs, code, eps, n, lam)
        if it % save_every == 0 or it == steps:
            out_s[idx] = y
            out_loss[idx] = loss
            out_mm[idx] = mm
            idx += 1
        if it == steps:
            break
        finite = True
        for l in range(L):
            for j in range(K):
                v = y[l, j] + lr * d[l, j]
                y[l, j] = v
                if not np.isfinite(v):
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
def _descend_into(i, Y0, lr, steps, save_every, out_s, out_loss, out_mm, info,
                  kind, dims, cs, sn, offs, code, eps, n, lam):
    st, done = _descend_one(Y0[i], lr, steps, save_every, out_s[i], out_loss[i], out_mm[i],
                            kind, dims, cs, sn, offs, code, eps, n, lam)
    info[i, 0] = st
    info[i, 1] = done


@nb.njit(cache=True, parallel=True)
def _descend_batch_par(Y0, *args):
    for i in nb.prange(Y0.shape[0]):
        _descend_into(i, Y0, *args)


@nb.njit(cache=True)
def _descend_batch_ser(Y0, *args):
    for i in range(Y0.shape[0]):
        _descend_into(i, Y0, *args)


PARALLEL_MIN_BATCH = 8  # entering a parallel region costs ~15 ms here (see integrate.py)


def save_steps(steps: int, save_every: int) -> np.ndarray:
    """Step counts at which :func:`descend` saves: 0, k, 2k, ..., and ``steps``."""
    t = np.arange(0, steps + 1, save_every)
    if t[-1] != steps:
        t = np.append(t, steps)
    return t.astype(float)


def descend(spec: ModelSpec, s0, lr: float, steps: int, save_every: int = 1) -> Trajectory:
    """Exact reduced gradient descent.

    Parameters
    ----------
    spec : ModelSpec
    s0 : (L, K) or (B, L, K) initial singular values
    lr : step size eta > 0
    steps : number of steps >= 0
    save_every : save every k-th step (the last step is always saved)

    Returns
    -------
    Trajectory (``kind="descent"``, ``times`` = step counts). A trajectory whose state overflows
    stops with a status saying at which step; later saved points are NaN.
    """
    s0 = spec.check_state(s0, "initial state")
    if not (np.isfinite(lr) and lr > 0):
        raise SpecError(f"--lr must be a finite number > 0, got {lr}")
    if int(steps) != steps or steps < 0:
        raise SpecError(f"--steps must be an integer >= 0, got {steps}")
    if int(save_every) != save_every or save_every < 1:
        raise SpecError(f"--save-every must be an integer >= 1, got {save_every}")
    steps, save_every = int(steps), int(save_every)
    times = save_steps(steps, save_every)
    single = s0.ndim == 2
    Y0 = s0[None] if single else s0
    B, T = Y0.shape[0], times.size
    out_s = np.empty((B, T, spec.L, spec.K))
    out_loss = np.empty((B, T))
    out_mm = np.empty((B, T))
    info = np.zeros((B, 2), dtype=np.int64)
    t0 = time.perf_counter()
    kernel = _descend_batch_par if B >= PARALLEL_MIN_BATCH else _descend_batch_ser
    kernel(Y0, float(lr), steps, save_every, out_s, out_loss, out_mm, info,
                   *spec.kernel_args())
    wall = time.perf_counter() - t0
    status = ["ok" if st == 0 else f"state became non-finite after step {done}; lower --lr"
              for st, done in info]
    stats = {"steps": steps, "lr": lr, "seconds": wall}
    if single:
        return Trajectory(spec, times, out_s[0], out_loss[0], out_mm[0], status[0], stats,
                          kind="descent")
    return Trajectory(spec, times, out_s, out_loss, out_mm, status, stats, kind="descent")
