"""Early repulsion among logit singular values.

Balanced factors, cross-entropy: ``d log z_j / dt = L z_j^(1-2/L) g_j(z)`` exactly, so

    R_ij := d/dt log(z_i / z_j) = L (z_i^(1-2/L) g_i - z_j^(1-2/L) g_j).

Small z (logits near 0, p ~ uniform): expanding the softmax to first order,
``mu_j = z_j / (K sqrt n) + O(z^2)`` for every non-constant mode (walsh: C^2 = K I; paired
modes: the pair sums to the same), so ``g_j = (1 - z_j/(K sqrt n)) / (K sqrt n) + O(z^2)`` and

    R_ij = (L / (K sqrt n)) [phi(z_i) - phi(z_j)] + O(z^3),
    phi(z) = z^(1-2/L) (1 - z / (K sqrt n)).

* L > 2: phi is increasing for ``z < z* = K sqrt(n) (L-2) / (2 (L-1))``: the larger singular
  value grows faster (repulsion, rate ~ z^(1-2/L), dominant as z -> 0); beyond z* the
  second-order term attracts.
* L = 2: phi(z) = 1 - z/(K sqrt n) + const: no first-order term; the mode gap closes
  (attraction, NC).
* L = 1: phi decreasing: attraction at every scale.

:func:`symbolic_check` re-derives the first-order softmax expansion with sympy for a given
walsh K; :func:`measure` reads R from a saved trajectory by finite differences.
"""
from __future__ import annotations

import math

import numpy as np

from ..field import logit_gradient
from ..spec import ModelSpec


def rate(spec: ModelSpec, z, i: int, j: int) -> float:
    """Exact ``d/dt log(z_i/z_j)`` at balanced logit singular values z (K,)."""
    g, _, _ = logit_gradient(spec, np.asarray(z, float))
    L = spec.L
    z = np.asarray(z, float)
    return float(L * (z[i] ** (1 - 2 / L) * g[i] - z[j] ** (1 - 2 / L) * g[j]))


def phi(z, L: float, K: int, n: int = 1):
    """``z^(1-2/L) (1 - z/(K sqrt n))``."""
    z = np.asarray(z, float)
    return z ** (1 - 2.0 / L) * (1 - z / (K * math.sqrt(n)))


def rate_small_z(zi, zj, L: float, K: int, n: int = 1):
    """Second-order small-z approximation of R_ij (module docstring)."""
    return L / (K * math.sqrt(n)) * (phi(zi, L, K, n) - phi(zj, L, K, n))


def sign_change_scale(L: float, K: int, n: int = 1) -> float:
    """``z* = K sqrt(n) (L-2) / (2 (L-1))``: repulsion below, attraction above (L > 2)."""
    if L <= 2:
        return 0.0
    return K * math.sqrt(n) * (L - 2) / (2 * (L - 1))


def symbolic_check(K: int = 4) -> bool:
    """sympy: for walsh K, ``mu_j = z_j / K + O(z^2)`` (n = 1) for every non-constant j."""
    import sympy as sp
    from ..groups import make_group
    C = sp.Matrix(make_group("walsh", K).char_table.astype(int))
    eps = sp.Symbol("eps")
    z = sp.symbols(f"z1:{K}")
    zv = sp.Matrix([0, *z])
    u = C * zv / K
    e = [sp.exp(eps * uc) for uc in u]
    S = sum(e)
    p = sp.Matrix([ec / S for ec in e])
    mu = C * p
    ok = True
    for j in range(1, K):
        ser = sp.series(mu[j], eps, 0, 2).removeO()
        ok &= sp.simplify(ser - eps * z[j - 1] / K) == 0
    return bool(ok)


def measure(traj, i: int, j: int, t_max: float | None = None) -> dict:
    """Finite-difference ``d/dt log(z_i/z_j)`` along a saved (single) trajectory, against the
    exact formula at the same states (balanced trajectories)."""
    t = np.asarray(traj.times, float)
    z = np.asarray(traj.z, float)
    keep = np.isfinite(z).all(axis=1) & (z[:, i] > 0) & (z[:, j] > 0)
    if t_max is not None:
        keep &= t <= t_max
    t, z = t[keep], z[keep]
    lr = np.log(z[:, i] / z[:, j])
    fd = np.diff(lr) / np.diff(t)
    tm = 0.5 * (t[1:] + t[:-1])
    zm = np.sqrt(z[1:] * z[:-1])
    ex = np.array([rate(traj.spec, zz, i, j) for zz in zm])
    return {"t": tm.tolist(), "measured": fd.tolist(), "formula": ex.tolist()}
