"""Options shared by the CLI commands: the model spec, the initialisation, output files."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..groups import SpecError
from ..spec import ModelSpec, random_init_z  # noqa: F401 (re-exported for the CLI)


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(t) for t in str(text).split(",") if t.strip() != ""]
    except ValueError:
        raise SpecError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise SpecError(f"{what}: expected at least one number")
    if not all(math.isfinite(v) for v in vals):
        raise SpecError(f"{what}: values must be finite, got {text!r}")
    return vals


def add_model_args(p, depth_required: bool = True) -> None:
    """--classes --depth --group --samples-per-class --loss --weight-decay."""
    p.add_argument("--classes", type=int, required=True, help="number of classes K")
    p.add_argument("--depth", type=int, required=depth_required, default=2,
                   help="number of trainable factor matrices L (2 = plain UFM)")
    p.add_argument("--group", default="", help="walsh | cyclic | m1,m2,... (default: walsh "
                   "when K is a power of two, else cyclic)")
    p.add_argument("--samples-per-class", type=int, default=1, help="n (default 1)")
    p.add_argument("--loss", default="ce", help="ce | mse | ls:EPS (default ce)")
    p.add_argument("--weight-decay", default="0", help="one value or one per factor, "
                   "comma-separated (default 0)")


def spec_from_args(args) -> ModelSpec:
    wd = _floats(args.weight_decay, "--weight-decay")
    return ModelSpec(classes=args.classes, depth=args.depth,
                     samples_per_class=args.samples_per_class, loss=args.loss,
                     weight_decay=tuple(wd), group=args.group)


def add_init_args(p, required: bool = True) -> None:
    """--init z1,..,z{K-1} | --init-scale EPS [--seed S] | --init-file F; --init-mode0 V."""
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--init", help="z_j(0) for modes 1..K-1 (basis order), comma-separated; "
                   "split balanced over the factors")
    g.add_argument("--init-scale", type=float, help="draw z_j(0) = EPS * U(0.5, 1.5) "
                   "(paired modes equal)")
    g.add_argument("--init-file", help="per-factor (possibly unbalanced) initial singular "
                   "values: .npy/.txt array (L, K), or JSON {\"s\": [[...]]} / {\"z\": [...]}")
    p.add_argument("--init-mode0", type=float, default=0.0,
                   help="z_0(0) of the constant mode (default 0; never moves under ce)")
    p.add_argument("--seed", type=int, default=0, help="seed for --init-scale (default 0)")


def init_from_args(args, spec: ModelSpec) -> tuple[np.ndarray, dict]:
    """The initial state (L, K) and a JSON-able description of how it was made."""
    if not math.isfinite(args.init_mode0) or args.init_mode0 < 0:
        raise SpecError("--init-mode0 must be a finite number >= 0")
    if args.init is not None:
        vals = _floats(args.init, "--init")
        if len(vals) != spec.K - 1:
            raise SpecError(f"--init needs K-1 = {spec.K - 1} values (modes 1..K-1), "
                            f"got {len(vals)}")
        z = np.array([args.init_mode0] + vals)
        return spec.balanced(z), {"init": "values", "z0": z.tolist()}
    if args.init_scale is not None:
        z = random_init_z(spec, args.init_scale, np.random.default_rng(args.seed),
                          mode0=args.init_mode0)
        return spec.balanced(z), {"init": "scale", "init_scale": args.init_scale,
                                  "seed": args.seed, "z0": z.tolist()}
    path = Path(args.init_file)
    if not path.exists():
        raise SpecError(f"--init-file {path}: no such file")
    if path.suffix == ".json":
        d = json.loads(path.read_text())
        arr = np.asarray(d["s"] if "s" in d else d["z"], dtype=float)
    elif path.suffix == ".npy":
        arr = np.load(path)
    else:
        arr = np.loadtxt(path, ndmin=1)
    if arr.ndim == 1:
        return spec.balanced(arr), {"init": "file", "file": str(path)}
    s = spec.check_state(arr, "--init-file")
    if s.ndim != 2:
        raise SpecError("--init-file must hold one state of shape (L, K)")
    if np.any(s < 0):
        raise SpecError("--init-file: singular values must be >= 0")
    return s, {"init": "file", "file": str(path)}


def write_json(path, obj) -> None:
    """Write ``obj`` as JSON (numpy arrays and scalars converted), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, default=_jsonable, indent=None))


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")
