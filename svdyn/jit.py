"""The numba decorators of the engine's kernels (one place for their flags).

* :data:`kernel`  ``cache=True`` and numpy's error model (``x / 0`` gives inf or nan, never a
  ZeroDivisionError out of compiled code; it also lets loops vectorise).
* :data:`inline`  the same, inlined into the caller at numba-IR level (hot helpers).
* :data:`leaf`    the same without numba's reference counting (``_nrt=False``), for hot
  kernels that allocate nothing and return no array (the field, the stepper's stage and
  event helpers, the y clock's field and linear algebra). A kernel that takes the bundles
  (``Model``: 5 arrays, ``Scratch``: 11) otherwise increments and decrements the reference
  count of every array it unpacks, tens of atomic calls per evaluation. Measured on this
  machine (``python bench/field_cost.py``-style compiled loop calling ``field``, walsh, L = 2):
  855 -> 127 ns per evaluation at K = 4, 1670 -> 1038 at K = 64, 5141 -> 4422 at K = 256;
  a dop853 flow to t = 1e7 at K = 4 (rtol 1e-8): 0.709 -> 0.169 ms CPU, bit-identical
  states. Such a kernel may not create arrays (numba refuses to compile it if it does);
  arrays it receives are borrowed from the caller, which keeps them alive.
"""
from __future__ import annotations

import numba as nb

kernel = nb.njit(cache=True, error_model="numpy")
inline = nb.njit(cache=True, error_model="numpy", inline="always")
leaf = nb.njit(cache=True, error_model="numpy", _nrt=False)
