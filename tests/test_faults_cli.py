"""Bad input, extremes and result checks for every command, in-process (tests/faults_cases.py).

Each case runs ``svdyn.cli.main.main(argv)`` and must end in the expected category ``pass``:
bad input -> exit 2 with one line ``svdyn <command>: error: <option> ...`` and no file written;
valid input -> exit 0 (or a status, exit 1) with standard-JSON outputs; result checks (critical
points within the stated gradient tolerance, failed runs refused or reported with the time
reached, divergence as a status, ``lyapunov --fail-on-violation``) hold.
"""
import argparse
import signal
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faults_cases as fc
from svdyn.groups import SpecError

CASES = fc.all_cases()


@pytest.fixture(scope="module")
def fixdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    fc.make_fixtures(d)
    return d


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, fixdir):
    fc.cleanup(fixdir)
    rc, out, err, tb = fc.run_case(case, fixdir)
    cat, detail = fc.judge(case, rc, out, err, tb, fixdir)
    assert cat == "pass", f"{cat}: {detail}"


def test_every_command_and_numeric_option_is_covered():
    """Each subcommand has cases, and every option whose type is a range-checked number has
    bad-value cases (new options get covered by adding them to faults_cases.NUMERIC)."""
    from svdyn.cli.common import Num
    from svdyn.cli.main import build_parser
    p = build_parser()
    subs = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    ids = {c.id for c in CASES}
    for name, sp in subs.choices.items():
        if name not in fc.BASE:
            continue            # commands added by other modules: covered by their own tests
        assert any(f":{name}" in i for i in ids), name
        for a in sp._actions:
            if isinstance(a.type, Num) and a.option_strings:
                opt = a.option_strings[0]
                assert opt in fc.NUMERIC.get(name, {}), f"{name} {opt} has no bad-value cases"


# ----------------------------------------------------------------------------- hypothesis
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12))
def test_num_parser_total(text):
    """Num accepts exactly the finite numbers in range (integers also as 1e3); anything else
    is an ArgumentTypeError naming the value."""
    from svdyn.cli.common import Num
    for t in (Num(int, lo=1, hi=10 ** 6), Num(float, lo=0.0, lo_open=True, hi=1e6)):
        try:
            v = t(text)
        except argparse.ArgumentTypeError as e:
            assert repr(text) in str(e)
            continue
        ref = float(text.strip())
        assert np.isfinite(ref) and (0 < ref <= 1e6) and (t.kind is float or ref >= 1)
        assert v == (int(ref) if t.kind is int else ref)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.just(""), st.just(" ")), min_size=1, max_size=6))
def test_numlist_parser(items):
    from svdyn.cli.common import NumList
    text = ",".join(str(x) for x in items)
    try:
        vals = NumList(float, lo=0.0)(text)
    except argparse.ArgumentTypeError as e:
        assert repr(text) in str(e)
        assert any(isinstance(x, str) or not np.isfinite(x) or x < 0 for x in items)
        return
    assert vals == [float(x) for x in items]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_state_file_random_bytes(tmp_path, data):
    """Any content: a float array or a one-line SpecError naming the option, nothing else."""
    from svdyn.io import load_state_file
    f = tmp_path / "x.npy"
    f.write_bytes(data)
    try:
        arr, _ = load_state_file(f, "--init-file")
    except SpecError as e:
        assert str(e).startswith("--init-file") and "\n" not in str(e)
        return
    assert arr.dtype == np.float64


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=3),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["s", "z", "x", "config", "times"]), c, max_size=3),
                    max_leaves=12))
def test_state_file_random_json(tmp_path, obj):
    import json
    from svdyn.io import load_state_file
    f = tmp_path / "x.json"
    f.write_text(json.dumps(obj))
    try:
        arr, _ = load_state_file(f, "--init-file")
    except SpecError as e:
        assert str(e).startswith("--init-file") and "\n" not in str(e)
        return
    assert arr.dtype == np.float64


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(), st.none(), st.integers(-10, 10 ** 400)), max_size=6))
def test_jsonable_strict(vals):
    """The one JSON writer never emits NaN / Infinity."""
    import json
    from svdyn.io import dumps_json
    obj = {"a": np.array([v for v in vals if isinstance(v, float)], dtype=float), "b": vals}
    text = dumps_json(obj)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))


# ----------------------------------------------------------------------------- write faults
@pytest.mark.parametrize("fault, rc_want, msg", [
    (OSError(28, "No space left on device"), 1, "svdyn flow: error: No space left on device"),
    (KeyboardInterrupt(), 130, "svdyn flow: interrupted"),
])
def test_fault_while_writing_leaves_no_file(fault, rc_want, msg, tmp_path, monkeypatch):
    """A write that fails half-way (disk full) or is interrupted leaves neither the output nor
    a temporary file, and ends with one line."""
    import contextlib
    import io
    import pathlib
    from svdyn.cli.main import main

    def broken(self, text, *a, **k):
        pathlib.Path.write_bytes(self, text[: len(text) // 2].encode())   # half written
        raise fault
    monkeypatch.setattr(pathlib.Path, "write_text", broken)
    out = tmp_path / "o.json"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(fc.BASE["flow"] + ["--json", str(out)])
    assert rc == rc_want
    assert err.getvalue().strip().splitlines() == [msg]
    assert list(tmp_path.iterdir()) == []


def test_interrupt_inside_the_temp_file_creation_leaves_nothing(tmp_path, monkeypatch):
    """An interrupt that lands right after the temporary file exists, before its creating call
    returns (a deferred SIGINT / SIGTERM can land at any bytecode), leaves no file behind."""
    import os
    from svdyn import io as sio
    real_open = os.open

    def open_then_interrupt(path, flags, mode=0o777):
        os.close(real_open(path, flags, mode))
        raise KeyboardInterrupt
    monkeypatch.setattr(sio.os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        sio.write_text(tmp_path / "o.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_failed_write(tmp_path, monkeypatch):
    """Atomic replace: a failed rewrite keeps the previous complete file."""
    import contextlib
    import io
    import pathlib
    from svdyn.cli.main import main
    out = tmp_path / "o.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(fc.BASE["flow"] + ["--json", str(out)]) == 0
    before = out.read_text()

    def broken(self, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(pathlib.Path, "write_text", broken)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(fc.BASE["flow"] + ["--json", str(out)]) == 1
    assert out.read_text() == before and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("sig, rc_want, word", [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_error_after_a_swallowed_signal_is_an_interrupt(sig, rc_want, word, monkeypatch):
    """A signal whose KeyboardInterrupt is swallowed (numba's LLVM object-code hook is a
    ctypes callback, which prints and drops exceptions) and followed by another error (numba
    then fails to cache the half-compiled kernel) ends as an interrupt, in one line."""
    import contextlib
    import io
    import os
    import svdyn.integrate as integ
    from svdyn.cli.main import main

    def swallowing(*args, **kw):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(1.0)   # the handler runs here and raises
        except KeyboardInterrupt:
            pass              # what a ctypes callback does with it
        raise RuntimeError("no compiled object yet for <Library 'char_transform'>")
    monkeypatch.setattr(integ, "flow", swallowing)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(fc.BASE["flow"])
    assert rc == rc_want and err.getvalue().strip().splitlines() == [f"svdyn flow: {word}"]
    # without a signal the same error is a bug and keeps its traceback
    monkeypatch.setattr(integ, "flow", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("bug")))
    with pytest.raises(RuntimeError, match="bug"):
        main(fc.BASE["flow"])
