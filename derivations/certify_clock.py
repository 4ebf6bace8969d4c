"""The y clock of the certified limit classifier (``svdyn/analysis/certify.py``), derived, checked.

Balanced unregularised CE at depth L: factors s_l = z^(1/L) obey ds_l/dt = g prod_{m != l} s_m
(g = -dloss/dz of the mode; MODEL.md section 2). Checked here, symbolically in L where possible:

1. dz/dt = L z^(2 - 2/L) g (balanced), and for y = z^(-(L-2)/L): dy/dt = -(L-2) g exactly.
2. Time change dtau = e^(-m_min) dt: dy/dtau = -(L-2) g e^(m_min), and every scaled softmax weight
   w_c = e^(-(m_c - m_min)) / (1 + sum e^(-m)) lies in (0, 1].
3. tau* = int^inf e^(-m_min) dt is finite iff L > 2: late in training e^(-m_min) ~ loss
   ~ 1 / (t (log t)^(2-2/L)), and int_T^inf dt / (t (log t)^b) = (log T)^(1-b) / (b - 1) for b > 1,
   divergent for b <= 1; b = 2 - 2/L > 1 iff L > 2.
4. Survivors reach y = 0 at tau* and fall linearly, y_j = a_j (tau* - tau) + O((tau* - tau)^2):
   their ratio y_j / y_min converges (ratio exponent -> 0); a dying mode stops at y_j* > 0, its
   ratio is y_j* / delta + O(1) and the exponent over stops delta, delta/q tends to 1.
5. The analytic Jacobian used by ``svdyn/analysis/yclock.py``:
   d ghat_j / d m_k = ghat_j ([k = argmin] + p_k) - M[k, j] w_k (checked on K = 4 walsh).
6. The frozen-scale clock of the limit stage: z_j = lam exp(a (w_j - l(w))), w = log y,
   l = log Y = -log sum_i e^(-w_i), a = -L/(L-2). It is invariant under w -> w + c (so y can
   be rescaled to y_min = 1 and the stops have no floor); dz_i/dw_k = a z_i ([i = k] - r_k),
   r = Y / y; with lam = Y^(-L/(L-2)) at the hand-off it equals the true z_j = y_j^(-L/(L-2))
   there; and the Jacobian's extra term uses sum_k (d ghat_j/d m_k) m_k
   = ghat_j sum_k p_k m_k - sum_k M[k, j] w_k (m_k - m_min) (checked on K = 3 and K = 4 walsh).
"""
from __future__ import annotations

import sympy as sp


def derive() -> dict:
    out = {}
    L = sp.Symbol("L", positive=True)
    z, g, t = sp.symbols("z g t", positive=True)
    # 1. balanced z-flow from the factor flow, at explicit depths (symbolic L needs the product)
    ok = True
    for Lv in (2, 3, 4, 5, 7):
        s = sp.Symbol("s", positive=True)
        # every factor equals s; dz/dt = sum_l (prod_{m != l} s) * (g prod_{m != l} s)
        dz = Lv * s ** (Lv - 1) * g * s ** (Lv - 1)
        rhs = Lv * z ** (2 - sp.Rational(2, Lv)) * g
        ok &= sp.simplify(dz.subs(s, z ** sp.Rational(1, Lv)) - rhs) == 0
    out["balanced_zflow_ok"] = bool(ok)
    zf = sp.Function("z")(t)
    y = zf ** (-(L - 2) / L)
    dy = sp.diff(y, t).subs(sp.Derivative(zf, t), L * zf ** (2 - 2 / L) * g)
    out["dy_dt"] = sp.simplify(sp.powsimp(sp.expand_power_base(dy, force=True), force=True))
    out["dy_dt_ok"] = sp.simplify(out["dy_dt"] + (L - 2) * g) == 0
    # inverse map z = y^(-L/(L-2))
    yy = sp.Symbol("y", positive=True)
    dL = sp.Symbol("d", positive=True)  # L = 2 + d > 2
    Ld = 2 + dL
    out["z_of_y_ok"] = sp.simplify(sp.powsimp((yy ** (-Ld / (Ld - 2))) ** (-(Ld - 2) / Ld),
                                               force=True) - yy) == 0
    # 2. time change
    mmin = sp.Symbol("m_min", positive=True)
    out["dy_dtau"] = sp.simplify(-(L - 2) * g / sp.exp(-mmin))
    m1, m2, m3 = sp.symbols("m1:4", positive=True)
    ms = [m1, m2, m3]
    w = [sp.exp(-(m - m1)) / (1 + sum(sp.exp(-x) for x in ms)) for m in ms]  # m1 = min
    # on m_c >= m_1 every w_c is in (0, 1]: spot check on a grid (m1 the minimum)
    import itertools
    mx = 0.0
    for a, b, c in itertools.product((0.0, 0.5, 3.0), (0.0, 1.0, 40.0), (0.0, 2.0)):
        vals = {m1: c, m2: c + a, m3: c + b}
        mx = max(mx, max(float(wc.subs(vals)) for wc in w))
    out["weights_max"] = mx
    out["weights_bounded_ok"] = 0 < mx <= 1
    # 3. finiteness of tau*: int_T^oo dt / (t log(t)^b)
    b, T, u = sp.symbols("b T u", positive=True)
    Ib = sp.integrate(u ** (-(2 - 2 / L)), (u, sp.log(T), sp.oo), conds="none")
    out["tau_star_L"] = sp.simplify(Ib)
    out["tau_star_L3"] = sp.integrate(u ** (-(2 - sp.Rational(2, 3))), (u, sp.log(T), sp.oo))
    out["tau_star_L2"] = sp.integrate(u ** (-1), (u, sp.log(T), sp.oo))
    out["tau_star_ok"] = bool(not out["tau_star_L3"].has(sp.oo, sp.zoo, sp.nan)
                              and out["tau_star_L2"].has(sp.oo))
    out["exponent_gt1_iff"] = sp.solve(sp.Gt(2 - 2 / L, 1), L)
    # 4. ratio exponents: survivors y = a (T - tau) + c (T - tau)^2, dying y = ys + k (T - tau)
    h, q, a1, a2, c1, ys, k = sp.symbols("h q a1 a2 c1 ystar k", positive=True)
    ymin = a1 * h  # the fastest survivor, exactly linear
    surv = a2 * h + c1 * h ** 2
    dying = ys + k * h
    rho = lambda yj, hh: (yj / ymin).subs(h, hh)  # noqa: E731
    ex_s = sp.log(rho(surv, h / q) / rho(surv, h)) / sp.log(q)
    ex_d = sp.log(rho(dying, h / q) / rho(dying, h)) / sp.log(q)
    out["exponent_survivor_limit"] = sp.limit(ex_s, h, 0, "+")
    out["exponent_dying_limit"] = sp.simplify(sp.limit(ex_d, h, 0, "+"))
    out["exponents_ok"] = (out["exponent_survivor_limit"] == 0
                           and out["exponent_dying_limit"] == 1)
    # 5. Jacobian of the scaled field on K = 4 walsh (margins m_c = (1/K) sum_j z_j (1 - C[c, j]))
    H = sp.Matrix([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])
    M = (sp.ones(3, 4) - H[1:, :]) / 4
    mm = sp.symbols("n1:4", real=True)
    den = 1 + sum(sp.exp(-x) for x in mm)
    p = [sp.exp(-x) / den for x in mm]
    imin = 0  # region where n1 is the minimum
    wv = [pc * sp.exp(mm[imin]) for pc in p]
    ghat = [sum(M[c, j] * wv[c] for c in range(3)) for j in range(4)]
    okj = True
    for j in range(4):
        for kk in range(3):
            lhs = sp.diff(ghat[j], mm[kk])
            rhs = ghat[j] * ((1 if kk == imin else 0) + p[kk]) - M[kk, j] * wv[kk]
            okj &= sp.simplify(lhs - rhs) == 0
    out["jacobian_ok"] = bool(okj)
    # 6. frozen scale: the identity behind the extra Jacobian term (same K = 4 field)
    okt = True
    for j in range(4):
        lhs = sum(sp.diff(ghat[j], mm[kk]) * mm[kk] for kk in range(3))
        rhs = ghat[j] * sum(p[kk] * mm[kk] for kk in range(3)) \
            - sum(M[kk, j] * wv[kk] * (mm[kk] - mm[imin]) for kk in range(3))
        okt &= sp.simplify(lhs - rhs) == 0
    out["frozen_identity_ok"] = bool(okt)
    ws = sp.symbols("w1:4", real=True)
    cc, lam = sp.symbols("c lam", positive=True)
    aa = -Ld / (Ld - 2)
    ell = lambda v: -sp.log(sum(sp.exp(-x) for x in v))  # noqa: E731
    zfr = [lam * sp.exp(aa * (wi - ell(ws))) for wi in ws]
    shifted = [zi.subs({wi: wi + cc for wi in ws}, simultaneous=True) for zi in zfr]
    out["frozen_shift_ok"] = all(sp.simplify(sp.expand_log(a_ - b_, force=True)) == 0
                                 for a_, b_ in zip(shifted, zfr))
    r = [sp.exp(-x) / sum(sp.exp(-v) for v in ws) for x in ws]
    okd = True
    for i in range(3):
        for kk in range(3):
            lhs = sp.diff(zfr[i], ws[kk])
            rhs = aa * zfr[i] * ((1 if i == kk else 0) - r[kk])
            okd &= sp.simplify(lhs - rhs) == 0
    out["frozen_dz_ok"] = bool(okd)
    ys_ = sp.symbols("y1:4", positive=True)
    Yh = 1 / sum(1 / v for v in ys_)
    pz = Ld / (Ld - 2)
    zhand = [Yh ** (-pz) * (v / Yh) ** (-pz) for v in ys_]
    out["frozen_handoff_ok"] = all(sp.simplify(sp.powsimp(sp.expand_power_base(
        zh - v ** (-pz), force=True), force=True)) == 0 for zh, v in zip(zhand, ys_))
    out["all_ok"] = bool(out["balanced_zflow_ok"] and out["dy_dt_ok"] and out["z_of_y_ok"]
                         and out["weights_bounded_ok"] and out["tau_star_ok"]
                         and out["exponents_ok"] and out["jacobian_ok"]
                         and out["frozen_identity_ok"] and out["frozen_shift_ok"]
                         and out["frozen_dz_ok"] and out["frozen_handoff_ok"])
    return out


def section(R) -> None:
    """Append the REPORT.md section (``derivations.run_all.Run`` interface)."""
    d = derive()
    R.w("## 7. The y clock of the certified limit classifier")
    R.w()
    R.w("Balanced CE, depth L: $\\dot z=Lz^{2-2/L}g$ (from the factor flow, L = 2, 3, 4, 5, 7) "
        f"{R.check(d['balanced_zflow_ok'])}. With $y=z^{{-(L-2)/L}}$: "
        f"$\\dot y={sp.latex(d['dy_dt'])}$ {R.check(d['dy_dt_ok'])} (inverse "
        f"$z=y^{{-L/(L-2)}}$ {R.check(d['z_of_y_ok'])}). With $d\\tau=e^{{-m_{{\\min}}}}dt$: "
        f"$dy/d\\tau={sp.latex(d['dy_dtau'])}$, the scaled weights "
        "$e^{-(m_c-m_{\\min})}/(1+\\sum e^{-m})$ lie in $(0,1]$ (max on a grid "
        f"{d['weights_max']:.3g}) {R.check(d['weights_bounded_ok'])}.")
    R.w()
    R.w("$\\tau^*=\\int^\\infty e^{-m_{\\min}}dt$ with "
        "$e^{-m_{\\min}}\\sim 1/(t(\\log t)^{2-2/L})$: "
        f"$\\int_{{\\log T}}^\\infty u^{{-(2-2/L)}}du={sp.latex(d['tau_star_L'])}$; finite at "
        f"L = 3 (${sp.latex(d['tau_star_L3'])}$), divergent at L = 2 "
        f"(${sp.latex(d['tau_star_L2'])}$) {R.check(d['tau_star_ok'])}; the exponent exceeds 1 "
        f"iff ${sp.latex(d['exponent_gt1_iff'])}$. So for L > 2 every $y_j$ decreases to a limit "
        "at finite $\\tau^*$ ($t=\\infty$): survivors to 0, dying modes to $y_j^*>0$.")
    R.w()
    R.w("Ratio exponents over stops $\\delta\\to\\delta/q$, "
        "$e_j=\\log(\\rho_j(\\delta/q)/\\rho_j(\\delta))/\\log q$, $\\rho_j=y_j/y_{\\min}$: "
        f"survivor ($y_j=a\\,h+c\\,h^2$, $h=\\tau^*-\\tau$) $\\to {d['exponent_survivor_limit']}$, "
        f"dying ($y_j=y^*+k\\,h$) $\\to {d['exponent_dying_limit']}$ "
        f"{R.check(d['exponents_ok'])}. Jacobian of the scaled field used by the stiff clock "
        "(`svdyn/analysis/yclock.py`), $\\partial\\hat g_j/\\partial m_k=\\hat g_j([k=\\arg\\min]"
        f"+p_k)-M_{{kj}}w_k$ (K = 4 walsh) {R.check(d['jacobian_ok'])}.")
    R.w()
    R.w("The limit stage's frozen-scale clock, $z_j=\\lambda e^{a(w_j-\\ell(w))}$, "
        "$w=\\log y$, $\\ell=\\log Y=-\\log\\sum_i e^{-w_i}$, $a=-L/(L-2)$: invariant under "
        f"$w\\to w+c$ {R.check(d['frozen_shift_ok'])}; "
        "$\\partial z_i/\\partial w_k=a z_i([i=k]-r_k)$, $r=Y/y$ "
        f"{R.check(d['frozen_dz_ok'])}; with $\\lambda=Y^{{-L/(L-2)}}$ at the hand-off it equals "
        f"the true $z_j=y_j^{{-L/(L-2)}}$ {R.check(d['frozen_handoff_ok'])}; the Jacobian's extra "
        "term uses $\\sum_k(\\partial\\hat g_j/\\partial m_k)m_k=\\hat g_j\\sum_k p_k m_k-"
        "\\sum_k M_{kj}w_k(m_k-m_{\\min})$ (K = 4 walsh) "
        f"{R.check(d['frozen_identity_ok'])}.")
    R.w()


if __name__ == "__main__":
    import time
    t0 = time.perf_counter()
    r = derive()
    for key, v in r.items():
        print(f"{key}: {v}")
    print(f"{time.perf_counter() - t0:.1f} s")
