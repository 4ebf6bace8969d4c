"""Trajectory JSON / .npz round trips keep config, version, seed and arrays."""
import json

import numpy as np

from svdyn import __version__
from svdyn.integrate import flow
from svdyn.result import Trajectory
from svdyn.spec import ModelSpec


def test_round_trip_json_and_npz(tmp_path):
    spec = ModelSpec(6, 3, 2, "ls:0.05", (0.0, 0.01, 0.0), "cyclic")
    z = np.array([0.0, 0.3, 0.2, 0.5, 0.2, 0.3])
    tr = flow(spec, spec.balanced(z), 100.0)
    tr.meta.update({"seed": 7, "init": "values"})
    for name in ("t.json", "t.npz"):
        p = tr.save(tmp_path / name)
        back = Trajectory.load(p)
        assert back.spec == spec and back.meta["seed"] == 7 and back.status == "ok"
        np.testing.assert_array_equal(back.s, tr.s)
        np.testing.assert_array_equal(back.times, tr.times)
        np.testing.assert_array_equal(back.z, tr.z)
    d = json.loads((tmp_path / "t.json").read_text())
    assert d["version"] == __version__ and d["config"]["weight_decay"] == [0.0, 0.01, 0.0]


def test_nan_written_as_null(tmp_path):
    spec = ModelSpec(4, 2)
    tr = flow(spec, spec.balanced(np.array([0, 0.1, 0.1, 0.1])), 1e6, max_steps=3)
    d = json.loads(tr.save(tmp_path / "x.json").read_text())
    assert d["loss"][-1] is None and d["status"].startswith("max_steps")
