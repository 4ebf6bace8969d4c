"""Which structure wins: family losses for (K, L, lambda, n), the (K, L) table against [P].

[P] (arXiv 2410.23169) states that deep neural collapse is not globally optimal under CE + L2
when K >= 4 with three or more weight matrices, or K >= 6 with two. [P] counts weight matrices
only, so in svdyn's depth (all factors, features included) that is **L >= 4 and K >= 4, or
L = 3 and K >= 6**; for L = 2 (the plain UFM) DNC is optimal.

Small-lambda limit (derived here): as lambda -> 0 the critical values grow like log(1/lambda)
and the comparison is decided by the Schatten cost ``sum_j z_j^{2/L}`` at unit minimum margin
(n = 1): DNC ``K - 1``; ``block:d`` ``(K - K/d) (d/(d-1))^{2/L}`` (pairing, d = 2:
``(K/2) 2^{2/L}``); polygon ``2 c^{2/L}`` with ``c = K / (2 (1 - cos(2 pi / K)))``. Pairing beats
DNC in that limit iff ``2^{2/L} < 2 - 2/K``: L = 3 needs K >= 6 (K > 4.84), L = 4 needs
K >= 4 (K > 3.41), L = 2 never -- exactly [P]'s thresholds for even K.

Group-symmetric families need an even K for pairing. For odd K, [P]'s low-rank competitor (pairs
plus one unpaired class) is not invariant under any class group, so the reduced engine cannot
represent it; :func:`pairs_singleton` minimises the full torch model from that structure
(L-BFGS, widths K) to test it.
"""
from __future__ import annotations

import math

import numpy as np

from ..groups import SpecError
from ..spec import ModelSpec
from .critical import CriticalPoint, critical_points


def groups_for(K: int) -> list:
    """Group bases tried for K: walsh (K a power of two) and cyclic."""
    out = []
    if K >= 2 and (K & (K - 1)) == 0:
        out.append("walsh")
    out.append("cyclic")
    return out


def p_predicts_dnc_loses(K: int, L: int) -> bool:
    """[P]'s threshold in svdyn's depth: (L >= 4 and K >= 4) or (L == 3 and K >= 6)."""
    return (L >= 4 and K >= 4) or (L == 3 and K >= 6)


def maxmargin_costs(K: int, L: int) -> dict:
    """Schatten-(2/L) costs at unit minimum margin (n = 1) of the symmetric families."""
    q = 2.0 / L
    out = {"dnc": float(K - 1)}
    if K % 2 == 0 and K > 2:
        out["pairing"] = (K / 2) * 2.0 ** q
    if K >= 4:
        c = K / (2.0 * (1.0 - math.cos(2.0 * math.pi / K)))
        out["polygon"] = 2.0 * c ** q
    if K >= 8 and (K & (K - 1)) == 0:
        m = K.bit_length() - 1
        out["hypercube"] = m * (K / 2.0) ** q
    for d in range(3, K):
        if K % d == 0:
            out[f"block:{d}"] = (K - K / d) * (d / (d - 1.0)) ** q
    return out


def all_families(K: int, L: int, lam: float, n: int = 1, loss: str = "ce",
                 groups=None) -> dict:
    """Critical points of every family over the group bases of :func:`groups_for`.

    Returns ``{name: CriticalPoint}``; group-dependent names (polygon, block, hybrid) carry the
    group as ``name[group]`` unless the group is the first one tried. DNC and pairing have the
    same loss in every basis (checked: the lower one is kept).
    """
    out: dict = {}
    for gi, g in enumerate(groups or groups_for(K)):
        spec = ModelSpec(K, depth=L, samples_per_class=n, loss=loss, weight_decay=lam, group=g)
        for p in critical_points(spec, "all"):
            key = p.name if (gi == 0 or p.name in ("dnc", "pairing", "zero", "dnc-centred")) \
                else f"{p.name}[{g}]"
            if key not in out or p.loss < out[key].loss:
                out[key] = p
    return out


def compare(K: int, L: int, lam: float, n: int = 1, loss: str = "ce") -> dict:
    """Summary for one (K, L, lambda, n): losses per family, the best, DNC vs best non-DNC."""
    fams = all_families(K, L, lam, n, loss)
    items = sorted(fams.items(), key=lambda kv: kv[1].loss)
    best_name, best = items[0]
    dnc = fams.get("dnc")
    nonzero = [(k, p) for k, p in items if p.rank > 0]
    rival = next(((k, p) for k, p in nonzero if k != "dnc"), (None, None))
    return {
        "K": K, "L": L, "lambda": lam, "n": n, "loss": loss,
        "losses": {k: p.loss for k, p in items},
        "ranks": {k: p.rank for k, p in items},
        "best": best_name, "best_rank": best.rank, "best_loss": best.loss,
        "best_nonzero": nonzero[0][0] if nonzero else None,
        "best_nonzero_rank": nonzero[0][1].rank if nonzero else None,
        "dnc_loss": dnc.loss if dnc else None,
        "rival": rival[0], "rival_loss": rival[1].loss if rival[1] else None,
        "dnc_loses": bool(rival[1] is not None and dnc is not None and rival[1].loss < dnc.loss),
        "pairing_gap": ((fams["pairing"].loss - dnc.loss) / dnc.loss
                        if dnc is not None and "pairing" in fams else None),
    }


def threshold_table(Ks=(3, 4, 5, 6, 7, 8, 10), Ls=(2, 3, 4, 5, 6), lams=(1e-2, 1e-3, 1e-4),
                    n: int = 1, loss: str = "ce") -> list:
    """Rows of :func:`compare` over a grid, each with ``p_predicts`` ([P]'s threshold),
    ``maxmargin_pairing_wins`` (the lambda -> 0 criterion) and ``agrees``."""
    rows = []
    for lam in lams:
        for L in Ls:
            for K in Ks:
                r = compare(K, L, lam, n, loss)
                r["p_predicts"] = p_predicts_dnc_loses(K, L)
                costs = maxmargin_costs(K, L)
                r["maxmargin_best"] = min(costs, key=costs.get)
                r["maxmargin_pairing_wins"] = ("pairing" in costs
                                               and costs["pairing"] < costs["dnc"])
                r["agrees"] = r["dnc_loses"] == r["p_predicts"]
                rows.append(r)
    return rows


# ----------------------------------------------------------------------------- odd K
def _lbfgs_full(spec: ModelSpec, factors, maxiter: int = 20000):
    """Minimise the full torch model with scipy L-BFGS (float64); returns (loss, |grad|, fs)."""
    import torch
    from scipy.optimize import minimize

    from .. import fullmodel as fm
    shapes = [f.shape for f in factors]
    sizes = [f.numel() for f in factors]

    def unpack(x):
        out, i = [], 0
        for sh, sz in zip(shapes, sizes):
            out.append(torch.as_tensor(x[i:i + sz], dtype=torch.float64).reshape(sh))
            i += sz
        return out

    def fg(x):
        loss, gs = fm.full_grads(spec, unpack(x))
        return loss, np.concatenate([g.cpu().numpy().ravel() for g in gs])

    x0 = np.concatenate([f.detach().cpu().numpy().ravel() for f in factors])
    r = minimize(fg, x0, jac=True, method="L-BFGS-B",
                 options=dict(maxiter=maxiter, gtol=1e-13, ftol=1e-16, maxcor=30))
    return float(r.fun), float(np.linalg.norm(r.jac)), unpack(r.x)


def pairs_singleton(K: int, L: int, lam: float, n: int = 1, scale: float = 10.0) -> dict:
    """Full-model minimum reached from "pairs plus one unpaired class" (odd K).

    Class-mean logits start as +scale on the own class, -scale on the partner (classes
    (0,1), (2,3), ...; class K-1 alone), factored balanced (widths K); L-BFGS on the full model.
    Returns ``{"loss", "grad_norm", "singular_values", "rank"}`` (rank: sigma > 1e-6 sigma_1).
    """
    import torch

    from .. import fullmodel as fm
    if L < 2:
        raise SpecError("pairs_singleton needs depth >= 2")
    spec = ModelSpec(K, depth=L, samples_per_class=n, weight_decay=lam, group="cyclic")
    M = np.zeros((K, K))
    for c in range(0, K - 1, 2):
        M[c, c] = M[c + 1, c + 1] = 1.0
        M[c + 1, c] = M[c, c + 1] = -1.0
    if K % 2:
        M[K - 1, K - 1] = 1.0
    M *= scale
    U, S, Vt = np.linalg.svd(M)
    r = S ** (1.0 / L)
    first = np.kron(np.diag(r) @ Vt, np.ones((1, n)))   # d x N, samples class-major
    fs = [torch.as_tensor(first)] + [torch.as_tensor(np.diag(r)) for _ in range(L - 2)] \
        + [torch.as_tensor(U @ np.diag(r))]
    loss, gn, out = _lbfgs_full(spec, fs)
    sv = np.linalg.svd(fm.logits(out).numpy(), compute_uv=False)
    return {"loss": loss, "grad_norm": gn, "singular_values": sv.tolist(),
            "rank": int(np.sum(sv > 1e-6 * sv[0]))}


def best_point(K: int, L: int, lam: float, n: int = 1, loss: str = "ce") -> CriticalPoint:
    """The lowest-loss family critical point over the tried group bases."""
    fams = all_families(K, L, lam, n, loss)
    return min(fams.values(), key=lambda p: p.loss)


# ----------------------------------------------------------------------------- basins
def multistart(spec: ModelSpec, n_starts: int = 100, scale: float = 0.1, t_end: float = 2e5,
               seed: int = 0) -> list:
    """Where the reduced gradient flow goes from random balanced spectral starts.

    z_j(0) = scale * U(0.5, 1.5) on the non-constant modes; the flow is integrated to
    ``t_end`` (batched :func:`svdyn.integrate.flow`), each end point is polished by Newton on its
    numerical support and labelled with the family whose loss matches (rel. 1e-9), else
    ``other(rank r)``. Only for bases without paired modes (walsh): at L >= 3 the flow does not
    keep paired modes equal (round-off grows along the pair-antisymmetric direction, which is
    not a valid state). Returns ``[{"label", "count", "loss", "rank", "z"}]``, by count.
    """
    from ..spec import random_init_z
    from ..integrate import flow
    from .critical import critical_points, solve_critical
    if spec.G.pairs:
        raise SpecError("multistart needs a basis without paired modes (walsh); the reduced "
                        "flow does not keep paired modes equal at depth >= 3")
    fams = critical_points(spec, "all")
    z0 = random_init_z(spec, scale, np.random.default_rng(seed), batch=n_starts)
    tr = flow(spec, spec.balanced(z0), t_end=t_end, save_at=[t_end])
    groups: dict = {}
    for b in range(n_starts):
        z = np.abs(np.prod(tr.s[b, -1], axis=0))
        a = z ** (1.0 / spec.L)
        sup = a > 1e-3 * max(float(a.max()), 1e-300)
        p = solve_critical(spec, np.where(sup, a, 0.0), mask=sup, flow_fallback=False)
        match = [f.name for f in fams if abs(f.loss - p.loss) <= 1e-9 * abs(f.loss)
                 and f.rank == p.rank]
        label = match[0] if match else f"other(rank {p.rank})"
        key = (label, round(p.loss, 10))
        g = groups.setdefault(key, {"label": label, "count": 0, "loss": p.loss,
                                    "rank": p.rank, "z": p.z.tolist(),
                                    "converged": p.converged})
        g["count"] += 1
    return sorted(groups.values(), key=lambda g: -g["count"])
