"""Symbolic derivations of the reduced dynamics (issue 3).

Run everything with ``svdyn derive`` (or ``python -m derivations.run_all``): it re-derives
the reduced equations from the full matrix model, the conservation laws, the Lyapunov
function and the weight-decay fixed points, writes ``derivations/REPORT.md`` and regenerates
``svdyn/_generated_kernels.py``.
"""
