"""Off-manifold stability of the spectral form under real (torch) optimizers.

From a spectral start ``F_l = R_l diag(s_l) R_{l-1}^T`` (full torch model,
:mod:`svdyn.fullmodel`) the factors are perturbed (relative size ``delta`` per factor, along a
chosen direction) and trained with a torch optimizer. Measured, at every saved step:

* **leakage** ``sqrt(sum_l ||F_l - R_l diag(diag(R_l^T F_l R_{l-1})) R_{l-1}^T||^2) /
  sqrt(sum_l ||F_l||^2)``: the relative norm of everything outside the spectral form on the
  start's frames (off-diagonal blocks and components outside the frames). It also counts a
  rotation of the hidden frames (a symmetry of the loss: direction ``gauge``), which stays
  neutral under gd / momentum.
* the **linearised prediction**: the same perturbation propagated by the Jacobian of the
  optimizer step (``torch.func.jvp``, parameters and optimizer state together) along the
  *base* trajectory, and its leakage. The base is the unperturbed run re-projected onto the
  spectral form after every step (parameters, momentum buffers and Adam's first moment by
  projection; Adam's / RMSprop's second moment onto the squared frames), i.e. the reduced
  trajectory lifted to full matrices, wherever the reduction is exact (gd / momentum / nesterov:
  any frames; element-wise optimizers: walsh, signed-permutation frames, L >= 2). Elsewhere
  (element-wise optimizers with random frames) no exact reduced trajectory exists; the base is
  then the unperturbed full run, and the result says so (``base``).

Growth rates are least-squares slopes of ``ln leakage`` per step within three phases of the
base run, cut by the fraction of its total loss decrease: ``early`` (< 10 %), ``repulsion``
(10--90 %, the phase in which the singular values separate), ``late`` (> 90 %). A phase is
``repelling`` when the fitted leakage grows by more than a factor 2 across it, ``attracting``
when it shrinks by more than 2, else ``neutral``; leakage above 0.3 is reported as
``saturated`` (the run has left the manifold; rates there say nothing).

``sign-gd``: the step is piecewise constant, its Jacobian is the identity (the linearisation
predicts neutral), while on the manifold every off-manifold gradient entry is exactly zero
and ``sign`` jumps there, so finite perturbations behave discontinuously: measured and
predicted growth are not expected to agree, and the result says so.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .groups import SpecError
from .spec import LOSS_LS, LOSS_MSE, ModelSpec

DIRECTIONS = ("random", "off", "outside", "offdiag", "gauge")
PHASES = ("early", "repulsion", "late")
PHASE_CUTS = (0.1, 0.9)
GROWTH_FACTOR = 2.0
SATURATED = 0.3


@dataclass
class StabilityResult:
    """One perturbed run and its linearised prediction (arrays over the saved steps ``steps``).

    ``leakage`` measured (perturbed torch run), ``leakage_pred`` linearised prediction,
    ``leakage_base`` the base trajectory's own leakage (rounding level when exact), ``phases``
    ``{name: [first, last] step}``, ``growth`` ``{phase: {"measured", "predicted" (per-step
    rates of ln leakage), "verdict_measured", "verdict_predicted", "saturated"}}``.
    """

    config: dict
    steps: np.ndarray
    leakage: np.ndarray
    leakage_pred: np.ndarray
    leakage_base: np.ndarray
    loss_base: np.ndarray
    z_base: np.ndarray
    phases: dict
    growth: dict
    base: str
    notes: list = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0
    final_full: dict = field(default_factory=dict)

    def to_json_dict(self) -> dict:
        d = asdict(self)
        for k in ("steps", "leakage", "leakage_pred", "leakage_base", "loss_base", "z_base"):
            d[k] = np.asarray(d[k]).tolist()
        return d


# ----------------------------------------------------------------------------- torch pieces
def _torch():
    from .fullmodel import _torch as t
    return t()


def _sqrt0(v):
    """sqrt with a zero tangent at exact zeros (forward mode safe)."""
    torch = _torch()
    pos = v > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, v, torch.ones_like(v))),
                       torch.zeros_like(v))


def grads_fn(spec: ModelSpec, Ymask, factors, tangents=None):
    """Data-loss gradients by explicit backpropagation with the stable softmax residual of
    :func:`svdyn.fullmodel.full_grads`; with ``tangents`` (one per factor) also their
    directional derivative (a Hessian-vector product, forward mode by hand).
    Returns ``(grads, dgrads or None)``."""
    torch = _torch()
    code, eps = spec.loss_code
    acts = [factors[0]]
    for F in factors[1:]:
        acts.append(F @ acts[-1])
    Z = acts[-1]
    N = Z.shape[1]
    Yf = Ymask.to(Z.dtype)
    if code == LOSS_MSE:
        R = Z - Yf
    else:
        zy = (Z * Yf).sum(dim=0, keepdim=True)
        negm = torch.where(Ymask, torch.full_like(Z, -math.inf), Z - zy)
        a = torch.clamp(negm.max(dim=0).values, min=0.0)
        q = torch.exp(negm - a[None, :])
        S = q.sum(dim=0)
        Zp = torch.exp(-a) + S
        P = q / Zp[None, :]
        R = torch.where(Ymask, (-S / Zp)[None, :].expand_as(Z), P)
        if code == LOSS_LS:
            R = R - eps / spec.K + eps * Yf
    D = R / N
    grads = [None] * len(factors)
    if tangents is None:
        for l in range(len(factors) - 1, -1, -1):
            grads[l] = D @ acts[l - 1].T if l > 0 else D
            if l > 0:
                D = factors[l].T @ D
        return grads, None
    dacts = [tangents[0]]
    for l in range(1, len(factors)):
        dacts.append(tangents[l] @ acts[l - 1] + factors[l] @ dacts[-1])
    dZ = dacts[-1]
    if code == LOSS_MSE:
        dR = dZ
    else:
        Pf = torch.where(Ymask, (torch.exp(-a) / Zp)[None, :].expand_as(Z), P)  # softmax
        dR = Pf * (dZ - (Pf * dZ).sum(dim=0, keepdim=True))
    dD = dR / N
    dgrads = [None] * len(factors)
    for l in range(len(factors) - 1, -1, -1):
        if l > 0:
            grads[l] = D @ acts[l - 1].T
            dgrads[l] = dD @ acts[l - 1].T + D @ dacts[l - 1].T
            D, dD = factors[l].T @ D, tangents[l].T @ D + factors[l].T @ dD
        else:
            grads[l], dgrads[l] = D, dD
    return grads, dgrads


def state_names(optimizer: str) -> tuple:
    return {"gd": (), "sign-gd": (), "momentum": ("buf",), "nesterov": ("buf",),
            "adam": ("m", "v"), "adamw": ("m", "v"), "rmsprop": ("v",)}[optimizer]


def make_step(spec: ModelSpec, optimizer: str, lr: float, momentum: float = 0.9,
              betas=(0.9, 0.999), eps: float = 1e-8, alpha: float = 0.99, device="cpu"):
    """Optimizer step with its linearisation (torch semantics; the spec's weight decay per
    factor, coupled, decoupled for adamw):
    ``step(t, params, state, dparams=None, dstate=None) -> (params, state, dparams, dstate)``.
    ``state`` is a flat list, ``L`` tensors per :func:`state_names` entry (zeros before step 1);
    ``d*`` are tangents (``None``: no linearisation)."""
    from .fullmodel import data_spec, labels
    torch = _torch()
    dspec = data_spec(spec)
    y = labels(spec, device)
    Ymask = torch.zeros(spec.K, spec.n * spec.K, dtype=torch.bool, device=device)
    Ymask[y, torch.arange(spec.n * spec.K, device=device)] = True
    wd = list(spec.weight_decay)
    b1, b2 = betas
    L = spec.L

    def dsqrt(v, sv, dv):
        pos = v > 0
        return torch.where(pos, dv / (2 * torch.where(pos, sv, torch.ones_like(sv))),
                           torch.zeros_like(v))

    def step(t, params, state, dparams=None, dstate=None):
        lin = dparams is not None
        grads, dgrads = grads_fn(dspec, Ymask, params, dparams)
        if optimizer == "adamw":
            params = [p * (1 - lr * w) for p, w in zip(params, wd)]
            dparams = [p * (1 - lr * w) for p, w in zip(dparams, wd)] if lin else None
            gs, dgs = grads, dgrads
        else:
            gs = [g + w * p if w else g for g, p, w in zip(grads, params, wd)]
            dgs = ([g + w * p if w else g for g, p, w in zip(dgrads, dparams, wd)] if lin
                   else None)
        nothing = (None, None)
        if optimizer == "gd":
            new = [p - lr * g for p, g in zip(params, gs)]
            dn = [p - lr * g for p, g in zip(dparams, dgs)] if lin else None
            return new, state, dn, dstate
        if optimizer == "sign-gd":
            return [p - lr * torch.sign(g) for p, g in zip(params, gs)], state, dparams, dstate
        if optimizer in ("momentum", "nesterov"):
            buf = [momentum * b + g for b, g in zip(state[:L], gs)]
            upd = buf if optimizer == "momentum" else [g + momentum * b for g, b in zip(gs, buf)]
            new = [p - lr * u for p, u in zip(params, upd)]
            if not lin:
                return (new, buf) + nothing
            dbuf = [momentum * b + g for b, g in zip(dstate[:L], dgs)]
            dupd = (dbuf if optimizer == "momentum"
                    else [g + momentum * b for g, b in zip(dgs, dbuf)])
            return new, buf, [p - lr * u for p, u in zip(dparams, dupd)], dbuf
        if optimizer in ("adam", "adamw", "rmsprop"):
            adam = optimizer != "rmsprop"
            if adam:
                m = [mm + (1 - b1) * (g - mm) for mm, g in zip(state[:L], gs)]
                v = [b2 * vv + (1 - b2) * g * g for vv, g in zip(state[L:], gs)]
                bc1, bc2 = 1 - b1 ** t, math.sqrt(1 - b2 ** t)
            else:
                m = gs
                v = [alpha * vv + (1 - alpha) * g * g for vv, g in zip(state, gs)]
                bc1, bc2 = 1.0, 1.0
            sv = [_sqrt0(vv) for vv in v]
            den = [s / bc2 + eps for s in sv]
            new = [p - (lr / bc1) * mm / dd for p, mm, dd in zip(params, m, den)]
            st = m + v if adam else v
            if not lin:
                return (new, st) + nothing
            if adam:
                dm = [a + (1 - b1) * (g - a) for a, g in zip(dstate[:L], dgs)]
                dv = [b2 * a + (1 - b2) * 2 * g * dg for a, g, dg in zip(dstate[L:], gs, dgs)]
            else:
                dm = dgs
                dv = [alpha * a + (1 - alpha) * 2 * g * dg for a, g, dg in zip(dstate, gs, dgs)]
            dn = [dp - (lr / bc1) * (a / dd - mm * dsqrt(vv, s, b) / (bc2 * dd * dd))
                  for dp, a, mm, dd, vv, s, b in zip(dparams, dm, m, den, v, sv, dv)]
            return new, st, dn, (dm + dv if adam else dv)
        raise SpecError(f"--optimizer {optimizer!r}: unknown")

    return step


# ----------------------------------------------------------------------------- geometry
def off_part(F, U, V):
    """``F - U diag(diag(U^T F V)) V^T`` (the part outside the spectral form)."""
    d = (U * (F @ V)).sum(dim=0)
    return F - (U * d[None, :]) @ V.T


def spectral_part(F, U, V):
    d = (U * (F @ V)).sum(dim=0)
    return (U * d[None, :]) @ V.T


def square_part(v, U, V):
    """Projection of an element-wise second moment onto ``span{(U o U)_j (V o V)_j^T}``."""
    A, Ap = U * U, V * V
    w = (A * (v @ Ap)).sum(dim=0) / ((A * A).sum(dim=0) * (Ap * Ap).sum(dim=0))
    return (A * w[None, :]) @ Ap.T


def leakage(factors, frames) -> float:
    """Total relative leakage (module docstring)."""
    torch = _torch()
    num = sum(float(torch.sum(off_part(F, frames[l + 1], frames[l]) ** 2))
              for l, F in enumerate(factors))
    den = sum(float(torch.sum(F * F)) for F in factors)
    return math.sqrt(num / den) if den > 0 else 0.0


def perturbation(spec: ModelSpec, factors, frames, direction: str, delta: float,
                 rng: np.random.Generator) -> list:
    """Perturbation matrices ``E_l`` with ``||E_l|| = delta ||F_l||`` (``gauge``: the hidden
    rotation ``F_l <- (I + A_l) F_l (I - A_{l-1})`` with ``||A|| `` set so the change is delta
    relative, to first order). Directions: ``random`` Gaussian; ``off`` Gaussian minus its
    spectral part; ``outside`` Gaussian outside the frame spans; ``offdiag`` inside the frame
    spans, off the diagonal; ``gauge``."""
    torch = _torch()
    if direction not in DIRECTIONS:
        raise SpecError(f"--direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
    dev, dt = factors[0].device, factors[0].dtype

    def gauss(shape):
        return torch.as_tensor(rng.standard_normal(shape), dtype=dt, device=dev)

    L = len(factors)
    out = []
    if direction == "gauge":
        A = [None] + [None] * (L - 1)
        for l in range(1, L):
            X = gauss((factors[l - 1].shape[0],) * 2)
            A[l] = X - X.T
        for l, F in enumerate(factors):
            E = torch.zeros_like(F)
            if l < L - 1:
                E = E + A[l + 1] @ F
            if l > 0:
                E = E - F @ A[l]
            out.append(E)
    else:
        for l, F in enumerate(factors):
            U, V = frames[l + 1], frames[l]
            E = gauss(tuple(F.shape))
            if direction == "off":
                E = off_part(E, U, V)
            elif direction == "outside":
                E = E - U @ (U.T @ E @ V) @ V.T
            elif direction == "offdiag":
                E = off_part(U @ (U.T @ E @ V) @ V.T, U, V)
            out.append(E)
    for l, (E, F) in enumerate(zip(out, factors)):
        nE = float(torch.linalg.norm(E))
        if nE > 0:
            out[l] = E * (delta * float(torch.linalg.norm(F)) / nE)
    return out


def _phases(loss: np.ndarray, steps: np.ndarray) -> dict:
    drop = loss[0] - loss
    tot = drop[-1] if drop[-1] > 0 else 1.0
    frac = drop / tot
    k1 = int(np.argmax(frac >= PHASE_CUTS[0])) if np.any(frac >= PHASE_CUTS[0]) else len(loss)
    k2 = int(np.argmax(frac >= PHASE_CUTS[1])) if np.any(frac >= PHASE_CUTS[1]) else len(loss)
    idx = {"early": (0, k1), "repulsion": (k1, k2), "late": (k2, len(loss))}
    return {k: (a, b) for k, (a, b) in idx.items()}


def _rate(steps, leak, a, b):
    """Per-step slope of ``leak`` (= ln leakage) over saved points a..b-1 (None if < 3 points)."""
    if b - a < 3:
        return None
    x = steps[a:b]
    y = leak[a:b]
    ok = np.isfinite(y)
    if ok.sum() < 3:
        return None
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def verdict(rate, span: float) -> str | None:
    if rate is None:
        return None
    g = rate * span
    if g > math.log(GROWTH_FACTOR):
        return "repelling"
    if g < -math.log(GROWTH_FACTOR):
        return "attracting"
    return "neutral"


def exact_reduction(spec: ModelSpec, optimizer: str, frames_kind: str) -> bool:
    """Whether the optimizer keeps the spectral form exactly (in exact arithmetic)."""
    if optimizer in ("gd", "momentum", "nesterov"):
        return True
    return spec.group == "walsh" and spec.L >= 2 and frames_kind == "signed-permutation"


# ----------------------------------------------------------------------------- driver
def run_stability(spec: ModelSpec, s0, optimizer: str = "gd", lr: float = 0.5,
                  steps: int = 2000, delta: float = 1e-6, direction: str = "random",
                  width: int | None = None, frames: str = "random", seed: int = 0,
                  save_every: int = 10, device="auto", linearised: bool = True,
                  momentum: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8,
                  alpha: float = 0.99, progress=None) -> StabilityResult:
    """Perturbed torch training from a spectral start vs the linearised prediction.

    Parameters
    ----------
    spec, s0 : model and spectral start (L, K)
    optimizer : gd, momentum, nesterov, adam, adamw, rmsprop, sign-gd (torch's classes;
        sign-gd ``F <- F - lr sign(g)``); hyper-parameters ``momentum``, ``betas``, ``eps``,
        ``alpha`` as in torch
    delta, direction : relative perturbation size per factor and its direction (DIRECTIONS)
    width : hidden width (default K + 4); frames : ``random`` or ``signed-permutation``
    seed : frames and perturbation seed; save_every : record every k-th step
    linearised : also propagate the perturbation by the step's Jacobian (about 2x the cost)

    Returns
    -------
    StabilityResult
    """
    from . import fullmodel as fm
    from .optimizers import OPTIMIZERS, check_hyper
    torch = _torch()
    check_hyper(optimizer, lr, momentum, betas, eps, alpha)
    if optimizer not in OPTIMIZERS:
        raise SpecError(f"--optimizer {optimizer!r}")
    if not (math.isfinite(delta) and delta >= 0):
        raise SpecError(f"--delta must be a finite number >= 0, got {delta}")
    if int(steps) != steps or steps < 1:
        raise SpecError(f"--steps must be an integer >= 1, got {steps}")
    if int(save_every) != save_every or save_every < 1:
        raise SpecError(f"--save-every must be an integer >= 1, got {save_every}")
    s0 = spec.check_state(s0, "initial state")
    width = spec.K + 4 if width is None else int(width)
    dev = fm.resolve_device(device) if isinstance(device, str) else device
    fm.small_cpu_threads(dev, spec, width)
    t_start = time.perf_counter()
    fr = fm.make_frames(spec, width, frames, seed, dev)
    F0 = fm.build_spectral_factors(spec, s0, width, frames=fr)
    rng = np.random.default_rng(10_000 + seed)
    E = perturbation(spec, F0, fr, direction, delta, rng)
    hyper = {"momentum": momentum, "betas": tuple(betas), "eps": eps, "alpha": alpha}
    exact = exact_reduction(spec, optimizer, frames)
    base_kind = ("reduced (spectral projection of the base run after every step)" if exact else
                 "unperturbed full run (no exact reduction for this optimizer and frames)")
    notes = []
    if not exact:
        notes.append(f"{optimizer} with {frames} frames / group {spec.group} / depth {spec.L}: "
                     "the spectral form is not preserved even in exact arithmetic; no reduced "
                     "prediction is offered")
    if optimizer == "sign-gd":
        notes.append("sign-gd: the Jacobian of the step is the identity (sign is piecewise "
                     "constant); finite perturbations flip signs of the exactly-zero "
                     "off-manifold gradient entries, so the linearisation does not describe them")
    # ---- measured: torch optimizer on the perturbed factors
    pert = [F + e for F, e in zip(F0, E)]
    rec_steps, leak_m = [], []

    def cb(k, factors, loss):
        rec_steps.append(k)
        leak_m.append(leakage(factors, fr))

    opt_hyper = {k: v for k, v in hyper.items()
                 if k in {"gd": (), "sign-gd": (), "momentum": ("momentum",),
                          "nesterov": ("momentum",), "adam": ("betas", "eps"),
                          "adamw": ("betas", "eps"), "rmsprop": ("alpha", "eps")}[optimizer]}
    final = fm.train(spec, pert, optimizer, lr, steps, save_every, cb, progress, **opt_hyper)
    final_metrics = fm.nc_metrics(spec, final)
    # ---- base (reduced, lifted) and linearised propagation
    step = make_step(spec, optimizer, lr, momentum, betas, eps, alpha, dev)
    names = state_names(optimizer)
    L = spec.L
    params = [F.clone() for F in F0]
    state = [torch.zeros_like(F) for _ in names for F in F0]
    tang_p = [e.clone() for e in E]
    tang_s = [torch.zeros_like(F) for _ in names for F in F0]
    logscale = 0.0
    leak_b, leak_p, loss_b, z_b = [], [], [], []

    def record():
        with torch.no_grad():
            leak_b.append(leakage(params, fr))
            nF = math.sqrt(sum(float(torch.sum(F * F)) for F in params))
            num = math.sqrt(sum(float(torch.sum(off_part(T, fr[l + 1], fr[l]) ** 2))
                                for l, T in enumerate(tang_p)))
            leak_p.append(math.log(num) + logscale - math.log(nF) if num > 0 and nF > 0
                          else -math.inf)
            loss_b.append(fm.full_grads(spec, params)[0])
            z_b.append(fm.project_logits(fm.logits(params), fr)[0])

    for k in range(steps + 1):
        if k % save_every == 0 or k == steps:
            record()
        if k == steps:
            break
        t = k + 1
        with torch.no_grad():
            params, state, dp, ds = step(t, params, state, tang_p if linearised else None,
                                         tang_s if linearised else None)
        if linearised:
            tang_p, tang_s = dp, ds
        if exact:  # re-project the base onto the spectral form
            with torch.no_grad():
                params = [spectral_part(F, fr[l + 1], fr[l]) for l, F in enumerate(params)]
                for i, nm in enumerate(names):
                    for l in range(L):
                        X = state[i * L + l]
                        state[i * L + l] = (square_part(X, fr[l + 1], fr[l]) if nm == "v"
                                            else spectral_part(X, fr[l + 1], fr[l]))
        if linearised:
            nt = math.sqrt(sum(float(torch.sum(x * x)) for x in tang_p + tang_s))
            if nt > 1e100 or (0 < nt < 1e-100):
                tang_p = [x / nt for x in tang_p]
                tang_s = [x / nt for x in tang_s]
                logscale += math.log(nt)
        if not all(bool(torch.isfinite(x).all()) for x in params):
            notes.append(f"base run became non-finite after step {k + 1}; lower --lr")
            break
    steps_arr = np.asarray(rec_steps, dtype=float)
    T = min(len(steps_arr), len(leak_b))
    steps_arr = steps_arr[:T]
    leak_m_a = np.asarray(leak_m[:T])
    log_p = np.asarray(leak_p[:T])
    leak_p_a = np.exp(np.minimum(log_p, 690.0))   # capped at ~1e300 (log kept for the rates)
    if np.any(log_p > 690.0):
        notes.append("the linearised perturbation grew beyond 1e300 (rates from its logarithm)")
    loss_a = np.asarray(loss_b[:T])
    ph = _phases(loss_a, steps_arr)
    growth, phases = {}, {}
    for name in PHASES:
        a, b = ph[name]
        if b - a < 3:
            continue
        span = steps_arr[b - 1] - steps_arr[a]
        rm = _rate(steps_arr, np.log(np.maximum(leak_m_a, 1e-300)), a, b)
        rp = _rate(steps_arr, log_p, a, b) if linearised else None
        phases[name] = [float(steps_arr[a]), float(steps_arr[b - 1])]
        growth[name] = {"measured": rm, "predicted": rp,
                        "verdict_measured": verdict(rm, span),
                        "verdict_predicted": verdict(rp, span),
                        "saturated": bool(np.max(leak_m_a[a:b]) > SATURATED)}
    cfg = {"spec": spec.to_dict(), "optimizer": optimizer, "lr": lr, "steps": int(steps),
           "delta": delta, "direction": direction, "width": width, "frames": frames,
           "seed": seed, "save_every": int(save_every), "linearised": linearised,
           "s0": np.asarray(s0).tolist(), **{k: (list(v) if isinstance(v, tuple) else v)
                                             for k, v in opt_hyper.items()}}
    fm_keys = ("loss", "min_margin", "numerical_rank", "effective_rank",
               "centred_logit_singular_values")
    return StabilityResult(cfg, steps_arr, leak_m_a, leak_p_a, np.asarray(leak_b[:T]), loss_a,
                           np.asarray(z_b[:T]), phases, growth, base_kind, notes,
                           fm.device_name(dev), time.perf_counter() - t_start,
                           {k: final_metrics[k] for k in fm_keys})
