"""Rank measures of a spectrum of singular values.

All take singular values ``sv`` of shape (..., m) (non-negative; for the reduced model pass
the non-constant logit modes ``z[..., 1:]``, which are the singular values of the centred
logits) and reduce the last axis.

* numerical rank: number of ``sv > rel * max(sv)`` (default ``rel = 0.1``);
* effective rank (Roy & Vetterli 2007, EUSIPCO): ``exp(H(p))`` with ``p = sv / sum(sv)``;
* stable rank: ``sum(sv^2) / max(sv)^2``.
"""
from __future__ import annotations

import numpy as np


def numerical_rank(sv, rel: float = 0.1) -> np.ndarray:
    sv = np.abs(np.asarray(sv, dtype=float))
    mx = sv.max(axis=-1, keepdims=True)
    return np.where(mx[..., 0] > 0, np.sum(sv > rel * mx, axis=-1), 0)


def effective_rank(sv) -> np.ndarray:
    sv = np.abs(np.asarray(sv, dtype=float))
    tot = sv.sum(axis=-1, keepdims=True)
    p = np.divide(sv, tot, out=np.zeros_like(sv), where=tot > 0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.where(tot[..., 0] > 0, np.exp(-plogp.sum(axis=-1)), 0.0)


def stable_rank(sv) -> np.ndarray:
    sv = np.abs(np.asarray(sv, dtype=float))
    mx = sv.max(axis=-1)
    return np.divide((sv ** 2).sum(axis=-1), mx ** 2, out=np.zeros_like(mx), where=mx > 0)
