"""CLI contract: JSON keys, exact save times, one-line errors with exit code 2."""
import json
import subprocess
import sys

import numpy as np
import pytest

from svdyn.cli.main import main

BAD = [
    ["flow", "--classes", "12", "--group", "walsh", "--depth", "2", "--init-scale", "0.1",
     "--t-end", "10"],
    ["flow", "--classes", "8", "--depth", "0", "--init-scale", "0.1", "--t-end", "10"],
    ["flow", "--classes", "8", "--depth", "2", "--init-scale", "-1", "--t-end", "10"],
    ["flow", "--classes", "8", "--depth", "2", "--init", "1,2", "--t-end", "10"],
    ["flow", "--classes", "8", "--depth", "2", "--init", "1,2,3,4,5,6,nan", "--t-end", "10"],
    ["flow", "--classes", "8", "--depth", "2", "--init-scale", "0.1", "--t-end", "-5"],
    ["flow", "--classes", "8", "--depth", "2", "--init-scale", "0.1", "--t-end", "10",
     "--loss", "hinge"],
    ["flow", "--classes", "8", "--depth", "2", "--init-scale", "0.1", "--t-end", "10",
     "--weight-decay", "-0.1"],
    ["flow", "--classes", "8", "--depth", "2", "--init-scale", "0.1", "--t-end", "10",
     "--weight-decay", "0.1,0.2,0.3"],
    ["flow", "--classes", "6", "--group", "cyclic", "--depth", "2", "--init", "1,2,3,4,5",
     "--t-end", "10"],
    ["flow", "--classes", "10", "--group", "2,3", "--depth", "2", "--init-scale", "1",
     "--t-end", "10"],
    ["flow", "--classes", "8", "--depth", "2", "--init-scale", "0.1", "--t-end", "10",
     "--rtol", "0"],
    ["descend", "--classes", "8", "--depth", "2", "--init-scale", "0.1", "--lr", "0",
     "--steps", "10"],
    ["descend", "--classes", "8", "--depth", "2", "--init-scale", "0.1", "--lr", "0.1",
     "--steps", "-3"],
    ["flow", "--classes", "8", "--depth", "2", "--t-end", "10"],
    ["flow", "--classes", "eight", "--depth", "2", "--init-scale", "1", "--t-end", "10"],
    ["flow", "--classes", "8", "--depth", "2", "--init-file", "/nonexistent.npy",
     "--t-end", "10"],
]


@pytest.mark.parametrize("argv", BAD)
def test_bad_input_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "error" in err


def test_bad_input_subprocess_no_traceback():
    r = subprocess.run([sys.executable, "-m", "svdyn.cli.main", *BAD[0]], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cyclic" in r.stderr


NO_NUMBA = r"""
import contextlib, io, json, sys
from svdyn.cli.main import main
argvs = json.loads(sys.argv[1])
codes = []
for argv in argvs:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(main(argv))
print(json.dumps({"codes": codes, "numba": "numba" in sys.modules,
                  "torch": "torch" in sys.modules}))
"""


def test_help_and_argument_errors_without_numba():
    """--help, <cmd> --help and bad arguments answer without importing numba (or torch)."""
    from svdyn.cli.dynamics import OPTIMIZER_NAMES
    from svdyn.optimizers import OPTIMIZERS
    assert OPTIMIZER_NAMES == tuple(OPTIMIZERS)      # the CLI's copy of the names
    helps = [["--help"]] + [[c, "--help"] for c in
                            ("flow", "descend", "demo", "validate", "basin", "report",
                             "stability", "warmup", "derive")]
    r = subprocess.run([sys.executable, "-c", NO_NUMBA, json.dumps(helps + BAD)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["codes"] == [0] * len(helps) + [2] * len(BAD)
    assert not got["numba"] and not got["torch"]


def test_flow_json_contract(tmp_path):
    out = tmp_path / "f.json"
    png = tmp_path / "f.png"
    rc = main(["flow", "--classes", "6", "--group", "cyclic", "--depth", "3", "--init",
               "0.2,0.3,0.4,0.3,0.2", "--t-end", "1000", "--save-at", "1,10,100,1000",
               "--json", str(out), "--plot", str(png)])
    assert rc == 0 and png.stat().st_size > 1000
    d = json.loads(out.read_text())
    for key in ("config", "times", "z", "s", "loss", "min_margin", "status"):
        assert key in d
    assert d["times"] == [0.0, 1.0, 10.0, 100.0, 1000.0]
    assert np.asarray(d["z"]).shape == (5, 6) and np.asarray(d["s"]).shape == (5, 3, 6)
    assert d["status"] == "ok" and d["config"]["classes"] == 6
    np.testing.assert_allclose(d["z"][0], [0, 0.2, 0.3, 0.4, 0.3, 0.2], rtol=1e-14)
    assert "version" in d and d["config"]["depth"] == 3


def test_flow_log_time_flag(tmp_path):
    """--log-time integrates in log(1 + t): the same saved states as the t clock (to the
    tolerance), fewer steps, and the JSON stats say which clock ran."""
    runs = {}
    for flag in ([], ["--log-time"]):
        out = tmp_path / f"f{len(flag)}.json"
        rc = main(["flow", "--classes", "8", "--depth", "3", "--init-scale", "0.5", "--seed",
                   "2", "--t-end", "1e9", "--save-at", "1,1e3,1e6", "--json", str(out)] + flag)
        assert rc == 0
        runs[bool(flag)] = json.loads(out.read_text())
    t, lg = runs[False], runs[True]
    assert lg["times"] == t["times"] == [0.0, 1.0, 1e3, 1e6, 1e9]
    assert lg["stats"]["log_time"] is True and t["stats"]["log_time"] is False
    assert lg["stats"]["accepted_steps"][0] < t["stats"]["accepted_steps"][0]
    np.testing.assert_allclose(lg["s"], t["s"], rtol=1e-7)


def test_descend_json_and_unbalanced_init_file(tmp_path):
    s = np.abs(np.random.default_rng(0).uniform(0.5, 1.0, (3, 4)))
    np.save(tmp_path / "s.npy", s)
    out = tmp_path / "d.json"
    rc = main(["descend", "--classes", "4", "--depth", "3", "--init-file",
               str(tmp_path / "s.npy"), "--lr", "0.5", "--steps", "20", "--save-every", "7",
               "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["times"] == [0, 7, 14, 20]
    np.testing.assert_array_equal(np.asarray(d["s"][0]), s)


def test_init_scale_seeded_and_paired(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for p in (a, b):
        main(["flow", "--classes", "7", "--group", "cyclic", "--depth", "2", "--init-scale",
              "0.3", "--seed", "5", "--t-end", "1", "--json", str(p)])
    za, zb = (np.asarray(json.loads(p.read_text())["z"][0]) for p in (a, b))
    np.testing.assert_array_equal(za, zb)
    assert za[0] == 0 and za[1] == za[6] and za[2] == za[5]
    assert np.all((za[1:] >= 0.15) & (za[1:] <= 0.45))


def test_demo_writes_outputs(tmp_path):
    rc = main(["demo", "--out", str(tmp_path / "demo"), "--t-end", "1e4", "--depths", "2,3"])
    assert rc == 0
    txt = (tmp_path / "demo" / "summary.txt").read_text()
    assert "rank" in txt
    for f in ("modes.png", "depth2.json", "depth3.png"):
        assert (tmp_path / "demo" / f).stat().st_size > 100
