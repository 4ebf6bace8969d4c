"""Sweep grid files (TOML): parsing, validation, normalisation, cells and chunks.

A grid file has six sections; every key is checked, and a bad key, a wrong type or an empty
axis is one :class:`~svdyn.groups.SpecError` naming it::

    [model]                 # fixed model parameters (each may instead be an axis)
    loss = "ce"             # ce | mse | ls:EPS
    group = ""              # walsh | cyclic | m1,m2,... ("" = default for K)
    n = 1                   # samples per class
    lam = 0.0               # weight decay (one value, all factors)
    K = 8                   # classes
    L = 3                   # depth (number of trainable factors)

    [axes]                  # swept parameters: a list, or a range table
    L = {range = [2, 8]}              # integers 2..8 (inclusive; optional third value = step)
    eps = {log = [1e-3, 1.0, 7]}      # 7 log-spaced values
    lam = {linear = [0.0, 0.1, 3]}    # 3 linearly spaced values
    K = [8, 16]

    [init]
    kind = "scale"          # scale: z_j(0) = eps U(0.5, 1.5), balanced (random_init_z)
                            # k4_plane: z(0) = eps (0, 1, 1, r) over `r` (basin task)
                            # gaussian: Gaussian factors of std eps (validate task)
    eps = 0.1               # init scale (or an axis)
    samples = 1024          # rows per cell (scale / gaussian)
    r = {linear = [0.0, 1.5, 64]}     # k4_plane: the r values (rows of each cell)
    seed = 0                # root seed

    [task]
    kind = "classify"       # flow | classify | basin_k4 | k4_critical | critical | validate
    ...                     # task options (see TASKS below); classify / basin_k4:
    classifier = "certified"  # certified (certify_limit: z_final, n_stops, limit_decades
                            # [0 = no limit stage], z_retry [0 = no true-clock second
                            # stage, the default]) | growth (the
                            # growth-exponent fit: m_mid, m_end, max_end, adaptive)

    [tolerances]
    rtol = 1e-9
    atol = 1e-14

    [run]
    chunk = 256             # rows per chunk file

Sweepable parameters (:data:`AXES`): ``K, L, n, lam, eps, width, lr, steps, t_end``; each is
either fixed (in ``[model]``, ``[init]`` or ``[task]``) or an axis, never both.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..groups import SpecError

#: sweepable parameter -> (section where a fixed value lives, integer?)
AXES = {"K": ("model", True), "L": ("model", True), "n": ("model", True),
        "lam": ("model", False), "eps": ("init", False), "width": ("task", True),
        "lr": ("task", False), "steps": ("task", True), "t_end": ("task", False)}

#: section -> {key: (types, default)}; ``None`` default = required unless an axis gives it
_MODEL = {"loss": (str, "ce"), "group": (str, ""), "n": (int, 1), "lam": (float, 0.0),
          "K": (int, None), "L": (int, None)}
_INIT = {"kind": (str, None), "eps": (float, None), "samples": (int, 1), "seed": (int, 0),
         "r": ("axis", None)}
_TOL = {"rtol": (float, 1e-9), "atol": (float, None)}  # atol default: per task (ATOL)
_RUN = {"chunk": (int, 256)}

#: limit classifiers of the classify / basin_k4 tasks -> their own options
#: ("certified": :func:`svdyn.analysis.certify.certify_limit`, defaults from that module;
#: "growth": the growth-exponent fit :func:`svdyn.analysis.geometry.classify_states`)
CLASSIFIERS = {"certified": {"z_final": (float, 1e9), "n_stops": (int, 4),
                             "z_retry": (float, 0.0), "limit_decades": (int, 6)},
               "growth": {"m_mid": (float, 1e2), "m_end": (float, 1e4),
                          "max_end": (float, 1e5), "adaptive": (bool, True)}}
_CLASSIFIER_OPTS = {"classifier": (str, "certified"), **CLASSIFIERS["certified"],
                    **CLASSIFIERS["growth"]}

#: task kind -> ({option: (type, default)}, init kinds allowed, required parameters)
TASKS = {
    "flow": ({"t_end": (float, None), "max_steps": (int, 2_000_000)},
             ("scale",), ("K", "L", "eps", "t_end")),
    "classify": (dict(_CLASSIFIER_OPTS), ("scale",), ("K", "L", "eps")),
    "basin_k4": (dict(_CLASSIFIER_OPTS), ("k4_plane",), ("L", "eps")),
    "k4_critical": ({"r_max": (float, 1.0), "bracket_width": (float, 1e-3),
                     "points": (int, 16), "max_rounds": (int, 12), "z_final": (float, 1e12)},
                    ("none",), ("L", "eps")),
    "critical": ({"families": ("strlist", "all")}, ("none",), ("K", "L", "lam")),
    "validate": ({"width": (int, None), "lr": (float, None), "steps": (int, None),
                  "device": (str, "auto"), "save_every": (int, 0)},
                 ("scale", "gaussian"), ("K", "L", "eps", "width", "lr", "steps")),
}
#: default absolute tolerance per task (flow: integrate.flow's default; classification: the
#: normalised-time continuation's)
ATOL = {"flow": 1e-12, "classify": 1e-14, "basin_k4": 1e-14, "k4_critical": 1e-14,
        "critical": 1e-14,
        "validate": 1e-14}
_SECTIONS = ("model", "axes", "init", "task", "tolerances", "run")


def _err(msg: str):
    raise SpecError(msg)


def _typename(t) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            "strlist": "a string or a list of strings", "axis": "a list or a range table"}[t]


def _check_value(where: str, v, t):
    """Coerce/validate one scalar option value of type t; returns the normalised value."""
    if t is bool:
        if not isinstance(v, bool):
            _err(f"{where}: expected true or false, got {v!r}")
        return v
    if t is int:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                return int(v)
            _err(f"{where}: expected an integer, got {v!r}")
        return int(v)
    if t is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            _err(f"{where}: expected a number, got {v!r}")
        v = float(v)
        if not math.isfinite(v):
            _err(f"{where}: must be finite, got {v!r}")
        return v
    if t is str:
        if not isinstance(v, str):
            _err(f"{where}: expected a string, got {v!r}")
        return v
    if t == "strlist":
        if isinstance(v, str):
            return v
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return list(v)
        _err(f"{where}: expected a string or a non-empty list of strings, got {v!r}")
    raise AssertionError(t)  # pragma: no cover


def expand_axis(where: str, spec, integer: bool) -> list:
    """An axis value: a non-empty list, or ``{log|linear = [lo, hi, num]}`` /
    ``{range = [start, stop(, step)]}`` (inclusive integers). Returns the sorted-as-given list."""
    if isinstance(spec, list):
        vals = spec
    elif isinstance(spec, dict):
        if len(spec) != 1:
            _err(f"{where}: a range table has exactly one of log, linear, range; got "
                 f"{sorted(spec)}")
        (kind, a), = spec.items()
        if kind not in ("log", "linear", "range"):
            _err(f"{where}: unknown range kind {kind!r}; use log, linear or range")
        if not isinstance(a, list) or not all(isinstance(x, (int, float)) and
                                              not isinstance(x, bool) for x in a):
            _err(f"{where}.{kind}: expected a list of numbers, got {a!r}")
        if kind == "range":
            if len(a) not in (2, 3) or not all(float(x).is_integer() for x in a):
                _err(f"{where}.range: expected [start, stop] or [start, stop, step] integers, "
                     f"got {a!r}")
            step = int(a[2]) if len(a) == 3 else 1
            if step <= 0:
                _err(f"{where}.range: step must be > 0, got {step}")
            vals = list(range(int(a[0]), int(a[1]) + 1, step))
        else:
            if len(a) != 3 or not float(a[2]).is_integer() or a[2] < 1:
                _err(f"{where}.{kind}: expected [lo, hi, num] with an integer num >= 1, got {a!r}")
            lo, hi, num = float(a[0]), float(a[1]), int(a[2])
            if kind == "log":
                if not (lo > 0 and hi > 0):
                    _err(f"{where}.log: bounds must be > 0, got {a!r}")
                vals = np.geomspace(lo, hi, num).tolist()
                if num >= 1:
                    vals[0], vals[-1] = lo, hi
            else:
                vals = np.linspace(lo, hi, num).tolist()
            vals = [float(f"{v:.12g}") for v in vals]  # canonical: 0.01, not 0.010000000000000002
    else:
        _err(f"{where}: expected a list or a range table ({{log = [lo, hi, num]}}, "
             f"{{linear = [...]}}, {{range = [start, stop]}}), got {spec!r}")
    if len(vals) == 0:
        _err(f"{where}: the axis is empty; give at least one value")
    out = []
    for i, v in enumerate(vals):
        out.append(_check_value(f"{where}[{i}]", v, int if integer else float))
    if len(set(out)) != len(out):
        _err(f"{where}: repeated values {out}")
    return out


def _section(raw: dict, name: str, schema: dict) -> dict:
    sec = raw.get(name, {})
    if not isinstance(sec, dict):
        _err(f"[{name}]: expected a table, got {sec!r}")
    out = {}
    for k, v in sec.items():
        if k not in schema:
            _err(f"[{name}] unknown key {k!r}; known keys: {', '.join(sorted(schema))}")
        t, _ = schema[k]
        if t == "axis":
            out[k] = expand_axis(f"[{name}] {k}", v, integer=False)
        else:
            out[k] = _check_value(f"[{name}] {k}", v, t)
    return out


@dataclass(frozen=True)
class Cell:
    """One grid cell: its index in the grid's order and its parameter values."""

    index: int
    params: dict           # every parameter (fixed and swept)
    axes: dict             # only the swept ones, in axis order
    rows: int              # number of rows (samples) in the cell

    @property
    def key(self) -> str:
        return json.dumps(self.axes, sort_keys=True)

    @property
    def path(self) -> str:
        """Hive partition path ``K=8/L=3/eps=0.001`` (axis order)."""
        return "/".join(f"{k}={format_value(v)}" for k, v in self.axes.items()) or "all"


def format_value(v) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


@dataclass(frozen=True)
class Chunk:
    cell: Cell
    index: int
    start: int
    stop: int

    @property
    def id(self) -> str:
        return f"{self.cell.path}/chunk-{self.index:05d}"

    @property
    def relpath(self) -> str:
        return f"chunks/{self.cell.path}/chunk-{self.index:05d}.parquet"


class Grid:
    """A validated, normalised sweep grid (``Grid.normal`` is the JSON-able canonical form)."""

    def __init__(self, normal: dict):
        self.normal = normal
        self.task = normal["task"]["kind"]

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, raw: dict) -> "Grid":
        return cls(normalise(raw))

    @classmethod
    def load(cls, path) -> "Grid":
        path = Path(path)
        if not path.exists():
            _err(f"grid file {path}: no such file")
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            _err(f"grid file {path}: not valid TOML ({e})")
        return cls.from_dict(raw)

    # ---------------------------------------------------------------- derived
    @property
    def axes(self) -> dict:
        return self.normal["axes"]

    @property
    def chunk_size(self) -> int:
        return self.normal["run"]["chunk"]

    @property
    def root_seed(self) -> int:
        return self.normal["init"]["seed"]

    def cells(self) -> list:
        names = list(self.axes)
        fixed = fixed_params(self.normal)
        out = []
        for i, combo in enumerate(itertools.product(*(self.axes[k] for k in names))):
            ax = dict(zip(names, combo))
            params = dict(fixed, **ax)
            out.append(Cell(i, params, ax, rows_per_cell(self.normal)))
        return out

    def chunks(self) -> list:
        cs = self.chunk_size
        out = []
        for cell in self.cells():
            for j, a in enumerate(range(0, cell.rows, cs)):
                out.append(Chunk(cell, j, a, min(a + cs, cell.rows)))
        return out

    def task_hash(self, chunk: Chunk) -> str:
        """Content hash of what a chunk computes: the task definition, the cell, the rows and
        the seed, and the task's code version; not the chunk size of other chunks, the
        executor or the worker count."""
        from .tasks import TASK_VERSION
        n = self.normal
        d = {"v": TASK_VERSION[self.task], "model": n["model"], "init": n["init"],
             "task": n["task"], "tolerances": n["tolerances"], "cell": chunk.cell.params,
             "rows": [chunk.start, chunk.stop], "chunk": chunk.index,
             "seed": chunk_entropy(self.root_seed, chunk.cell, chunk.index)}
        d["init"] = {k: v for k, v in d["init"].items() if k != "r"}
        if "r" in n["init"]:
            d["r"] = n["init"]["r"][chunk.start:chunk.stop]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def fixed_params(normal: dict) -> dict:
    """Every sweepable parameter's fixed value (those not swept) plus model strings."""
    out = {}
    for k, (sec, _) in AXES.items():
        if k in normal[sec] and k not in normal["axes"]:
            out[k] = normal[sec][k]
    out["loss"] = normal["model"]["loss"]
    out["group"] = normal["model"]["group"]
    return out


def rows_per_cell(normal: dict) -> int:
    kind = normal["init"]["kind"]
    if kind == "k4_plane":
        return len(normal["init"]["r"])
    if kind == "none":
        return 1
    return normal["init"]["samples"]


def chunk_entropy(root_seed: int, cell: Cell, chunk: int) -> list:
    """SeedSequence entropy for a chunk: (root seed, hash of the cell's axis values, chunk).

    The cell enters by its *values* (not its index), so extending an axis keeps the seeds --
    and the stored files -- of existing cells."""
    h = hashlib.sha256(cell.key.encode()).digest()
    words = [int.from_bytes(h[i:i + 4], "little") for i in range(0, 16, 4)]
    return [int(root_seed)] + words + [int(chunk)]


def chunk_rng(root_seed: int, cell: Cell, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(chunk_entropy(root_seed, cell, chunk)))


def _classifier_opts(task: dict, opts: dict) -> dict:
    """The task options of the chosen classifier; options of the other one are an error."""
    which = task.get("classifier", "certified")
    if which not in CLASSIFIERS:
        _err(f"[task] classifier {which!r} unknown; use one of {', '.join(CLASSIFIERS)}")
    for other, keys in CLASSIFIERS.items():
        for k in keys:
            if other != which and k in task:
                _err(f"[task] {k}: belongs to classifier = \"{other}\" (this task uses "
                     f"classifier = \"{which}\"); remove it or set classifier = \"{other}\"")
    if which == "certified":
        if not 1 < task.get("z_final", 1e9) <= 1e14:
            _err(f"[task] z_final = {task['z_final']}: must lie in (1, 1e14] (the largest z "
                 "the certified classifier's reference field evaluates)")
        if task.get("n_stops", 4) < 3:
            _err(f"[task] n_stops = {task['n_stops']}: must be >= 3")
        zr = task.get("z_retry", 0.0)
        if zr != 0 and not 1 < zr <= 1e14:
            _err(f"[task] z_retry = {zr}: must be 0 (no second stage) or lie in (1, 1e14]")
        ld = task.get("limit_decades", 6)
        if not 0 <= ld <= 300:
            _err(f"[task] limit_decades = {ld}: must lie in [0, 300] (0 = no limit stage)")
    return {k: v for k, v in opts.items() if k == "classifier" or k in CLASSIFIERS[which]}


def normalise(raw: dict) -> dict:
    """Validate a parsed grid file and return its canonical form (defaults filled, axes as
    explicit lists, task options complete)."""
    if not isinstance(raw, dict):
        _err("the grid must be a table")
    for k in raw:
        if k not in _SECTIONS:
            _err(f"unknown section [{k}]; known sections: {', '.join(_SECTIONS)}")
    raw = copy.deepcopy(raw)
    task_raw = raw.get("task", {})
    if not isinstance(task_raw, dict):
        _err(f"[task]: expected a table, got {task_raw!r}")
    kind = task_raw.get("kind")
    if kind is None:
        _err(f"[task] kind is required; one of {', '.join(TASKS)}")
    if kind not in TASKS:
        _err(f"[task] kind {kind!r} unknown; use one of {', '.join(TASKS)}")
    opts, init_kinds, required = TASKS[kind]
    model = _section(raw, "model", _MODEL)
    init = _section(raw, "init", _INIT)
    task = _section(raw, "task", dict(opts, kind=(str, None)))
    if "classifier" in opts:
        opts = _classifier_opts(task, opts)
    tol = _section(raw, "tolerances", _TOL)
    run = _section(raw, "run", _RUN)
    axes_raw = raw.get("axes", {})
    if not isinstance(axes_raw, dict):
        _err(f"[axes]: expected a table, got {axes_raw!r}")
    axes = {}
    for k, v in axes_raw.items():
        if k not in AXES:
            _err(f"[axes] unknown axis {k!r}; sweepable: {', '.join(AXES)}")
        sec, integer = AXES[k]
        if k in {"model": model, "init": init, "task": task}[sec]:
            _err(f"[axes] {k} is also fixed in [{sec}]; give it in one place")
        axes[k] = expand_axis(f"[axes] {k}", v, integer)
    # defaults
    for sec, schema in (("model", _MODEL), ("init", _INIT), ("tolerances", _TOL),
                        ("run", _RUN), ("task", opts)):
        d = {"model": model, "init": init, "tolerances": tol, "run": run, "task": task}[sec]
        for k, (t, default) in schema.items():
            if k not in d and default is not None and k not in axes:
                d[k] = copy.deepcopy(default)
    tol.setdefault("atol", ATOL[kind])
    init.setdefault("kind", init_kinds[0])
    if kind in ("critical", "k4_critical"):
        init.pop("samples", None)
    if kind == "k4_critical":      # the K = 4 line z(0) = eps (0, 1, 1, r), r in (0, r_max]
        if "K" in axes or model.get("K", 4) != 4:
            _err("[model] K: task \"k4_critical\" needs K = 4")
        model["K"] = 4
        model["group"] = "walsh"
        t = task
        if not t["r_max"] > 0:
            _err(f"[task] r_max = {t['r_max']}: must be > 0")
        if not 0 < t["bracket_width"] < t["r_max"]:
            _err(f"[task] bracket_width = {t['bracket_width']}: must be > 0 and < r_max = "
                 f"{t['r_max']}")
        if t["points"] < 2 or t["max_rounds"] < 1:
            _err(f"[task] points = {t['points']}, max_rounds = {t['max_rounds']}: need "
                 "points >= 2 and max_rounds >= 1")
        if not t["z_final"] > 1:
            _err(f"[task] z_final = {t['z_final']}: must be > 1")
    ik = init["kind"]
    if ik not in init_kinds:
        _err(f"[init] kind {ik!r} does not fit task {kind!r}; use {' or '.join(init_kinds)}")
    if ik == "k4_plane":
        if "r" not in init:
            _err("[init] r is required for kind = \"k4_plane\" (e.g. r = {linear = [0, 1.5, 64]})")
        if "K" in axes or model.get("K", 4) != 4:
            _err("[model] K: the k4_plane init needs K = 4")
        model["K"] = 4
        model["group"] = "walsh"
        init.pop("samples", None)
    elif "r" in init:
        _err("[init] r is only used with kind = \"k4_plane\"")
    have = {**model, **init, **task, **axes}
    for k in required:
        if k not in have:
            sec = AXES[k][0] if k in AXES else "task"
            _err(f"[{sec}] {k} is required for task {kind!r} (or sweep it in [axes])")
    # value checks
    for k, vals in list(axes.items()) + [(k, [v]) for k, v in have.items() if k in AXES
                                         and k not in axes]:
        lo = {"K": 2, "L": 1, "n": 1, "width": 1, "steps": 1}.get(k)
        for v in vals:
            if lo is not None and v < lo:
                _err(f"{k} = {v}: must be >= {lo}")
            if k in ("eps", "lr", "t_end") and not v > 0:
                _err(f"{k} = {v}: must be > 0")
            if k == "lam" and v < 0:
                _err(f"lam = {v}: weight decay must be >= 0")
    if run["chunk"] < 1:
        _err(f"[run] chunk = {run['chunk']}: must be >= 1")
    if ik in ("scale", "gaussian") and init["samples"] < 1:
        _err(f"[init] samples = {init['samples']}: must be >= 1")
    if not (1e-14 <= tol["rtol"] < 1):
        _err(f"[tolerances] rtol = {tol['rtol']}: must lie in [1e-14, 1)")
    if not tol["atol"] > 0:
        _err(f"[tolerances] atol = {tol['atol']}: must be > 0")
    # model sanity on every cell (group/K compatibility, loss string) without numba
    from ..spec import ModelSpec
    Ks = axes.get("K", [model.get("K")])
    Ls = axes.get("L", [model.get("L", 2)])
    for K in Ks:
        try:
            ModelSpec(K, Ls[0], model.get("n", 1), model["loss"], 0.0, model["group"])
        except SpecError as e:
            _err(f"[model] K = {K}: {e}")
    if kind in ("classify", "basin_k4", "k4_critical") and (model["loss"] != "ce"
                                                            or "lam" in axes
                                             or model.get("lam", 0.0) != 0.0):
        _err(f"[model] task {kind!r} needs loss = \"ce\" and lam = 0 (limit classification of "
             "unregularised cross-entropy)")
    if kind == "critical" and "lam" not in axes and not model.get("lam", 0) > 0 \
            and model["loss"] != "mse":
        _err("[model] lam: critical families of ce need weight decay > 0 (or sweep lam)")
    return {"model": model, "axes": axes, "init": init, "task": task, "tolerances": tol,
            "run": run}
