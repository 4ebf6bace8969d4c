"""Basins of attraction of the limit codes over spectral initialisations.

* K = 4 plane: balanced spectral init ``z(0) = eps * (0, 1, 1, r)`` (walsh modes 0..3). Modes 1
  and 2 stay equal (the flow is equivariant under swapping them), so the limit is either NC or
  the square code on modes {1, 2} (mode 3 dead). ``r = 1`` is NC by symmetry; the critical ratio
  ``r_c(eps, L)`` separates the square (r < r_c) from NC (r > r_c). At L = 2 every r > 0 gives
  NC ([H]), so r_c = 0.
* Monte Carlo for larger K: ``z_j(0) = eps * U(0.5, 1.5)`` on the non-constant modes (paired
  modes equal), the distribution of the limit rank.

Every limit is classified by continuing the flow in normalised time to huge margins
(``geometry.classify_states``); maps record the classifier's error (growth-exponent distance)
and count the undecided points (error > 0.25).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..groups import SpecError
from ..spec import ModelSpec
from .geometry import classify_states

UNDECIDED = 0.25


def k4_states(spec: ModelSpec, eps, r) -> np.ndarray:
    """Balanced states for ``z = eps * (0, 1, 1, r)``; eps and r broadcast to (B,)."""
    eps, r = np.broadcast_arrays(np.asarray(eps, float), np.asarray(r, float))
    z = np.zeros(eps.shape + (4,))
    z[..., 1] = eps
    z[..., 2] = eps
    z[..., 3] = eps * r
    return spec.balanced(z.reshape(-1, 4))


def _k4_spec(depth: int, n: int = 1) -> ModelSpec:
    return ModelSpec(4, depth, samples_per_class=n, group="walsh")


def k4_map(depth: int, eps_grid, r_grid, m_mid=1e2, m_end=1e4, max_end=1e6) -> dict:
    """Classify the K = 4 plane on the grid (eps rows, r columns); ``rank`` (E, R) in {2, 3}."""
    spec = _k4_spec(depth)
    E, R = np.meshgrid(np.asarray(eps_grid, float), np.asarray(r_grid, float), indexing="ij")
    t0 = time.perf_counter()
    c = classify_states(spec, k4_states(spec, E.ravel(), R.ravel()), m_mid, m_end,
                        max_end=max_end)
    wall = time.perf_counter() - t0
    shp = E.shape
    return {"depth": depth, "eps": list(map(float, eps_grid)), "r": list(map(float, r_grid)),
            "rank": c["rank"].reshape(shp).tolist(), "error": c["error"].reshape(shp).tolist(),
            "nc_fraction": float(np.mean(c["nc"])), "undecided": int(np.sum(c["error"] >
                                                                              UNDECIDED)),
            "failed": int(sum(st != "ok" for st in c["status"])), "n": int(E.size),
            "seconds": wall, "m_mid": m_mid, "m_end": m_end, "max_end": max_end,
            "extended": int(np.sum(c["horizon"] > m_end * (1 + 1e-9)))}


def _section_search(depth, eps, r_max, tol, points, m_mid, m_end, max_rounds=10):
    """Bracket of the NC threshold in r. Returns (midpoint, bracket, max classifier error,
    fuzz): if, at a fixed horizon, the outcomes on a round's grid are not monotone (a mode
    whose growth exponent sits near the 1/2 threshold), the bracket keeps every flip and
    ``fuzz`` records the widest such non-monotone band."""
    spec = _k4_spec(depth)
    lo, hi = 0.0, float(r_max)
    first = True
    max_err, fuzz = 0.0, 0.0
    for _ in range(max_rounds):
        if hi - lo <= tol:
            break
        rs = np.linspace(lo, hi, points + 1)[1:] if first else np.linspace(lo, hi, points + 2)[1:-1]
        c = classify_states(spec, k4_states(spec, eps, rs), m_mid, m_end, adaptive=False)
        nc = c["nc"]
        max_err = max(max_err, float(np.max(c["error"])))
        if first and not nc[-1]:
            raise SpecError(f"limit at r = r_max = {r_max} is not NC; raise --r-max")
        if not nc.any():
            lo = float(rs[-1])
            continue
        k = int(np.argmax(nc))  # first NC
        bad = np.nonzero(~nc)[0]
        last_sq = int(bad[-1]) if bad.size else -1
        new_lo = lo if k == 0 else float(rs[k - 1])
        new_hi = float(rs[k]) if last_sq < k else float(rs[min(last_sq + 1, rs.size - 1)])
        if last_sq > k:
            fuzz = max(fuzz, float(rs[last_sq] - rs[k]))
        lo, hi = new_lo, new_hi
        first = False
    return 0.5 * (lo + hi), [lo, hi], max_err, fuzz


def k4_critical_ratio(depth: int, eps: float, r_max: float = 1.0, tol: float = 1e-4,
                      points: int = 16, m_mid=None, m_end=None,
                      horizons=(1e3, 1e4, 1e5)) -> dict:
    """``r_c(eps, L)``: the smallest r whose limit is NC.

    Each horizon M gives ``r_c(M)`` by batched section search on ``(0, r_max]`` (each round
    classifies ``points`` ratios in one batch, limits read over margins M/100..M; ``tol``
    absolute). A mode that dies only slowly looks live at a finite horizon, so ``r_c(M)``
    creeps up with M; near the separatrix the dead mode's limit ``y_3(inf)`` is linear in
    ``r - r_c``, which makes the finite-horizon error decay like ``M^(-(L-2)/L)``. The reported
    ``critical_ratio`` is the Aitken extrapolation of the three horizons (or the largest
    horizon's value when the differences are not geometric), ``horizon_error`` the distance
    between the Aitken value and the extrapolation with the theoretical ratio
    ``q = 10^(-(L-2)/L)`` per decade, plus the widest bracket / non-monotone band met.
    Passing ``m_mid, m_end`` uses that single horizon.
    """
    if not (math.isfinite(eps) and eps > 0):
        raise SpecError(f"--init-scale must be a finite number > 0, got {eps}")
    t0 = time.perf_counter()
    if m_end is not None:
        hz = [(m_mid if m_mid is not None else m_end / 100.0, m_end)]
    else:
        hz = [(M / 100.0, M) for M in sorted(horizons)]
    vals, brackets, errs, fuzz = [], [], [], 0.0
    for a, b in hz:
        r, br, e, fz = _section_search(depth, eps, r_max, tol, points, a, b)
        vals.append(r)
        brackets.append(br)
        errs.append(e)
        fuzz = max(fuzz, fz, br[1] - br[0])
    rc, herr = vals[-1], None
    if len(vals) >= 3 and depth > 2:
        d1, d2 = vals[-2] - vals[-3], vals[-1] - vals[-2]
        dec = math.log10(hz[-1][1] / hz[-2][1])
        q = 10.0 ** (-dec * (depth - 2) / depth)
        theo = vals[-1] + d2 * q / (1 - q)
        if d1 != 0 and 0 < d2 / d1 < 1:
            rc = vals[-1] + d2 * d2 / (d1 - d2)
        else:
            rc = theo
        herr = abs(rc - theo) + fuzz
    elif depth <= 2:
        herr = fuzz
    return {"classes": 4, "depth": depth, "init_scale": eps, "critical_ratio": float(rc),
            "horizon_error": herr, "by_horizon": [{"m_mid": a, "m_end": b, "critical_ratio": v,
                                                  "bracket": br}
                                                 for (a, b), v, br in zip(hz, vals, brackets)],
            "bracket": brackets[-1], "tol": tol, "fuzz": fuzz, "max_classifier_error": max(errs),
            "seconds": time.perf_counter() - t0,
            "init": "z(0) = eps * (0, 1, 1, r), balanced, walsh"}


def monte_carlo(K: int, depth: int, eps: float, samples: int, seed: int = 0,
                group: str = "", m_mid=1e2, m_end=1e4, max_end=1e5) -> dict:
    """Rank distribution of the limit over ``z_j(0) = eps * U(0.5, 1.5)`` spectral inits."""
    from ..spec import random_init_z
    spec = ModelSpec(K, depth, group=group)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=samples)
    t0 = time.perf_counter()
    c = classify_states(spec, spec.balanced(z), m_mid, m_end, max_end=max_end)
    ranks = c["rank"]
    hist = {int(r): int(np.sum(ranks == r)) for r in np.unique(ranks)}
    return {"classes": K, "depth": depth, "group": spec.group, "init_scale": eps,
            "samples": samples, "seed": seed, "nc_fraction": float(np.mean(c["nc"])),
            "rank_histogram": hist, "mean_rank": float(np.mean(ranks)),
            "undecided": int(np.sum(c["error"] > UNDECIDED)),
            "failed": int(sum(st != "ok" for st in c["status"])),
            "seconds": time.perf_counter() - t0}
