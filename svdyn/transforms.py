"""Fast character transforms on finite abelian groups, compiled with numba.

Two kernels, both usable inside other numba code:

* :func:`fwht` -- in-place fast Walsh--Hadamard transform (unnormalised Sylvester order),
  ``x <- H_K x`` in ``K log2 K`` additions (radix-8 passes, bit-identical to radix 2). Used
  for the ``walsh`` group ``Z_2^m``.
* :func:`char_transform` -- ``y_j = sum_g x_g Re chi_j(g)`` for a product of cyclic groups
  ``Z_{m_1} x ... x Z_{m_r}`` (row-major mixed-radix indexing of elements and characters).
  Implemented as one complex DFT per axis: an iterative radix-2 FFT along axes whose order is
  a power of two (``O(K log m)``), a dense DFT along the others (``O(K m)``). Total cost
  ``O(K * sum_i c(m_i))`` with ``c(m) = log2 m`` for powers of two and ``m`` otherwise, e.g.
  ``O(K log K)`` for ``cyclic`` with K = 1024 and ``O(K^2)`` for a cyclic group of prime order. The result is real whenever ``x`` is even (``x_g = x_{-g}``)
  or the output is only needed at real (self-conjugate) characters; the library only
  transforms such vectors (logit vectors with paired modes equal, softmax vectors of even
  logits), and takes the real part.

The character table ``C[g, j] = Re chi_j(g)`` is symmetric, so the same transform maps
spectral values to class logits and class probabilities to softmax eigenvalues.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from . import _cache  # noqa: F401  (first: the cache keyed on the engine's source)


@nb.njit(cache=True)
def fwht(x):
    """In-place unnormalised fast Walsh--Hadamard transform of ``x`` (shape ``(K,)``, K = 2^m).

    Three butterfly stages per pass over memory (radix 8: eight values in registers), then
    radix 4 or 2 for the last one or two stages; a first pass over blocks of four does the
    two stages of stride 1 and 2, whose inner loops would run one or two iterations. Every
    output is the same sequence of additions as the radix-2 transform, so the result is
    bit-identical to it (``tests/test_groups_field.py``) -- only the number of passes over
    x and the loop overheads change. Measured (``python bench/fwht_cost.py``, 2026-12-05,
    ns per transform, radix 2 -> this; bench/RESULTS.md "FWHT in radix-8 passes"): K = 4
    10.6 -> 7.7, 16 45.8 -> 24.0, 64 220 -> 83, 256 1066 -> 431, 1024 5090 -> 2225, 65536
    488,022 -> 224,869.
    """
    K = x.shape[0]
    if K < 4:
        if K == 2:
            a = x[0]
            b = x[1]
            x[0] = a + b
            x[1] = a - b
        return
    for i in range(0, K, 4):   # strides 1 and 2
        _radix4(x, i, 1)
    h = 4
    while h < K:
        if 8 * h <= K:   # strides h, 2h, 4h
            for i in range(0, K, 8 * h):
                for j in range(i, i + h):
                    _radix8(x, j, h)
            h *= 8
        elif 4 * h <= K:   # strides h, 2h
            for i in range(0, K, 4 * h):
                for j in range(i, i + h):
                    _radix4(x, j, h)
            h *= 4
        else:   # stride h
            for j in range(h):
                a = x[j]
                b = x[j + h]
                x[j] = a + b
                x[j + h] = a - b
            h *= 2


@nb.njit(cache=True, inline="always")
def _radix4(x, j, h):
    """Two butterfly stages (strides h, 2h) on ``x[j + r h]``, r = 0..3."""
    b0 = x[j] + x[j + h]
    b1 = x[j] - x[j + h]
    b2 = x[j + 2 * h] + x[j + 3 * h]
    b3 = x[j + 2 * h] - x[j + 3 * h]
    x[j] = b0 + b2
    x[j + h] = b1 + b3
    x[j + 2 * h] = b0 - b2
    x[j + 3 * h] = b1 - b3


@nb.njit(cache=True, inline="always")
def _radix8(x, j, h):
    """Three butterfly stages (strides h, 2h, 4h) on ``x[j + r h]``, r = 0..7."""
    a0 = x[j]
    a1 = x[j + h]
    a2 = x[j + 2 * h]
    a3 = x[j + 3 * h]
    a4 = x[j + 4 * h]
    a5 = x[j + 5 * h]
    a6 = x[j + 6 * h]
    a7 = x[j + 7 * h]
    b0 = a0 + a1
    b1 = a0 - a1
    b2 = a2 + a3
    b3 = a2 - a3
    b4 = a4 + a5
    b5 = a4 - a5
    b6 = a6 + a7
    b7 = a6 - a7
    c0 = b0 + b2
    c1 = b1 + b3
    c2 = b0 - b2
    c3 = b1 - b3
    c4 = b4 + b6
    c5 = b5 + b7
    c6 = b4 - b6
    c7 = b5 - b7
    x[j] = c0 + c4
    x[j + h] = c1 + c5
    x[j + 2 * h] = c2 + c6
    x[j + 3 * h] = c3 + c7
    x[j + 4 * h] = c0 - c4
    x[j + 5 * h] = c1 - c5
    x[j + 6 * h] = c2 - c6
    x[j + 7 * h] = c3 - c7


def twiddle_tables(dims):
    """Concatenated per-axis tables ``cos(2 pi t / m)``, ``sin(2 pi t / m)``, t < m.

    Returns ``(cos_tab, sin_tab, offsets)`` with ``offsets[a]`` the start of axis ``a``.
    """
    dims = np.asarray(dims, dtype=np.int64)
    offs = np.zeros(len(dims), dtype=np.int64)
    offs[1:] = np.cumsum(dims)[:-1]
    t = np.concatenate([2.0 * np.pi * np.arange(m) / m for m in dims])
    return np.cos(t), np.sin(t), offs


@nb.njit(cache=True)
def _fft_axis(wre, wim, base, stride, m, cos_tab, sin_tab, o0, tre, tim):
    """In place ``x_k <- sum_t x_t exp(+2 pi i k t / m)`` along one axis (m a power of two):
    iterative radix-2 decimation in time on the gathered values ``x_t = w[base + t stride]``."""
    bits = 0
    while (1 << bits) < m:
        bits += 1
    for t in range(m):
        r = 0
        v = t
        for _ in range(bits):
            r = (r << 1) | (v & 1)
            v >>= 1
        tre[r] = wre[base + t * stride]
        tim[r] = wim[base + t * stride]
    size = 2
    while size <= m:
        half = size // 2
        step = m // size
        for start in range(0, m, size):
            for k in range(half):
                c = cos_tab[o0 + k * step]
                s = sin_tab[o0 + k * step]
                a = start + k
                b = a + half
                br = tre[b] * c - tim[b] * s
                bi = tre[b] * s + tim[b] * c
                tre[b] = tre[a] - br
                tim[b] = tim[a] - bi
                tre[a] += br
                tim[a] += bi
        size *= 2
    for k in range(m):
        wre[base + k * stride] = tre[k]
        wim[base + k * stride] = tim[k]


@nb.njit(cache=True)
def char_transform(x, out, dims, cos_tab, sin_tab, offs, wre, wim, tre, tim):
    """``out_j = sum_g x_g Re chi_j(g)`` on ``Z_{dims[0]} x ... x Z_{dims[r-1]}``.

    Parameters
    ----------
    x, out : (K,) float64 (may not alias)
    dims : (r,) int64, product K
    cos_tab, sin_tab, offs : from :func:`twiddle_tables`
    wre, wim : (K,) float64 work buffers
    tre, tim : (max(dims),) float64 work buffers
    """
    K = x.shape[0]
    for i in range(K):
        wre[i] = x[i]
        wim[i] = 0.0
    stride = K
    for a in range(dims.shape[0]):
        m = dims[a]
        stride //= m
        o0 = offs[a]
        block = m * stride
        pow2 = m >= 4 and (m & (m - 1)) == 0
        for base0 in range(0, K, block):
            for i in range(stride):
                base = base0 + i
                if pow2:
                    _fft_axis(wre, wim, base, stride, m, cos_tab, sin_tab, o0, tre, tim)
                    continue
                for k in range(m):
                    sr = 0.0
                    si = 0.0
                    for t in range(m):
                        idx = (k * t) % m
                        c = cos_tab[o0 + idx]
                        s = sin_tab[o0 + idx]
                        re = wre[base + t * stride]
                        im = wim[base + t * stride]
                        sr += re * c - im * s
                        si += re * s + im * c
                    tre[k] = sr
                    tim[k] = si
                for k in range(m):
                    wre[base + k * stride] = tre[k]
                    wim[base + k * stride] = tim[k]
    for i in range(K):
        out[i] = wre[i]
