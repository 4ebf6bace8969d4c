"""Loss landscape with weight decay: critical families, their comparison, Hessian spectra.

* :mod:`svdyn.landscape.critical` -- critical points of the regularised reduced problem
  (Newton on the balanced stationarity equations, flow fallback) started from named families:
  ``dnc``, ``pairing``, ``block:d``, ``polygon``, hybrids, ``zero``.
* :mod:`svdyn.landscape.compare` -- which family wins for given (K, L, lambda, n); the (K, L)
  table against the thresholds of [P].
* :mod:`svdyn.landscape.hessian` -- full-parameter Hessian (torch, dense) at a reduced critical
  point; the mse deep-NC closed form of [U]; gradient alignment during training.
* :mod:`svdyn.landscape.report` -- ``section()``: the [P]/[U] part of ``validation/REPORT.md``.
"""
from .critical import CriticalPoint, critical_points, family_names, solve_critical

__all__ = ["CriticalPoint", "critical_points", "family_names", "solve_critical"]
