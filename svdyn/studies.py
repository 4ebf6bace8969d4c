"""Typed entry points for the science: one call, one dataclass result.

Each function here wraps the computation that lives in its own module (``analysis/``,
``landscape/``, ``lyapunov.py``, ``fullmodel.py``) and returns a dataclass whose fields do not
depend on the input's shape: for one state the per-state fields are scalars / 1-D arrays, for a
batch of B states they carry a leading ``(B,)`` axis -- the same type either way. The original
dict-returning functions keep working; ``result.raw`` holds their full dict and
``result.to_dict()`` returns it (the JSON the CLI writes).

Conventions: ``docs/conventions.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .spec import ModelSpec

# first compile of the normalised-time classifier kernels: 25 s measured with a fresh
# NUMBA_CACHE_DIR on the 2-core machine at load average 11 (flow kernels already compiled)
CLASSIFIER_COMPILE_S = 25

__all__ = [
    "LimitClassification", "classify_limit", "MaxMargin", "max_margin", "BasinMap", "basin_map",
    "CriticalRatio", "critical_ratio", "MonteCarlo", "monte_carlo", "LyapunovCheck",
    "lyapunov_check", "FullModelValidation", "validate_against_full", "OrderCheck",
    "gd_flow_order",
]


class _Result:
    raw: dict

    def to_dict(self) -> dict:
        """The underlying JSON-ready dict (what the CLI writes)."""
        return self.raw

    def __repr__(self) -> str:
        skip = {"raw"}
        parts = []
        for k, v in self.__dict__.items():
            if k in skip:
                continue
            if isinstance(v, np.ndarray):
                v = f"array{v.shape}" if v.size > 6 else np.array2string(v, precision=4)
            elif isinstance(v, (list, tuple)) and len(v) > 6:
                v = f"[{len(v)} items]"
            elif isinstance(v, float):
                v = f"{v:.6g}"
            parts.append(f"{k}={v}")
        return f"{type(self).__name__}(" + ", ".join(parts) + ")"


# ----------------------------------------------------------------------------- limits
@dataclass(repr=False)
class LimitClassification(_Result):
    """Which modes survive in the limit of the unregularised flow (NC or a rank-r code).

    Shapes: ``B`` states for a batch; for one state the leading axis is dropped (scalars).

    Attributes
    ----------
    label : str or list of str, (B,)      ``"NC"`` or ``"rank-r code"``
    nc : bool or ndarray of bool, (B,)
    rank : int or ndarray of int, (B,)    number of live non-constant modes
    live : ndarray of bool, (K-1,) or (B, K-1)   live flag of modes 1..K-1
    exponents : ndarray, (K-1,) or (B, K-1)      growth exponents d log z_j / d log m_min
    error : float or ndarray, (B,)        max_j min(|e_j|, |1 - e_j|) (0 = clean decision)
    decided : bool or ndarray of bool, (B,)
    horizon : float or ndarray, (B,)      margin reached by the continuation
    status : str or list of str, (B,)     ``"ok"`` or the integrator's reason
    raw : dict                            the dict of :func:`svdyn.analysis.geometry.classify_states`
    """

    label: object
    nc: object
    rank: object
    live: np.ndarray
    exponents: np.ndarray
    error: object
    decided: object
    horizon: object
    status: object
    raw: dict = field(default_factory=dict)

    @property
    def support(self):
        """Live mode indices (1-based mode numbers): list, or list of lists for a batch."""
        if self.live.ndim == 1:
            return (np.nonzero(self.live)[0] + 1).tolist()
        return [(np.nonzero(row)[0] + 1).tolist() for row in self.live]


def classify_limit(spec_or_traj, s=None, *, m_mid: float = 1e2, m_end: float = 1e4,
                   max_end: float = 1e6) -> LimitClassification:
    """Classify the limit (NC or a rank-r softmax code) of the flow from a state or a batch.

    Continues each state in normalised time to large margins and reads each mode's growth
    exponent (live -> 1, dead -> 0); see :mod:`svdyn.analysis.geometry`.

    Parameters
    ----------
    spec_or_traj : ModelSpec or Trajectory
        A spec (then pass ``s``) or a trajectory (its last finite state, or each batch member's).
    s : array_like, shape (L, K) or (B, L, K), optional
        Factor singular values.
    m_mid, m_end : float, optional
        Margin window over which exponents are read.
    max_end : float, optional
        Largest margin an undecided state is pushed to.

    Returns
    -------
    LimitClassification
        Scalars per field for one state; ``(B,)`` leading axes for a batch.
    """
    from .analysis.geometry import DECIDED, classify_states
    from .result import Trajectory

    if isinstance(spec_or_traj, Trajectory):
        tr = spec_or_traj
        spec = tr.spec
        S = np.asarray(tr.s, float)
        ok = np.all(np.isfinite(S), axis=(-1, -2))          # (T,) or (B, T)
        last = np.where(ok.any(axis=-1), ok.shape[-1] - 1 - np.argmax(ok[..., ::-1], axis=-1), -1)
        if np.any(last < 0):
            raise ValueError("trajectory has no finite state")
        s = S[last] if not tr.batched else S[np.arange(S.shape[0]), last]
    else:
        spec = spec_or_traj
        if s is None:
            raise TypeError("classify_limit(spec, s): pass the state s (L, K) or (B, L, K)")
    s = spec.check_state(s)
    single = s.ndim == 2
    from .analysis import normtime
    from .progress import compile_notice

    kernels = [k for k in (getattr(normtime, "_run_batch", None),) if hasattr(k, "signatures")]
    with compile_notice("limit-classifier", CLASSIFIER_COMPILE_S, kernels or None):
        c = classify_states(spec, s[None] if single else s, m_mid, m_end, max_end=max_end)
    rank = np.asarray(c["rank"], int)
    nc = np.asarray(c["nc"], bool)
    err = np.asarray(c["error"], float)
    labels = ["NC" if x else f"rank-{r} code" for x, r in zip(nc, rank)]
    res = dict(label=labels, nc=nc, rank=rank, live=np.asarray(c["live"], bool),
               exponents=np.asarray(c["exponents"], float), error=err,
               decided=err <= DECIDED, horizon=np.asarray(c["horizon"], float),
               status=list(c["status"]))
    if single:
        res = {k: (v[0].item() if isinstance(v, np.ndarray) and v.ndim == 1 else v[0])
               for k, v in res.items()}
    return LimitClassification(**res, raw=c)


# ----------------------------------------------------------------------------- max margin
@dataclass(repr=False)
class MaxMargin(_Result):
    """Optimum of ``min sum_j z_j^(2/L)`` s.t. margins >= 1 over spectral logits at depth L.

    Attributes
    ----------
    classes, depth, group
    rank : int                 rank of the optimum
    support : list of int      its non-zero modes
    z : ndarray, (K,)          the optimal logit singular values
    cost : float               optimal cost
    nc_cost : float            cost of neural collapse
    crossover_depths : ndarray, (C,)   depths in [2, L_max] where the optimal rank changes
    crossovers : list of dict  the full crossover records (ranks, supports, closed forms)
    exact : bool               exhaustive vertex enumeration (False: a search)
    raw : dict                 the dict of :func:`svdyn.analysis.maxmargin.solve`
    """

    classes: int
    depth: float
    group: str
    rank: int
    support: list
    z: np.ndarray
    cost: float
    nc_cost: float
    crossover_depths: np.ndarray
    crossovers: list
    exact: bool
    raw: dict = field(default_factory=dict)


def max_margin(classes: int, depth: float, group: str = "", samples_per_class: int = 1,
               L_max: float = 1000.0) -> MaxMargin:
    """The spectral max-margin problem at depth L, exactly (vertex enumeration).

    Parameters
    ----------
    classes : int
        K.
    depth : float
        L (real values allowed: the cost is ``sum z_j^(2/L)``).
    group : str, optional
        Class group (default walsh for K = 2^m, else cyclic).
    samples_per_class : int, optional
    L_max : float, optional
        Crossover depths are searched on ``[2, L_max]``.

    Returns
    -------
    MaxMargin
    """
    from .analysis.maxmargin import solve

    d = solve(classes, depth, group, samples_per_class, L_max)
    o = d["optimum"]
    return MaxMargin(d["classes"], d["depth"], d["group"], int(o["rank"]), list(o["support"]),
                     np.asarray(o["z"], float), float(o["cost"]), float(d["nc_cost"]),
                     np.array([c["depth"] for c in d["crossovers"]], float), d["crossovers"],
                     bool(d["exact"]), d)


# ----------------------------------------------------------------------------- basins
@dataclass(repr=False)
class BasinMap(_Result):
    """Limit rank on the K = 4 plane ``z(0) = eps (0, 1, 1, r)`` (balanced, walsh).

    Attributes
    ----------
    depth : int
    eps : ndarray, (E,)        init scales (rows)
    r : ndarray, (R,)          ratios (columns)
    rank : ndarray of int, (E, R)   3 = NC, 2 = the square code
    error : ndarray, (E, R)    classifier error per point
    nc_fraction : float
    raw : dict                 the dict of :func:`svdyn.analysis.basins.k4_map`
    """

    depth: int
    eps: np.ndarray
    r: np.ndarray
    rank: np.ndarray
    error: np.ndarray
    nc_fraction: float
    raw: dict = field(default_factory=dict)


def basin_map(depth: int, eps_grid, r_grid, **kw) -> BasinMap:
    """Classify the K = 4 plane on a grid (``eps`` rows, ``r`` columns).

    Parameters
    ----------
    depth : int
    eps_grid : array_like, shape (E,)
    r_grid : array_like, shape (R,)
    **kw
        ``m_mid``, ``m_end``, ``max_end`` of the classifier.

    Returns
    -------
    BasinMap
    """
    from .analysis.basins import k4_map

    d = k4_map(depth, eps_grid, r_grid, **kw)
    return BasinMap(depth, np.asarray(d["eps"]), np.asarray(d["r"]),
                    np.asarray(d["rank"], int), np.asarray(d["error"], float),
                    float(d["nc_fraction"]), d)


@dataclass(repr=False)
class CriticalRatio(_Result):
    """The smallest r whose limit is NC on ``z(0) = eps (0, 1, 1, r)`` (K = 4, walsh).

    Attributes
    ----------
    depth : int
    init_scale : float
    critical_ratio : float     extrapolated over classifier horizons
    horizon_error : float or None
    bracket : list of 2 floats  bracket at the largest horizon
    raw : dict                 the dict of :func:`svdyn.analysis.basins.k4_critical_ratio`
    """

    depth: int
    init_scale: float
    critical_ratio: float
    horizon_error: object
    bracket: list
    raw: dict = field(default_factory=dict)


def critical_ratio(depth: int, eps: float, **kw) -> CriticalRatio:
    """``r_c(eps, L)`` of the K = 4 basin boundary between the square code and NC.

    Parameters
    ----------
    depth : int
    eps : float
        Init scale.
    **kw
        ``r_max``, ``tol``, ``points``, ``horizons`` of
        :func:`svdyn.analysis.basins.k4_critical_ratio`.

    Returns
    -------
    CriticalRatio
    """
    from .analysis.basins import k4_critical_ratio

    d = k4_critical_ratio(depth, eps, **kw)
    return CriticalRatio(depth, float(eps), float(d["critical_ratio"]), d["horizon_error"],
                         list(d["bracket"]), d)


@dataclass(repr=False)
class MonteCarlo(_Result):
    """Distribution of the limit rank over random spectral inits ``z_j(0) = eps U(0.5, 1.5)``.

    Attributes
    ----------
    classes, depth, init_scale, samples, seed
    nc_fraction : float
    rank_histogram : dict int -> int
    mean_rank : float
    undecided : int            starts whose classifier error stayed > 0.25
    failed : int
    raw : dict                 the dict of :func:`svdyn.analysis.basins.monte_carlo`
    """

    classes: int
    depth: int
    init_scale: float
    samples: int
    seed: int
    nc_fraction: float
    rank_histogram: dict
    mean_rank: float
    undecided: int
    failed: int
    raw: dict = field(default_factory=dict)


def monte_carlo(classes: int, depth: int, eps: float, samples: int, seed: int = 0,
                **kw) -> MonteCarlo:
    """Monte Carlo over random balanced spectral inits: how often the limit is NC.

    Parameters
    ----------
    classes, depth : int
    eps : float
        Init scale.
    samples : int
    seed : int, optional
    **kw
        ``group``, ``m_mid``, ``m_end``, ``max_end``.

    Returns
    -------
    MonteCarlo
    """
    from .analysis.basins import monte_carlo as _mc

    d = _mc(classes, depth, eps, samples, seed, **kw)
    return MonteCarlo(classes, depth, float(eps), samples, seed, float(d["nc_fraction"]),
                      dict(d["rank_histogram"]), float(d["mean_rank"]), int(d["undecided"]),
                      int(d["failed"]), d)


# ----------------------------------------------------------------------------- Lyapunov
@dataclass(repr=False)
class LyapunovCheck(_Result):
    """V = KL(uniform || z / sum z) tested along random spectral flows.

    Attributes
    ----------
    trials : int
    violations : int               trajectories on which V rose (beyond 1e-12 relative)
    max_increase : float or None   largest relative rise of V between saved times
    derivative_rel_err : float or None   analytic dV/dt vs a finite difference along the flow
    closed_form_rel_err : float or None  depth-2 closed form vs the general rate (None if n/a)
    failed_trajectories : int
    raw : dict                     the dict of :func:`svdyn.lyapunov.check`
    """

    trials: int
    violations: int
    max_increase: object
    derivative_rel_err: object
    closed_form_rel_err: object
    failed_trajectories: int
    raw: dict = field(default_factory=dict)


def lyapunov_check(spec: ModelSpec, trials: int, init_scale: float, **kw) -> LyapunovCheck:
    """Check the Lyapunov function along ``trials`` random spectral flows.

    Parameters
    ----------
    spec : ModelSpec
    trials : int
    init_scale : float
    **kw
        ``unbalanced``, ``spread``, ``seed``, ``t_end``, ... of :func:`svdyn.lyapunov.check`.

    Returns
    -------
    LyapunovCheck
    """
    from .lyapunov import check

    d = check(spec, trials, init_scale, **kw)
    return LyapunovCheck(d["trials"], d["violations"], d["max_increase"],
                         d["derivative_rel_err"], d.get("closed_form_rel_err"),
                         d["failed_trajectories"], d)


# ----------------------------------------------------------------------------- full model
@dataclass(repr=False)
class FullModelValidation(_Result):
    """Full-matrix torch GD from a spectral init vs the exact reduced GD map.

    Attributes
    ----------
    device : str                   where torch ran (``"cpu"``, ``"cuda:0 (name)"``)
    max_rel_dev : float            largest relative deviation of s and z (projection and SVD)
    max_leakage : float            mass outside the frozen frames
    loss_gap : float               max |full loss - reduced loss|
    steps : ndarray, (T,)          saved GD steps
    rel_dev_series : ndarray, (T,)
    reduced_seconds, full_seconds : float
    raw : dict                     the dict of :func:`svdyn.fullmodel.validate_spectral`
    """

    device: str
    max_rel_dev: float
    max_leakage: float
    loss_gap: float
    steps: np.ndarray
    rel_dev_series: np.ndarray
    reduced_seconds: float
    full_seconds: float
    raw: dict = field(default_factory=dict)


def validate_against_full(spec: ModelSpec, s0, widths, lr: float, steps: int,
                          save_every: int = 1, seed: int = 0, device: str = "auto",
                          **kw) -> FullModelValidation:
    """Train the full deep linear UFM (torch, float64) next to the reduced GD map.

    Needs torch (``pip install "svdyn[torch]"``); ``device="auto"`` picks cuda when available.

    Parameters
    ----------
    spec : ModelSpec
    s0 : array_like, shape (L, K)
        Initial factor singular values.
    widths : int or sequence of L-1 ints
        Hidden widths d_1..d_{L-1} (>= K).
    lr : float
    steps : int
    save_every : int, optional
    seed : int, optional
        Seed of the random orthonormal hidden frames.
    device : str, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    FullModelValidation
    """
    from .fullmodel import validate_spectral

    d = validate_spectral(spec, s0, widths, lr, steps, save_every, seed, device, **kw)
    return FullModelValidation(d["device"], float(d["max_rel_dev"]), float(d["max_leakage"]),
                               float(d["loss_gap"]), np.asarray(d["saved_steps"], float),
                               np.asarray(d["rel_dev_series"], float),
                               float(d["reduced_seconds"]), float(d["full_seconds"]), d)


@dataclass(repr=False)
class OrderCheck(_Result):
    """Convergence of GD to gradient flow as the step shrinks.

    Attributes
    ----------
    t_end : float
    lrs : ndarray, (M,)            step sizes (each t_end / integer)
    errors_full : ndarray, (M,)    full-matrix GD vs the reduced flow, relative to max s
    errors_reduced : ndarray, (M,) reduced GD map vs the reduced flow
    order : float                  least-squares slope of log error vs log lr (Euler: 1)
    raw : dict                     the dict of :func:`svdyn.fullmodel.order_check`
    """

    t_end: float
    lrs: np.ndarray
    errors_full: np.ndarray
    errors_reduced: np.ndarray
    order: float
    raw: dict = field(default_factory=dict)


def gd_flow_order(spec: ModelSpec, s0, widths, lr: float, t_end: float, levels: int = 4,
                  seed: int = 0, device: str = "auto", **kw) -> OrderCheck:
    """Full GD at ``lr / 2^k`` (k < levels) up to ``t_end`` against the reduced flow.

    Parameters
    ----------
    spec : ModelSpec
    s0 : array_like, shape (L, K)
    widths : int or sequence of L-1 ints
    lr : float
        Largest step.
    t_end : float
    levels : int, optional
    seed : int, optional
    device : str, optional

    Returns
    -------
    OrderCheck
    """
    from .fullmodel import order_check

    d = order_check(spec, s0, widths, lr, t_end, levels, seed, device, **kw)
    return OrderCheck(float(d["t_end"]), np.asarray(d["lrs"]), np.asarray(d["errors_full"]),
                      np.asarray(d["errors_reduced"]), float(d["order"]), d)
