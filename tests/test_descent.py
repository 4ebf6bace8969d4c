"""Reduced gradient descent equals full-matrix gradient descent (numpy, float64)."""
import numpy as np
import pytest

from fullnumpy import gd
from svdyn.descent import descend
from svdyn.spec import ModelSpec

CASES = [(g, K, L, n, loss, wd)
         for g, K in (("walsh", 8), ("cyclic", 6), ("2,5", 10))
         for L in (2, 3, 5)
         for n in (1, 3)
         for loss, wd in (("ce", 0.0), ("ce", 0.01), ("mse", 0.0), ("mse", 0.02), ("ls:0.1", 0.01))
         if not (L == 5 and n == 3)]


def _start(spec, rng):
    z = rng.uniform(0.5, 1.5, spec.K)
    z = 0.5 * (z + z[spec.G.partner])
    s = rng.uniform(0.6, 1.4, (spec.L, spec.K))
    return 0.5 * (s + s[:, spec.G.partner]) * z ** (1 / spec.L)


@pytest.mark.parametrize("group,K,L,n,loss,wd", CASES)
def test_reduced_gd_equals_full_gd(group, K, L, n, loss, wd):
    spec = ModelSpec(K, L, n, loss, wd, group)
    rng = np.random.default_rng(K * 100 + L * 10 + n)
    s0 = _start(spec, rng)  # unbalanced start: the map must be exact anyway
    lr, steps = 0.5, 40
    s_full, leak, loss_full = gd(spec, s0, K + 2, lr, steps, seed=L)
    tr = descend(spec, s0, lr, steps, save_every=1)
    assert tr.status == "ok"
    rel = np.abs(tr.s - s_full).max() / np.abs(s_full).max()
    assert rel < 1e-12, rel
    assert leak < 1e-12
    assert np.allclose(tr.loss, loss_full, rtol=1e-12, atol=1e-14 * np.abs(loss_full).max())


def test_descend_saves_and_overflow_status():
    spec = ModelSpec(4, 3)
    s0 = spec.balanced(np.array([0, 1.0, 1.0, 1.0]))
    tr = descend(spec, s0, 0.1, 25, save_every=10)
    assert list(tr.times) == [0, 10, 20, 25]
    every = descend(spec, s0, 0.1, 25, save_every=1)
    assert np.array_equal(every.s[[0, 10, 20, 25]], tr.s)
    bad = descend(ModelSpec(4, 3, loss="mse"), s0 * 50, 10.0, 50)
    assert bad.status.startswith("state became non-finite")
    assert np.isnan(bad.s[-1]).all() and np.isfinite(bad.s[0]).all()


def test_batch_equals_single():
    spec = ModelSpec(6, 3, group="cyclic", weight_decay=0.01)
    rng = np.random.default_rng(3)
    S0 = np.stack([_start(spec, rng) for _ in range(5)])
    batch = descend(spec, S0, 0.3, 30, 3)
    for i in range(5):
        one = descend(spec, S0[i], 0.3, 30, 3)
        assert np.array_equal(one.s, batch.s[i])
