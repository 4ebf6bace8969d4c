"""GENERATED FILE -- DO NOT EDIT.

Symbolic source: ``derivations/closed_forms.py`` (``general_kernels``: the per-loss formulas,
derived by sympy with symbolic K from the per-sample loss and the character identities) and
``derivations/lyapunov.py`` (``lyapunov_kernels``: the Lyapunov value and its derivative).
Emitted by ``derivations/codegen.py``. Regenerate with::

    svdyn derive

Notation: ``omm = 1 - mu_j`` (computed stably by ``field.py`` as ``C (e_0 - p)``), ``K`` classes,
``rn = sqrt(n)``, ``eps`` label smoothing, ``g_j = -d loss / d z_j``. Margins and softmax
probabilities are run-time inputs computed stably, so no expression here overflows.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from . import _cache  # noqa: F401  (first: the cache keyed on the engine's source)


@nb.njit(cache=True)
def ce_grad(omm, K, rn):
    """Cross-entropy ``g_j`` from ``1 - mu_j``. sympy: ``omm/(K*rn)``."""
    return omm/(K*rn)


@nb.njit(cache=True)
def ls_grad(omm, eps, K, rn):
    """Label-smoothed ce ``g_j`` (j != 0; ``g_0 = 0``). sympy: ``(-eps + omm)/(K*rn)``."""
    return (-eps + omm)/(K*rn)


@nb.njit(cache=True)
def mse_grad(z, K, rn):
    """MSE ``g_j``. sympy: ``(rn - z)/(K*rn**2)``."""
    return (rn - z)/(K*rn**2)


@nb.njit(cache=True)
def mse_loss_term(z, K, rn):
    """MSE loss contribution of mode j. sympy: ``(rn - z)**2/(2*K*rn**2)``."""
    return ((1.0/2.0))*(rn - z)**2/(K*rn**2)


@nb.njit(cache=True)
def ls_loss_extra(margin_sum, eps, K):
    """Label smoothing adds this to the ce loss (margin_sum = sum_c m_c). sympy: ``eps*margin_sum/K``."""
    return eps*margin_sum/K


@nb.njit(cache=True)
def _phi(x):
    """``x - log(x + 1)`` (>= 0), accurate near 0: the order-19 Taylor polynomial (sympy, Horner
    form) for |x| < 0.1, the closed form elsewhere; +inf at x = -1 (a zero mode)."""
    if x <= -1.0:
        return math.inf
    if abs(x) < 0.1:
        return x**2*(x*(x*(x*(x*(x*(x*(x*(x*(x*(x*(x*(x*(x*(x*(x*(x*((1.0/18.0) - (1.0/19.0)*x) + (-1.0/17.0)) + (1.0/16.0)) + (-1.0/15.0)) + (1.0/14.0)) + (-1.0/13.0)) + (1.0/12.0)) + (-1.0/11.0)) + (1.0/10.0)) + (-1.0/9.0)) + (1.0/8.0)) + (-1.0/7.0)) + (1.0/6.0)) + (-1.0/5.0)) + (1.0/4.0)) + (-1.0/3.0)) + (1.0/2.0))
    return x - math.log1p(x)


@nb.njit(cache=True)
def lyapunov_value(z):
    """V = KL(uniform || z / sum z) over the non-constant modes 1..K-1 (z shape (K,)).

    Stable form ``(1/M) sum_j phi(delta_j)``, ``delta_j = z/zbar - 1``, ``zbar`` the mean
    of z_1..z_(K-1), M = K - 1; each term is >= 0. Returns +inf if a mode is 0.
    """
    K = z.shape[0]
    M = K - 1
    S = 0.0
    for j in range(1, K):
        S += z[j]
    if not S > 0.0:
        return math.inf
    zbar = S / M
    acc = 0.0
    for j in range(1, K):
        acc += _phi(z[j]/zbar - 1)
    return acc * (1/M)


@nb.njit(cache=True)
def lyapunov_rate(z, r):
    """dV/dt for log-rates ``r_j = d log z_j / dt`` (any depth, balanced or not):
    ``sum_j delta*r/M`` over j = 1..K-1."""
    K = z.shape[0]
    M = K - 1
    S = 0.0
    for j in range(1, K):
        S += z[j]
    zbar = S / M
    acc = 0.0
    for j in range(1, K):
        delta = z[j]/zbar - 1
        acc += delta*r[j]/M
    return acc


@nb.njit(cache=True)
def lyapunov_rate_l2(m, rn):
    """Closed-form dV/dt of the balanced depth-2 ce flow from the margins ``m`` (K,), m[0] unused:
    ``2/(M*margin_sum*rn) * sum_(g<h) (m_g - m_h)*(p_g - p_h)``, every
    pair term <= 0. Probabilities p_g = e^(-m_g)/(1 + sum e^(-m)) are computed with a shift, so
    margins of 1e4 (either sign) give finite values."""
    K = m.shape[0]
    M = K - 1
    a = 0.0
    margin_sum = 0.0
    for g in range(1, K):
        margin_sum += m[g]
        if -m[g] > a:
            a = -m[g]
    p = np.empty(K)
    Zp = math.exp(-a)
    for g in range(1, K):
        p[g] = math.exp(-m[g] - a)
        Zp += p[g]
    for g in range(1, K):
        p[g] /= Zp
    acc = 0.0
    for g in range(1, K):
        for h in range(g + 1, K):
            acc += (m[g] - m[h])*(p[g] - p[h])
    return (2/(M*margin_sum*rn)) * acc
