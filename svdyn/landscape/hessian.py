"""Full-parameter Hessians at reduced critical points (torch, dense, small sizes).

The factors are built on random orthonormal frames by :func:`svdyn.fullmodel.
build_spectral_factors` (widths ``d_l >= K``), the Hessian of :func:`svdyn.fullmodel.full_loss`
over all ``P = sum_l d_l d_{l-1}`` parameters (``d_0 = N = nK``, ``d_L = K``) is formed densely
with ``torch.autograd.functional.hessian`` and diagonalised with ``torch.linalg.eigvalsh``.
Parameter order: F_1 row-major, then F_2, ..., F_L. Keep K <= 8 and widths <= 10.

mse deep-NC closed form (derived here; the K^2 outliers of [U])
---------------------------------------------------------------
At mse deep NC every mode, the constant one included, carries ``s`` with
``(sqrt n - s^L) s^{L-2} = N lambda`` (largest root), ``z = s^L``; put ``a = s^{2L-2}/N``.
Write every perturbation in the frames. In-frame blocks ``X_l`` (K x K) give the quadratic
form ``(a/2) ||sum_l X_l||^2 + beta sum_{l<m} tr(X_m X_l) + (lambda/2) sum ||X_l||^2`` with
``beta = (s^L - sqrt n) s^{L-2} / N = -lambda`` (stationarity). Splitting each entry pair into
symmetric / antisymmetric parts gives, per component, the L x L matrices
``(a - lambda) 11^T + 2 lambda I`` (K(K+1)/2 symmetric components) and ``(a + lambda) 11^T``
(K(K-1)/2 antisymmetric ones). Out-of-frame rows of F_l pair with out-of-frame columns of
F_{l+1} through ``beta tr(Y X)``: eigenvalues 0 and 2 lambda, K (d_l - K) each; first-layer
columns outside the class-mean frame (n > 1) see the data term only: ``a + lambda``; everything
else ``lambda``. Hence the full spectrum

====================================  ===========================================
eigenvalue                            multiplicity
====================================  ===========================================
``L a + L lambda``                    K(K-1)/2          (outliers)
``L a - (L-2) lambda``                K(K+1)/2          (outliers)
``a + lambda``                        K (N - K)
``2 lambda``                          (L-1) K(K+1)/2 + sum_l K (d_l - K)
``0``                                 (L-1) K(K-1)/2 + sum_l K (d_l - K)
``lambda``                            the rest
====================================  ===========================================

so K^2 outliers near ``L a`` (split by ``(2L-2) lambda``); each *layer* Hessian (one factor
at a time) has exactly K^2 equal outliers ``a + lambda`` (layer 1: K N of them) over a bulk at
``lambda`` -- [U]'s statement.
"""
from __future__ import annotations

import math

import numpy as np

from ..groups import SpecError
from ..spec import LOSS_MSE, ModelSpec

NEG_RTOL = 1e-9        # an eigenvalue is negative if < -NEG_RTOL * max |eig|
CLUSTER_RTOL = 1e-7    # eigenvalues within CLUSTER_RTOL * max |eig| are one cluster


def _torch():
    from ..fullmodel import _torch as t
    return t()


def flat_hessian(spec: ModelSpec, factors) -> np.ndarray:
    """Dense Hessian (P, P) of the total full loss in all factor entries (F_1 first, row-major)."""
    torch = _torch()
    from ..fullmodel import full_loss
    shapes = [tuple(F.shape) for F in factors]
    sizes = [int(F.numel()) for F in factors]
    x0 = torch.cat([F.detach().reshape(-1) for F in factors])

    def fn(x):
        fs, i = [], 0
        for sh, sz in zip(shapes, sizes):
            fs.append(x[i:i + sz].reshape(sh))
            i += sz
        return full_loss(spec, fs)

    H = torch.autograd.functional.hessian(fn, x0, vectorize=True)
    H = 0.5 * (H + H.T)
    return H.detach().cpu().numpy()


def layer_slices(factors) -> list:
    """Index slices of each factor in the flat parameter vector."""
    out, i = [], 0
    for F in factors:
        n = int(F.numel())
        out.append(slice(i, i + n))
        i += n
    return out


def clusters(eigs, rtol: float = CLUSTER_RTOL) -> list:
    """Group sorted eigenvalues into ``[value (mean), multiplicity]`` pairs (ascending)."""
    e = np.sort(np.asarray(eigs, dtype=float))
    if e.size == 0:
        return []
    tol = rtol * max(1.0e-300, float(np.max(np.abs(e))))
    out = [[e[0], 1, e[0]]]
    for v in e[1:]:
        if v - out[-1][2] <= tol:
            c = out[-1]
            c[0] = (c[0] * c[1] + v) / (c[1] + 1)
            c[1] += 1
            c[2] = v
        else:
            out.append([v, 1, v])
    return [[float(c[0]), int(c[1])] for c in out]


def find_outliers(eigs) -> dict:
    """Outliers above the largest ratio gap among eigenvalues > 1e-8 max.

    Returns ``{"count", "values" ([value, multiplicity] clusters), "bulk_max", "gap_ratio"}``.
    """
    e = np.sort(np.asarray(eigs, dtype=float))[::-1]
    top = float(e[0]) if e.size else 0.0
    pos = e[e > 1e-8 * max(top, 1e-300)]
    if pos.size < 2:
        return {"count": int(pos.size), "values": clusters(pos), "bulk_max": 0.0,
                "gap_ratio": math.inf}
    ratios = pos[:-1] / pos[1:]
    i = int(np.argmax(ratios))
    return {"count": i + 1, "values": clusters(pos[:i + 1])[::-1],
            "bulk_max": float(pos[i + 1]), "gap_ratio": float(ratios[i])}


def spectrum_summary(eigs) -> dict:
    """``{"eigenvalues", "min_eig", "max_eig", "n_negative", "n_zero", "clusters", "outliers"}``."""
    e = np.sort(np.asarray(eigs, dtype=float))
    scale = max(float(np.max(np.abs(e))), 1e-300)
    return {"eigenvalues": e.tolist(), "min_eig": float(e[0]), "max_eig": float(e[-1]),
            "n_negative": int(np.sum(e < -NEG_RTOL * scale)),
            "n_zero": int(np.sum(np.abs(e) <= NEG_RTOL * scale)),
            "clusters": clusters(e), "outliers": find_outliers(e)}


def hessian_at(spec: ModelSpec, s: np.ndarray, widths, seed: int = 0, device="auto",
               layers: bool = False) -> dict:
    """Full-parameter Hessian spectrum at the spectral factors of ``s`` (L, K).

    Returns :func:`spectrum_summary` plus ``device``, ``n_params``, ``widths`` and, with
    ``layers``, ``layer_eigenvalues`` (one list per factor: the diagonal blocks).
    """
    from .. import fullmodel as fm
    dev = fm.resolve_device(device) if isinstance(device, str) else device
    ws = fm.hidden_widths(spec, widths)
    factors = fm.build_spectral_factors(spec, s, ws, seed=seed, device=dev)
    H = flat_hessian(spec, factors)
    torch = _torch()
    e = torch.linalg.eigvalsh(torch.as_tensor(H)).numpy()
    out = spectrum_summary(e)
    out.update({"device": fm.device_name(dev), "n_params": int(H.shape[0]), "widths": ws})
    if layers:
        out["layer_eigenvalues"] = [np.linalg.eigvalsh(H[sl, sl]).tolist()
                                    for sl in layer_slices(factors)]
    return out


# ----------------------------------------------------------------------------- mse closed form
def mse_dnc_value(spec: ModelSpec) -> float:
    """The balanced value s > 0 of mse deep NC: largest root of (sqrt n - s^L) s^{L-2} = N lam."""
    if spec.loss_code[0] != LOSS_MSE:
        raise SpecError("the closed form is for --loss mse")
    from .critical import critical_points
    pts = critical_points(spec, "dnc")
    if not pts or pts[0].rank == 0:
        raise SpecError(f"no non-zero mse deep-NC point at weight decay {spec.lam[0]}: lower it")
    return float(pts[0].s[0, 0])


def mse_dnc_closed_form(spec: ModelSpec, widths) -> dict:
    """Predicted full and layer Hessian spectra at mse deep NC (see the module docstring).

    Returns ``{"s", "a", "full": [[value, multiplicity], ...] (descending),
    "outlier_values": [L a + L lam, L a - (L-2) lam], "layer_outlier": a + lam,
    "layer_outlier_counts": [K N, K^2, ..., K^2], "n_params"}``.
    """
    from ..fullmodel import hidden_widths
    K, L, n = spec.K, spec.L, spec.n
    if L < 2:
        raise SpecError("the deep-NC closed form needs depth >= 2")
    lam = float(spec.lam[0])
    if not np.allclose(spec.lam, lam):
        raise SpecError("the closed form needs one weight decay on every factor")
    N = n * K
    ws = hidden_widths(spec, widths)
    dims = [N] + ws + [K]
    P = sum(dims[l + 1] * dims[l] for l in range(L))
    s = mse_dnc_value(spec)
    a = s ** (2 * L - 2) / N
    sym, asym = K * (K + 1) // 2, K * (K - 1) // 2
    hid = sum(K * (d - K) for d in ws)
    parts = [(L * a + L * lam, asym), (L * a - (L - 2) * lam, sym), (a + lam, K * (N - K)),
             (2 * lam, (L - 1) * sym + hid), (0.0, (L - 1) * asym + hid)]
    used = sum(m for _, m in parts)
    parts.append((lam, P - used))
    merged: dict = {}
    for v, m in parts:
        if m > 0:
            key = round(v, 14)
            merged[key] = merged.get(key, 0) + m
    full = sorted(([float(v), int(m)] for v, m in merged.items()), reverse=True)
    return {"s": s, "a": a, "full": full,
            "outlier_values": [L * a + L * lam, L * a - (L - 2) * lam],
            "layer_outlier": a + lam, "layer_outlier_counts": [K * N] + [K * K] * (L - 1),
            "n_params": P}


def expand(spec_list) -> np.ndarray:
    """[[value, multiplicity], ...] -> sorted eigenvalue array."""
    return np.sort(np.concatenate([np.full(int(m), float(v)) for v, m in spec_list]))


# ----------------------------------------------------------------------------- lambda sweep
def min_eig_vs_lambda(K: int, L: int, lams, family: str = "dnc", n: int = 1, loss: str = "ce",
                      group: str = "", width: int | None = None, seed: int = 0,
                      device="auto") -> list:
    """``[{"lambda", "min_eig", "max_eig", "n_negative", "n_zero", "loss", "grad_norm"}]`` of
    the full Hessian at the family's critical point for each weight decay."""
    from .critical import critical_points
    rows = []
    for lam in lams:
        spec = ModelSpec(K, depth=L, samples_per_class=n, loss=loss, weight_decay=lam,
                         group=group)
        pts = critical_points(spec, family)
        if not pts:
            rows.append({"lambda": lam, "min_eig": None})
            continue
        p = pts[0]
        h = hessian_at(spec, p.s, width or K + 1, seed=seed, device=device)
        rows.append({"lambda": lam, "min_eig": h["min_eig"], "max_eig": h["max_eig"],
                     "n_negative": h["n_negative"], "n_zero": h["n_zero"], "loss": p.loss,
                     "grad_norm": p.grad_norm, "rank": p.rank})
    return rows


# ----------------------------------------------------------------------------- gradient descent
def full_gd_to_convergence(spec: ModelSpec, s0: np.ndarray, widths, lr: float,
                           max_steps: int = 200000, tol: float = 1e-13, seed: int = 0,
                           device="cpu", check_every: int = 500) -> dict:
    """Full-matrix GD (all factors at once) from the aligned factors of ``s0`` until the full
    gradient norm falls below ``tol`` or ``max_steps``. Returns ``{"loss", "grad_norm",
    "steps", "s", "leakage"}`` (``s``: the end point projected on the frames)."""
    torch = _torch()
    from .. import fullmodel as fm
    frames = fm.spectral_frames(spec, widths, seed=seed, device=device)
    fs = fm.build_spectral_factors(spec, s0, widths, seed=seed, device=device, frames=frames)
    steps = 0
    loss, gs = fm.full_grads(spec, fs)
    gn = float(torch.sqrt(sum((g * g).sum() for g in gs)))
    while steps < max_steps and gn > tol:
        k = min(check_every, max_steps - steps)
        fs = fm.gd(spec, fs, lr, k, save_every=k)
        steps += k
        loss, gs = fm.full_grads(spec, fs)
        gn = float(torch.sqrt(sum((g * g).sum() for g in gs)))
        if not math.isfinite(loss):
            break
    s, leak = fm.project(fs, frames)
    return {"loss": loss, "grad_norm": gn, "steps": steps, "s": s, "leakage": leak.tolist()}


def gradient_alignment(spec: ModelSpec, widths, lr: float, at=(0, 5, 10, 20, 40, 80, 160, 320),
                       init_scale: float = 0.3, k_top: int | None = None, seed: int = 0,
                       device="cpu") -> list:
    """Fraction of the gradient in the top-``k_top`` Hessian eigenspace along full GD.

    From random Gaussian factors (``init_scale``), at the GD steps ``at`` (sorted): the dense
    Hessian, its top ``k_top`` eigenvectors (default K^2, [U]'s outlier count) and
    ``||P_top grad||^2 / ||grad||^2``. A random direction would give ``k_top / P``.
    Returns ``[{"step", "loss", "grad_norm", "alignment", "random_baseline"}]``.
    """
    torch = _torch()
    from .. import fullmodel as fm
    at = sorted(int(a) for a in at)
    if not at or at[0] < 0:
        raise SpecError("checkpoints must be steps >= 0")
    fs = fm.build_random_factors(spec, widths, init_scale, seed=seed, device=device)
    k = k_top or spec.K ** 2
    out = []
    done = 0
    for step in at:
        if step > done:
            fs = fm.gd(spec, fs, lr, step - done, save_every=step - done)
            done = step
        loss, gs = fm.full_grads(spec, fs)
        g = torch.cat([x.reshape(-1) for x in gs]).cpu().numpy()
        H = flat_hessian(spec, fs)
        w, V = np.linalg.eigh(H)
        top = V[:, -k:]
        gg = float(g @ g)
        al = float(np.sum((top.T @ g) ** 2) / gg) if gg > 0 else float("nan")
        out.append({"step": step, "loss": loss, "grad_norm": math.sqrt(gg), "alignment": al,
                    "random_baseline": k / H.shape[0]})
    return out
