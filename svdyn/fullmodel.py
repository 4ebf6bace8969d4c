"""The full deep linear UFM in torch: the reference the reduced engine is validated against.

Public API (reused by other modules, e.g. the Hessian checks):

``resolve_device(device="auto") -> torch.device``
    ``"auto"``: cuda when available, else cpu. ``"cuda"`` without a GPU raises ``SpecError``.
``hidden_widths(spec, widths) -> list[int]``
    ``widths`` is one int (all hidden layers) or one per hidden layer (``L - 1`` values).
``spectral_frames(spec, widths, seed=0, device="cpu") -> list of L + 1 tensors``
    ``[B, R_1, ..., R_{L-1}, Q]``: ``B = (Q kron 1_n)/sqrt(n)`` (N x K), ``R_l`` random
    orthonormal (d_l x K, QR of a Gaussian drawn with numpy ``default_rng(seed)``), ``Q`` the
    group basis (K x K). Factor ``F_l`` maps frame ``l - 1`` to frame ``l``.
``build_spectral_factors(spec, s, widths, seed=0, device="cpu", frames=None) -> list of tensors``
    ``F_l = R_l diag(s_{l-1}) R_{l-1}^T`` (0-based rows of ``s``, shape (L, K)), float64,
    ``requires_grad=False``; ``F_1`` is d_1 x N, ``F_L`` is K x d_{L-1}.
``build_random_factors(spec, widths, scale, seed=0, device="cpu", fan_in=False)``
    Gaussian entries ``scale * N(0, 1)`` (divided by sqrt(fan-in) with ``fan_in=True``).
``full_loss(spec, factors) -> scalar tensor``
    ``(1/N) sum_i l(Z[:, i], y_i) + sum_l lambda_l/2 ||F_l||_F^2``, ``Z = F_L ... F_1``, samples
    ordered class-major (sample ``c n + r`` has label ``c``). Differentiable (autograd, also
    twice), so Hessians can be taken with ``torch.autograd.functional.hessian``.
``full_grads(spec, factors) -> (loss float, list of gradient tensors)``
    The same loss with hand-written backpropagation and a *stable* softmax residual
    (``(P - Y)_{y,i} = -sum_{c != y} p_c``), so that late-time gradients of size e^{-margin}
    keep full relative precision, as in the reduced engine.
``gd(spec, factors, lr, steps, save_every=1, callback=None, progress=None)``
    Full-batch gradient descent, all factors at once; ``callback(step, factors, loss)`` at every
    save point (step 0 and every ``save_every`` steps, and the last step).
``project(factors, frames) -> (s (L, K) signed diagonal, leakage (L,))``
    ``s_l = diag(R_l^T F_l R_{l-1})`` and ``leakage_l = ||F_l - R_l diag(s_l) R_{l-1}^T||_F /
    ||F_l||_F`` (off-diagonal part plus everything outside the frames).
``svd_values(factors) -> list of descending singular values per factor, plus of Z``
``nc_metrics(spec, factors, rank_rel=0.1) -> dict``
    NC1 (n > 1), NC2 distances to the simplex ETF (classifier, feature means, class-mean logits),
    NC3 self-duality, numerical / effective (Roy--Vetterli) / stable rank of the class-centred
    logits, minimum margin, loss.

Validation drivers (used by ``svdyn validate`` and ``validation/gpu_campaign.py``):
``validate_spectral(spec, s0, widths, lr, steps, save_every, seed, device, progress, svd_every)``
    full GD vs :func:`svdyn.descent.descend`; dict with ``device, dtype, max_rel_dev,
    max_leakage, loss_gap, reduced_seconds, full_seconds`` and details.
``order_check(spec, s0, widths, lr, t_end, levels, seed, device)``
    full GD at lr / 2^k vs :func:`svdyn.integrate.flow`; fitted order (Euler: 1).
``validate_random(spec, widths, scale, lr, steps, save_every, seed, device, progress, fan_in)``
    Gaussian init, :func:`nc_metrics` series over the run.

torch is imported lazily inside functions: ``import svdyn`` and this module work without it.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .groups import SpecError
from .spec import LOSS_LS, LOSS_MSE, ModelSpec


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise SpecError("full-model validation needs torch; install it with "
                        'pip install "svdyn[torch]"') from None
    return torch


DTYPE_NAME = "float64"


def resolve_device(device: str = "auto"):
    """``auto`` -> cuda if available else cpu; ``cpu``; ``cuda`` (error if no GPU)."""
    torch = _torch()
    d = str(device).strip().lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d == "cpu":
        return torch.device("cpu")
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpecError("--device cuda: no CUDA device is available here; use --device cpu "
                            "or --device auto")
        return torch.device(d)
    raise SpecError(f"--device {device!r}: use auto, cpu or cuda")


def device_name(dev) -> str:
    """Human-readable device description, e.g. ``cpu`` or ``cuda (NVIDIA H200)``."""
    torch = _torch()
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return "cpu"


def small_cpu_threads(dev, spec: ModelSpec, width: int, limit: int = 1 << 18) -> bool:
    """On cpu, use one torch thread when the largest matrix has fewer than ``limit`` entries:
    small float64 matmuls gain nothing from threads and lose a lot on a busy machine. Returns
    whether the thread count was changed."""
    torch = _torch()
    if dev.type != "cpu" or max(width, spec.K) * max(width, spec.n * spec.K) >= limit:
        return False
    torch.set_num_threads(1)
    return True


def hidden_widths(spec: ModelSpec, widths) -> list[int]:
    """Hidden widths d_1..d_{L-1} from one int or a sequence of L - 1 ints (each >= K)."""
    L, K = spec.L, spec.K
    if np.isscalar(widths):
        ws = [int(widths)] * (L - 1)
    else:
        ws = [int(w) for w in widths]
        if len(ws) == 1:
            ws = ws * (L - 1)
        if len(ws) != L - 1:
            raise SpecError(f"give one width or one per hidden layer (L - 1 = {L - 1}), "
                            f"got {len(ws)}")
    for w in ws:
        if w < K:
            raise SpecError(f"hidden width {w} < K = {K}: the spectral frames need d_l >= K; "
                            f"use --width {K} or more")
    return ws


def _orthonormal(rng: np.random.Generator, d: int, K: int) -> np.ndarray:
    A = rng.standard_normal((d, K))
    Qm, Rm = np.linalg.qr(A)
    return Qm * np.sign(np.diag(Rm))[None, :]


def spectral_frames(spec: ModelSpec, widths, seed: int = 0, device="cpu") -> list:
    """``[B, R_1, ..., R_{L-1}, Q]`` as float64 tensors on ``device``."""
    torch = _torch()
    dev = resolve_device(device) if isinstance(device, str) else device
    ws = hidden_widths(spec, widths)
    Q = spec.G.Q
    B = np.kron(Q, np.ones((spec.n, 1))) / math.sqrt(spec.n)
    rng = np.random.default_rng(seed)
    mats = [B] + [_orthonormal(rng, d, spec.K) for d in ws] + [Q]
    return [torch.as_tensor(np.ascontiguousarray(m), dtype=torch.float64, device=dev)
            for m in mats]


def build_spectral_factors(spec: ModelSpec, s, widths, seed: int = 0, device="cpu",
                           frames=None) -> list:
    """Factors ``F_l = R_l diag(s[l-1]) R_{l-1}^T`` (l = 1..L) for singular values s (L, K)."""
    torch = _torch()
    s = spec.check_state(s, "spectral s")
    if s.ndim != 2:
        raise SpecError("build_spectral_factors needs one state of shape (L, K)")
    if frames is None:
        frames = spectral_frames(spec, widths, seed, device)
    dev = frames[0].device
    st = torch.as_tensor(s, dtype=torch.float64, device=dev)
    return [(frames[l + 1] * st[l][None, :]) @ frames[l].T for l in range(spec.L)]


def build_random_factors(spec: ModelSpec, widths, scale: float, seed: int = 0,
                         device="cpu", fan_in: bool = False) -> list:
    """Gaussian factors with i.i.d. entries ``scale * N(0, 1)`` (numpy ``default_rng(seed)``),
    or ``scale * N(0, 1) / sqrt(fan_in)`` with ``fan_in=True`` (fan_in = columns of F_l)."""
    torch = _torch()
    if not (math.isfinite(scale) and scale > 0):
        raise SpecError(f"--init-scale must be a finite number > 0, got {scale}")
    dev = resolve_device(device) if isinstance(device, str) else device
    if spec.L == 1:
        ws = []
    else:
        ws = [int(w) for w in ([widths] * (spec.L - 1) if np.isscalar(widths) else widths)]
        if len(ws) == 1:
            ws = ws * (spec.L - 1)
        if len(ws) != spec.L - 1 or min(ws) < 1:
            raise SpecError(f"give one width >= 1 or one per hidden layer (L - 1 = {spec.L - 1})")
    dims = [spec.n * spec.K] + ws + [spec.K]
    rng = np.random.default_rng(seed)
    return [torch.as_tensor((scale / (math.sqrt(dims[l]) if fan_in else 1.0))
                            * rng.standard_normal((dims[l + 1], dims[l])),
                            dtype=torch.float64, device=dev) for l in range(spec.L)]


# ----------------------------------------------------------------------------- loss
def labels(spec: ModelSpec, device="cpu"):
    torch = _torch()
    return torch.arange(spec.K, device=device).repeat_interleave(spec.n)


def logits(factors):
    """``Z = F_L ... F_1`` (K x N)."""
    Z = factors[0]
    for F in factors[1:]:
        Z = F @ Z
    return Z


def _data_loss(spec: ModelSpec, Z):
    """Mean data loss (differentiable) with a stable log-sum-exp over margins."""
    torch = _torch()
    code, eps = spec.loss_code
    N = Z.shape[1]
    y = labels(spec, Z.device)
    if code == LOSS_MSE:
        Y = torch.zeros_like(Z)
        Y[y, torch.arange(N, device=Z.device)] = 1.0
        return 0.5 * ((Z - Y) ** 2).sum() / N
    idx = torch.arange(N, device=Z.device)
    zy = Z[y, idx]
    m = zy[None, :] - Z                                  # margins, m[y_i, i] = 0
    mask = torch.ones_like(Z, dtype=torch.bool)
    mask[y, idx] = False
    negm = torch.where(mask, -m, torch.full_like(m, -math.inf))
    a = torch.clamp(negm.max(dim=0).values, min=0.0).detach()
    S = torch.exp(negm - a[None, :]).sum(dim=0)
    per = torch.where(a == 0, torch.log1p(S), a + torch.log(torch.exp(-a) + S))
    loss = per.mean()
    if code == LOSS_LS:
        loss = loss + (eps / spec.K) * m.sum(dim=0).mean()
    return loss


def full_loss(spec: ModelSpec, factors):
    """Total loss (data mean + weight decay) as a differentiable scalar tensor."""
    loss = _data_loss(spec, logits(factors))
    for lam, F in zip(spec.weight_decay, factors):
        if lam:
            loss = loss + 0.5 * lam * (F * F).sum()
    return loss


def _residual(spec: ModelSpec, Z):
    """``d loss_data / d Z`` (K x N) with the stable softmax residual, and the data loss."""
    torch = _torch()
    code, eps = spec.loss_code
    K, N = Z.shape
    y = labels(spec, Z.device)
    idx = torch.arange(N, device=Z.device)
    if code == LOSS_MSE:
        R = Z.clone()
        R[y, idx] -= 1.0
        return R / N, float(0.5 * (R * R).sum() / N)
    zy = Z[y, idx]
    negm = Z - zy[None, :]                               # -m_c; 0 at c = y
    negm[y, idx] = -math.inf
    a = torch.clamp(negm.max(dim=0).values, min=0.0)
    q = torch.exp(negm - a[None, :])                     # 0 at c = y
    S = q.sum(dim=0)
    Zp = torch.exp(-a) + S
    per = torch.where(a == 0, torch.log1p(S), a + torch.log(Zp))
    R = q / Zp[None, :]                                  # p_c for c != y
    R[y, idx] = -S / Zp                                  # p_y - 1 = -sum_{c != y} p_c
    loss = per.mean()
    if code == LOSS_LS:
        R = R - eps / K
        R[y, idx] += eps
        loss = loss + (eps / K) * (-(Z - zy[None, :])).sum(dim=0).mean()
    return R / N, float(loss)


def full_grads(spec: ModelSpec, factors):
    """``(total loss, [d loss / d F_l])`` by explicit backpropagation (no autograd)."""
    torch = _torch()
    with torch.no_grad():
        acts = [factors[0]]                  # X_l = F_l ... F_1
        for F in factors[1:]:
            acts.append(F @ acts[-1])
        G, loss = _residual(spec, acts[-1])
        grads = [None] * len(factors)
        D = G
        for l in range(len(factors) - 1, -1, -1):
            grads[l] = D @ acts[l - 1].T if l > 0 else D.clone()
            if l > 0:
                D = factors[l].T @ D
        for l, (lam, F) in enumerate(zip(spec.weight_decay, factors)):
            if lam:
                grads[l] += lam * F
                loss += 0.5 * lam * float((F * F).sum())
    return loss, grads


class Diverged(ArithmeticError):
    """Full GD produced a non-finite loss (the step size is too large)."""


def gd(spec: ModelSpec, factors, lr: float, steps: int, save_every: int = 1, callback=None,
       progress=None):
    """Full-batch GD ``F_l <- F_l - lr dloss/dF_l`` (all factors at once). Returns the factors.

    ``callback(step, factors, loss_before_step)`` is called at step 0, every ``save_every``
    steps and at the last step; ``progress(step, steps, loss)`` at most every 5 s. Raises
    :class:`Diverged` when the loss becomes non-finite.
    """
    factors = [F.clone() for F in factors]
    last = time.monotonic()
    loss = None
    for k in range(steps + 1):
        loss, grads = full_grads(spec, factors)
        if not math.isfinite(float(loss)):
            raise Diverged(f"full GD loss became {float(loss)} at step {k}")
        if callback is not None and (k % save_every == 0 or k == steps):
            callback(k, factors, loss)
        if k == steps:
            break
        for F, g in zip(factors, grads):
            F.sub_(lr * g)
        if progress is not None and time.monotonic() - last > 5.0:
            progress(k + 1, steps, loss)
            last = time.monotonic()
    return factors


# ----------------------------------------------------------------------------- analysis
def project(factors, frames):
    """Signed singular values on the frozen frames and relative leakage per factor."""
    torch = _torch()
    s, leak = [], []
    with torch.no_grad():
        for l, F in enumerate(factors):
            U, V = frames[l + 1], frames[l]
            M = U.T @ F @ V
            d = torch.diagonal(M)
            resid = F - (U * d[None, :]) @ V.T
            nF = torch.linalg.norm(F)
            s.append(d.cpu().numpy())
            leak.append(float(torch.linalg.norm(resid) / nF) if nF > 0 else 0.0)
    return np.array(s), np.array(leak)


def project_logits(Z, frames):
    """``diag(Q^T Z B)`` and the relative leakage of Z."""
    torch = _torch()
    with torch.no_grad():
        U, V = frames[-1], frames[0]
        d = torch.diagonal(U.T @ Z @ V)
        nZ = torch.linalg.norm(Z)
        r = torch.linalg.norm(Z - (U * d[None, :]) @ V.T)
        return d.cpu().numpy(), (float(r / nZ) if nZ > 0 else 0.0)


def svd_values(factors):
    """Descending singular values of every factor and, last, of Z (numpy arrays)."""
    torch = _torch()
    with torch.no_grad():
        out = [torch.linalg.svdvals(F).cpu().numpy() for F in factors]
        out.append(torch.linalg.svdvals(logits(factors)).cpu().numpy())
    return out


def _etf_distance(G):
    """``|| G/||G|| - P/||P|| ||_F`` for a K x K Gram-like matrix and P = I - 11^T/K."""
    torch = _torch()
    K = G.shape[0]
    P = torch.eye(K, dtype=G.dtype, device=G.device) - 1.0 / K
    nG = torch.linalg.norm(G)
    if nG == 0:
        return float("nan")
    return float(torch.linalg.norm(G / nG - P / torch.linalg.norm(P)))


def rank_measures(A, rel: float = 0.1, keep: int | None = None) -> dict:
    """Rank measures (``svdyn.ranks``) of the singular values of ``A`` (the first ``keep`` of
    them if given): numerical rank (sigma_i > rel sigma_1), effective rank exp(H(sigma/sum
    sigma)) (Roy & Vetterli 2007) and stable rank ||A||_F^2 / ||A||_2^2."""
    torch = _torch()
    from .ranks import effective_rank, numerical_rank, stable_rank
    sv = torch.linalg.svdvals(A).cpu().numpy()
    if keep is not None:
        sv = sv[:keep]
    return {"numerical_rank": int(numerical_rank(sv, rel)),
            "effective_rank": float(effective_rank(sv)),
            "stable_rank": float(stable_rank(sv)),
            "singular_values": sv}


def nc_metrics(spec: ModelSpec, factors, rank_rel: float = 0.1) -> dict:
    """Neural-collapse and rank metrics of the current full model.

    Features are ``H = F_{L-1} ... F_1`` (d_{L-1} x N), the classifier is ``W = F_L``, class
    means ``M`` (d x K), centred ``Mc = M - mean``. For L = 1 there are no features: NC1 is taken
    on the logits and ``nc2_W``, ``nc2_H``, ``nc3`` are None.

    * ``nc1 = tr(Sigma_W Sigma_B^+) / K`` (only for n > 1, else None);
    * ``nc2_W``, ``nc2_H``: distance of ``W W^T`` and ``Mc^T Mc`` (normalised) to the simplex
      ETF Gram ``I - 11^T/K`` (normalised); ``nc2_Z``: the same for the class-centred class-mean
      logits ``P U P`` (``U`` K x K class-mean logits, ``P = I - 11^T/K``);
    * ``nc3 = || W^T/||W|| - Mc/||Mc|| ||_F`` (self-duality);
    * ranks of the class-centred logits ``P Z`` (the CE-invariant all-ones direction removed;
      NC gives rank K - 1; its K - 1 leading singular values, which under spectral init are
      z_1..z_{K-1}): see :func:`rank_measures`;
    * ``min_margin = min_i (Z[y_i, i] - max_{c != y_i} Z[c, i])`` and the total loss.
    """
    torch = _torch()
    K, n = spec.K, spec.n
    with torch.no_grad():
        Z = logits(factors)
        H = logits(factors[:-1]) if spec.L > 1 else Z
        W = factors[-1]
        d = H.shape[0]
        Hc = H.reshape(d, K, n)
        M = Hc.mean(dim=2)                                   # d x K
        Mc = M - M.mean(dim=1, keepdim=True)
        out = {}
        if n > 1:
            D = Hc - M[:, :, None]
            Sw = torch.einsum("dkn,ekn->de", D, D) / (K * n)
            Sb = Mc @ Mc.T / K
            out["nc1"] = float(torch.trace(Sw @ torch.linalg.pinv(Sb, hermitian=True))) / K
        else:
            out["nc1"] = None
        out["nc2_W"] = _etf_distance(W @ W.T) if spec.L > 1 else None
        out["nc2_H"] = _etf_distance(Mc.T @ Mc) if spec.L > 1 else None
        U = Z.reshape(K, K, n).mean(dim=2)                   # U[:, c] mean logit of class c
        P = torch.eye(K, dtype=Z.dtype, device=Z.device) - 1.0 / K
        out["nc2_Z"] = _etf_distance(P @ U @ P)
        nW, nM = torch.linalg.norm(W), torch.linalg.norm(Mc)
        out["nc3"] = (float(torch.linalg.norm(W.T / nW - Mc / nM))
                      if spec.L > 1 and nW > 0 and nM > 0 else None)
        rk = rank_measures(P @ Z, rank_rel, keep=K - 1)
        out.update({k: rk[k] for k in ("numerical_rank", "effective_rank", "stable_rank")})
        out["centred_logit_singular_values"] = rk["singular_values"][:K].tolist()
        y = labels(spec, Z.device)
        idx = torch.arange(Z.shape[1], device=Z.device)
        zy = Z[y, idx]
        Zo = Z.clone()
        Zo[y, idx] = -math.inf
        out["min_margin"] = float((zy - Zo.max(dim=0).values).min())
    out["loss"] = full_grads(spec, factors)[0]
    return out


# ----------------------------------------------------------------------------- validation drivers
REL_FLOOR = 1e-3


def _rel_dev(full, red) -> float:
    """``max |full - red| / max(|red|, REL_FLOOR * max|red|)`` over the last axis' rows.

    Entries smaller than ``REL_FLOOR`` times the largest of their row (e.g. the constant CE mode
    started at 0, or a mode pinned at 0) are compared against that floor instead of themselves.
    """
    full, red = np.asarray(full, dtype=float), np.asarray(red, dtype=float)
    scale = np.max(np.abs(red), axis=-1, keepdims=True)
    den = np.maximum(np.abs(red), REL_FLOOR * scale)
    den = np.where(den > 0, den, 1.0)
    return float(np.max(np.abs(full - red) / den))


def _sync(dev):
    if dev.type == "cuda":
        _torch().cuda.synchronize(dev)


def validate_spectral(spec: ModelSpec, s0, widths, lr: float, steps: int, save_every: int = 1,
                      seed: int = 0, device="auto", progress=None, svd_every: int = 1) -> dict:
    """Full GD from a spectral init vs the exact reduced GD map (:func:`svdyn.descent.descend`).

    At every save point: each factor's singular values by projection onto the frozen frames and
    by an independent SVD (at every ``svd_every``-th save point and the last one: dense SVDs of
    2048 x 2048 matrices cost seconds), the logit singular values (both ways), the leakage and
    the loss.
    Returns ``{"device", "dtype", "max_rel_dev", "max_leakage", "loss_gap", "reduced_seconds",
    "full_seconds", ...}``; ``max_rel_dev`` is the largest of the four relative deviations
    (s and z, by projection and by SVD; see :func:`_rel_dev` for the floor).
    """
    from .descent import descend
    s0 = spec.check_state(s0, "initial state")
    dev = resolve_device(device) if isinstance(device, str) else device
    descend(spec, s0, lr, 1, 1)  # load / compile the kernels outside the timing
    t0 = time.perf_counter()
    tr = descend(spec, s0, lr, steps, save_every)
    reduced_seconds = time.perf_counter() - t0
    if tr.status != "ok":
        raise SpecError(f"reduced descent failed: {tr.status}")
    frames = spectral_frames(spec, widths, seed, dev)
    F0 = build_spectral_factors(spec, s0, widths, frames=frames)
    rec = {"s_proj": [], "z_proj": [], "leak": [], "zleak": [], "svd": [], "zsvd": [],
           "loss": [], "tail": [], "svd_at": []}
    analysis = [0.0]
    K = spec.K

    def cb(k, factors, loss):
        _sync(dev)
        ta = time.perf_counter()
        sp, lk = project(factors, frames)
        Z = logits(factors)
        zp, zl = project_logits(Z, frames)
        i = len(rec["s_proj"])
        rec["s_proj"].append(sp)
        rec["z_proj"].append(zp)
        rec["leak"].append(lk)
        rec["zleak"].append(zl)
        rec["loss"].append(loss)
        if i % svd_every == 0 or k == steps:
            sv = svd_values(factors)
            rec["svd_at"].append(i)
            rec["svd"].append(np.array([v[:K] for v in sv[:-1]]))
            rec["zsvd"].append(sv[-1][:K])
            rec["tail"].append(max((float(v[K]) / float(v[0]) if len(v) > K and v[0] > 0
                                    else 0.0) for v in sv))
        analysis[0] += time.perf_counter() - ta

    _sync(dev)
    t0 = time.perf_counter()
    gd(spec, F0, lr, steps, save_every, cb, progress)
    _sync(dev)
    full_seconds = time.perf_counter() - t0 - analysis[0]
    s_red, z_red = tr.s, tr.z
    s_proj, z_proj = np.array(rec["s_proj"]), np.array(rec["z_proj"])
    abs_sorted = -np.sort(-np.abs(s_red), axis=-1)
    zabs_sorted = -np.sort(-np.abs(z_red), axis=-1)
    dev_s = _rel_dev(s_proj, s_red)
    dev_z = _rel_dev(z_proj, z_red)
    at = np.array(rec["svd_at"])
    dev_s_svd = _rel_dev(np.array(rec["svd"]), abs_sorted[at])
    dev_z_svd = _rel_dev(np.array(rec["zsvd"]), zabs_sorted[at])
    loss_full = np.array(rec["loss"])
    gap = np.abs(loss_full - tr.loss)
    return {
        "kind": "spectral",
        "device": device_name(dev),
        "dtype": DTYPE_NAME,
        "spec": spec.to_dict(),
        "widths": hidden_widths(spec, widths),
        "lr": lr, "steps": steps, "save_every": save_every, "seed": seed,
        "max_rel_dev": max(dev_s, dev_z, dev_s_svd, dev_z_svd),
        "max_rel_dev_s_projection": dev_s,
        "max_rel_dev_z_projection": dev_z,
        "max_rel_dev_s_svd": dev_s_svd,
        "max_rel_dev_z_svd": dev_z_svd,
        "max_abs_dev_normwise": float(max(
            np.max(np.abs(s_proj - s_red) / np.max(np.abs(s_red), axis=-1, keepdims=True)),
            np.max(np.abs(z_proj - z_red) / np.max(np.abs(z_red), axis=-1, keepdims=True)))),
        "rel_dev_floor": REL_FLOOR,
        "max_leakage": float(max(np.max(rec["leak"]), np.max(rec["zleak"]))),
        "max_leakage_per_factor": np.max(np.array(rec["leak"]), axis=0).tolist(),
        "max_svd_tail": float(np.max(rec["tail"])),
        "svd_checked_steps": tr.times[at].tolist(),
        "loss_gap": float(np.max(gap)),
        "loss_rel_gap": float(np.max(gap / np.maximum(np.abs(tr.loss), 1e-300))),
        "reduced_seconds": reduced_seconds,
        "full_seconds": full_seconds,
        "analysis_seconds": analysis[0],
        "saved_steps": tr.times.tolist(),
        "loss_reduced": tr.loss.tolist(),
        "loss_full": loss_full.tolist(),
        "z_final_reduced": z_red[-1].tolist(),
        "z_final_full": z_proj[-1].tolist(),
        "rel_dev_series": [max(_rel_dev(a, b), _rel_dev(c, d)) for a, b, c, d
                           in zip(s_proj, s_red, z_proj, z_red)],
        "leakage_series": [float(max(np.max(a), b)) for a, b in zip(rec["leak"], rec["zleak"])],
        "z_reduced_series": z_red.tolist() if K <= 64 else None,
        "z_full_series": z_proj.tolist() if K <= 64 else None,
    }


def order_check(spec: ModelSpec, s0, widths, lr: float, t_end: float, levels: int = 4,
                seed: int = 0, device="auto", rtol: float = 1e-12, progress=None) -> dict:
    """GD at ``lr / 2^k`` (k < levels) up to time ``t_end`` vs the reduced gradient flow.

    Errors ``e(eta) = max|s_GD(t_end) - s_flow(t_end)| / max|s_flow(t_end)|`` for full-matrix GD
    (projected on the frames) and for the reduced GD map; the fitted order is the least-squares
    slope of ``log e`` against ``log eta`` (Euler: 1).
    """
    from .descent import descend
    from .integrate import flow
    s0 = spec.check_state(s0, "initial state")
    dev = resolve_device(device) if isinstance(device, str) else device
    ft = flow(spec, s0, save_at=[0.0, float(t_end)], rtol=rtol, atol=1e-14)
    if ft.status != "ok":
        raise SpecError(f"reference flow failed: {ft.status}")
    s_ref = ft.s[-1]
    scale = float(np.max(np.abs(s_ref)))
    frames = spectral_frames(spec, widths, seed, dev)
    F0 = build_spectral_factors(spec, s0, widths, frames=frames)
    etas, err_full, err_red = [], [], []
    for k in range(levels):
        eta = lr / 2 ** k
        steps = int(round(t_end / eta))
        eta = t_end / steps
        out = {}
        gd(spec, F0, eta, steps, steps,
           lambda i, f, loss: out.__setitem__("s", project(f, frames)[0]) if i == steps else None,
           progress)
        sr = descend(spec, s0, eta, steps, steps).s[-1]
        etas.append(eta)
        err_full.append(float(np.max(np.abs(out["s"] - s_ref))) / scale)
        err_red.append(float(np.max(np.abs(sr - s_ref))) / scale)
    le = np.log(etas)
    order = float(np.polyfit(le, np.log(err_full), 1)[0])
    order_red = float(np.polyfit(le, np.log(err_red), 1)[0])
    return {"t_end": float(t_end), "lrs": etas, "errors_full": err_full,
            "errors_reduced": err_red, "order": order, "order_reduced": order_red,
            "flow_rtol": rtol}


SERIES_KEYS = ("loss", "min_margin", "nc1", "nc2_W", "nc2_H", "nc2_Z", "nc3", "numerical_rank",
               "effective_rank", "stable_rank")


def validate_random(spec: ModelSpec, widths, scale: float, lr: float, steps: int,
                    save_every: int = 1, seed: int = 0, device="auto", progress=None,
                    fan_in: bool = False) -> dict:
    """Full GD from Gaussian factors; NC and rank metrics (:func:`nc_metrics`) over time."""
    dev = resolve_device(device) if isinstance(device, str) else device
    F0 = build_random_factors(spec, widths, scale, seed, dev, fan_in)
    series = {k: [] for k in ("step",) + SERIES_KEYS}
    last = {}

    def cb(k, factors, loss):
        m = nc_metrics(spec, factors)
        series["step"].append(k)
        for key in SERIES_KEYS:
            series[key].append(m[key])
        last.update(m)

    _sync(dev)
    t0 = time.perf_counter()
    gd(spec, F0, lr, steps, save_every, cb, progress)
    _sync(dev)
    ws = [int(w) for w in ([widths] * (spec.L - 1) if np.isscalar(widths) else widths)]
    if len(ws) == 1:
        ws = ws * (spec.L - 1)
    return {"kind": "random", "device": device_name(dev), "dtype": DTYPE_NAME,
            "spec": spec.to_dict(), "widths": ws, "init_scale": scale, "fan_in": fan_in,
            "lr": lr,
            "steps": steps, "save_every": save_every, "seed": seed,
            "seconds": time.perf_counter() - t0, "series": series,
            "final": {k: last[k] for k in SERIES_KEYS},
            "final_centred_logit_singular_values": last["centred_logit_singular_values"]}


# ----------------------------------------------------------------------------- optimizers
def signed_permutation_frames(spec: ModelSpec, widths, seed: int = 0, device="cpu") -> list:
    """``[B, R_1, ..., R_{L-1}, Q]`` with hidden frames that are signed partial permutations
    (column j of ``R_l`` is ``+-e_{pi_l(j)}``, ``pi_l`` a random injection, random signs;
    numpy ``default_rng(seed)``). With the walsh basis these are the frames under which
    element-wise optimizers (Adam, RMSprop, sign-GD) keep the spectral form exactly."""
    torch = _torch()
    dev = resolve_device(device) if isinstance(device, str) else device
    ws = hidden_widths(spec, widths)
    Q = spec.G.Q
    B = np.kron(Q, np.ones((spec.n, 1))) / math.sqrt(spec.n)
    rng = np.random.default_rng(seed)
    mats = [B]
    for d in ws:
        R = np.zeros((d, spec.K))
        rows = rng.permutation(d)[:spec.K]
        R[rows, np.arange(spec.K)] = rng.choice([-1.0, 1.0], spec.K)
        mats.append(R)
    mats.append(Q)
    return [torch.as_tensor(np.ascontiguousarray(m), dtype=torch.float64, device=dev)
            for m in mats]


def make_frames(spec: ModelSpec, widths, kind: str = "random", seed: int = 0, device="cpu"):
    """``kind``: ``random`` (orthonormal, :func:`spectral_frames`) or ``signed-permutation``."""
    if kind == "random":
        return spectral_frames(spec, widths, seed, device)
    if kind in ("signed-permutation", "permutation"):
        return signed_permutation_frames(spec, widths, seed, device)
    raise SpecError(f"--frames {kind!r}: use random or signed-permutation")


def data_spec(spec: ModelSpec) -> ModelSpec:
    """The same model without weight decay (the optimizer applies it)."""
    return ModelSpec.from_dict({**spec.to_dict(), "weight_decay": 0.0})


def make_torch_optimizer(name: str, params, lr: float, weight_decay, momentum: float = 0.9,
                         betas=(0.9, 0.999), eps: float = 1e-8, alpha: float = 0.99):
    """A torch optimizer with one parameter group per factor (``weight_decay[l]`` each).

    ``gd``/``momentum``/``nesterov``: ``torch.optim.SGD`` (dampening 0); ``adam``, ``adamw``,
    ``rmsprop``: torch's own; ``sign-gd``: ``F <- F - lr sign(g + lambda F)`` (no torch class)."""
    torch = _torch()
    groups = [{"params": [p], "weight_decay": float(w)} for p, w in zip(params, weight_decay)]
    if name == "gd":
        return torch.optim.SGD(groups, lr=lr)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=name == "nesterov")
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(betas), eps=eps)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=alpha, eps=eps)
    if name == "sign-gd":
        return _sign_gd_class()(groups, lr=lr)
    raise SpecError(f"--optimizer {name!r}: use gd, momentum, nesterov, adam, adamw, rmsprop "
                    "or sign-gd")


def _sign_gd_class():
    torch = _torch()

    class SignGD(torch.optim.Optimizer):
        """``p <- p - lr sign(grad + weight_decay p)``."""

        def __init__(self, params, lr):
            super().__init__(params, {"lr": lr, "weight_decay": 0.0})

        @torch.no_grad()
        def step(self, closure=None):
            for grp in self.param_groups:
                for p in grp["params"]:
                    g = p.grad
                    if grp["weight_decay"]:
                        g = g + grp["weight_decay"] * p
                    p.add_(torch.sign(g), alpha=-grp["lr"])

    return SignGD


def train(spec: ModelSpec, factors, optimizer: str, lr: float, steps: int, save_every: int = 1,
          callback=None, progress=None, **hyper):
    """Full-batch training with a torch optimizer (:func:`make_torch_optimizer`); the spec's
    weight decay is handed to the optimizer per factor (coupled for SGD/Adam/RMSprop/sign-GD,
    decoupled for AdamW), gradients are those of the data loss (:func:`full_grads`, stable
    softmax residual). ``callback(step, factors, loss)`` as in :func:`gd`. Returns the factors."""
    params = [F.detach().clone() for F in factors]
    opt = make_torch_optimizer(optimizer, params, lr, spec.weight_decay, **hyper)
    dspec = data_spec(spec)
    last = time.monotonic()
    for k in range(steps + 1):
        loss, grads = full_grads(dspec, params)
        if callback is not None and (k % save_every == 0 or k == steps):
            callback(k, params, loss)
        if k == steps:
            break
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        if progress is not None and time.monotonic() - last > 5.0:
            progress(k + 1, steps, loss)
            last = time.monotonic()
    return params


def validate_optimizer(spec: ModelSpec, s0, widths, optimizer: str, lr: float, steps: int,
                       save_every: int = 1, seed: int = 0, device="auto", frames: str = "random",
                       progress=None, **hyper) -> dict:
    """Full training with the torch optimizer from a spectral init vs the exact reduced map
    (:func:`svdyn.optimizers.optimize`); projections on the frozen frames at every save point.

    Returns ``{"device", "max_rel_dev", "max_abs_dev_normwise", "max_leakage", "loss_gap", ...}``
    (deviation as :func:`_rel_dev`; the loss compared is the data loss, plus the coupled weight
    decay term except for adamw).
    """
    from .optimizers import optimize
    s0 = spec.check_state(s0, "initial state")
    dev = resolve_device(device) if isinstance(device, str) else device
    t0 = time.perf_counter()
    tr = optimize(spec, s0, lr, steps, optimizer, save_every=save_every, **hyper)
    reduced_seconds = time.perf_counter() - t0
    if tr.status != "ok":
        raise SpecError(f"reduced {optimizer} failed: {tr.status}")
    fr = make_frames(spec, widths, frames, seed, dev)
    F0 = build_spectral_factors(spec, s0, widths, frames=fr)
    rec = {"s": [], "leak": [], "loss": []}
    wd = [0.0 if optimizer == "adamw" else w for w in spec.weight_decay]

    def cb(k, factors, loss):
        sp, lk = project(factors, fr)
        rec["s"].append(sp)
        rec["leak"].append(float(np.max(lk)))
        with _torch().no_grad():
            reg = sum(0.5 * w * float((F * F).sum()) for w, F in zip(wd, factors))
        rec["loss"].append(loss + reg)

    _sync(dev)
    t0 = time.perf_counter()
    train(spec, F0, optimizer, lr, steps, save_every, cb, progress, **hyper)
    _sync(dev)
    full_seconds = time.perf_counter() - t0
    s_full = np.array(rec["s"])
    dev_series = [_rel_dev(a, b) for a, b in zip(s_full, tr.s)]
    gap = np.abs(np.array(rec["loss"]) - tr.loss)
    return {"kind": "optimizer", "optimizer": optimizer, "hyper": dict(hyper),
            "frames": frames, "device": device_name(dev), "dtype": DTYPE_NAME,
            "spec": spec.to_dict(), "widths": hidden_widths(spec, widths), "lr": lr,
            "steps": steps, "save_every": save_every, "seed": seed,
            "max_rel_dev": float(max(dev_series)),
            "max_abs_dev_normwise": float(np.max(np.abs(s_full - tr.s)
                                                 / np.max(np.abs(tr.s), axis=-1, keepdims=True))),
            "max_leakage": float(max(rec["leak"])),
            "loss_gap": float(np.max(gap)),
            "loss_rel_gap": float(np.max(gap / np.maximum(np.abs(tr.loss), 1e-300))),
            "reduced_seconds": reduced_seconds, "full_seconds": full_seconds,
            "saved_steps": tr.times.tolist(), "rel_dev_series": dev_series,
            "leakage_series": rec["leak"]}
