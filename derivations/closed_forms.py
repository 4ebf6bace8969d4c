"""Reduced loss, margins and logit gradient in closed form (issue 3, items 2 and 5).

Two levels:

* **general K** (:func:`general_kernels`): the per-sample loss of the class-0 column written
  with an abstract character table ``C[g, j]`` (``IndexedBase``) and symbolic ``K``, ``sqrt(n)``;
  sympy differentiates it, and the character identities ``C[0, j] = 1`` and
  ``sum_g C[g, j] = K delta_{j0}`` plus the softmax normalisation turn the result into the
  elementwise formulas the engine evaluates. These expressions are what ``codegen.py`` emits.
* **concrete groups** (:func:`margin_tables`, :func:`support_table`, ...): exact tables for
  small groups, checks of the identities used above, and the facts the engine relies on.
"""
from __future__ import annotations

import functools
import itertools

import sympy as sp

from .symgroup import sym_group

# ---------------------------------------------------------------- symbols shared with codegen
K = sp.Symbol("K", integer=True, positive=True)
rn = sp.Symbol("rn", positive=True)            # sqrt(n)
eps = sp.Symbol("eps", positive=True)          # label smoothing
omm = sp.Symbol("omm", real=True)              # 1 - mu_j, computed stably as C (e_0 - p)
mu = sp.Symbol("mu", real=True)
zj = sp.Symbol("z", real=True)                 # one logit singular value
msum = sp.Symbol("margin_sum", real=True)      # sum_{g != 0} m_g

_g, _k, _i = sp.symbols("g k i", integer=True, nonnegative=True)
_C = sp.IndexedBase("C")
_z = sp.IndexedBase("z")
_p = sp.IndexedBase("p")
_w = sp.IndexedBase("w")
_m = sp.IndexedBase("m")


def _u(g):
    """Class-0 column logit of class g: u_g = sum_k C[g,k] z_k / (K sqrt n)."""
    return sp.Sum(_C[g, _k] * _z[_k], (_k, 0, K - 1)) / (K * rn)


def _drop_range_piecewise(e):
    """``Piecewise((x, i <= K-1), (0, True)) -> x``: the mode index i lies in 0..K-1."""
    return e.replace(lambda a: isinstance(a, sp.Piecewise), lambda a: a.args[0][0])


def _softmax_to_p(e):
    """exp(u_g) -> w_g, then w_g / sum_h w_h -> p_g (normalised: sum_h p_h = 1)."""
    e = e.replace(lambda a: isinstance(a, sp.exp) and a.args[0].has(_C), lambda a: _w[_g])
    e = e.replace(lambda a: isinstance(a, sp.Sum) and a.function == _w[_g], lambda a: sp.S.One)
    return e.xreplace({_w[_g]: _p[_g]})


def _pull_sum_constants(e):
    """Sum(c * f(g), g) -> c * Sum(f(g), g) for factors c free of g."""
    def pull(s):
        f, lim = s.function, s.limits
        c, rest = sp.S.One, sp.S.One
        for fac in sp.Mul.make_args(sp.factor_terms(f)):
            if fac.has(lim[0][0]):
                rest *= fac
            else:
                c *= fac
        return c * sp.Sum(rest, *lim)
    return e.replace(lambda a: isinstance(a, sp.Sum), pull)


def _char_identities(e):
    """C[0, i] = 1 (chi_i(0) = 1); sum_g C[g, i] = K delta_{i0} -> 0 for i != 0;
    sum_g p_g C[g, i] = mu_i (eigenvalue of the softmax matrix)."""
    e = e.xreplace({_C[0, _i]: sp.S.One})
    e = e.replace(lambda a: isinstance(a, sp.Sum) and a.function == _C[_g, _i],
                  lambda a: sp.S.Zero)
    e = e.replace(lambda a: isinstance(a, sp.Sum) and a.function == _p[_g] * _C[_g, _i],
                  lambda a: mu)
    return e


@functools.lru_cache(maxsize=None)
def general_kernels() -> dict:
    """Derive the per-mode formulas for symbolic K. Returns name -> dict(expr, args, steps)."""
    out = {}
    # ---- cross-entropy
    ce = sp.log(sp.Sum(sp.exp(_u(_g)), (_g, 0, K - 1))) - _u(0)
    d = _drop_range_piecewise(sp.diff(ce, _z[_i]).doit())
    d = _char_identities(_pull_sum_constants(_softmax_to_p(d)))
    g_ce = sp.simplify((-d).subs(mu, 1 - omm))
    out["ce_grad"] = dict(expr=g_ce, args=(omm, K, rn), steps=[
        (r"\ell(z)=\log\sum_g e^{u_g}-u_0,\quad u_g=\frac{1}{K\sqrt n}\sum_k C_{gk}z_k", ce),
        (r"-\partial\ell/\partial z_j \text{ with } p_g=e^{u_g}/\sum_h e^{u_h},"
         r"\ \mu_j=\sum_g p_g C_{gj},\ C_{0j}=1", -d),
        (r"g_j \text{ in terms of } 1-\mu_j", g_ce)])
    # ---- label-smoothed cross-entropy (targets (1-eps) e_y + eps/K)
    ls = (sp.log(sp.Sum(sp.exp(_u(_g)), (_g, 0, K - 1))) - (1 - eps) * _u(0)
          - eps / K * sp.Sum(_u(_g), (_g, 0, K - 1)))
    d = _drop_range_piecewise(sp.diff(ls, _z[_i]).doit())
    d = _char_identities(_pull_sum_constants(_softmax_to_p(d)))
    g_ls = sp.simplify((-d).subs(mu, 1 - omm))
    out["ls_grad"] = dict(expr=g_ls, args=(omm, eps, K, rn), steps=[
        (r"\ell_\varepsilon=\log\sum_g e^{u_g}-(1-\varepsilon)u_0-\frac{\varepsilon}{K}"
         r"\sum_g u_g", ls),
        (r"g_j\ (j\neq 0;\ \textstyle\sum_g C_{gj}=K\delta_{j0})", g_ls)])
    # label smoothing adds (eps/K) sum_g (u_0 - u_g) = (eps/K) sum_g m_g to the CE loss
    ug = sp.IndexedBase("u")
    lse = sp.log(sp.Sum(sp.exp(ug[_g]), (_g, 0, K - 1)))
    extra = sp.expand((lse - (1 - eps) * ug[0] - eps / K * sp.Sum(ug[_g], (_g, 0, K - 1)))
                      - (lse - ug[0]))
    # sum_g u_g = K u_0 - sum_{g != 0} m_g  (m_g = u_0 - u_g, m_0 = 0)
    extra_m = sp.simplify(extra.subs(sp.Sum(ug[_g], (_g, 0, K - 1)), K * ug[0] - msum))
    out["ls_loss_extra"] = dict(expr=extra_m, args=(msum, eps, K), steps=[
        (r"\ell_\varepsilon-\ell=\varepsilon u_0-\frac{\varepsilon}{K}\sum_g u_g", extra),
        (r"\text{with } \sum_g u_g = K u_0-\sum_{g\neq0} m_g", extra_m)])
    # ---- MSE: u - e_0 = C (z / sqrt n - 1) / K, and C^T C = K I on paired vectors
    Cm = sp.MatrixSymbol("C", K, K)
    xm = sp.MatrixSymbol("x", K, 1)
    quad = ((Cm * xm).T * (Cm * xm)) / (2 * K ** 2)
    quad_r = quad.subs(Cm.T * Cm, K * sp.Identity(K))
    coef = sp.Mul(*[a for a in quad_r.args if not isinstance(a, sp.MatrixExpr)])
    term = sp.simplify(coef * (zj / rn - 1) ** 2)
    out["mse_loss_term"] = dict(expr=term, args=(zj, K, rn), steps=[
        (r"\tfrac12\|u-e_0\|^2,\ u-e_0=\tfrac1K C(z/\sqrt n-\mathbf 1)", quad),
        (r"C^\top C=K\,I\ (\text{paired modes equal}) \Rightarrow", quad_r),
        (r"\text{per mode}", term)])
    g_mse = sp.simplify(-sp.diff(term, zj))
    out["mse_grad"] = dict(expr=g_mse, args=(zj, K, rn), steps=[
        (r"g_j=-\partial/\partial z_j", g_mse)])
    return out


# ---------------------------------------------------------------- concrete groups
GROUPS = [("walsh", 2), ("cyclic", 3), ("walsh", 4), ("cyclic", 5), ("2,3", 6), ("walsh", 8)]


def zsyms(G, name="z"):
    """Symbols for the modes, paired modes sharing one symbol."""
    base = [sp.Symbol(f"{name}{j}", real=True) for j in range(G.K)]
    return [base[G.mode_rep(j)] for j in range(G.K)]


def margins(G, z, rnv=rn):
    """m_g = u_0 - u_g = (1/(K sqrt n)) sum_j z_j (1 - C[g, j]), g = 1..K-1."""
    return [sp.expand(sum(z[j] * (1 - G.C[g, j]) for j in range(G.K)) / (G.K * rnv))
            for g in range(1, G.K)]


def identity_checks(G) -> list:
    """The character identities used by :func:`general_kernels` hold exactly for G."""
    K_ = G.K
    C = G.C
    z = zsyms(G)
    ok = []
    ok.append(all(C[0, j] == 1 for j in range(K_)))
    ok.append(all(sp.nsimplify(sp.simplify(sum(C[g, j] for g in range(K_)) - (K_ if j == 0 else 0)))
                  == 0 for j in range(K_)))
    # C^T C z = K z for paired z (the MSE step), C symmetric, C[-g, j] = C[g, j]
    CtCz = (C.T * C) * sp.Matrix(z)
    ok.append(all(sp.simplify(CtCz[j] - K_ * z[j]) == 0 for j in range(K_)))
    ok.append(all(sp.simplify(C[g, j] - C[j, g]) == 0 for g in range(K_) for j in range(K_)))
    ok.append(all(sp.simplify(C[G.neg[g], j] - C[g, j]) == 0
                  for g in range(K_) for j in range(K_)))
    return ok


def reduced_loss_check(G) -> bool:
    """log sum_g e^{u_g} - u_0 == log(1 + sum_{g != 0} e^{-m_g}) exactly."""
    z = zsyms(G)
    u = [sum(G.C[g, j] * z[j] for j in range(G.K)) / (G.K * rn) for g in range(G.K)]
    lhs = sp.exp(sp.log(sum(sp.exp(x) for x in u)) - u[0])
    rhs = 1 + sum(sp.exp(-m) for m in margins(G, z))
    return sp.simplify(sp.expand(lhs - rhs)) == 0


def margin_tables() -> list:
    rows = []
    for spec, K_ in GROUPS:
        G = sym_group(spec, K_)
        z = zsyms(G)
        rows.append((G, [sp.simplify(m * G.K * rn) for m in margins(G, z)]))
    return rows


def g_at_zero(G) -> list:
    """g_j(0) = (1 - mu_j)/(K sqrt n) at p uniform: (1 - delta_{j0}) / (K sqrt n)."""
    p = [sp.Rational(1, G.K)] * G.K
    return [sp.simplify(sum(((1 if g == 0 else 0) - p[g]) * G.C[g, j] for g in range(G.K))
                        / (G.K * rn)) for j in range(G.K)]


def mode0_fixed(G) -> bool:
    """mu_0 = sum_g p_g C[g, 0] = sum_g p_g = 1 for any probability vector: g_0 = 0 (ce, ls)."""
    ps = sp.symbols(f"p0:{G.K}", positive=True)
    mu0 = sum(ps[g] * G.C[g, 0] for g in range(G.K))
    return sp.simplify(mu0 - sum(ps)) == 0


def support_table(G) -> dict:
    """Which supports S of z >= 0 give all margins > 0.

    m_g = (1/(K sqrt n)) sum_{j in S} z_j (1 - Re chi_j(g)) with every term >= 0, so m_g > 0
    for all z_S > 0 iff some j in S has chi_j(g) != 1. Hence: all margins positive iff the
    characters in S have trivial common kernel. Returns minimal supports and the check that the
    criterion matches the direct evaluation for every support.
    """
    K_ = G.K
    reps = sorted({G.mode_rep(j) for j in range(1, K_)})
    members = {r: [j for j in range(K_) if G.mode_rep(j) == r] for r in reps}
    minimal, agree = [], True
    for size in range(1, len(reps) + 1):
        for S in itertools.combinations(reps, size):
            modes = [j for r in S for j in members[r]]
            direct = all(any(sp.simplify(1 - G.C[g, j]) != 0 for j in modes)
                         for g in range(1, K_))
            # criterion via kernels: g in ker chi_j iff C[g, j] == 1 (|chi| = 1)
            kern = [g for g in range(K_) if all(G.C[g, j] == 1 for j in modes)]
            agree &= (direct == (kern == [0]))
            if direct and not any(set(m) <= set(S) for m in minimal):
                minimal.append(S)
    return dict(minimal=minimal, agree=agree, reps=reps)


# ---------------------------------------------------------------- fixed points (item 5)
def fixed_points() -> dict:
    """NC fixed points with weight decay.

    At NC (z_j = z for j >= 1, z_0 = 0) every margin equals z / sqrt n and
    1 - mu_j = K e^{-m}/(1 + (K-1) e^{-m}). Stationarity of ds_l = g prod_{m != l} s_m - lam_l s_l
    gives lam_l s_l^2 = g z for every l, and multiplying the L equations
    g(z)^L z^(L-2) = prod_l lam_l, i.e. g(z) z^(1 - 2/L) = lam_bar := (prod lam_l)^(1/L).
    """
    z, lam, m, nn = sp.symbols("z lambda m n", positive=True)
    Lsym = sp.Symbol("L", integer=True, positive=True)
    Kc = sp.Symbol("K", positive=True)
    res = {}
    # 1 - mu_j at NC for a concrete group, checked symbolically (K = 4 walsh and K = 3 cyclic)
    checks = []
    for spec, K_ in (("walsh", 4), ("cyclic", 3), ("2,3", 6)):
        G = sym_group(spec, K_)
        e = sp.Symbol("e", positive=True)   # e^{-m}
        p = [1 / (1 + (K_ - 1) * e)] + [e / (1 + (K_ - 1) * e)] * (K_ - 1)
        om = [sp.simplify(sum(((1 if g == 0 else 0) - p[g]) * G.C[g, j] for g in range(K_)))
              for j in range(1, K_)]
        checks.append(all(sp.simplify(o - K_ * e / (1 + (K_ - 1) * e)) == 0 for o in om))
    res["nc_omm_checks"] = checks
    g_nc = 1 / (rn * (sp.exp(z / rn) + Kc - 1))          # (1 - mu)/(K sqrt n) at NC
    res["g_nc"] = g_nc
    # ce, depth 2, equal lambda: g(z) = lambda
    sol = sp.solve(sp.Eq(g_nc, lam), z)
    res["ce_L2"] = sol
    # general depth: the scalar equation
    res["ce_general"] = sp.Eq(g_nc * z ** (1 - 2 / Lsym), lam)
    # mse depth 2: (1 - z/rn)/(K rn) = lambda
    res["mse_L2"] = sp.solve(sp.Eq((1 - z / rn) / (Kc * rn), lam), z)
    # label smoothing, depth 2: (K e^{-m}/(1+(K-1)e^{-m}) - eps)/(K rn) = lambda
    g_ls = (Kc / (sp.exp(z / rn) + Kc - 1) - eps) / (Kc * rn)
    res["ls_L2"] = sp.solve(sp.Eq(g_ls, lam), z)
    res["ls_free"] = sp.solve(sp.Eq(g_ls, 0), z)
    # unequal lambda at depth 2: g s2 = lam1 s1, g s1 = lam2 s2 -> g = sqrt(lam1 lam2)
    s1, s2, l1, l2, gg = sp.symbols("s1 s2 lambda1 lambda2 g", positive=True)
    res["L2_unequal"] = sp.solve([gg * s2 - l1 * s1, gg * s1 - l2 * s2], [gg, s2], dict=True)
    # numeric sanity of the closed form against the library field (K=4, n=2, lam=0.01)
    return res
