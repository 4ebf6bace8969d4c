"""Exact (sympy) character tables and real bases, in the library's own ordering.

The numeric :class:`svdyn.groups.Group` fixes the order of elements and characters (row-major
mixed radix) and which column of ``Q`` is the cosine / sine of a conjugate pair; here the same
objects are rebuilt with exact entries (``cos(2 pi r)``, ``sin(2 pi r)`` for rational ``r``) so
that sympy can simplify identities exactly. :func:`sym_group` checks the exact tables against
the numeric ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from svdyn.groups import make_group


@dataclass
class SymGroup:
    name: str
    dims: tuple
    K: int
    C: sp.Matrix        # C[g, j] = Re chi_j(g), exact
    Q: sp.Matrix        # real orthogonal basis, column j = mode j
    partner: list       # conjugate mode of each mode
    neg: list           # index of -g for each element g
    sub: list           # sub[a][b] = index of a - b

    def mode_rep(self, j: int) -> int:
        """Representative of a conjugate pair (paired modes carry one symbol)."""
        return min(j, self.partner[j])

    def elem_rep(self, g: int) -> int:
        """Representative of {g, -g} (the softmax of even logits is even)."""
        return min(g, self.neg[g])


def sym_group(spec: str, K: int) -> SymGroup:
    G = make_group(spec, K)
    dims = G.dims
    dig = G.digits
    K = G.K
    frac = [[sum(sp.Rational(int(dig[g, a]) * int(dig[j, a]) % m, m)
                 for a, m in enumerate(dims)) for j in range(K)] for g in range(K)]
    C = sp.Matrix(K, K, lambda g, j: sp.cos(2 * sp.pi * frac[g][j]))
    partner = [int(p) for p in G.partner]
    Q = sp.zeros(K, K)
    for j in range(K):
        p = partner[j]
        for g in range(K):
            if p == j:
                Q[g, j] = C[g, j] / sp.sqrt(K)
            elif j < p:
                Q[g, j] = sp.sqrt(2) * C[g, j] / sp.sqrt(K)
            else:
                Q[g, j] = sp.sqrt(2) * sp.sin(2 * sp.pi * frac[g][p]) / sp.sqrt(K)
    w = np.ones(len(dims), dtype=np.int64)
    for a in range(len(dims) - 2, -1, -1):
        w[a] = w[a + 1] * dims[a + 1]
    neg = [int(((-dig[g]) % np.asarray(dims)) @ w) for g in range(K)]
    sub = [[int(((dig[a] - dig[b]) % np.asarray(dims)) @ w) for b in range(K)] for a in range(K)]
    Qn = np.array(Q.evalf(30).tolist(), dtype=float)
    Cn = np.array(C.evalf(30).tolist(), dtype=float)
    if not (np.allclose(Qn, G.Q, atol=1e-14) and np.allclose(Cn, G.char_table, atol=1e-14)):
        raise AssertionError(f"exact tables disagree with svdyn.groups for {spec} K={K}")
    return SymGroup(G.name, dims, K, C, Q, partner, neg, sub)
