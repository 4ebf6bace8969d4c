"""``svdyn`` entry point: a registry of subcommand modules.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its
subcommands and sets ``func`` (``args -> int exit code``) on each parser. Bad input raises
:class:`svdyn.groups.SpecError` (or fails an argparse ``type=`` check from
``svdyn.cli.common``), which is printed as one line ``svdyn <command>: error: ...`` with exit 2.
Ctrl-C anywhere prints ``svdyn <command>: interrupted`` and exits 130; outputs are written
atomically (``svdyn.io``), so no half-written file is left.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import tempfile
import threading

COMMAND_MODULES = [
    "svdyn.cli.dynamics",   # flow, descend, demo
    "svdyn.cli.validate",   # validate (full torch model vs reduced engine)
    "svdyn.cli.landscape",  # critical, hessian (weight decay landscape)
    "svdyn.cli.analysis",   # maxmargin, basin, code, classify, report
    "svdyn.cli.derive",     # derive, lyapunov
    "svdyn.cli.stability",  # stability (off-manifold perturbations under torch optimizers)
    "svdyn.cli.warmup",     # warmup (fill the numba cache)
    "svdyn.cli.sweep",      # sweep run / status / collect
]

_ARG = re.compile(r"^argument (?P<opt>[^:]+?): (?P<msg>.*)$", re.S)
_COMMAND = [None]          # the subcommand being parsed (for the top-level parser's errors)


def _one_line(message: str) -> str:
    m = _ARG.match(message)
    if m:                   # "argument --t-end: 'x': expected ..." -> "--t-end 'x': expected ..."
        opt = m.group("opt").split("/")[-1]
        msg = m.group("msg")
        message = f"{opt} {msg}" if msg.startswith(("'", '"')) else f"{opt}: {msg}"
    m = re.match(r"^unrecognized arguments: (.*)$", message)
    if m:
        message = f"{m.group(1)}: unknown option or extra argument; see --help"
    return " ".join(message.split())


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming the command, exit 2, no usage dump
        prog = self.prog if self.prog != "svdyn" or _COMMAND[0] is None else \
            f"svdyn {_COMMAND[0]}"
        sys.stderr.write(f"{prog}: error: {_one_line(message)}\n")
        raise SystemExit(2)


_PARSER = []


def _parser() -> argparse.ArgumentParser:
    """The parser, built once per process (argparse parsers are reusable)."""
    if not _PARSER:
        _PARSER.append(build_parser())
    return _PARSER[0]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    p = _Parser(prog="svdyn", description="Reduced singular-value dynamics of deep linear UFMs.")
    p.add_argument("--version", action="version", version=f"svdyn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def _command_of(argv, parser) -> str | None:
    names = set()
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            names = set(a.choices)
    return next((a for a in argv if a in names), None)


def _check_numba_cache(cmd) -> None:
    """A NUMBA_CACHE_DIR that cannot be written is not fatal (numba falls back to other cache
    places or compiles every run), but say so: otherwise every run silently pays the compile."""
    d = os.environ.get("NUMBA_CACHE_DIR")
    if not d:
        return
    try:
        os.makedirs(d, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=d, prefix=".svdyn-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        sys.stderr.write(f"svdyn {cmd}: note: NUMBA_CACHE_DIR {d!r} is not writable "
                         f"({e.strerror or e}); compiled kernels are cached elsewhere or "
                         "recompiled on every run\n")


def _forget_caught_interrupt() -> None:
    """Clear CPython's "unhandled KeyboardInterrupt" flag after a Ctrl-C that *was* handled.

    CPython sets that flag when a KeyboardInterrupt leaves code run by ``exec``/``eval`` of a
    string (numba, dataclasses and namedtuple all do this while modules import or kernels
    compile), and it is not cleared when an outer ``except`` catches the exception. Under
    ``python -m svdyn.cli.main`` the interpreter then ends by re-raising SIGINT on itself
    (exit status -2) instead of returning our 130. Every successful string ``exec`` resets the
    flag, so one empty ``exec`` here does it (seen in CI: a Ctrl-C one second into startup).
    """
    exec("")  # noqa: S102 - resets the interpreter flag; runs no code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every command cleans up exactly as after a
    Ctrl-C (temporary files removed, finished sweep chunks kept); exit status 143."""


_SIGTERM_SEEN = [False]
_SIGINT_SEEN = [False]


#: Python functions that LLVM calls back through ctypes while numba compiles (llvmlite's
#: object-cache hooks). ctypes prints an exception raised in a callback, traceback and all, and
#: drops it: numba then goes on and fails later ("no compiled object yet" when it caches the
#: half-built kernel). A signal handled inside one is raised 5 ms later instead (a SIGALRM
#: timer, re-armed while still inside a callback).
_FOREIGN_CALLBACKS = frozenset(("_raw_object_cache_notify", "_raw_object_cache_getbuffer"))
_DEFER_S = 0.005
_PENDING = [None]   # the exception a deferred signal will raise


def _in_foreign_callback(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name in _FOREIGN_CALLBACKS:
            return True
        frame = frame.f_back
    return False


def _deliver(exc, frame):
    if _in_foreign_callback(frame) and hasattr(signal, "setitimer"):
        _PENDING[0] = exc
        signal.setitimer(signal.ITIMER_REAL, _DEFER_S)
        return
    raise exc


def _on_alarm(signum, frame):
    if _PENDING[0] is not None:
        _deliver(_PENDING[0], frame)


def _on_sigterm(signum, frame):
    _SIGTERM_SEEN[0] = True
    _deliver(Terminated(), frame)


def _on_sigint(signum, frame):
    _SIGINT_SEEN[0] = True   # remembered: an error that follows a dropped interrupt is one
    _deliver(KeyboardInterrupt(), frame)


def _catch_signals():
    """Install the SIGTERM, SIGINT (and SIGALRM, for deferred ones) handlers (main thread
    only); returns the previous handlers as ``[(signal, handler), ...]`` or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    _PENDING[0] = None
    mine = [(signal.SIGTERM, _on_sigterm), (signal.SIGINT, _on_sigint)]
    if hasattr(signal, "SIGALRM"):
        mine.append((signal.SIGALRM, _on_alarm))
    prev = []
    try:
        for sig, handler in mine:
            prev.append((sig, signal.signal(sig, handler)))
    except (ValueError, OSError):
        _restore(prev)
        return None
    return prev


def _restore(prev) -> None:
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)   # no deferred signal outlives main()
    _PENDING[0] = None
    for sig, handler in prev:
        signal.signal(sig, handler)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = next((a for a in argv if not a.startswith("-")), None)
    _SIGTERM_SEEN[0] = _SIGINT_SEEN[0] = False
    prev = _catch_signals()
    try:
        from ..groups import SpecError   # imports inside the try: Ctrl-C while importing is
        parser = _parser()               # handled like Ctrl-C anywhere else
        cmd = _COMMAND[0] = _command_of(argv, parser)
        _check_numba_cache(cmd)
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:     # usage errors (exit 2), --help / --version (exit 0)
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        args.argv = argv
        rc = int(args.func(args) or 0)
        # a command that handled the SIGTERM itself (report, sweep: their own message)
        return 143 if _SIGTERM_SEEN[0] else rc
    except KeyboardInterrupt as e:      # first: SpecError may not be imported yet
        return _interrupted(cmd, isinstance(e, Terminated))
    except SpecError as e:
        sys.stderr.write(f"svdyn {cmd}: error: {' '.join(str(e).split())}\n")
        return 2
    except OSError as e:    # a write that failed after the work (disk full, file removed...)
        if _SIGINT_SEEN[0] or _SIGTERM_SEEN[0]:
            return _interrupted(cmd)
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        sys.stderr.write(f"svdyn {cmd}: error: {e.strerror or e}{where}\n")
        return 1
    except Exception:
        if _SIGINT_SEEN[0] or _SIGTERM_SEEN[0]:   # the signal's KeyboardInterrupt was
            return _interrupted(cmd)              # swallowed and this error followed it
        raise
    finally:
        _COMMAND[0] = None
        if prev is not None:
            _restore(prev)
        _forget_caught_interrupt()     # every Ctrl-C reaching here was handled: exit 130


def _interrupted(cmd, term=None) -> int:
    """The one line and exit status of a run stopped by Ctrl-C (130) or SIGTERM (143)."""
    if term is None:
        term = _SIGTERM_SEEN[0]
    sys.stderr.write(f"svdyn {cmd or ''}: {'terminated' if term else 'interrupted'}\n"
                     .replace(" :", ":"))
    return 143 if term else 130


if __name__ == "__main__":
    raise SystemExit(main())
