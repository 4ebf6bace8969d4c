"""Butcher tableaux of embedded explicit Runge--Kutta pairs, held as data.

Each tableau is ``(A, b, e, c, error_order)``: stages ``k_i = f(t + c_i h, y + h sum_j A_ij k_j)``,
solution ``y + h sum_i b_i k_i``, error estimate ``h sum_i e_i k_i`` (``e = b - b_hat``), and
``error_order`` the order of the embedded error estimator (step factor ``err^(-1/(order+1))``).
"""
from __future__ import annotations

import numpy as np

#: Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math.
#: 6(1):19-26. 5th-order solution, 4th-order embedded estimate, FSAL (last stage = f(y_new)).
#: Same coefficients as scipy.integrate.RK45.
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
DOPRI5 = (DOPRI5_A, DOPRI5_B, DOPRI5_E, DOPRI5_C, 4)

TABLEAUX = {"dopri5": DOPRI5}
