"""Adversarial cases for every svdyn command: bad numbers, bad lists, bad init files, bad output
paths, parser errors, result checks and grammar changes.

Used by ``tests/test_faults_cli.py`` (in-process, pytest) and ``tests/faults_count.py`` (counts
outcomes by category, each case in a forked child with a timeout; run by hand). A case's argv
may contain ``{d}``, the fixture folder made by :func:`make_fixtures`.

Outcome categories (:func:`judge`): ``pass`` (clean error or correct run), ``traceback`` (an
exception escaped ``main``), ``hang`` (timed out; count script only), ``silent`` (bad input
accepted with exit 0, an invalid output, or a wrong result reported as right), ``unclean``
(refused valid input, or an error that is not one line ``svdyn <command>: error: ...`` naming
the option, or the wrong exit code).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import traceback
from dataclasses import dataclass, field

import numpy as np

D = "{d}"


@dataclass
class Case:
    id: str
    argv: list
    expect: str = "error"          # error | ok | status | ok_or_status | custom
    names: tuple = ()              # strings the error line must contain
    outputs: tuple = ()            # files that must hold strict JSON after the run
    absent: tuple = ()             # paths that must not exist after the run
    check: object = None           # custom(rc, out, err, d) -> None | (category, detail)

    @property
    def command(self) -> str:
        return self.argv[0]


def sub(x, d):
    return x.replace(D, str(d)) if isinstance(x, str) else x


# ----------------------------------------------------------------------------- bases
BASE = {
    "flow": ["flow", "--classes", "4", "--depth", "3", "--init", "0.1,0.1,0.12",
             "--t-end", "10"],
    "descend": ["descend", "--classes", "4", "--depth", "3", "--init", "0.1,0.1,0.12",
                "--lr", "0.1", "--steps", "10"],
    "demo": ["demo", "--out", D + "/demo", "--t-end", "10", "--depths", "2"],
    "validate": ["validate", "--classes", "4", "--depth", "2", "--width", "4", "--lr", "0.1",
                 "--steps", "5", "--quiet"],
    "critical": ["critical", "--classes", "4", "--depth", "3", "--weight-decay", "1e-2",
                 "--family", "dnc"],
    "hessian": ["hessian", "--classes", "4", "--depth", "3", "--weight-decay", "1e-2",
                "--loss", "mse", "--width", "5"],
    "maxmargin": ["maxmargin", "--classes", "4", "--depth", "3"],
    "basin": ["basin", "--classes", "4", "--depth", "3", "--init-scale", "0.1",
              "--critical-ratio", "--bracket-width", "0.05"],
    "code": ["code", "--dim", "2", "--classes", "4", "--restarts", "2"],
    "classify": ["classify", D + "/traj.json"],
    "report": ["report", "--quick", "--out", D + "/rep/REPORT.md", "--figures",
               D + "/rep/figures"],
    "derive": ["derive", "--kernels-only", "--kernels", D + "/kern.py"],
    "lyapunov": ["lyapunov", "--classes", "4", "--depth", "2", "--trials", "2", "--t-end", "10"],
    "stability": ["stability", "--classes", "4", "--depth", "2", "--steps", "5",
                  "--no-linearised", "--device", "cpu"],
}
INIT_OPTS = ("--init", "--init-scale", "--init-file")


def with_opt(base, opt, value=None):
    """``base`` with ``opt`` (and its value) removed, then ``opt=value`` appended. Setting one
    of the init options removes the others (they are mutually exclusive)."""
    drop = INIT_OPTS if opt in INIT_OPTS else (opt,)
    out, skip = [], False
    for i, a in enumerate(base):
        if skip:
            skip = False
            continue
        if a in drop:
            skip = i + 1 < len(base) and not base[i + 1].startswith("--")
            continue
        out.append(a)
    return out + ([opt] if value is None else [f"{opt}={value}"])


# ----------------------------------------------------------------------------- numbers
# (kind, lower, lower_open, upper): every value outside must be refused naming the option
POS = ("float", 0.0, True, None)
NONNEG = ("float", 0.0, False, None)
SEED = ("int", 0, False, None)
MODEL = {"--classes": ("int", 2, False, None), "--depth": ("int", 1, False, None),
         "--samples-per-class": ("int", 1, False, None)}
NUMERIC = {
    "flow": {**MODEL, "--init-scale": POS, "--init-mode0": NONNEG, "--seed": SEED,
             "--t-end": POS, "--rtol": ("float", 0.0, True, 1.0), "--atol": POS,
             "--max-steps": ("int", 1, False, None)},
    "descend": {**MODEL, "--init-scale": POS, "--init-mode0": NONNEG, "--seed": SEED,
                "--lr": POS, "--steps": ("int", 0, False, None),
                "--save-every": ("int", 1, False, None), "--momentum": ("float", 0.0, False, 1.0),
                "--eps": POS, "--alpha": ("float", 0.0, False, 1.0)},
    "demo": {"--init-scale": POS, "--seed": SEED, "--t-end": POS},
    "validate": {**MODEL, "--lr": POS, "--steps": ("int", 0, False, None),
                 "--save-every": ("int", 1, False, None),
                 "--svd-every": ("int", 1, False, None), "--init-scale": POS,
                 "--init-mode0": NONNEG, "--seed": SEED, "--frame-seed": SEED,
                 "--seeds": ("int", 1, False, None), "--order-check": POS,
                 "--order-levels": ("int", 2, False, None), "--momentum": ("float", 0.0, False, 1.0),
                 "--eps": POS, "--alpha": ("float", 0.0, False, 1.0)},
    "critical": {**MODEL, "--grad-tol": ("float", 0.0, True, 1.0)},
    "hessian": {**MODEL, "--frame-seed": SEED},
    "maxmargin": {"--classes": MODEL["--classes"], "--depth": ("float", 1.0, False, None),
                  "--samples-per-class": MODEL["--samples-per-class"],
                  "--depth-max": ("float", 2.0, True, None), "--certify": POS,
                  "--certify-nodes": ("int", 1, False, None)},
    "basin": {"--classes": MODEL["--classes"], "--depth": MODEL["--depth"], "--init-scale": POS,
              "--bracket-width": ("float", 0.0, True, 1.0), "--r-max": POS, "--samples": ("int", 1, False, None),
              "--seed": SEED},
    "code": {"--dim": ("int", 1, False, None), "--classes": MODEL["--classes"],
             "--restarts": ("int", 1, False, None), "--seed": SEED},
    "stability": {**MODEL, "--init-scale": POS, "--init-mode0": NONNEG, "--seed": SEED,
                  "--lr": POS, "--steps": ("int", 1, False, None),
                  "--save-every": ("int", 1, False, None), "--delta": ("float", 0.0, False, 10.0),
                  "--width": ("int", 1, False, None), "--momentum": ("float", 0.0, False, 1.0),
                  "--eps": POS, "--alpha": ("float", 0.0, False, 1.0)},
    "lyapunov": {**MODEL, "--trials": ("int", 1, False, None), "--init-scale": POS,
                 "--spread": POS, "--seed": SEED, "--t-end": POS, "--init-mode0": NONNEG},
    "report": {"--workers": ("int", 1, False, 4096)},
}
GENERIC_BAD = ["abc", "nan", "inf", "-inf", "-1", "", "1e999", "0x10"]
# lists: (option, bad values)
LISTS = {
    "flow": {"--weight-decay": ["0.1,,0.2,0.1", "0.1,", ",", "1,nan,1", "a,b,c"],
             "--init": ["0.1,,0.1,0.12", "0.1,0.1,", ",0.1,0.1,0.12", "0.1;0.1;0.12",
                        "0.1,0.1,inf", "0.1,0.1,-0.1", "1e308,1e308,1e308", "1e301,1,1"],
             "--save-at": ["1,,5", "5,", "1,nan", "-1,5", "1,20", "a"]},
    "descend": {"--weight-decay": ["0.1,,0.2,0.1"], "--init": ["0.1,,0.1,0.12"]},
    "demo": {"--depths": ["2,,3", "2,", "0", "2.5", "1e9", "nan", ""]},
    "validate": {"--width": ["4,,8", "4,", "4::8", "4:", "0", "-4", "a", "4.5", ""],
                 "--weight-decay": ["0.1,"]},
    "critical": {"--weight-decay": ["1e-2,", "nan", "1e400", "-1e-2"]},
    "hessian": {"--width": ["5,,6", "0", "5:", "a"]},
    "basin": {"--margins": ["1e2,", "1e4,1e2", "nan,1e4", "1e2,1e4,1e5", "0,1e4"],
              "--eps-range": ["1e-3,1,", "0,1,10", "1,1e-3,10", "1e-3,1,0", "1e-3,1,2.5"],
              "--r-range": ["0,1.5,", "1.5,0,10", "0,1.5,-3"]},
    "classify": {"--margins": ["1e2,", "1e4,1e2", "inf,1e4"]},
    "lyapunov": {"--weight-decay": ["0.1,,0.2"], "--init": ["0.1,,0.1,0.12"]},
}
# sane upper bounds: refused with the number in the message
TOO_BIG = [
    ("flow", "--classes", "100000000"), ("flow", "--depth", "100000"),
    ("flow", "--samples-per-class", "1e12"), ("flow", "--weight-decay", "1e308"),
    ("flow", "--max-steps", "1e15"), ("flow", "--t-end", "1e305"),
    ("flow", "--init-scale", "1e305"), ("descend", "--steps", "1e15"),
    ("demo", "--t-end", "1e305"), ("code", "--dim", "1000"), ("code", "--restarts", "1e7"),
    ("basin", "--samples", "1e9"), ("lyapunov", "--trials", "1e8"),
    ("validate", "--seeds", "1e6"), ("validate", "--order-levels", "100"),
    ("maxmargin", "--depth", "1e7"), ("maxmargin", "--depth-max", "1e9"),
    ("lyapunov", "--weight-decay", "1e308"), ("critical", "--weight-decay", "1e308"),
]


def _numeric_bad(kind, lo, lo_open, hi):
    bad = list(GENERIC_BAD)
    if lo is not None and lo > -1:
        bad.append(repr(lo) if lo_open else repr(lo - 1 if kind == "int" else lo - 0.5))
    if kind == "int":
        bad.append("1.5")
    if hi is not None:
        bad.append(repr(hi * 10 if hi else 1.0))
    return list(dict.fromkeys(bad))


def numeric_cases():
    out = []
    for cmd, opts in NUMERIC.items():
        for opt, dom in opts.items():
            for v in _numeric_bad(*dom):
                out.append(Case(f"num:{cmd}{opt}={v}", with_opt(BASE[cmd], opt, v),
                                names=(opt,)))
    for cmd, opts in LISTS.items():
        for opt, vals in opts.items():
            for v in vals:
                out.append(Case(f"list:{cmd}{opt}={v}", with_opt(BASE[cmd], opt, v),
                                names=(opt,)))
    for cmd, opt, v in TOO_BIG:
        out.append(Case(f"big:{cmd}{opt}={v}", with_opt(BASE[cmd], opt, v), names=(opt,)))
    return out


# ----------------------------------------------------------------------------- output paths
FILE_OUTPUTS = {
    "flow": {"--json": ".json", "--npz": ".npz", "--plot": ".png"},
    "descend": {"--json": ".json", "--npz": ".npz", "--plot": ".png"},
    "validate": {"--json": ".json", "--plot": ".png"},
    "critical": {"--json": ".json"}, "hessian": {"--json": ".json"},
    "maxmargin": {"--json": ".json"}, "basin": {"--json": ".json", "--plot": ".png"},
    "code": {"--json": ".json"}, "classify": {"--json": ".json"},
    "lyapunov": {"--json": ".json"}, "stability": {"--json": ".json", "--plot": ".png"},
    "report": {"--out": ".md"},
    "derive": {"--kernels": ".py"},
}
DIR_OUTPUTS = {"demo": ["--out"], "report": ["--figures", "--work"]}


def output_cases():
    out = []
    for cmd, opts in FILE_OUTPUTS.items():
        for opt, suf in opts.items():
            bad = {"empty": "", "dir": D, "devfull": "/dev/full", "devnull": "/dev/null",
                   "noparent": f"{D}/missing/out{suf}", "fileparent": f"{D}/afile/out{suf}",
                   "readonlyfs": f"/proc/svdyn-fault/out{suf}"}
            if opt == "--plot":
                bad["suffix"] = f"{D}/fig.xyz"
            for why, v in bad.items():
                absent = (f"{D}/missing", "/dev/full.npz", "/dev/null.npz", f"{D}/fig.xyz")
                out.append(Case(f"out:{cmd}{opt}:{why}", with_opt(BASE[cmd], opt, v),
                                names=(opt,), absent=absent))
    for cmd, opts in DIR_OUTPUTS.items():
        for opt in opts:
            bad = {"empty": "", "afile": f"{D}/afile", "devfull": "/dev/full",
                   "noparent": f"{D}/missing/sub", "readonlyfs": "/proc/svdyn-fault/sub"}
            for why, v in bad.items():
                out.append(Case(f"outdir:{cmd}{opt}:{why}", with_opt(BASE[cmd], opt, v),
                                names=(opt,), absent=(f"{D}/missing",)))
    return out


# ----------------------------------------------------------------------------- init files
BAD_INIT_FILES = ["empty.npy", "garbage.npy", "complex.npy", "object.npy", "strings.npy",
                  "empty.txt", "garbage.txt", "ragged.txt", "ragged.csv", "bad.csv",
                  "empty.json", "malformed.json", "number.json", "missing.json",
                  "ragged.json", "nulls.json", "nan.json", "strings.json", "bool.json",
                  "negative.npy", "wrongshape.npy", "threed.npy", "huge_product.npy",
                  "unpaired.npy", "traj_k8.json", "adir", "nonexistent.npy", "binary.bin",
                  "int_overflow.txt"]
GOOD_INIT_FILES = ["s.npy", "z.npy", "S.NPY", "s.txt", "s.csv", "z.csv", "s.json", "z.json",
                   "list.json", "s_noext", "traj.json", "traj.npz", "traj_failed.json",
                   "s.npz", "int.npy", "f32.npy", "traj_nan.json"]


def init_cases():
    out = []
    for cmd in ("flow", "descend", "lyapunov", "validate"):
        for f in BAD_INIT_FILES:
            out.append(Case(f"initfile:{cmd}:{f}", with_opt(BASE[cmd], "--init-file",
                                                             f"{D}/{f}"), names=("--init-file",)))
        out.append(Case(f"initfile:{cmd}:emptypath", with_opt(BASE[cmd], "--init-file", ""),
                        names=("--init-file",)))
    for f in GOOD_INIT_FILES:
        out.append(Case(f"initfile-ok:flow:{f}", with_opt(BASE["flow"], "--init-file",
                                                          f"{D}/{f}") + ["--json", f"{D}/o.json"],
                        expect="ok", outputs=(f"{D}/o.json",)))
    for f in ("s.npy", "traj.json", "z.npy"):
        out.append(Case(f"initfile-ok:lyapunov:{f}",
                        with_opt(with_opt(BASE["lyapunov"], "--depth", "3"), "--init-file",
                                 f"{D}/{f}")
                        + ["--json", f"{D}/o.json"], expect="ok", outputs=(f"{D}/o.json",)))
    return out


def make_fixtures(d) -> None:
    """Write every file the cases refer to into folder ``d`` (created by the caller)."""
    from svdyn.spec import ModelSpec
    from svdyn.integrate import flow
    d = str(d)
    p = lambda name: os.path.join(d, name)  # noqa: E731
    rng = np.random.default_rng(0)
    s = rng.uniform(0.3, 0.6, (3, 4))
    s[:, 0] = 0.0
    z = np.array([0.0, 0.1, 0.1, 0.12])
    np.save(p("s.npy"), s)
    np.save(p("z.npy"), z)
    with open(p("S.NPY"), "wb") as f:       # np.save would append .npy
        np.save(f, s)
    np.save(p("int.npy"), np.array([0, 1, 1, 2]))
    np.save(p("f32.npy"), s.astype(np.float32))
    np.savez(p("s.npz"), s=s)
    np.savetxt(p("s.txt"), s)
    np.savetxt(p("s.csv"), s, delimiter=",")
    with open(p("z.csv"), "w") as f:
        f.write("0,0.1,0.1,0.12\n")
    with open(p("s_noext"), "w") as f:
        f.write(json.dumps({"s": s.tolist()}))
    for name, obj in (("s.json", {"s": s.tolist()}), ("z.json", {"z": z.tolist()}),
                      ("list.json", z.tolist()), ("number.json", 3),
                      ("missing.json", {"x": [1, 2]}), ("ragged.json", {"s": [[1, 2], [3]]}),
                      ("nulls.json", {"z": [0, None, 0.1, 0.1]}),
                      ("strings.json", {"z": ["a", "b", "c", "d"]}),
                      ("bool.json", {"z": [True, False, True, True]})):
        with open(p(name), "w") as f:
            json.dump(obj, f)
    with open(p("nan.json"), "w") as f:
        f.write('{"z": [0, NaN, 0.1, 0.1]}')
    for name, text in (("empty.npy", ""), ("empty.txt", ""), ("empty.json", ""),
                       ("garbage.txt", "hello world\n"), ("ragged.txt", "1 2 3 4\n1 2\n"),
                       ("ragged.csv", "1,2,3,4\n1,2\n"), ("bad.csv", "a,b,c,d\n"),
                       ("malformed.json", '{"s": [[1, 2'),
                       ("int_overflow.txt", "0 1e999 1 1\n")):
        with open(p(name), "w") as f:
            f.write(text)
    with open(p("garbage.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00garbage" + bytes(range(256)))
    with open(p("binary.bin"), "wb") as f:
        f.write(bytes(range(256)) * 4)
    np.save(p("complex.npy"), z.astype(complex) + 1j)
    np.save(p("object.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(p("strings.npy"), np.array(["a", "b", "c", "d"]))
    np.save(p("negative.npy"), -s)
    np.save(p("wrongshape.npy"), np.ones((5, 4)))
    np.save(p("threed.npy"), np.ones((2, 3, 4)))
    np.save(p("huge_product.npy"), np.full((3, 4), 1e200))
    np.save(p("unpaired.npy"), np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]))  # K=6 shape mismatch
    os.makedirs(p("adir"), exist_ok=True)
    os.makedirs(p("rep"), exist_ok=True)
    with open(p("afile"), "w") as f:
        f.write("x")
    spec = ModelSpec(4, 3)
    tr = flow(spec, spec.balanced(z), 10.0)
    tr.save(p("traj.json"))
    tr.save(p("traj.npz"))
    bad = flow(spec, spec.balanced(z), 1e6, max_steps=3)
    bad.save(p("traj_failed.json"))
    with open(p("traj_failed.json")) as f:
        dd = json.load(f)
    dd["s"][-1] = [[None] * 4] * 3
    with open(p("traj_nan.json"), "w") as f:
        json.dump(dd, f)
    spec8 = ModelSpec(8, 3)
    flow(spec8, spec8.balanced(np.r_[0.0, np.full(7, 0.1)]), 1.0).save(p("traj_k8.json"))


# ----------------------------------------------------------------------------- parser, grammar
def parser_cases():
    out = []
    for cmd, base in BASE.items():
        out.append(Case(f"parse:{cmd}:unknown", base + ["--bogus-option"],
                        names=("--bogus-option",)))
    for cmd, opt in (("flow", "--t-end"), ("flow", "--classes"), ("descend", "--lr"),
                     ("validate", "--width"), ("code", "--dim"), ("maxmargin", "--depth"),
                     ("critical", "--classes"), ("basin", "--classes")):
        argv = [a for i, a in enumerate(BASE[cmd])
                if a != opt and (i == 0 or BASE[cmd][i - 1] != opt)]
        out.append(Case(f"parse:{cmd}:missing{opt}", argv, names=(opt,)))
    out.append(Case("parse:flow:two-inits", BASE["flow"] + ["--init-scale", "0.1"],
                    names=("--init",)))
    out.append(Case("parse:flow:noinit", with_opt(BASE["flow"], "--init-scale", "1")[:-1],
                    names=("--init",)))
    # grammar changes: old spellings that changed meaning fail naming the new one
    out.append(Case("grammar:classify-old-json", ["classify", "--json", D + "/traj.json"],
                    names=("svdyn classify TRAJ.json",)))
    out.append(Case("grammar:hessian-comma-width", with_opt(BASE["hessian"], "--width", "5,6"),
                    names=("--width", "5:6")))
    out.append(Case("grammar:hessian-seed", BASE["hessian"] + ["--seed", "1"],
                    names=("--frame-seed",)))
    out.append(Case("grammar:classify-missing", ["classify", D + "/nothere.json"],
                    names=("nothere.json",)))
    for f in ("s.npy", "garbage.txt", "adir", "empty.json", "binary.bin"):
        out.append(Case(f"grammar:classify-bad:{f}", ["classify", f"{D}/{f}"], names=(f,)))
    out.append(Case("grammar:report-no-validation-folder",
                    ["report", "--quick", "--out", D + "/nofolder/REPORT.md"],
                    names=("--out",), absent=(D + "/nofolder",)))
    return out


# ----------------------------------------------------------------------------- result checks
def _load_strict(path):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    with open(path) as f:
        return json.loads(f.read(), parse_constant=bad)


def _check_critical(rc, out, err, d):
    if rc not in (0, 1):
        return "unclean", f"exit {rc}"
    r = _load_strict(os.path.join(d, "crit.json"))
    tol = r.get("grad_tol")
    if tol is None:
        return "silent", "no grad_tol stated in the JSON"
    bad = [f["grad_norm"] for f in r["families"] if not f["grad_norm"] <= tol]
    if bad:
        return "silent", f"points reported with |grad| {bad} > tolerance {tol}"
    return None


def _check_failed_summary(rc, out, err, d):
    if rc != 1:
        return "silent" if rc == 0 else "unclean", f"exit {rc} for a max_steps failure"
    r = _load_strict(os.path.join(d, "fail.json"))
    t_reached = r["stats"]["t_reached"][0]
    if "final time 1e+06" in out or f"{t_reached:.6g}" not in out:
        return "silent", f"summary does not print the time reached {t_reached:.6g}: {out!r}"
    return None


def _check_fail_on_violation(rc, out, err, d):
    r = _load_strict(os.path.join(d, "lyap.json"))
    want = 1 if r["violations"] > 0 else 0
    if rc != want:
        return "silent", f"violations {r['violations']} but exit {rc}"
    if r["violations"] == 0:
        return "silent", "fixture found no violation (the check cannot fail)"
    return None


def _check_validate_divergent(rc, out, err, d):
    if rc != 1 or "diverg" not in (err + out).lower():
        return ("traceback" if "Error" in err else "silent"), f"exit {rc}: {err[-200:]!r}"
    return None


def _check_stdout_human(rc, out, err, d):
    if rc != 0:
        return "unclean", f"exit {rc}: {err[-200:]!r}"
    if out.lstrip().startswith("{"):
        return "silent", "JSON on stdout instead of a human summary"
    return None


def _check_interrupt_message(rc, out, err, d):
    return None


def result_cases():
    f = D + "/traj_failed.json"
    return [
        Case("result:critical-depth1", ["critical", "--classes", "4", "--depth", "1",
                                        "--weight-decay", "1e-2", "--json", D + "/crit.json"],
             expect="custom", check=_check_critical),
        Case("result:critical-depth1-k8", ["critical", "--classes", "8", "--depth", "1",
                                           "--weight-decay", "1e-3", "--json", D + "/crit.json"],
             expect="custom", check=_check_critical),
        Case("result:critical-depth3", ["critical", "--classes", "8", "--depth", "3",
                                        "--weight-decay", "1e-3", "--json", D + "/crit.json"],
             expect="custom", check=_check_critical),
        Case("result:classify-failed", ["classify", f], names=("status",)),
        Case("result:classify-nan", ["classify", D + "/traj_nan.json"], names=("traj_nan",)),
        Case("result:failed-summary", ["flow", "--classes", "4", "--depth", "3", "--init",
                                       "0.1,0.1,0.12", "--t-end", "1e6", "--max-steps", "3",
                                       "--json", D + "/fail.json"],
             expect="custom", check=_check_failed_summary),
        Case("result:validate-divergent", with_opt(BASE["validate"], "--lr", "10")
             + ["--loss", "mse", "--steps", "200"], expect="custom",
             check=_check_validate_divergent),
        Case("result:validate-divergent-random", with_opt(BASE["validate"], "--lr", "10")
             + ["--loss", "mse", "--steps", "200", "--init-kind", "random", "--init-scale", "1"],
             expect="custom", check=_check_validate_divergent),
        Case("result:maxmargin-certify-json", ["maxmargin", "--classes", "4", "--depth", "3",
                                               "--certify", "5", "--json", D + "/mm.json"],
             expect="ok", outputs=(D + "/mm.json",)),
        Case("result:lyapunov-large-init", ["lyapunov", "--classes", "4", "--depth", "2",
                                            "--trials", "3", "--init-scale", "1e3",
                                            "--json", D + "/ly.json"],
             expect="ok_or_status", outputs=(D + "/ly.json",)),
        Case("result:lyapunov-fail-on-violation",
             ["lyapunov", "--classes", "4", "--depth", "3", "--trials", "4", "--unbalanced",
              "--spread", "1.0", "--t-end", "50", "--fail-on-violation", "--json",
              D + "/lyap.json"],
             expect="custom", check=_check_fail_on_violation),
        Case("result:lyapunov-init", ["lyapunov", "--classes", "4", "--depth", "2", "--init",
                                      "0.1,0.2,0.3", "--t-end", "10", "--json", D + "/o.json"],
             expect="ok", outputs=(D + "/o.json",)),
        Case("result:classify-human", ["classify", D + "/traj.json", "--json", D + "/c.json"],
             expect="custom", check=_check_stdout_human),
        Case("result:lyapunov-human", BASE["lyapunov"], expect="custom",
             check=_check_stdout_human),
        Case("result:flow-json-npz-plot", BASE["flow"] + ["--json", D + "/a.json", "--npz",
                                                          D + "/a.npz", "--plot", D + "/a.png"],
             expect="ok", outputs=(D + "/a.json",)),
        Case("result:descend-huge-save", with_opt(BASE["descend"], "--steps", "100000000")
             + ["--save-every", "1"], names=("--save-every", "GiB")),
        Case("result:flow-init-tiny", with_opt(BASE["flow"], "--init", "1e-300,1e-300,2e-300")
             + ["--json", D + "/o.json"], expect="ok_or_status", outputs=(D + "/o.json",)),
        Case("result:flow-uppercase-suffixes", BASE["flow"] + ["--json", D + "/O.JSON",
                                                               "--plot", D + "/F.PNG"],
             expect="ok", outputs=(D + "/O.JSON",)),
        Case("result:flow-t1e12", with_opt(BASE["flow"], "--t-end", "1e12")
             + ["--json", D + "/o.json"], expect="ok", outputs=(D + "/o.json",)),
        Case("result:flow-wd-max", with_opt(BASE["flow"], "--weight-decay", "1e6")
             + ["--json", D + "/o.json"], expect="ok_or_status", outputs=(D + "/o.json",)),
        Case("result:flow-t-tiny", with_opt(BASE["flow"], "--t-end", "5e-324"),
             names=("--t-end",)),
        Case("result:demo-t0", with_opt(BASE["demo"], "--t-end", "0"), names=("--t-end",)),
        Case("result:basin-rmax-neg", with_opt(BASE["basin"], "--r-max", "-1"),
             names=("--r-max",)),
        Case("result:basin-png-alias", ["basin", "--classes", "4", "--depth", "2", "--map",
                                        "--eps-range", "0.1,1,2", "--r-range", "0,1,2",
                                        "--png", D + "/map.png", "--json", D + "/map.json"],
             expect="ok", outputs=(D + "/map.json",)),
        Case("result:hessian-ok", BASE["hessian"] + ["--frame-seed", "2", "--json",
                                                     D + "/h.json"],
             expect="ok", outputs=(D + "/h.json",)),
        Case("result:validate-ok", BASE["validate"] + ["--frame-seed", "1", "--json",
                                                       D + "/v.json"],
             expect="ok", outputs=(D + "/v.json",)),
        Case("result:validate-perlayer", ["validate", "--classes", "4", "--depth", "3",
                                          "--width", "5:6", "--lr", "0.1", "--steps", "3",
                                          "--quiet"], expect="ok"),
    ]


def all_cases():
    cases = (numeric_cases() + output_cases() + init_cases() + parser_cases()
             + result_cases())
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


# ----------------------------------------------------------------------------- running
def run_case(case: Case, d):
    """Run ``main(argv)`` in this process. Returns (rc, stdout, stderr, traceback or None)."""
    from svdyn.cli.main import main
    argv = [sub(a, d) for a in case.argv]
    fo, fe = io.StringIO(), io.StringIO()
    tb = None
    rc = None
    with contextlib.redirect_stdout(fo), contextlib.redirect_stderr(fe):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        except BaseException:  # noqa: BLE001 -- a traceback is the finding
            tb = traceback.format_exc()
    return rc, fo.getvalue(), fe.getvalue(), tb


def judge(case: Case, rc, out, err, tb, d):
    """(category, detail) for one run."""
    if tb is not None or "Traceback (most recent call last)" in err:
        return "traceback", (tb or err).strip().splitlines()[-1][:300]
    for a in case.absent:
        if os.path.exists(sub(a, d)):
            return "silent", f"{sub(a, d)} was created"
    if case.expect == "error":
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        if rc == 0:
            return "silent", "bad input accepted (exit 0)"
        if rc != 2:
            return "unclean", f"exit {rc}: {err.strip()[-200:]!r}"
        if len(lines) != 1:
            return "unclean", f"{len(lines)} lines on stderr: {err.strip()[-300:]!r}"
        line = lines[0]
        if not line.startswith(f"svdyn {case.command}: error: "):
            return "unclean", f"prefix: {line[:200]!r}"
        miss = [n for n in case.names if n not in line]
        if miss:
            return "unclean", f"message does not name {miss}: {line[:300]!r}"
        return "pass", line
    if case.expect == "custom":
        r = case.check(rc, out, err, str(d))
        return r if r else ("pass", "")
    want = {"ok": (0,), "status": (1,), "ok_or_status": (0, 1)}[case.expect]
    if rc not in want:
        return "unclean", f"exit {rc} (want {want}): {err.strip()[-300:]!r}"
    if not out.strip():
        return "unclean", "no summary on stdout"
    for o in case.outputs:
        try:
            _load_strict(sub(o, d))
        except (OSError, ValueError) as e:
            return "silent", f"output {o}: {e}"
    return "pass", ""


def cleanup(d) -> None:
    """Remove what a failing case may have created, so the next case starts clean."""
    import shutil
    for pth in (f"{d}/missing", f"{d}/nofolder", f"{d}/demo", f"{d}/rep/figures"):
        shutil.rmtree(pth, ignore_errors=True)
    for pth in ("/dev/full.npz", "/dev/null.npz", f"{d}/fig.xyz", f"{d}/o.json",
                f"{d}/rep/REPORT.md"):
        if os.path.isfile(pth):
            os.remove(pth)
