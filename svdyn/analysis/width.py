"""Width effect under random (non-spectral) initialisation ([D]): full-matrix GD on the deep
linear UFM from Gaussian factors, many seeds at once, ranks of the centred logits over time.

All seeds of one (depth, width) run as one batch (numpy batched matmul, hand-written backward
pass: for these tiny matrices per-call overhead dominates, and numpy's is ~10x below torch
autograd's). The initial factors are those of :func:`svdyn.fullmodel.build_random_factors` for
each seed, so a batched run reproduces :func:`svdyn.fullmodel.validate_random` (torch autograd)
seed by seed (tested).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..spec import ModelSpec


@dataclass
class WidthRun:
    depth: int
    width: int
    classes: int
    seeds: list
    lr: float
    init_scale: float
    checkpoints: list                       # GD steps at which metrics were taken
    effective_rank: list                    # [checkpoint][seed]
    numerical_rank: list                    # [checkpoint][seed]
    min_margin: list                        # [checkpoint][seed]
    singular_values: list = field(default_factory=list)   # final, [seed][K-1]
    device: str = "cpu"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _metrics(Z: np.ndarray, K: int, rank_rel: float = 0.1):
    """Per batch entry: effective rank exp(H(sigma / sum sigma)) and numerical rank (sigma_i >
    rank_rel sigma_1) of the class-centred logits P Z (its K - 1 leading singular values, the
    ce-invariant all-ones direction removed), and the minimum margin."""
    P = np.eye(K) - 1.0 / K
    sv = np.linalg.svd(P @ Z, compute_uv=False)[:, :K - 1]
    q = sv / sv.sum(axis=1, keepdims=True)
    eff = np.exp(-np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0), axis=1))
    num = np.sum(sv > rank_rel * sv[:, :1], axis=1)
    return eff, num, _margins(Z, K).min(axis=(1, 2)), sv


def _margins(Z: np.ndarray, K: int) -> np.ndarray:
    """m[b, c, i] = Z[b, y_i, i] - Z[b, c, i] (0 at c = y_i); samples ordered class-major."""
    N = Z.shape[2]
    y = np.repeat(np.arange(K), N // K)
    m = Z[:, y, np.arange(N)][:, None, :] - Z
    m[:, y, np.arange(N)] = np.inf        # excluded from the min / softmax below
    return m


def ce_loss_grad(Z: np.ndarray, K: int):
    """Mean ce per batch entry and its gradient dloss/dZ, both from the margins:
    loss_i = log1p(sum_{c != y} e^{-m_c}), dloss/dZ_c = p_c (c != y), -sum_{c != y} p_c (c = y),
    p_c = e^{-m_c} / (1 + sum e^{-m}); the exp is shifted by the smallest margin when it is
    negative, so nothing overflows and 1 - p_y never cancels."""
    N = Z.shape[2]
    y = np.repeat(np.arange(K), N // K)
    m = _margins(Z, K)
    a = np.maximum(-np.min(m, axis=1), 0.0)             # shift (B, N), >= 0
    e = np.exp(-m - a[:, None, :])                      # e^{-m - a}; 0 at c = y
    se = e.sum(axis=1)                                  # (B, N)
    den = np.exp(-a) + se
    loss = (a + np.log(den)).mean(axis=1)               # = log(1 + sum e^{-m})
    G = e / den[:, None, :]
    G[:, y, np.arange(N)] = -se / den
    return loss, G / N


def gd_batched(F: list, K: int, lr: float, steps: int) -> list:
    """``steps`` full-batch GD steps on every batch entry at once (ce, no weight decay).
    ``F[l]`` has shape (B, d_{l+1}, d_l); returns the new factors (inputs untouched)."""
    F = [f.copy() for f in F]
    L = len(F)
    for _ in range(steps):
        pre = [F[0]]                                     # pre[l] = F_l ... F_0
        for l in range(1, L):
            pre.append(F[l] @ pre[-1])
        _, G = ce_loss_grad(pre[-1], K)
        back = G                                         # (F_{L-1} ... F_{l+1})^T G
        grads = [None] * L
        for l in range(L - 1, -1, -1):
            # contiguous transposes: numpy's stacked matmul uses BLAS only on contiguous blocks
            grads[l] = (back @ np.ascontiguousarray(pre[l - 1].transpose(0, 2, 1))
                        if l > 0 else back)
            if l > 0:
                back = np.ascontiguousarray(F[l].transpose(0, 2, 1)) @ back
        for f, g in zip(F, grads):
            g *= lr
            f -= g
    return F


def logits(F: list) -> np.ndarray:
    Z = F[0]
    for f in F[1:]:
        Z = f @ Z
    return Z


def run(depth: int, width: int, seeds=(0, 1, 2, 3, 4), classes: int = 4, lr: float = 0.5,
        init_scale: float | None = None, checkpoints=(1000, 4000, 16000),
        rank_rel: float = 0.1) -> WidthRun:
    """Full-batch GD (ce, no weight decay, n = 1, float64 numpy) from ``init_scale * N(0, 1)``
    factors (default ``0.3 / sqrt(width)``; the same draws as
    :func:`svdyn.fullmodel.build_random_factors`), all seeds batched; metrics at each
    checkpoint step."""
    if depth < 2:
        raise ValueError("the width study needs depth >= 2 (a hidden layer)")
    scale = 0.3 / math.sqrt(width) if init_scale is None else float(init_scale)
    dims = [classes] + [int(width)] * (depth - 1) + [classes]
    per_seed = []
    for sd in seeds:
        rng = np.random.default_rng(sd)
        per_seed.append([scale * rng.standard_normal((dims[l + 1], dims[l]))
                         for l in range(depth)])
    F = [np.stack([fs[l] for fs in per_seed]) for l in range(depth)]
    checkpoints = sorted(int(c) for c in checkpoints)
    eff, num, mm = [], [], []
    sv = None
    step = 0
    for c in checkpoints:
        F = gd_batched(F, classes, lr, c - step)
        step = c
        e, nr, m, sv = _metrics(logits(F), classes, rank_rel)
        eff.append(e.tolist())
        num.append(nr.tolist())
        mm.append(m.tolist())
    return WidthRun(depth, width, classes, list(seeds), lr, scale, checkpoints, eff, num, mm,
                    sv.tolist(), "cpu (numpy)")


def summarise(runs: list) -> list:
    """Rows (depth, width, checkpoint, mean and standard error of the effective rank over
    seeds, mean numerical rank, number of seeds whose numerical rank changed since the
    previous checkpoint)."""
    rows = []
    for r in runs:
        prev = None
        for c, e, nr in zip(r.checkpoints, r.effective_rank, r.numerical_rank):
            e = np.asarray(e)
            se = float(e.std(ddof=1) / math.sqrt(e.size)) if e.size > 1 else 0.0
            changed = None if prev is None else int(np.sum(np.asarray(nr) != prev))
            rows.append({"depth": r.depth, "width": r.width, "step": c,
                         "eff_mean": float(e.mean()), "eff_se": se,
                         "num_mean": float(np.mean(nr)), "changed": changed})
            prev = np.asarray(nr)
    return rows
