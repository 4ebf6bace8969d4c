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
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

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


def check_reduction(spec: str, K: int, L: int, n: int, loss: str, basis=None) -> dict:
    """Run the derivation for one configuration; returns a dict of booleans and timings.

    Matrix products are exact, in the polynomial ring QQ<sqrt2, sqrt3>[s, p, lambda, eps]
    (sympy DomainMatrix): the same algebra as sympy expressions, only faster. ``basis``
    replaces the character basis Q (negative control: a non-character orthogonal matrix).
    """
    t0 = time.perf_counter()
    G = sym_group(spec, K)
    N = n * K
    lam = sp.symbols(f"lambda1:{L + 1}", nonnegative=True)
    eps = sp.Symbol("epsilon", positive=True)
    reps = sorted({G.mode_rep(j) for j in range(K)})
    sym_s = {(l, r): sp.Symbol(f"s{l + 1}_{r}", positive=True) for l in range(L) for r in reps}
    s = [[sym_s[(l, G.mode_rep(j))] for j in range(K)] for l in range(L)]
    z = [sp.Mul(*[s[l][j] for l in range(L)]) for j in range(K)]
    prep = {g: sp.Symbol(f"p{G.elem_rep(g)}", positive=True) for g in range(K)}
    psyms = sorted({prep[g] for g in range(1, K)}, key=str)
    gens = list(sym_s.values()) + psyms + list(lam) + [eps]
    dom = QQ.algebraic_field(sp.sqrt(2), sp.sqrt(3))[gens]

    def dm(M):
        M = sp.Matrix(M)
        return DomainMatrix([[dom.from_sympy(sp.expand(e)) for e in row] for row in M.tolist()],
                            M.shape, dom)

    Q = G.Q if basis is None else sp.Matrix(basis)
    B = sp.Matrix(N, K, lambda i, j: Q[i // n, j] / sp.sqrt(n))
    frames_s = [B] + [householder_frame(K + 1, K, l) for l in range(1, L)] + [Q]
    frames = [dm(R) for R in frames_s]
    F = [frames[l + 1] * dm(sp.diag(*s[l])) * frames[l].transpose() for l in range(L)]
    Z = F[L - 1]
    for l in range(L - 2, -1, -1):
        Z = Z * F[l]
    u = [sp.expand(sum(G.C[g, j] * z[j] for j in range(K)) / (K * sp.sqrt(n))) for g in range(K)]
    ud = [dom.from_sympy(e) for e in u]
    Zl = Z.to_list()
    lemma = all(Zl[k][c * n + r] == ud[G.sub[k][c]]
                for k in range(K) for c in range(K) for r in range(n))
    even = all(ud[g] == ud[G.neg[g]] for g in range(K))
    # probability symbols p_g (p_{-g} = p_g), normalised by p_0 = 1 - sum_{g != 0} p_g
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
                e = sp.cancel(sp.expand(e.xreplace(p0_sub)))
            for r in range(n):
                Gd[k, c * n + r] = e / N
    gradZ = dm(Gd)
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
        U = F[L - 1] if l < L - 1 else None
        for m in range(L - 2, l, -1):
            U = U * F[m]
        Dm = None
        for m in range(0, l):
            Dm = F[m] if Dm is None else F[m] * Dm
        grad = gradZ if U is None else U.transpose() * gradZ
        if Dm is not None:
            grad = grad * Dm.transpose()
        grad = grad + F[l] * dom.from_sympy(lam[l])
        Rl, Rm = frames[l + 1], frames[l]
        P = (Rl.transpose() * grad * Rm).to_list()
        offdiag_zero &= all(P[a][b] == dom.zero for a in range(K) for b in range(K) if a != b)
        out_l = grad - Rl * (Rl.transpose() * grad)
        out_r = grad - (grad * Rm) * Rm.transpose()
        outside_zero &= out_l.is_zero_matrix and out_r.is_zero_matrix
        for j in range(K):
            others = sp.Mul(*[s[m][j] for m in range(L) if m != l])
            expected = dom.from_sympy(sp.expand(gj[j] * others - lam[l] * s[l][j]))
            diag_match &= (-P[j][j] == expected)
    return dict(group=G.name, K=K, L=L, n=n, loss=loss, lemma=bool(lemma), even=bool(even),
                offdiag_zero=bool(offdiag_zero), outside_zero=bool(outside_zero),
                diag_match=bool(diag_match), seconds=time.perf_counter() - t0)


# configurations run by `svdyn derive`: every loss, depth 2 and 3, n = 1 and 2 for the
# walsh K = 2, 4 and cyclic K = 3 bases; the product group Z_2 x Z_3 (K = 6, complex
# characters) for every loss at depth 2, n = 1 plus mse (L=2, n=2), ls (L=3, n=1) and
# ce (L=3, n=2) (the full K = 6 grid costs ~3 min of sympy time, over the CI budget).
CONFIGS = ([(spec, K, L, n, loss)
            for (spec, K) in (("walsh", 2), ("cyclic", 3), ("walsh", 4))
            for L in (2, 3) for n in (1, 2) for loss in ("ce", "mse", "ls")]
           + [("2,3", 6, 2, 1, loss) for loss in ("ce", "mse", "ls")]
           + [("2,3", 6, 2, 2, "mse"), ("2,3", 6, 3, 1, "ls"), ("2,3", 6, 3, 2, "ce")])
