"""Fast character transforms on finite abelian groups, compiled with numba.

Two kernels, both usable inside other numba code:

* :func:`fwht` -- in-place fast Walsh--Hadamard transform (unnormalised Sylvester order),
  ``x <- H_K x`` in ``K log2 K`` additions (radix-8 passes in vector registers from K = 32,
  bit-identical to radix 2). Used for the ``walsh`` group ``Z_2^m``.
* :func:`char_transform` -- ``y_j = sum_g x_g Re chi_j(g)`` for a product of cyclic groups
  ``Z_{m_1} x ... x Z_{m_r}`` (row-major mixed-radix indexing of elements and characters).
  Implemented as one complex DFT per axis: an iterative radix-2 FFT along axes whose order is
  a power of two (``O(K log m)``), a dense DFT along the others (``O(K m)``). Total cost
  ``O(K * sum_i c(m_i))`` with ``c(m) = log2 m`` for powers of two and ``m`` otherwise, e.g.
  ``O(K log K)`` for ``cyclic`` with K = 1024 and ``O(K^2)`` for a cyclic group of prime
  order. The result is real whenever ``x`` is even (``x_g = x_{-g}``) or the output is only
  needed at real (self-conjugate) characters; the library only transforms such vectors (logit
  vectors with paired modes equal, softmax vectors of even logits), and takes the real part.

The character table ``C[g, j] = Re chi_j(g)`` is symmetric, so the same transform maps
spectral values to class logits and class probabilities to softmax eigenvalues.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from . import _cache  # noqa: F401  (first: the cache keyed on the engine's source)


#: from this many values on, :func:`fwht` runs its passes in vector registers; below, scalar
VECTOR_MIN = 32


@nb.njit(cache=True, error_model="numpy")
def fwht(x):
    """In-place unnormalised fast Walsh--Hadamard transform of ``x`` (a C-contiguous float64
    array of shape ``(K,)``, K = 2^m; an array of another layout or dtype fails to compile).

    From :data:`VECTOR_MIN` values on, every pass works on four neighbouring values at once in
    SIMD registers (:func:`_first4`, :func:`_butterflies`): a first pass does the two stages of
    stride 1 and 2 inside each block of four, then passes of three stages (radix 8: strides h,
    2h, 4h), or two or one for the last ones. Every output is the same sequence of IEEE
    additions as the radix-2 transform, so the result is bit-identical to it
    (``tests/test_groups_field.py``): only the number of passes over x, the loop overheads and
    the vector width change.

    numba compiles the scalar form of these passes to scalar code: LLVM cannot prove that the
    eight strided streams of a radix-8 pass do not overlap, and numba leaves LLVM's SLP
    vectoriser off, so the passes are written as vector IR here. Below VECTOR_MIN the
    transform stays scalar: its input was just written by scalar stores, and a vector load over
    them waits for the stores to retire (no store forwarding), which cost more than the vector
    passes saved (K = 8: 13 -> 27 ns for a copy and a transform; K = 16: flows no faster).

    Measured (a copy and a transform, the scalar radix-8 code beside this one in one process,
    2026-12-06; bench/RESULTS.md "FWHT in vector registers"): K = 32 118 -> 58 ns, 64 228 ->
    107, 1024 5,990 -> 1,960, 65536 575 -> 196 us; flows 1.05x faster at K = 64, 1.1-1.4x at
    K = 1024. Earlier (2026-12-05), radix 2 -> scalar radix 8: K = 16 45.8 -> 24.0, 64 220 ->
    83, 1024 5090 -> 2225.
    """
    K = x.shape[0]
    if K < VECTOR_MIN:   # scalar (see above)
        if K == 2:
            a = x[0]
            b = x[1]
            x[0] = a + b
            x[1] = a - b
        elif K >= 4:
            for i in range(0, K, 4):   # strides 1 and 2
                _radix4(x, i, 1)
            if K == 16:   # strides 4 and 8
                for j in range(4):
                    _radix4(x, j, 4)
            elif K == 8:   # stride 4
                for j in range(4):
                    a = x[j]
                    b = x[j + 4]
                    x[j] = a + b
                    x[j + 4] = a - b
        return
    for i in range(0, K, 4):   # strides 1 and 2
        _first4(x, i)
    h = 4
    while h < K:
        if 8 * h <= K:   # strides h, 2h, 4h
            for i in range(0, K, 8 * h):
                for j in range(i, i + h, 4):
                    _radix8x4(x, j, h)
            h *= 8
        elif 4 * h <= K:   # strides h, 2h
            for i in range(0, K, 4 * h):
                for j in range(i, i + h, 4):
                    _radix4x4(x, j, h)
            h *= 4
        else:   # stride h
            for j in range(0, h, 4):
                _radix2x4(x, j, h)
            h *= 2


@nb.njit(cache=True, inline="always")
def _radix4(x, j, h):
    """Two butterfly stages (strides h, 2h) on ``x[j + r h]``, r = 0..3 (scalar)."""
    b0 = x[j] + x[j + h]
    b1 = x[j] - x[j + h]
    b2 = x[j + 2 * h] + x[j + 3 * h]
    b3 = x[j + 2 * h] - x[j + 3 * h]
    x[j] = b0 + b2
    x[j + h] = b1 + b3
    x[j + 2 * h] = b0 - b2
    x[j + 3 * h] = b1 - b3


_V4 = ir.VectorType(ir.DoubleType(), 4)


def _contiguous_doubles(x):
    """Whether numba type ``x`` is a C-contiguous 1-d float64 array (what the intrinsics below
    address by its data pointer; any other type fails their typing)."""
    return (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
            and x.dtype == types.float64)


def _vec_ptr(builder, data, off):
    """``&x[off]`` as a pointer to four doubles (loads and stores state the doubles' 8-byte
    alignment: views of other arrays need not be 32-byte aligned)."""
    return builder.bitcast(builder.gep(data, [off]), _V4.as_pointer())


def _butterflies(stages):
    """An intrinsic ``f(x, j, h)``: ``stages`` radix-2 stages (strides h, 2h, ..) on the four
    neighbouring columns ``x[j + r h : j + r h + 4]``, r < 2^stages, in vector registers:
    loads first, then the butterflies in the radix-2 order, then the stores."""
    R = 1 << stages

    @intrinsic
    def butterflies(typingctx, x, j, h):
        if not _contiguous_doubles(x):
            return None
        sig = types.void(x, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            xa, j, h = args
            data = context.make_array(signature.args[0])(context, builder, xa).data
            offs = [j]
            for _ in range(1, R):
                offs.append(builder.add(offs[-1], h))
            ptrs = [_vec_ptr(builder, data, o) for o in offs]
            v = [builder.load(p, align=8) for p in ptrs]
            step = 1
            for _ in range(stages):
                w = list(v)
                for blk in range(0, R, 2 * step):
                    for t in range(blk, blk + step):
                        w[t] = builder.fadd(v[t], v[t + step])
                        w[t + step] = builder.fsub(v[t], v[t + step])
                v = w
                step *= 2
            for p, val in zip(ptrs, v):
                builder.store(val, p, align=8)
            return context.get_dummy_value()
        return sig, codegen
    return butterflies


_radix2x4 = _butterflies(1)
_radix4x4 = _butterflies(2)
_radix8x4 = _butterflies(3)


@intrinsic
def _first4(typingctx, x, i):
    """The stages of stride 1 and 2 on ``x[i : i + 4]`` in one vector register: ``(x0, x1, x2,
    x3) -> (s0 + s1, d0 + d1, s0 - s1, d0 - d1)`` with ``s = (x0 + x1, x2 + x3)``, ``d = (x0 -
    x1, x2 - x3)``, the radix-2 transform's additions."""
    if not _contiguous_doubles(x):
        return None
    sig = types.void(x, types.int64)

    def codegen(context, builder, signature, args):
        xa, i = args
        data = context.make_array(signature.args[0])(context, builder, xa).data
        p = _vec_ptr(builder, data, i)
        v = builder.load(p, align=8)

        def shuf(a, b, idx):
            mask = ir.Constant(ir.VectorType(ir.IntType(32), len(idx)), idx)
            return builder.shuffle_vector(a, b, mask)
        even = shuf(v, v, [0, 2])
        odd = shuf(v, v, [1, 3])
        s = builder.fadd(even, odd)
        d = builder.fsub(even, odd)
        lo = shuf(s, d, [0, 2])   # (s0, d0)
        hi = shuf(s, d, [1, 3])   # (s1, d1)
        builder.store(shuf(builder.fadd(lo, hi), builder.fsub(lo, hi), [0, 1, 2, 3]), p,
                      align=8)
        return context.get_dummy_value()
    return sig, codegen


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
