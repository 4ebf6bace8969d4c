"""Item 1: the reduction, derived from the full matrix model.

For a group G (exact character basis Q), depth L, n samples per class and a loss, build
symbolic full matrices under spectral initialisation

    F_1 = R_1 diag(s_1) B^T,  F_l = R_l diag(s_l) R_{l-1}^T,  F_L = Q diag(s_L) R_{L-1}^T,
    B = (Q kron 1_n) / sqrt(n),

with symbolic singular values s_{l,j} (paired modes share a symbol), exact rational frames
R_l (the first K columns of a Householder reflection of size K+1, so the hidden widths exceed
K and out-of-frame components are tested), and symbolic weight decays lambda_l. Then:

1. the logit matrix: Z[k, (c, r)] == u_{k-c} with u_g = sum_j C[g,j] z_j/(K sqrt n),
   z_j = prod_l s_{l,j}, and u_{-g} == u_g (the lemma);
2. the per-sample loss is differentiated by sympy with respect to its logit column; by (1)
   column c's softmax is the translate by c of one probability vector p (p_{-g} = p_g), so
   exp(logit) is replaced by the probability symbols p_g (normalised: p_0 = 1 - sum_{g!=0} p_g);
3. the chain rule gives dloss/dF_l = (F_L..F_{l+1})^T dloss/dZ (F_{l-1}..F_1)^T + lambda_l F_l,
   with dloss/dZ = (per-sample gradients)/N;
4. checks, by exact expansion to 0: (a) R_l^T grad_l R_{l-1} is diagonal and grad_l has no
   component outside the frames; (b) -diag(R_l^T grad_l R_{l-1}) equals the reduced right-hand
   side g_j prod_{m != l} s_{m,j} - lambda_l s_{l,j}, with g_j evaluated by the *generated kernel
   expressions* (closed_forms.general_kernels) at omm_j = sum_g (delta_{g0} - p_g) C[g,j].
"""
from __future__ import annotations

import time

import sympy as sp

from .closed_forms import general_kernels
from .closed_forms import K as K_sym, eps as eps_sym, omm as omm_sym, rn as rn_sym, zj as z_sym
from .symgroup import sym_group


def householder_frame(d: int, K: int, seed: int) -> sp.Matrix:
    """First K columns of I - 2 v v^T / v^T v (exact, rational, orthonormal columns)."""
    v = sp.Matrix([sp.Integer((3 * i + 2 * seed + 1) % 7 + 1) for i in range(d)])
    H = sp.eye(d) - 2 * v * v.T / (v.T * v)[0, 0]
    return H[:, :K]


def _column_grad(loss: str, K: int, y: int, eps):
    x = sp.symbols(f"x0:{K}", real=True)
    if loss == "ce":
        ell = sp.log(sum(sp.exp(t) for t in x)) - x[y]
    elif loss == "ls":
        ell = sp.log(sum(sp.exp(t) for t in x)) - (1 - eps) * x[y] - eps / K * sum(x)
    elif loss == "mse":
        ell = sum((x[k] - (1 if k == y else 0)) ** 2 for k in range(K)) / 2
    else:
        raise ValueError(loss)
    return x, ell, [sp.diff(ell, t) for t in x]


def check_reduction(spec: str, K: int, L: int, n: int, loss: str) -> dict:
    """Run the derivation for one configuration; returns a dict of booleans and timings."""
    t0 = time.perf_counter()
    G = sym_group(spec, K)
    N = n * K
    lam = sp.symbols(f"lambda1:{L + 1}", nonnegative=True)
    eps = sp.Symbol("epsilon", positive=True)
    s = [[sp.Symbol(f"s{l + 1}_{G.mode_rep(j)}", positive=True) for j in range(K)]
         for l in range(L)]
    z = [sp.Mul(*[s[l][j] for l in range(L)]) for j in range(K)]
    Q = G.Q
    B = sp.Matrix(N, K, lambda i, j: Q[i // n, j] / sp.sqrt(n))
    frames = [B] + [householder_frame(K + 1, K, l) for l in range(1, L)] + [Q]
    F = [frames[l + 1] * sp.diag(*s[l]) * frames[l].T for l in range(L)]
    Z = F[L - 1]
    for l in range(L - 2, -1, -1):
        Z = Z * F[l]
    Z = Z.applyfunc(sp.expand)
    u = [sp.expand(sum(G.C[g, j] * z[j] for j in range(K)) / (K * sp.sqrt(n))) for g in range(K)]
    lemma = all(sp.expand(Z[k, c * n + r] - u[G.sub[k][c]]) == 0
                for k in range(K) for c in range(K) for r in range(n))
    even = all(sp.expand(u[g] - u[G.neg[g]]) == 0 for g in range(K))
    # probability symbols p_g (p_{-g} = p_g), normalised
    prep = {g: sp.Symbol(f"p{G.elem_rep(g)}", positive=True) for g in range(K)}
    p0_sub = {prep[0]: 1 - sum(prep[g] for g in range(1, K))}
    v = sp.symbols(f"v0:{K}", real=True)
    Gd = sp.zeros(K, N)
    for c in range(K):
        x, _, dl = _column_grad(loss, K, c, eps)
        for k in range(K):
            e = dl[k]
            if loss == "mse":
                e = e.xreplace({x[h]: u[G.sub[h][c]] for h in range(K)})
            else:
                e = e.xreplace({x[h]: v[G.sub[h][c]] for h in range(K)})
                e = e.xreplace({sp.exp(v[g]): prep[g] for g in range(K)})
                e = sp.expand(e.xreplace(p0_sub))
            for r in range(n):
                Gd[k, c * n + r] = e
    gradZ = Gd / N
    # the reduced right-hand side with the generated per-mode formulas
    kern = general_kernels()
    pvec = [p0_sub[prep[0]] if g == 0 else prep[g] for g in range(K)]
    omm = [sp.expand(sum(((1 if g == 0 else 0) - pvec[g]) * G.C[g, j] for g in range(K)))
           for j in range(K)]
    sub_common = {K_sym: K, rn_sym: sp.sqrt(n), eps_sym: eps}
    gj = []
    for j in range(K):
        if loss == "ce":
            e = kern["ce_grad"]["expr"].subs({**sub_common, omm_sym: omm[j]})
        elif loss == "ls":
            e = (kern["ls_grad"]["expr"].subs({**sub_common, omm_sym: omm[j]}) if j
                 else sp.Integer(0))
        else:
            e = kern["mse_grad"]["expr"].subs({**sub_common, z_sym: z[j]})
        gj.append(sp.expand(e))
    offdiag_zero, outside_zero, diag_match = True, True, True
    for l in range(L):
        U = sp.eye(K)
        for m in range(L - 1, l, -1):
            U = U * F[m]
        # Dm = F_{l-1} ... F_1 (identity of size N when l = 0)
        Dm = sp.eye(N)
        for m in range(0, l):
            Dm = F[m] * Dm
        grad = U.T * gradZ * Dm.T + lam[l] * F[l]
        Rl, Rm = frames[l + 1], frames[l]
        P = (Rl.T * grad * Rm).applyfunc(sp.expand)
        for a in range(K):
            for b in range(K):
                if a != b and P[a, b] != 0:
                    offdiag_zero = False
        out_l = ((sp.eye(Rl.shape[0]) - Rl * Rl.T) * grad).applyfunc(sp.expand)
        out_r = (grad * (sp.eye(Rm.shape[0]) - Rm * Rm.T)).applyfunc(sp.expand)
        outside_zero &= out_l.is_zero_matrix and out_r.is_zero_matrix
        for j in range(K):
            others = sp.Mul(*[s[m][j] for m in range(L) if m != l])
            expected = gj[j] * others - lam[l] * s[l][j]
            if sp.expand(-P[j, j] - expected) != 0:
                diag_match = False
    return dict(group=G.name, K=K, L=L, n=n, loss=loss, lemma=bool(lemma), even=bool(even),
                offdiag_zero=bool(offdiag_zero), outside_zero=bool(outside_zero),
                diag_match=bool(diag_match), seconds=time.perf_counter() - t0)


# configurations run by `svdyn derive` (all of them) and by the tests (a subset)
CONFIGS = [(spec, K, L, n, loss)
           for (spec, K) in (("walsh", 2), ("cyclic", 3), ("walsh", 4), ("2,3", 6))
           for L in (2, 3) for n in (1, 2) for loss in ("ce", "mse", "ls")]
