"""svdyn.lyapunov and `svdyn lyapunov`: V decreases along balanced depth-2 ce flows; where it
does not (unbalanced, depth >= 3) the check reports it."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from svdyn.cli.main import main
from svdyn.lyapunov import check, rate, rate_l2, value
from svdyn.spec import ModelSpec


def test_value_basic():
    z = np.array([0.0, 2.0, 2.0, 2.0])
    assert value(z) == 0.0
    z = np.array([0.0, 1.0, 2.0, 3.0])
    ref = math.log(6.0 / 3.0) - (math.log(1.0) + math.log(2.0) + math.log(3.0)) / 3.0
    assert value(z) == pytest.approx(ref, rel=1e-14)
    assert value(7.5 * z) == pytest.approx(value(z), rel=1e-13)      # scale invariant
    assert value(np.array([5.0, 1.0, 2.0, 3.0])) == value(z)         # mode 0 ignored
    assert value(np.array([0.0, 0.0, 1.0, 1.0])) == math.inf


@pytest.mark.parametrize("group,K", [("walsh", 8), ("cyclic", 7), ("2,3", 6)])
def test_rate_l2_nonpositive_and_matches_general(group, K):
    spec = ModelSpec(classes=K, depth=2, group=group, samples_per_class=2)
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 50.0):
        for _ in range(20):
            z = scale * rng.uniform(0.1, 2.0, K)
            z = np.where(np.arange(K) > spec.G.partner, z[spec.G.partner], z)
            z[0] = 0.0
            a = rate(spec, spec.balanced(z))
            c = rate_l2(spec, z)
            assert c <= 0.0
            assert c == pytest.approx(a, rel=1e-9, abs=1e-300)


def test_report_counterexamples_have_positive_rate():
    sp3 = ModelSpec(classes=4, depth=3)
    assert rate(sp3, sp3.balanced(np.array([0.0, 0.01, 0.02, 0.03]))) > 0
    sp2 = ModelSpec(classes=4, depth=2)
    s = sp2.balanced(np.array([0.0, 1.0, 1.2, 1.0]))
    s[0, 2], s[1, 2] = 2.0 * math.sqrt(1.2), math.sqrt(1.2) / 2.0
    assert rate(sp2, s) > 0


def test_check_balanced_depth2_monotone():
    r = check(ModelSpec(classes=8, depth=2), 30, 1.0, seed=1)
    assert r["trials"] == 30 and r["failed_trajectories"] == 0
    assert r["violations"] == 0 and r["max_increase"] < 0
    assert r["derivative_rel_err"] < 1e-6
    assert r["closed_form_rel_err"] < 1e-10 and r["max_rate_closed_form"] <= 0


def test_check_with_common_weight_decay_monotone():
    # t_end 50: later, V ~ 1e-9 near the finite fixed point and the finite difference of V
    # itself loses digits (the analytic rate does not)
    r = check(ModelSpec(classes=4, depth=2, weight_decay=0.02), 20, 1.0, seed=2, t_end=50.0)
    assert r["violations"] == 0 and r["derivative_rel_err"] < 1e-6


def test_check_reports_violations_honestly():
    """Depth 3 from a small start: the repulsion raises V; the counts are consistent."""
    r = check(ModelSpec(classes=8, depth=3), 10, 0.01, seed=0, t_end=50.0)
    assert r["violations"] > 0 and r["max_increase"] > 1e-12
    w = r["worst"]
    assert w["V1"] > w["V0"]
    r = check(ModelSpec(classes=8, depth=2), 10, 1.0, unbalanced=True, seed=0)
    assert 0 < r["violations"] <= 10


def test_cli_lyapunov_json(tmp_path):
    out = tmp_path / "ly.json"
    rc = main(["lyapunov", "--classes", "4", "--depth", "2", "--trials", "5", "--init-scale",
               "0.5", "--seed", "3", "--t-end", "20", "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    for k in ("trials", "violations", "max_increase", "derivative_rel_err"):
        assert k in d
    assert d["trials"] == 5 and d["violations"] == 0


def test_cli_lyapunov_bad_input(capsys):
    assert main(["lyapunov", "--classes", "4", "--depth", "2", "--trials", "0"]) == 2
    assert "trials" in capsys.readouterr().err
    assert main(["lyapunov", "--classes", "4", "--depth", "2", "--init-scale", "-1"]) == 2


def test_cli_derive_check_up_to_date(capsys):
    assert main(["derive", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
