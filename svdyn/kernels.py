"""Per-loss elementwise formulas in spectral coordinates (numba).

The library's vector field (``field.py``) computes the stable group quantities -- the
margins ``m_c``, the softmax residual ``1 - mu_j`` via ``C (e_0 - p)`` -- and calls these
formulas for the loss-specific part. ``derivations/`` derives the same formulas from the
full matrix model; the generated module ``svdyn/_generated_kernels.py`` is used when present
and must agree with these (``tests/test_generated.py``).

Notation: ``omm = 1 - mu_j`` (stable), ``K`` classes, ``rn = sqrt(n)``.
``g_j = -d loss / d z_j``.
"""
from __future__ import annotations

import numba as nb


@nb.njit(cache=True)
def ce_grad(omm, K, rn):
    """Cross-entropy: ``g_j = (1 - mu_j) / (K sqrt(n))``."""
    return omm / (K * rn)


@nb.njit(cache=True)
def ls_grad(omm, eps, K, rn):
    """Label-smoothed CE (j != 0): ``g_j = (1 - mu_j - eps) / (K sqrt(n))``."""
    return (omm - eps) / (K * rn)


@nb.njit(cache=True)
def mse_grad(z, K, rn):
    """MSE ``1/2 ||z - e_y||^2``: ``g_j = (1 - z_j / sqrt(n)) / (K sqrt(n))``."""
    return (1.0 - z / rn) / (K * rn)


@nb.njit(cache=True)
def mse_loss_term(z, K, rn):
    """MSE loss contribution of mode j: ``(z_j / sqrt(n) - 1)^2 / (2K)``."""
    d = z / rn - 1.0
    return 0.5 * d * d / K


@nb.njit(cache=True)
def ls_loss_extra(margin_sum, eps, K):
    """Label smoothing adds ``(eps / K) sum_c m_c`` to the CE loss."""
    return eps * margin_sum / K
