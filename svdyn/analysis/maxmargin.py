"""The spectral max-margin problem of a depth-L UFM and its softmax-code vertices.

In spectral coordinates the class margins are linear in the logit singular values z:

    m_c(z) = (1 / (K sqrt n)) sum_j z_j (1 - C[c, j]),        c = 1..K-1,

with ``C = group.char_table`` (mode 0, the constant one, never enters). The limit direction of
gradient flow at depth L is a KKT point of ([D], Lyu & Li 2020)

    min  sum_j z_j^(2/L)   s.t.  m_c(z) >= 1 for all c,  z >= 0,  paired modes equal.

Facts used here (derived in the docstrings of the functions, checked by the tests):

* ``sum_{c>=1} m_c = (1/sqrt n) sum_{j>=1} z_j`` (the column sums of ``1 - C`` over c >= 1 are K),
  so for ``L <= 2`` (objective convex, a power mean bound) the unique optimum is NC,
  ``z_j = sqrt n`` for every non-constant mode, with cost ``(K - 1) n^(1/L)``.
* For ``L > 2`` the objective is concave and increasing in every z_j, and the feasible set is a
  polyhedron whose recession cone is the orthant, so the minimum sits at a vertex. Every vertex
  has ``z_j <= K sqrt(n) / 2`` (walsh: a coordinate above it is in no active constraint, so
  the point could move along that axis).
* Vertices are enumerated exactly by the double-description method (homogenised cone, one
  constraint at a time, combinatorial adjacency test) when the reduced dimension is at most
  ``EXACT_MAX_DIM``. For walsh the vertices are rational with small denominators and are
  re-checked in exact integer arithmetic. Above that dimension (walsh K = 32) the vertex set is
  too large to list, and :func:`search_vertices` returns the vertices found by successive
  linear programming from many starts plus the binary-code families; results then carry
  ``"exact": false``. :func:`lower_bound` can then certify the search optimum at a given
  depth by an MILP lower bound (piecewise-linear chord underestimator, symmetry broken).

The cost of a vertex is ``f_v(p) = sum_j z_j^p`` with ``p = 2/L``. Over real depth the optimum
is the lower envelope of these exponential sums; crossovers are located on a fine grid in p and
refined by Brent's method. Between two *uniform* vertices (``r_a`` modes at value ``a``, ``r_b``
at ``b``) the crossover has the closed form ``L* = 2 ln(a/b) / ln(r_b/r_a)``; for K = 4 walsh
(NC ``(1,1,1)`` vs the square ``(2,2,0)``, n = 1) this is ``L* = 2 ln 2 / ln(3/2) = 3.4190...``.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..groups import Group, SpecError, make_group

EXACT_MAX_DIM = 16
_TOL = 1e-10


# --------------------------------------------------------------------------- the problem
def margin_matrix(G: Group, n: int = 1) -> np.ndarray:
    """(K-1, K) matrix ``M`` with ``m_c = (M z)_c`` for the non-constant classes c = 1..K-1."""
    C = G.char_table
    return (1.0 - C[1:, :]) / (G.K * math.sqrt(n))


def margins(G: Group, z, n: int = 1) -> np.ndarray:
    """Margins ``m_c``, c = 1..K-1, of logit singular values ``z`` (..., K), by the fast
    transform (``svdyn.softmax.margins``; no K x K matrix)."""
    from ..softmax import margins as fast_margins

    return fast_margins(G, z, n)


def mode_classes(G: Group) -> list:
    """Free variables of the problem: tuples of modes forced equal (pairs), mode 0 left out."""
    out = []
    for j in range(1, G.K):
        p = int(G.partner[j])
        if p == j:
            out.append((j,))
        elif j < p:
            out.append((j, p))
    return out


def reduced_problem(G: Group):
    """``(A, classes)``: the margin constraints as ``A x >= 1`` on class variables ``x >= 0``.

    ``A[c, k] = sum_{j in class k} (1 - C[c, j]) / 2`` (a 0/1 matrix for walsh) and
    ``x = 2 z / (K sqrt n)``, so that ``M z = A x``. Duplicate rows (classes c and -c of a
    cyclic factor have equal margins) are removed.
    """
    cls = mode_classes(G)
    Cm = (1.0 - G.char_table[1:, :]) / 2.0
    A = np.stack([Cm[:, list(c)].sum(axis=1) for c in cls], axis=1)
    A = np.where(np.abs(A - np.rint(A)) < 1e-12, np.rint(A), A)
    keys = {}
    rows = []
    for r in A:
        k = tuple(np.round(r, 9))
        if k not in keys:
            keys[k] = len(rows)
            rows.append(r)
    return np.array(rows), cls


def x_to_z(G: Group, x, n: int = 1) -> np.ndarray:
    """Class variables (scaled) -> full logit singular values z (K,), mode 0 = 0."""
    cls = mode_classes(G)
    z = np.zeros(G.K)
    for v, c in zip(np.asarray(x, float), cls):
        z[list(c)] = v * G.K * math.sqrt(n) / 2.0
    return z


def cost(z, L: float) -> float:
    """Depth-L quasi-norm objective ``sum_j z_j^(2/L)`` (zeros contribute 0)."""
    z = np.asarray(z, float)
    z = z[z > 0]
    return float(np.sum(z ** (2.0 / L)))


def nc_z(G: Group, n: int = 1) -> np.ndarray:
    """The NC point of the margin polytope: ``z_j = sqrt n`` on every non-constant mode."""
    z = np.full(G.K, math.sqrt(n))
    z[0] = 0.0
    return z


def nc_cost(K: int, L: float, n: int = 1) -> float:
    """``(K - 1) n^(1/L)``."""
    return (K - 1) * n ** (1.0 / L)


# --------------------------------------------------------------------------- enumeration
def double_description(A: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """All vertices of ``{x >= 0 : A x >= b}`` (b > 0), by the double-description method.

    The polyhedron is homogenised to the cone ``{(x, t) >= 0 : A x - t b >= 0}``. Starting from
    the orthant (extreme rays = unit vectors) the constraints are added one at a time; a new
    ray is formed from each pair (positive, negative) of rays that are adjacent, tested
    combinatorially (no third ray is tight on every constraint tight at both, and the pair
    shares at least d - 2 tight constraints). Rays with t > 0 give the vertices.
    Returns (V, D) float array.
    """
    A = np.asarray(A, float)
    M, D = A.shape
    b = np.ones(M) if b is None else np.asarray(b, float)
    d = D + 1
    R = np.eye(d)
    Z = ~np.eye(d, dtype=bool)  # Z[r, k]: constraint k tight at ray r
    for c in range(M):
        h = np.concatenate([A[c], [-b[c]]])
        v = R @ h
        scale = np.abs(h).max()
        pos = np.where(v > _TOL * scale)[0]
        neg = np.where(v < -_TOL * scale)[0]
        zer = np.abs(v) <= _TOL * scale
        Zi = Z.astype(np.int32).T
        new_R, new_Z = [], []
        for i in pos:
            common = Z[i][None, :] & Z[neg]
            cnt = common.sum(axis=1)
            cand = np.where(cnt >= d - 2)[0]
            if cand.size == 0:
                continue
            contain = common[cand].astype(np.int32) @ Zi
            ok = (contain == cnt[cand][:, None]).sum(axis=1) == 2
            for k in cand[ok]:
                j = neg[k]
                r = v[i] * R[j] - v[j] * R[i]
                new_R.append(r / np.abs(r).max())
                new_Z.append(np.append(common[k], True))
        keep = np.concatenate([pos, np.where(zer)[0]])
        R2 = R[keep]
        Z2 = np.hstack([Z[keep], zer[keep][:, None]])
        if new_R:
            R2 = np.vstack([R2, np.array(new_R)])
            Z2 = np.vstack([Z2, np.array(new_Z)])
        R, Z = R2, Z2
    V = R[R[:, -1] > _TOL]
    return V[:, :-1] / V[:, -1:]


def _rationalise_check(A: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Snap walsh vertices to exact rationals and verify them in integer arithmetic.

    Every coordinate is written over the common denominator ``DEN = lcm(1..20)``; feasibility
    (``A num >= DEN``, ``num >= 0``) is checked exactly for every vertex, and vertexness (the
    tight rows have full rank) once per distinct value profile.
    """
    DEN = math.lcm(*range(1, 21))
    num = np.rint(V * DEN).astype(np.int64)
    if np.any(np.abs(V * DEN - num) > 1e-4):
        raise RuntimeError("a vertex is not rational with denominator dividing lcm(1..20)")
    Ai = np.rint(A).astype(np.int64)
    if np.any(num < 0) or np.any(num @ Ai.T < DEN):
        raise RuntimeError("a vertex failed the exact feasibility check")
    seen = set()
    for v in num:
        key = tuple(sorted(v.tolist()))
        if key in seen:
            continue
        seen.add(key)
        tight = np.concatenate([Ai[Ai @ v == DEN], np.eye(len(v), dtype=np.int64)[v == 0]])
        if np.linalg.matrix_rank(tight.astype(float)) != len(v):
            raise RuntimeError("a point is not a vertex in exact arithmetic")
    return num / DEN


def lp_vertex(A: np.ndarray, c: np.ndarray) -> np.ndarray:
    """A vertex of ``{x >= 0, A x >= 1}`` minimising ``c . x`` (HiGHS dual simplex)."""
    from scipy.optimize import linprog
    res = linprog(c, A_ub=-A, b_ub=-np.ones(A.shape[0]), bounds=(0, None), method="highs-ds")
    if res.status != 0:
        raise RuntimeError(f"LP failed: {res.message}")
    x = res.x
    x[x < 1e-12] = 0.0
    return x


def search_vertices(A: np.ndarray, mult: np.ndarray, ps, starts: int = 60, seed: int = 0,
                    extra: list | None = None) -> np.ndarray:
    """Local minima of ``sum mult x^p`` over the polytope, by successive linear programming.

    For each p and each start (random positive costs), iterate ``x <- argmin_P grad . x`` with
    the gradient of the smoothed objective ``sum mult (x + eps)^p`` (a majorise-minimise step:
    the linearisation of a concave function lies above it, so the true cost never increases)
    until the vertex repeats. Returns the distinct vertices found (plus ``extra``).
    """
    rng = np.random.default_rng(seed)
    found = {}

    def add(x):
        found.setdefault(tuple(np.round(x, 9)), x)

    for x in extra or []:
        add(np.asarray(x, float))
    for p in ps:
        for s in range(starts):
            c = rng.exponential(size=A.shape[1]) if s else np.ones(A.shape[1])
            x = lp_vertex(A, c)
            for eps in (1e-1, 1e-3, 1e-6):
                for _ in range(50):
                    g = mult * p * (x + eps) ** (p - 1.0)
                    x2 = lp_vertex(A, g)
                    if np.allclose(x2, x, atol=1e-10):
                        break
                    x = x2
            add(x)
    return np.array(list(found.values()))


def walsh_code_families(G: Group) -> list:
    """Uniform vertices from binary codes that the search is seeded with (walsh only):
    a basis (rank m, x = 1), basis + all-ones sum (rank m + 1, x = 1/2), the complement of a
    hyperplane (rank K/2, x = 4/K ... scaled: 2/(K/2)), and NC (x = 2/K)."""
    K = G.K
    m = K.bit_length() - 1
    out = []
    basis = [1 << i for i in range(m)]
    x = np.zeros(K - 1)
    x[[j - 1 for j in basis]] = 1.0
    out.append(x)
    x = np.zeros(K - 1)
    x[[j - 1 for j in basis] + [K - 2]] = 0.5
    out.append(x)
    x = np.zeros(K - 1)
    x[[j - 1 for j in range(1, K) if j & 1]] = 4.0 / K
    out.append(x)
    out.append(np.full(K - 1, 2.0 / K))
    return out


_VCACHE: dict = {}


def vertices(G: Group, exact_max_dim: int = EXACT_MAX_DIM, seed: int = 0):
    """Vertices of the reduced polytope (class variables x) and whether the list is complete.

    Returns ``(X (V, D), classes, exact: bool, method: str)`` (cached per group and options).
    """
    key = (G.name, G.dims, exact_max_dim, seed)
    if key not in _VCACHE:
        _VCACHE[key] = _vertices(G, exact_max_dim, seed)
    return _VCACHE[key]


def _vertices(G: Group, exact_max_dim: int, seed: int):
    A, cls = reduced_problem(G)
    D = A.shape[1]
    if D <= exact_max_dim:
        X = double_description(A)
        if G.name == "walsh":
            X = _rationalise_check(A, X)
        return X, cls, True, "double-description (complete vertex enumeration)"
    mult = np.array([len(c) for c in cls], float)
    ps = np.linspace(0.05, 1.0, 20)
    extra = walsh_code_families(G) if G.name == "walsh" else [np.full(D, 2.0 / G.K)]
    X = search_vertices(A, mult, ps, starts=100, seed=seed, extra=extra)
    return X, cls, False, ("successive-LP search from 100 random starts at 20 depths plus "
                           "binary-code families (not a certified global optimum)")


# --------------------------------------------------------------------------- profiles
def _profiles(G: Group, X: np.ndarray, cls, n: int):
    """Distinct cost profiles (multisets of nonzero z values) with a representative vertex."""
    mult = np.array([len(c) for c in cls])
    prof = {}
    for x in X:
        vals = np.repeat(x, mult)
        key = tuple(np.round(np.sort(vals[vals > 1e-12])[::-1], 9))
        if key not in prof:
            prof[key] = {"x": x, "count": 0}
        prof[key]["count"] += 1
    out = []
    for key, d in prof.items():
        z = x_to_z(G, d["x"], n)
        w = np.sort(z[z > 1e-12 * z.max()])[::-1]
        out.append({"values": w, "z": z, "count": d["count"]})
    return out


def _desc(G: Group, pr: dict, L: float) -> dict:
    z = pr["z"]
    supp = [int(j) for j in np.nonzero(z > 1e-12)[0]]
    return {"support": supp, "z": [float(v) for v in z], "rank": len(supp),
            "cost": float(np.sum(pr["values"] ** (2.0 / L))),
            "nc": bool(len(supp) == G.K - 1)}


def _uniform(vals: np.ndarray):
    return bool(np.allclose(vals, vals[0], rtol=1e-12, atol=0))


def _envelope(profs: list, L_min: float, L_max: float, npts: int = 4000):
    """Argmin profile index over depth on a log grid; refine each change by Brent's method."""
    from scipy.optimize import brentq
    Ls = np.geomspace(L_min, L_max, npts)
    P = 2.0 / Ls
    logv = [np.log(pr["values"]) for pr in profs]
    costs = np.array([np.exp(np.outer(P, lv)).sum(axis=1) for lv in logv])
    arg = np.argmin(costs, axis=0)
    changes = []
    for i in range(1, npts):
        if arg[i] != arg[i - 1]:
            a, b = int(arg[i - 1]), int(arg[i])

            def f(L, a=a, b=b):
                return np.sum(np.exp((2 / L) * logv[a])) - np.sum(np.exp((2 / L) * logv[b]))
            Lc = brentq(f, Ls[i - 1], Ls[i], xtol=1e-14, rtol=1e-15)
            changes.append((Lc, a, b))
    return Ls, arg, changes


def closed_form_crossover(va: np.ndarray, vb: np.ndarray):
    """``L* = 2 ln(a/b) / ln(r_b/r_a)`` for uniform profiles (r_a values a, r_b values b),
    with the expression as a string; None if either profile is not uniform."""
    if not (_uniform(va) and _uniform(vb)):
        return None
    ra, rb, a, b = len(va), len(vb), float(va[0]), float(vb[0])
    if ra == rb or a == b:
        return None
    if a < b:
        ra, rb, a, b = rb, ra, b, a
    val = 2.0 * math.log(a / b) / math.log(rb / ra)

    def txt(x):
        f = Fraction(x).limit_denominator(1000)
        return str(f) if abs(float(f) - x) < 1e-9 * x else f"{x:.10g}"
    return val, f"2 ln({txt(a)}/{txt(b)}) / ln({rb}/{ra})"


def solve(K: int, L: float, group: str = "", n: int = 1, L_max: float = 1000.0,
          exact_max_dim: int = EXACT_MAX_DIM) -> dict:
    """Optimum of the spectral max-margin problem at depth L, the NC cost, and the crossover
    depths over ``L in [2, L_max]`` (real-valued depth).

    Returns the dict of the ``svdyn maxmargin`` JSON: ``optimum {support, z, rank, cost}``,
    ``nc_cost``, ``crossovers [{depth, from_rank, to_rank, from_support, to_support,
    closed_form}]``, ``regimes``, ``n_vertices``, ``n_profiles``, ``exact``, ``method``.
    """
    from ..groups import default_group
    if not (isinstance(L, (int, float)) and math.isfinite(L) and L > 0):
        raise SpecError(f"--depth must be a finite number > 0, got {L}")
    G = make_group(group or default_group(K), K)
    if n < 1:
        raise SpecError("--samples-per-class must be >= 1")
    X, cls, exact, method = vertices(G, exact_max_dim)
    profs = _profiles(G, X, cls, n)
    costs = np.array([np.sum(pr["values"] ** (2.0 / L)) for pr in profs])
    ncc = nc_cost(K, L, n)
    # ties (within 1e-12 relative) are resolved towards the higher rank, so NC wins at L <= 2
    best = min(range(len(profs)),
               key=lambda i: (round(costs[i] / costs.min(), 12), -len(profs[i]["values"])))
    opt = _desc(G, profs[best], L)
    Ls, arg, changes = _envelope(profs, 2.0, L_max)
    crossovers = []
    for Lc, a, b in changes:
        cf = closed_form_crossover(profs[a]["values"], profs[b]["values"])
        da, db = _desc(G, profs[a], Lc), _desc(G, profs[b], Lc)
        crossovers.append({"depth": float(Lc), "from_rank": da["rank"], "to_rank": db["rank"],
                           "from_support": da["support"], "to_support": db["support"],
                           "from_z": da["z"], "to_z": db["z"],
                           "closed_form": None if cf is None else cf[1],
                           "closed_form_value": None if cf is None else cf[0]})
    regimes = []
    edges = [2.0] + [c["depth"] for c in crossovers] + [float("inf")]
    seq = [int(arg[0])] + [b for _, _, b in changes]
    for i, pi in enumerate(seq):
        d = _desc(G, profs[pi], min(edges[i + 1], L_max) if i + 1 < len(edges) - 1 else L_max)
        regimes.append({"depth_from": edges[i],
                        "depth_to": edges[i + 1] if math.isfinite(edges[i + 1]) else None,
                        "rank": d["rank"],
                        "support": d["support"], "z": d["z"],
                        "uniform": _uniform(profs[pi]["values"])})
    return {"classes": K, "depth": L, "group": G.name, "samples_per_class": n,
            "optimum": opt, "nc_cost": ncc, "optimum_over_nc": opt["cost"] / ncc,
            "crossovers": crossovers, "regimes": regimes, "depth_range": [2.0, L_max],
            "n_vertices": int(len(X)), "n_profiles": len(profs), "exact": exact,
            "method": method}


def lower_bound(G: Group, L: float, time_limit: float | None = None, breakpoints=None,
                node_limit: int | None = None) -> dict:
    """Certified lower bound on the depth-L optimum by mixed-integer linear programming.

    Every chord of the concave ``x^p`` (p = 2/L) lies below it, so the piecewise-linear
    interpolant through breakpoints ``0 = b_0 < ... < b_k = 1`` underestimates the cost; its
    minimum over the polytope (a concave PWL minimisation, written as an MILP with one SOS2
    block of binaries per variable, HiGHS) is a lower bound on the true optimum. The box
    ``x <= 1`` is valid: every vertex of the walsh polytope has ``x <= 1``. For walsh the
    GL(m, 2) symmetry is broken by ``x_{2^k} >= x_j`` for all ``j >= 2^k`` (the stabiliser of
    e_1..e_k acts transitively on the points outside their span), which removes equivalent
    branches without cutting off any orbit. Breakpoints default to every coordinate value of
    the known vertices; when the optimum is a vertex whose values are breakpoints the bound is
    tight, and ``certified`` (lower bound >= best known vertex cost * (1 - 1e-9)) follows.
    Budget: ``node_limit`` (branch-and-bound nodes; deterministic, so the bound is the same on
    every run) and/or ``time_limit`` (seconds; machine-dependent, not for tracked results). With
    neither, 60 s as before.
    Returns ``{"lower_bound", "upper_bound", "gap", "certified", "status", "seconds"}`` (in
    the units of z, n = 1).
    """
    import time as _time
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_matrix
    A, cls = reduced_problem(G)
    M, D = A.shape
    mult = np.array([len(c) for c in cls], float)
    X, _, _, _ = vertices(G)
    p = 2.0 / L
    if breakpoints is None:
        breakpoints = X[X > 1e-12]
    b = np.unique(np.r_[0.0, np.round(np.asarray(breakpoints, float), 12), 1.0])
    b = b[b <= 1.0]
    k = b.size
    nl, nb = D * k, D * (k - 1)
    c = np.concatenate([m_ * b ** p for m_ in mult] + [np.zeros(nb)])
    sym = []
    if G.name == "walsh":
        for e in range(int(round(math.log2(D + 1)))):
            piv = 2 ** e
            sym += [(piv - 1, jm - 1) for jm in range(piv + 1, D + 1)]
    nrow = M + 2 * D + nl + len(sym)
    Ac = lil_matrix((nrow, nl + nb))
    lo, hi = np.full(nrow, -np.inf), np.full(nrow, np.inf)
    r = 0
    for cc in range(M):
        for j in np.nonzero(A[cc])[0]:
            Ac[r, j * k:(j + 1) * k] = A[cc, j] * b
        lo[r] = 1.0
        r += 1
    for j in range(D):
        Ac[r, j * k:(j + 1) * k] = 1.0
        lo[r] = hi[r] = 1.0
        r += 1
        Ac[r, nl + j * (k - 1): nl + (j + 1) * (k - 1)] = 1.0
        lo[r] = hi[r] = 1.0
        r += 1
    for j in range(D):  # SOS2: lambda_js <= y_{j,s-1} + y_{j,s}
        for s_ in range(k):
            Ac[r, j * k + s_] = 1.0
            if s_ >= 1:
                Ac[r, nl + j * (k - 1) + s_ - 1] = -1.0
            if s_ <= k - 2:
                Ac[r, nl + j * (k - 1) + s_] = -1.0
            hi[r] = 0.0
            r += 1
    for a, bb in sym:
        Ac[r, a * k:(a + 1) * k] = b
        Ac[r, bb * k:(bb + 1) * k] = -b
        lo[r] = 0.0
        r += 1
    t0 = _time.perf_counter()
    res = milp(c, constraints=LinearConstraint(Ac.tocsr(), lo, hi),
               integrality=np.r_[np.zeros(nl), np.ones(nb)], bounds=Bounds(0, 1),
               options=_milp_options(time_limit, node_limit))
    sec = _time.perf_counter() - t0
    lb = getattr(res, "mip_dual_bound", None)
    if lb is None or not np.isfinite(lb):
        lb = res.fun if res.status == 0 else -np.inf
    ub = min(float(np.sum(mult * np.where(x > 0, x, 0) ** p)) for x in X)
    zs = (G.K / 2.0) ** p  # z = K x / 2 (n = 1), so the cost scales by (K/2)^p
    return {"depth": L, "lower_bound": float(lb) * zs, "upper_bound": ub * zs,
            "gap": float((ub - lb) / ub), "certified": bool(lb >= ub * (1 - 1e-9)),
            "status": res.message, "seconds": sec, "breakpoints": b.tolist(),
            "node_limit": node_limit, "time_limit": time_limit}


def _milp_options(time_limit, node_limit) -> dict:
    opts = {"mip_rel_gap": 1e-10}
    if node_limit is not None:
        opts["node_limit"] = int(node_limit)
    if time_limit is not None or node_limit is None:
        opts["time_limit"] = float(60.0 if time_limit is None else time_limit)
    return opts


def k4_crossover() -> float:
    """Closed form for K = 4 walsh: NC cost 3 equals square cost 2 * 2^(2/L) at
    ``L* = 2 ln 2 / ln(3/2)``."""
    return 2.0 * math.log(2.0) / math.log(1.5)
