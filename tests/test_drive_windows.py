"""``stepper.drive`` splits large batches into windows of trajectories: results must not
depend on how a batch is sliced or split (each trajectory's state is complete between
slices)."""
import numpy as np

import svdyn.stepper as st
from svdyn.descent import descend
from svdyn.integrate import flow
from svdyn.spec import ModelSpec, random_init_z


def test_windowed_batches_equal_whole_batches(monkeypatch):
    spec = ModelSpec(6, 3, group="cyclic", weight_decay=1e-3)
    S = spec.balanced(random_init_z(spec, 0.5, np.random.default_rng(0), batch=40))
    whole_f = flow(spec, S, t_end=1e6, progress=False)
    whole_g = descend(spec, S, 0.3, 500, save_every=50, progress=False)
    calls = []
    real = st._window

    def spy(run, lo, hi):
        calls.append((lo, hi))
        return real(run, lo, hi)
    # tiny slices and windows: many windows of 8, a few attempts each
    monkeypatch.setattr(st, "SLICE_SECONDS", 1e-6)
    monkeypatch.setattr(st, "WINDOW_MIN", 8)
    monkeypatch.setattr(st, "WINDOW_STEPS", 3)
    monkeypatch.setattr(st, "_window", spy)
    split_f = flow(spec, S, t_end=1e6, progress=False)
    split_g = descend(spec, S, 0.3, 500, save_every=50, progress=False)
    assert calls and all(hi - lo <= 32 for lo, hi in calls)   # the batch was split
    assert {lo for lo, _ in calls} >= {8, 16, 24, 32}          # every window was visited
    for a, b in ((whole_f, split_f), (whole_g, split_g)):
        np.testing.assert_array_equal(a.s, b.s)
        np.testing.assert_array_equal(a.loss, b.loss)
        assert a.status == b.status
    assert whole_f.stats["accepted_steps"] == split_f.stats["accepted_steps"]
    assert whole_f.stats["t_steady"] == split_f.stats["t_steady"]
