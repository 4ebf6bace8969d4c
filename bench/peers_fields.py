"""Right-hand sides of the reduced walsh CE flow, written for each peer (see ``peers.py``).

State ``y`` = ``s.ravel()`` with ``s`` of shape (L, K), ``K = 2^m``, n samples per class, no
weight decay (MODEL.md section 2):

    u = H z / (K sqrt n),  z_j = prod_l s[l, j]
    p = softmax(u)                              (shifted by max u)
    w = e_0 - p,  w_0 = sum_{g != 0} p_g         (never 1 - H p: keeps e^{-margin} precision)
    g = H w / (K sqrt n),  g_0 = 0
    ds[l, j]/dt = g_j prod_{m != l} s[m, j]      (prefix / suffix products, no division)

Each peer gets the field in the form that peer runs fastest, written independently of svdyn
(only :func:`check_fields` calls svdyn, to prove all of them compute svdyn's field):

* numpy (scipy ``solve_ivp``): dense ``H @ x`` for K <= 256, a vectorised radix-2 FWHT above
  (:data:`DENSE_MAX_K`; the crossover measured on this machine sits between 256 and 1024);
* numba ``cfunc`` (numbalsoda, CyRK): loops with K, L, 1/(K sqrt n) as compile-time constants;
  numbalsoda gets its scratch through its ``data`` array (no allocation per call), CyRK
  allocates one scratch array per call (its ``args`` buffer belongs to the solver);
* jax (diffrax): ``jnp`` dense ``H @ x`` for K <= 256, a reshape-to-(2,)*m FWHT above;
  ``vmap`` handles batches.
"""
from __future__ import annotations

import functools
import math

import numpy as np

DENSE_MAX_K = 256


def sylvester(K: int) -> np.ndarray:
    H = np.ones((1, 1))
    while H.shape[0] < K:
        H = np.block([[H, H], [H, -H]])
    return H


# ----------------------------------------------------------------------------- numpy
def fwht_np(x: np.ndarray) -> np.ndarray:
    """Unnormalised Sylvester-order FWHT along the last axis (returns a new array)."""
    K = x.shape[-1]
    lead = x.shape[:-1]
    a = x
    h = 1
    while h < K:
        a = a.reshape(lead + (K // (2 * h), 2, h))
        lo, hi = a[..., 0, :], a[..., 1, :]
        a = np.stack((lo + hi, lo - hi), axis=-2)
        h *= 2
    return a.reshape(lead + (K,))


def numpy_field(K: int, L: int, n: int = 1):
    """``f(t, y)`` for scipy ``solve_ivp``; returns (f, description)."""
    inv = 1.0 / (K * math.sqrt(n))
    if K <= DENSE_MAX_K:
        H = sylvester(K)

        def transform(x):
            return H @ x
        how = "dense H@x"
    else:
        transform = fwht_np
        how = "numpy FWHT"

    def f(t, y):
        s = y.reshape(L, K)
        z = np.prod(s, axis=0)
        u = transform(z) * inv
        q = np.exp(u - u.max())
        p = q / q.sum()
        w = -p
        w[0] = p[1:].sum()
        g = transform(w) * inv
        g[0] = 0.0
        out = np.empty((L, K))
        pre = g.copy()
        for l in range(L):
            out[l] = pre
            pre = pre * s[l]
        suf = np.ones(K)
        for l in range(L - 1, -1, -1):
            out[l] *= suf
            suf = suf * s[l]
        return out.ravel()

    return f, how


# ----------------------------------------------------------------------------- numba
def numba_kernels():
    """Compile-on-first-use numba pieces shared by the cfunc peers (imported lazily)."""
    import numba as nb

    @nb.njit(inline="always")
    def fwht(a, off, K):
        h = 1
        while h < K:
            for i in range(0, K, 2 * h):
                for j in range(i, i + h):
                    x = a[off + j]
                    y = a[off + j + h]
                    a[off + j] = x + y
                    a[off + j + h] = x - y
            h *= 2

    @nb.njit(inline="always")
    def field(y, dy, w, K, L, inv):
        """dy = f(y); ``w`` scratch of >= 2K doubles (rows u at 0, w at K)."""
        for j in range(K):
            z = y[j]
            for l in range(1, L):
                z *= y[l * K + j]
            w[j] = z
        fwht(w, 0, K)
        umax = -np.inf
        for j in range(K):
            w[j] *= inv
            umax = max(umax, w[j])
        S = 0.0
        for j in range(K):
            q = math.exp(w[j] - umax)
            w[K + j] = q
            S += q
        tail = 0.0
        for j in range(1, K):
            p = w[K + j] / S
            w[K + j] = -p
            tail += p
        w[K] = tail
        fwht(w, K, K)
        # g in w[K:2K], prefix products into dy, suffix products in w[0:K]
        w[K] = 0.0
        for j in range(K):
            w[K + j] *= inv
            w[j] = 1.0
        for l in range(L):
            for j in range(K):
                dy[l * K + j] = w[K + j]
                w[K + j] *= y[l * K + j]
        for l in range(L - 1, -1, -1):
            for j in range(K):
                dy[l * K + j] *= w[j]
                w[j] *= y[l * K + j]

    return fwht, field


@functools.lru_cache(maxsize=None)
def numbalsoda_rhs(K: int, L: int, n: int = 1):
    """numbalsoda cfunc ``(t, u*, du*, p*)``; ``p`` = data array of :func:`numbalsoda_data`
    (p[0] counts evaluations, p[1:1+2K] is scratch). Returns the cfunc."""
    import numba as nb
    from numba import carray
    from numbalsoda import lsoda_sig

    _, field = numba_kernels()
    KK, LL, inv, N = K, L, 1.0 / (K * math.sqrt(n)), K * L

    @nb.cfunc(lsoda_sig)
    def rhs(t, u, du, p):
        y = carray(u, (N,))
        dy = carray(du, (N,))
        d = carray(p, (1 + 2 * KK,))
        d[0] += 1.0
        field(y, dy, d[1:], KK, LL, inv)

    return rhs


def numbalsoda_data(K: int) -> np.ndarray:
    return np.zeros(1 + 2 * K)


@functools.lru_cache(maxsize=None)
def cyrk_rhs(K: int, L: int, n: int = 1):
    """CyRK cfunc ``(dy*, t, y*, args*)`` for ``nbsolve2_ivp``. Returns the cfunc."""
    import numba as nb
    from numba import carray
    from CyRK import cyjit  # noqa: F401  (the signature CyRK expects)
    from CyRK.nb.numba_solver import cyjit_sig

    _, field = numba_kernels()
    KK, LL, inv, N = K, L, 1.0 / (K * math.sqrt(n)), K * L

    @nb.cfunc(cyjit_sig)
    def rhs(dyp, t, yp, argp):
        y = carray(yp, (N,))
        dy = carray(dyp, (N,))
        w = np.empty(2 * KK)
        field(y, dy, w, KK, LL, inv)

    return rhs


def numba_py_field(K: int, L: int, n: int = 1):
    """``f(t, y)`` calling the same numba loops from Python (used for the tight reference)."""
    import numba as nb

    _, field = numba_kernels()
    inv = 1.0 / (K * math.sqrt(n))

    @nb.njit
    def rhs(y, w):
        dy = np.empty(y.shape[0])
        field(y, dy, w, K, L, inv)
        return dy

    w = np.empty(2 * K)

    def f(t, y):
        return rhs(y, w)

    return f


# ----------------------------------------------------------------------------- jax
def jax_field(K: int, L: int, n: int = 1):
    """diffrax vector field ``f(t, y, args)`` in jnp (float64); returns (f, description)."""
    import jax.numpy as jnp

    inv = 1.0 / (K * math.sqrt(n))
    m = int(round(math.log2(K)))
    if K <= DENSE_MAX_K:
        H = jnp.asarray(sylvester(K))

        def transform(x):
            return H @ x
        how = "dense H@x"
    else:
        def transform(x):
            a = x.reshape((2,) * m)
            for ax in range(m):
                lo = jnp.take(a, 0, axis=ax)
                hi = jnp.take(a, 1, axis=ax)
                a = jnp.stack((lo + hi, lo - hi), axis=ax)
            return a.reshape(K)
        how = "jnp FWHT"

    def f(t, y, args):
        s = y.reshape(L, K)
        z = jnp.prod(s, axis=0)
        u = transform(z) * inv
        q = jnp.exp(u - u.max())
        p = q / q.sum()
        w = (-p).at[0].set(p[1:].sum())
        g = (transform(w) * inv).at[0].set(0.0)
        # products of the other factors, without division (s may be 0)
        pre = jnp.concatenate([jnp.ones((1, K)), jnp.cumprod(s, axis=0)[:-1]], axis=0)
        suf = jnp.concatenate([jnp.cumprod(s[::-1], axis=0)[:-1][::-1], jnp.ones((1, K))],
                              axis=0)
        return (g * pre * suf).ravel()

    return f, how


# ----------------------------------------------------------------------------- checks
def check_fields(spec, s, fields: dict) -> dict:
    """Max relative deviation of each peer field from ``svdyn.field.vector_field`` at ``s``."""
    from svdyn.field import vector_field

    ref = vector_field(spec, s)[0].ravel()
    scale = np.abs(ref).max()
    return {name: float(np.abs(np.asarray(f(0.0, s.ravel())) - ref).max() / scale)
            for name, f in fields.items()}
