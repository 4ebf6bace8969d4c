"""Class groups and their real orthogonal character bases.

A spectral initialisation needs an abelian group ``G`` of order ``K`` acting on the classes.
Its characters ``chi_j`` diagonalise every matrix ``A[g, h] = f(g - h)``; with ``f`` even the
eigenvalues are real and a *real* orthogonal basis ``Q`` (K x K) of characters exists:

* a self-conjugate character (``chi_j = conj chi_j``, values +-1) gives the column
  ``Re chi_j / sqrt(K)``;
* a conjugate pair ``(j, jbar)``, ``j < jbar``, gives ``sqrt(2) Re chi_j / sqrt(K)`` in column ``j``
  and ``sqrt(2) Im chi_j / sqrt(K)`` in column ``jbar``. Those two modes are *paired*: they
  must carry equal singular values.

Groups are products ``Z_{m_1} x ... x Z_{m_r}``; elements and characters are indexed
row-major (mixed radix, axis 0 slowest), and ``chi_j(g) = exp(2 pi i sum_a j_a g_a / m_a)``.

* ``walsh``: ``Z_2^m``, K = 2^m; ``Q = H_K / sqrt(K)`` (Sylvester order); no pairs.
* ``cyclic``: ``Z_K``; column j < K/2 is a cosine, column K - j its sine partner; for even K
  column K/2 alternates.
* ``"2,5"`` etc.: direct products, e.g. ``Z_2 x Z_5`` for K = 10.

Mode 0 is the constant character. A general (Paley) Hadamard matrix is not a character table
and is not offered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


WALSH, PRODUCT = 0, 1  # numba dispatch codes


class SpecError(ValueError):
    """Invalid model or group specification (the CLI prints it on one line, exit 2)."""


def _is_pow2(k: int) -> bool:
    return k >= 1 and (k & (k - 1)) == 0


@dataclass(frozen=True)
class Group:
    """A finite abelian class group with its real character basis.

    Attributes
    ----------
    name : str       ``"walsh"``, ``"cyclic"`` or ``"m1,m2,..."``
    dims : tuple     cyclic factor orders, product K
    """

    name: str
    dims: tuple
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def K(self) -> int:
        return int(np.prod(self.dims))

    @property
    def kind(self) -> int:
        return WALSH if self.name == "walsh" else PRODUCT

    @cached_property
    def digits(self) -> np.ndarray:
        """(K, r) mixed-radix digits of each element / character index."""
        K = self.K
        out = np.zeros((K, len(self.dims)), dtype=np.int64)
        idx = np.arange(K)
        for a in range(len(self.dims) - 1, -1, -1):
            out[:, a] = idx % self.dims[a]
            idx = idx // self.dims[a]
        return out

    @cached_property
    def phase(self) -> np.ndarray:
        """(K, K) phases ``theta[g, j]`` with ``chi_j(g) = exp(i theta[g, j])``."""
        d = self.digits
        m = np.asarray(self.dims, dtype=float)
        frac = (d[:, None, :] * d[None, :, :]) % np.asarray(self.dims)
        return 2.0 * np.pi * np.sum(frac / m, axis=-1)

    @cached_property
    def partner(self) -> np.ndarray:
        """(K,) int: index of the conjugate character (``partner[j] == j`` if self-conjugate)."""
        d = self.digits
        neg = (-d) % np.asarray(self.dims)
        w = np.ones(len(self.dims), dtype=np.int64)
        for a in range(len(self.dims) - 2, -1, -1):
            w[a] = w[a + 1] * self.dims[a + 1]
        return neg @ w

    @cached_property
    def char_table(self) -> np.ndarray:
        """(K, K) symmetric real table ``C[g, j] = Re chi_j(g)``."""
        C = np.cos(self.phase)
        if self.name == "walsh":
            C = np.rint(C)
        return C

    @cached_property
    def Q(self) -> np.ndarray:
        """(K, K) real orthogonal basis; column j is mode j (see module docstring)."""
        K = self.K
        th = self.phase
        Q = np.empty((K, K))
        for j in range(K):
            p = self.partner[j]
            if p == j:
                Q[:, j] = np.rint(np.cos(th[:, j])) / np.sqrt(K)
            elif j < p:
                Q[:, j] = np.sqrt(2.0 / K) * np.cos(th[:, j])
            else:
                Q[:, j] = np.sqrt(2.0 / K) * np.sin(th[:, p])
        return Q

    @cached_property
    def pairs(self) -> list:
        """List of ``(j, jbar)`` conjugate pairs with ``j < jbar``."""
        return [(j, int(p)) for j, p in enumerate(self.partner) if j < p]

    @cached_property
    def tables(self):
        """Arrays handed to the numba kernels: ``(kind, dims, cos_tab, sin_tab, offs)``."""
        from .transforms import twiddle_tables  # numba: imported on first use (svdyn --help
        dims = np.asarray(self.dims, dtype=np.int64)  # and the CLI parser stay numba-free)
        c, s, o = twiddle_tables(dims)
        return self.kind, dims, c, s, o

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``y_j = sum_g x_g Re chi_j(g)`` (= ``C @ x``) via the fast kernel; x shape (K,)."""
        from .transforms import char_transform, fwht
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.K,):
            raise SpecError(f"transform expects shape ({self.K},), got {x.shape}")
        if self.kind == WALSH:
            y = x.copy()
            fwht(y)
            return y
        K, mx = self.K, max(self.dims)
        y = np.empty(K)
        _, dims, c, s, o = self.tables
        char_transform(x, y, dims, c, s, o, np.empty(K), np.empty(K), np.empty(mx), np.empty(mx))
        return y

    def symmetrise(self, x: np.ndarray) -> np.ndarray:
        """Contiguous float64 copy of ``x`` (..., K) with each pair set to its mean (exactly
        equal, as the model requires; the dynamics keep exact equality from there)."""
        x = np.array(x, dtype=np.float64, order="C", copy=True)
        for j, p in self.pairs:
            v = 0.5 * (x[..., j] + x[..., p])
            x[..., j] = v
            x[..., p] = v
        return x

    def check_paired(self, z: np.ndarray, what: str = "z") -> None:
        """Raise :class:`SpecError` unless paired modes of ``z`` (..., K) carry equal values."""
        z = np.asarray(z)
        for j, p in self.pairs:
            if not np.allclose(z[..., j], z[..., p], rtol=1e-6, atol=1e-300):
                raise SpecError(
                    f"{what}: modes {j} and {p} of the {self.name} basis are a conjugate pair and "
                    f"must carry equal values (got {z[..., j]!r} vs {z[..., p]!r}); "
                    "give both the same value")


def make_group(spec: str, K: int) -> Group:
    """Build the class group named by ``spec`` for ``K`` classes.

    ``spec`` is ``"walsh"`` (K a power of two), ``"cyclic"`` (any K >= 2), or a comma list of
    cyclic orders such as ``"2,5"`` whose product is K. Raises :class:`SpecError` otherwise.
    """
    if not isinstance(K, (int, np.integer)) or K < 2:
        raise SpecError(f"--classes must be an integer >= 2, got {K!r}")
    K = int(K)
    spec = str(spec).strip().lower()
    if spec == "walsh":
        if not _is_pow2(K):
            raise SpecError(
                f"group 'walsh' needs K a power of two, got K={K}; use --group cyclic "
                f"(any K) or a product of cyclic orders such as --group "
                f"{_suggest_product(K)}")
        return Group("walsh", (2,) * (K.bit_length() - 1))
    if spec == "cyclic":
        return Group("cyclic", (K,))
    try:
        dims = tuple(int(t) for t in spec.split(","))
    except ValueError:
        raise SpecError(
            f"unknown group {spec!r}; use walsh, cyclic, or cyclic orders like 2,5") from None
    if any(m < 2 for m in dims):
        raise SpecError(f"group {spec!r}: every cyclic order must be >= 2")
    if int(np.prod(dims)) != K:
        raise SpecError(f"group {spec!r} has order {int(np.prod(dims))} but --classes is {K}; "
                        "the product of the orders must equal K")
    if len(dims) == 1:
        return Group("cyclic", dims)
    if all(m == 2 for m in dims):
        return Group("walsh", dims)
    return Group(",".join(map(str, dims)), dims)


def _suggest_product(K: int) -> str:
    f, k, p = [], K, 2
    while p * p <= k:
        while k % p == 0:
            f.append(p)
            k //= p
        p += 1
    if k > 1:
        f.append(k)
    return ",".join(map(str, f)) if len(f) > 1 else "cyclic"


def default_group(K: int) -> str:
    """``walsh`` for powers of two, else ``cyclic``."""
    return "walsh" if _is_pow2(K) else "cyclic"
