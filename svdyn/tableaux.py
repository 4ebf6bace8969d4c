"""Butcher tableaux of embedded explicit Runge--Kutta pairs with dense output, held as data.

A :class:`Tableau` (a ``typing.NamedTuple`` the numba stepper takes as one argument) holds

* stages ``k_i = f(t + c_i h, y + h sum_j A_ij k_j)``; the first ``n_stages`` advance the step,
  the last of them is evaluated at ``y + h sum_j b_j k_j`` (FSAL: it is ``f(y_new)``, reused as
  the next step's first stage); stages ``n_stages .. n_dense - 1`` are computed only when a save
  point falls inside the step (DOP853's dense output needs three);
* the solution ``y + h sum_i b_i k_i`` and the error estimate ``h sum_i e_i k_i``; with
  ``err_kind = 1`` (DOP853) the 5th-order ``e`` and 3rd-order ``e3`` estimates are combined as
  in Hairer & Wanner's code, ``err = |h| ||e5||^2 / sqrt(||e5||^2 + 0.01 ||e3||^2)``;
* ``order``: the order q of the error estimator, step factor ``err^(-1/(q+1))``;
* the dense output ``y(t + theta h) = y + h sum_i k_i sum_r P[i, r] theta^(r+1)``;
* for the stiffness test of the steady hand-off (``svdyn.stepper``): ``stiff_stage``, a stage
  other than the FSAL one at ``c = 1`` (Hairer's test compares ``f`` there with ``f(y_new)``),
  and ``stab_real``, the length of the stability interval on the negative real axis (computed
  from the stability function ``R(z) = 1 + z b^T (I - z A)^{-1} 1``: dopri5 3.307, tsit5 3.507,
  dop853 6.394).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _dop853_coefficients as _d8


class Tableau(NamedTuple):
    """One embedded RK pair with its dense output (see the module docstring)."""

    A: np.ndarray       # (S, S)
    b: np.ndarray       # (S,)
    e: np.ndarray       # (S,)
    e3: np.ndarray      # (S,) zeros unless err_kind == 1
    c: np.ndarray       # (S,)
    P: np.ndarray       # (S, R) dense-output coefficients of theta^1 .. theta^R
    order: int          # order of the error estimator
    n_stages: int       # stages of a step (incl. the FSAL stage)
    n_dense: int        # S: all stages incl. those only the dense output needs
    err_kind: int       # 0: plain embedded estimate; 1: DOP853's combined 5/3 estimate;
    #                     2: Rosenbrock (err = sum_i e_i u_i, already absolute)
    sol_order: int      # order of the solution
    implicit: int       # 0: explicit RK; 1: Rosenbrock (A, G, gamma; y clock only)
    G: np.ndarray       # (S, S) Rosenbrock c_ij (zeros for explicit pairs)
    gamma: float        # Rosenbrock diagonal (0 for explicit pairs)
    stiff_stage: int    # a non-FSAL stage at c = 1 (-1: none, no stiffness test)
    stab_real: float    # stability interval on the negative real axis, |R(-x)| <= 1 for x <=
    #                     stab_real (0 for Rosenbrock pairs)


def _pad(a, n):
    out = np.zeros(n)
    out[:len(a)] = a
    return out


def _stability_interval(A, b):
    """Largest x with ``|R(-u)| <= 1`` for all 0 <= u <= x (``R`` the stability function of
    the explicit pair ``A, b``): a scan in steps of 0.01, then bisection to 1e-12."""
    S = A.shape[0]
    one, eye = np.ones(S), np.eye(S)

    def grows(x):
        return abs(1.0 - x * (b @ np.linalg.solve(eye + x * A, one))) > 1.0

    x = 0.01
    while not grows(x):
        x += 0.01
        if x > 100.0:
            return np.inf
    lo, hi = x - 0.01, x
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if grows(mid) else (mid, hi)
    return lo


def _make(A, b, e, c, P, order, sol_order, n_stages=None, e3=None, err_kind=0, G=None,
          gamma=0.0, n_dense=None):
    A = np.ascontiguousarray(A, dtype=np.float64)
    S = A.shape[0]
    G = np.zeros((S, S)) if G is None else np.ascontiguousarray(G, dtype=np.float64)
    ns = int(S if n_stages is None else n_stages)
    c_ = _pad(c, S)
    stiff, stab = -1, 0.0
    if gamma == 0.0:
        at_one = [i for i in range(ns - 1) if c_[i] == 1.0]
        stiff = at_one[-1] if at_one else -1
        stab = float(_stability_interval(A[:ns, :ns], _pad(b, S)[:ns]))
    return Tableau(A=A, b=_pad(b, S), e=_pad(e, S),
                   e3=_pad(np.zeros(0) if e3 is None else e3, S), c=c_,
                   P=np.ascontiguousarray(P, dtype=np.float64), order=int(order),
                   n_stages=ns,
                   n_dense=int(S if n_dense is None else n_dense), err_kind=int(err_kind),
                   sol_order=int(sol_order), implicit=int(gamma != 0.0), G=G,
                   gamma=float(gamma), stiff_stage=int(stiff), stab_real=stab)


# ------------------------------------------------------------------------------ dopri5
#: Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math.
#: 6(1):19-26. 5th-order solution, 4th-order embedded estimate, FSAL. Dense output of order 4:
#: Shampine (1986), "Some practical Runge-Kutta formulas", Math. Comp. 46:135-150 (the
#: coefficients of scipy.integrate.RK45, so ``flow(method="dopri5")`` steps in lockstep with it).
DOPRI5_A = np.array([
    [0, 0, 0, 0, 0, 0, 0],
    [1 / 5, 0, 0, 0, 0, 0, 0],
    [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
    [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
], dtype=np.float64)
DOPRI5_B = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0])
DOPRI5_E = np.array([-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
DOPRI5_C = np.array([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1], dtype=np.float64)
DOPRI5_P = np.array([
    [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0, 0, 0, 0],
    [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0, 127303824393 / 49829197408, -318862633887 / 49829197408,
     701980252875 / 199316789632],
    [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423]])
DOPRI5 = _make(DOPRI5_A, DOPRI5_B, DOPRI5_E, DOPRI5_C, DOPRI5_P, order=4, sol_order=5)

# ------------------------------------------------------------------------------- tsit5
#: Tsitouras (2011), "Runge-Kutta pairs of order 5(4) satisfying only the first column
#: simplifying assumption", Comput. Math. Appl. 62(2):770-775. 5th-order solution, 4th-order
#: estimate, FSAL, 7 stages; the free 4th-order interpolant of the same paper (its polynomials
#: b_i(theta), in the factored form published with the method, expanded here).
_T_A = np.zeros((7, 7))
_T_A[1, :1] = [0.161]
_T_A[2, :2] = [-0.008480655492356988544426874250230774675121177393430391537369234245294192976164141156943,
               0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569]
_T_A[3, :3] = [2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289,
               -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366,
               4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077]
_T_A[4, :4] = [5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791,
               -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589,
               7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753,
               -0.09249506636175524925650207933207191611349983406029535244034750452930469056411389539635]
_T_A[5, :5] = [5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748,
               -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452,
               8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986,
               -0.07158497328140099722453054252582973869127213147363544882721139659546372402303777878835,
               -0.02826905039406838290900305721271224146717633626879770007617876201276764571291579142206]
_T_B = np.array([0.09646076681806522951816731316512876333711995238157997181903319145764851595234062815396,
                 0.01,
                 0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
                 1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
                 -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
                 2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841,
                 0.0])
_T_A[6, :6] = _T_B[:6]
_T_BHAT = np.array([0.09468075576583945807478876255758922856117527357724631226139574065785592789071067303271,
                    0.009183565540343253096776363936645313759813746240984095238905939532922955247253608687270,
                    0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813,
                    1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761,
                    -2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702,
                    1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089,
                    1 / 66])
_T_C = np.array([0.0, 0.161, 0.327, 0.9,
                 0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604,
                 1.0, 1.0])


def _tsit5_dense():
    """Coefficients of theta^1..theta^4 of Tsitouras' interpolant b_i(theta)."""
    P = np.polynomial.polynomial
    t = np.array([0.0, 1.0])  # theta
    t2 = P.polymul(t, t)
    polys = [
        -1.0530884977290216 * P.polymul(P.polymul(t, [-1.3299890189751412, 1.0]),
                                        [0.7139816917074209, -1.4364028541716351, 1.0]),
        0.1017 * P.polymul(t2, [1.2949852507374631, -2.1966568338249754, 1.0]),
        2.490627285651252793 * P.polymul(t2, [1.57803468208092486, -2.38535645472061657, 1.0]),
        -16.54810288924490272 * P.polymul(P.polymul([-1.21712927295533244, 1.0],
                                                    [-0.61620406037800089, 1.0]), t2),
        47.37952196281928122 * P.polymul(P.polymul([-1.203071208372362603, 1.0],
                                                   [-0.658047292653547382, 1.0]), t2),
        -34.87065786149660974 * P.polymul(P.polymul([-1.2, 1.0], [-0.666666666666666667, 1.0]),
                                          t2),
        2.5 * P.polymul(P.polymul([-1.0, 1.0], [-0.6, 1.0]), t2),
    ]
    out = np.zeros((7, 4))
    for i, p in enumerate(polys):
        p = np.pad(p, (0, 5 - len(p)))
        out[i] = p[1:5]
    return out


TSIT5 = _make(_T_A, _T_B, _T_B - _T_BHAT, _T_C, _tsit5_dense(), order=4, sol_order=5)


# ------------------------------------------------------------------------------ dop853
def _dop853_dense():
    """DOP853's nested 7th-degree interpolant ``x(F0 + (1-x)(F1 + x(F2 + ...)))`` (Hairer &
    Wanner's CONTD8, as in scipy) expanded into coefficients of theta^1..theta^7 per stage."""
    P = np.polynomial.polynomial
    S = _d8.N_STAGES_EXTENDED
    ns = _d8.N_STAGES
    b = _pad(_d8.B, S)
    e0 = np.eye(S)[0]
    ef = np.eye(S)[ns]  # f(y_new)
    F = [b, e0 - b, 2 * b - ef - e0] + [row for row in _d8.D]
    x, omx = [0.0, 1.0], [1.0, -1.0]
    w = [x]
    for r in range(1, 7):
        w.append(P.polymul(w[-1], omx if r % 2 == 1 else x))
    out = np.zeros((S, 7))
    for coef, wr in zip(F, w):
        wr = np.pad(wr, (0, 8 - len(wr)))
        out += np.outer(coef, wr[1:8])
    return out


#: Dormand & Prince's 8(5,3) pair: Hairer, Norsett & Wanner, Solving ODEs I (2nd ed. 1993),
#: Sec. II.10; 12 stages + FSAL, 3 more for the 7th-order dense output (``_dop853_coefficients``).
DOP853 = _make(_d8.A, _pad(_d8.B, 16), _d8.E5, _d8.C, _dop853_dense(), order=7, sol_order=8,
               n_stages=_d8.N_STAGES + 1, e3=_d8.E3, err_kind=1)

# ------------------------------------------------------------------------------ rodas4
#: Hairer & Wanner's RODAS (order 4, embedded order 3, L-stable, stiffly accurate, 6 stages),
#: *Solving ODEs II* (2nd ed. 1996), Sec. IV.7, coefficients of their Fortran code RODAS, in
#: the form ``(1/(h gamma) - J) u_i = f(y + sum_j a_ij u_j) + sum_j (c_ij / h) u_j``,
#: ``y_new = y + sum_i m_i u_i``, error ``u_6``. Dense output: the cubic Hermite interpolant of
#: ``y, f(y), y_new, f(y_new)`` (stages of the dense layout: ``k_0 = f(y)``, ``k_1 = (y_new -
#: y) / h``, ``k_2 = f(y_new)``). Needs the Jacobian: used for the stiff y clock
#: (``integrate.flow_y``), whose Jacobian is analytic (``stepper.y_jacobian``).
_R_A = np.zeros((6, 6))
_R_A[1, :1] = [1.544]
_R_A[2, :2] = [0.9466785280815826, 0.2557011698983284]
_R_A[3, :3] = [3.314825187068521, 2.896124015972201, 0.9986419139977817]
_R_A[4, :4] = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950]
_R_A[5, :5] = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950,
               1.0]
_R_G = np.zeros((6, 6))
_R_G[1, :1] = [-5.6688]
_R_G[2, :2] = [-2.430093356833875, -0.2063599157091915]
_R_G[3, :3] = [-0.1073529058151375, -9.594562251023355, -20.47028614809616]
_R_G[4, :4] = [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160]
_R_G[5, :5] = [8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
               -6.058818238834054]
_R_M = np.array([1.221224509226641, 6.019134481288629, 12.53708332932087,
                 -0.6878860361058950, 1.0, 1.0])
_HERMITE = np.array([[1.0, -2.0, 1.0], [0.0, 3.0, -2.0], [0.0, -1.0, 1.0]])
RODAS4 = _make(_R_A, _R_M, np.eye(6)[5], np.zeros(6), np.pad(_HERMITE, ((0, 3), (0, 0))),
               order=3, sol_order=4, n_stages=3, err_kind=2, G=_R_G, gamma=0.25, n_dense=3)

TABLEAUX = {"dopri5": DOPRI5, "tsit5": TSIT5, "dop853": DOP853, "rodas4": RODAS4}
#: methods that need the analytic Jacobian (``flow_y`` only)
IMPLICIT = {name for name, t in TABLEAUX.items() if t.implicit}
