"""Faults seen from outside the process: Ctrl-C, true tracebacks, unwritable outputs and an
unwritable numba cache folder (each test starts ``python -m svdyn.cli.main``)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
    "MPLBACKEND": "Agg"}
CLI = [sys.executable, "-m", "svdyn.cli.main"]
# a flow that runs for minutes (mse, tiny weight decay, to t = 1e12: ~2M steps)
LONG_FLOW = ["flow", "--classes", "8", "--depth", "3", "--loss", "mse", "--weight-decay", "1e-9",
             "--init-scale", "0.1", "--t-end", "1e12", "--max-steps", "100000000"]


def _run(args, **kw):
    return subprocess.run(CLI + args, capture_output=True, text=True, env=kw.pop("env", ENV),
                          timeout=kw.pop("timeout", 120), **kw)


def _interrupt_after(args, delay, tmp_path, sig=signal.SIGINT):
    p = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV, cwd=tmp_path)
    time.sleep(delay)
    t0 = time.monotonic()
    p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"no exit 30 s after {signal.Signals(sig).name}: {err[-300:]}")
    return p.returncode, time.monotonic() - t0, out, err


def test_sigint_during_flow_exit_130_no_file(tmp_path):
    out = tmp_path / "run.json"
    rc, dt, _, err = _interrupt_after(LONG_FLOW + ["--json", str(out)], 6.0, tmp_path)
    assert rc == 130, err[-500:]
    assert err.strip().splitlines()[-1] == "svdyn flow: interrupted" and "Traceback" not in err
    assert dt < 2.5, f"took {dt:.1f} s to stop"
    assert sorted(os.listdir(tmp_path)) == [], "left files behind"


def test_sigterm_during_flow_exit_143_no_file(tmp_path):
    """SIGTERM is handled like Ctrl-C (the output's temporary file removed), exit 143."""
    out = tmp_path / "run.json"
    rc, dt, _, err = _interrupt_after(LONG_FLOW + ["--json", str(out)], 6.0, tmp_path,
                                      signal.SIGTERM)
    assert rc == 143, err[-500:]
    assert err.strip().splitlines()[-1] == "svdyn flow: terminated" and "Traceback" not in err
    assert dt < 2.5, f"took {dt:.1f} s to stop"
    assert sorted(os.listdir(tmp_path)) == [], "left files behind"


def test_sigint_during_startup(tmp_path):
    rc, dt, _, err = _interrupt_after(LONG_FLOW, 1.0, tmp_path)
    assert rc == 130 and "Traceback" not in err, err[-500:]


@pytest.mark.parametrize("args, option", [
    (["flow", "--classes", "4", "--depth", "3", "--init", "0.1,0.1,0.12", "--t-end", "1",
      "--npz", "/dev/full"], "--npz"),
    (["classify", "--json", "x.json"], "svdyn classify TRAJ.json"),
    (["flow", "--classes", "4", "--depth", "3", "--init-file", "/proc/version", "--t-end",
      "1"], "--init-file"),
    (["report", "--quick", "--out", "/proc/svdyn/REPORT.md"], "--out"),
])
def test_subprocess_one_line_no_traceback(args, option, tmp_path):
    t0 = time.monotonic()
    r = _run(args, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-500:]
    line, = r.stderr.strip().splitlines()
    assert line.startswith(f"svdyn {args[0]}: error: ") and option in line
    assert not os.path.exists("/dev/full.npz")
    assert time.monotonic() - t0 < 60          # refused before any work


def test_unwritable_numba_cache_dir(tmp_path):
    """NUMBA_CACHE_DIR that cannot be created: a one-line note, and the command still runs."""
    env = {**ENV, "NUMBA_CACHE_DIR": "/proc/svdyn-no-cache"}
    r = _run(["maxmargin", "--classes", "4", "--depth", "3", "--json", str(tmp_path / "m.json")],
             env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-500:]
    assert "NUMBA_CACHE_DIR" in r.stderr and "Traceback" not in r.stderr
    # K = 4 at L = 3 lies below the crossover L* = 2 ln 2 / ln(3/2) = 3.42: NC (rank 3)
    assert json.loads((tmp_path / "m.json").read_text())["optimum"]["rank"] == 3


@pytest.mark.slow
def test_unwritable_numba_cache_dir_compiles(tmp_path):
    """The same for a command that compiles kernels (cold compile: minutes on 2 cores)."""
    env = {**ENV, "NUMBA_CACHE_DIR": "/proc/svdyn-no-cache"}
    r = _run(["descend", "--classes", "4", "--depth", "2", "--init", "0.1,0.1,0.12", "--lr",
              "0.1", "--steps", "5", "--json", str(tmp_path / "d.json")], env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-500:]


@pytest.mark.slow
def test_concurrent_cold_caches(tmp_path):
    """Two processes compiling into one empty cache folder at once give the same result."""
    env = {**ENV, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    args = ["descend", "--classes", "4", "--depth", "3", "--init", "0.1,0.1,0.12", "--lr",
            "0.1", "--steps", "50"]
    ps = [subprocess.Popen(CLI + args + ["--json", str(tmp_path / f"{i}.json")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i in range(2)]
    for p in ps:
        p.communicate(timeout=900)
        assert p.returncode == 0
    a, b = (json.loads((tmp_path / f"{i}.json").read_text())["s"] for i in range(2))
    assert a == b


_EXEC_LOOP = """import sys
from svdyn.cli.main import _forget_caught_interrupt
sys.stderr.write("ready\\n")
sys.stderr.flush()
try:
    exec("while True: pass")       # a KeyboardInterrupt leaves code run from a string
except KeyboardInterrupt:
    if sys.argv[1:] == ["forget"]:
        _forget_caught_interrupt()
    sys.exit(130)
"""


@pytest.mark.parametrize("forget, rc", [(False, -signal.SIGINT), (True, 130)])
def test_caught_interrupt_from_exec_exits_130_under_dash_m(tmp_path, forget, rc):
    """The CPython behaviour behind a CI failure, and its cure: a Ctrl-C caught after it left
    ``exec``'d code still ends a ``python -m`` process by SIGINT unless the flag is cleared."""
    (tmp_path / "execloop.py").write_text(_EXEC_LOOP)
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV["PYTHONPATH"]])}
    p = subprocess.Popen([sys.executable, "-m", "execloop"] + (["forget"] if forget else []),
                         env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stderr.readline() == "ready\n"     # imports done
    time.sleep(0.3)                               # inside the exec'd loop
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == rc, err[-300:]
