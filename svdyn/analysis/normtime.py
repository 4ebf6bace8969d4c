"""Gradient flow in normalised time, for reading off the limit of a CE trajectory honestly.

Under unregularised cross-entropy the reduced flow is (``MODEL.md`` section 2)

    ds_{l,j}/dt = g_j prod_{m != l} s_{m,j},   g_j = (1/(K sqrt n)) sum_c (1 - C[c,j]) p_c,

``p_c = e^{-m_c} / (1 + sum_c' e^{-m_c'})``. Late in training ``g ~ e^{-m_min}`` and the flow
crawls (margins grow like log t). With the time change

    d tau / d t = e^{-m_min} / (1 + sum_c e^{-m_c})

the field becomes ``ds_{l,j}/dtau = (1/(K sqrt n)) sum_c (1 - C[c,j]) e^{-(m_c - m_min)}
prod_{m != l} s_{m,j}``: the same orbits, the weights ``e^{-(m_c - m_min)}`` lie in (0, 1] and
never underflow as a whole, and margins of 10^6 are reached in a few hundred adaptive steps
(for L >= 3 the live modes blow up at a finite tau, see ``geometry.py``). This clock is
``svdyn.bundle.CLOCK_NORM`` of the one stepper (``svdyn.stepper``; margins and the scaled
residual by the fast transform, ``svdyn.softmax``, O(K log K)); the run stops where the
minimum margin reaches ``m_end`` exactly (dense output + root polish) and records the state
where it reaches ``m_mid``.

The growth exponent of each mode over that stretch,

    e_j = log(z_j(end) / z_j(mid)) / log(m_min(end) / m_min(mid)),

tends to 1 for live modes (z_j proportional to the margin) and to 0 for dead ones (z_j
converging); see :func:`svdyn.analysis.geometry.classify_states`.
"""
from __future__ import annotations

import math

import numpy as np

from ..bundle import CLOCK_NORM, F_T, I_NACC, I_STATUS, JOB_RK, STOP_MARGIN, make_ctrl, new_run
from ..groups import SpecError
from ..softmax import margins
from ..spec import LOSS_CE, ModelSpec
from ..stepper import drive
from ..tableaux import TABLEAUX

OK, MAX_STEPS, STEP_TOO_SMALL, NON_FINITE = 0, 1, 2, 3
STATUS = {OK: "ok", MAX_STEPS: "max_steps reached before m_end",
          STEP_TOO_SMALL: "step size underflow", NON_FINITE: "non-finite state"}


def check_spec(spec: ModelSpec) -> None:
    if spec.loss_code[0] != LOSS_CE or np.any(spec.lam != 0):
        raise SpecError("limit classification needs unregularised cross-entropy (--loss ce, "
                        "--weight-decay 0): with weight decay or MSE the flow converges to a "
                        "finite critical point, whose geometry `svdyn flow` reports directly")


def run_to_margin(spec: ModelSpec, s0, m_mid: float = 1e4, m_end: float = 1e6,
                  rtol: float = 1e-9, atol: float = 1e-14, max_steps: int = 1_000_000,
                  method: str = "dopri5") -> dict:
    """Integrate (L, K) or (B, L, K) initial states in normalised time up to ``m_min = m_end``.

    Returns ``{"z_mid", "m_mid", "z_end", "m_end", "status", "steps", "tau"}`` (arrays with a
    leading batch axis when s0 is a batch). Where the start already exceeds ``m_mid`` the
    start itself is recorded as the mid state. ``max_steps`` limits attempted steps; a failed
    run reports the state where it stopped as ``z_end``.
    """
    check_spec(spec)
    s0 = spec.check_state(s0)
    if not (0 < m_mid < m_end and math.isfinite(m_end)):
        raise SpecError(f"need 0 < m_mid < m_end, got {m_mid}, {m_end}")
    single = s0.ndim == 2
    S = s0[None] if single else s0
    tab = TABLEAUX[method]
    run = new_run(S, tab.n_dense, [float(m_mid), float(m_end)])
    ctrl = make_ctrl(JOB_RK, rtol, atol, max_steps, 1 << 30, False, True, STOP_MARGIN)
    drive(run, spec.bundle(CLOCK_NORM), tab, ctrl, work_per_step=tab.n_stages * spec.L * spec.K,
          what="classify")
    zs = np.prod(run.out_s, axis=-2)  # (B, 2, K)
    zmid, zend = zs[:, 0].copy(), zs[:, 1].copy()
    mmid, mend = run.out_mm[:, 0].copy(), run.out_mm[:, 1].copy()
    tau = run.out_t[:, 1].copy()
    st = run.ist[:, I_STATUS]
    bad = np.isnan(mend)  # failed: report where it stopped
    if bad.any():
        zend[bad] = np.prod(run.y[bad], axis=-2)
        mend[bad] = margins(spec.G, zend[bad], spec.n).min(axis=-1)
        tau[bad] = run.fs[bad, F_T]
    out = {"z_mid": zmid, "m_mid": mmid, "z_end": zend, "m_end": mend,
           "status": [STATUS.get(int(x), "non-finite state") for x in st],
           "steps": run.ist[:, I_NACC].astype(int), "tau": tau}
    if single:
        out = {k: v[0] for k, v in out.items()}
    return out
