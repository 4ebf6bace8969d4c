"""The vectorisable exp (``svdyn.fastexp``) against long-double numpy, and the margin loop that
uses it against libm."""
import math

import numba as nb
import numpy as np
import pytest

from svdyn.fastexp import EXP_FLOOR, VECTOR_MIN, exp_diff_into, exp_or_zero


@nb.njit(cache=True)
def _apply(x):
    y = np.empty_like(x)
    for i in range(x.shape[0]):
        y[i] = exp_or_zero(x[i])
    return y


@nb.njit(cache=True)
def _diff(w, off):
    v = w.copy()
    S = exp_diff_into(v, off)
    return v, S


def _ulp_error(y, x):
    ref = np.exp(x.astype(np.longdouble))
    return np.abs((y - ref).astype(np.float64)) / np.spacing(ref.astype(np.float64))


@pytest.mark.parametrize("lo,hi", [(-708.0, 0.0), (-1.0, 1.0), (-1e-6, 1e-6), (0.0, 709.0),
                                   (-40.0, -30.0)])
def test_within_one_ulp_of_long_double(lo, hi):
    x = np.random.default_rng(0).uniform(lo, hi, 1_000_000)
    e = _ulp_error(_apply(x), x)
    assert e.max() <= 1.0
    assert e.mean() < 0.3          # measured 0.26: rounded correctly most of the time


def test_special_values_match_the_fields_convention():
    x = np.array([0.0, -0.0, EXP_FLOOR, np.nextafter(EXP_FLOOR, 0.0), -709.0, -1e4, -np.inf,
                  np.nan, 1e-320, -1e-320, 709.0])
    y = _apply(x)
    want = np.array([math.exp(v) if v > EXP_FLOOR else 0.0 for v in x])
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, want, rtol=2.3e-16, atol=0.0)
    assert y[0] == 1.0 and y[2] == 0.0 and y[7] == 0.0


def test_within_one_ulp_at_the_reduction_boundaries():
    """Arguments near (k + 1/2) ln 2, where the reduced argument changes sign, and near k ln 2."""
    k = np.arange(-1020, 1023, dtype=float)
    base = np.concatenate([(k + 0.5) * math.log(2.0), k * math.log(2.0)])
    x = np.concatenate([base, np.nextafter(base, -np.inf), np.nextafter(base, np.inf)])
    x = x[(x > EXP_FLOOR) & (x <= 709.0)]
    assert _ulp_error(_apply(x), x).max() <= 1.0


@pytest.mark.parametrize("K", [4, VECTOR_MIN - 1, VECTOR_MIN, 64, 1025])
def test_margin_loop_matches_libm(K):
    rng = np.random.default_rng(K)
    w = rng.uniform(-2.0, 800.0, K)
    w[0] = 12345.0                                  # untouched
    off = -0.5
    v, S = _diff(w, off)
    want = np.array([math.exp(off - a) if off - a > EXP_FLOOR else 0.0 for a in w[1:]])
    assert v[0] == 12345.0
    if K < VECTOR_MIN:                              # libm, summed in index order: same bits
        assert np.array_equal(v[1:], want)
        assert S == math.fsum(want) or abs(S - math.fsum(want)) <= 4e-16 * math.fsum(want)
    np.testing.assert_allclose(v[1:], want, rtol=2.3e-16, atol=0.0)
    assert abs(S - math.fsum(want)) <= K * 1.2e-16 * math.fsum(want)
