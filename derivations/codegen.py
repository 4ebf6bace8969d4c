"""Item 6: emit ``svdyn/_generated_kernels.py`` from the sympy expressions.

The per-loss formulas come from :func:`derivations.closed_forms.general_kernels` (derived with
symbolic K from the per-sample loss), the Lyapunov pieces from
:func:`derivations.lyapunov.lyapunov_kernels`. Only the loop / stable-softmax scaffolding is
template text here; every formula inside it is printed from a sympy expression. Softmax
probabilities and margins enter as run-time values computed stably (``field.py``, or the
shifted exponentials below), so no emitted expression can overflow at logits of 1e4.

The output is a pure function of the expressions (no dates, no versions), so regenerating
gives a byte-identical file; ``tests/test_generated.py`` checks that.
"""
from __future__ import annotations

from pathlib import Path

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .closed_forms import general_kernels
from .lyapunov import lyapunov_kernels

TARGET = Path(__file__).resolve().parent.parent / "svdyn" / "_generated_kernels.py"


class _Printer(PythonCodePrinter):
    """Plain ``math.``-prefixed Python that numba compiles; rationals as float literals."""

    def _print_Rational(self, e):
        return f"({e.p}.0/{e.q}.0)" if e.q != 1 else f"{e.p}.0"

    def _print_Half(self, e):
        return self._print_Rational(e)


def py(e) -> str:
    return _Printer({"standard": "python3", "fully_qualified_modules": True}).doprint(e)


HEADER = '''"""GENERATED FILE -- DO NOT EDIT.

Symbolic source: ``derivations/closed_forms.py`` (``general_kernels``: the per-loss formulas,
derived by sympy with symbolic K from the per-sample loss and the character identities) and
``derivations/lyapunov.py`` (``lyapunov_kernels``: the Lyapunov value and its derivative).
Emitted by ``derivations/codegen.py``. Regenerate with::

    svdyn derive

Notation: ``omm = 1 - mu_j`` (computed stably by ``field.py`` as ``C (e_0 - p)``), ``K`` classes,
``rn = sqrt(n)``, ``eps`` label smoothing, ``g_j = -d loss / d z_j``. Margins and softmax
probabilities are run-time inputs computed stably, so no expression here overflows.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from . import _cache  # noqa: F401  (first: the cache keyed on the engine's source)
'''


def _elementwise(name: str, d: dict, doc: str) -> str:
    args = ", ".join(str(a) for a in d["args"])
    return (f"\n\n@nb.njit(cache=True)\ndef {name}({args}):\n"
            f'    """{doc} sympy: ``{sp.sstr(d["expr"])}``."""\n'
            f"    return {py(d['expr'])}\n")


def generate() -> str:
    gk = general_kernels()
    lk = lyapunov_kernels()
    parts = [HEADER]
    parts.append(_elementwise("ce_grad", gk["ce_grad"],
                              "Cross-entropy ``g_j`` from ``1 - mu_j``."))
    parts.append(_elementwise("ls_grad", gk["ls_grad"],
                              "Label-smoothed ce ``g_j`` (j != 0; ``g_0 = 0``)."))
    parts.append(_elementwise("mse_grad", gk["mse_grad"], "MSE ``g_j``."))
    parts.append(_elementwise("mse_loss_term", gk["mse_loss_term"],
                              "MSE loss contribution of mode j."))
    parts.append(_elementwise("ls_loss_extra", gk["ls_loss_extra"],
                              "Label smoothing adds this to the ce loss (margin_sum = sum_c m_c)."))
    x = lk["phi"]["args"][0]
    horner = sp.horner(lk["phi_series"]["expr"], x)
    phi = lk["phi"]["expr"]
    delta = lk["delta"]["expr"]
    zsym, zbsym = lk["delta"]["args"]
    dsym, rsym, Msym = lk["rate_term"]["args"]
    pg, ph, mg, mh = lk["l2_pair"]["args"]
    rn, _, msum = lk["l2_prefactor"]["args"]
    subs_delta = py(delta.subs({zsym: sp.Symbol("z[j]"), zbsym: sp.Symbol("zbar")}))
    parts.append(f'''

@nb.njit(cache=True)
def _phi(x):
    """``{sp.sstr(phi)}`` (>= 0), accurate near 0: the order-19 Taylor polynomial (sympy, Horner
    form) for |x| < 0.1, the closed form elsewhere; +inf at x = -1 (a zero mode)."""
    if x <= -1.0:
        return math.inf
    if abs(x) < 0.1:
        return {py(horner)}
    return x - math.log1p(x)


@nb.njit(cache=True)
def lyapunov_value(z):
    """V = KL(uniform || z / sum z) over the non-constant modes 1..K-1 (z shape (K,)).

    Stable form ``(1/M) sum_j phi(delta_j)``, ``delta_j = {sp.sstr(delta)}``, ``zbar`` the mean
    of z_1..z_(K-1), M = K - 1; each term is >= 0. Returns +inf if a mode is 0.
    """
    K = z.shape[0]
    M = K - 1
    S = 0.0
    for j in range(1, K):
        S += z[j]
    if not S > 0.0:
        return math.inf
    zbar = S / M
    acc = 0.0
    for j in range(1, K):
        acc += _phi({subs_delta})
    return acc * ({py(lk["value_scale"]["expr"])})


@nb.njit(cache=True)
def lyapunov_rate(z, r):
    """dV/dt for log-rates ``r_j = d log z_j / dt`` (any depth, balanced or not):
    ``sum_j {sp.sstr(lk["rate_term"]["expr"])}`` over j = 1..K-1."""
    K = z.shape[0]
    M = K - 1
    S = 0.0
    for j in range(1, K):
        S += z[j]
    zbar = S / M
    acc = 0.0
    for j in range(1, K):
        delta = {subs_delta}
        acc += {py(lk["rate_term"]["expr"].subs({dsym: sp.Symbol("delta"), rsym: sp.Symbol("r[j]")}))}
    return acc


@nb.njit(cache=True)
def lyapunov_rate_l2(m, rn):
    """Closed-form dV/dt of the balanced depth-2 ce flow from the margins ``m`` (K,), m[0] unused:
    ``{sp.sstr(lk["l2_prefactor"]["expr"])} * sum_(g<h) {sp.sstr(lk["l2_pair"]["expr"])}``, every
    pair term <= 0. Probabilities p_g = e^(-m_g)/(1 + sum e^(-m)) are computed with a shift, so
    margins of 1e4 (either sign) give finite values."""
    K = m.shape[0]
    M = K - 1
    a = 0.0
    margin_sum = 0.0
    for g in range(1, K):
        margin_sum += m[g]
        if -m[g] > a:
            a = -m[g]
    p = np.empty(K)
    Zp = math.exp(-a)
    for g in range(1, K):
        p[g] = math.exp(-m[g] - a)
        Zp += p[g]
    for g in range(1, K):
        p[g] /= Zp
    acc = 0.0
    for g in range(1, K):
        for h in range(g + 1, K):
            acc += {py(lk["l2_pair"]["expr"].subs({pg: sp.Symbol("p[g]"), ph: sp.Symbol("p[h]"), mg: sp.Symbol("m[g]"), mh: sp.Symbol("m[h]")}))}
    return ({py(lk["l2_prefactor"]["expr"])}) * acc
''')
    return "".join(parts)


def write(path: Path = TARGET) -> Path:
    path = Path(path)
    path.write_text(generate())
    return path
