"""Count the outcomes of every case in tests/faults_cases.py by category (run by hand).

    python tests/faults_count.py [--timeout 20] [--jobs 2] [--filter SUBSTR] [--show CATEGORY]

Each case runs ``svdyn.cli.main.main(argv)`` in a forked child (modules imported once in the
parent) with a wall-clock timeout (a case that times out counts as a hang) and a 6 GiB
address-space limit (an allocation beyond it is a MemoryError traceback, not a dead machine).
"""
from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults_cases as fc  # noqa: E402


def _child(case, d, conn):
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    fc.cleanup(d)
    rc, out, err, tb = fc.run_case(case, d)
    try:
        cat, detail = fc.judge(case, rc, out, err, tb, d)
    except Exception as e:  # noqa: BLE001
        cat, detail = "silent", f"judge failed: {type(e).__name__}: {e}"
    conn.send((cat, detail))
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--filter", default="")
    ap.add_argument("--show", default="traceback,hang,silent,unclean")
    a = ap.parse_args()
    import svdyn.cli.main  # noqa: F401  (import once, before forking)
    for m in svdyn.cli.main.COMMAND_MODULES:
        __import__(m)
    for m in ("torch", "svdyn.fullmodel", "svdyn.plotting", "svdyn.analysis.geometry",
              "svdyn.analysis.basins", "svdyn.landscape.critical", "svdyn.lyapunov"):
        try:
            __import__(m)
        except Exception:  # noqa: BLE001
            pass
    cases = [c for c in fc.all_cases() if a.filter in c.id]
    dirs = []
    for _ in range(a.jobs):
        d = tempfile.mkdtemp(prefix="svdyn-faults-")
        fc.make_fixtures(d)
        dirs.append(d)
    ctx = mp.get_context("fork")
    free = list(dirs)
    running = {}
    results = {}
    todo = list(cases)
    t0 = time.monotonic()
    while todo or running:
        while todo and free:
            c = todo.pop(0)
            d = free.pop()
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(c, d, w))
            p.start()
            w.close()
            running[p] = (c, d, r, time.monotonic())
        time.sleep(0.01)
        for p, (c, d, r, ts) in list(running.items()):
            done = r.poll()
            if done or not p.is_alive() or time.monotonic() - ts > a.timeout:
                if done:
                    try:
                        results[c.id] = r.recv()
                    except EOFError:
                        results[c.id] = ("traceback", "child died")
                elif p.is_alive():
                    results[c.id] = ("hang", f"> {a.timeout:g} s")
                else:
                    results[c.id] = ("traceback", f"child died with exit {p.exitcode}")
                if p.is_alive():
                    p.kill()
                p.join()
                del running[p]
                free.append(d)
    counts = collections.Counter(cat for cat, _ in results.values())
    show = set(a.show.split(","))
    for c in cases:
        cat, detail = results[c.id]
        if cat in show:
            print(f"{cat:9s} {c.id}: {detail}")
    by_group = collections.defaultdict(collections.Counter)
    for c in cases:
        by_group[c.id.split(":")[0]][results[c.id][0]] += 1
    print()
    for g, cnt in by_group.items():
        print(f"  {g:10s} " + ", ".join(f"{k} {v}" for k, v in sorted(cnt.items())))
    print(f"{len(cases)} cases in {time.monotonic() - t0:.0f} s: "
          + ", ".join(f"{k} {counts.get(k, 0)}" for k in
                      ("pass", "traceback", "hang", "silent", "unclean")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
