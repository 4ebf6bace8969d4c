"""Named bundles handed to the numba kernels: the model, scratch buffers, a run's state, controls.

Every compiled kernel of the engine takes these ``typing.NamedTuple`` bundles instead of long
positional tuples (numba 0.68 compiles and caches them, ``cache=True`` and ``prange`` work;
jitclass would not cache). Adding a model parameter is one line in :class:`Model` and one in
:func:`make_bundle`; kernels read it by name (``m.eps``, ``m.lam``...).

This module imports only numpy, so the CLI can build and check bundles without numba.

Bundles
-------
:class:`Model`    the model parameters (group tables, loss, weight decay, clock)
:class:`Scratch`  per-trajectory work buffers of the field (built inside kernels by
                  ``svdyn.field.new_scratch``)
:class:`Run`      the state of a batch of trajectories between compiled slices (``svdyn.stepper``)
:class:`Ctrl`     integrator controls (tolerances, step limits, stop kind)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

# ---------------------------------------------------------------------------- clocks
#: physical time t: ``ds/dt`` (the gradient flow)
CLOCK_T = 0
#: normalised time of the limit classifier, ``dtau = e^{-m_min} / (1 + sum_c e^{-m_c}) dt``:
#: the field is ``g_j (1 + sum e^{-m}) e^{m_min} prod_{m != l} s_m`` (``analysis/normtime.py``)
CLOCK_NORM = 1
#: the certification clock: state ``y_j = z_j^{-(L-2)/L}`` (balanced, ce), ``dtau = e^{-m_min}
#: dt``, ``dy_j/dtau = -(L-2) g_j e^{m_min}`` (``svdyn.integrate.flow_y``)
CLOCK_Y = 2
CLOCK_NAMES = {CLOCK_T: "t", CLOCK_NORM: "normalised", CLOCK_Y: "y"}

# ---------------------------------------------------------------------------- run layout
JOB_RK, JOB_GD = 0, 1  # what a batch slice advances: an RK trajectory or gradient descent
#: what ``Run.stops`` holds: clock times (save grid), minimum-margin thresholds (increasing),
#: or minus the thresholds of ``min_j y_j`` (so that the event value increases)
STOP_TIME, STOP_MARGIN, STOP_YMIN = 0, 1, 2

# columns of Run.fs (float state per trajectory)
F_T, F_H, F_TSTEADY, F_LOSS, F_MM, F_EV = 0, 1, 2, 3, 4, 5
NF = 6
# columns of Run.ist (integer state per trajectory)
I_STATUS, I_NACC, I_NREJ, I_IDX, I_REJ, I_WINACC, I_WINREJ, I_NONFIN, I_STARTED, I_DONE, \
    I_ATTEMPTS = range(11)
NI = 11


class Model(NamedTuple):
    """Model parameters read by every kernel (build with :func:`make_bundle`).

    Fields
    ------
    kind : int              group kind (``groups.WALSH`` or ``groups.PRODUCT``)
    dims : (r,) int64       cyclic factor orders, product K
    cos_tab, sin_tab : (sum dims,) float64   twiddle tables (``transforms.twiddle_tables``)
    offs : (r,) int64       start of each axis in the tables
    code : int              loss code (``spec.LOSS_CE``, ``LOSS_MSE``, ``LOSS_LS``)
    eps : float             label smoothing
    n : float               samples per class
    lam : (L,) float64      weight decay per factor
    clock : int             ``CLOCK_T``, ``CLOCK_NORM`` or ``CLOCK_Y``
    depth : int             L
    classes : int           K
    tmax : int              max(dims): length of the transform's per-axis buffers
    """

    kind: int
    dims: np.ndarray
    cos_tab: np.ndarray
    sin_tab: np.ndarray
    offs: np.ndarray
    code: int
    eps: float
    n: float
    lam: np.ndarray
    clock: int
    depth: int
    classes: int
    tmax: int


_BUNDLES: dict = {}  # (spec, clock) -> Model; the kernels never write into a bundle


def make_bundle(spec, clock: int = CLOCK_T) -> Model:
    """The :class:`Model` bundle of a ``ModelSpec`` (also ``spec.bundle(clock)``), cached."""
    key = (spec, clock)
    b = _BUNDLES.get(key)
    if b is None:
        if len(_BUNDLES) > 256:
            _BUNDLES.clear()
        b = _BUNDLES[key] = _make_bundle(spec, clock)
    return b


def _make_bundle(spec, clock):
    if clock not in CLOCK_NAMES:
        raise ValueError(f"unknown clock {clock!r}; use one of {sorted(CLOCK_NAMES)}")
    kind, dims, c, s, o = spec.G.tables
    code, eps = spec.loss_code
    return Model(kind=int(kind), dims=np.array(dims, dtype=np.int64),
                 cos_tab=np.array(c, dtype=np.float64), sin_tab=np.array(s, dtype=np.float64),
                 offs=np.array(o, dtype=np.int64), code=int(code), eps=float(eps),
                 n=float(spec.n), lam=np.array(spec.lam, dtype=np.float64), clock=int(clock),
                 depth=int(spec.L), classes=int(spec.K), tmax=int(max(spec.G.dims)))


class Scratch(NamedTuple):
    """Work buffers of one field evaluation (all (K,) float64 except ``tre``, ``tim``).

    u      class logits ``C z / (K sqrt n)``
    w      margins, then the stable softmax residual input ``e_0 - p`` (scaled)
    omm    ``1 - mu`` (scaled by the clock)
    z, g   logit singular values and ``g = -d loss / d z``
    pre, suf  prefix / suffix products over the factors
    wre, wim  (K,) complex work of the character transform
    tre, tim  (tmax,) per-axis work of the character transform
    """

    u: np.ndarray
    w: np.ndarray
    omm: np.ndarray
    z: np.ndarray
    g: np.ndarray
    pre: np.ndarray
    suf: np.ndarray
    wre: np.ndarray
    wim: np.ndarray
    tre: np.ndarray
    tim: np.ndarray


class Run(NamedTuple):
    """State of a batch of B trajectories, kept between compiled slices.

    y : (B, L, K)         current state
    k : (B, S, L, K)      RK stages (``k[0] = f(y)``); S = tableau stages incl. dense ones
    fs : (B, NF) float    ``F_T`` clock time, ``F_H`` next step, ``F_TSTEADY``, ``F_LOSS``,
                          ``F_MM``, ``F_EV`` (event value at ``y``)
    ist : (B, NI) int64   ``I_STATUS``, ``I_NACC``, ``I_NREJ``, ``I_IDX`` (next stop),
                          ``I_REJ``, ``I_WINACC``, ``I_WINREJ``, ``I_NONFIN``, ``I_STARTED``,
                          ``I_DONE``, ``I_ATTEMPTS``
    stops : (T,) float    save times / event thresholds (increasing), see ``STOP_*``
    out_s : (B, T, L, K)  state at each stop
    out_loss, out_mm, out_t : (B, T)  loss, minimum margin, clock time at each stop
    """

    y: np.ndarray
    k: np.ndarray
    fs: np.ndarray
    ist: np.ndarray
    stops: np.ndarray
    out_s: np.ndarray
    out_loss: np.ndarray
    out_mm: np.ndarray
    out_t: np.ndarray


class Ctrl(NamedTuple):
    """Controls of a run (one for the whole batch).

    job : int            ``JOB_RK`` or ``JOB_GD``
    rtol, atol : float   error tolerances
    max_steps : int      limit on attempted steps (accepted + rejected) per trajectory
    slice_steps : int    attempts per trajectory per compiled slice (re-entry for Ctrl-C)
    steady : int         1: fixed-point hand-off (``svdyn.steady``)
    dense : int          1: save by dense output (only the last stop is hit exactly)
    stop_kind : int      ``STOP_TIME``, ``STOP_MARGIN``, ``STOP_YMIN``
    h0 : float           first step (0: automatic)
    adaptive : int       0: fixed steps of size h0 (convergence tests)
    lr : float           gradient descent step
    gd_steps : int       gradient descent steps
    save_every : int     gradient descent save interval
    t0 : float           0: the stepper's clock is t; > 0: it is ``tau = log(1 + t / t0)``
                         (explicit RK runs to save times; see ``svdyn.stepper.rk_advance``)
    """

    job: int
    rtol: float
    atol: float
    max_steps: int
    slice_steps: int
    steady: int
    dense: int
    stop_kind: int
    h0: float
    adaptive: int
    lr: float
    gd_steps: int
    save_every: int
    t0: float


def make_ctrl(job=JOB_RK, rtol=1e-9, atol=1e-12, max_steps=2_000_000, slice_steps=1024,
              steady=False, dense=True, stop_kind=STOP_TIME, h0=0.0, adaptive=True, lr=0.0,
              gd_steps=0, save_every=1, t0=0.0) -> Ctrl:
    """A :class:`Ctrl` with every field cast to the type the kernels were compiled for."""
    return Ctrl(int(job), float(rtol), float(atol), int(max_steps), int(slice_steps),
                int(bool(steady)), int(bool(dense)), int(stop_kind), float(h0),
                int(bool(adaptive)), float(lr), int(gd_steps), int(save_every), float(t0))


#: fresh arrays of small runs, by shape: ``new_run`` copies them (one ``ndarray.copy`` each,
#: ~0.2 us) instead of allocating, filling, slicing and reshaping (~2 us more a call, measured
#: at B = 1, K = 4); only runs of at most TEMPLATE_MAX values are kept, at most 256 shapes
_TEMPLATES: dict = {}
TEMPLATE_MAX = 4096


def _fresh_arrays(B, n_stages, T, L, K):
    """(k, fs, ist, out_s, out_loss, out_mm, out_t) of a fresh run: k, fs, ist zero, the
    outputs NaN."""
    # two allocations, viewed as the float arrays: out_s, out_loss/mm/t (NaN), then k, fs (0)
    n_out, n_k = B * T * L * K, B * n_stages * L * K
    nan = np.empty(n_out + 3 * B * T)
    nan.fill(np.nan)
    zero = np.zeros(n_k + B * NF)
    out = nan[n_out:].reshape(3, B, T)
    return (zero[:n_k].reshape(B, n_stages, L, K), zero[n_k:].reshape(B, NF),
            np.zeros((B, NI), dtype=np.int64), nan[:n_out].reshape(B, T, L, K),
            out[0], out[1], out[2])


def new_run(y0: np.ndarray, n_stages: int, stops: np.ndarray, *, copy: bool = True,
            own_stops: bool = False) -> Run:
    """Fresh :class:`Run` for initial states ``y0`` (B, L, K) and stops (T,). ``copy=False``
    uses ``y0`` itself as the state where it is a writeable float64 C array (the caller hands
    it over); ``own_stops=True``: ``stops`` is a fresh writeable float64 C array of ndim 1 that
    the caller hands over (used as it is). Every result has the same numba type: nine
    writeable C-contiguous arrays (float64, ``ist`` int64) of fixed ndim
    (``stepper.drive(fresh=True)`` relies on it)."""
    y0 = np.array(y0, dtype=np.float64, order="C", copy=copy or None)
    if not y0.flags.writeable:
        y0 = y0.copy()
    B, L, K = y0.shape
    if not own_stops:
        if type(stops) is np.ndarray and stops.dtype == np.float64 and stops.ndim == 1:
            stops = stops.copy()   # the common case, at a third of np.array's cost
        else:
            stops = np.array(stops, dtype=np.float64, order="C", copy=True).ravel()
    key = (B, stops.shape[0], L, K, n_stages)
    tp = _TEMPLATES.get(key)
    if tp is None:
        fresh = _fresh_arrays(B, n_stages, stops.shape[0], L, K)
        if B * (stops.shape[0] + n_stages) * L * K > TEMPLATE_MAX:
            k, fs, ist, out_s, out_loss, out_mm, out_t = fresh
            return Run(y0, k, fs, ist, stops, out_s, out_loss, out_mm, out_t)
        if len(_TEMPLATES) > 256:
            _TEMPLATES.clear()
        tp = _TEMPLATES[key] = tuple(a.copy() for a in fresh)   # C arrays of their own
    k, fs, ist, out_s, out_loss, out_mm, out_t = tp
    # positional, in the field order of Run (keywords cost ~0.3 us a call)
    return Run(y0, k.copy(), fs.copy(), ist.copy(), stops, out_s.copy(), out_loss.copy(),
               out_mm.copy(), out_t.copy())
