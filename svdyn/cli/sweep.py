"""``svdyn sweep run | status | collect``: grids of runs, resumable, in-process / processes / dask."""
from __future__ import annotations

import json
import sys

from ..groups import SpecError
from .common import add_progress_args


def register(sub) -> None:
    p = sub.add_parser("sweep", help="phase diagrams over grids (TOML), resumable; in-process, "
                       "processes or dask")
    ss = p.add_subparsers(dest="sweep_command", required=True, parser_class=type(p))

    r = ss.add_parser("run", help="run (or resume) the grid GRID.toml into --out DIR")
    r.add_argument("grid", metavar="GRID.toml", help="grid file (see examples/sweep_small.toml)")
    r.add_argument("--out", required=True, metavar="DIR", help="sweep folder (created; rerun "
                   "the same command to resume)")
    add_executor_args(r)
    add_progress_args(r)
    r.add_argument("--collect", action="store_true", help="collect (summary + figures) at "
                   "the end")
    r.add_argument("--json", help="write the run report to this JSON file")
    r.set_defaults(func=cmd_run, command="sweep")

    s = ss.add_parser("status", help="done / pending / failed chunks of DIR, with an ETA")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(func=cmd_status, command="sweep")

    c = ss.add_parser("collect", help="summary table per cell (summary.csv/.md/.json) and "
                      "the standard figures of DIR")
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--figures", default=None, metavar="FIGDIR",
                   help="figure folder (default DIR/figures)")
    c.add_argument("--no-figures", action="store_true")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.set_defaults(func=cmd_collect, command="sweep")


#: ``--workers`` bound (a sanity limit, far above any one machine's cores)
MAX_WORKERS = 4096


def add_executor_args(p) -> None:
    """``--executor {inprocess,processes,dask} --workers N --scheduler tcp://HOST:8786``: the
    one spelling of the sweep runner's executor options (``svdyn sweep run``, ``svdyn
    report``); check them with :func:`check_executor_args`."""
    from .common import Num
    p.add_argument("--executor", choices=("inprocess", "processes", "dask"), default=None,
                   help="inprocess (default: chunks one after another, parallel over the "
                   "cores), processes (N local workers), dask (LocalCluster, or --scheduler)")
    p.add_argument("--workers", type=Num(int, lo=1, hi=MAX_WORKERS), default=None,
                   help="workers for processes / a dask LocalCluster (default: all cores)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                   help="existing dask scheduler (implies --executor dask)")


def check_executor_args(args) -> None:
    """Combinations argparse cannot check: --scheduler needs dask; --workers needs a pool."""
    if args.scheduler is not None:
        if args.executor not in (None, "dask"):
            raise SpecError(f"--scheduler needs --executor dask, not {args.executor}")
        if not args.scheduler.strip() or "://" not in args.scheduler:
            raise SpecError(f"--scheduler {args.scheduler!r}: give the scheduler's address, "
                            "e.g. tcp://HOST:8786")
        if args.workers is not None:
            raise SpecError(f"--workers {args.workers}: an existing cluster (--scheduler) "
                            "has its own workers; drop --workers")
    if args.workers is not None and args.executor in (None, "inprocess") \
            and args.scheduler is None:
        raise SpecError(f"--workers {args.workers}: the in-process executor has no workers "
                        "(it runs on all cores); add --executor processes or dask")


def _hms(s) -> str:
    if s is None:
        return "unknown (no finished chunk yet)"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s"


def cmd_run(args) -> int:
    from ..sweep.runner import run
    from ..sweep.grid import Grid
    check_executor_args(args)
    grid = Grid.load(args.grid)
    try:
        rep = run(grid, args.out, args.executor, workers=args.workers, scheduler=args.scheduler,
                  progress=args.progress)
    except KeyboardInterrupt:
        sys.stderr.write(f"svdyn sweep: interrupted; finished chunks are kept in {args.out}; "
                         "rerun the same command to resume\n")
        return 130
    print(f"svdyn sweep: {rep.computed} chunks computed, {rep.skipped} skipped (already done), "
          f"{rep.failed} failed; {rep.rows} rows in {rep.seconds:.1f} s on "
          f"{rep.executor['executor']}", file=sys.stderr)
    if args.json:
        from .common import write_json
        write_json(args.json, rep.to_dict())
    for e in rep.errors[:5]:
        print(f"  failed {e.splitlines()[0]}", file=sys.stderr)
    if args.collect:
        from ..sweep.summary import collect
        summ = collect(args.out)
        print(summ.to_markdown())
    if rep.failed:
        print(f"svdyn sweep: {rep.failed} chunks failed (details in {args.out}/failed/); "
              "rerun to retry them", file=sys.stderr)
        return 1
    return 0


def cmd_status(args) -> int:
    from ..sweep.runner import status
    st = status(args.dir)
    if args.json:
        print(json.dumps(st, indent=1))
        return 0
    pct = 100.0 * st["rows_done"] / max(st["rows_done"] + st["rows_todo"], 1)
    print(f"{st['out']}: task {st['task']}, {st['cells']} cells, {st['chunks']} chunks")
    print(f"  done {st['done']}, pending {st['pending']}, failed {st['failed']} "
          f"({st['rows_done']} of {st['rows_done'] + st['rows_todo']} rows, {pct:.1f} %)")
    print(f"  compute so far {_hms(st['compute_seconds'])}; ETA {_hms(st['eta_seconds'])} "
          f"at {st['eta_parallelism']} in parallel")
    if st["running_pid"]:
        print(f"  a run is in progress (pid {st['running_pid']})")
    for f in st["failures"][:10]:
        print(f"  failed {f['chunk']}: {f['error'].splitlines()[0] if f['error'] else ''}")
    return 0


def cmd_collect(args) -> int:
    from ..sweep.summary import collect
    summ = collect(args.dir, figures=not args.no_figures, fig_dir=args.figures)
    if args.json:
        print(json.dumps(summ.to_dict(), default=str))
    else:
        print(summ.to_markdown())
        print(f"wrote {args.dir}/summary.csv, summary.md, summary.json" +
              (f" and {len(summ.figures)} figures" if summ.figures else ""), file=sys.stderr)
    return 0
