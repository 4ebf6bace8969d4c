"""The model specification: what is trained, with which loss and regularisation.

Conventions (binding, see ``docs/conventions.md``): depth ``L`` counts *all* trainable factor
matrices (``L = 2`` is the plain UFM; [P] and [U] count only the W's, so their L is ours minus one);
the loss is the mean over the ``N = nK`` samples plus ``sum_l lambda_l/2 ||F_l||_F^2``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .groups import Group, SpecError, default_group, make_group

LOSS_CE, LOSS_MSE, LOSS_LS = 0, 1, 2  # numba dispatch codes


def parse_loss(loss: str) -> tuple[int, float]:
    """``"ce"`` -> (0, 0), ``"mse"`` -> (1, 0), ``"ls:EPS"`` -> (2, EPS) with 0 < EPS < 1."""
    s = str(loss).strip().lower()
    if s == "ce":
        return LOSS_CE, 0.0
    if s == "mse":
        return LOSS_MSE, 0.0
    if s.startswith("ls:"):
        try:
            eps = float(s[3:])
        except ValueError:
            raise SpecError(f"--loss {loss!r}: label smoothing must be ls:EPS with a number EPS, "
                            "e.g. ls:0.1") from None
        if not (0.0 < eps < 1.0) or not math.isfinite(eps):
            raise SpecError(f"--loss {loss!r}: label smoothing EPS must lie in (0, 1)")
        return LOSS_LS, eps
    raise SpecError(f"unknown --loss {loss!r}; use ce, mse or ls:EPS (e.g. ls:0.1)")


def _all_finite(s: np.ndarray) -> bool:
    """Whether every entry of a float array is finite: ``math.isfinite`` over a list for small
    arrays (0.43 us for 8 values), ``np.isfinite(...).all()`` otherwise (1.3 us at any size up
    to ~10^3; np.all costs ~3 us more a call)."""
    if s.size <= 32:
        return all(map(math.isfinite, s.ravel().tolist()))
    return bool(np.isfinite(s).all())


@dataclass(frozen=True)
class ModelSpec:
    """A deep linear UFM under spectral initialisation.

    Parameters
    ----------
    classes : int            K >= 2
    depth : int              L >= 1, number of trainable factor matrices (L = 2: plain UFM)
    samples_per_class : int  n >= 1
    loss : str               ``"ce"`` (default), ``"mse"``, ``"ls:EPS"`` (label-smoothed ce)
    weight_decay : float or sequence of L floats, each >= 0
    group : str              ``"walsh"``, ``"cyclic"``, ``"2,5"``...; default walsh if K = 2^m
    """

    classes: int
    depth: int = 2
    samples_per_class: int = 1
    loss: str = "ce"
    weight_decay: tuple = (0.0,)
    group: str = ""
    _g: Group = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        K, L, n = self.classes, self.depth, self.samples_per_class
        for name, v, lo in (("classes", K, 2), ("depth", L, 1), ("samples_per_class", n, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise SpecError(f"{name} must be an integer >= {lo}, got {v!r}")
        object.__setattr__(self, "classes", int(K))
        object.__setattr__(self, "depth", int(L))
        object.__setattr__(self, "samples_per_class", int(n))
        parse_loss(self.loss)
        wd = self.weight_decay
        wd = (float(wd),) * L if np.isscalar(wd) else tuple(float(x) for x in wd)
        if len(wd) == 1:
            wd = wd * L
        if len(wd) != L:
            raise SpecError(f"weight decay: give one value or one per factor ({L}), got {len(wd)}")
        if any((not math.isfinite(x)) or x < 0 for x in wd):
            raise SpecError(f"weight decay must be finite and >= 0, got {wd}")
        object.__setattr__(self, "weight_decay", wd)
        gname = self.group or default_group(K)
        g = make_group(gname, K)
        object.__setattr__(self, "group", g.name)
        object.__setattr__(self, "_g", g)

    # ------------------------------------------------------------------ derived
    @property
    def K(self) -> int:
        return self.classes

    @property
    def L(self) -> int:
        return self.depth

    @property
    def n(self) -> int:
        return self.samples_per_class

    @property
    def G(self) -> Group:
        return self._g

    @property
    def loss_code(self) -> tuple[int, float]:
        return parse_loss(self.loss)

    @property
    def lam(self) -> np.ndarray:
        return np.asarray(self.weight_decay, dtype=np.float64)

    def kernel_args(self):
        """Legacy positional tuple ``(kind, dims, cos_tab, sin_tab, offs, loss_code, eps, n,
        lam)``; the kernels now take :meth:`bundle` instead."""
        kind, dims, c, s, o = self.G.tables
        code, eps = self.loss_code
        return (kind, dims, c, s, o, code, eps, float(self.n), self.lam)

    def bundle(self, clock: int = 0):
        """The model as one named bundle for the numba kernels (``svdyn.bundle.Model``)."""
        cache = self.__dict__.setdefault("_bundle_cache", {})  # per instance: no hashing
        b = cache.get(clock)
        if b is None:
            from .bundle import make_bundle

            b = cache[clock] = make_bundle(self, clock)
        return b

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_g", None)
        d["weight_decay"] = list(self.weight_decay)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        keys = ("classes", "depth", "samples_per_class", "loss", "weight_decay", "group")
        return cls(**{k: d[k] for k in keys if k in d})

    # ------------------------------------------------------------------ states
    def check_state(self, s: np.ndarray, what: str = "state") -> np.ndarray:
        """Validate a state of shape (L, K) or a batch (B, L, K); return it as float64."""
        s = np.asarray(s, dtype=np.float64)
        sh = s.shape   # the fields, not the L / K properties: this runs on every flow call
        if not (2 <= len(sh) <= 3 and sh[-2] == self.depth and sh[-1] == self.classes):
            raise SpecError(f"{what} must have shape (L, K) = ({self.L}, {self.K}) or "
                            f"(B, {self.L}, {self.K}); got {s.shape}")
        if not _all_finite(s):
            raise SpecError(f"{what} contains non-finite values; pass finite singular values")
        G = self._g
        if not G.pairs:   # walsh: no conjugate pairs to check or average, only the copy
            return np.array(s, dtype=np.float64, order="C", copy=True)
        G.check_paired(s, what)
        return G.symmetrise(s)

    def balanced(self, z: np.ndarray) -> np.ndarray:
        """Balanced factors from logit singular values: ``s_{l,j} = z_j^(1/L)``.

        z shape (K,) or (B, K), z >= 0 (negative values would need sign conventions that the
        singular-value picture does not use). Returns (L, K) or (B, L, K).
        """
        z = np.asarray(z, dtype=np.float64)
        if z.shape[-1] != self.K or z.ndim not in (1, 2):
            raise SpecError(f"z must have shape (K,) or (B, K) with K={self.K}, got {z.shape}")
        if not np.all(np.isfinite(z)):
            raise SpecError("initial logit singular values must be finite")
        if np.any(z < 0):
            raise SpecError("initial logit singular values must be >= 0 (they are singular values)")
        self.G.check_paired(z, "init")
        z = self.G.symmetrise(z)
        s = z[..., None, :] ** (1.0 / self.L)
        return np.ascontiguousarray(np.broadcast_to(s, z.shape[:-1] + (self.L, self.K)).copy())


def random_init_z(spec: ModelSpec, scale: float, rng: np.random.Generator,
                  batch: int | None = None, mode0: float = 0.0) -> np.ndarray:
    """Random logit singular values ``z_j(0) = scale * U(0.5, 1.5)`` on modes 1..K-1.

    Paired modes (cyclic partners j, K - j) get equal values; mode 0 gets ``mode0``. Split them
    over the factors with :func:`svdyn.balanced_init` or :func:`svdyn.unbalanced_init`.

    Parameters
    ----------
    spec : ModelSpec
    scale : float
        Init scale (> 0).
    rng : numpy.random.Generator
    batch : int, optional
        Number of independent draws B (default: one state).
    mode0 : float, optional
        Value of the constant mode (default 0).

    Returns
    -------
    z : ndarray, shape (K,) or (B, K)
    """
    if not (math.isfinite(scale) and scale > 0):
        raise SpecError(f"init scale (--init-scale) must be a finite number > 0, got {scale}")
    shape = (spec.K,) if batch is None else (batch, spec.K)
    z = scale * rng.uniform(0.5, 1.5, size=shape)
    z[..., :] = np.where(np.arange(spec.K) > spec.G.partner, z[..., spec.G.partner], z)
    z[..., 0] = mode0
    return z
