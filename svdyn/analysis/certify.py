"""Certified limit geometry: which modes survive, the limit direction, and its KKT certificate.

The clock (derived in ``derivations/certify_clock.py``). Balanced, unregularised CE, depth
L >= 3: ``dz_j/dt = L z_j^(2-2/L) g_j`` with ``g = -dloss/dz >= 0``. For
``y_j = z_j^(-(L-2)/L)`` this is exactly ``dy_j/dt = -(L-2) g_j``, and with the time change
``dtau = e^(-m_min) dt`` the field ``dy_j/dtau = -(L-2) g_j e^(m_min)`` is bounded (every
weight ``e^(-(m_c - m_min))`` lies in (0, 1]). Every ``y_j`` decreases monotonically, so it
has a limit ``y_j* >= 0``; ``tau* = int_0^inf e^(-m_min) dt`` is finite for L > 2 (the
integrand falls like ``1 / (t (log t)^(2-2/L))``) and infinite for L = 2. Survivors reach
``y_j = 0`` at ``tau*`` (``z_j -> inf``), dying modes stop at ``y_j* > 0`` (``z_j`` converges).
Near ``tau*`` survivors fall linearly, ``y_j ~ (L-2) ghat_j* (tau* - tau)``, so the ratio
``rho_j = y_j / y_min`` converges, while a dying mode's ratio grows like ``y_j* / y_min``.

The classifier integrates the y clock (the stiff Rosenbrock integrator of ``yclock.py``; the
engine's explicit ``svdyn.integrate.flow_y`` needs ~z_max steps there, measured 75 690 vs
1 598 median steps to z = 1e6 on K = 8, L = 3) to stops ``y_min = delta_1 > ... > delta_S``
(a factor ``q`` apart, the last at ``z_final^(-(L-2)/L)``) and reads the *ratio exponent*

    e_j = log(rho_j(S) / rho_j(S-1)) / log(delta_(S-1) / delta_S)    in [0, 1]

over the last pair (and over the previous pair, ``e_j'``): survivors -> 0 (``rho_j``
converges), dying modes -> 1 (``rho_j ~ y_j* / delta``), and modes that grow but slower than
the survivors (they feed constraints with zero multiplier at a degenerate vertex) sit at a
steady exponent in (0, 1). A mode is *live* when ``e_j <= LIVE_MAX``, *out of the support*
when ``e_j >= OUT_MIN`` and not falling (``e_j' - e_j <= FALL_TOL``); anything else is in
transit and the start is undecided. The surviving direction ``zhat`` (out modes set to 0,
scaled to min margin 1) is then certified as a KKT point of

    min sum_j z_j^(2/L)   s.t.  m_c(z) >= 1,  z >= 0   (paired modes equal):

the candidate active set ``A = {c : m_c(zhat) <= 1 + ACTIVE_TOL}``; if its rows restricted to
the support have full column rank the limit is the *vertex* ``z_v`` solving ``m_A(z_v) = 1``
(least squares, exact up to rounding; the active set is then recomputed at ``z_v`` with
slack ``EXACT_TOL``) and ``||zhat - z_v|| / ||z_v||`` must be below
``DIRECTION_TOL``; multipliers ``mu >= 0`` come from NNLS on the stationarity equations
``(2/L) z_j^(2/L - 1) = sum_{c in A} mu_c dm_c/dz_j`` (j in the support; off the support the
objective's derivative is +inf, so stationarity holds there for every mu), complementary
slackness is ``max_c mu_c |m_c(z_v) - 1|`` on A, and the *first-order gap*
``min { grad f . d : M_A d >= 0, 1^T M_A d = 1 }`` (an LP) is positive iff the vertex is a
strict local minimum.

The limit stage. A start left undecided at the first stage's last stop for a reason a longer
clock can resolve (a mode in transit, a direction not yet within tolerance, a saddle face not
yet left, the step limit) is usually one that lingers near a saddle of the direction dynamics:
its exit takes a fixed span of ``s = -log y_min`` (exponential in s), which in z is a power
(measured z_j / z_max ~ z_max^-0.3), so the true clock needs z far past what float64 resolves
(``Z_CAP = 1e14``: the weights need the gaps m_c - m_min of margins ~z to O(1e-3) absolute).
The limit stage continues it in the *frozen-scale* clock (``yclock.frozen_flow_y``): the same
field and clock with ``z_j = lam (y_j / Y)^(-L/(L-2))``, ``Y = 1 / sum 1/y``, and ``lam =
Y^(-L/(L-2))`` fixed at the hand-off state (where it equals the true z exactly;
``derivations/certify_clock.py`` item 6). The field depends on y only through y / Y, so y is
rescaled to y_min = 1 and the stops ``q^-1 .. q^-LIMIT_DECADES`` have no floor. What it keeps
and what it changes: the true field's softmax weights sit on the constraints tied within O(1)
in absolute margin, i.e. within O(1/z) relative, and that width shrinks as z grows; the frozen
clock holds it at its hand-off value ~1/lam (~1e-9 after the first stage), while the ratio
mechanics are the true clock's (survivors' ratios converge, a dying mode's ratio grows like 1 /
y_min because its factor Y / y_j -> 0). So its direction dynamics differ from the true flow's
by a relative O(1/lam), and only a start that close to a basin boundary (closer than the first
stage's own error, rtol 1e-7) should be sent the other way: an argument, not a proof; the
agreement checks below are the evidence. The stage reads the same ratio-exponent rules at its
last three stops and the same certificate; ``z_final`` records the equivalent z of its last
stop (``(y_min q^-D)^(-L/(L-2))``, e.g. 1e27 at L = 3). Measured (``NUMBA_NUM_THREADS=1 python
bench/certify_agreement.py 16 0.1 300 3 3``, walsh K = 16, L = 3, eps = 0.1): 0 of 300
undecided (the old second stage of the true clock to z = 1e11: 15); the same certified limit as
a readout of every start through the limit stage at a 100x smaller threshold on 300 of 300, and
as the old two-stage classifier on the 285 it decides; 17.2 vs 45.9 CPU s (bench/RESULTS.md
"limit stage" has more cells: 0 undecided in every Monte Carlo cell of the report, agreement
2400 of 2400 there). The true clock's second stage stays available (``z_retry``, off by
default; run before the limit stage when set).

A limit is
reported as a code (or NC) only when all of: integration ok, every mode decided, vertex,
feasible, direction within tolerance, stationarity residual below ``KKT_TOL``, and gap > 0;
otherwise the result is ``undecided`` with the reason. A non-vertex KKT point of the concave
problem is never a local minimum (the objective is strictly concave along the face), so the
flow reaches it only from a measure-zero set: a start on a basin boundary (a tie) comes back
``undecided: saddle``, not labelled.

Depth 2: every balanced start with all non-constant modes > 0 converges to NC (the theorem
of [H]); the max-margin problem is convex there and NC its unique optimum, so the certificate
is computed for NC itself (``tests/test_certify.py`` checks the direction numerically).

Unbalanced starts (``s_l^2 - s_m^2 = d`` conserved, not 0): the state is first flowed in
normalised time (``normtime.run_to_margin``) until the relative imbalance
``max_l |s_l^2 - s_1^2| / s_1^2`` of every moving mode is at most ``BALANCE_TOL``; the balanced
field differs from the true one by a relative O(BALANCE_TOL) there, so the remaining change of
each y_j is perturbed by at most O(BALANCE_TOL) y_j, far below the decision margins. A start
whose imbalance is still above that at margin ``BALANCE_MAX_MARGIN`` (a dying mode keeps its
imbalance) is undecided with that reason.

Margins go through the fast group transform (``fast_margins``, numpy FFT over the cyclic
factors, O(K log K) per state; in the compiled y clock, ``yclock._margins``, above K = 8 walsh
and 64 for other groups); only the certificate's small active-by-support block is formed
densely. The y clock's cost per step is then dominated by the LU of its K x K Rosenbrock
matrix (K^3 / 3; see ``yclock.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..groups import Group, SpecError
from ..spec import LOSS_CE, ModelSpec
from .maxmargin import mode_classes

LIVE_MAX = 0.1     # ratio exponent at or below this: the mode survives
OUT_MIN = 0.3      # at or above this (and not falling): the mode leaves the support
FALL_TOL = 0.05    # an exponent that fell by more than this between stop pairs is in transit
ACTIVE_TOL = 1e-2  # relative margin slack of a candidate active constraint
EXACT_TOL = 1e-9   # slack of an active constraint at the polished vertex
DIRECTION_TOL = 1e-3
KKT_TOL = 1e-8     # relative stationarity residual
GAP_TOL = 1e-9     # first-order gap (relative) that counts as strictly positive
BALANCE_TOL = 1e-4
BALANCE_MAX_MARGIN = 1e4
Z_FINAL = 1e9      # the last stop sits at y_min = Z_FINAL^(-(L-2)/L) (largest z ~ Z_FINAL)
Z_RETRY = 1e11     # optional second stage of the true clock (``z_retry``; off by default)
MAX_STEPS = 20_000           # clock steps per start, first stage
RETRY_MAX_STEPS = 400_000    # and second stage (slow exits from a saddle region need ~1e5)
LIMIT_DECADES = 6  # limit stage: stops a factor Q apart in y_min past the hand-off state
LIMIT_RTOL = 1e-10
LIMIT_MAX_STEPS = 200_000
Z_CAP = 1e14       # largest z the reference field evaluates
# Clock tolerances (rtol in w = log y; see yclock.py). Measured with the same seeds, walsh,
# first stage rtol 1e-8 -> 1e-7 (K, L, eps, starts): (8, 3, 0.01, 1000), (16, 3, 0.1, 300),
# (8, 4, 0.1, 1000), (16, 4, 0.01, 300) left the same undecided counts (26, 24, 4, 2), gave the
# same support class on every start both decided (2,544 of 2,544) and took 1.0-1.9x less CPU;
# in the second stage 1e-7 left more undecided (K = 16, L = 3: 8 vs 6 of 300) at 1.4x the CPU.
RTOL = 1e-7
RETRY_RTOL = 1e-8
Q = 10.0           # stops are a factor Q apart in y
N_STOPS = 4

REASONS = {
    "integration": "integration failed",
    "transit": "a mode's ratio neither converges nor diverges steadily by the last stop "
               "(ratio exponent between LIVE_MAX and OUT_MIN, or falling): the start is near "
               "a basin boundary",
    "saddle": "the surviving direction approaches a non-vertex KKT point (a saddle of the "
              "concave program): the start lies on or next to a basin boundary (tie)",
    "degenerate": "the limit vertex is a degenerate KKT point (first-order gap <= 0)",
    "not_kkt": "the limit direction is not a KKT point within tolerance",
    "direction": "the flow's direction is not yet within DIRECTION_TOL of the vertex",
    "unbalanced": "unbalanced start not yet balanced",
    "pinned": "a non-constant mode is pinned at 0 at depth 2 ([H]'s theorem needs all > 0)",
}


# --------------------------------------------------------------------------- margins
def fast_margins(G: Group, z, n: int = 1) -> np.ndarray:
    """Margins ``m_c`` (..., K-1), c = 1..K-1, of logit singular values z (..., K), through the
    group transform: ``m_c = (sum_j z_j - (C z)_c) / (K sqrt n)`` with ``(C z)_c`` the real part
    of the multi-dimensional DFT over the cyclic factors (O(K log K), no K x K matrix)."""
    z = np.asarray(z, float)
    lead = z.shape[:-1]
    axes = tuple(range(len(lead), len(lead) + len(G.dims)))
    Cz = np.fft.fftn(z.reshape(lead + tuple(G.dims)), axes=axes).real.reshape(z.shape)
    return (z.sum(axis=-1, keepdims=True) - Cz)[..., 1:] / (G.K * math.sqrt(n))


_RED: dict = {}


def _reduced(G: Group):
    """(Mfull (K-1, D) margin rows on class variables in z units, classes, mult, unique rows)."""
    key = (G.name, G.dims)
    if key not in _RED:
        cls = mode_classes(G)
        C = G.char_table
        Mc = (1.0 - C[1:, :]) / G.K
        A = np.stack([Mc[:, list(c)].sum(axis=1) for c in cls], axis=1)
        _, uniq = np.unique(np.round(A, 10), axis=0, return_index=True)
        _RED[key] = (A, cls, np.array([len(c) for c in cls], float), np.sort(uniq))
    return _RED[key]


# --------------------------------------------------------------------------- result
@dataclass
class CertifiedLimit:
    """Certified limits of B starts (B = 1 for a single start; ``single`` says which was given).

    Arrays (B starts, K modes, S stops):
      decided (B,) bool; nc (B,) bool (certified NC); support (B, K) bool (mode 0 never);
      rank (B,) int (support size, 0 where undecided); direction (B, K) float, the certified
      limit direction (unit norm; the flow's surviving direction where undecided);
      vertex_z (B, K), the limit vertex scaled to min margin 1 (n = 1 units; NaN if none);
      exponents (B, K) ratio exponents over the last stop pair (NaN for non-moving modes);
      stationarity (B,) relative KKT residual; slackness (B,) max mu_c |m_c - 1|;
      min_multiplier (B,); gap (B,) first-order gap (> 0: strict local minimum);
      direction_error (B,); cost (B,) sum z_v^(2/L); steps (B,) integrator steps (both
      stages); z_final (B,) the largest z of the stops the start was read at (``z_final``,
      ``z_retry`` for a start the second stage decided, or the equivalent z of the limit
      stage's last stop, e.g. 1e27 at L = 3; ``stage(i)`` names which).
    Lists (length B): label ("NC", "rank-r code" or "undecided"), support_class (value profile
    of the vertex, e.g. ``"rank-4 {2 x4}"``), reason ('' when decided), status (integrator).
    stops (S,): the first stage's y_min thresholds (``item(i)`` gives start i's own).
    """

    spec: ModelSpec
    decided: np.ndarray
    nc: np.ndarray
    support: np.ndarray
    rank: np.ndarray
    direction: np.ndarray
    vertex_z: np.ndarray
    exponents: np.ndarray
    stationarity: np.ndarray
    slackness: np.ndarray
    min_multiplier: np.ndarray
    gap: np.ndarray
    direction_error: np.ndarray
    cost: np.ndarray
    steps: np.ndarray
    z_final: np.ndarray
    label: list
    support_class: list
    reason: list
    status: list
    stops: np.ndarray
    single: bool = False
    meta: dict = field(default_factory=dict)

    def __len__(self):
        return int(self.decided.shape[0])

    @property
    def undecided(self) -> int:
        return int(np.sum(~self.decided))

    def item(self, i: int = 0) -> dict:
        """JSON-safe dict of start i."""
        def f(x):
            x = float(x)
            return x if math.isfinite(x) else None
        return {"label": self.label[i], "decided": bool(self.decided[i]), "nc": bool(self.nc[i]),
                "rank": int(self.rank[i]),
                "support": [int(j) for j in np.nonzero(self.support[i])[0]],
                "support_class": self.support_class[i], "reason": self.reason[i],
                "direction": [f(v) for v in self.direction[i]],
                "vertex_z": [f(v) for v in self.vertex_z[i]],
                "exponents": [f(v) for v in self.exponents[i]],
                "kkt": {"stationarity": f(self.stationarity[i]),
                        "slackness": f(self.slackness[i]),
                        "min_multiplier": f(self.min_multiplier[i]), "gap": f(self.gap[i]),
                        "tolerances": {"stationarity": KKT_TOL, "active": ACTIVE_TOL,
                                       "direction": DIRECTION_TOL, "gap": GAP_TOL}},
                "direction_error": f(self.direction_error[i]), "cost": f(self.cost[i]),
                "status": self.status[i], "steps": int(self.steps[i]),
                "z_final": f(self.z_final[i]), "stage": self.stage(i),
                "stops": [float(v) for v in self._stops_of(i)]}

    def stage(self, i: int = 0) -> str:
        """Where start i was read: ``"first"`` (the true clock to ``z_final``), ``"retry"``
        (its optional second stage to ``z_retry``) or ``"limit"`` (the frozen-scale limit
        stage; ``z_final`` is then the equivalent z of its last stop)."""
        zf, m = self.z_final[i], self.meta
        if not math.isfinite(zf) or zf <= m.get("z_final", Z_FINAL):
            return "first"
        return "retry" if zf == m.get("z_retry") else "limit"

    def _stops_of(self, i: int) -> np.ndarray:
        zf = self.z_final[i]
        if self.stops.size == 0 or not math.isfinite(zf) or zf == self.meta.get("z_final"):
            return self.stops
        return y_stops(self.spec.L, zf, self.meta.get("q", Q), self.stops.size)

    def histogram(self) -> dict:
        """``{support_class: count}`` over decided starts, plus ``"undecided": count``."""
        out: dict = {}
        for d, c in zip(self.decided, self.support_class):
            if d:
                out[c] = out.get(c, 0) + 1
        out = dict(sorted(out.items(), key=lambda kv: -kv[1]))
        out["undecided"] = self.undecided
        return out


# --------------------------------------------------------------------------- clock
def y_stops(L: int, z_final: float = Z_FINAL, q: float = Q, n_stops: int = N_STOPS):
    """Decreasing y_min thresholds: the last at ``z_final^(-(L-2)/L)``, the others q, q^2..
    above it."""
    d = z_final ** (-(L - 2.0) / L)
    return d * q ** np.arange(n_stops - 1, -1, -1, dtype=float)


def _clock(spec, z0, stops, rtol, atol, max_steps=MAX_STEPS):
    """y at the stops: (y (B, S, K), status list, steps (B,)), by the stiff y clock of
    ``yclock.py``."""
    from .yclock import stiff_flow_y
    y, status, steps, _ = stiff_flow_y(spec, z0, stops, rtol=rtol, max_steps=max_steps)
    return y, status, steps


def scaled_field(spec, z):
    """``ghat = g e^(m_min)`` (..., K) at z (..., K): ``g_j = sum_c dm_c/dz_j p_c`` with
    ``p_c = e^(-m_c) / (1 + sum e^(-m))``, via two fast transforms."""
    G = spec.G
    m = fast_margins(G, z, spec.n)
    mmin = m.min(axis=-1, keepdims=True)
    w = np.exp(-(m - mmin))
    w = w / (1.0 + np.exp(-mmin) * w.sum(axis=-1, keepdims=True))
    wf = np.concatenate([np.zeros(w.shape[:-1] + (1,)), w], axis=-1)
    lead = wf.shape[:-1]
    axes = tuple(range(len(lead), len(lead) + len(G.dims)))
    Cw = np.fft.fftn(wf.reshape(lead + tuple(G.dims)), axes=axes).real.reshape(wf.shape)
    return (w.sum(axis=-1, keepdims=True) - Cw) / (G.K * math.sqrt(spec.n))


def reference_flow_y(spec, z0, stops, rtol=1e-10, atol=1e-14, method="LSODA"):
    """The y clock by scipy ``solve_ivp`` (LSODA: switches to BDF when stiff), one start at a
    time, each stop located as a
    terminal event ``min_j y_j = delta``: the slow, independent reference of the engine's
    ``flow_y``. Returns (y (B, S, K), status list, steps (B,))."""
    from scipy.integrate import solve_ivp
    L = spec.L
    z0 = np.atleast_2d(np.asarray(z0, float))
    B, K = z0.shape
    S = len(stops)
    y = np.full((B, S, K), np.inf)
    steps = np.zeros(B, int)
    status = ["ok"] * B
    a = -L / (L - 2.0)
    yfloor = Z_CAP ** (-(L - 2.0) / L)  # trial stages past y = 0 see z capped at Z_CAP
    for i in range(B):
        mv = _moving(spec, z0[i][None])[0]
        yv = z0[i][mv] ** (-(L - 2.0) / L)

        def rhs(_, yy):
            z = np.zeros(K)
            z[mv] = np.maximum(yy, yfloor) ** a
            return -(L - 2.0) * scaled_field(spec, z)[mv]
        for k, d in enumerate(stops):
            if yv.min() <= d:
                y[i, k, mv] = yv
                continue

            def ev(_, yy, d=d):
                return yy.min() - d
            ev.terminal = True
            r = solve_ivp(rhs, (0.0, 1e6), yv, method=method, rtol=rtol, atol=atol * 1e-6,
                          events=ev)
            steps[i] += r.t.size
            if r.status != 1:
                status[i] = f"reference integrator: {r.message}"
                break
            yv = r.y_events[0][0]
            y[i, k, mv] = yv
    return y, status, steps


# --------------------------------------------------------------------------- KKT
def _profile_label(G: Group, zv: np.ndarray) -> str:
    vals = zv[1:][zv[1:] > 0]
    if vals.size == G.K - 1 and np.allclose(vals, vals[0], rtol=1e-6):
        return "NC"
    u, cnt = np.unique(np.round(vals, 6), return_counts=True)
    parts = ", ".join(f"{v:.6g} x{c}" for v, c in sorted(zip(u, cnt), key=lambda t: -t[0]))
    return f"rank-{vals.size} {{{parts}}}"


def kkt_certificate(G: Group, L: float, z, n: int = 1, support=None) -> dict:
    """KKT certificate of the direction z (K,) for ``min sum z^(2/L)`` s.t. margins >= 1.

    Parameters
    ----------
    G : Group
    L : float
        Depth (the exponent of the objective is 2/L).
    z : array_like, shape (K,)
        Candidate limit direction (any scale).
    n : int, optional
        Samples per class.
    support : array_like of bool, shape (K,), optional
        Surviving modes; defaults to ``z > 0``.

    Returns
    -------
    dict
        ``vertex`` (bool), ``z_v`` (K,) (the vertex on the active face, min margin 1, n = 1
        units; the scaled z where not a vertex), ``active`` (classes c >= 1), ``mu``
        (multipliers on the unique active rows), ``stationarity``, ``slackness``,
        ``min_multiplier``, ``gap``, ``direction_error``, ``feasible``.
    """
    from scipy.optimize import linprog, nnls
    z = np.asarray(z, float)
    A, cls, mult, uniq = _reduced(G)
    supp = (z > 0) if support is None else np.asarray(support, bool)
    supp = supp.copy()
    supp[0] = False
    x = np.array([z[c[0]] if supp[c[0]] else 0.0 for c in cls])  # class variables, z units
    S = x > 0
    out = {"vertex": False, "z_v": np.full(G.K, np.nan), "active": [], "mu": [],
           "stationarity": np.inf, "slackness": np.inf, "min_multiplier": np.nan,
           "gap": np.nan, "direction_error": np.inf, "feasible": False}
    if not S.any():
        return out
    m = A @ x
    x = x / m.min()
    m = A @ x
    act = np.array([c for c in uniq if m[c] <= 1.0 + ACTIVE_TOL])
    out["active"] = [int(c) + 1 for c in act]
    As = A[np.ix_(act, np.nonzero(S)[0])]
    p = 2.0 / L
    xs = x[S]
    rank = np.linalg.matrix_rank(As, tol=1e-9 * max(1.0, np.abs(As).max()))
    if rank == S.sum():
        xv, *_ = np.linalg.lstsq(As, np.ones(len(act)), rcond=None)
        out["vertex"] = True
        out["direction_error"] = float(np.linalg.norm(xs - xv) / np.linalg.norm(xv))
        xs = xv
    else:
        out["direction_error"] = 0.0
    if np.any(xs <= 0):
        out["vertex"] = False
        return out
    xfull = np.zeros(len(cls))
    xfull[S] = xs
    mv = A @ xfull
    if out["vertex"]:  # the exact active set of the polished vertex
        act = np.array([c for c in uniq if mv[c] <= 1.0 + EXACT_TOL])
        out["active"] = [int(c) + 1 for c in act]
        As = A[np.ix_(act, np.nonzero(S)[0])]
    out["feasible"] = bool(mv.min() >= 1.0 - 1e-9)
    grad = mult[S] * p * xs ** (p - 1.0)
    mu, res = nnls(As.T, grad)
    out["mu"] = mu.tolist()
    out["stationarity"] = float(res / np.linalg.norm(grad))
    out["slackness"] = float(np.max(mu * np.abs(mv[act] - 1.0)))
    out["min_multiplier"] = float(mu.min())
    zv = np.zeros(G.K)
    for v, c in zip(xfull, cls):
        zv[list(c)] = v
    out["z_v"] = zv
    if out["vertex"]:
        # first-order gap: min grad.d over the tangent cone {As d >= 0}, normalised 1^T As d = 1.
        # The vertex, hence the LP, is fixed by (L, active set, support): Monte Carlo starts
        # share a few vertices, so the gap is kept per group (the LP was ~2.6 of ~13 ms per
        # start, K = 8, L = 3)
        key = ("kkt_gap", float(L), tuple(int(c) for c in act), tuple(np.nonzero(S)[0].tolist()))
        if key not in G._cache:
            r = linprog(grad, A_ub=-As, b_ub=np.zeros(len(act)), A_eq=As.sum(axis=0)[None, :],
                        b_eq=[1.0], bounds=(None, None), method="highs")
            G._cache[key] = float(r.fun / np.linalg.norm(grad)) if r.status == 0 else np.nan
        out["gap"] = G._cache[key]
    return out


# --------------------------------------------------------------------------- classifier
def _empty(spec, B, stops, single):
    K = spec.K
    nan = np.full(B, np.nan)
    return CertifiedLimit(spec=spec, decided=np.zeros(B, bool), nc=np.zeros(B, bool),
                          support=np.zeros((B, K), bool), rank=np.zeros(B, int),
                          direction=np.full((B, K), np.nan), vertex_z=np.full((B, K), np.nan),
                          exponents=np.full((B, K), np.nan), stationarity=nan.copy(),
                          slackness=nan.copy(), min_multiplier=nan.copy(), gap=nan.copy(),
                          direction_error=nan.copy(), cost=nan.copy(),
                          steps=np.zeros(B, int), z_final=nan.copy(), label=["undecided"] * B,
                          support_class=[""] * B, reason=[""] * B, status=["ok"] * B,
                          stops=np.asarray(stops, float), single=single)


def _fill_kkt(res, i, spec, zdir, supp):
    G, L = spec.G, spec.L
    c = kkt_certificate(G, L, zdir, 1, supp)
    res.stationarity[i] = c["stationarity"]
    res.slackness[i] = c["slackness"]
    res.min_multiplier[i] = c["min_multiplier"]
    res.gap[i] = c["gap"]
    res.direction_error[i] = c["direction_error"]
    zv = c["z_v"]
    res.vertex_z[i] = zv
    if np.all(np.isfinite(zv)):
        res.cost[i] = float(np.sum(zv[zv > 0] ** (2.0 / L)))
        res.support_class[i] = _profile_label(G, zv)
    ok_kkt = c["feasible"] and c["stationarity"] <= KKT_TOL and c["slackness"] <= 1e-8
    if not c["vertex"]:
        return "saddle" if ok_kkt else "not_kkt"
    if not ok_kkt:
        return "not_kkt"
    if c["direction_error"] > DIRECTION_TOL:
        return "direction"
    if not (c["gap"] > GAP_TOL):
        return "degenerate"
    return ""


def _moving(spec, z):
    """Modes that move under CE: non-constant (mode 0 has zero gradient) and z_j > 0."""
    mv = z > 0
    mv[..., 0] = False
    return mv


def certify_limit(spec: ModelSpec, state, *, z_final: float = Z_FINAL, q: float = Q,
                  n_stops: int = N_STOPS, rtol: float = RTOL, atol: float = 1e-30,
                  is_z: bool | None = None, z_retry: float | None = None,
                  retry_rtol: float = RETRY_RTOL, limit_decades: int = LIMIT_DECADES,
                  limit_rtol: float = LIMIT_RTOL, limit_all: bool = False) -> CertifiedLimit:
    """Certified limit of the gradient flow from ``state`` (unregularised ce only).

    See the module docstring for the method and tolerances; conventions in
    ``docs/conventions.md``.

    Parameters
    ----------
    spec : ModelSpec
        Depth L >= 2, loss ce, no weight decay.
    state : array_like, shape (L, K) or (B, L, K), or (K,) or (B, K)
        Factor singular values, or balanced logit singular values z (``is_z``).
    z_final : float, optional
        The last stop of the certification clock sits at y_min = z_final^(-(L-2)/L).
    q : float, optional
        Ratio between consecutive stops in y.
    n_stops : int, optional
        Number of stops (2-3 suffice to tell dying from surviving modes).
    rtol, atol : float, optional
        Tolerances of the clock's integrator (first stage).
    is_z : bool or None, optional
        Whether ``state`` holds z; inferred from the shape when None.
    z_retry : float or None, optional
        Second stage: starts left undecided at ``z_final`` for a reason a longer clock can
        resolve (a mode in transit, a direction not yet within DIRECTION_TOL, a face not yet
        left, a run that hit the step limit) are integrated again to stops ending at
        ``z_retry`` (with up to RETRY_MAX_STEPS steps) and read there; ``None`` or a value
        <= ``z_final`` turns the stage off. ``meta["retry"]`` counts the starts it took and
        decided; ``z_final`` (B,) says where each start was read.
    retry_rtol : float, optional
        rtol of the second stage (the slow starts it takes are better served by a tighter
        tolerance; see RETRY_RTOL).
    limit_decades : int, optional
        The limit stage: starts still undecided for a reason a longer clock can resolve go
        on in the frozen-scale clock from their last state for this many stops, a factor q
        apart in y_min, and are read at the last three (0 turns it off). ``meta["limit"]``
        counts the starts it took and decided.
    limit_rtol : float, optional
        rtol of the limit stage.
    limit_all : bool, optional
        Send every start through the limit stage and keep its verdict (decided or not), not
        only the undecided ones: the deepest readout, used by the agreement checks.

    Returns
    -------
    CertifiedLimit
        Per start: decided, nc, support (B, K), rank, direction (B, K), the KKT residuals,
        label ("NC", "rank-r code" or "undecided"), support class and reason. The same type
        for one start (B = 1, ``single`` True) and for a batch.
    """
    from .normtime import check_spec
    check_spec(spec)
    L, K, G = spec.L, spec.K, spec.G
    a = np.asarray(state, float)
    if is_z is None:
        is_z = a.ndim == 1 or (a.ndim == 2 and a.shape[-2:] != (L, K))
    if is_z:
        single = a.ndim == 1
        z0 = np.atleast_2d(a)
        if z0.shape[-1] != K or np.any(z0 < 0) or not np.all(np.isfinite(z0)):
            raise SpecError(f"z must be finite, >= 0, shape (K,) or (B, K) with K = {K}")
        z0 = G.symmetrise(z0)
        s0 = None
    else:
        s = spec.check_state(a)
        single = s.ndim == 2
        s0 = s[None] if single else s
        z0 = s0.prod(axis=1)
    B = z0.shape[0]
    for name, v in (("z_final", z_final), ("z_retry", z_retry or z_final)):
        if not (isinstance(v, (int, float)) and 1 < v <= Z_CAP):
            raise SpecError(f"{name} must lie in (1, {Z_CAP:g}] (the largest z the clock "
                            f"reads), got {v!r}")
    stops = y_stops(L, z_final, q, n_stops) if L > 2 else np.zeros(0)
    res = _empty(spec, B, stops, single)
    res.meta = {"z_final": z_final, "q": q, "n_stops": n_stops, "rtol": rtol,
                "retry_rtol": retry_rtol,
                "live_max": LIVE_MAX, "out_min": OUT_MIN, "z_retry": z_retry}
    todo = np.ones(B, bool)
    if s0 is not None:
        todo, z0 = _balance(spec, s0, z0, res)
    mv = _moving(spec, z0)
    if L <= 2:
        _depth2(spec, z0, mv, res, todo)
        return res
    idx = np.nonzero(todo)[0]
    if idx.size == 0:
        return res
    ylast = np.full((B, K), np.nan)
    ylast[idx] = _read_clock(spec, z0, mv, idx, stops, rtol, atol, MAX_STEPS, res)
    res.z_final[idx] = z_final
    if z_retry and z_retry > z_final:
        again = np.array([i for i in idx if not res.decided[i] and _retryable(res, i)], int)
        res.meta["retry"] = {"z_final": z_retry, "starts": int(again.size), "decided": 0}
        if again.size:
            stops2 = y_stops(L, z_retry, q, n_stops)
            sub = _empty(spec, again.size, stops2, False)
            yl2 = _read_clock(spec, z0[again], mv[again], np.arange(again.size), stops2,
                              retry_rtol, atol, RETRY_MAX_STEPS, sub)
            res.meta["retry"]["decided"] = _take(res, again, sub, yl2, ylast, z_retry)
    if limit_decades:
        again = np.array([i for i in idx if (limit_all or not res.decided[i] and
                                             _retryable(res, i))
                          and np.isfinite(ylast[i][mv[i]]).all() and mv[i].any()], int)
        _limit_stage(spec, mv, again, ylast, res, int(limit_decades), q, limit_rtol, limit_all)
    return res


def _take(res, rows, sub, ysub, ylast, z_read, replace=False):
    """A later stage's verdicts on starts ``rows``: a start it decides takes its record; one
    it does not keeps the earlier diagnosis (e.g. "saddle" for a start on a basin boundary,
    which rounding at z ~ 1e11 blurs into "not a KKT point"); all keep every stage's steps and
    the latest state reached (the next stage's hand-off). ``replace``: every start takes
    the later record, decided or not."""
    first = res.steps[rows]
    ok = np.arange(len(rows)) if replace else np.nonzero(sub.decided)[0]
    _copy_rows(res, rows[ok], sub, ok)
    res.steps[rows] = first + sub.steps
    res.z_final[rows[ok]] = np.broadcast_to(z_read, rows.shape)[ok]
    fin = np.isfinite(ysub).any(axis=1)   # rows that reached a stop
    ylast[rows[fin]] = ysub[fin]
    return int(sub.decided.sum())


def _limit_stage(spec, mv, again, ylast, res, decades, q, rtol, replace=False):
    """The frozen-scale continuation (see the module docstring) of starts ``again`` from
    each one's last state ``ylast``; a start it decides takes the new record."""
    from .yclock import frozen_flow_y
    L = spec.L
    p = L / (L - 2.0)
    res.meta["limit"] = {"decades": decades, "starts": int(again.size), "decided": 0,
                         "rtol": rtol}
    if not again.size:
        return
    y0 = np.where(mv[again], ylast[again], np.inf)
    ymin0 = np.min(y0, axis=1)
    y0 = y0 / ymin0[:, None]                              # shift-invariant: y_min = 1
    with np.errstate(divide="ignore"):
        n_eff = np.sum(np.where(mv[again], 1.0 / y0, 0.0), axis=1)  # 1 / Y at y_min = 1
    # the scale at which the frozen field equals the true one at the hand-off: lam = Y^(-p)
    # (= ymin0^(-p) n_eff^p, formed from the rescaled y)
    lam = ymin0 ** (-p) * n_eff ** p
    stops = q ** -np.arange(1.0, decades + 1.0)
    y, status, steps, _ = frozen_flow_y(spec, y0, stops, lam, rtol=rtol,
                                        max_steps=LIMIT_MAX_STEPS)
    sub = _empty(spec, again.size, stops, False)
    yl = _read_stops(spec, y, status, steps, mv[again], np.arange(again.size), stops, sub)
    # the equivalent z of the last stop read (y_min = ymin0 * stop), far beyond the z the
    # true clock can resolve in float64 (Z_CAP)
    zeq = (ymin0 * stops[-1]) ** (-p)
    res.meta["limit"]["decided"] = _take(res, again, sub, yl * ymin0[:, None], ylast, zeq,
                                         replace)


#: undecided reasons a longer clock can resolve (slow exits, late convergence, a run that hit
#: max_steps); a degenerate vertex or an unbalanced start stays what it is
_RETRY = ("transit", "direction", "not_kkt", "saddle")


def _retryable(res, i) -> bool:
    r = res.reason[i]
    return any(r.startswith(REASONS[k]) for k in _RETRY) or (
        r.startswith(REASONS["integration"]) and "max_steps" in r)


def _copy_rows(dst, rows, src, src_rows):
    """dst's starts ``rows`` take src's starts ``src_rows`` (every per-start field)."""
    import dataclasses
    for f in dataclasses.fields(dst):
        if f.name in ("spec", "stops", "single", "meta"):
            continue
        d, v = getattr(dst, f.name), getattr(src, f.name)
        if isinstance(d, np.ndarray):
            d[rows] = v[src_rows]
        else:
            for i, k in zip(rows, src_rows):
                d[i] = v[k]


def _read_clock(spec, z0, mv, idx, stops, rtol, atol, max_steps, res):
    """Integrate the y clock of starts ``idx`` to ``stops`` and classify each into ``res``;
    returns y at each start's last reached stop (len(idx), K) (NaN rows where none)."""
    y, status, steps = _clock(spec, z0[idx], stops, rtol, atol, max_steps)
    return _read_stops(spec, y, status, steps, mv, idx, stops, res)


def _read_stops(spec, y, status, steps, mv, idx, ymin, res):
    """Classify starts ``idx`` from y (len(idx), S, K) at the stops ``ymin`` (S,) (the
    ratio-exponent rules of the module docstring); returns y at the last reached stop."""
    L, G = spec.L, spec.G
    last = np.full((len(idx), y.shape[-1]), np.nan)
    for k, i in enumerate(idx):
        res.steps[i] = int(steps[k])
        res.status[i] = status[k]
        # stops reached (a run that fails near the rounding floor keeps the earlier stops)
        reached = np.all(np.isfinite(y[k][:, mv[i]]), axis=1) if mv[i].any() else \
            np.zeros(len(ymin), bool)
        R = int(np.argmin(reached)) if not reached.all() else len(ymin)
        if R:
            last[k] = y[k, R - 1]
        if R < 3:
            res.reason[i] = REASONS["integration"] + f": {status[k]}"
            continue
        if R < len(ymin):
            res.status[i] = f"ok to stop {R} of {len(ymin)} ({status[k]})"
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = y[k, :R] / ymin[:R, None]
            ex = np.log(rho[-1] / rho[-2]) / math.log(ymin[R - 2] / ymin[R - 1])
            exprev = np.log(rho[-2] / rho[-3]) / math.log(ymin[R - 3] / ymin[R - 2])
        e = np.where(mv[i], ex, np.nan)
        res.exponents[i] = e
        # the direction from the ratios (scale-free: the limit stage's y_min has no floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            zl = np.where(np.isfinite(rho[-1]) & (rho[-1] > 0), rho[-1] ** (-L / (L - 2.0)),
                          0.0)
        ep = np.where(mv[i], exprev, np.nan)
        live = mv[i] & (e <= LIVE_MAX)
        out = mv[i] & (e >= OUT_MIN) & ~(ep - e > FALL_TOL)
        zdir = np.where(live, zl, 0.0)
        nrm = np.linalg.norm(zdir)
        res.direction[i] = zdir / nrm if nrm > 0 else zdir
        res.support[i] = live
        if np.any(mv[i] & ~live & ~out):
            j = int(np.nonzero(mv[i] & ~live & ~out)[0][0])
            res.reason[i] = REASONS["transit"] + f" (mode {j}: exponents {ep[j]:.3f}, {e[j]:.3f})"
            continue
        why = _fill_kkt(res, i, spec, zdir, live)
        if why:
            res.reason[i] = REASONS[why]
            continue
        _accept(res, i, G)
    return last


def _accept(res, i, G):
    zv = res.vertex_z[i]
    res.decided[i] = True
    res.support[i] = zv > 0
    res.rank[i] = int(np.sum(zv > 0))
    res.direction[i] = zv / np.linalg.norm(zv)
    res.nc[i] = res.support_class[i] == "NC"
    res.label[i] = "NC" if res.nc[i] else f"rank-{res.rank[i]} code"


def _depth2(spec, z0, mv, res, todo):
    from .maxmargin import nc_z
    G = spec.G
    for i in range(z0.shape[0]):
        if not todo[i]:
            continue
        if not np.all(mv[i, 1:]):
            res.reason[i] = REASONS["pinned"]
            continue
        why = _fill_kkt(res, i, spec, nc_z(G), mv[i])
        if why:  # cannot happen for NC at L = 2 (convex problem); kept as a guard
            res.reason[i] = REASONS[why]
            continue
        _accept(res, i, G)
        res.meta["depth2"] = "NC by the theorem of [H] (global convergence at L = 2)"


def _balance(spec, s0, z0, res):
    """Flow unbalanced starts until balanced to BALANCE_TOL (see module docstring)."""
    from .normtime import run_to_margin
    sq = s0 ** 2

    def imbalance(S2, z):
        mv = _moving(spec, z)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.abs(S2 - S2[:, :1, :]).max(axis=1) / S2.min(axis=1)
        return np.where(mv, r, 0.0).max(axis=1)

    imb = imbalance(sq, z0)
    todo = np.ones(len(z0), bool)
    bad = np.nonzero(imb > BALANCE_TOL)[0]
    z0 = z0.copy()
    for i in bad:
        target = 10.0
        s = s0[i]
        while True:
            o = run_to_margin(spec, s0[i], target / 2, target)
            s = None if o["status"] != "ok" else o["z_end"]
            if s is None:
                res.reason[i] = REASONS["integration"] + ": " + o["status"]
                todo[i] = False
                break
            # conserved differences: s_l^2 - s_1^2 = d_l; balanced share s^2 ~ z^(2/L)
            d = np.abs(sq[i] - sq[i][:1]).max(axis=0)
            zz = o["z_end"]
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(_moving(spec, zz[None])[0], d / zz ** (2.0 / spec.L), 0.0)
            if r.max() <= BALANCE_TOL:
                z0[i] = zz
                break
            if target >= BALANCE_MAX_MARGIN:
                j = int(np.argmax(r))
                res.reason[i] = (REASONS["unbalanced"] + f": relative imbalance {r.max():.2e} "
                                 f"on mode {j} at margin {target:g} (> {BALANCE_TOL:g})")
                todo[i] = False
                break
            target *= 10
    return todo, z0
