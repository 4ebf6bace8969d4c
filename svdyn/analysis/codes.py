"""Softmax codes (Jiang et al., ICML 2024) and the codes reachable from spectral initialisation.

A code is K unit vectors ``w_1..w_K`` in R^d. Its one-vs-rest margin is

    rho(W) = min_k dist(w_k, conv{w_j : j != k})
           = min_k max_{|h| <= 1} min_{j != k} <w_k - w_j, h>,

(the second form by minimax: the best unit feature h for class k). The softmax code for (d, K)
maximises rho over codes; it is computed here numerically: the epigraph problem
``max t s.t. <w_k - w_j, h_k> >= t, |w_k| = 1, |h_k| <= 1`` by SLSQP from several random
starts, and the winner's rho re-evaluated exactly (one small simplex-constrained least-squares
problem per class, by NNLS with a heavily weighted sum-to-one row).

A spectral state with logit singular values z gives the self-dual code
``v_k = (Q[k, j] sqrt(z_j))_{j in supp z}`` (class-mean logits ``<v_c, v_k> / sqrt n``); for the
walsh and cyclic bases all ``|v_k|`` are equal (paired modes carry equal z), so the normalised
``w_k = v_k / |v_k|`` is a code in R^rank.
"""
from __future__ import annotations

import math

import numpy as np

from ..groups import SpecError, default_group, make_group


def one_vs_rest(W: np.ndarray) -> np.ndarray:
    """(K,) distances ``dist(w_k, conv{w_j, j != k})`` for a code W (K, d)."""
    from scipy.optimize import nnls
    W = np.asarray(W, float)
    K = W.shape[0]
    out = np.empty(K)
    big = 1e4
    for k in range(K):
        R = np.delete(W, k, axis=0).T  # (d, K-1)
        A = np.vstack([R, big * np.ones((1, K - 1))])
        b = np.concatenate([W[k], [big]])
        lam, _ = nnls(A, b, maxiter=2000)
        lam = lam / lam.sum()
        out[k] = np.linalg.norm(W[k] - R @ lam)
    return out


def code_margin(W: np.ndarray) -> float:
    """One-vs-rest margin ``rho(W)`` of unit vectors W (K, d) (rows normalised first)."""
    W = np.asarray(W, float)
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    return float(one_vs_rest(W).min())


def softmax_code(d: int, K: int, restarts: int = 8, seed: int = 0) -> dict:
    """Numerical softmax code: ``{"margin", "vectors" (K, d), "restarts", "margins_found"}``."""
    from scipy.optimize import minimize
    if d < 1 or K < 2:
        raise SpecError(f"need --dim >= 1 and --classes >= 2, got d={d}, K={K}")
    rng = np.random.default_rng(seed)
    pairs = [(k, j) for k in range(K) for j in range(K) if j != k]
    nW = K * d

    def unpack(x):
        return x[:nW].reshape(K, d), x[nW:2 * nW].reshape(K, d), x[-1]

    def cons_ineq(x):
        W, H, t = unpack(x)
        return np.concatenate([np.sum((W[kk] - W[jj]) * H[kk], axis=1) - t,
                               1.0 - np.sum(H * H, axis=1)])

    def cons_eq(x):
        W, _, _ = unpack(x)
        return np.sum(W * W, axis=1) - 1.0

    P = len(pairs)
    kk = np.array([k for k, _ in pairs])
    jj = np.array([j for _, j in pairs])
    cols = np.arange(d)

    def jac_ineq(x):
        W, H, _ = unpack(x)
        J = np.zeros((P + K, 2 * nW + 1))
        rows = np.arange(P)[:, None]
        J[rows, kk[:, None] * d + cols] += H[kk]
        J[rows, jj[:, None] * d + cols] -= H[kk]
        J[rows, nW + kk[:, None] * d + cols] = W[kk] - W[jj]
        J[:P, -1] = -1.0
        for k in range(K):
            J[P + k, nW + k * d: nW + (k + 1) * d] = -2.0 * H[k]
        return J

    def jac_eq(x):
        W, _, _ = unpack(x)
        J = np.zeros((K, 2 * nW + 1))
        for k in range(K):
            J[k, k * d:(k + 1) * d] = 2.0 * W[k]
        return J

    best, found = None, []
    for _ in range(restarts):
        W = rng.normal(size=(K, d))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        H = W.copy()
        t0 = min(np.dot(W[k] - W[j], H[k]) for k, j in pairs)
        x0 = np.concatenate([W.ravel(), H.ravel(), [t0]])
        res = minimize(lambda x: -x[-1], x0, jac=lambda x: np.r_[np.zeros(2 * nW), -1.0],
                       constraints=[{"type": "ineq", "fun": cons_ineq, "jac": jac_ineq},
                                    {"type": "eq", "fun": cons_eq, "jac": jac_eq}],
                       method="SLSQP", options={"maxiter": 500, "ftol": 1e-12})
        Wf = unpack(res.x)[0]
        Wf = Wf / np.linalg.norm(Wf, axis=1, keepdims=True)
        m = code_margin(Wf)
        found.append(m)
        if best is None or m > best[0]:
            best = (m, Wf)
    return {"dim": d, "classes": K, "margin": best[0], "vectors": best[1].tolist(),
            "restarts": restarts, "margins_found": sorted(found, reverse=True)}


def spectral_code(K: int, z, group: str = "") -> np.ndarray:
    """Unit code (K, rank) of a spectral logit vector z (K,), see module docstring."""
    G = make_group(group or default_group(K), K)
    z = np.asarray(z, float)
    S = np.nonzero(z > 1e-12 * z.max())[0]
    S = S[S != 0]
    V = G.Q[:, S] * np.sqrt(z[S])[None, :]
    nr = np.linalg.norm(V, axis=1)
    if not np.allclose(nr, nr[0], rtol=1e-9):
        raise ValueError("spectral code with unequal norms (paired modes must carry equal z)")
    return V / nr[:, None]


def best_spectral_code(K: int, rank: int, group: str = "") -> dict | None:
    """Largest one-vs-rest margin among the spectral max-margin vertices with this rank
    (complete vertex list when the enumeration is exact). None if no vertex has that rank."""
    from .maxmargin import mode_classes, vertices, x_to_z
    G = make_group(group or default_group(K), K)
    X, cls, exact, _ = vertices(G)
    best = None
    seen = set()
    for x in X:
        z = x_to_z(G, x)
        r = int(np.sum(z > 1e-12))
        if r != rank:
            continue
        key = tuple(np.round(np.sort(z), 9))
        if key in seen:
            continue
        seen.add(key)
        m = code_margin(spectral_code(K, z, G.name))
        if best is None or m > best["margin"] + 1e-12:
            best = {"margin": m, "z": z.tolist(), "support": np.nonzero(z > 1e-12)[0].tolist()}
    if best is not None:
        best.update({"group": G.name, "rank": rank, "exact": exact})
    return best


def compare(d: int, K: int, groups=None, restarts: int = 8, seed: int = 0) -> dict:
    """Softmax code for (d, K) against the best spectral code of rank d for each group."""
    sc = softmax_code(d, K, restarts, seed)
    if groups is None:
        groups = ["cyclic"] + (["walsh"] if K & (K - 1) == 0 else [])
    rows = []
    for g in groups:
        b = best_spectral_code(K, d, g)
        if b is None:
            rows.append({"group": g, "rank": d, "margin": None,
                         "reachable": False, "note": "no spectral vertex of this rank"})
            continue
        b["reachable"] = bool(b["margin"] >= sc["margin"] * (1 - 1e-6))
        b["gap"] = sc["margin"] - b["margin"]
        rows.append(b)
    return {**sc, "spectral": rows}
