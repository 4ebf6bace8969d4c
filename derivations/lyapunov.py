"""Item 4: the Lyapunov function of the balanced depth-2 cross-entropy flow.

V(z) = KL(uniform || q) over the non-constant modes, q_j = z_j / S, S = sum_{j>=1} z_j,
M = K - 1:

    V = sum_{j>=1} (1/M) log((1/M) / q_j) = log(S/M) - (1/M) sum_j log z_j >= 0,

zero iff all non-constant z_j are equal (NC). Along any flow with log-rates r_j = d log z_j/dt,

    dV/dt = sum_j (z_j/S - 1/M) r_j = (1/M) sum_j delta_j r_j,   delta_j = M z_j/S - 1.

Balanced depth 2 under ce: r_j = 2 g_j = 2 (1 - mu_j)/(K sqrt n), and with the character
identities (verified below for every group in GROUPS)

    A1  sum_{j>=1} (1 - mu_j)      = K (1 - p_0)     = K sum_{g!=0} p_g
    A2  sum_j z_j (1 - mu_j)       = K sqrt(n) sum_{g!=0} p_g m_g
    A3  sum_{j>=1} z_j             = sqrt(n) sum_{g!=0} m_g

one gets dV/dt = -(2/sqrt n) [ sum_g p_g / M - sum_g p_g m_g / sum_g m_g ]
             = (2 / (sqrt(n) M sum_g m_g)) sum_{g<h} (p_g - p_h)(m_g - m_h)   (Chebyshev)

and every pair term is <= 0 because p_g = e^{-m_g}/Z is strictly decreasing in m_g, with equality
iff all margins are equal, i.e. at NC.
"""
from __future__ import annotations

import itertools

import sympy as sp

from .closed_forms import GROUPS, margins, zsyms
from .symgroup import sym_group

rn = sp.Symbol("rn", positive=True)
M = sp.Symbol("M", positive=True)              # K - 1
Ssym = sp.Symbol("S", positive=True)           # sum_{j>=1} z_j
delta = sp.Symbol("delta", real=True)          # M z_j / S - 1
r = sp.Symbol("r", real=True)                  # d log z_j / dt
msum = sp.Symbol("margin_sum", positive=True)  # sum_{g!=0} m_g
Kc = sp.Symbol("K", positive=True)
pg, ph, mg, mh = sp.symbols("p_g p_h m_g m_h", real=True)
xx = sp.Symbol("x", real=True)


def value_forms(K_: int = 4) -> dict:
    """KL form == log-mean form == stable form (1/M) sum (delta - log1p delta), for concrete K."""
    z = sp.symbols(f"z1:{K_}", positive=True)
    Mv = K_ - 1
    S = sum(z)
    q = [zj / S for zj in z]
    V_kl = sum(sp.Rational(1, Mv) * sp.log(sp.Rational(1, Mv) / qj) for qj in q)
    V_lm = sp.log(S / Mv) - sum(sp.log(zj) for zj in z) / Mv
    d = [Mv * zj / S - 1 for zj in z]
    V_st = sum(dj - sp.log(1 + dj) for dj in d) / Mv
    ok1 = sp.simplify(sp.expand_log(V_kl - V_lm, force=True)) == 0
    ok2 = sp.simplify(sp.expand_log(sp.expand(V_st) - V_lm, force=True)) == 0
    # rate: dV/dt = sum dV/dz_j * z_j r_j == (1/M) sum delta_j r_j
    rs = sp.symbols(f"r1:{K_}", real=True)
    dV = sum(sp.diff(V_kl, zj) * zj * rj for zj, rj in zip(z, rs))
    claim = sum(dj * rj for dj, rj in zip(d, rs)) / Mv
    ok3 = sp.simplify(dV - claim) == 0
    # a common shift of the rates (equal weight decay at depth 2) drops out: sum delta_j = 0
    c = sp.Symbol("c", real=True)
    ok4 = sp.simplify(sum(d)) == 0 and sp.simplify(
        sum(sp.diff(V_kl, zj) * zj * (rj - c) for zj, rj in zip(z, rs)) - dV) == 0
    return dict(kl_eq_logmean=ok1, stable_form=ok2, rate_form=ok3, shift_invariant=ok4)


def identities(spec: str, K_: int) -> dict:
    """A1-A3 and the closed form of dV/dt (balanced depth 2, ce) for one group, exactly."""
    G = sym_group(spec, K_)
    z = zsyms(G)
    z = [sp.Integer(0)] + z[1:]            # mode 0 does not enter margins or V
    m = margins(G, z)                       # g = 1..K-1
    P = {g: sp.Symbol(f"p{G.elem_rep(g)}", positive=True) for g in range(1, K_)}
    p = [1 - sum(P[g] for g in range(1, K_))] + [P[g] for g in range(1, K_)]
    omm = [sp.expand(sum(((1 if g == 0 else 0) - p[g]) * G.C[g, j] for g in range(K_)))
           for j in range(K_)]
    A1 = sp.expand(sum(omm[1:]) - K_ * (1 - p[0])) == 0
    A2 = sp.expand(sum(z[j] * omm[j] for j in range(K_))
                   - K_ * rn * sum(p[g] * m[g - 1] for g in range(1, K_))) == 0
    A3 = sp.expand(sum(z[1:]) - rn * sum(m)) == 0
    # dV/dt from the general rate form with r_j = 2 (1 - mu_j)/(K sqrt n)
    Mv = K_ - 1
    S = sum(z[1:])
    rj = [2 * omm[j] / (K_ * rn) for j in range(K_)]
    dV = sum((z[j] / S - sp.Rational(1, Mv)) * rj[j] for j in range(1, K_))
    pairs = sum((p[g] - p[h]) * (m[g - 1] - m[h - 1])
                for g, h in itertools.combinations(range(1, K_), 2))
    closed = 2 / (rn * Mv * sum(m)) * pairs
    ok = sp.cancel(sp.together(dV - closed)) == 0
    # equality case: all margins equal  <=>  all non-constant z_j equal
    c = sp.Symbol("c", real=True)
    free = sorted({zz for zz in z[1:]}, key=str)
    sol = sp.solve([mm - c for mm in m], free, dict=True)
    nc = bool(sol) and all(sp.simplify(sol[0][f] - sol[0][free[0]]) == 0 for f in free)
    return dict(group=G.name, K=K_, A1=A1, A2=A2, A3=A3, closed_form=ok, equality_is_nc=nc)


def general_closed_form() -> dict:
    """From A1-A3 (symbolic K) to the closed form; the Chebyshev identity; the sign lemma."""
    omm_sum, zomm_sum, p1, pm = sp.symbols("Sigma_omm Sigma_zomm P_1 PM", real=True)
    # dV/dt = -(1/M) sum r_j + sum z_j r_j / S, r_j = 2 (1 - mu_j) / (K sqrt n)
    dV = -(2 / (Kc * rn)) * omm_sum / M + (2 / (Kc * rn)) * zomm_sum / Ssym
    dV = dV.subs({omm_sum: Kc * p1, zomm_sum: Kc * rn * pm, Ssym: rn * msum, M: Kc - 1})
    dV = sp.simplify(dV)
    target = -(2 / rn) * (p1 / (Kc - 1) - pm / msum)
    ok = sp.simplify(dV - target) == 0
    # Chebyshev: sum_{g<h} (p_g - p_h)(m_g - m_h) = M PM - P_1 msum, checked for M = 3 and 7
    cheb = True
    for Mv in (3, 7):
        ps = sp.symbols(f"q1:{Mv + 1}", real=True)
        ms = sp.symbols(f"n1:{Mv + 1}", real=True)
        lhs = sum((ps[a] - ps[b]) * (ms[a] - ms[b]) for a, b in itertools.combinations(range(Mv), 2))
        rhs = Mv * sum(a * b for a, b in zip(ps, ms)) - sum(ps) * sum(ms)
        cheb &= sp.expand(lhs - rhs) == 0
    final = sp.simplify(target * (Kc - 1) * msum * rn / 2)
    # sign lemma: (e^{-a} - e^{-b})(a - b) = -(a - b)^2 * int_0^1 e^{-(b + t(a-b))} dt
    a, b, t = sp.symbols("a b t", real=True)
    integ = sp.integrate(sp.exp(-(b + t * (a - b))), (t, 0, 1), conds="none")
    lhs = (sp.exp(-a) - sp.exp(-b)) * (a - b)
    sign_id = sp.simplify(-(a - b) ** 2 * integ - lhs) == 0
    integrand_pos = bool(sp.exp(-(b + t * (a - b))).is_positive)
    sign_ok = sign_id and integrand_pos
    return dict(dV=dV, target=target, ok=ok, chebyshev=cheb, numerator=final,
                integral=integ, sign_ok=bool(sign_ok))


def lyapunov_kernels() -> dict:
    """Expressions emitted by codegen for the Lyapunov kernels."""
    Mv = sp.Symbol("M", positive=True)
    zb = sp.Symbol("zbar", positive=True)
    zj = sp.Symbol("z", positive=True)
    # value: (1/M) sum phi(delta_j), phi(x) = x - log(1 + x); delta_j = z_j / zbar - 1
    phi = xx - sp.log(1 + xx)
    series = sp.series(phi, xx, 0, 20).removeO()
    return dict(
        delta=dict(expr=zj / zb - 1, args=(zj, zb)),
        phi=dict(expr=phi, args=(xx,)),
        phi_series=dict(expr=series, args=(xx,)),
        value_scale=dict(expr=1 / Mv, args=(Mv,)),
        # rate: (1/M) sum delta_j r_j
        rate_term=dict(expr=delta * r / Mv, args=(delta, r, Mv)),
        # balanced depth 2, ce: prefactor * sum_{g<h} (p_g - p_h)(m_g - m_h)
        l2_pair=dict(expr=(pg - ph) * (mg - mh), args=(pg, ph, mg, mh)),
        l2_prefactor=dict(expr=2 / (rn * Mv * msum), args=(rn, Mv, msum)),
    )


def run_symbolic() -> dict:
    out = dict(value=value_forms(4), general=general_closed_form())
    out["groups"] = [identities(spec, K_) for spec, K_ in GROUPS if K_ <= 6] + [
        identities("walsh", 8)]
    return out
