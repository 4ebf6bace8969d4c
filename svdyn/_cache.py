"""numba's on-disk cache of svdyn's kernels, keyed on the whole engine's source.

numba (``cache=True``) keys a cached kernel on the source of the file that defines it. A
kernel links the code of every kernel it calls from other files (``stepper.rk_advance`` holds
the field, the softmax, the transforms...), so after an edit to ``field.py`` alone a process
would load ``rk_advance`` from the cache with the *old* field inside -- silently old results
(met while benchmarking, bench/RESULTS.md "seventh session"; developers after ``git pull`` on
an editable install would meet it too). Importing this module (every module that defines
kernels does, before its first ``njit``) puts locators in front of numba's own that serve
files of this package only and stamp each cache index with one digest of every svdyn source
file that mentions numba. Any change to any of them invalidates every svdyn kernel; other
packages' caches are untouched. The cache files stay where numba puts them
(``NUMBA_CACHE_DIR``, ``__pycache__`` or the user-wide directory).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core import caching

_ROOT = Path(__file__).resolve().parent


def _engine_digest() -> str:
    """sha256 over (relative path, content) of the package's .py files that mention numba."""
    h = hashlib.sha256()
    for p in sorted(_ROOT.rglob("*.py")):
        data = p.read_bytes()
        if b"numba" in data:
            h.update(p.relative_to(_ROOT).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


ENGINE_DIGEST = _engine_digest()


def _inside(path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(_ROOT)
    except (OSError, ValueError):
        return False


class _EngineStamp:
    """Mixin: only for files of this package; the engine digest as the source stamp."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _inside(py_file):
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return ("svdyn-engine", ENGINE_DIGEST)


def _install():
    classes = caching.CacheImpl._locator_classes
    if any(issubclass(c, _EngineStamp) for c in classes):
        return
    ours = [type(f"SvdynEngine{base.__name__}", (_EngineStamp, base), {})
            for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                         caching.UserWideCacheLocator)]
    classes[:0] = ours


_install()
