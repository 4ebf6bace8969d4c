"""Basins of attraction of the limit codes over spectral initialisations.

* K = 4 plane: balanced spectral init ``z(0) = eps * (0, 1, 1, r)`` (walsh modes 0..3). Modes 1
  and 2 stay equal (the flow is equivariant under swapping them), so the limit is either NC or
  the square code on modes {1, 2} (mode 3 dead). ``r = 1`` is NC by symmetry; the critical ratio
  ``r_c(eps, L)`` separates the square (r < r_c) from NC (r > r_c). At L = 2 every r > 0 gives
  NC ([H]), so r_c = 0.
* Monte Carlo for larger K: ``z_j(0) = eps * U(0.5, 1.5)`` on the non-constant modes (paired
  modes equal): the NC fraction with a Wilson interval over the *decided* starts, the
  histogram of certified limits by support class, and the undecided count (never folded into
  a fraction).

Every limit is classified by the certified classifier (``certify.certify_limit``): a start is
either a certified code / NC (KKT certificate of a strict local minimum of the spectral
max-margin problem) or undecided with a reason.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..groups import SpecError
from ..spec import ModelSpec
from .certify import certify_limit

#: the K = 4 ratio flow has one active margin pair that stays equal by symmetry, so margins stay
#: exact to z ~ 1e12 (see certify.py); brackets use this last stop
K4_Z_FINAL = 1e12


def k4_states(spec: ModelSpec, eps, r) -> np.ndarray:
    """Balanced states for ``z = eps * (0, 1, 1, r)``; eps and r broadcast to (B,)."""
    return spec.balanced(k4_z(eps, r))


def k4_z(eps, r) -> np.ndarray:
    """``z = eps * (0, 1, 1, r)`` (B, 4); eps and r broadcast."""
    eps, r = np.broadcast_arrays(np.asarray(eps, float), np.asarray(r, float))
    z = np.zeros(eps.shape + (4,))
    z[..., 1] = eps
    z[..., 2] = eps
    z[..., 3] = eps * r
    return z.reshape(-1, 4)


def _k4_spec(depth: int, n: int = 1) -> ModelSpec:
    return ModelSpec(4, depth, samples_per_class=n, group="walsh")


def wilson(k: int, n: int, zq: float = 1.959963984540054) -> list:
    """Wilson score interval (95 % by default) for k successes in n trials; [nan, nan] if n = 0."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = k / n
    den = 1 + zq * zq / n
    c = (p + zq * zq / (2 * n)) / den
    h = zq * math.sqrt(p * (1 - p) / n + zq * zq / (4 * n * n)) / den
    return [max(0.0, c - h), min(1.0, c + h)]


def k4_map(depth: int, eps_grid, r_grid, z_final: float = K4_Z_FINAL) -> dict:
    """Certified classification of the K = 4 plane (eps rows, r columns): ``rank`` (E, R) in
    {2, 3} (0 where undecided), ``decided`` (E, R), counts."""
    spec = _k4_spec(depth)
    E, R = np.meshgrid(np.asarray(eps_grid, float), np.asarray(r_grid, float), indexing="ij")
    t0 = time.perf_counter()
    c = certify_limit(spec, k4_z(E.ravel(), R.ravel()), z_final=z_final, is_z=True)
    return map_result(depth, eps_grid, r_grid, c.rank.reshape(E.shape),
                      c.decided.reshape(E.shape), c.nc, c.status, z_final,
                      time.perf_counter() - t0)


def map_result(depth: int, eps_grid, r_grid, rank, decided, nc, status, z_final: float,
               seconds: float | None = None) -> dict:
    """The K = 4 basin-map record from certified outcomes (``rank``, ``decided`` (E, R); ``nc``
    and ``status`` per point in row-major order): the one place :func:`k4_map` and the report's
    sweep (``basin_k4`` task) build it."""
    decided = np.asarray(decided, bool)
    nd = int(np.sum(decided))
    nnc = int(np.sum(np.asarray(nc, bool) & decided.ravel()))
    return {"depth": depth, "eps": list(map(float, eps_grid)), "r": list(map(float, r_grid)),
            "rank": np.asarray(rank, np.int64).tolist(), "decided": decided.tolist(),
            "nc_fraction": float(nnc / nd) if nd else None,
            "nc_wilson95": wilson(nnc, nd), "undecided": int(decided.size - nd),
            "failed": int(sum(not str(st).startswith("ok") for st in status)),
            "n": int(decided.size), "seconds": seconds, "z_final": z_final,
            "classifier": "certify_limit"}


def k4_critical_ratio(depth: int, eps: float, r_max: float = 1.0, width: float = 1e-3,
                      points: int = 16, max_rounds: int = 12,
                      z_final: float = K4_Z_FINAL) -> dict:
    """Certified bracket ``[lo, hi]`` of ``r_c(eps, L)`` on the line ``z(0) = eps (0, 1, 1, r)``.

    Section search on ``(0, r_max]``: each round certifies ``points`` ratios in one batch; ``lo``
    is the largest certified-square ratio below every certified-NC ratio met, ``hi`` the
    smallest certified-NC ratio above every certified-square one. Every ratio the search
    classified below ``lo`` is a certified square and every one above ``hi`` certified NC; a
    non-monotone outcome (a square above an NC) raises. Undecided ratios (next to r_c a dying
    mode's y* is tiny) stay inside the bracket; the search stops when ``hi - lo <= width``, or
    when a round leaves the bracket unchanged (then ``width_reached`` is False and
    ``undecided_band`` the width the undecided ratios occupy).
    """
    if not (math.isfinite(eps) and eps > 0):
        raise SpecError(f"--init-scale must be a finite number > 0, got {eps}")
    if not (math.isfinite(width) and width > 0):
        raise SpecError(f"--bracket-width must be a finite number > 0, got {width}")
    spec = _k4_spec(depth)
    t0 = time.perf_counter()
    lo, hi = 0.0, float(r_max)
    n_cls, n_und = 0, 0
    band = 0.0
    first = True
    for _ in range(max_rounds):
        if hi - lo <= width:
            break
        rs = (np.linspace(lo, hi, points + 1)[1:] if first
              else np.linspace(lo, hi, points + 2)[1:-1])
        c = certify_limit(spec, k4_z(eps, rs), z_final=z_final, is_z=True)
        n_cls += rs.size
        n_und += c.undecided
        sq = c.decided & ~c.nc
        nc = c.decided & c.nc
        if first and not nc[-1]:
            raise SpecError(f"limit at r = r_max = {r_max} is not certified NC "
                            f"({c.label[-1]}: {c.reason[-1]}); raise --r-max")
        first = False
        if np.any(sq) and np.any(nc) and rs[sq].max() > rs[nc].min():
            raise RuntimeError(f"non-monotone certified outcomes at L={depth}, eps={eps}: "
                               f"square at r={rs[sq].max()} above NC at r={rs[nc].min()}")
        new_lo = max(lo, float(rs[sq].max())) if np.any(sq) else lo
        new_hi = min(hi, float(rs[nc].min())) if np.any(nc) else hi
        und = rs[~c.decided & (rs > new_lo) & (rs < new_hi)]
        band = float(und.max() - und.min()) if und.size else 0.0
        if new_lo == lo and new_hi == hi:
            break
        lo, hi = new_lo, new_hi
    return {"classes": 4, "depth": depth, "init_scale": eps, "bracket": [lo, hi],
            "critical_ratio": 0.5 * (lo + hi), "width": hi - lo, "width_target": width,
            "width_reached": bool(hi - lo <= width), "undecided_band": band,
            "classified": n_cls, "undecided": n_und, "z_final": z_final,
            "seconds": time.perf_counter() - t0,
            "init": "z(0) = eps * (0, 1, 1, r), balanced, walsh",
            "classifier": "certify_limit"}


def monte_carlo(K: int, depth: int, eps: float, samples: int, seed: int = 0,
                group: str = "", z_final: float | None = None) -> dict:
    """Certified limits over ``z_j(0) = eps * U(0.5, 1.5)`` spectral inits: ``nc_fraction``
    over the decided starts with its 95 % Wilson interval, ``limit_histogram`` by support
    class, ``rank_histogram`` (decided only), ``undecided`` and the reasons."""
    from ..spec import random_init_z
    from .certify import Z_FINAL
    spec = ModelSpec(K, depth, group=group)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=samples)
    t0 = time.perf_counter()
    c = certify_limit(spec, z, z_final=z_final or Z_FINAL, is_z=True)
    r = mc_result(K, depth, spec.group, eps, seed, c.decided, c.nc, c.rank, c.support_class,
                  c.reason, c.status)
    r["seconds"] = time.perf_counter() - t0
    return r


def mc_result(K: int, depth: int, group: str, eps: float, seed, decided, nc, rank,
              support_class, reason, status) -> dict:
    """The Monte-Carlo record of one (K, L, eps) cell from its starts' certified outcomes (in
    start order): the one place :func:`monte_carlo` and the report's sweep (``classify``
    task) build it. ``limit_histogram`` is ``CertifiedLimit.histogram()`` (support classes by
    decreasing count, ties in order of first appearance, then ``undecided``)."""
    dec = np.asarray(decided, bool)
    nd = int(dec.sum())
    nnc = int(np.sum(np.asarray(nc, bool) & dec))
    ranks = np.asarray(rank, np.int64)[dec]
    hist: dict = {}
    for d, cl in zip(dec, support_class):
        if d:
            hist[cl] = hist.get(cl, 0) + 1
    hist = dict(sorted(hist.items(), key=lambda kv: -kv[1]))
    hist["undecided"] = int(dec.size - nd)
    reasons: dict = {}
    for d, rs in zip(dec, reason):
        if not d:
            key = rs.split(":")[0].split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
    return {"classes": K, "depth": depth, "group": group, "init_scale": eps,
            "samples": int(dec.size), "seed": seed, "decided": nd,
            "undecided": int(dec.size - nd),
            "nc_count": nnc, "nc_fraction": nnc / nd if nd else None,
            "nc_wilson95": wilson(nnc, nd), "limit_histogram": hist,
            "rank_histogram": {int(r): int(np.sum(ranks == r)) for r in np.unique(ranks)},
            "mean_rank": float(np.mean(ranks)) if nd else None,
            "undecided_reasons": reasons,
            "failed": int(sum(not str(st).startswith("ok") for st in status)),
            "classifier": "certify_limit"}


def same_limits(a, b):
    """Two ``CertifiedLimit`` readouts of the same starts: the mask of starts both decide and
    the indices of those among them whose certified limits (support classes) differ."""
    both = a.decided & b.decided
    return both, [int(i) for i in np.nonzero(both)[0]
                  if a.support_class[i] != b.support_class[i]]


def readout_check(K: int, depth: int, eps: float, samples: int, seed: int = 0,
                  group: str = "", extra_decades: int = 2) -> dict:
    """The certified classifier against a deeper readout of itself on the same Monte Carlo
    starts: its defaults (``certify_limit``) vs every start, decided or not, through the
    limit stage with ``extra_decades`` more stops (a y threshold ``10^extra_decades`` x
    smaller than the limit stage's last one; ``limit_all=True``, only that readout kept).
    Returns the undecided counts of both, the starts both decide, how many of those have the
    same certified limit (support class), and the indices of the others."""
    from ..spec import random_init_z
    from .certify import LIMIT_DECADES
    spec = ModelSpec(K, depth, group=group)
    z = random_init_z(spec, eps, np.random.default_rng(seed), batch=samples)
    t0 = time.process_time()
    a = certify_limit(spec, z, is_z=True)
    t1 = time.process_time()
    b = certify_limit(spec, z, is_z=True, limit_all=True,
                      limit_decades=LIMIT_DECADES + extra_decades)
    t2 = time.process_time()
    both, differ = same_limits(a, b)
    return {"classes": K, "depth": depth, "group": spec.group, "init_scale": eps,
            "samples": samples, "seed": seed, "deep_decades": LIMIT_DECADES + extra_decades,
            "undecided_default": a.undecided, "undecided_deep": b.undecided,
            "both_decided": int(both.sum()), "same": int(both.sum()) - len(differ),
            "differ": differ, "cpu_default": t1 - t0, "cpu_deep": t2 - t1}
