"""progress.py: bars on stderr only when asked or on a terminal; compile notices only when
numba really compiles."""
import io
import os
import subprocess
import sys
import textwrap

import pytest

from svdyn import progress
from svdyn.progress import compile_notice, progress_bar, progress_enabled


def test_enabled_resolution(monkeypatch):
    monkeypatch.delenv("SVDYN_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a tty
    assert progress_enabled(None) is False
    assert progress_enabled(True) is True
    assert progress_enabled(False) is False
    monkeypatch.setenv("SVDYN_PROGRESS", "1")
    assert progress_enabled(None) is True
    assert progress_enabled(False) is False  # an explicit argument wins
    monkeypatch.setenv("SVDYN_PROGRESS", "0")
    assert progress_enabled(None) is False


def test_bar_off_is_silent_noop(monkeypatch):
    monkeypatch.delenv("SVDYN_PROGRESS", raising=False)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with progress_bar(5, "work") as bar:
        for _ in range(5):
            bar.update(1)
        bar.set_postfix_str("x")
    assert bar.n == 5
    assert err.getvalue() == ""


def test_bar_forced_on_writes_stderr_not_stdout(monkeypatch, capsys):
    monkeypatch.delenv("SVDYN_PROGRESS", raising=False)
    with progress_bar(3, "forced", enabled=True, unit="run") as bar:
        for _ in range(3):
            bar.update(1)
    out, err = capsys.readouterr()
    assert out == ""
    assert "forced" in err and "/3" in err and "run" in err


def test_compile_notice_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SVDYN_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "_NOTICED", set())
    buf = io.StringIO()
    with compile_notice("unit-test", 12, stream=buf) as shown:
        pass
    assert shown is True
    line = buf.getvalue()
    assert line.count("\n") == 1
    assert "compiling unit-test kernels for the first time" in line and "~12 s" in line
    # the marker lives inside NUMBA_CACHE_DIR: a fresh process (simulated) sees it and is silent
    monkeypatch.setattr(progress, "_NOTICED", set())
    buf2 = io.StringIO()
    with compile_notice("unit-test", 12, stream=buf2) as shown2:
        pass
    assert shown2 is False and buf2.getvalue() == ""
    # a failing block leaves no marker
    monkeypatch.setattr(progress, "_NOTICED", set())
    with pytest.raises(RuntimeError):
        with compile_notice("fails", 1, stream=io.StringIO()):
            raise RuntimeError
    assert not progress._marker("fails").exists()


def test_compile_notice_silenced_by_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SVDYN_PROGRESS", "0")
    monkeypatch.setattr(progress, "_NOTICED", set())
    buf = io.StringIO()
    with compile_notice("quiet", 3, stream=buf) as shown:
        pass
    assert shown is False and buf.getvalue() == ""


def test_compile_notice_follows_numba_cache(tmp_path):
    """With dispatchers: a notice in a fresh cache, none once numba has cached the kernel."""
    mod = tmp_path / "nbmod.py"
    mod.write_text("from numba import njit\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    script = textwrap.dedent("""
        import io, sys
        sys.path.insert(0, sys.argv[1])
        import nbmod
        from svdyn.progress import compile_notice
        buf = io.StringIO()
        with compile_notice("probe", 5, [nbmod.f], stream=buf) as shown:
            nbmod.f(1)
        with compile_notice("probe-again", 5, [nbmod.f], stream=buf) as again:
            nbmod.f(2)
        print(int(shown), int(again))
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("SVDYN_PROGRESS", None)
    run = lambda: subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env,
                                 capture_output=True, text=True, check=True).stdout.split()
    assert run() == ["1", "0"]  # first process compiles; in-process signatures then known
    assert run() == ["0", "0"]  # second process: numba's on-disk index is found


def test_track_and_step_callback(monkeypatch, capsys):
    from svdyn.progress import step_callback, track
    monkeypatch.delenv("SVDYN_PROGRESS", raising=False)
    assert list(track(range(4), "loop", enabled=False)) == [0, 1, 2, 3]
    assert list(track(iter("ab"), "gen", enabled=True)) == ["a", "b"]
    assert "gen" in capsys.readouterr().err
    assert step_callback("off", enabled=False) is None
    cb = step_callback("gd", enabled=True)
    cb(5, 10, 0.5)
    cb(10, 10, 0.25)
    err = capsys.readouterr().err
    assert "gd" in err and "/10" in err


def test_flow_default_progress_shows_a_bar_only_past_the_first_slice(monkeypatch, capsys):
    """progress=None: a flow that ends within its first compiled slice never opens a bar; one
    that goes on opens it then, and the bar counts every save time (the ones reached before it
    opened too); the states equal those of progress=False."""
    import numpy as np

    from svdyn import ModelSpec
    from svdyn.integrate import flow
    spec = ModelSpec(4, 2)
    s0 = spec.balanced(np.array([0.0, 0.4, 0.5, 0.6]))
    monkeypatch.setenv("SVDYN_PROGRESS", "1")
    flow(spec, s0, 1.0, progress=False)   # compiled and known: no notice below
    capsys.readouterr()
    short = flow(spec, s0, 1.0)
    assert capsys.readouterr().err == ""
    # fixed steps of 1e-3 to t = 60: 60,000 attempts, past the first slice (~20,000 here)
    import svdyn.integrate as integrate
    bars = []

    def kept(*a, **k):   # the real tqdm bar, kept to read its count afterwards
        bars.append(progress_bar(*a, **k))
        return bars[-1]
    monkeypatch.setattr(integrate, "progress_bar", kept)
    kw = dict(save_at=np.linspace(0, 60, 7), first_step=1e-3, adaptive=False)
    long = flow(spec, s0, **kw)
    assert "flow" in capsys.readouterr().err
    assert len(bars) == 1 and bars[0].total == 7 and bars[0].n == 7
    assert long.stats["accepted_steps"][0] >= 60_000   # (+1: a sliver of round-off at the end)
    ref = flow(spec, s0, progress=False, **kw)
    np.testing.assert_array_equal(long.s, ref.s)
    np.testing.assert_array_equal(short.s, flow(spec, s0, 1.0, progress=False).s)
    # any other true value forces the bar on, as progress_enabled says, for a short run too
    monkeypatch.setenv("SVDYN_PROGRESS", "0")
    bars.clear()
    flow(spec, s0, 1.0, progress=1)
    assert len(bars) == 1 and bars[0].n == bars[0].total
