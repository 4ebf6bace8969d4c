"""The [P] / [U] section of ``validation/REPORT.md`` (weight decay, critical families, Hessians).

``section()`` recomputes every number (1-2 minutes on one shared CPU core) and returns markdown;
``python -m svdyn.landscape.report [OUT.md]`` prints or writes it. Each claim is marked
**reproduced**, **partly reproduced** or **not reproduced** from the numbers computed here.
"""
from __future__ import annotations

import sys

import numpy as np

from ..spec import ModelSpec

KS = (3, 4, 5, 6, 7, 8, 10)
LS = (2, 3, 4, 5, 6)
LAMS = (1e-2, 1e-3, 1e-4)


def _status(ok: bool, partly: bool = False) -> str:
    if ok:
        return "**reproduced**"
    return "**partly reproduced**" if partly else "**not reproduced**"


def _threshold_part(quick: bool) -> list:
    from .compare import maxmargin_costs, pairs_singleton, threshold_table
    lams = (1e-3,) if quick else LAMS
    Ks = (4, 6) if quick else KS
    Ls = (2, 3, 4) if quick else LS
    rows = threshold_table(Ks, Ls, lams)
    out = []
    # odd-K check with the full model (pairs + one unpaired class), L = 3
    odd = {}
    for K in [k for k in Ks if k % 2 and k >= 5]:
        for lam in lams:
            dnc = next(r for r in rows if r["K"] == K and r["L"] == 3 and r["lambda"] == lam)
            ps = pairs_singleton(K, 3, lam)
            odd[(K, lam)] = (ps, dnc["dnc_loss"])
    even = [r for r in rows if r["K"] % 2 == 0]
    even_ok = sum(r["agrees"] for r in even)
    # odd K verdict: group families, then the full-model pairs+singleton at L = 3
    odd_rows = [r for r in rows if r["K"] % 2]
    odd_ok, odd_bad = 0, []
    for r in odd_rows:
        loses = r["dnc_loses"]
        if r["L"] == 3 and (r["K"], r["lambda"]) in odd:
            ps, dl = odd[(r["K"], r["lambda"])]
            loses = loses or ps["loss"] < dl
        if loses == r["p_predicts"]:
            odd_ok += 1
        else:
            odd_bad.append((r, loses))
    # [P]'s condition is sufficient, not necessary: a cell disagrees only where [P] says DNC
    # loses and it does not. DNC losing where [P] says nothing (K = 5, L = 3) is outside it.
    even_contra = [r for r in even if r["p_predicts"] and not r["dnc_loses"]]
    odd_contra = [(r, lo) for r, lo in odd_bad if r["p_predicts"] and not lo]
    extra = [(r, lo) for r, lo in odd_bad if lo and not r["p_predicts"]] + [
        (r, True) for r in even if r["dnc_loses"] and not r["p_predicts"]]
    all_ok = not even_contra and not odd_contra
    SUMMARY.append(["[P]", "DNC is not globally optimal for K >= 4 with 3+ weight matrices "
                    "(L >= 4 here) or K >= 6 with 2 (L = 3); optimal at L = 2 (sufficient "
                    "condition)", _status(all_ok),
                    f"{sum(r['p_predicts'] for r in rows)} cells where [P] predicts DNC loses: "
                    f"DNC loses in all but {len(even_contra) + len(odd_contra)}; beyond the "
                    f"condition DNC also loses in {len(extra)} cells"
                    + (" (" + ", ".join(sorted({f'K={r["K"]}, L={r["L"]}' for r, _ in extra}))
                       + "; not disagreements)" if extra else "")
                    + "; λ = " + ", ".join(f"{x:g}" for x in lams),
                    "`svdyn critical --classes K --depth L --weight-decay LAM`"])
    out.append(f"### [P] DNC is not globally optimal: the (K, L) thresholds — "
               f"{_status(all_ok)} (as [P] states it: a sufficient condition)")
    out.append("")
    out.append("[P]: DNC loses to a lower-rank structure for K ≥ 4 with 3+ weight matrices, "
               "K ≥ 6 with 2; in svdyn depth (all factors) **L ≥ 4 and K ≥ 4, or L = 3 and "
               "K ≥ 6**; DNC is optimal at L = 2. This is a *sufficient* condition: a cell "
               "contradicts it only if [P] says DNC loses and DNC wins. Method: every named "
               "family's exact reduced "
               "critical point (Newton, |grad| ≤ 1e-14) over the walsh and cyclic bases, n = 1, "
               "ce; `svdyn critical --classes K --depth L --weight-decay LAM`. Cell: best "
               "family/rank, and (pairing − DNC)/DNC where pairing exists; ✓ = consistent with "
               "[P]'s condition; ◦ = DNC loses where the condition says nothing (outside the "
               "claim, not a disagreement); ✗ = contradicts it.")
    out.append("")
    for lam in lams:
        out.append(f"λ = {lam:g}:")
        out.append("")
        out.append("| L \\ K | " + " | ".join(str(K) for K in Ks) + " |")
        out.append("|---|" + "---|" * len(Ks))
        for L in Ls:
            cells = []
            for K in Ks:
                r = next(x for x in rows if x["K"] == K and x["L"] == L and x["lambda"] == lam)
                gap = (f" ({100 * r['pairing_gap']:+.1f}%)" if r["pairing_gap"] is not None
                       else "")
                lo = r["dnc_loses"]
                if K % 2 and L == 3 and (K, lam) in odd:
                    ps, dl = odd[(K, lam)]
                    lo = lo or ps["loss"] < dl
                mark = "✗" if r["p_predicts"] and not lo else ("◦" if lo and not
                                                                r["p_predicts"] else "✓")
                cells.append(f"{r['best']}/{r['best_rank']}{gap} {mark}")
            out.append(f"| {L} | " + " | ".join(cells) + " |")
        out.append("")
    out.append(f"Even K: {even_ok}/{len(even)} cells agree with [P] exactly. Odd K has no pairing in "
               "any class-group basis; the reduced families there are DNC, block and polygon. "
               "[P]'s odd-K competitor (pairs plus one unpaired class) is not group-invariant, "
               "so it was minimised in the full torch model (L-BFGS, widths K, "
               "`compare.pairs_singleton`):")
    out.append("")
    if odd:
        out.append("| K | λ | pairs+singleton loss (rank) | DNC loss | gap |")
        out.append("|---|---|---|---|---|")
        for (K, lam), (ps, dl) in sorted(odd.items()):
            out.append(f"| {K} | {lam:g} | {ps['loss']:.8g} ({ps['rank']}) | {dl:.8g} | "
                       f"{100 * (ps['loss'] - dl) / dl:+.2f}% |")
        out.append("")
    if odd_bad:
        out.append("Cells outside [P]'s condition where DNC loses anyway (◦; not disagreements): "
                   + "; ".join(
            f"K={r['K']}, L={r['L']}, λ={r['lambda']:g}"
            for r, lo in odd_bad) + " — at K = 5, L = 3 [P]'s pairs-plus-one competitor "
               "beats DNC at finite λ. The even-K thresholds are the small-λ limit: the Schatten "
               "cost at unit margin (module `compare`) gives pairing < DNC iff "
               "2^(2/L) < 2 − 2/K, exactly [P]'s even-K thresholds; at finite λ the boundary "
               "moves.")
        out.append("")
    else:
        out.append("No disagreement on this grid. Small-λ limit (derived, module `compare`): "
                   "pairing beats DNC iff 2^(2/L) < 2 − 2/K, i.e. K > 4.84 at L = 3 and "
                   "K > 3.41 at L = 4 — [P]'s thresholds.")
        out.append("")
    # finite-lambda shifts worth stating
    from .compare import compare
    r43 = compare(4, 3, 0.1)
    out.append(f"Finite λ moves the boundary: at K = 4, L = 3, λ = 0.1 pairing beats DNC "
               f"({r43['losses'].get('pairing', float('nan')):.6g} vs {r43['dnc_loss']:.6g}), "
               f"although [P]'s threshold says DNC wins.")
    for K in sorted({k for k, _ in odd}):
        beats = [lam for (k, lam), (ps, dl) in sorted(odd.items()) if k == K and ps["loss"] < dl]
        loses = [lam for (k, lam), (ps, dl) in sorted(odd.items()) if k == K and ps["loss"] >= dl]
        out[-1] += (f" K = {K}, L = 3: the full-model pairs+singleton beats DNC at λ ∈ "
                    f"{{{', '.join(f'{x:g}' for x in beats)}}}"
                    + (f", not at λ ∈ {{{', '.join(f'{x:g}' for x in loses)}}}." if loses
                       else "."))
    out.append("")
    costs = maxmargin_costs(8, 6)
    out.append("Small-λ Schatten costs at unit margin, K = 8, L = 6: " + ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(costs.items(), key=lambda kv: kv[1])) + ".")
    out.append("")
    return out


RANK_DEPTHS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48)


def _rank_part(quick: bool) -> list:
    from .manifold import depth_rank_scan
    Ls = (2, 4, 48) if quick else RANK_DEPTHS
    K, lam0 = 8, 0.02
    n = 6 if quick else 40
    scan = depth_rank_scan(K, Ls, lam0, n_starts=n, seed=0)
    ranks = [r["best_rank"] for r in scan]
    tail = [r["best_rank"] for r in scan if r["depth"] >= 4]
    bounded = max(tail) < K - 1 and len(set(tail)) == 1
    deepest = scan[-1]
    out = [f"### [P] Bounded number of non-negligible singular values as depth grows — "
           f"{_status(bounded)}", ""]
    out.append(f"[P]'s regime: weight decay scaled with depth, λ = λ0 / L on every factor "
               f"(λ0 = {lam0:g}: a live mode then costs ≈ λ0 z^(2/L) / 2 → λ0 / 2 as L grows, "
               "a count of modes), K = 8 (walsh + cyclic named families), ce, n = 1. Search: "
               f"every named family plus damped Newton from {n} random starts per depth "
               "(random support and values z_j spread by e^(±2) around DNC's; "
               "`manifold.depth_rank_scan`). Rank = modes with z_j > 1e-3 max z. Note: under "
               "the spectral ansatz the rank is ≤ K − 1 = 7 for ce trivially (mode 0 never "
               "moves), so only a bound well below 7 is informative.")
    out.append("")
    out.append("| L | λ | best point (rank) | best loss | best random start (rank) | random "
               "starts converged | ranks among them | local minima (reduced) | their max rank |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in scan:
        out.append(f"| {r['depth']} | {r['lambda']:.3g} | {r['best_name']} ({r['best_rank']}) | "
                   f"{r['best_loss']:.6g} | "
                   + (f"{r['best_random_loss']:.6g} ({r['best_random_rank']})"
                      if r["best_random_loss"] is not None else "–")
                   + f" | {r['n_random']}/{n} | {', '.join(map(str, r['ranks_random']))} | "
                   f"{r['n_local_min']} | {r['max_rank_local_min']} |")
    out.append("")
    by_depth = ', '.join(f"L={r['depth']}: {r['best_rank']}" for r in scan)
    out.append(f"Best rank by depth: {by_depth}"
               f". From L = 4 to L = {deepest['depth']} the best point has rank "
               f"{sorted(set(tail))} — bounded, well below K − 1. Higher-rank critical points "
               "persist as local minima of the reduced problem (last column), so the bound is a "
               "statement about global minima, as in [P]. No random start found a point below "
               "the best named family" + ("" if all(
                   r["best_random_loss"] is None or r["best_random_loss"] >= r["best_loss"]
                   * (1 - 1e-9) for r in scan) else " — except where the table says otherwise")
               + ".")
    out.append("")
    SUMMARY.append(["[P]", "Bounded number of non-negligible singular values at global minima "
                    "as depth grows (weight decay scaled with depth)", _status(bounded),
                    f"K=8, λ = {lam0:g}/L, named families + {n} Newton starts per depth: best "
                    "rank " + ", ".join(f"L={r['depth']}: {r['best_rank']}" for r in scan)
                    + " (≤ K − 1 = 7 holds trivially under the spectral ansatz)",
                    "`svdyn report --only pu`"])
    return out


def _eig_cell(r) -> str:
    """min eigenvalue / count negative; rounding-level values (|e| < 1e-12, which depend on
    the BLAS thread count) print as 0 so that regeneration is byte-stable."""
    e = r["min_eig"]
    return ("0 (|min| < 1e-12)" if abs(e) < 1e-12 else f"{e:.1e}") + f" / {r['n_negative']}"


def _psd_part(quick: bool) -> list:
    from .hessian import min_eig_vs_lambda
    lams = (1e-1, 1e-2, 1e-3) if quick else (1e-1, 3e-2, 1e-2, 1e-3, 1e-4)
    cases = [(4, 3), (8, 3)] if quick else [(4, 2), (4, 3), (4, 4), (6, 3), (8, 3), (8, 4)]
    out = []
    table = []
    small_ok = True
    for K, L in cases:
        rows = min_eig_vs_lambda(K, L, lams, "dnc", width=K + 1, device="cpu")
        table.append((K, L, rows))
        for r in rows:
            if r["min_eig"] is not None and r["lambda"] <= 1e-2 and r["n_negative"] > 0:
                small_ok = False
    out.append(f"### [P] DNC is a critical point with a PSD Hessian for small λ — "
               f"{_status(small_ok)}")
    out.append("")
    out.append("Full-parameter Hessian (torch, dense, widths K + 1, n = 1, ce) at the exact "
               "DNC critical point: min eigenvalue / number negative (< −1e-9·max|eig|). "
               "`svdyn hessian --classes K --depth L --weight-decay LAM --family dnc`.")
    out.append("")
    out.append("| K, L | " + " | ".join(f"λ={x:g}" for x in lams) + " |")
    out.append("|---|" + "---|" * len(lams))
    for K, L, rows in table:
        out.append(f"| {K}, {L} | " + " | ".join(
            _eig_cell(r) if r["min_eig"] is not None else "–" for r in rows) + " |")
    out.append("")
    saddles = [f"K = {K}, L = {L}, λ = {r['lambda']:g} ({r['n_negative']} negative, min "
               f"{r['min_eig']:.2g})" for K, L, rows in table for r in rows
               if r["min_eig"] is not None and r["n_negative"] > 0]
    gmax = max(r["grad_norm"] for _, _, rows in table for r in rows if r["min_eig"] is not None)
    out.append(("PSD for λ ≤ 1e-2 in every case (the zero eigenvalues are the frame rotations). "
                if small_ok else "Not PSD for some λ ≤ 1e-2. ")
               + ("Saddles: " + "; ".join(saddles) + "." if saddles else "No saddle on this grid.")
               + " Largest reduced gradient norm at these points: "
               + (f"{gmax:.1e}." if gmax >= 1e-14 else "< 1e-14."))
    out.append("")
    nsmall = sum(1 for _, _, rows in table for r in rows
                 if r["min_eig"] is not None and r["lambda"] <= 1e-2)
    SUMMARY.append(["[P]", "DNC is a critical point with a PSD Hessian for small λ",
                    _status(small_ok),
                    f"full Hessian at DNC: 0 negative eigenvalues in {nsmall} cases with "
                    f"λ ≤ 1e-2 (K = 4, 6, 8; L = 2..4); saddles only at λ = 0.1, K = 8; "
                    "reduced gradient " + (f"≤ {gmax:.0e}" if gmax >= 1e-14 else "< 1e-14"),
                    "`svdyn hessian --classes 8 --depth 3 --weight-decay 0.01 --family dnc`"])
    return out


def _basin_part(quick: bool) -> list:
    from .manifold import family_dimensions
    cases = [(4, 3, (4, 6))] if quick else [(4, 3, (4, 6, 8, 10)), (8, 4, (8, 10, 12))]
    lam = 1e-3
    out = []
    tabs, ok_all, slopes, exc, cf_ok, inres = [], True, [], [], True, 0.0
    for K, L, ws in cases:
        rows = family_dimensions(K, L, lam, ws)
        fams = sorted({r["family"] for r in rows},
                      key=lambda f: -next(r["rank"] for r in rows if r["family"] == f))
        tabs.append((K, L, ws, rows, fams))
        dnc = {r["width"]: r["null_dim"] for r in rows if r["family"] == "dnc"}
        others = [r for r in rows if r["family"] != "dnc"]
        ok_all &= all(dnc[r["width"]] >= r["null_dim"] for r in others)
        exc.extend(r["excess"] for r in rows)
        cf_ok &= all(r["orbit_dim"] == r["orbit_dim_closed_form"] for r in rows)
        inres = max([inres] + [r["orbit_in_null"] for r in rows])
        for f in fams:
            d = [next(r["null_dim"] for r in rows if r["family"] == f and r["width"] == w)
                 for w in ws]
            slopes.append((K, L, f, (d[-1] - d[0]) / (ws[-1] - ws[0])))
    out.append(f"### [P] DNC is more prevalent in the landscape (dimension of the critical sets) "
               f"— {_status(ok_all)}")
    out.append("")
    out.append("Measured as [P] means it: the dimension of the set of critical points through "
               "each family's point in the *full* parameter space, as the width grows. At the "
               "exact reduced critical point (ce, λ = 1e-3, n = 1, all hidden widths d), the flat "
               "directions of the dense full Hessian (|eig| ≤ 1e-8 max) are counted and compared "
               "with the symmetry orbit F_l → O_l F_l O_(l−1)^T (numerical rank of its generators; "
               "closed form Σ_l (r d − r(r+1)/2) for rank r, stabiliser Π O(d − r)); `excess` = "
               "flat − orbit; `neg` = negative eigenvalues (saddles); `gap` = smallest non-flat "
               "|eig| / max. `manifold.family_dimensions`.")
    out.append("")
    for K, L, ws, rows, fams in tabs:
        out.append(f"K = {K}, L = {L}: flat dimension (excess over the orbit, negative "
                   "eigenvalues) by width")
        out.append("")
        out.append("| family (rank, loss) | " + " | ".join(f"d={w}" for w in ws)
                   + " | dim / width | min gap |")
        out.append("|---|" + "---|" * (len(ws) + 2))
        for f in fams:
            rr = [next(r for r in rows if r["family"] == f and r["width"] == w) for w in ws]
            sl = next(x[3] for x in slopes if x[:3] == (K, L, f))
            out.append(f"| {f} ({rr[0]['rank']}, {rr[0]['loss']:.6g}) | " + " | ".join(
                f"{r['null_dim']} ({r['excess']:+d}, {r['n_negative']})" for r in rr)
                + f" | {sl:.1f} | {min(r['gap'] for r in rr):.1e} |")
        out.append("")
    out.append(("Reading: every critical set is exactly one symmetry orbit (excess 0 in every "
                "cell" if not any(exc) else f"Reading: excess over the orbit ranges "
                f"{min(exc)}..{max(exc)}; where it is 0 the critical set is one symmetry orbit (")
               + f"; orbit tangents are Hessian-null to {inres:.0e}; orbit rank = closed form "
               f"in {'every' if cf_ok else 'NOT every'} cell), of dimension Σ_l (r d − "
               "r(r+1)/2): it grows with width at rate (L − 1)·r, largest for DNC (r = K − 1; tied only by "
               "families of the same rank, such as the K = 4 hybrid saddle). "
               "So DNC's critical set is the highest-dimensional one at every width, and the "
               "lead grows with width — while the lower-rank families have the lower loss "
               "where [P] says DNC is not optimal. The share of random *spectral* starts that "
               "flow to each family (previous report) does not see this dimension and is "
               "dropped.")
    out.append("")
    d_rows = [x for x in slopes if x[2] == "dnc"]
    SUMMARY.append(["[P]", "DNC is more prevalent in the landscape (larger solution set)",
                    _status(ok_all),
                    "flat dimension of the full Hessian = orbit dimension Σ_l (r d − r(r+1)/2) "
                    "(excess 0); growth per unit width: " + "; ".join(
                        f"K={K}, L={L}: " + ", ".join(f"{f} {sl:.0f}" for k2, l2, f, sl in slopes
                                                     if (k2, l2) == (K, L))
                        for K, L, _, _, _ in tabs), "`svdyn report --only pu`"])
    return out


def _gd_part() -> list:
    from .critical import critical_points
    from .hessian import full_gd_to_convergence, hessian_at
    out = []
    rows = []
    worst = 0.0
    for K, L, lam, fam, loss, n in [(4, 3, 1e-2, "dnc", "ce", 1), (4, 3, 1e-2, "pairing", "ce", 1),
                                   (4, 4, 1e-2, "pairing", "ce", 2), (4, 3, 1e-2, "dnc", "mse", 1)]:
        spec = ModelSpec(K, depth=L, weight_decay=lam, loss=loss, samples_per_class=n)
        p = critical_points(spec, fam)[0]
        h = hessian_at(spec, p.s, K + 1, device="cpu")
        s0 = p.s * 0.8
        s0[0] *= 1.1
        r = full_gd_to_convergence(spec, s0, K + 1, 1.0 / h["max_eig"], max_steps=20000,
                                   tol=1e-12)
        d = abs(r["loss"] - p.loss)
        worst = max(worst, d)
        rows.append(f"| {loss} | {K} | {L} | {n} | {lam:g} | {fam} | {p.loss:.12g} | "
                    f"{r['loss']:.12g} | {d:.1e} | {r['steps']} |")
    out.append(f"### Reduced critical points = full-matrix GD to convergence — "
               f"{_status(worst <= 1e-8)}")
    out.append("")
    out.append("Full-matrix GD (torch, widths K + 1, lr = 1/λ_max) from aligned but unbalanced "
               "starts (0.8·s*, first factor ×1.1) until the full gradient norm < 1e-12:")
    out.append("")
    out.append("| loss | K | L | n | λ | family | reduced Newton loss | full GD loss | "
               "difference | steps |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    out.extend(rows)
    out.append("")
    SUMMARY.append(["[P], [U]", "Reduced critical points are critical points of the full model",
                    _status(worst <= 1e-8),
                    f"full-matrix GD to |grad| < 1e-12 reaches the reduced Newton loss within "
                    f"{worst:.1e} (4 cases, ce and mse)", "`svdyn report --only pu`"])
    return out


def _mse_part(quick: bool) -> list:
    from .compare import all_families
    from .hessian import expand, gradient_alignment, hessian_at, mse_dnc_closed_form
    out = []
    # U0: mse global optimum among families is the orthogonal frame
    ok = True
    cells = []
    for K, L, lam in [(4, 2, 1e-2), (4, 3, 1e-2), (8, 4, 1e-3), (6, 3, 1e-3)]:
        fams = all_families(K, L, lam, loss="mse")
        best = min(fams, key=lambda k: fams[k].loss)
        ok &= best == "dnc"
        cells.append(f"K={K}, L={L}, λ={lam:g}: {best} ({fams[best].loss:.6g}, rank "
                     f"{fams[best].rank})")
    SUMMARY.append(["[U]", "mse + L2: deep NC (orthogonal frame) is the best critical point",
                    _status(ok), "; ".join(cells), "`svdyn critical --loss mse ...`"])
    out.append(f"### [U] mse: deep NC (orthogonal frame) is the best critical point — "
               f"{_status(ok)}")
    out.append("")
    out.append("mse separates over modes, so every mode has the same optimum and the best point "
               "is all-on (orthogonal frame, z_j equal incl. the constant mode) or all-off. "
               + "; ".join(cells) + ".")
    out.append("")
    # U1: closed form of the outliers
    errs, layer_errs, lines = [], [], []
    cases = [(4, 3, 1e-2, 1, 6), (4, 2, 1e-2, 2, 5), (3, 4, 5e-3, 2, [4, 5, 6]),
             (8, 3, 1e-3, 1, 9)]
    if quick:
        cases = cases[:2]
    for K, L, lam, n, w in cases:
        spec = ModelSpec(K, depth=L, weight_decay=lam, loss="mse", samples_per_class=n,
                         group="" if K & (K - 1) == 0 else "cyclic")
        cf = mse_dnc_closed_form(spec, w)
        h = hessian_at(spec, cf["s"] * np.ones((L, K)), w, device="cpu", layers=True)
        err = float(np.max(np.abs(expand(cf["full"]) - np.asarray(h["eigenvalues"]))))
        le = 0.0
        for l, ev in enumerate(h["layer_eigenvalues"]):
            ev = np.sort(ev)[::-1]
            c = cf["layer_outlier_counts"][l]
            le = max(le, float(np.max(np.abs(ev[:c] - cf["layer_outlier"]))),
                     float(np.max(np.abs(ev[c:] - lam))) if c < len(ev) else 0.0)
        errs.append(err)
        layer_errs.append(le)
        o = h["outliers"]
        lines.append(f"| {K} | {L} | {n} | {lam:g} | {h['widths']} | {h['n_params']} | "
                     f"{cf['outlier_values'][0]:.6g} ×{K * (K - 1) // 2}, "
                     f"{cf['outlier_values'][1]:.6g} ×{K * (K + 1) // 2} | {o['count']} | "
                     f"{cf['layer_outlier']:.6g} | {err:.1e} | {le:.1e} |")
    ok = max(errs) < 1e-10 and max(layer_errs) < 1e-10
    SUMMARY.append(["[U]", "At deep NC the layer Hessians have K² equal outliers over a bulk",
                    _status(ok), f"closed form vs torch, {len(cases)} cases: whole spectrum "
                    f"within {max(errs):.0e} (full), {max(layer_errs):.0e} (layers)",
                    "`svdyn hessian --loss mse --family dnc ...`"])
    out.append(f"### [U] K² outlier eigenvalues at mse deep NC (closed form) — {_status(ok)}")
    out.append("")
    out.append("Derived (module `hessian`): with s the DNC value ((√n − s^L) s^(L−2) = Nλ) and "
               "a = s^(2L−2)/N, each *layer* Hessian has K² equal outliers a + λ (layer 1: KN) "
               "over a bulk at λ; the full Hessian has K² outliers, L·a + L·λ (×K(K−1)/2) and "
               "L·a − (L−2)λ (×K(K+1)/2), then a + λ (×K(N−K)), 2λ, λ and 0. Max |error| of "
               "the whole predicted spectrum against torch (`svdyn hessian --loss mse "
               "--family dnc`):")
    out.append("")
    out.append("| K | L | n | λ | widths | params | predicted full outliers | detected "
               "outliers | layer outlier a+λ | full max err | layer max err |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    out.extend(lines)
    out.append("")
    # U2: [U]'s statement: a layer's data-term gradient at DNC in that layer's outliers
    from .manifold import data_gradient_alignment
    ucases = [(4, 3, 1e-2, 1, 6), (4, 2, 1e-2, 2, 5), (3, 4, 5e-3, 2, [4, 5, 6]),
              (8, 3, 1e-3, 1, 9)][:2 if quick else 4]
    urows, umin = [], 1.0
    for K, L, lam, n, w in ucases:
        spec = ModelSpec(K, depth=L, weight_decay=lam, loss="mse", samples_per_class=n,
                         group="" if K & (K - 1) == 0 else "cyclic")
        al = data_gradient_alignment(spec, w)
        umin = min(umin, min(a["alignment"] for a in al))
        urows.append(f"| {K} | {L} | {n} | {lam:g} | " + ", ".join(
            f"{a['alignment']:.12f}" for a in al) + " | " + ", ".join(
            f"{a['baseline']:.3f}" for a in al) + " |")
    u_ok = umin > 1 - 1e-9
    out.append(f"### [U] The gradient at deep NC lies in the layer Hessians' outlier eigenspace "
               f"— {_status(u_ok)}")
    out.append("")
    out.append("[U]'s statement: at deep NC (mse + λ), each layer's *data-term* gradient "
               "∂D/∂F_l lies in the span of that layer Hessian block's top outlier "
               "eigenvectors (K² of them; layer 1: K N). Measured: ||P_out g_l||² / ||g_l||² per "
               "layer (torch autograd gradient, dense layer Hessian; "
               "`manifold.data_gradient_alignment`); baseline = outlier count / layer dimension "
               "(a random direction). Closed form: g_l = −λ F_l, an in-frame direction, so the "
               "fraction is exactly 1.")
    out.append("")
    out.append("| K | L | n | λ | fraction per layer | random baseline per layer |")
    out.append("|---|---|---|---|---|---|")
    out.extend(urows)
    out.append("")
    SUMMARY.append(["[U]", "Gradients align with the layer Hessians' outlier eigenspace (at "
                    "deep NC)", _status(u_ok), f"data-term gradient fraction in the outlier "
                    f"span ≥ {umin:.12f} in every layer of {len(ucases)} cases (closed form 1; "
                    "random baseline 0.1–0.7)", "`svdyn report --only pu`"])
    # U2: gradient alignment
    spec = ModelSpec(4, depth=3, weight_decay=1e-2, loss="mse")
    al = gradient_alignment(spec, 6, lr=0.5)
    early = [a for a in al if a["step"] <= 10]
    late = [a for a in al if a["step"] >= 80]
    early_ok = all(a["alignment"] > 2 * a["random_baseline"] for a in early)
    late_ok = all(a["alignment"] > 2 * a["random_baseline"] for a in late)
    out.append("### Training-time quantity (not [U]'s statement): gradient in the top-K² "
               "eigenspace of the *full* Hessian along GD — "
               + ("aligned early only" if early_ok and not late_ok else
                  "aligned throughout" if early_ok else "not aligned"))
    out.append("")
    out.append("mse, K = 4, L = 3, λ = 1e-2, widths 6 (84 parameters), full-batch GD lr 0.5 from "
               "Gaussian factors (scale 0.3): fraction of ||grad||² in the top-K² = 16 "
               f"eigenvectors of the full Hessian (random direction: "
               f"{al[0]['random_baseline']:.3f}):")
    out.append("")
    out.append("| step | " + " | ".join(str(a["step"]) for a in al) + " |")
    out.append("|---|" + "---|" * len(al))
    out.append("| loss | " + " | ".join(f"{a['loss']:.4f}" for a in al) + " |")
    out.append("| alignment | " + " | ".join(f"{a['alignment']:.3f}" for a in al) + " |")
    out.append("")
    out.append("Aligned while the loss falls fast (early), then the residual gradient lives in "
               "the slow bulk: full-batch GD removes the stiff outlier components first, so near "
               "convergence this fraction is ~0 (no SGD noise, lr below the edge of stability). "
               "This is a training-time property of GD, not [U]'s statement at DNC above.")
    SUMMARY.append(["(training)", "Full gradient in the full Hessian's top-K² space along GD "
                    "(mse, K=4, L=3; not [U]'s statement)",
                    "early only" if early_ok and not late_ok else str(early_ok and late_ok),
                    ", ".join(f"step {a['step']}: {a['alignment']:.2f}" for a in al[::2])
                    + f" (random {al[0]['random_baseline']:.2f})", "`svdyn report --only pu`"])
    out.append("")
    return out


SUMMARY: list = []    # summary-table rows appended by the parts while they run


def section_parts(quick: bool = False) -> tuple[str, list]:
    """Markdown for the [P] / [U] claims and their summary-table rows (paper, claim, verdict,
    evidence, command); every number recomputed (``quick``: smaller grids)."""
    SUMMARY.clear()
    parts = ["## [P] and [U]: weight decay, critical families, Hessian spectra", "",
             "Regenerate: `svdyn report --only pu` (this section); single cases: "
             "`svdyn critical ...`, `svdyn hessian ...`. Conventions: depth L counts every "
             "factor (features included; [P]/[U]'s L is ours − 1), mean loss, "
             "weight decay λ on every factor. Torch device: cpu, float64.", ""]
    parts += _threshold_part(quick)
    parts += _rank_part(quick)
    parts += _psd_part(quick)
    parts += _basin_part(quick)
    parts += _gd_part()
    parts += _mse_part(quick)
    rows = list(SUMMARY)
    SUMMARY.clear()
    return "\n".join(parts), rows


def section(quick: bool = False) -> str:
    """Markdown for the [P] / [U] claims (see :func:`section_parts`)."""
    return section_parts(quick)[0]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = section(quick="--quick" in argv)
    paths = [a for a in argv if not a.startswith("--")]
    if paths:
        from pathlib import Path
        Path(paths[0]).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
