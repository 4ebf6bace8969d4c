"""An exp that the compiler can vectorise: fdlibm's algorithm in plain arithmetic (numba).

``math.exp`` compiles to a call into the C library, which keeps a loop over K classes scalar:
~4.2 ns per value on this project's 2-core machine, whatever K. :func:`exp_or_zero` is the
same function written without a call -- argument reduction ``x = k ln2 + r`` with a two-part
ln 2, the Remez rational approximation of fdlibm's ``e_exp.c`` (Sun Microsystems, 1993; also
musl's ``exp``) on ``|r| <= ln2 / 2``, and ``2^k`` built from its exponent bits -- so LLVM turns
a loop of it into SIMD code. Measured (``NUMBA_NUM_THREADS=1 PYTHONPATH=. python
bench/fastexp_cost.py``, ns per value in a loop over K values, libm -> this, 2026-12-05): K = 16
4.60 -> 2.17, 64 4.58 -> 1.21, 256 4.60 -> 1.05, 1024 4.63 -> 1.00, 65536 4.78 -> 0.99; K = 4
4.91 -> 6.63 (the vector loop's scalar remainder). In the field itself the margin loop holds
K - 1 values and the vector route only pays from K = 32 (A/B of the whole field, walsh, L = 2:
K = 8 170-183 ns with libm vs 206-208 with this; K = 16 244-248 vs 254-275; K = 32 331-333 vs
328-338), so :func:`exp_diff_into` keeps ``math.exp`` below :data:`VECTOR_MIN`. Its vector loop
runs over all K entries rather than the K - 1 margins: with K - 1 iterations the last vector's
worth ran scalar (field A/B: K = 32 271 -> 234-253 ns, K = 64 414-422 -> 386-400).

Accuracy (``tests/test_fastexp.py``, 4,000,000 uniform points per range against ``np.exp`` in
80-bit long double): at most 1.0 ulp on [-708, 0] (``np.exp`` itself: 1.0), 0.85 on [-1, 1];
mean 0.26 ulp. Arguments below :data:`EXP_FLOOR` (-708) give 0 rather than a subnormal number,
as everywhere in the field; NaN gives 0 as ``math.exp(x) if x > EXP_FLOOR else 0`` does.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from . import _cache  # noqa: F401  (first: the cache keyed on the engine's source)

#: exponents below this give 0 instead of a subnormal number (e^-708 = 3e-308 is about the
#: smallest normal result; subnormal arithmetic is slow on x86 and carries no relative precision)
EXP_FLOOR = -708.0
#: from this many classes on, the margin loops use :func:`exp_or_zero` (vectorised); below,
#: ``math.exp`` (the vector loop's remainder runs scalar and loses to libm)
VECTOR_MIN = 32

_LN2_HI = 6.93147180369123816490e-01   # fdlibm: 21 trailing zero bits, k * _LN2_HI exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08


@intrinsic
def _bits_to_float(typingctx, x):
    """The float64 whose IEEE bits are the int64 ``x`` (an LLVM bitcast, no memory)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return sig, codegen


@nb.njit(cache=True, error_model="numpy", inline="always")
def exp_or_zero(x):
    """``e^x`` for ``EXP_FLOOR < x <= 709``, 0 for ``x <= EXP_FLOOR`` or NaN (< 1 ulp)."""
    xc = min(max(x, EXP_FLOOR), 709.0)
    k = math.floor(xc * _INV_LN2 + 0.5)
    hi = xc - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    v = y * _bits_to_float((np.int64(k) + 1023) << 52)
    return v if x > EXP_FLOOR else 0.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def exp_diff_into(w, off):
    """``w[c] = e^{off - w[c]}`` for c = 1..K-1 (0 below ``EXP_FLOOR``); returns their sum.

    From :data:`VECTOR_MIN` classes on, the sum runs in four interleaved partial sums (a
    quarter of the dependent additions; all terms are positive, so the order changes the
    result by rounding only); below, in index order."""
    K = w.shape[0]
    S = 0.0
    if K >= VECTOR_MIN:
        # over all K entries (a trip count that is a multiple of the vector width: K - 1
        # iterations would run the last vector's worth in the scalar remainder), w[0] kept
        w0 = w[0]
        for c in range(K):   # no call, no reduction: this loop vectorises
            w[c] = exp_or_zero(off - w[c])
        w[0] = w0
        s0 = w[1]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        c = 2
        while c + 4 <= K:
            s0 += w[c]
            s1 += w[c + 1]
            s2 += w[c + 2]
            s3 += w[c + 3]
            c += 4
        while c < K:
            s0 += w[c]
            c += 1
        S = (s0 + s1) + (s2 + s3)
    else:
        for c in range(1, K):
            x = off - w[c]
            qc = math.exp(x) if x > EXP_FLOOR else 0.0
            w[c] = qc
            S += qc
    return S
