"""Limit geometry of reduced trajectories: direction, ranks, margins, and an honest classification.

Which modes survive in the limit (the support of the limit code)? Balanced, CE, L > 2: with
``dz_j/dt = L z_j^(2-2/L) g_j`` the variable ``y_j = z_j^(-(L-2)/L)`` obeys exactly
``dy_j/dt = -(L-2) g_j`` with ``g_j >= 0``. So every mode either grows without bound
(``y_j -> 0``: *live*, in the support of the limit) or converges to a finite value (*dead*);
for L = 2 every mode is live (the max-margin optimum is NC, unique). Live modes grow in
proportion to the margin, dead ones stop, but the separation is slow in t: z_dead / z_live
decays only like 1 / margin ~ 1 / log t.

The certified classifier (``certify.py``: y-clock ratios at vanishing thresholds plus a KKT
certificate) supersedes this one for depth >= 3; basins and Monte Carlo use it, and
:func:`classify_trajectory` reports both. The growth-exponent classifier below continues the flow in normalised time (``normtime.py``) to huge
margins (default: from m_min = 1e2 to 1e4, i.e. t ~ e^{10^4}) and measures each mode's growth
exponent ``e_j = dlog z_j / dlog m_min`` over that stretch: live -> 1, dead -> 0
(dead: ``e_j = O(m_mid^{-(L-2)/L} / log 100)``). A mode is live when ``e_j > 1/2``; the
reported error is ``max_j min(|e_j|, |1 - e_j|)``, the distance of the worst mode from its
ideal exponent. A start whose error exceeds 0.25 (a mode dying slowly, near a basin boundary)
is continued 10x further in margin, up to 1e6 by default, and its final error is reported.

A first-order alternative that needs no continuation, ``kappa_j = y_j / g_j``
(equal on live modes when the direction of g has converged), is *not* used: it fails when NC
is approached from an asymmetric side (g's direction keeps turning; e.g. K = 4 with
z = (a, a, b), a > b, gives kappa ratio -> 2 on live modes).
"""
from __future__ import annotations

import math

import numpy as np

from ..groups import Group
from ..ranks import effective_rank, numerical_rank, stable_rank
from .maxmargin import margin_matrix, margins


def scaled_gradient(G: Group, z: np.ndarray, n: int = 1):
    """``(gs (..., K), m (..., K-1))``: ``gs_j = sum_c (1 - C[c,j]) exp(-(m_c - m_min))``
    (proportional to the CE gradient ``g_j`` with a factor common to all j) and the margins."""
    M = margin_matrix(G, n)
    z = np.asarray(z, float)
    m = z @ M.T
    w = np.exp(-(m - m.min(axis=-1, keepdims=True)))
    C1 = 1.0 - G.char_table[1:, :]
    gs = w @ C1
    return gs, m


def quasi_norm(z, L: float) -> np.ndarray:
    """``sum_j z_j^(2/L)`` over the modes (the depth-L Schatten quasi-norm power of Z)."""
    z = np.abs(np.asarray(z, float))
    return np.sum(np.where(z > 0, z, 0.0) ** (2.0 / L), axis=-1)


def normalised_margin(G: Group, z, L: float, n: int = 1) -> np.ndarray:
    """Scale-invariant margin ``m_min / (sum_j z_j^(2/L))^(L/2)``; its maximum over directions
    is ``cost*^(-L/2)`` with ``cost*`` the optimum of the spectral max-margin problem."""
    m = margins(G, z, n)
    return m.min(axis=-1) / quasi_norm(z, L) ** (L / 2.0)


def describe(G: Group, z: np.ndarray, L: float, n: int = 1, rank_rel: float = 0.1) -> dict:
    """Static geometry of one state z (K,): direction, ranks, margins, support at ``rank_rel``."""
    z = np.asarray(z, float)
    zz = z[1:]
    nrm = np.linalg.norm(zz)
    m = margins(G, z, n)
    direction = zz / nrm if nrm > 0 else zz
    nc_dir = np.full(G.K - 1, 1.0 / math.sqrt(G.K - 1))
    return {"direction": direction.tolist(),
            "distance_to_nc_direction": float(np.linalg.norm(direction - nc_dir)),
            "numerical_rank": int(numerical_rank(zz, rank_rel)),
            "effective_rank": float(effective_rank(zz)),
            "stable_rank": float(stable_rank(zz)),
            "min_margin": float(m.min()),
            "normalised_margin": float(normalised_margin(G, z, L, n)),
            "support_threshold": [int(j) + 1 for j in np.nonzero(zz > rank_rel * zz.max())[0]]
            if nrm > 0 else []}


DECIDED = 0.25  # a classification is "decided" when every exponent is this close to 0 or 1


def _exponents(o):
    with np.errstate(divide="ignore", invalid="ignore"):
        ex = (np.log(o["z_end"][:, 1:] / o["z_mid"][:, 1:])
              / np.log(o["m_end"] / o["m_mid"])[:, None])
    return np.where(np.isfinite(ex), ex, 0.0)


def classify_states(spec, s, m_mid: float = 1e2, m_end: float = 1e4, adaptive: bool = True,
                    max_end: float = 1e6, **kw) -> dict:
    """Classify the limit of the flow from state(s) s (L, K) or (B, L, K): continue in
    normalised time to ``m_min = m_end`` and read the growth exponents over margins
    ``m_mid..m_end``. With ``adaptive`` the horizon of every undecided state (error >
    ``DECIDED``) is pushed 10x further, up to ``max_end``. (Starts whose margin already
    exceeds m_mid / 2 shift the window up.) For a batch returns a dict of arrays: ``live``
    (B, K-1) bool, ``rank`` (B,), ``nc`` (B,), ``error`` (B,), ``horizon`` (B,),
    ``exponents``, ``status`` list, ``steps``."""
    from .normtime import run_to_margin
    s = np.asarray(spec.check_state(s), float)
    single = s.ndim == 2
    S = s[None] if single else s
    m0 = float(np.min(margins(spec.G, S.prod(axis=-2), spec.n)))
    if m0 * 2 > m_mid:
        f = 2 * m0 / m_mid
        m_mid, m_end = m_mid * f, m_end * f
        max_end = max(max_end, m_end)
    B = S.shape[0]
    ex = np.zeros((B, spec.K - 1))
    zend = np.zeros((B, spec.K))
    hor = np.zeros(B)
    status = [""] * B
    steps = np.zeros(B, dtype=int)
    todo = np.arange(B)
    a, b = m_mid, m_end
    while todo.size:
        o = run_to_margin(spec, S[todo], a, b, **kw)
        e = _exponents(o)
        ex[todo] = e
        zend[todo] = o["z_end"]
        hor[todo] = b
        steps[todo] += o["steps"]
        for i, st in zip(todo, o["status"]):
            status[i] = st
        err = np.max(np.minimum(np.abs(e), np.abs(1.0 - e)), axis=1)
        ok = np.array([st == "ok" for st in o["status"]])
        if not adaptive or b * 10 > max_end * (1 + 1e-9):
            break
        todo = todo[(err > DECIDED) & ok]
        a, b = a * 10, b * 10
    live = ex > 0.5
    err = np.max(np.minimum(np.abs(ex), np.abs(1.0 - ex)), axis=1)
    if single:
        supp = (np.nonzero(live[0])[0] + 1).tolist()
        nc = len(supp) == spec.K - 1
        zl = zend[0, 1:] * live[0]
        return {"label": "NC" if nc else f"rank-{len(supp)} code", "nc": nc,
                "rank": len(supp), "support": supp, "exponents": ex[0].tolist(),
                "error": float(err[0]), "decided": bool(err[0] <= DECIDED),
                "horizon": float(hor[0]),
                "limit_direction": (zl / np.linalg.norm(zl)).tolist() if zl.any() else [],
                "status": status[0], "steps": int(steps[0])}
    return {"live": live, "rank": live.sum(axis=1), "nc": live.all(axis=1), "error": err,
            "horizon": hor, "exponents": ex, "status": status, "steps": steps}


def classify_trajectory(traj, m_mid: float = 1e2, m_end: float = 1e4,
                        rank_rel: float = 0.1, max_end: float = 1e6) -> dict:
    """Limit geometry of a saved (single) Trajectory: geometry of its last finite state, the
    growth-exponent classification of its limit (``classification``, finite horizon) and the
    certified limit (``certified``: ``certify.certify_limit(...).item(0)``, a code only with
    a KKT certificate, else ``undecided`` with the reason)."""
    spec = traj.spec
    G, L, n = spec.G, spec.L, spec.n
    s = np.asarray(traj.s, float)
    ok = np.all(np.isfinite(s), axis=(-1, -2))
    idx = np.nonzero(ok)[0]
    if idx.size == 0:
        raise ValueError("trajectory has no finite state")
    last = int(idx[-1])
    z = s[last].prod(axis=0)
    cls = classify_states(spec, s[last], m_mid, m_end, max_end=max_end)
    from .certify import certify_limit
    cert = certify_limit(spec, s[last]).item(0)
    return {"spec": spec.to_dict(), "time": float(np.asarray(traj.times)[last]),
            "geometry": describe(G, z, L, n, rank_rel), "classification": cls,
            "certified": cert,
            "loss": float(np.asarray(traj.loss)[last]),
            "min_margin": float(np.asarray(traj.min_margin)[last])}
