"""Bases diagonalise the softmax; fast transforms equal dense ones; the field is stable."""
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import softmax

from svdyn.bundle import CLOCK_NORM, CLOCK_T, CLOCK_Y
from svdyn.field import (GENERAL, NO_LOSS, WALSH_CE, WITH_LOSS, field, field_into, logit_gradient,
                         new_scratch, vector_field)
from svdyn.groups import SpecError, make_group
from svdyn.spec import ModelSpec

GROUPS = [("walsh", 2), ("walsh", 8), ("walsh", 32), ("cyclic", 3), ("cyclic", 6),
          ("cyclic", 7), ("2,5", 10), ("3,3", 9), ("2,2,3", 12), ("4,3", 12), ("cyclic", 16),
          ("cyclic", 64), ("4,8", 32), ("3,16", 48)]


def _even(G, z):
    return 0.5 * (z + z[..., G.partner])


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(GROUPS), st.floats(-30, 30), st.integers(0, 2**31 - 1))
def test_basis_diagonalises_columnwise_softmax(gk, scale, seed):
    G = make_group(*gk)
    K = G.K
    z = _even(G, np.random.default_rng(seed).standard_normal(K) * scale)
    Q = G.Q
    assert np.abs(Q.T @ Q - np.eye(K)).max() < 1e-13
    P = softmax(Q @ np.diag(z) @ Q.T, axis=0)
    D = Q.T @ P @ Q
    assert np.abs(D - np.diag(np.diag(D))).max() < 1e-12
    # eigenvalues = C p (fast transform) with p the class-0 column
    np.testing.assert_allclose(np.diag(D), G.transform(P[:, 0]), atol=1e-12)


@pytest.mark.parametrize("gk", GROUPS)
def test_fast_transform_equals_character_table(gk):
    G = make_group(*gk)
    x = np.random.default_rng(1).standard_normal(G.K)
    np.testing.assert_allclose(G.transform(_even(G, x)), G.char_table @ _even(G, x), atol=1e-12)
    assert np.allclose(G.char_table, G.char_table.T)
    assert np.allclose(G.Q[:, 0], 1 / np.sqrt(G.K))


def test_group_errors_name_alternatives():
    with pytest.raises(SpecError, match="cyclic"):
        make_group("walsh", 12)
    with pytest.raises(SpecError, match="product"):
        make_group("2,5", 12)
    with pytest.raises(SpecError):
        make_group("paley", 12)
    with pytest.raises(SpecError, match="conjugate pair"):
        ModelSpec(6, 2, group="cyclic").balanced(np.arange(6.0))


def test_large_logits_are_finite_and_correct():
    """Logits of 1e4: no overflow, no NaN, margins exact, gradient e^{-margin} underflows to 0."""
    for g, K in (("walsh", 8), ("cyclic", 6), ("2,5", 10)):
        spec = ModelSpec(K, 2, group=g)
        z = np.full(K, 1e4 * K)
        z[0] = 0
        gr, loss, mm = logit_gradient(spec, z)
        assert np.all(np.isfinite(gr)) and np.isfinite(loss)
        assert mm > 1e3
        # negative margins (a wrong-sign state) stay finite too
        gr, loss, mm = logit_gradient(spec, -z)
        assert np.all(np.isfinite(gr)) and np.isfinite(loss) and loss > 1e3


def test_one_minus_mu_keeps_relative_precision_at_margin_65():
    """1 - mu_j ~ e^{-65}: computed with full relative precision (vs 50-digit mpmath)."""
    K = 8
    G = make_group("walsh", K)
    z = np.array([0.0, 130, 140, 150, 160, 170, 180, 190]) * 0.45  # margins 64..85
    spec = ModelSpec(K, 2)
    g, loss, mm = logit_gradient(spec, z)
    mpmath.mp.dps = 120
    H = G.char_table
    u = [mpmath.mpf(sum(H[c, j] * z[j] for j in range(K))) / K for c in range(K)]
    Zs = sum(mpmath.exp(uc - u[0]) for uc in u)
    p = [mpmath.exp(uc - u[0]) / Zs for uc in u]
    for j in range(1, K):
        exact = 2 * sum(p[c] for c in range(K) if H[c, j] < 0) / K
        assert float(exact) > 0
        assert abs(g[j] - float(exact)) <= 1e-13 * float(exact), (j, g[j], float(exact))
    exact_loss = mpmath.log(Zs)
    assert abs(loss - float(exact_loss)) <= 1e-13 * float(exact_loss)
    assert mm > 60


def test_field_zero_state_and_shapes():
    spec = ModelSpec(8, 3)
    ds, loss, mm = vector_field(spec, np.zeros((3, 8)))
    assert np.all(ds == 0) and abs(loss - np.log(8)) < 1e-15
    ds, loss, mm = vector_field(spec, np.ones((4, 3, 8)))
    assert ds.shape == (4, 3, 8) and loss.shape == (4,)
    with pytest.raises(SpecError, match="shape"):
        vector_field(spec, np.ones((2, 8)))
    with pytest.raises(SpecError, match="non-finite"):
        vector_field(spec, np.full((3, 8), np.nan))


@pytest.mark.parametrize("m", range(0, 13))
def test_fwht_is_the_radix2_transform_bit_for_bit(m):
    """The radix-8/4 passes of ``transforms.fwht`` perform the radix-2 transform's additions
    in the same order: the same bits as a textbook radix-2 loop (pure Python here, K = 2^m up
    to 4096), and the Sylvester Hadamard matrix product to rounding."""
    from svdyn.transforms import fwht
    K = 2 ** m
    x = np.random.default_rng(m).standard_normal(K) * 10.0 ** np.random.default_rng(m).uniform(
        -8, 8, K)
    ref = x.tolist()
    h = 1
    while h < K:
        for i in range(0, K, 2 * h):
            for j in range(i, i + h):
                a, b = ref[j], ref[j + h]
                ref[j], ref[j + h] = a + b, a - b
        h *= 2
    y = x.copy()
    fwht(y)
    assert y.tolist() == ref
    H = np.ones((1, 1))
    while H.shape[0] < K:
        H = np.block([[H, H], [H, -H]])
    assert np.allclose(y, H @ x, rtol=1e-12, atol=1e-12 * np.abs(x).sum())


@pytest.mark.parametrize("L", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("wd", [0.0, "per-factor"])
def test_factor_chain_is_the_product_rule(L, wd):
    """``ds[l]/dt = g prod_{m != l} s_m - lambda_l s_l`` and the decay term of the loss, against
    numpy products with the factor deleted (L = 1 and 2 run their own branches); zeros in the
    state (no division by s anywhere) and one row without decay."""
    K = 16
    lam = 0.0 if wd == 0.0 else [0.01 * (l + 1) if l != L // 2 else 0.0 for l in range(L)]
    spec = ModelSpec(K, L, 1, "ce", lam)
    rng = np.random.default_rng(L)
    s = rng.uniform(0.2, 1.5, (L, K))
    s[:, 0] = 0.0
    s[L - 1, 3] = 0.0
    ds, loss, _ = vector_field(spec, s)
    g, data_loss, _ = logit_gradient(spec, np.prod(s, axis=0))
    lam_v = spec.lam
    want = np.array([g * np.prod(np.delete(s, l, axis=0), axis=0) - lam_v[l] * s[l]
                     for l in range(L)])
    np.testing.assert_allclose(ds, want, rtol=1e-15, atol=1e-17)
    assert loss == pytest.approx(data_loss + 0.5 * np.sum(lam_v[:, None] * s * s), rel=1e-14)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.floats(-6.0, 4.0), st.integers(0, 2**31 - 1))
def test_walsh4_path_is_the_general_path_bit_for_bit(L, log_scale, seed):
    """The field's scalar walsh K = 4 ce branch against the general loops (``logit_gradient``
    runs them), at small and huge logits (shifted softmax, underflowing exponentials)."""
    spec = ModelSpec(4, L)
    rng = np.random.default_rng(seed)
    s = 10.0 ** (log_scale / L) * rng.uniform(0.0, 2.0, (L, 4))
    ds, loss, mm = vector_field(spec, s)
    g, data_loss, mm_general = logit_gradient(spec, np.prod(s, axis=0))
    assert loss == data_loss and mm == mm_general
    want = np.array([g * np.prod(np.delete(s, l, axis=0), axis=0) for l in range(L)])
    if L <= 2:   # one product per entry: the chain's own bits
        assert np.array_equal(ds, want)
    np.testing.assert_allclose(ds, want, rtol=1e-15, atol=0.0)


@pytest.mark.parametrize("K, L, loss, group, clock", [
    (4, 2, "ce", "walsh", CLOCK_T), (4, 3, "ce", "walsh", CLOCK_NORM),
    (16, 2, "ce", "walsh", CLOCK_T), (64, 4, "ls", "walsh", CLOCK_T),
    (6, 2, "ce", "cyclic", CLOCK_T), (8, 3, "ce", "walsh", CLOCK_Y)])
def test_field_without_loss_is_the_same_field(K, L, loss, group, clock):
    """``field_into(..., with_loss=False)`` (the stepper's inner stages) writes the same field
    and minimum margin bit for bit as ``field``, and returns nan for the loss it skipped."""
    spec = ModelSpec(K, L, loss="ls:0.1" if loss == "ls" else loss, group=group,
                     weight_decay=0.01 if clock == CLOCK_T else 0.0)
    rng = np.random.default_rng(K * L)
    z = spec.G.symmetrise(rng.uniform(0.5, 3.0, K))
    s = spec.balanced(z)
    if clock == CLOCK_Y:
        s = z[None] ** (-(L - 2.0) / L)
    m = spec.bundle(clock)
    out1, out2 = np.empty_like(s), np.full_like(s, 7.0)
    lo1, mm1 = field(s, out1, new_scratch(K, m.tmax), m)
    lo2, mm2 = field_into(s, out2, new_scratch(K, m.tmax), m, NO_LOSS, GENERAL)
    assert np.array_equal(out1, out2) and mm1 == mm2
    assert np.isfinite(lo1) and np.isnan(lo2)
    if group == "walsh" and loss == "ce" and clock == CLOCK_T:
        # the walsh ce kernels' field (every other group, loss and clock pruned): same bits
        for flag, lo in ((WITH_LOSS, lo1), (NO_LOSS, np.nan)):
            out3 = np.full_like(s, 7.0)
            lo3, mm3 = field_into(s, out3, new_scratch(K, m.tmax), m, flag, WALSH_CE)
            assert np.array_equal(out1, out3) and mm3 == mm1
            assert lo3 == lo or (np.isnan(lo) and np.isnan(lo3))


@pytest.mark.parametrize("K", [16, 64, 1024])
def test_fwht_on_an_unaligned_view_and_a_strided_one(K):
    """The vector passes load and store four doubles at a time by the data pointer: a C view at
    an 8-byte offset (not 32-byte aligned) gives the same bits as an aligned copy, and a
    strided (non-contiguous) array is refused at compile time rather than read wrongly."""
    import numba
    from svdyn.transforms import fwht
    rng = np.random.default_rng(K)
    buf = rng.standard_normal(K + 8)
    o = next(o for o in (1, 2, 3) if (buf.ctypes.data + 8 * o) % 32 != 0)
    before = buf.copy()
    view = buf[o:o + K]                     # contiguous, not 32-byte aligned
    assert view.flags.c_contiguous and view.ctypes.data % 32 != 0
    ref = view.copy()
    fwht(ref)
    fwht(view)
    assert view.tolist() == ref.tolist()
    outside = np.r_[0:o, o + K:K + 8]       # the values around the view are untouched
    assert buf[outside].tolist() == before[outside].tolist()
    strided = rng.standard_normal(2 * K)[::2]
    with pytest.raises(numba.core.errors.TypingError):
        fwht(strided)
