"""Initial states for the reduced model: one state ``(L, K)`` or a batch ``(B, L, K)`` alike.

Conventions: ``docs/conventions.md`` (depth L counts every trainable factor; ``z_j = prod_l
s_{l,j}``; mode 0 is the constant mode; paired modes of cyclic groups carry equal values).
"""
from __future__ import annotations

import numpy as np

from .spec import ModelSpec, random_init_z

__all__ = ["balanced_init", "unbalanced_init", "random_init_z"]


def balanced_init(spec: ModelSpec, z) -> np.ndarray:
    """Balanced factors ``s_{l,j} = z_j^(1/L)`` (every factor carries the same values).

    Parameters
    ----------
    spec : ModelSpec
    z : array_like, shape (K,) or (B, K)
        Logit singular values, ``>= 0``, paired modes equal.

    Returns
    -------
    s : ndarray, shape (L, K) or (B, L, K)
    """
    return spec.balanced(z)


def unbalanced_init(spec: ModelSpec, z, spread: float = 0.5, seed=0) -> np.ndarray:
    """Factors with product ``z`` but unequal across layers.

    ``s_{l,j} = z_j^(1/L) exp(spread (xi_{lj} - mean_l xi_{.j}))`` with ``xi`` standard normal
    (paired modes share their draw), so ``prod_l s_{l,j} = z_j`` exactly.

    Parameters
    ----------
    spec : ModelSpec
    z : array_like, shape (K,) or (B, K)
        Logit singular values, ``>= 0``.
    spread : float, optional
        Standard deviation of the log-imbalance (0 gives the balanced state).
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    s : ndarray, shape (L, K) or (B, L, K)
    """
    from .lyapunov import unbalanced_start

    z = np.asarray(z, dtype=np.float64)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    spec.balanced(z)  # validates shape, sign, pairing
    s = unbalanced_start(spec, np.atleast_2d(z), rng, float(spread))
    return s[0] if z.ndim == 1 else s
