"""Every script in examples/ runs at its --small size and computes the right thing (checked
against independent computations: numpy full-matrix losses, a numpy KL, finite differences,
the depth-2 theorem of [H], torch full training)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ce_loss_numpy(Q, z):
    """Mean cross-entropy of the full logit matrix Z = Q diag(z) Q^T (n = 1, one sample per
    class, sample i of class i)."""
    Z = Q @ np.diag(z) @ Q.T
    Z = Z - Z.max(axis=0, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=0, keepdims=True))
    return -np.mean(np.diag(logp))


def test_every_example_has_a_test():
    names = {p.stem for p in EXAMPLES.glob("*.py")}
    assert names == {"quickstart", "phase_diagram", "lyapunov_check", "cross_validate_torch"}


def test_quickstart(tmp_path):
    r = _load("quickstart").main(["--small", "--out", str(tmp_path)])
    tr, spec = r["traj"], r["spec"]
    assert tr.status == "ok"
    # the loss at t = 0 is the full-matrix mean cross-entropy of Q diag(z0) Q^T
    assert tr.loss[0] == pytest.approx(_ce_loss_numpy(spec.G.Q, r["z0"]), rel=1e-12)
    # it falls, and the files round-trip
    assert tr.loss[-1] < tr.loss[0]
    np.testing.assert_array_equal(r["loaded"].s, tr.s)
    assert (tmp_path / "modes.png").read_bytes()[:4] == b"\x89PNG"
    df = r["table"]
    assert len(df) == tr.times.size * spec.L * spec.K
    np.testing.assert_allclose(df["s"].to_numpy(), tr.s.ravel())
    lim = r["limit"]
    assert lim.label == ("NC" if lim.nc else f"rank-{lim.rank} code")
    assert lim.support == [j + 1 for j in np.nonzero(lim.live)[0]]


def test_phase_diagram(tmp_path):
    import svdyn
    r = _load("phase_diagram").main(["--small", "--out", str(tmp_path)])
    frac, depths, scales = r["nc_fraction"], r["depths"], r["scales"]
    assert frac.shape == (len(depths), len(scales))
    # [H]: at depth 2 every balanced spectral start reaches NC
    assert np.all(frac[depths.index(2)] == 1.0)
    # another path to one deep cell: classify the same random inits directly
    i, j = depths.index(max(depths)), len(scales) - 1
    spec = svdyn.ModelSpec(r["classes"], depths[i])
    z = svdyn.random_init_z(spec, scales[j], np.random.default_rng(r["seed"]),
                            batch=r["samples"])
    lim = svdyn.classify_limit(spec, svdyn.balanced_init(spec, z), max_end=1e5)
    assert frac[i, j] == pytest.approx(np.mean(lim.nc))
    assert (tmp_path / "phase.png").exists() and (tmp_path / "phase.json").exists()


def test_lyapunov_check(tmp_path):
    r = _load("lyapunov_check").main(["--small", "--out", str(tmp_path)])
    z = r["traj"].z[:, 1:]
    q = z / z.sum(axis=1, keepdims=True)
    M = z.shape[1]
    V_np = np.sum((1.0 / M) * np.log((1.0 / M) / q), axis=1)      # KL(uniform || q)
    np.testing.assert_allclose(r["V"], V_np, rtol=1e-10, atol=1e-15)
    assert not r["rose"] and r["V"][-1] < 0.05 * r["V"][0]        # balanced depth 2: falls
    big = np.abs(r["rate"][1:-1]) > 1e-3 * np.abs(r["rate"]).max()
    np.testing.assert_allclose(r["fd"][big], r["rate"][1:-1][big], rtol=2e-2)


def test_cross_validate_torch(tmp_path):
    pytest.importorskip("torch")
    r = _load("cross_validate_torch").main(["--small", "--out", str(tmp_path), "--device",
                                            "cpu"])
    v, o = r["validation"], r["order"]
    assert v.device.startswith("cpu")
    assert v.max_rel_dev < 1e-10 and v.max_leakage < 1e-10
    # halving the step halves the GD -> flow error (Euler, order 1)
    ratios = np.asarray(o.errors_full[:-1]) / np.asarray(o.errors_full[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)
    assert o.order == pytest.approx(1.0, abs=0.05)
    assert (tmp_path / "crossval.png").exists()
