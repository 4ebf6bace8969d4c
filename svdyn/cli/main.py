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


def _on_sigterm(signum, frame):
    _SIGTERM_SEEN[0] = True
    raise Terminated()


def _catch_sigterm():
    """Install the SIGTERM handler (main thread only); returns the previous one or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = next((a for a in argv if not a.startswith("-")), None)
    _SIGTERM_SEEN[0] = False
    prev = _catch_sigterm()
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
        term = isinstance(e, Terminated)
        sys.stderr.write(f"svdyn {cmd or ''}: {'terminated' if term else 'interrupted'}\n"
                         .replace(" :", ":"))
        return 143 if term else 130
    except SpecError as e:
        sys.stderr.write(f"svdyn {cmd}: error: {' '.join(str(e).split())}\n")
        return 2
    except OSError as e:    # a write that failed after the work (disk full, file removed...)
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        sys.stderr.write(f"svdyn {cmd}: error: {e.strerror or e}{where}\n")
        return 1
    finally:
        _COMMAND[0] = None
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)
        _forget_caught_interrupt()     # every Ctrl-C reaching here was handled: exit 130


if __name__ == "__main__":
    raise SystemExit(main())
