"""The exact gradient-descent map of the reduced model (batched; the map itself is
``stepper.gd_advance``, run in interruptible slices by the one batch wrapper).

Under spectral initialisation full-batch gradient descent on all factors at once,
``F_l <- F_l - lr dloss/dF_l``, keeps the frames frozen for *any* step size, so
``s <- s + lr * field(s)`` reproduces it exactly (``tests/test_descent.py`` checks this against
full matrices to 1e-12).
"""
from __future__ import annotations

import numpy as np

from .bundle import CLOCK_T, I_NACC, I_STATUS, JOB_GD, make_ctrl, new_run
from .groups import SpecError
from .result import Trajectory
from .spec import ModelSpec
from .stepper import drive
from .tableaux import DOPRI5


def save_steps(steps: int, save_every: int) -> np.ndarray:
    """Step counts at which :func:`descend` saves: 0, k, 2k, ..., and ``steps``."""
    t = np.arange(0, steps + 1, save_every)
    if t[-1] != steps:
        t = np.append(t, steps)
    return t.astype(float)


def check_steps(spec: ModelSpec, s0, lr: float, steps, save_every):
    """Checked arguments of a discrete-time map (GD and the optimizers of
    :mod:`svdyn.optimizers`): ``(s0 copy, steps, save_every, saved step numbers)``."""
    s0 = spec.check_state(s0, "initial state")
    if not (np.isfinite(lr) and lr > 0):
        raise SpecError(f"--lr must be a finite number > 0, got {lr}")
    if int(steps) != steps or steps < 0:
        raise SpecError(f"--steps must be an integer >= 0, got {steps}")
    if int(save_every) != save_every or save_every < 1:
        raise SpecError(f"--save-every must be an integer >= 1, got {save_every}")
    steps, save_every = int(steps), int(save_every)
    return s0, steps, save_every, save_steps(steps, save_every)


def descend(spec: ModelSpec, s0, lr: float, steps: int, save_every: int = 1, *,
            progress=None) -> Trajectory:
    """Exact reduced gradient descent.

    Parameters
    ----------
    spec : ModelSpec
    s0 : (L, K) or (B, L, K) initial singular values
    lr : step size eta > 0
    steps : number of steps >= 0
    save_every : save every k-th step (the last step is always saved)
    progress : None (a bar on stderr iff it is a terminal), True or False

    Returns
    -------
    Trajectory (``kind="descent"``, ``times`` = step counts). A trajectory whose state overflows
    stops with a status saying at which step; later saved points are NaN.
    """
    s0, steps, save_every, times = check_steps(spec, s0, lr, steps, save_every)
    single = s0.ndim == 2
    Y0 = s0[None] if single else s0
    B = Y0.shape[0]
    run = new_run(Y0, 1, times, copy=False)  # s0 is check_state's fresh copy
    ctrl = make_ctrl(JOB_GD, slice_steps=1 << 30, lr=lr, gd_steps=steps, save_every=save_every)
    from .integrate import _NULL_BAR, _bar

    with _bar(progress, B * times.size, "descend") as bar:
        wall = drive(run, spec.bundle(CLOCK_T), DOPRI5, ctrl, bar=None if bar is _NULL_BAR else bar,
                     work_per_step=spec.L * spec.K, what="descend")
    status = ["ok" if st == 0 else f"state became non-finite after step {done}; lower --lr"
              for st, done in zip(run.ist[:, I_STATUS], run.ist[:, I_NACC])]
    stats = {"steps": steps, "lr": lr, "seconds": wall}
    if single:
        return Trajectory(spec, times, run.out_s[0], run.out_loss[0], run.out_mm[0], status[0],
                          stats, kind="descent")
    return Trajectory(spec, times, run.out_s, run.out_loss, run.out_mm, status, stats,
                      kind="descent")
