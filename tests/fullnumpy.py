"""Independent full-matrix reference for the core tests: numpy float64, hand-written backprop.

Builds the factors of a spectral initialisation with random orthonormal hidden frames and runs
full-batch gradient descent on all factors at once. Used only by the tests (the torch model
used by ``svdyn validate`` lives in ``svdyn/fullmodel.py``).
"""
from __future__ import annotations

import numpy as np
from scipy.special import softmax


def frames(spec, width, rng):
    K, n = spec.K, spec.n
    Q = spec.G.Q
    B = np.kron(Q, np.ones((n, 1))) / np.sqrt(n)
    R = [np.linalg.qr(rng.standard_normal((width, K)))[0] for _ in range(spec.L - 1)]
    lefts = R + [Q]
    rights = [B] + R
    return lefts, rights


def build(spec, s, width, seed=0):
    lefts, rights = frames(spec, width, np.random.default_rng(seed))
    Fs = [lefts[l] @ np.diag(s[l]) @ rights[l].T for l in range(spec.L)]
    return Fs, lefts, rights


def loss_and_grads(spec, Fs):
    K, n = spec.K, spec.n
    N = n * K
    Z = Fs[0]
    for F in Fs[1:]:
        Z = F @ Z
    Y = np.kron(np.eye(K), np.ones((1, n)))
    code, eps = spec.loss_code
    if code == 1:
        R = Z - Y
        data = 0.5 * np.sum(R ** 2) / N
        G = R / N
    else:
        Yt = (1 - eps) * Y + eps / K if code == 2 else Y
        m = Z.max(axis=0)
        lse = m + np.log(np.exp(Z - m).sum(axis=0))
        data = np.sum(Yt * (lse - Z)) / N
        G = (softmax(Z, axis=0) - Yt) / N
    lam = spec.lam
    loss = data + sum(0.5 * lam[l] * np.sum(F ** 2) for l, F in enumerate(Fs))
    grads = []
    for l in range(spec.L):
        left = np.eye(Fs[l].shape[0])
        for F in Fs[l + 1:]:
            left = F @ left
        right = np.eye(N)
        for F in Fs[:l]:
            right = F @ right
        grads.append(left.T @ G @ right.T + lam[l] * Fs[l])
    return loss, grads


def gd(spec, s0, width, lr, steps, seed=0):
    """Full GD; returns (s (steps+1, L, K) by projection, leakage, losses)."""
    Fs, lefts, rights = build(spec, s0, width, seed)
    out, leak, losses = [], 0.0, []
    for it in range(steps + 1):
        loss, grads = loss_and_grads(spec, Fs)
        P = [lefts[l].T @ Fs[l] @ rights[l] for l in range(spec.L)]
        out.append(np.array([np.diag(p) for p in P]))
        leak = max(leak, max(np.abs(p - np.diag(np.diag(p))).max() for p in P))
        losses.append(loss)
        if it < steps:
            Fs = [F - lr * g for F, g in zip(Fs, grads)]
    return np.array(out), leak, np.array(losses)
