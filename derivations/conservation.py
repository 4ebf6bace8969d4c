"""Item 3: conservation laws of the reduced dynamics (one mode j; the index is dropped).

Reduced field (derived in reduction.py): ds_l/dt = g(z) P_l - lambda_l s_l, P_l = prod_{m != l} s_m,
z = prod_l s_l. Gradient descent: s_l' = s_l + eta (g P_l - lambda_l s_l), every factor updated
with the same g = g(z) of the current step.
"""
from __future__ import annotations

import sympy as sp


def derive(depths=(2, 3, 4)) -> dict:
    out = {}
    t = sp.Symbol("t", nonnegative=True)
    g, eta = sp.symbols("g eta", real=True)
    for L in depths:
        s = sp.symbols(f"s1:{L + 1}", positive=True)
        lam = sp.symbols(f"lambda1:{L + 1}", nonnegative=True)
        P = [sp.Mul(*[s[m] for m in range(L) if m != l]) for l in range(L)]
        ds = [g * P[l] - lam[l] * s[l] for l in range(L)]
        # gradient flow: d/dt (s_l^2 - s_m^2)
        d01 = sp.expand(2 * s[0] * ds[0] - 2 * s[1] * ds[1])
        out[f"gf_L{L}"] = d01
        out[f"gf_L{L}_ok"] = sp.expand(d01 - (-2 * lam[0] * s[0] ** 2 + 2 * lam[1] * s[1] ** 2)) == 0
        # gradient descent, exact one-step law (no weight decay): eta^2 g^2 (P_1^2 - P_2^2)
        sn = [s[l] + eta * ds[l] for l in range(L)]
        step = sp.expand((sn[0] ** 2 - sn[1] ** 2) - (s[0] ** 2 - s[1] ** 2))
        step0 = sp.expand(step.subs({lam[l]: 0 for l in range(L)}))
        out[f"gd_L{L}_nowd_ok"] = sp.expand(step0 - eta ** 2 * g ** 2 * (P[0] ** 2 - P[1] ** 2)) == 0
        # with a common weight decay lambda: D' = (1 - 2 eta lam) D + eta^2 [(gP_1-lam s_1)^2-(...)]
        lm = sp.Symbol("lambda", nonnegative=True)
        stepc = sp.expand(step.subs({lam[l]: lm for l in range(L)}))
        claim = (-2 * eta * lm * (s[0] ** 2 - s[1] ** 2)
                 + eta ** 2 * ((g * P[0] - lm * s[0]) ** 2 - (g * P[1] - lm * s[1]) ** 2))
        out[f"gd_L{L}_wd_ok"] = sp.expand(stepc - claim) == 0
    # depth 2: exact multiplicative law s1'^2 - s2'^2 = ((1 - eta lam)^2 - eta^2 g^2)(s1^2 - s2^2)
    s1, s2 = sp.symbols("s1 s2", positive=True)
    lm = sp.Symbol("lambda", nonnegative=True)
    n1 = s1 + eta * (g * s2 - lm * s1)
    n2 = s2 + eta * (g * s1 - lm * s2)
    fac = sp.factor(sp.expand(n1 ** 2 - n2 ** 2))
    out["gd_L2_factor"] = fac
    out["gd_L2_factor_ok"] = sp.expand(
        n1 ** 2 - n2 ** 2 - ((1 - eta * lm) ** 2 - eta ** 2 * g ** 2) * (s1 ** 2 - s2 ** 2)) == 0
    # gradient flow with a common lambda: D(t) = D(0) exp(-2 lambda t)
    D = sp.Function("D")
    sol = sp.dsolve(sp.Eq(D(t).diff(t), -2 * lm * D(t)), D(t), ics={D(0): sp.Symbol("D_0")})
    out["gf_common_wd"] = sol
    # balanced stays balanced: D = 0 is invariant for a common lambda (flow) and for GD
    out["balanced_invariant"] = sp.simplify(sol.rhs.subs(sp.Symbol("D_0"), 0)) == 0
    return out
