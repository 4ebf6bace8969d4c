"""The numba decorators of the engine's kernels (field, softmax, stepper, steady hand-off, the
certifier's y clock): one place for their flags.

* :data:`kernel`  ``cache=True`` and numpy's error model (``x / 0`` gives inf or nan, never a
  ZeroDivisionError out of compiled code; it also lets loops vectorise).
* :data:`parallel` the same with ``parallel=True`` (the batch loops over ``nb.prange``).
* :data:`inline`  the same, inlined into the caller at numba-IR level (hot helpers: a call
  that passes the bundles to a reference-counted kernel cost ~0.6 us, more than the whole
  field at small K).
* :data:`leaf`    the same without numba's reference counting (``_nrt=False``), for hot
  kernels that allocate nothing and return no array (the field, the stepper's stage, event
  and dense-output helpers, the y clock's field and linear algebra). A kernel that takes the
  bundles (``Model``: 5 arrays, ``Scratch``: 11) otherwise increments and decrements the
  reference count of every array it unpacks, tens of atomic calls per evaluation. Measured
  (a compiled loop calling ``field``, walsh, L = 2, old and new trees alternately; bench/
  RESULTS.md "engine4"): 823-872 -> 141-143 ns per evaluation at K = 4, 1592-1707 -> 931-953
  at K = 64, 4447-4900 -> 3961-4012 at K = 256; a dop853 flow to t = 1e7 at K = 4 (rtol 1e-8)
  0.70-0.71 -> 0.17-0.18 ms CPU, bit-identical states. A leaf may not create arrays, and
  numba compiles what it calls with the same flag, so it may not call a kernel that does (it
  refuses to compile either); arrays it receives are borrowed from the caller, which keeps
  them alive.
* :data:`leaf_forced` a leaf that LLVM inlines into every caller (``forceinline``), for
  small hot kernels: ``field.walsh4_field``, whose call from the stepper's stages cost more
  than its body.

Every caller of a kernel links and re-optimises the kernel's whole call tree when it compiles
(a 3-line caller of ``field`` compiles in 0.55 s, a 3-line function alone in 0.06 s): big
helpers are called (compiled once) rather than inlined at many sites, to keep the first
compile short.
"""
from __future__ import annotations

import numba as nb

from . import _cache  # noqa: F401  (first: the cache keyed on the engine's source)

kernel = nb.njit(cache=True, error_model="numpy")
parallel = nb.njit(cache=True, error_model="numpy", parallel=True)
inline = nb.njit(cache=True, error_model="numpy", inline="always")
leaf = nb.njit(cache=True, error_model="numpy", _nrt=False)
leaf_forced = nb.njit(cache=True, error_model="numpy", _nrt=False, forceinline=True)
