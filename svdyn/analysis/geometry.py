"""Limit geometry of reduced trajectories: direction, ranks, margins, and an honest classification.

Late-phase invariant (balanced factors, cross-entropy, L > 2). With ``dz_j/dt = L z_j^(2-2/L)
g_j`` (``g = -d loss/d z >= 0`` for walsh; for paired groups ``g_j`` is a non-negative sum too),
the variable ``y_j = z_j^(-(L-2)/L)`` obeys exactly

    dy_j/dt = -(L - 2) g_j(z).

So ``y_j`` decreases monotonically and ``y_j(inf) = y_j(t) - (L-2) int_t^inf g_j``: every mode
either grows without bound (``y_j -> 0``, a *live* mode, in the support of the limit code) or
converges to a finite value (``y_j(inf) > 0``, a *dead* mode). In the late phase the direction
of ``g`` converges (it is the softmax weight on the minimum-margin classes), so
``int_t^inf g_j ~ g_j(t) * rho(t)`` with one scalar rho(t); live modes then all have the same
``kappa_j = y_j / g_j = (L-2) rho``, and the extrapolated limit is

    y_j(inf) ~ g_j (kappa_j - kappa_min),       i.e.  y_j(inf)/y_j(t) ~ 1 - kappa_min/kappa_j.

A mode is classified live when ``kappa_j <= (1 + tol) kappa_min`` (default tol = 0.5): for live
modes the ratio tends to 1, for dead ones it grows without bound (like a power of the margin,
or exponentially when the dead mode's own gradient dies faster). The method's error is reported
as the change of the extrapolated ``y_j(inf)/y_j(t)`` between two late saved times and as the
log-gap between the largest live and the smallest dead ``kappa`` ratio. ``g`` is evaluated in
scaled form ``g_j e^(m_min) ~ sum_c (1 - C[c, j]) e^-(m_c - m_min)`` so no margin underflows.

For ``L <= 2`` the spectral max-margin optimum is NC (unique), all modes live; the classifier
then reports the numerical rank of the direction and labels the limit NC when the direction is
within ``tol`` of uniform over the non-constant modes.
"""
from __future__ import annotations

import math

import numpy as np

from ..groups import Group
from ..ranks import effective_rank, numerical_rank, stable_rank
from .maxmargin import margin_matrix


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
    m = np.asarray(z, float) @ margin_matrix(G, n).T
    return m.min(axis=-1) / quasi_norm(z, L) ** (L / 2.0)


def kappa_ratios(G: Group, z, L: float, n: int = 1) -> np.ndarray:
    """``kappa_j / min kappa`` over non-constant modes (inf where z_j = 0: pinned dead)."""
    z = np.asarray(z, float)
    gs, _ = scaled_gradient(G, z, n)
    zz, gg = z[..., 1:], gs[..., 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        logk = -((L - 2.0) / L) * np.log(zz) - np.log(gg)
    logk = np.where((zz > 0) & (gg > 0), logk, np.inf)
    return np.exp(logk - logk.min(axis=-1, keepdims=True))


def describe(G: Group, z: np.ndarray, L: float, n: int = 1, rank_rel: float = 0.1) -> dict:
    """Static geometry of one state z (K,): direction, ranks, margins, support at ``rank_rel``."""
    z = np.asarray(z, float)
    zz = z[1:]
    nrm = np.linalg.norm(zz)
    m = z @ margin_matrix(G, n).T
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


def classify_state(G: Group, z: np.ndarray, L: float, n: int = 1, tol: float = 0.5) -> dict:
    """Limit class predicted from one late state (see module docstring).

    Returns ``{"label": "NC" | "rank-r code", "rank", "support", "kappa_ratio",
    "y_limit_fraction", "log_gap"}``; ``log_gap`` is ``log`` of (smallest dead kappa ratio) /
    (largest live kappa ratio) (inf when every mode is live).
    """
    z = np.asarray(z, float)
    K = G.K
    if L <= 2:
        zz = z[1:]
        d = zz / zz.max() if zz.max() > 0 else zz
        live = np.nonzero(zz > 0)[0] + 1
        nc = bool(np.all(np.abs(d - 1.0) <= tol) and live.size == K - 1)
        return {"label": "NC" if nc else f"rank-{live.size} (not NC yet)",
                "rank": int(live.size), "support": live.tolist(), "nc": nc,
                "kappa_ratio": None, "y_limit_fraction": None,
                "log_gap": float("inf") if nc else 0.0, "method": "L<=2: NC is the unique limit; "
                "checked as direction within tol of uniform"}
    kr = kappa_ratios(G, z, L, n)
    live = kr <= 1.0 + tol
    frac = np.where(np.isfinite(kr), 1.0 - 1.0 / kr, 1.0)
    lg = (math.log(kr[~live].min()) - math.log(kr[live].max())) if np.any(~live) else math.inf
    supp = (np.nonzero(live)[0] + 1).tolist()
    nc = len(supp) == K - 1
    return {"label": "NC" if nc else f"rank-{len(supp)} code", "rank": len(supp),
            "support": supp, "nc": nc, "kappa_ratio": kr.tolist(),
            "y_limit_fraction": frac.tolist(), "log_gap": float(lg),
            "method": "late-phase invariant y=z^-(L-2)/L, kappa=y/g"}


def classify_trajectory(traj, tol: float = 0.5, rank_rel: float = 0.1) -> dict:
    """Limit geometry of a saved (single) Trajectory: geometry of the last state, the
    classification at the last and at an earlier late state (the last time with at most half
    the final log-time), and the change of the extrapolated ``y(inf)/y(t)`` between them as the
    method's error estimate. ``decided`` is true when both agree and ``log_gap > log 2``."""
    spec = traj.spec
    G, L, n = spec.G, spec.L, spec.n
    z = np.asarray(traj.z, float)
    ok = np.all(np.isfinite(z), axis=-1)
    idx = np.nonzero(ok)[0]
    if idx.size == 0:
        raise ValueError("trajectory has no finite state")
    last = int(idx[-1])
    t = np.asarray(traj.times, float)
    tl = t[last]
    earlier = [i for i in idx if t[i] > 0 and t[i] <= math.sqrt(tl)] if tl > 1 else []
    early = int(earlier[-1]) if earlier else int(idx[max(0, idx.size // 2)])
    c_last = classify_state(G, z[last], L, n, tol)
    c_early = classify_state(G, z[early], L, n, tol)
    err = None
    if c_last["y_limit_fraction"] is not None:
        err = float(np.max(np.abs(np.asarray(c_last["y_limit_fraction"])
                                  - np.asarray(c_early["y_limit_fraction"]))))
    decided = (c_last["support"] == c_early["support"] and c_last["log_gap"] > math.log(2.0))
    return {"spec": spec.to_dict(), "time": float(tl), "geometry": describe(G, z[last], L, n,
                                                                           rank_rel),
            "classification": c_last, "earlier_time": float(t[early]),
            "earlier_classification": {k: c_early[k] for k in ("label", "support", "log_gap")},
            "extrapolation_change": err, "decided": bool(decided),
            "loss": float(np.asarray(traj.loss)[last]),
            "min_margin": float(np.asarray(traj.min_margin)[last])}
