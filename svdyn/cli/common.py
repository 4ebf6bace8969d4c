"""Options shared by the CLI commands, and the one place each kind of input is checked.

Every check runs while the command line is parsed, before any computation:

* numbers: ``type=Num(int, lo=1, hi=10**6)`` (finite; integers accept ``1e8``; bounds with the
  number in the message); lists: ``NumList(float, lo=0.0)`` (``0.1,,0.2`` is an error);
  widths: ``Widths(sweep=True)`` (``:`` joins per-layer widths, ``,`` separates a sweep);
* output files / folders: ``OutFile(".json")``, ``OutFile(*PLOT_SUFFIXES)``, ``OutDir()``
  (see :mod:`svdyn.io`); init files are read by content in :func:`init_from_args`.

A failed check prints ``svdyn <command>: error: <option> <value>: what to do instead`` and exits
2 (argparse ``type=`` errors are reformatted by ``svdyn.cli.main``).
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from ..groups import SpecError
from ..io import PLOT_SUFFIXES, check_output_dir, check_output_file, load_state_file
from ..spec import ModelSpec, random_init_z  # noqa: F401 (re-exported for the CLI)

MAX_CLASSES = 1 << 20          # K; the engine has run K = 16384 at L = 8 to t = 1e12
MAX_DEPTH = 1000
MAX_SAMPLES = 10 ** 6          # samples per class n
MAX_WEIGHT_DECAY = 1e6         # beyond this every factor collapses at t ~ 1/lambda anyway
MAX_SEED = 2 ** 63 - 1
MAX_Z = 1e300                  # logit singular values above this overflow the logits (K z)
MAX_TIME = 1e300
MAX_SAVE_BYTES = 2 << 30       # states kept in memory for one run (2 GiB)
TORCH_HINT = 'pip install "svdyn[torch]"'


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else f"{x:,}".replace(",", "_") if abs(x) > 10**6 \
        else str(x)


class Num:
    """argparse ``type``: a finite number (``kind`` int or float) in a range.

    ``lo``/``hi`` bounds, ``lo_open``/``hi_open`` make them strict. Integers may be written as
    ``1e8`` (an integral value); ``1.5``, ``nan``, ``inf``, ``0x10``, ``''`` are refused.
    """

    def __init__(self, kind=float, lo=None, hi=None, lo_open=False, hi_open=False, why=""):
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open
        self.why = why
        self.__name__ = "integer" if kind is int else "number"

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {_fmt(self.hi)}")
        return what + (" " + " and ".join(parts) if parts else "")

    def parse(self, text):
        t = str(text).strip()
        try:
            v = float(t)
        except ValueError:
            v = None
        if v is None or not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {self.describe()}")
        if self.kind is int:
            if v != math.floor(v) or abs(v) > 2 ** 63:
                raise argparse.ArgumentTypeError(f"{text!r}: expected {self.describe()}")
            v = int(t) if t.lstrip("+-").isdigit() else int(v)
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {self.describe()}")
        if self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)):
            raise argparse.ArgumentTypeError(
                f"{text!r}: too large; the limit is {_fmt(self.hi)}"
                + (f" ({self.why})" if self.why else ""))
        return v

    __call__ = parse


class NumList:
    """argparse ``type``: comma-separated numbers, each checked by ``Num(kind, ...)``; empty
    items (``0.1,,0.2``, a trailing comma) are refused. ``n`` fixes the count."""

    def __init__(self, kind=float, n=None, **bounds):
        self.item = Num(kind, **bounds)
        self.n = n
        self.__name__ = "list"

    def __call__(self, text):
        items = str(text).split(",")
        if any(not t.strip() for t in items):
            raise argparse.ArgumentTypeError(
                f"{text!r}: empty item; separate numbers by single commas, e.g. 0.1,0.2")
        vals = []
        for i, t in enumerate(items, 1):
            try:
                vals.append(self.item.parse(t))
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(
                    f"{text!r}: item {i} ({t.strip()!r}) is not {self.item.describe()}") from None
        if self.n is not None and len(vals) != self.n:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {self.n} comma-separated "
                                             f"values, got {len(vals)}")
        return vals


class Widths:
    """argparse ``type`` for hidden widths: ``20`` (every hidden layer), ``20:32`` (one per
    hidden layer, joined by ':'); with ``sweep``, ``8,64,512`` is a sweep of such items.
    Returns a list of lists (one per sweep item). Without ``sweep`` a comma is refused with the
    per-layer spelling (the old ``hessian --width 5,6``)."""

    def __init__(self, sweep: bool, lo=1, hi=1 << 16):
        self.sweep, self.item = sweep, Num(int, lo=lo, hi=hi)
        self.__name__ = "widths"

    def __call__(self, text):
        t = str(text).strip()
        if "," in t and not self.sweep:
            raise argparse.ArgumentTypeError(
                f"{text!r}: per-layer widths are joined by ':' (write "
                f"{t.replace(',', ':')}); a comma list is a width sweep, which this command "
                "does not run")
        out = []
        for item in t.split(","):
            parts = item.split(":")
            if any(not x.strip() for x in parts):
                raise argparse.ArgumentTypeError(
                    f"{text!r}: empty item; write 20, 20:32 (per layer)"
                    + (" or 8,64,512 (a sweep)" if self.sweep else ""))
            try:
                out.append([self.item.parse(x) for x in parts])
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(
                    f"{text!r}: widths must be {self.item.describe()}, e.g. 20, 20:32"
                    + (" or 8,64,512" if self.sweep else "")) from None
        return out


class OutFile:
    """argparse ``type``: an output file path checked by :func:`svdyn.io.check_output_file`
    (``suffixes`` restricts the suffix). The option name is filled in by ``svdyn.cli.main``."""

    def __init__(self, *suffixes):
        self.suffixes = tuple(suffixes) or None
        self.__name__ = "path"

    def __call__(self, text):
        try:
            return str(check_output_file(text, "", self.suffixes))
        except SpecError as e:
            raise argparse.ArgumentTypeError(str(e).lstrip()) from None


class OutDir:
    """argparse ``type``: an output folder checked by :func:`svdyn.io.check_output_dir`."""

    __name__ = "folder"

    def __call__(self, text):
        try:
            return str(check_output_dir(text, ""))
        except SpecError as e:
            raise argparse.ArgumentTypeError(str(e).lstrip()) from None


class InFile:
    """argparse ``type``: an existing, readable, non-folder input file (content is checked by
    the command)."""

    __name__ = "file"

    def __call__(self, text):
        import os
        t = str(text)
        if not t.strip():
            raise argparse.ArgumentTypeError(f"{t!r}: empty file name")
        if os.path.isdir(t):
            raise argparse.ArgumentTypeError(f"{t!r}: is a folder; give a file")
        if not os.path.exists(t):
            raise argparse.ArgumentTypeError(f"{t!r}: no such file")
        return t


SEED_T = Num(int, lo=0, hi=MAX_SEED)
POSITIVE = Num(float, lo=0.0, lo_open=True)
PLOT = OutFile(*PLOT_SUFFIXES)
JSON_OUT = OutFile(".json")


def add_model_args(p, depth_required: bool = True) -> None:
    """--classes --depth --group --samples-per-class --loss --weight-decay."""
    p.add_argument("--classes", type=Num(int, lo=2, hi=MAX_CLASSES), required=True,
                   help="number of classes K")
    p.add_argument("--depth", type=Num(int, lo=1, hi=MAX_DEPTH), required=depth_required,
                   default=2, help="number of trainable factor matrices L (2 = plain UFM)")
    p.add_argument("--group", default="", help="walsh | cyclic | m1,m2,... (default: walsh "
                   "when K is a power of two, else cyclic)")
    p.add_argument("--samples-per-class", type=Num(int, lo=1, hi=MAX_SAMPLES), default=1,
                   help="n (default 1)")
    p.add_argument("--loss", default="ce", help="ce | mse | ls:EPS (default ce)")
    p.add_argument("--weight-decay", type=NumList(float, lo=0.0, hi=MAX_WEIGHT_DECAY,
                                                  why="every factor collapses long before"),
                   default=[0.0], help="one value or one per factor, comma-separated "
                   f"(default 0; at most {MAX_WEIGHT_DECAY:g})")


def _floats(text, what: str) -> list[float]:
    """Comma-separated finite numbers (kept for callers that parse a string themselves)."""
    if isinstance(text, (list, tuple)):
        return [float(x) for x in text]
    try:
        return NumList(float)(text)
    except argparse.ArgumentTypeError as e:
        raise SpecError(f"{what} {e}") from None


def spec_from_args(args) -> ModelSpec:
    wd = _floats(args.weight_decay, "--weight-decay")
    return ModelSpec(classes=args.classes, depth=args.depth,
                     samples_per_class=args.samples_per_class, loss=args.loss,
                     weight_decay=tuple(wd), group=args.group)


def add_init_args(p, required: bool = True, seed_help: str = "seed for --init-scale") -> None:
    """--init z1,..,z{K-1} | --init-scale EPS [--seed S] | --init-file F; --init-mode0 V."""
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--init", type=NumList(float, lo=0.0, hi=MAX_Z),
                   help="z_j(0) for modes 1..K-1 (basis order), comma-separated; "
                   "split balanced over the factors")
    g.add_argument("--init-scale", type=Num(float, lo=0.0, lo_open=True, hi=1e100),
                   help="draw z_j(0) = EPS * U(0.5, 1.5) (paired modes equal)")
    g.add_argument("--init-file", type=InFile(),
                   help="initial singular values, read by content: .npy/.npz, text/CSV or "
                   "JSON {\"s\": [[...]]} (L rows of K per-factor values, possibly unbalanced) "
                   "/ {\"z\": [...]} (K values, balanced); a saved trajectory (svdyn flow "
                   "--json/--npz) starts from its last state")
    p.add_argument("--init-mode0", type=Num(float, lo=0.0, hi=MAX_Z), default=0.0,
                   help="z_0(0) of the constant mode (default 0; never moves under ce)")
    p.add_argument("--seed", type=SEED_T, default=0, help=f"{seed_help} (default 0)")


def _check_z(z, spec, what):
    if np.any(z > MAX_Z) or not np.all(np.isfinite(z)):
        raise SpecError(f"{what}: the logit singular values z = prod_l s_l reach "
                        f"{float(np.max(z)):.3g}, beyond {MAX_Z:g} (the logits would "
                        "overflow); scale the init down")


def state_from_array(spec: ModelSpec, arr: np.ndarray, what: str) -> np.ndarray:
    """A (K,) z or an (L, K) s as a checked initial state (L, K)."""
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise SpecError(f"{what}: contains non-finite values (NaN, inf or null); give finite "
                        "singular values")
    if np.any(arr < 0):
        raise SpecError(f"{what}: singular values must be >= 0 (min {float(arr.min()):.3g})")
    if arr.ndim == 1:
        if arr.shape[0] != spec.K:
            raise SpecError(f"{what}: {arr.shape[0]} values; a z file holds K = {spec.K} "
                            f"values (or an (L, K) = ({spec.L}, {spec.K}) array of s)")
        _check_z(arr, spec, what)
        return spec.balanced(arr)
    if arr.ndim != 2 or arr.shape != (spec.L, spec.K):
        raise SpecError(f"{what}: shape {arr.shape}; expected (L, K) = ({spec.L}, {spec.K}) "
                        f"or K = {spec.K} values")
    with np.errstate(over="ignore"):
        _check_z(np.prod(arr, axis=0), spec, what)
    return spec.check_state(arr, what)


def init_from_args(args, spec: ModelSpec, command: str = "") -> tuple[np.ndarray, dict]:
    """The initial state (L, K) and a JSON-able description of how it was made."""
    if args.init is not None:
        vals = args.init
        if len(vals) != spec.K - 1:
            raise SpecError(f"--init: needs K-1 = {spec.K - 1} values (modes 1..K-1), "
                            f"got {len(vals)}")
        z = np.array([args.init_mode0] + list(vals))
        _check_z(z, spec, "--init")
        return spec.balanced(z), {"init": "values", "z0": z.tolist()}
    if args.init_scale is not None:
        z = random_init_z(spec, args.init_scale, np.random.default_rng(args.seed),
                          mode0=args.init_mode0)
        _check_z(z, spec, "--init-scale")
        return spec.balanced(z), {"init": "scale", "init_scale": args.init_scale,
                                  "seed": args.seed, "z0": z.tolist()}
    arr, note = load_state_file(args.init_file, "--init-file")
    s = state_from_array(spec, arr, f"--init-file {args.init_file}")
    if note:
        sys.stderr.write(f"svdyn {command or getattr(args, 'command', '')}: {note}\n")
    return s, {"init": "file", "file": str(args.init_file)}


def add_json_out(p, what: str = "the result") -> None:
    p.add_argument("--json", type=JSON_OUT, help=f"write {what} as JSON to this file")


def add_plot_out(p, what: str, dest: str = "plot") -> None:
    p.add_argument("--plot", type=PLOT, dest=dest,
                   help=f"write {what} to this figure (format from the suffix: .png, .pdf, .svg)")


def check_save_plan(n_saves: int, L: int, K: int, batch: int = 1, what: str = "",
                    steps: int | None = None) -> None:
    """Refuse a save plan whose states would not fit in memory (:data:`MAX_SAVE_BYTES`).
    With ``steps`` (a GD run saving every k-th step) the message names the smallest k that
    fits."""
    per = (L * K + K + 2) * 8 * batch
    need = n_saves * per
    if need > MAX_SAVE_BYTES:
        fit = max(3, MAX_SAVE_BYTES // per)
        fix = (f"use --save-every {-(-steps // (fit - 2)):,} or more" if steps is not None
               else f"save at most {fit:,} points")
        raise SpecError(f"{what}would keep {n_saves:,} saved states of {L}x{K} values "
                        f"({need / 2**30:.1f} GiB, limit {MAX_SAVE_BYTES / 2**30:.0f} GiB); "
                        f"{fix}")


def write_json(path, obj) -> None:
    """The one JSON writer (see :func:`svdyn.io.write_json`)."""
    from ..io import write_json as _w
    _w(path, obj)


def save_trajectory(traj, json_path=None, npz_path=None) -> list[str]:
    """Write a trajectory as JSON and / or .npz (atomic, standard JSON). Returns the paths."""
    from ..io import dumps_json, write_npz
    from ..io import write_json as _w
    out = []
    if json_path:
        out.append(str(_w(json_path, traj.to_json_dict())))
    if npz_path:
        npz_path = str(npz_path) if str(npz_path).lower().endswith(".npz") else f"{npz_path}.npz"
        cfg = {k: v for k, v in traj.to_json_dict().items()
               if k not in ("times", "z", "s", "loss", "min_margin")}
        write_npz(npz_path, times=traj.times, s=traj.s, z=traj.z, loss=traj.loss,
                  min_margin=traj.min_margin, config=dumps_json(cfg))
        out.append(npz_path)
    return out


def save_plot(path, draw, *a, **kw) -> str:
    """``draw(*a, tmp_path, **kw)`` writes a figure; moved to ``path`` when complete."""
    from ..io import atomic_path
    with atomic_path(path) as tmp:
        draw(*a, tmp, **kw)
    return str(path)


class _Renamed(argparse.Action):
    def __init__(self, option_strings, dest, new="", **kw):
        self.new = new
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        raise argparse.ArgumentError(self, f"renamed; use {self.new}")


def add_renamed(p, old: str, new: str) -> None:
    """An old option whose meaning changed: using it fails with a message naming ``new``."""
    p.add_argument(old, action=_Renamed, new=new, dest=f"_renamed_{old.strip('-')}")


def need_torch(what: str) -> None:
    """Fail early, with the install command, when torch is missing."""
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        raise SpecError(f"{what} needs torch; install it with {TORCH_HINT}")


def add_progress_args(p, what: str = "the progress bar") -> None:
    """``--progress`` / ``--no-progress`` (default: shown when stderr is a terminal)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help=f"show {what} even when stderr is not a terminal")
    g.add_argument("--no-progress", dest="progress", action="store_false")
