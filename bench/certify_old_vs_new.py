"""The certified classifier of another checkout (e.g. before a change) against this one.

    NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/certify_old_vs_new.py OLD_TREE K L EPS N [SEED]

Certifies the same N Monte Carlo starts ``z_j(0) = eps U(0.5, 1.5)`` (walsh) with
``OLD_TREE``'s ``svdyn`` (in a subprocess) and with this tree's, and prints the undecided counts
and how many starts decided by both get the same support class.
"""
import json
import subprocess
import sys

import numpy as np

CODE = """
import json, sys, numpy as np
from svdyn.analysis.certify import certify_limit
from svdyn.spec import ModelSpec, random_init_z
K, L, eps, n, seed = json.loads(sys.argv[1])
spec = ModelSpec(K, L)
z = random_init_z(spec, eps, np.random.default_rng(seed), batch=n)
c = certify_limit(spec, z, is_z=True)
print(json.dumps({"decided": c.decided.tolist(), "cls": list(c.support_class)}))
"""


def run(tree, args):
    env = {"PYTHONPATH": tree, "NUMBA_NUM_THREADS": "1", "NUMBA_CACHE_DIR": tree + "/.numba_cache",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", CODE, json.dumps(args)], cwd=tree, env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(old, K, L, eps, n, seed=0):
    import pathlib
    args = [K, L, eps, n, seed]
    a, b = run(old, args), run(str(pathlib.Path(__file__).resolve().parents[1]), args)
    da, db = np.array(a["decided"]), np.array(b["decided"])
    both = np.nonzero(da & db)[0]
    same = sum(a["cls"][i] == b["cls"][i] for i in both)
    print(f"walsh K = {K}, L = {L}, eps = {eps}, {n} starts (seed {seed}): undecided old "
          f"{int((~da).sum())}, new {int((~db).sum())}; decided by both {both.size}, same "
          f"support class {same}; decided only by new {int((db & ~da).sum())}, only by old "
          f"{int((da & ~db).sum())}")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), float(a[3]), int(a[4]), int(a[5]) if len(a) > 5 else 0)
