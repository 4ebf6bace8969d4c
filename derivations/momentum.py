"""Momentum, Nesterov and element-wise optimizers under spectral initialisation (issue 15).

Three exact (sympy) results, each returned as booleans by :func:`run` (``tests/test_momentum.py``;
a few seconds):

1. **Closure** (heavy ball and Nesterov keep the spectral form, for any frames). By
   ``reduction.py`` the gradient at a spectral point ``F_l = R_l diag(s_l) R_{l-1}^T`` is
   ``R_l diag(-f_l(s)) R_{l-1}^T`` (``f`` the reduced field) for any frames; torch's SGD updates
   (dampening 0, weight decay inside ``g``)

       v <- beta v + g,  F <- F - eta v            (heavy ball)
       v <- beta v + g,  F <- F - eta (g + beta v) (nesterov)

   are linear in ``(F, v, g)``, so if ``F`` and ``v`` have the frames of ``g`` so do the
   updates; by induction from ``v_0 = 0`` the whole run stays spectral and the reduced map is
   the same two lines on the diagonals, ``a <- beta a - f(s)``, ``s <- s - eta a`` (nesterov:
   ``s <- s - eta (-f(s) + beta a)``). Checked with exact rational frames of width ``K + 1``
   (Householder, so components outside the frames are tested) and symbolic diagonals: the
   updated matrices have zero off-diagonal part and zero part outside the frames, and their
   diagonals equal the reduced map. The gradient lemma itself is re-run here on one small case
   (walsh K = 2, L = 3, ce) with :func:`derivations.reduction.check_reduction`.
2. **Continuous-time limits** (linear test problem ``g = a s``, exact series in ``eta``):
   with ``beta`` fixed, the dominant eigenvalue of heavy ball's and of Nesterov's step matrix is
   ``1 - eta a / (1 - beta) + O(eta^2)``: both converge (order 1 in ``eta``) to gradient flow
   in the time ``t = eta k / (1 - beta)``. With ``beta = 1 - c h``, ``eta = h^2``, the
   eigenvalues are ``1 + h mu + O(h^2)`` with ``mu^2 + c mu + a = 0``: the damped second-order
   ODE ``s'' + c s' = f(s)`` (``s'(0) = 0``) in the time ``tau = k h = k sqrt(eta)``, reached to
   order 1 in ``h``, i.e. order 1/2 in ``eta`` (both methods; Nesterov differs at ``O(h^2)``).
3. **Element-wise optimizers** (Adam's first step ``u = g / (|g| + eps)``, sign-GD, any odd
   element-wise map ``phi``). Every nonzero entry of a spectral factor is ``+- c_l s_{l,j}``
   exactly when ``Q`` has entries of equal modulus (walsh, ``Z_2^m``: ``+-1/sqrt K``) and the
   hidden frames are signed (partial) permutations; then ``phi(G)`` is spectral with diagonal
   ``phi(c_l g_{l,j}) / c_l``. Checked symbolically for walsh K = 4, L = 3 with signed
   permutation frames (closed), and as negative controls with a rational orthonormal frame
   (walsh basis) and with the cyclic K = 3 basis (both leave the form).
"""
from __future__ import annotations

import time

import sympy as sp

from .reduction import check_reduction, householder_frame
from .symgroup import sym_group


def _spectral(U, d, V):
    return U * sp.diag(*d) * V.T


def _is_spectral(X, U, V, expected) -> tuple[bool, bool]:
    """(diagonal in the frames with the expected entries, nothing outside the frames)."""
    P = (U.T * X * V).applyfunc(sp.expand)
    K = U.shape[1]
    diag_ok = all(sp.expand(P[a, b] - (expected[a] if a == b else 0)) == 0
                  for a in range(K) for b in range(K))
    out = (X - U * P * V.T).applyfunc(sp.expand)
    return diag_ok, out.is_zero_matrix


def closure(K: int = 3, d: int = 4) -> dict:
    """Item 1: one heavy-ball and one Nesterov step from spectral (F, v, g) stay spectral."""
    U = householder_frame(d, K, 1)
    V = householder_frame(d + 1, K, 2)
    s = sp.symbols(f"s0:{K}", real=True)
    a = sp.symbols(f"a0:{K}", real=True)     # velocity diagonal
    f = sp.symbols(f"f0:{K}", real=True)     # reduced field, g = -f
    beta, eta = sp.symbols("beta eta", positive=True)
    F, v, g = _spectral(U, s, V), _spectral(U, a, V), _spectral(U, [-x for x in f], V)
    v1 = beta * v + g
    a1 = [beta * a[j] - f[j] for j in range(K)]
    out = {}
    for name, upd, red in (("momentum", v1, [a1[j] for j in range(K)]),
                           ("nesterov", g + beta * v1, [-f[j] + beta * a1[j] for j in range(K)])):
        F1 = F - eta * upd
        s1 = [s[j] - eta * red[j] for j in range(K)]
        dv, ov = _is_spectral(v1, U, V, a1)
        dF, oF = _is_spectral(F1, U, V, s1)
        out[name] = bool(dv and ov and dF and oF)
    return out


def limits() -> dict:
    """Item 2: eigenvalue series of the linearised maps (``g = a s``)."""
    a, beta, eta, c, h, mu = sp.symbols("a beta eta c h mu", positive=True)
    res = {}
    # state (s, v); v_new = beta v + a s
    hb = sp.Matrix([[1 - eta * a, -eta * beta], [a, beta]])
    ne = sp.Matrix([[1 - eta * a * (1 + beta), -eta * beta ** 2], [a, beta]])
    for name, M in (("momentum", hb), ("nesterov", ne)):
        lam = sp.Symbol("lam")
        poly = sp.expand((M - lam * sp.eye(2)).det())
        # dominant root as a series in eta: lam = 1 + x1 eta + x2 eta^2
        x1, x2 = sp.symbols("x1 x2")
        e = sp.expand(poly.subs(lam, 1 + x1 * eta + x2 * eta ** 2))
        sol1 = sp.solve(sp.expand(e).coeff(eta, 1), x1)
        res[f"{name}_fixed_beta"] = bool(any(sp.simplify(x - (-a / (1 - beta))) == 0
                                             for x in sol1))
        # beta = 1 - c h, eta = h^2: lam = 1 + mu h + O(h^2) with mu^2 + c mu + a = 0
        e2 = sp.expand(poly.subs({beta: 1 - c * h, eta: h ** 2}).subs(lam, 1 + mu * h))
        lead = sp.expand(e2).coeff(h, 2)
        low = [sp.expand(e2).coeff(h, k) for k in (0, 1)]
        res[f"{name}_second_order"] = bool(all(sp.simplify(x) == 0 for x in low)
                                           and sp.simplify(lead - (mu ** 2 + c * mu + a)) == 0)
    return res


def _zero(e, eps) -> bool:
    """Exact zero test of a rational expression in the g symbols, eps and |.| terms: first at
    a random rational point (a nonzero value decides), then by exact cancellation."""
    free = sorted(e.free_symbols, key=str)
    pt = {x: sp.Rational(7 + 3 * i, 5 + i) * (-1 if x.is_negative else 1)
          for i, x in enumerate(free)}
    if sp.nsimplify(e.subs(pt)) != 0:
        return False
    return sp.cancel(sp.together(e)) == 0


def _signed_perm(d: int, K: int, shift: int) -> sp.Matrix:
    R = sp.zeros(d, K)
    for j in range(K):
        R[(j * 3 + shift) % d, j] = (-1) ** (j + shift)
    return R


def elementwise(K: int = 4, L: int = 3, n: int = 1) -> dict:
    """Item 3: ``phi(G)`` for ``phi(x) = x / (|x| + eps)`` on every factor's gradient-shaped
    spectral matrix, for three frame choices."""
    eps = sp.Symbol("epsilon", positive=True)

    def phi(x):
        return x / (sp.Abs(x) + eps)

    g = [[sp.Symbol(f"g{l}_{j}", positive=(j % 2 == 0), negative=(j % 2 == 1))
          for j in range(K)] for l in range(L)]

    def check(group: str, Kg: int, hidden) -> bool:
        G = sym_group(group, Kg)
        Q = G.Q
        B = sp.Matrix(n * Kg, Kg, lambda i, j: Q[i // n, j] / sp.sqrt(n))
        frames = [B] + [hidden(l) for l in range(1, L)] + [Q]
        ok = True
        for l in range(L):
            U, V = frames[l + 1], frames[l]
            X = _spectral(U, g[l][:Kg], V)
            Y = X.applyfunc(phi)
            P = U.T * Y * V
            D = U * sp.diag(*[P[j, j] for j in range(Kg)]) * V.T
            resid = list(Y - D) + [P[a, b] for a in range(Kg) for b in range(Kg) if a != b]
            ok &= all(_zero(e, eps) for e in resid)
        return ok

    return {"walsh_signed_permutation": check("walsh", K, lambda l: _signed_perm(K + 1, K, l)),
            "walsh_orthonormal_frame": check("walsh", K, lambda l: householder_frame(K + 1, K, l)),
            "cyclic_signed_permutation": check("cyclic", 3, lambda l: _signed_perm(4, 3, l))}


def run() -> dict:
    """All three items; booleans that must read (True, True, ..., False, False) as documented
    in :data:`EXPECTED`, plus seconds."""
    t0 = time.perf_counter()
    red = check_reduction("walsh", 2, 3, 1, "ce")
    out = {"gradient_lemma": bool(red["offdiag_zero"] and red["outside_zero"]
                                  and red["diag_match"])}
    out.update({f"closure_{k}": v for k, v in closure().items()})
    out.update({f"limit_{k}": v for k, v in limits().items()})
    out.update({f"elementwise_{k}": v for k, v in elementwise().items()})
    out["seconds"] = time.perf_counter() - t0
    return out


#: what :func:`run` must return (the two negative controls leave the spectral form)
EXPECTED = {"gradient_lemma": True, "closure_momentum": True, "closure_nesterov": True,
            "limit_momentum_fixed_beta": True, "limit_momentum_second_order": True,
            "limit_nesterov_fixed_beta": True, "limit_nesterov_second_order": True,
            "elementwise_walsh_signed_permutation": True,
            "elementwise_walsh_orthonormal_frame": False,
            "elementwise_cyclic_signed_permutation": False}


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k}: {v}")
