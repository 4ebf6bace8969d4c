"""``svdyn`` entry point: a registry of subcommand modules.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds its
subcommands and sets ``func`` (``args -> int exit code``) on each parser. Bad input raises
:class:`svdyn.groups.SpecError`, which is printed as one line with exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..groups import SpecError

COMMAND_MODULES = [
    "svdyn.cli.dynamics",   # flow, descend, demo
    "svdyn.cli.validate",   # validate (full torch model vs reduced engine)
    "svdyn.cli.landscape",  # critical, hessian (weight decay landscape)
    "svdyn.cli.analysis",   # maxmargin, basin, code, classify, report
    "svdyn.cli.derive",     # derive, lyapunov
    "svdyn.cli.warmup",     # warmup (fill the numba cache)
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        sys.stderr.write(f"svdyn: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="svdyn", description="Reduced singular-value dynamics of deep linear UFMs.")
    p.add_argument("--version", action="version", version=f"svdyn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except SpecError as e:
        sys.stderr.write(f"svdyn {args.command}: error: {e}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
