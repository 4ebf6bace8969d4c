"""Off-manifold stability: the hand-linearised optimizer step, measured vs predicted growth,
rounding-level leakage of exact spectral starts."""
import numpy as np
import pytest

from svdyn.spec import ModelSpec

torch = pytest.importorskip("torch")
from svdyn import fullmodel as fm  # noqa: E402
from svdyn.stability import make_step, run_stability, state_names  # noqa: E402

OPTS = ["gd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "sign-gd"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _generic(spec, width, seed=0):
    F = fm.build_random_factors(spec, width, 0.5, seed, "cpu")
    return [f.clone() for f in F]


@pytest.mark.parametrize("opt", OPTS)
def test_step_equals_torch_optimizer(opt):
    """The pure step used for the linearisation equals torch's optimizer (3 steps, generic
    point, per-factor weight decay)."""
    spec = ModelSpec(4, 3, 2, "ce", (0.01, 0.0, 0.02))
    F0 = _generic(spec, 6)
    hyper = {"momentum": 0.9, "betas": (0.9, 0.999), "eps": 1e-8, "alpha": 0.99}
    keep = {"momentum": ("momentum",), "nesterov": ("momentum",), "adam": ("betas", "eps"),
            "adamw": ("betas", "eps"), "rmsprop": ("alpha", "eps")}.get(opt, ())
    ref = fm.train(spec, F0, opt, 0.05, 3, 3, **{k: hyper[k] for k in keep})
    step = make_step(spec, opt, 0.05, **hyper)
    p = [f.clone() for f in F0]
    st = [torch.zeros_like(f) for _ in state_names(opt) for f in F0]
    for t in (1, 2, 3):
        p, st, _, _ = step(t, p, st)
    for a, b in zip(p, ref):
        assert float(torch.max(torch.abs(a - b))) <= 1e-14 * float(torch.max(torch.abs(b)))


@pytest.mark.parametrize("opt", ["gd", "momentum", "nesterov", "adam", "rmsprop"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_linearisation_matches_finite_differences(opt, loss):
    spec = ModelSpec(4, 3, 1, loss, 0.01)
    F0 = _generic(spec, 6, 1)
    step = make_step(spec, opt, 0.05)
    rng = np.random.default_rng(2)
    # a state after two steps (Adam's second moment > 0), then one linearised step
    p = [f.clone() for f in F0]
    st = [torch.zeros_like(f) for _ in state_names(opt) for f in F0]
    for t in (1, 2):
        p, st, _, _ = step(t, p, st)
    dp = [torch.as_tensor(rng.standard_normal(f.shape)) for f in p]
    ds = [torch.as_tensor(rng.standard_normal(f.shape)) * (f.abs() if opt in ("adam", "rmsprop")
                                                           else 1.0) for f in st]
    _, _, jp, js = step(3, p, st, dp, ds)
    h = 1e-6
    plus = step(3, [a + h * b for a, b in zip(p, dp)], [a + h * b for a, b in zip(st, ds)])
    minus = step(3, [a - h * b for a, b in zip(p, dp)], [a - h * b for a, b in zip(st, ds)])
    for a, b, j in zip(plus[0] + plus[1], minus[0] + minus[1], jp + js):
        fd = (a - b) / (2 * h)
        assert float(torch.max(torch.abs(fd - j))) <= 1e-6 * (1 + float(torch.max(torch.abs(j))))


@pytest.mark.parametrize("opt,lr", [("gd", 0.5), ("momentum", 0.05)])
def test_linearised_growth_matches_perturbation_growth(opt, lr):
    """delta = 1e-7: the measured leakage of the perturbed torch run and its per-phase growth
    rates equal the linearised prediction to O(delta)."""
    spec = ModelSpec(4, 3)
    s0 = spec.balanced(np.array([0.0, 0.2, 0.3, 0.25]))
    r = run_stability(spec, s0, opt, lr, 150, 1e-7, "off", 6, "random", 0, 5, "cpu")
    assert np.max(np.abs(r.leakage / r.leakage_pred - 1)) < 1e-4
    assert r.growth
    for g in r.growth.values():
        assert abs(g["measured"] - g["predicted"]) <= 1e-4 * abs(g["predicted"]) + 1e-9
        assert g["verdict_measured"] == g["verdict_predicted"]


@pytest.mark.parametrize("opt,lr", [("gd", 0.5), ("momentum", 0.1), ("nesterov", 0.1)])
def test_exact_spectral_start_leaks_only_rounding(opt, lr):
    spec = ModelSpec(6, 3, 2, "ce", 0.001, "cyclic")
    s0 = spec.balanced(np.array([0.0, 0.3, 0.2, 0.4, 0.2, 0.3]))
    r = run_stability(spec, s0, opt, lr, 300, 0.0, "random", 9, "random", 1, 10, "cpu",
                      linearised=False)
    assert np.max(r.leakage) < 1e-13, np.max(r.leakage)
    assert np.max(r.leakage_base) < 1e-13


def test_adam_exact_case_repels_in_floating_point():
    """Adam on its exact case (walsh, L = 3, signed-permutation frames) from an exact spectral
    start: rounding noise in exactly-zero gradient entries leaves the manifold (the issue's
    finding), and the linearisation about the reduced trajectory predicts growth."""
    spec = ModelSpec(8, 3)
    s0 = spec.balanced(np.r_[0.0, 0.1 * np.linspace(0.6, 1.4, 7)])
    r = run_stability(spec, s0, "adam", 1e-3, 60, 1e-8, "random", 12, "signed-permutation", 0,
                      5, "cpu")
    assert r.base.startswith("reduced")
    assert r.leakage[-1] > 1e3 * r.leakage[0]
    assert r.growth and all(g["verdict_predicted"] == "repelling" for g in r.growth.values())


def test_cli_errors(capsys):
    from svdyn.cli.main import main
    assert main(["stability", "--classes", "4", "--depth", "2", "--delta", "nan"]) == 2
    assert "--delta" in capsys.readouterr().err
    assert main(["stability", "--depth", "2"]) == 2
    assert "--classes" in capsys.readouterr().err
