"""Compiled loops that cannot hang or raise: non-finite starts and steps, huge weight decay,
every attempt counted, Ctrl-C honoured between slices (flow, descend, flow_y)."""
import _thread
import threading
import time

import numpy as np
import pytest

from svdyn.descent import descend
from svdyn.integrate import flow
from svdyn.spec import ModelSpec
from svdyn.stepper import STATUS_MESSAGES, NON_FINITE, STEP_TOO_SMALL


def test_overflowing_start_is_a_status_not_a_hang():
    spec = ModelSpec(4, 3)
    s0 = np.full((3, 4), 1e200)  # z = 1e600 overflows: the first field is nan
    tr = flow(spec, s0, 1e6)
    assert tr.status == STATUS_MESSAGES[NON_FINITE]
    assert tr.stats["accepted_steps"][0] == 0 and np.isnan(tr.s[-1]).all()
    b = flow(spec, np.stack([s0, np.full((3, 4), 0.5)]), 10.0)
    assert b.status[0] == STATUS_MESSAGES[NON_FINITE] and b.status[1] == "ok"


def test_huge_weight_decay_is_a_status_not_an_exception():
    spec = ModelSpec(4, 2, weight_decay=1e308)
    tr = flow(spec, spec.balanced(np.array([0.0, 1, 1, 1])), 10.0)
    assert tr.status in (STATUS_MESSAGES[NON_FINITE], STATUS_MESSAGES[STEP_TOO_SMALL])
    d = descend(spec, spec.balanced(np.array([0.0, 1, 1, 1])), 1.0, 10)
    assert d.status.startswith("state became non-finite")


def test_every_attempt_counts_toward_max_steps():
    # a stiff converging flow rejects many steps; the limit counts them all
    spec = ModelSpec(8, 3, loss="mse", weight_decay=1e-6)
    s0 = spec.balanced(np.full(8, 0.5))
    tr = flow(spec, s0, 1e12, max_steps=300, steady_handoff=False)
    a, r = tr.stats["accepted_steps"][0], tr.stats["rejected_steps"][0]
    assert tr.status.startswith("max_steps") and a + r == 300 and r > 0


def _interrupt_after(seconds):
    t = threading.Timer(seconds, _thread.interrupt_main)
    t.start()
    return t


@pytest.mark.parametrize("what", ["flow", "descend"])
def test_ctrl_c_stops_a_long_run_within_a_second(what):
    spec = ModelSpec(64, 4, loss="mse", weight_decay=1e-9)
    s0 = spec.balanced(np.full(64, 0.3))
    run = {"flow": lambda: flow(spec, s0, 1e12, save_at=[1e12], max_steps=10**9,
                                steady_handoff=False),
           "descend": lambda: descend(spec, s0, 0.1, 10**9, 10**9)}[what]
    run_small = {"flow": lambda: flow(spec, s0, 1.0), "descend": lambda: descend(spec, s0, 0.1, 2)}
    run_small[what]()  # compile first: the bound below is about the loop, not the compiler
    t0 = time.perf_counter()
    timer = _interrupt_after(0.5)
    with pytest.raises(KeyboardInterrupt):
        run()  # would take many minutes
    dt = time.perf_counter() - t0
    timer.cancel()
    assert dt < 0.5 + 2.0, dt  # a slice is ~0.2 s; 2 s of slack for a loaded machine
