"""Per-loss elementwise formulas in spectral coordinates (numba), re-exported from the
generated module.

The library's vector field (``field.py``) computes the stable group quantities -- the
margins ``m_c``, the softmax residual ``1 - mu_j`` via ``C (e_0 - p)`` -- and calls these
formulas for the loss-specific part. They are not typed in by hand: ``derivations/``
derives them with sympy from the per-sample loss (symbolic K; checked against the full matrix
model in ``derivations/reduction.py``) and emits ``svdyn/_generated_kernels.py``, whose header
names the symbolic source. Regenerate with ``svdyn derive``; ``tests/test_generated.py`` fails
if the committed module differs from a fresh regeneration, and checks the kernels against torch
autograd on the full model.

Notation: ``omm = 1 - mu_j`` (stable), ``K`` classes, ``rn = sqrt(n)``, ``g_j = -d loss / d z_j``:

* ``ce_grad(omm, K, rn)``            cross-entropy ``g_j = (1 - mu_j) / (K sqrt n)``
* ``ls_grad(omm, eps, K, rn)``       label-smoothed ce (j != 0) ``(1 - mu_j - eps) / (K sqrt n)``
* ``mse_grad(z, K, rn)``             MSE ``(1 - z_j / sqrt n) / (K sqrt n)``
* ``mse_loss_term(z, K, rn)``        MSE loss of mode j ``(z_j / sqrt n - 1)^2 / (2K)``
* ``ls_loss_extra(margin_sum, eps, K)``  label smoothing adds ``(eps / K) sum_c m_c``
* ``lyapunov_value(z)``, ``lyapunov_rate(z, r)``, ``lyapunov_rate_l2(m, rn)``: the Lyapunov
  function of the balanced depth-2 ce flow (see ``svdyn.lyapunov``).
"""
from __future__ import annotations

from ._generated_kernels import (  # noqa: F401
    ce_grad,
    ls_grad,
    ls_loss_extra,
    lyapunov_rate,
    lyapunov_rate_l2,
    lyapunov_value,
    mse_grad,
    mse_loss_term,
)

__all__ = ["ce_grad", "ls_grad", "ls_loss_extra", "mse_grad", "mse_loss_term",
           "lyapunov_value", "lyapunov_rate", "lyapunov_rate_l2"]
