"""Files in and out: strict JSON, atomic writes, output-path checks, state (init) files.

* :func:`write_json` is the one JSON writer: numpy arrays and scalars become lists and numbers,
  non-finite floats become ``null``, ``allow_nan=False`` (the file is standard JSON).
* Every writer goes through :func:`atomic_path`: the data is written to a temporary file in the
  target's folder and moved over the target with ``os.replace`` only when complete, so an
  interrupted or failed write never leaves a half-written file.
* :func:`check_output_file` / :func:`check_output_dir` refuse, before any work, paths that could
  not be written (empty, a folder, a device, a missing or unwritable folder).
* :func:`load_state_file` reads initial singular values by content, not by suffix: ``.npy`` /
  ``.npz`` (never unpickling), JSON (``{"s": ...}``, ``{"z": ...}``, a list, or a saved svdyn
  trajectory, whose last finite state is taken) and text / CSV.

Errors are :class:`svdyn.groups.SpecError` whose message starts with ``what`` (the option name
the caller passes, e.g. ``"--json"``) and the offending value.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path

import numpy as np

from .groups import SpecError

MAX_STATE_FILE_BYTES = 64 << 20      # an init file is one (L, K) state; refuse more than 64 MiB
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


# ----------------------------------------------------------------------------- JSON
def jsonable(obj):
    """``obj`` with numpy arrays / scalars, tuples and paths converted for :mod:`json`, and every
    non-finite float replaced by ``None``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj, indent=None) -> str:
    """Standard JSON text of ``obj`` (non-finite numbers as ``null``)."""
    return json.dumps(jsonable(obj), allow_nan=False, indent=indent)


def write_json(path, obj, indent=None) -> Path:
    """Write ``obj`` as standard JSON to ``path``, atomically. Returns the path."""
    text = dumps_json(obj, indent)
    return write_text(path, text)


def read_json_strict(path):
    """Parse a JSON file, refusing the non-standard constants NaN / Infinity."""
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(Path(path).read_text(), parse_constant=bad)


# ----------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path`` (same suffix); on success move it over ``path``.

    On any exception, KeyboardInterrupt included, the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    # the name is fixed before the file exists, so a signal at any point (even inside the
    # call that creates it) leaves nothing behind: the except below removes that name
    tmp = (path.parent if str(path.parent) else Path(".")) / (
        f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp{path.suffix}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_npz(path, **arrays) -> Path:
    """``np.savez`` to ``path`` (which should end in ``.npz``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


# ----------------------------------------------------------------------------- output checks
def _probe_writable(folder: Path, what: str, value) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".svdyn-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SpecError(f"{what} {value!r}: cannot write in {str(folder)!r} "
                        f"({e.strerror or e}); choose a writable folder") from None


def check_output_file(path, what: str, suffixes=None) -> Path:
    """Refuse an output file path that cannot be written; return it as a Path.

    Refused: an empty name, an existing folder, anything that exists but is not a regular file
    (devices such as /dev/null or /dev/full, pipes), a missing or non-folder parent, a folder
    that cannot be written (probed by creating a file), and, with ``suffixes``, another suffix
    (compared case-insensitively).
    """
    text = "" if path is None else str(path)
    if not text.strip():
        raise SpecError(f"{what} {text!r}: empty file name; give a path such as out.json")
    p = Path(text)
    if p.is_dir():
        raise SpecError(f"{what} {text!r}: is a folder; give a file name, e.g. "
                        f"{os.path.join(text, 'out' + (suffixes[0] if suffixes else '.json'))}")
    if os.path.lexists(p) and not stat.S_ISREG(os.stat(p).st_mode if p.exists()
                                                 else os.lstat(p).st_mode):
        raise SpecError(f"{what} {text!r}: exists and is not a regular file (a device, pipe "
                        "or broken link); give a file path")
    if suffixes and p.suffix.lower() not in suffixes:
        raise SpecError(f"{what} {text!r}: unsupported suffix {p.suffix or '(none)'!r}; "
                        f"use {', '.join(suffixes)}")
    parent = p.parent
    if not parent.exists():
        raise SpecError(f"{what} {text!r}: folder {str(parent)!r} does not exist; create it "
                        "first or choose another path")
    if not parent.is_dir():
        raise SpecError(f"{what} {text!r}: {str(parent)!r} is not a folder")
    _probe_writable(parent, what, text)
    return p


def check_output_dir(path, what: str) -> Path:
    """Refuse an output folder that cannot be made or written; return it as a Path.

    The folder may exist (it must then be a writable folder) or not (its parent must exist and
    be writable; the caller creates the folder itself, one level only)."""
    text = "" if path is None else str(path)
    if not text.strip():
        raise SpecError(f"{what} {text!r}: empty folder name; give a folder path")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise SpecError(f"{what} {text!r}: exists and is not a folder; give a folder path")
    if p.is_dir():
        _probe_writable(p, what, text)
        return p
    parent = p.parent
    if not parent.is_dir():
        raise SpecError(f"{what} {text!r}: parent folder {str(parent)!r} does not exist; "
                        "create it first or choose another path")
    _probe_writable(parent, what, text)
    return p


# ----------------------------------------------------------------------------- state files
def _numbers(obj, what, value) -> np.ndarray:
    """Nested JSON lists of numbers -> float array (ragged lists, strings, bools refused)."""
    def walk(x):
        if isinstance(x, bool) or not (x is None or isinstance(x, (int, float, list))):
            raise SpecError(f"{what} {value!r}: holds {type(x).__name__} values; singular "
                            "values must be numbers")
        if isinstance(x, list):
            for y in x:
                walk(y)
    walk(obj)
    try:
        with np.errstate(over="ignore"):
            arr = np.array(obj, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise SpecError(f"{what} {value!r}: ragged rows (lists of unequal length); give a "
                        "rectangular array (L rows of K values) or K values") from None
    return arr


def _last_finite_state(s, times, status, what, value):
    s = np.asarray(s, dtype=np.float64)
    if s.ndim == 4:
        raise SpecError(f"{what} {value!r}: a saved batch of {s.shape[0]} trajectories; "
                        "extract one (svdyn.Trajectory.load(path)[i]) and save it")
    if s.ndim != 3 or s.shape[0] == 0:
        raise SpecError(f"{what} {value!r}: saved trajectory with states of shape {s.shape}; "
                        "expected (T, L, K)")
    ok = np.flatnonzero(np.all(np.isfinite(s), axis=(1, 2)))
    if ok.size == 0:
        raise SpecError(f"{what} {value!r}: saved trajectory has no finite state")
    i = int(ok[-1])
    t = float(np.asarray(times, dtype=np.float64)[i]) if times is not None else float("nan")
    note = (f"{what} {value}: a saved svdyn trajectory (status {status!r}); starting from its "
            f"last finite state, saved at t = {t:g}")
    return s[i], note


def load_state_file(path, what: str = "--init-file") -> tuple[np.ndarray, str | None]:
    """Read initial singular values from a file, recognised by content.

    Returns ``(array, note)``: the array as float64 of shape (K,) (logit singular values z) or
    (L, K) (per-factor s); ``note`` says how a saved trajectory was used (else ``None``).
    Accepted: ``.npy`` (real numbers; object arrays are refused, never unpickled), ``.npz`` with
    ``s`` or ``z`` (or a saved trajectory), JSON ``{"s": [[...]]}`` / ``{"z": [...]}`` / a
    list / a saved trajectory, and text or CSV (rows of numbers, ``#`` comments).
    """
    value = "" if path is None else str(path)
    if not value.strip():
        raise SpecError(f"{what} {value!r}: empty file name; give the path of a .npy, JSON or "
                        "text file")
    p = Path(value)
    if p.is_dir():
        raise SpecError(f"{what} {value!r}: is a folder; give a file")
    if not p.exists():
        raise SpecError(f"{what} {value!r}: no such file")
    try:
        size = p.stat().st_size
        if not stat.S_ISREG(p.stat().st_mode):
            raise SpecError(f"{what} {value!r}: not a regular file")
        if size > MAX_STATE_FILE_BYTES:
            raise SpecError(f"{what} {value!r}: {size / 2**20:.0f} MiB is too large for one "
                            f"state (limit {MAX_STATE_FILE_BYTES >> 20} MiB)")
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise SpecError(f"{what} {value!r}: cannot read ({e.strerror or e})") from None
    if size == 0:
        raise SpecError(f"{what} {value!r}: empty file; write K values or an (L, K) array")
    if head.startswith(b"\x93NUMPY"):
        return _load_npy(p, what, value), None
    if head.startswith(b"PK\x03\x04"):
        return _load_npz(p, what, value)
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise SpecError(f"{what} {value!r}: binary content that is not .npy/.npz; give a .npy, "
                        "JSON or text file")
    first = text.lstrip()[:1]
    if first in ("{", "["):
        return _load_json(text, what, value)
    return _load_text(text, what, value), None


def _load_npy(p, what, value) -> np.ndarray:
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise SpecError(f"{what} {value!r}: holds Python objects (would need unpickling, "
                            "which svdyn never does); save a float array with np.save") from None
        raise SpecError(f"{what} {value!r}: not a readable .npy file ({e})") from None
    except (OSError, EOFError) as e:
        raise SpecError(f"{what} {value!r}: not a readable .npy file ({e})") from None
    return _real(arr, what, value)


def _real(arr, what, value) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind == "c":
        raise SpecError(f"{what} {value!r}: complex values; singular values are real, save "
                        "np.abs(...) or the real part explicitly")
    if arr.dtype.kind not in "fiu":
        raise SpecError(f"{what} {value!r}: holds {arr.dtype} values, not numbers")
    return arr.astype(np.float64)


def _load_npz(p, what, value):
    import zipfile
    try:
        with np.load(p, allow_pickle=False) as d:
            keys = set(d.files)
            if {"s", "times", "config"} <= keys:
                try:
                    status = json.loads(str(d["config"])).get("status")
                except (ValueError, AttributeError):
                    status = None
                return _last_finite_state(_real(d["s"], what, value), d["times"], status, what,
                                          value)
            for k in ("s", "z"):
                if k in keys:
                    return _real(d[k], what, value), None
    except SpecError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise SpecError(f"{what} {value!r}: holds Python objects (would need unpickling, "
                            "which svdyn never does)") from None
        raise SpecError(f"{what} {value!r}: not a readable .npz file ({e})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise SpecError(f"{what} {value!r}: not a readable .npz file ({e})") from None
    raise SpecError(f"{what} {value!r}: .npz without an array named 's' or 'z' (has "
                    f"{sorted(keys)}); save np.savez(path, s=...)")


def _load_json(text, what, value):
    def bad_const(c):
        raise ValueError(f"non-standard constant {c}")
    try:
        obj = json.loads(text, parse_constant=bad_const)
    except ValueError as e:
        raise SpecError(f"{what} {value!r}: invalid JSON ({e})") from None
    if isinstance(obj, list):
        return _numbers(obj, what, value), None
    if not isinstance(obj, dict):
        raise SpecError(f"{what} {value!r}: JSON holds a {type(obj).__name__}; write "
                        '{"s": [[...], ...]} (L rows of K values) or {"z": [...]} (K values)')
    if "s" in obj and "times" in obj and "config" in obj:
        s = _numbers(obj["s"], what, value)
        return _last_finite_state(s, _numbers(obj["times"], what, value), obj.get("status"),
                                  what, value)
    for k in ("s", "z"):
        if k in obj:
            return _numbers(obj[k], what, value), None
    raise SpecError(f"{what} {value!r}: JSON object without a key 's' or 'z' (has "
                    f"{sorted(obj)[:6]}); write " '{"s": [[...]]} or {"z": [...]}')


_SPLIT = re.compile(r"\s*,\s*|\s+")


def _load_text(text, what, value) -> np.ndarray:
    rows = []
    for ln, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        items = _SPLIT.split(line)
        if "" in items:
            raise SpecError(f"{what} {value!r}: line {ln} has an empty item ({line!r}); "
                            "separate numbers by one comma or by spaces")
        try:
            rows.append([float(t) for t in items])
        except ValueError:
            raise SpecError(f"{what} {value!r}: line {ln} is not a row of numbers "
                            f"({line[:40]!r}); give K values or L rows of K values") from None
    if not rows:
        raise SpecError(f"{what} {value!r}: no numbers in the file")
    if len({len(r) for r in rows}) != 1:
        raise SpecError(f"{what} {value!r}: rows have unequal lengths "
                        f"({[len(r) for r in rows][:6]}); give L rows of K values")
    arr = np.array(rows, dtype=np.float64)
    return arr[0] if arr.shape[0] == 1 else arr


def load_trajectory(path, what: str = "TRAJ"):
    """A saved :class:`svdyn.result.Trajectory` (JSON or .npz, recognised by content); any
    other file is refused with a one-line :class:`SpecError`."""
    import zipfile
    from .result import Trajectory
    value = "" if path is None else str(path)
    p = Path(value)
    if not value.strip():
        raise SpecError(f"{what} {value!r}: empty file name")
    if p.is_dir():
        raise SpecError(f"{what} {value!r}: is a folder; give a trajectory file")
    if not p.exists():
        raise SpecError(f"{what} {value!r}: no such file")
    with open(p, "rb") as f:
        head = f.read(4)
    is_zip = head.startswith(b"PK\x03\x04")
    if is_zip != (p.suffix.lower() == ".npz"):
        kind = "an .npz archive" if is_zip else "not an .npz archive"
        raise SpecError(f"{what} {value!r}: the content is {kind} but the name ends in "
                        f"{p.suffix or '(no suffix)'!r}; rename it to end in "
                        f"{'.npz' if is_zip else '.json'}")
    try:
        if not is_zip:
            read_json_strict(p)          # NaN / Infinity constants are not svdyn's JSON
        tr = Trajectory.load(p)
        arrs = {"times": np.asarray(tr.times), "s": np.asarray(tr.s)}
        spec = tr.spec
    except SpecError as e:
        raise SpecError(f"{what} {value!r}: bad model in the saved config ({e})") from None
    except (KeyError, TypeError, ValueError, AttributeError, OSError, EOFError,
            zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise SpecError(f"{what} {value!r}: not a saved svdyn trajectory ({type(e).__name__}: "
                        f"{str(e)[:80]}); write one with svdyn flow --json") from None
    T = arrs["times"].shape[0] if arrs["times"].ndim == 1 else -1
    if arrs["s"].ndim not in (3, 4) or arrs["s"].shape[-2:] != (spec.L, spec.K) \
            or T < 1 or arrs["s"].shape[-3] != T:
        raise SpecError(f"{what} {value!r}: states of shape {arrs['s'].shape} do not match "
                        f"{T} times and (L, K) = ({spec.L}, {spec.K})")
    return tr
