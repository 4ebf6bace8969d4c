"""Critical points of the regularised reduced problem and the named families that carry them.

Reduction
---------
With weight decay ``lambda > 0`` equal on every factor, a critical point of the reduced loss
``f(s) = D(z) + (lambda/2) sum_{l,j} s_{l,j}^2`` (``z_j = prod_l s_{l,j}``, ``D`` the data loss,
``g = -dD/dz``) satisfies ``g_j prod_{m != l} s_{m,j} = lambda s_{l,j}`` for every l. Multiplying
by ``s_{l,j}`` gives ``g_j z_j = lambda s_{l,j}^2`` for all l, so every critical point is
*balanced* (``s_{l,j} = z_j^{1/L}``, up to signs that do not change the loss), and if one
``s_{l,j}`` vanishes, all of mode j does. On the balanced manifold with ``a_j = s_{l,j} >= 0``
the loss is ``D(a^L) + (L lambda / 2) sum_j a_j^2`` and an *active* mode (``a_j > 0``) solves

    F_j(a) = g_j(a^L) a_j^{L-2} - lambda = 0                         (L >= 2)

(``F_j = g_j - lambda a_j`` for L = 1), while inactive modes are critical for free when L >= 2.
For L >= 3 this is ``g_j(z) = lambda z_j^{2/L - 1}``: the Schatten-(2/L) penalty of [P].

Solver
------
:func:`solve_critical` runs damped Newton on ``F`` over the free values of a support (paired
modes j, K - j share one unknown), with the exact Jacobian from :func:`data_hessian`, a
positivity guard and backtracking on ``||F||``. If Newton does not converge it integrates the
reduced flow (:func:`svdyn.integrate.flow`) towards stationarity and polishes the end point
with Newton on its numerical support.

Families (see :func:`family_names`)
-----------------------------------
* ``dnc`` -- deep neural collapse: all non-constant modes equal (mse: the constant mode too,
  i.e. [U]'s orthogonal frame; ``dnc-centred`` is mse's simplex-ETF variant).
* ``pairing`` -- [P]'s pairing: an element ``t`` of order 2 (walsh: ``t = 1``, so the odd
  modes; cyclic even K: ``t = K/2``; ``2,5``: ``t = (1, 0)``) and the modes with
  ``chi_j(t) = -1``, all equal. Class c's logits are ``+u`` on c, ``-u`` on ``c + t``, 0
  elsewhere: rank K/2, the classes in antipodal pairs along orthogonal axes.
* ``block:d`` -- the same construction for a subgroup ``T`` of order ``d``: support = characters
  non-trivial on T, all equal; classes split into K/d blocks, a simplex inside each block,
  blocks orthogonal; rank ``K - K/d``. ``d = 2`` is ``pairing``, ``d = K`` is ``dnc``.
* ``polygon`` -- rank-2 codes (cyclic basis): the pair (1, K - 1) only; classes on a regular
  K-gon.
* ``hypercube`` -- walsh, K = 2^m: the m single-bit characters; classes at the vertices of an
  m-cube, rank log2 K (found as a local minimum by random reduced flows at K = 8, L = 4).
* ``hybrid:<T>`` -- two levels: value a on the block-T support, b on the rest of the non-
  constant modes (b != a, b > 0); found by Newton from two-level starts.
* ``zero`` -- s = 0 (loss log K for ce).

Every symmetric family is an exact critical set: with equal values on the support the softmax
``p`` is constant on the cosets that make ``g`` equal on the support. Its one unknown is found by
a bracketing scan plus Brent before the Newton polish; for L >= 3 the scalar equation has two
roots and the family reports the larger (lower loss); the smaller is a saddle towards zero.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from ..field import logit_gradient, vector_field
from ..groups import SpecError
from ..spec import LOSS_MSE, ModelSpec

RANK_RTOL = 1e-6        # a mode counts towards the rank if z_j > RANK_RTOL * max z
NEWTON_MAXIT = 100
NEWTON_RTOL = 1e-12     # |F_j| <= NEWTON_RTOL * max(lambda, |g| scale)


# ----------------------------------------------------------------------------- result
@dataclass
class CriticalPoint:
    """A critical point of the reduced regularised problem.

    Attributes
    ----------
    name : str             family name (``dnc``, ``pairing``, ``block:4``, ``polygon`` ...)
    spec : ModelSpec
    s : (L, K) float       balanced factor singular values
    z : (K,) float         logit singular values ``prod_l s_l``
    loss : float           total loss (data + weight decay)
    grad_norm : float      ``||d loss / d s||_F`` over all L K values (equals the full-parameter
                           gradient norm at the spectral factors)
    rank : int             number of z_j > RANK_RTOL * max z
    converged : bool
    method : str           ``"bisect+newton"``, ``"newton"``, ``"flow+newton"``
    info : dict            Newton iterations, residual, reduced Hessian minimum eigenvalue ...
    """

    name: str
    spec: ModelSpec
    s: np.ndarray
    z: np.ndarray
    loss: float
    grad_norm: float
    rank: int
    converged: bool
    method: str
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"name": self.name, "loss": float(self.loss), "z": np.asarray(self.z).tolist(),
             "rank": int(self.rank), "grad_norm": float(self.grad_norm),
             "converged": bool(self.converged), "method": self.method}
        d.update({k: v for k, v in self.info.items()})
        return d


# ----------------------------------------------------------------------------- data loss
def _check_spec(spec: ModelSpec) -> float:
    lam = spec.lam
    if not np.allclose(lam, lam[0], rtol=0, atol=0):
        raise SpecError("critical points need the same weight decay on every factor; give one "
                        "--weight-decay value")
    lam0 = float(lam[0])
    code, _ = spec.loss_code
    if code != LOSS_MSE and not lam0 > 0:
        raise SpecError("ce / label-smoothed losses have no finite critical points without weight "
                        "decay; give --weight-decay > 0 (e.g. 1e-2)")
    return lam0


def softmax_probs(spec: ModelSpec, z: np.ndarray):
    """Class-0 softmax ``p`` (K,) at logit singular values z and ``1 - p_0`` computed stably."""
    C = spec.G.char_table
    u = C @ z / (spec.K * math.sqrt(spec.n))
    m = u[0] - u                      # margins, m_0 = 0
    a = max(0.0, float(np.max(-m[1:]))) if spec.K > 1 else 0.0
    q = np.exp(-m - a)
    Zp = q.sum()
    p = q / Zp
    rest = q[1:].sum() / Zp           # 1 - p_0 without cancellation
    return p, rest


def data_hessian(spec: ModelSpec, z: np.ndarray) -> np.ndarray:
    """``d^2 D / dz^2`` (K, K) of the data loss (mean over samples) at z.

    ce / ls: ``C (diag p - p p^T) C / (K^2 n)`` with ``p`` the class-0 softmax (the entry
    ``p_0 (1 - p_0)`` formed from ``1 - p_0 = sum_{c>0} p_c``); mse: ``I / (K n)``.
    """
    K, n = spec.K, spec.n
    code, _ = spec.loss_code
    if code == LOSS_MSE:
        return np.eye(K) / (K * n)
    p, rest = softmax_probs(spec, np.asarray(z, dtype=float))
    Hu = np.diag(p) - np.outer(p, p)
    Hu[0, 0] = p[0] * rest
    C = spec.G.char_table
    return C @ Hu @ C / (K * K * n)


def reduced_hessian(spec: ModelSpec, s: np.ndarray) -> np.ndarray:
    """Hessian (L K, L K) of the total reduced loss in all singular values ``s`` (L, K).

    ``d^2 f / ds_{lj} ds_{ik} = Hd[j,k] P_{lj} P_{ik} - delta_{jk} (1 - delta_{li}) g_j
    prod_{m != l,i} s_{mj} + lambda_l delta``, ``P_{lj} = prod_{m != l} s_{mj}``. Row index
    ``l K + j``. Covers the in-frame diagonal directions only (not the full parameter space).
    """
    L, K = spec.L, spec.K
    s = np.asarray(s, dtype=float)
    z = np.prod(s, axis=0)
    g = logit_gradient(spec, z)[0]
    Hd = data_hessian(spec, z)
    P = np.empty((L, K))
    for l in range(L):
        P[l] = np.prod(np.delete(s, l, axis=0), axis=0) if L > 1 else 1.0
    H = np.einsum("jk,lj,ik->ljik", Hd, P, P)
    for j in range(K):
        for l in range(L):
            for i in range(L):
                if i != l:
                    rest = np.prod(np.delete(s[:, j], [l, i])) if L > 2 else 1.0
                    H[l, j, i, j] -= g[j] * rest
    H = H.reshape(L * K, L * K)
    H[np.diag_indices(L * K)] += np.repeat(spec.lam, K)
    return H


def paired_basis(spec: ModelSpec) -> np.ndarray:
    """Orthonormal basis (L K, M) of states whose paired modes move together (valid states)."""
    _, E = _reps(spec, np.ones(spec.K, dtype=bool))
    E = E / np.linalg.norm(E, axis=0)[None, :]
    return np.kron(np.eye(spec.L), E)


def reduced_hessian_eigs(spec: ModelSpec, s: np.ndarray) -> np.ndarray:
    """Eigenvalues of :func:`reduced_hessian` restricted to valid (pair-symmetric) directions."""
    P = paired_basis(spec)
    return np.linalg.eigvalsh(P.T @ reduced_hessian(spec, s) @ P)


# ----------------------------------------------------------------------------- supports
def _close_support(spec: ModelSpec, mask) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool).copy()
    mask |= mask[spec.G.partner]
    return mask


def _reps(spec: ModelSpec, mask) -> tuple[list, np.ndarray]:
    """Free representatives of a (partner-closed) support and the expansion matrix E (K, R)."""
    partner = spec.G.partner
    reps = [j for j in range(spec.K) if mask[j] and j <= partner[j]]
    E = np.zeros((spec.K, len(reps)))
    for r, j in enumerate(reps):
        E[j, r] = 1.0
        E[partner[j], r] = 1.0
    return reps, E


def involution(spec: ModelSpec):
    """An element of order 2 (index) used by ``pairing``, or None for odd K."""
    if spec.K % 2:
        return None
    G = spec.G
    if G.name == "walsh":
        return 1
    # first axis of even order: the element with m_a/2 on that axis, 0 elsewhere
    digits = np.zeros(len(G.dims), dtype=int)
    for a, m in enumerate(G.dims):
        if m % 2 == 0:
            digits[a] = m // 2
            break
    idx = 0
    for a, m in enumerate(G.dims):
        idx = idx * m + int(digits[a])
    return idx


def subgroups(spec: ModelSpec) -> dict:
    """Representative subgroups T (as sorted element-index arrays), keyed by order ``d``.

    Products of cyclic subgroups of the factors (walsh: the span of the lowest bits). One
    subgroup per order, preferring one that contains :func:`involution`.
    """
    G = spec.G
    K = spec.K
    t = involution(spec)
    out = {}
    if G.name == "walsh":
        for r in range(1, len(G.dims) + 1):
            out[2 ** r] = np.arange(2 ** r)
        return out
    digits = G.digits
    choices = []
    for m in G.dims:
        choices.append([d for d in range(1, m + 1) if m % d == 0])
    for ds in itertools.product(*choices):
        d = int(np.prod(ds))
        if d == 1:
            continue
        # subgroup of order ds[a] on axis a: multiples of m_a / ds[a]
        ok = np.ones(K, dtype=bool)
        for a, (m, da) in enumerate(zip(G.dims, ds)):
            ok &= (digits[:, a] % (m // da)) == 0
        T = np.flatnonzero(ok)
        if d not in out or (t is not None and t in T and t not in out[d]):
            out[d] = T
    return dict(sorted(out.items()))


def block_support(spec: ModelSpec, T) -> np.ndarray:
    """Characters non-trivial on the subgroup T (K,) bool."""
    C = spec.G.char_table
    trivial = np.all(np.abs(C[np.asarray(T)] - 1.0) < 1e-9, axis=0)
    return ~trivial


def family_names(spec: ModelSpec) -> list:
    """Named families available for this spec (``all`` expands to these)."""
    code, _ = spec.loss_code
    names = ["dnc"]
    if code == LOSS_MSE:
        names.append("dnc-centred")
    subs = subgroups(spec)
    if 2 in subs and spec.K > 2:
        names.append("pairing")
    for d in subs:
        if 2 < d < spec.K:
            names.append(f"block:{d}")
    if spec.G.name == "cyclic" and spec.K >= 4:
        names.append("polygon")
    if spec.G.name == "walsh" and spec.K >= 8:
        names.append("hypercube")
    for d in subs:
        if 2 <= d < spec.K:
            names.append(f"hybrid:{'pairing' if d == 2 else 'block:' + str(d)}")
    names.append("zero")
    return names


def family_support(spec: ModelSpec, name: str) -> np.ndarray:
    """Support (K,) bool of a symmetric family (``dnc``, ``pairing``, ``block:d``, ``polygon``,
    ``dnc-centred``, ``zero``)."""
    K = spec.K
    code, _ = spec.loss_code
    mask = np.zeros(K, dtype=bool)
    if name == "dnc":
        mask[1:] = True
        if code == LOSS_MSE:
            mask[0] = True
    elif name == "dnc-centred":
        mask[1:] = True
    elif name == "zero":
        pass
    elif name == "pairing" or name.startswith("block:"):
        d = 2 if name == "pairing" else _parse_block(name)
        subs = subgroups(spec)
        if d not in subs:
            raise SpecError(f"family {name!r}: the {spec.G.name} group of order K={K} has no "
                            f"subgroup of order {d} here; available orders {sorted(subs)}"
                            + (" (pairing needs even K)" if d == 2 else ""))
        mask = block_support(spec, subs[d])
    elif name == "hypercube":
        if spec.G.name != "walsh" or K < 4:
            raise SpecError("hypercube codes need the walsh basis (K = 2^m >= 4)")
        mask[[2 ** i for i in range(len(spec.G.dims))]] = True
    elif name == "polygon":
        if spec.G.name != "cyclic" or K < 3:
            raise SpecError("polygon codes need the cyclic basis and K >= 3; use --group cyclic")
        mask[1] = mask[K - 1] = True
    else:
        raise SpecError(f"unknown family {name!r}; use one of dnc, pairing, polygon, block:d, "
                        "hypercube, hybrid:pairing, zero, all")
    return _close_support(spec, mask)


def _parse_block(name: str) -> int:
    try:
        return int(name.split(":", 1)[1])
    except (IndexError, ValueError):
        raise SpecError(f"family {name!r}: write block:d with d the block size, e.g. block:4"
                        ) from None


# ----------------------------------------------------------------------------- equations
def _residual(spec, a, L, lam):
    """F (K,) and g (K,) at balanced values a (K,)."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = a ** L
    if not np.all(np.isfinite(z)):
        return np.full(a.shape, np.inf), np.zeros_like(a), z
    g = logit_gradient(spec, z)[0]
    if L == 1:
        F = g - lam * a
    else:
        F = g * a ** (L - 2) - lam
    return F, g, z


def _jacobian(spec, a, g, z, L, lam, reps, E):
    Hd = data_hessian(spec, z)
    # dg_j/da_k = -Hd[j,k] L a_k^{L-1}
    dg = -Hd * (L * a ** (L - 1))[None, :]
    if L == 1:
        J = dg - lam * np.eye(spec.K)
    else:
        J = dg * (a ** (L - 2))[:, None]
        if L > 2:
            J[np.diag_indices(spec.K)] += (L - 2) * g * a ** (L - 3)
    return (J @ E)[reps]


def _tol(lam, g):
    return NEWTON_RTOL * max(lam, float(np.max(np.abs(g))) if g.size else 0.0, 1e-300)


def newton(spec: ModelSpec, a0: np.ndarray, mask, maxit: int | None = None):
    """Damped Newton on the active equations F_j = 0 (j in the support ``mask``).

    a0 (K,) balanced start, > 0 on the support. Returns ``(a, converged, iterations, residual)``.
    """
    maxit = NEWTON_MAXIT if maxit is None else int(maxit)
    L = spec.L
    lam = float(spec.lam[0])
    mask = _close_support(spec, mask)
    reps, E = _reps(spec, mask)
    a = np.where(mask, np.asarray(a0, dtype=float), 0.0)
    if not reps:
        return a, True, 0, 0.0
    x = a[reps].copy()
    if np.any(x <= 0):
        raise ValueError("newton start must be > 0 on the support")
    F, g, z = _residual(spec, E @ x, L, lam)
    res = float(np.max(np.abs(F[reps])))
    for it in range(maxit):
        if res <= _tol(lam, g):
            return E @ x, True, it, res
        J = _jacobian(spec, E @ x, g, z, L, lam, reps, E)
        try:
            dx = np.linalg.solve(J, -F[reps])
        except np.linalg.LinAlgError:
            dx = np.linalg.lstsq(J, -F[reps], rcond=None)[0]
        if not np.all(np.isfinite(dx)):
            break
        t = 1.0
        neg = dx < 0
        if np.any(neg):
            t = min(1.0, 0.9 * float(np.min(x[neg] / -dx[neg])))
        improved = False
        for _ in range(40):
            xn = x + t * dx
            Fn, gn, zn = _residual(spec, E @ xn, L, lam)
            rn = float(np.max(np.abs(Fn[reps])))
            if np.isfinite(rn) and rn < res:
                x, F, g, z, res = xn, Fn, gn, zn, rn
                improved = True
                break
            t *= 0.5
        if not improved:
            break
    return E @ x, res <= _tol(lam, g) * 10, maxit, res


def _scalar_roots(spec: ModelSpec, mask) -> list:
    """Roots a > 0 of the one-unknown equation of a symmetric family (all support values a)."""
    L = spec.L
    lam = float(spec.lam[0])
    rep = int(np.flatnonzero(mask)[0])
    code, _ = spec.loss_code

    def h(loga):
        a = math.exp(loga)
        F, _, _ = _residual(spec, np.where(mask, a, 0.0), L, lam)
        return F[rep]

    zmax = (2.0 * math.sqrt(spec.n) if code == LOSS_MSE
            else 400.0 * spec.K * math.sqrt(spec.n))
    hi = math.log(zmax) / L
    lo = math.log(1e-12) / max(L, 1) if L >= 2 else -30.0
    grid = np.linspace(lo, hi, 600)
    vals = np.array([h(v) for v in grid])
    roots = []
    for i in range(len(grid) - 1):
        if vals[i] == 0.0:
            roots.append(math.exp(grid[i]))
        elif vals[i] * vals[i + 1] < 0:
            roots.append(math.exp(brentq(h, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-15)))
    return roots


# ----------------------------------------------------------------------------- assembly
def make_point(spec: ModelSpec, name: str, a: np.ndarray, converged: bool, method: str,
               info: dict | None = None) -> CriticalPoint:
    """Package balanced values a (K,) as a :class:`CriticalPoint` (loss, gradient, rank)."""
    a = np.asarray(a, dtype=float)
    s = np.ascontiguousarray(np.broadcast_to(a, (spec.L, spec.K)).copy())
    ds, loss, _ = vector_field(spec, s)
    z = np.prod(s, axis=0)
    zmax = float(np.max(np.abs(z))) if z.size else 0.0
    rank = int(np.sum(np.abs(z) > RANK_RTOL * zmax)) if zmax > 0 else 0
    info = dict(info or {})
    try:
        ev = reduced_hessian_eigs(spec, s)
        info["reduced_min_eig"] = float(ev[0])
        info["reduced_n_negative"] = int(np.sum(ev < -1e-9 * max(1.0, float(np.max(np.abs(ev))))))
    except np.linalg.LinAlgError:  # pragma: no cover
        pass
    return CriticalPoint(name, spec, s, z, float(loss), float(np.linalg.norm(ds)), rank,
                         bool(converged), method, info)


def solve_critical(spec: ModelSpec, a0, mask=None, name: str = "custom",
                   flow_fallback: bool = True) -> CriticalPoint:
    """A critical point from a balanced start ``a0`` (K,) (``s_{l,j} = a0_j``).

    Newton on the support ``mask`` (default: ``a0 > 0``); if it fails and ``flow_fallback``,
    integrate the reduced flow to stationarity and polish with Newton on the end point's
    numerical support. Returns a :class:`CriticalPoint` (``converged`` False if both fail).
    """
    lam = _check_spec(spec)
    a0 = np.asarray(a0, dtype=float)
    if a0.shape != (spec.K,):
        raise SpecError(f"start must have shape ({spec.K},), got {a0.shape}")
    spec.G.check_paired(a0, "start")
    mask = _close_support(spec, a0 > 0 if mask is None else mask)
    a, ok, it, res = newton(spec, a0, mask)
    if ok:
        return make_point(spec, name, a, True, "newton", {"newton_iterations": it,
                                                          "residual": res})
    if not flow_fallback:
        return make_point(spec, name, a, False, "newton", {"newton_iterations": it,
                                                           "residual": res})
    from ..integrate import flow
    s = spec.balanced(np.where(mask, a0, 0.0) ** spec.L)
    t_end = 50.0 / max(lam, 1e-3)
    for _ in range(6):
        tr = flow(spec, s, t_end, save_at=[t_end], rtol=1e-10, atol=1e-14)
        s = tr.s[-1]
        if np.linalg.norm(vector_field(spec, s)[0]) < 1e-8:
            break
    z = np.abs(np.prod(s, axis=0))
    sup = z > 1e-8 * max(float(z.max()), 1e-300)
    a1 = np.where(sup, z ** (1.0 / spec.L), 0.0)
    a, ok, it, res = newton(spec, a1, sup)
    return make_point(spec, name, a, ok, "flow+newton", {"newton_iterations": it,
                                                         "residual": res})


def _symmetric_family(spec: ModelSpec, name: str) -> list:
    mask = family_support(spec, name)
    if not mask.any():
        return [make_point(spec, name, np.zeros(spec.K), True, "exact", {})]
    roots = _scalar_roots(spec, mask)
    pts = []
    for r in roots:
        a, ok, it, res = newton(spec, np.where(mask, r, 0.0), mask)
        pts.append(make_point(spec, name, a, ok, "bisect+newton",
                              {"newton_iterations": it, "residual": res}))
    return pts


def _hybrid_family(spec: ModelSpec, name: str) -> list:
    base = name.split(":", 1)[1]
    inner = family_support(spec, base)
    rest = family_support(spec, "dnc") & ~inner
    code, _ = spec.loss_code
    if code != LOSS_MSE:
        rest[0] = False
    if not rest.any():
        return []
    ref = _symmetric_family(spec, base)
    if not ref:
        return []
    a_ref = float(np.max(ref[-1].s))
    found = []
    for fa, fb in itertools.product((1.0, 0.8, 1.2), (0.1, 0.3, 0.5, 0.7, 0.9)):
        a0 = np.where(inner, fa * a_ref, 0.0) + np.where(rest, fb * a_ref, 0.0)
        mask = inner | rest
        a, ok, it, res = newton(spec, a0, mask)
        if not ok:
            continue
        va = a[inner].mean()
        vb = a[rest].mean()
        if (vb <= 1e-6 * va or abs(va - vb) <= 1e-6 * va or np.ptp(a[inner]) > 1e-6 * va
                or np.ptp(a[rest]) > 1e-6 * va):
            continue
        if any(np.allclose(a, b, rtol=1e-7, atol=1e-12) for b in found):
            continue
        found.append(a)
    return [make_point(spec, name, a, True, "newton", {"levels": [float(a[inner].mean()),
                                                                 float(a[rest].mean())]})
            for a in found]


def critical_points(spec: ModelSpec, families="all", all_roots: bool = False) -> list:
    """Critical points of the named families, sorted by loss.

    Parameters
    ----------
    spec : ModelSpec (one weight decay value, > 0 for ce)
    families : ``"all"``, one name or a list (see :func:`family_names`)
    all_roots : also return the smaller (saddle) root of each symmetric family for L >= 3

    Returns
    -------
    list of :class:`CriticalPoint`, lowest loss first. A family without a non-zero critical
    point (weight decay too large) is omitted.
    """
    _check_spec(spec)
    if isinstance(families, str):
        names = family_names(spec) if families == "all" else [families]
    else:
        names = list(families)
    out = []
    for name in names:
        if name.startswith("hybrid:"):
            out.extend(_hybrid_family(spec, name))
            continue
        pts = _symmetric_family(spec, name)
        if not pts:
            continue
        if all_roots:
            for i, p in enumerate(pts[:-1]):
                p.name = f"{name}(saddle root {i + 1})"
            out.extend(pts)
        else:
            out.append(pts[-1])
    out.sort(key=lambda p: p.loss)
    return out
