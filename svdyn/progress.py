"""Progress bars and first-compile notices, both on stderr.

Two context managers every long run uses:

* :func:`progress_bar` -- a tqdm bar with ETA on stderr, on only when stderr is a terminal
  (unless asked), so pipes, CI logs and ``--json`` output stay clean;
* :func:`compile_notice` -- one line when numba kernels are about to be compiled for the first
  time (and so the run will sit silent for a while), nothing when they are cached.

The environment variable ``SVDYN_PROGRESS`` overrides the terminal test: ``1`` forces bars on,
``0`` turns bars and compile notices off.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["progress_bar", "track", "step_callback", "compile_notice", "progress_enabled"]

_ENV = "SVDYN_PROGRESS"


def _env_flag():
    """``True``/``False`` from ``SVDYN_PROGRESS``, ``None`` when unset or unreadable."""
    v = os.environ.get(_ENV, "").strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    return None


def progress_enabled(enabled=None) -> bool:
    """Resolve a ``progress=`` argument.

    Parameters
    ----------
    enabled : bool or None
        ``True`` forces progress on, ``False`` off; ``None`` follows ``SVDYN_PROGRESS`` if set,
        else whether stderr is a terminal.

    Returns
    -------
    bool
    """
    if enabled is not None:
        return bool(enabled)
    env = _env_flag()
    if env is not None:
        return env
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


class _NullBar:
    """The do-nothing bar handed out when progress is off (same methods as tqdm's)."""

    n = 0
    total = None

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s="", refresh=True):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def set_description(self, desc=None, refresh=True):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_bar(total, desc, *, enabled=None, unit="it"):
    """A progress bar (tqdm, on stderr) with ETA, or a no-op object when progress is off.

    Use as a context manager::

        with progress_bar(len(jobs), "basin map") as bar:
            for job in jobs:
                ...
                bar.update(1)

    Parameters
    ----------
    total : int or None
        Number of units of work (``None``: unknown, no ETA).
    desc : str
        Short label shown before the bar.
    enabled : bool or None, optional
        ``True`` forces the bar on, ``False`` off; ``None`` (default) shows it iff stderr is a
        terminal, unless the environment variable ``SVDYN_PROGRESS`` is ``0`` or ``1``.
    unit : str, optional
        Name of one unit of work (``"it"``, ``"run"``, ``"point"``...).

    Returns
    -------
    tqdm.tqdm or _NullBar
        An object with ``update(n)``, ``set_postfix_str(s)``, ``close()``, usable in ``with``.
    """
    if not progress_enabled(enabled):
        return _NullBar()
    from tqdm.auto import tqdm as _tqdm  # tiny, but only loaded when a bar is shown

    return _tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                 dynamic_ncols=True, mininterval=0.25)


def track(iterable, desc, *, total=None, enabled=None, unit="it"):
    """Iterate over ``iterable`` with a :func:`progress_bar` (a drop-in for a ``for`` loop).

    Parameters
    ----------
    iterable : iterable
    desc : str
    total : int, optional
        Defaults to ``len(iterable)`` when it has one.
    enabled : bool or None, optional
        As in :func:`progress_bar`.
    unit : str, optional

    Yields
    ------
    The items of ``iterable``.
    """
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    with progress_bar(total, desc, enabled=enabled, unit=unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def step_callback(desc, *, enabled=None, unit="step"):
    """A ``progress(step, total, loss)`` callable (the hook of :func:`svdyn.fullmodel.gd`) that
    drives one bar; the bar closes when ``step >= total``. ``None`` when progress is off, so it
    can be passed straight to functions whose ``progress=None`` means silent.

    Parameters
    ----------
    desc : str
    enabled : bool or None, optional
        As in :func:`progress_bar`.
    unit : str, optional

    Returns
    -------
    callable or None
    """
    if not progress_enabled(enabled):
        return None
    state = {}

    def cb(step, total, loss=None):
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = progress_bar(total, desc, enabled=True, unit=unit)
        bar.update(max(0, int(step) - bar.n))
        if loss is not None:
            bar.set_postfix_str(f"loss {loss:.4g}", refresh=False)
        if total is not None and step >= total:
            bar.close()
            state.pop("bar")

    return cb


# --------------------------------------------------------------------- compile notices

_NOTICED: set = set()  # what-keys already announced (or known compiled) in this process


def _cache_root() -> Path:
    """Where compile markers live: inside NUMBA_CACHE_DIR when set, so wiping it resets them."""
    d = os.environ.get("NUMBA_CACHE_DIR")
    if d:
        return Path(d) / "svdyn-compiled"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.access(os.path.dirname(base) or ".", os.W_OK) and not os.path.isdir(base):
        base = tempfile.gettempdir()
    return Path(base) / "svdyn" / "compiled"


def _marker(what: str) -> Path:
    """Marker file keyed by svdyn version + location, numba version, cache dir and ``what``."""
    from . import __version__

    try:  # the installed version, without importing numba (which would read its config now)
        from importlib.metadata import version

        nbv = version("numba")
    except Exception:  # pragma: no cover - numba is a core dependency
        nbv = "?"
    key = "|".join([__version__, str(Path(__file__).resolve().parent), nbv,
                    os.environ.get("NUMBA_CACHE_DIR", ""), sys.version.split()[0], what])
    return _cache_root() / (hashlib.sha1(key.encode()).hexdigest()[:20] + ".done")


def _dispatcher_ready(d) -> bool:
    """True when a numba dispatcher has a compiled signature in this process or a valid cache
    index on disk (numba's own index, which it discards when the source changed). ``d`` may
    be a pair ``(dispatcher, args)``: then only the signature of those arguments counts."""
    sig = None
    if isinstance(d, tuple):
        d, args = d
        try:
            sig = tuple(d.typeof_pyval(a) for a in args)
        except Exception:
            return False
        if sig in d.overloads:
            return True
    elif getattr(d, "signatures", None):
        return True
    cache = getattr(d, "_cache", None)
    try:
        index = cache._cache_file._load_index()  # {} when missing or stale
        if sig is None:
            return bool(index)
        return any(isinstance(k, tuple) and k and k[0] == sig for k in index)
    except Exception:
        return False


def _needs_compile(what: str, dispatchers) -> bool:
    if dispatchers is not None:
        ds = list(dispatchers)
        if ds:
            return not all(_dispatcher_ready(d) for d in ds)
    try:
        return not _marker(what).exists()
    except OSError:
        return False


@contextmanager
def compile_notice(what, typical_s, dispatchers=None, *, stream=None):
    """Print one line to stderr before numba kernels are compiled for the first time.

    ``svdyn: compiling <what> kernels for the first time (typically ~N s on 2 cores; cached
    afterwards)`` -- printed only when compilation will actually happen, once per process.

    How "will compile" is decided (cheap: a few ``stat`` calls or one small pickle load):

    * with ``dispatchers`` (numba dispatchers the block calls): compile is needed unless every
      one already has a signature in this process or a non-empty, up-to-date numba cache index
      on disk;
    * without: a marker file keyed by svdyn version and location, numba and Python versions,
      ``NUMBA_CACHE_DIR`` and ``what``; it is written when the block completes without error
      and lives inside ``NUMBA_CACHE_DIR`` (when set), so wiping the cache resets it.

    Parameters
    ----------
    what : str
        What is compiled, e.g. ``"flow"`` or ``"gradient-descent"``.
    typical_s : float
        Typical first-compile time in seconds (measured on the 2-core reference machine).
    dispatchers : iterable of numba dispatchers, optional
        The kernels the block will call (their entry points suffice), or ``(dispatcher, args)``
        pairs: then that dispatcher counts as ready only for the signature of ``args``.
    stream : file-like, optional
        Where to write (default ``sys.stderr``).

    Yields
    ------
    bool
        Whether the notice was printed (compilation expected).

    Notes
    -----
    ``SVDYN_PROGRESS=0`` silences the notice.
    """
    key = what
    show = False
    if key not in _NOTICED and _env_flag() is not False:
        show = _needs_compile(what, dispatchers)
    if show:
        out = stream if stream is not None else sys.stderr
        print(f"svdyn: compiling {what} kernels for the first time (typically ~{typical_s:.0f} s"
              " on 2 cores; cached afterwards)", file=out, flush=True)
    _NOTICED.add(key)
    yield show
    if dispatchers is None:
        try:
            m = _marker(what)
            if not m.exists():
                m.parent.mkdir(parents=True, exist_ok=True)
                m.touch()
        except OSError:
            pass
