"""CPU microseconds per step of the reduced gradient descent (``svdyn.descent.descend``).

    PYTHONPATH=. python bench/gd_step_cost.py [K ...]

walsh, L = 3, lr 0.5, 20,000 steps from ``z = (0, linspace(0.2, 2, K - 1))`` balanced, saving
only the first and last state; best of 5 after a warm-up call. Prints the final value of
``s[1, 0, 1]`` as a fingerprint (bit-identical runs print the same digits).
"""
import sys
import time

import numpy as np

from svdyn.descent import descend
from svdyn.spec import ModelSpec


def main(Ks=(4, 64, 256), steps=20_000):
    for K in Ks:
        spec = ModelSpec(K, 3)
        s = spec.balanced(np.r_[0.0, np.linspace(0.2, 2.0, K - 1)])
        descend(spec, s, 0.5, 10, save_every=10 ** 9, progress=False)
        best = np.inf
        for _ in range(5):
            t0 = time.process_time()
            tr = descend(spec, s, 0.5, steps, save_every=10 ** 9, progress=False)
            best = min(best, time.process_time() - t0)
        print(f"K = {K}: {best / steps * 1e6:.3f} us/step, s[-1][0, 1] = {tr.s[-1][0, 1]!r}")


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or (4, 64, 256))
