"""The Lyapunov function of the balanced depth-2 cross-entropy flow, and numerical checks.

``V(z) = KL(uniform || q)``, ``q_j = z_j / sum_{k>=1} z_k`` over the non-constant modes
``j = 1..K-1``; ``V >= 0`` with equality exactly at neural collapse (all non-constant ``z_j``
equal). Derived in ``derivations/lyapunov.py`` (report: ``derivations/REPORT.md``):

* any flow, log-rates ``r_j = d log z_j / dt``: ``dV/dt = (1/M) sum_j delta_j r_j`` with
  ``delta_j = z_j / zbar - 1``, ``M = K - 1`` (:func:`rate`);
* balanced depth 2, ce (also with one common weight decay, which shifts every ``r_j`` equally and
  drops out): ``dV/dt = 2 / (sqrt(n) M sum_g m_g) * sum_{g<h} (p_g - p_h)(m_g - m_h) <= 0``,
  zero only at NC (:func:`rate_l2`).

Monotonicity is *not* guaranteed for unbalanced starts or depth >= 3; :func:`check` measures
it along integrated trajectories and reports violations honestly.

The numerical kernels are generated (``svdyn/_generated_kernels.py``).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ._generated_kernels import lyapunov_rate, lyapunov_rate_l2, lyapunov_value
from .field import vector_field
from .groups import SpecError
from .spec import LOSS_CE, ModelSpec

# A rise of V between consecutive saved times counts as a violation only if it exceeds BOTH
# floors: the absolute floor sits above the integration noise of V near NC (V ~ |delta|^2/2, so
# an rtol-level error in z moves V by ~ rtol^2 = 1e-24 at rtol 1e-12), the relative floor above
# the rounding of V itself (a few ulps of V).
ABS_FLOOR = 1e-20
REL_FLOOR = 1e-9
INCREASE_TOL = REL_FLOOR   # old name


def value(z) -> np.ndarray | float:
    """V at logit singular values ``z`` of shape (K,) or (..., K)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        return float(lyapunov_value(np.ascontiguousarray(z)))
    flat = np.ascontiguousarray(z.reshape(-1, z.shape[-1]))
    return np.array([lyapunov_value(row) for row in flat]).reshape(z.shape[:-1])


def log_rates(spec: ModelSpec, s) -> np.ndarray:
    """``r_j = d log z_j / dt = sum_l (ds_{l,j}/dt) / s_{l,j}`` for modes j >= 1 (r_0 = 0)."""
    s = spec.check_state(s)
    if s.ndim != 2:
        raise SpecError("log_rates expects one state (L, K)")
    ds, _, _ = vector_field(spec, s)
    r = np.zeros(spec.K)
    r[1:] = np.sum(ds[:, 1:] / s[:, 1:], axis=0)
    return r


def rate(spec: ModelSpec, s) -> float:
    """dV/dt at a state (L, K) for the model's own flow (any depth, loss, balance)."""
    s = spec.check_state(s)
    z = np.prod(s, axis=0)
    return float(lyapunov_rate(np.ascontiguousarray(z), log_rates(spec, s)))


def margins_of(spec: ModelSpec, z) -> np.ndarray:
    """Margins ``m_g = u_0 - u_g`` (m_0 = 0) of the class-0 column, ``u = C z / (K sqrt n)``."""
    u = spec.G.transform(np.asarray(z, dtype=np.float64)) / (spec.K * math.sqrt(spec.n))
    return u[0] - u


def rate_l2(spec: ModelSpec, z) -> float:
    """Closed-form dV/dt of the balanced depth-2 ce flow at ``z`` (K,) (always <= 0)."""
    if spec.L != 2 or spec.loss_code[0] != LOSS_CE:
        raise SpecError("the closed-form Lyapunov rate holds for depth 2 under ce only")
    return float(lyapunov_rate_l2(margins_of(spec, z), math.sqrt(spec.n)))


def unbalanced_start(spec: ModelSpec, z: np.ndarray, rng: np.random.Generator,
                     spread: float = 0.5) -> np.ndarray:
    """Factors with product ``z`` but unequal: ``s_{l,j} = z_j^(1/L) exp(spread (xi_lj - mean_l xi))``,
    xi standard normal, paired modes equal. z shape (B, K) -> (B, L, K)."""
    B, K = z.shape
    xi = rng.standard_normal((B, spec.L, K))
    xi = xi[:, :, spec.G.partner.clip(max=np.arange(K))]     # paired modes share the draw
    xi -= xi.mean(axis=1, keepdims=True)
    s = spec.balanced(z) * np.exp(spread * xi)
    return np.ascontiguousarray(s)


def _fd_stencil(times_c: np.ndarray, h: np.ndarray) -> np.ndarray:
    return np.stack([times_c - h, times_c - h / 2, times_c + h / 2, times_c + h], axis=1)


def check(spec: ModelSpec, trials: int, init_scale: float, *, unbalanced: bool = False,
          spread: float = 0.5, seed: int = 0, t_end: float = 200.0, n_save: int = 80,
          n_check: int = 20, fd_frac: float = 0.005, rtol: float = 1e-12,
          atol: float = 1e-14, s0=None, abs_floor: float = ABS_FLOOR,
          rel_floor: float = REL_FLOOR) -> dict:
    """Integrate ``trials`` random spectral starts (or the given starts ``s0``, shape (L, K) or
    (B, L, K), in place of the random ones) and test V along them.

    Starts: ``z_j(0) = init_scale * U(0.5, 1.5)`` (paired modes equal, z_0 = 0), balanced, or
    unbalanced by :func:`unbalanced_start`. Saved on a geometric grid of ``n_save`` times in
    ``[t_end 1e-4, t_end]`` plus, around ``n_check`` checkpoints, the stencil
    ``t +- h, t +- h/2`` with ``h = fd_frac t``.

    Returns a dict with
    ``trials``; ``violations`` (trajectories where V rose between two consecutive saved times by
    more than ``abs_floor`` AND by more than ``rel_floor * V``: both floors, so integration noise
    near NC, where V ~ 1e-25, is not counted); ``floors`` ({"abs", "rel"});
    ``raw_rises`` (trajectories with any rise at all, floors ignored); ``max_increase`` (largest relative rise ``(V_{k+1} - V_k)/max(V_k, abs_floor)`` over all
    intervals and trajectories; negative means V fell on every interval);
    ``derivative_rel_err`` (largest ``|a - f| / |a|`` between the analytic dV/dt ``a`` at a
    checkpoint and the fourth-order finite difference ``f`` of V along the integrated
    trajectory); ``derivative_err_vs_terms`` (the same gap divided by the mean size of the terms
    ``|delta_j r_j|/M`` of dV/dt, meaningful where dV/dt changes sign); for depth 2 / ce / balanced also ``closed_form_rel_err`` (closed form vs the
    general rate) and ``max_rate_closed_form`` (must be <= 0); and diagnostics.
    """
    if trials < 1:
        raise SpecError(f"--trials must be >= 1, got {trials}")
    if not (math.isfinite(init_scale) and init_scale > 0):
        raise SpecError(f"--init-scale must be a finite number > 0, got {init_scale}")
    if not (math.isfinite(t_end) and t_end > 0):
        raise SpecError(f"--t-end must be a finite number > 0, got {t_end}")
    for nm, fl in (("--abs-floor", abs_floor), ("--rel-floor", rel_floor)):
        if not (math.isfinite(fl) and fl >= 0):
            raise SpecError(f"{nm} must be a finite number >= 0, got {fl}")
    from .spec import random_init_z
    from .integrate import flow

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    if s0 is None:
        z0 = random_init_z(spec, init_scale, rng, batch=trials)
        s0 = unbalanced_start(spec, z0, rng, spread) if unbalanced else spec.balanced(z0)
    else:
        s0 = spec.check_state(s0, "initial state")
        s0 = s0[None] if s0.ndim == 2 else s0
        trials, z0 = s0.shape[0], np.prod(s0, axis=-2)
    base = np.geomspace(t_end * 1e-4, t_end, n_save)
    centers = base[np.linspace(1, n_save - 2, n_check).astype(int)]
    h = fd_frac * centers
    st = _fd_stencil(centers, h)
    times = np.unique(np.concatenate([[0.0], base, st.ravel(), centers]))
    traj = flow(spec, s0, save_at=times, rtol=rtol, atol=atol)
    S = traj.s                                     # (B, T, L, K)
    Z = np.prod(S, axis=-2)                        # (B, T, K)
    V = value(Z)                                   # (B, T)
    ok = np.array([x == "ok" for x in traj.status])
    dV = np.diff(V, axis=1)
    # relative rise, measured against V or the absolute floor, whichever is larger (V can be
    # exactly 0 at NC, where a 1e-26 rise would otherwise read as a relative rise of 1e274)
    rel_inc = dV / np.maximum(np.abs(V[:, :-1]), max(abs_floor, 1e-300))
    big = (dV > abs_floor) & (dV > rel_floor * np.abs(V[:, :-1]))
    viol = np.any(big, axis=1) & ok
    raw = np.any(dV > 0, axis=1) & ok
    # analytic vs finite difference at the checkpoints
    idx_c = np.searchsorted(times, centers)
    idx_st = np.searchsorted(times, st)
    closed_l2 = spec.L == 2 and spec.loss_code[0] == LOSS_CE and not unbalanced \
        and bool(np.allclose(s0, s0[:, :1, :], rtol=1e-12, atol=0)) \
        and len(set(spec.weight_decay)) == 1
    errs, errs_sc, cf_errs, cf_max = [], [], [], -np.inf
    for b in np.flatnonzero(ok):
        for c, ic in enumerate(idx_c):
            a = rate(spec, S[b, ic])
            v = V[b, idx_st[c]]
            f = (v[0] - 8.0 * v[1] + 8.0 * v[2] - v[3]) / (6.0 * h[c])
            errs.append(abs(a - f) / abs(a) if a != 0 else (0.0 if f == 0 else np.inf))
            zc = Z[b, ic]
            terms = np.abs((zc[1:] / zc[1:].mean() - 1.0) * log_rates(spec, S[b, ic])[1:])
            errs_sc.append(abs(a - f) / max(terms.mean(), 1e-300))
            if closed_l2:
                acf = rate_l2(spec, Z[b, ic])
                cf_max = max(cf_max, acf)
                cf_errs.append(abs(acf - a) / abs(a) if a != 0 else abs(acf))
    worst = int(np.argmax(np.where(ok, rel_inc.max(axis=1), -np.inf)))
    k = int(np.argmax(rel_inc[worst]))
    out = {
        "trials": int(trials),
        "violations": int(viol.sum()),
        "floors": {"abs": float(abs_floor), "rel": float(rel_floor)},
        "raw_rises": int(raw.sum()),
        "max_increase": float(np.max(rel_inc[ok])) if ok.any() else None,
        "derivative_rel_err": float(np.max(errs)) if errs else None,
        "config": {**spec.to_dict(), "init_scale": init_scale, "unbalanced": bool(unbalanced),
                   "spread": spread if unbalanced else 0.0, "seed": seed, "t_end": t_end,
                   "rtol": rtol, "atol": atol, "n_save": int(times.size),
                   "n_check": int(n_check), "fd_frac": fd_frac},
        "failed_trajectories": int((~ok).sum()),
        "max_increase_abs": float(np.max(dV[ok])) if ok.any() else None,
        "V_start_mean": float(np.mean(V[ok, 0])) if ok.any() else None,
        "V_end_mean": float(np.mean(V[ok, -1])) if ok.any() else None,
        "derivative_rel_err_median": float(np.median(errs)) if errs else None,
        "derivative_points": len(errs),
        "derivative_err_vs_terms": float(np.max(errs_sc)) if errs_sc else None,
        "worst": {"trial": worst, "t0": float(times[k]), "t1": float(times[k + 1]),
                  "V0": float(V[worst, k]), "V1": float(V[worst, k + 1]),
                  "z_init": z0[worst].tolist(), "s_init": s0[worst].tolist()},
        "seconds": time.perf_counter() - t0,
    }
    if (ok & viol).any():      # the largest rise that counts, for the record
        bigd = np.where(big & ok[:, None], dV, -np.inf)
        bi, bk = np.unravel_index(int(np.argmax(bigd)), bigd.shape)
        out["max_counted_increase"] = {"abs": float(dV[bi, bk]), "V0": float(V[bi, bk]),
                                       "rel": float(rel_inc[bi, bk])}
    if closed_l2:
        out["closed_form_rel_err"] = float(np.max(cf_errs)) if cf_errs else None
        out["max_rate_closed_form"] = float(cf_max)
    return out
