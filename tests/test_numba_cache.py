"""The kernels' on-disk cache follows the whole engine's source (``svdyn/_cache.py``): an edit
to one file reaches the cached kernels of every other file that links it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import svdyn
from svdyn import _cache

_PROBE = ("import numpy as np, svdyn; from svdyn.spec import ModelSpec; "
          "from svdyn.field import logit_gradient; "
          "assert svdyn.__file__.startswith({root!r}), svdyn.__file__; "
          "g = logit_gradient(ModelSpec(8, 2), np.linspace(0.0, 1.0, 8))[0]; print(repr(g[3]))")


def _run(pkg_parent: Path, cache: Path) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(pkg_parent))
    out = subprocess.run([sys.executable, "-c", _PROBE.format(root=str(pkg_parent))], env=env,
                         capture_output=True, text=True, check=True, cwd=pkg_parent)
    return out.stdout.strip()


def test_svdyn_kernels_use_the_engine_stamp():
    from svdyn.field import field
    from svdyn.transforms import fwht
    for k in (field, fwht):
        loc = k._cache._impl.locator
        assert type(loc).__name__.startswith("SvdynEngine")
        assert loc.get_source_stamp() == ("svdyn-engine", _cache.ENGINE_DIGEST)


def test_an_edit_in_another_file_invalidates_the_cached_kernel(tmp_path):
    """``logit_gradient``'s kernel is defined in field.py and inlines softmax.py's margins.
    Editing softmax.py alone must not leave the old compiled code in use (numba's own per-file
    stamp would: field.py did not change)."""
    pkg = tmp_path / "src"
    shutil.copytree(Path(svdyn.__file__).parent, pkg / "svdyn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    cache = tmp_path / "cache"
    before = _run(pkg, cache)
    assert _run(pkg, cache) == before                  # warm cache, same answer
    soft = pkg / "svdyn" / "softmax.py"
    text = soft.read_text()
    old = "scale = 1.0 / (K * math.sqrt(m.n))"
    assert old in text
    soft.write_text(text.replace(old, "scale = 2.0 / (K * math.sqrt(m.n))"))
    after = _run(pkg, cache)
    assert after != before
    assert after == _run(pkg, tmp_path / "fresh")      # what a clean compile gives
