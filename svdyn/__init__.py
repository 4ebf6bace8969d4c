"""svdyn: reduced singular-value dynamics of (deep) linear unconstrained-features models.

Quick start::

    import numpy as np, svdyn
    spec = svdyn.ModelSpec(classes=8, depth=3)                  # K = 8, L = 3, mean ce loss
    z0 = svdyn.random_init_z(spec, 0.1, np.random.default_rng(0))
    traj = svdyn.flow(spec, svdyn.balanced_init(spec, z0), t_end=1e8)
    print(traj)                                                  # short summary
    print(svdyn.classify_limit(traj).label)                      # e.g. "rank-4 code"

Conventions (depth counting, mean loss, bases, reported singular values, converting from the
papers): ``docs/conventions.md``. Every public name below is imported on first use, so
``import svdyn`` is fast and needs neither torch nor numba until a computation runs.
"""
__version__ = "0.1.0"

# public name -> module that defines it (one line per name; imported on first attribute access)
_LAZY = {
    # the model and initial states
    "ModelSpec": "svdyn.spec",
    "SpecError": "svdyn.groups",
    "random_init_z": "svdyn.spec",
    "balanced_init": "svdyn.inits",
    "unbalanced_init": "svdyn.inits",
    # dynamics
    "flow": "svdyn.integrate",
    "descend": "svdyn.descent",
    "vector_field": "svdyn.field",
    "Trajectory": "svdyn.result",
    # science entry points (typed results)
    "classify_limit": "svdyn.studies",
    "LimitClassification": "svdyn.studies",
    "max_margin": "svdyn.studies",
    "MaxMargin": "svdyn.studies",
    "critical_points": "svdyn.landscape.critical",
    "CriticalPoint": "svdyn.landscape.critical",
    "basin_map": "svdyn.studies",
    "BasinMap": "svdyn.studies",
    "critical_ratio": "svdyn.studies",
    "CriticalRatio": "svdyn.studies",
    "monte_carlo": "svdyn.studies",
    "MonteCarlo": "svdyn.studies",
    "lyapunov_check": "svdyn.studies",
    "LyapunovCheck": "svdyn.studies",
    "validate_against_full": "svdyn.studies",
    "FullModelValidation": "svdyn.studies",
    "gd_flow_order": "svdyn.studies",
    "OrderCheck": "svdyn.studies",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'svdyn' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
