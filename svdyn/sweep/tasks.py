"""The sweep tasks: what one chunk of one cell computes, through svdyn's public functions.

Each task takes the normalised grid, the cell's parameters, the chunk's rows ``[start, stop)``
and the chunk's seed entropy, and returns a table as ``{column: values}`` (numpy 1-D arrays,
2-D arrays for fixed-length vectors, or lists of lists / strings). Columns per task:

``flow``      final state of :func:`svdyn.integrate.flow` at ``t_end``: ``status, loss,
              min_margin, steps, z0 (K), z (K), s (L*K)``
``classify``  limit classification (:func:`classify_limits`): certified (default) ``nc, rank,
              support, decided, status, steps, label, support_class, reason, error, z0 (K)``;
              growth ``nc, rank, support, error, decided, horizon, status, steps, z0 (K)``
``basin_k4``  the K = 4 plane ``z(0) = eps (0, 1, 1, r)``: ``r`` plus the classify columns
``k4_critical`` one row per (L, eps): the certified bracket of the K = 4 critical ratio
              (:func:`svdyn.analysis.basins.k4_critical_ratio`): ``lo, hi, critical_ratio,
              width, width_reached, undecided_band, classified, undecided``
``critical``  one row per critical family (:func:`svdyn.landscape.critical.critical_points`):
              ``family, loss, rank, converged, grad_norm, min_eig, n_negative, winner``
``validate``  full-matrix torch cells (:mod:`svdyn.fullmodel`; cuda when the worker has one):
              spectral init -> ``max_rel_dev, max_leakage, loss_gap``; gaussian init ->
              ``numerical_rank, effective_rank, stable_rank, nc2_Z, loss``; both ``device``

The same rows with the same seed give bit-identical columns on any executor.
"""
from __future__ import annotations

import numpy as np

#: bump a task's version when its output for the same input changes (invalidates stored chunks)
TASK_VERSION = {"flow": 2, "classify": 5, "basin_k4": 5, "k4_critical": 3, "critical": 2,
                "validate": 1}
#: (k4_critical calls certify_limit through basins.k4_critical_ratio: bump it with classify)

#: columns that depend on the machine or the run, not only on the inputs (never compared,
#: never summarised as results)
VOLATILE = {"device", "seconds"}


def model_spec(params: dict):
    from ..spec import ModelSpec
    return ModelSpec(params["K"], params["L"], params.get("n", 1), params.get("loss", "ce"),
                     params.get("lam", 0.0), params.get("group", ""))


def _rng(entropy):
    return np.random.default_rng(np.random.SeedSequence(entropy))


def scale_inits(spec, eps: float, rows: int, entropy) -> np.ndarray:
    """z(0) (rows, K): ``random_init_z`` with the chunk's own generator."""
    from ..spec import random_init_z
    return random_init_z(spec, eps, _rng(entropy), batch=rows)


# ----------------------------------------------------------------------------- classification
def classify_limits(spec, s, opts: dict, tol: dict, z=None) -> dict:
    """THE limit classifier of the sweep, by ``opts["classifier"]``.

    ``"certified"`` (default): :func:`svdyn.analysis.certify.certify_limit` with the task's
    ``z_final``, ``n_stops``, ``limit_decades`` (the limit stage; 0 = off) and ``z_retry``
    (the true clock's second stage; 0 = off, the default) and its own integrator
    tolerances (``[tolerances]`` is not used),
    on the logit singular values ``z`` (B, K) when given (``is_z=True``, as ``basins.k4_map``
    and ``basins.monte_carlo`` call it: no rounding through the balanced factors), else on the
    states s (B, L, K).
    Columns ``nc, rank, support`` (mode indices), ``decided, status, steps, label,
    support_class, reason`` and ``error`` (the certificate's direction error).
    ``"growth"``: the growth-exponent fit :func:`svdyn.analysis.geometry.classify_states`:
    ``nc, rank, support, error, decided, horizon, status, steps``."""
    if opts.get("classifier", "certified") == "growth":
        return _classify_growth(spec, s, opts, tol)
    from ..analysis.certify import certify_limit
    kw = {"z_final": opts["z_final"], "n_stops": opts["n_stops"],
          "z_retry": opts["z_retry"] or None, "limit_decades": opts["limit_decades"]}
    if z is not None:
        c = certify_limit(spec, z, is_z=True, **kw)
    else:
        c = certify_limit(spec, s, **kw)
    return {"nc": np.asarray(c.nc, bool), "rank": np.asarray(c.rank, np.int64),
            "support": [np.nonzero(row)[0].tolist() for row in np.asarray(c.support, bool)],
            "decided": np.asarray(c.decided, bool), "status": list(c.status),
            "steps": np.asarray(c.steps, np.int64), "label": list(c.label),
            "support_class": list(c.support_class), "reason": list(c.reason),
            "error": np.asarray(c.direction_error, float)}


def _classify_growth(spec, s, opts: dict, tol: dict) -> dict:
    from ..analysis.geometry import DECIDED, classify_states
    c = classify_states(spec, s, opts["m_mid"], opts["m_end"], adaptive=opts["adaptive"],
                        max_end=max(opts["max_end"], opts["m_end"]), rtol=tol["rtol"],
                        atol=tol["atol"])
    live = np.asarray(c["live"], bool)
    return {"nc": np.asarray(c["nc"], bool), "rank": np.asarray(c["rank"], np.int64),
            "support": [(np.nonzero(row)[0] + 1).tolist() for row in live],
            "error": np.asarray(c["error"], float),
            "decided": np.asarray(c["error"], float) <= DECIDED,
            "horizon": np.asarray(c["horizon"], float),
            "status": list(c["status"]), "steps": np.asarray(c["steps"], np.int64)}


def _classify(normal, params, start, stop, entropy):
    spec = model_spec(params)
    z0 = scale_inits(spec, params["eps"], stop - start, entropy)
    cols = classify_limits(spec, spec.balanced(z0), normal["task"], normal["tolerances"], z=z0)
    cols["z0"] = z0
    return cols


def _basin_k4(normal, params, start, stop, entropy):
    from ..analysis.basins import k4_z
    spec = model_spec(dict(params, K=4, group="walsh"))
    r = np.asarray(normal["init"]["r"][start:stop], float)
    cols = {"r": r}
    z = k4_z(params["eps"], r)
    cols.update(classify_limits(spec, spec.balanced(z), normal["task"], normal["tolerances"],
                                z=z))
    return cols


def _k4_critical(normal, params, start, stop, entropy):
    from ..analysis.basins import k4_critical_ratio
    o = normal["task"]
    r = k4_critical_ratio(params["L"], params["eps"], o["r_max"], o["bracket_width"],
                          o["points"], o["max_rounds"], o["z_final"])
    lo, hi = r["bracket"]
    return {"lo": np.array([lo]), "hi": np.array([hi]),
            "critical_ratio": np.array([r["critical_ratio"]]),
            "width": np.array([r["width"]]), "width_reached": np.array([r["width_reached"]]),
            "undecided_band": np.array([r["undecided_band"]]),
            "classified": np.array([r["classified"]], np.int64),
            "undecided": np.array([r["undecided"]], np.int64)}


# ----------------------------------------------------------------------------- flows
def _flow(normal, params, start, stop, entropy):
    from ..integrate import flow
    spec = model_spec(params)
    z0 = scale_inits(spec, params["eps"], stop - start, entropy)
    t_end = float(params["t_end"])
    tol = normal["tolerances"]
    tr = flow(spec, spec.balanced(z0), save_at=[t_end], rtol=tol["rtol"], atol=tol["atol"],
              max_steps=normal["task"]["max_steps"], progress=False)
    B = stop - start
    return {"status": list(tr.status), "loss": np.asarray(tr.loss)[:, -1],
            "min_margin": np.asarray(tr.min_margin)[:, -1],
            "steps": np.asarray(tr.stats["accepted_steps"], np.int64),
            "z0": z0, "z": np.asarray(tr.z)[:, -1], "s": np.asarray(tr.s)[:, -1].reshape(B, -1)}


# ----------------------------------------------------------------------------- landscape
def _critical(normal, params, start, stop, entropy):
    from ..landscape.critical import critical_points
    spec = model_spec(params)
    pts = critical_points(spec, normal["task"]["families"])
    best = min((p.loss for p in pts if p.converged), default=None)
    return {"family": [p.name for p in pts], "loss": np.array([p.loss for p in pts], float),
            "rank": np.array([p.rank for p in pts], np.int64),
            "converged": np.array([p.converged for p in pts], bool),
            "grad_norm": np.array([p.grad_norm for p in pts], float),
            "min_eig": np.array([p.info.get("reduced_min_eig", np.nan) for p in pts], float),
            "n_negative": np.array([p.info.get("reduced_n_negative", -1) for p in pts],
                                   np.int64),
            "winner": np.array([p.converged and p.loss == best for p in pts], bool)}


# ----------------------------------------------------------------------------- full model
def _validate(normal, params, start, stop, entropy):
    from .. import fullmodel
    spec = model_spec(params)
    opts = normal["task"]
    rng = _rng(entropy)
    seeds = rng.integers(0, 2**31 - 1, size=stop - start)
    steps = int(params["steps"])
    every = opts["save_every"] or steps
    dev = fullmodel.resolve_device(opts["device"])
    fullmodel.small_cpu_threads(dev, spec, int(params["width"]))
    rows = []
    if normal["init"]["kind"] == "scale":
        z0 = scale_inits(spec, params["eps"], stop - start, rng.integers(0, 2**63 - 1))
        for z, sd in zip(z0, seeds):
            r = fullmodel.validate_spectral(spec, spec.balanced(z), params["width"],
                                            params["lr"], steps, every, int(sd), dev)
            rows.append({"max_rel_dev": r["max_rel_dev"], "max_leakage": r["max_leakage"],
                         "loss_gap": r["loss_gap"], "device": r["device"]})
    else:
        for sd in seeds:
            r = fullmodel.validate_random(spec, params["width"], params["eps"], params["lr"],
                                          steps, every, int(sd), dev)
            f = r["final"]
            rows.append({"numerical_rank": int(f["numerical_rank"]),
                         "effective_rank": float(f["effective_rank"]),
                         "stable_rank": float(f["stable_rank"]), "nc2_Z": float(f["nc2_Z"]),
                         "loss": float(f["loss"]), "device": r["device"]})
    cols = {k: [row[k] for row in rows] for k in rows[0]}
    for k, v in cols.items():
        if k != "device":
            cols[k] = np.asarray(v)
    cols["seed"] = seeds.astype(np.int64)
    return cols


TASKS = {"flow": _flow, "classify": _classify, "basin_k4": _basin_k4,
         "k4_critical": _k4_critical, "critical": _critical, "validate": _validate}


def run_task(normal: dict, params: dict, start: int, stop: int, entropy) -> dict:
    """Compute one chunk; returns its columns."""
    return TASKS[normal["task"]["kind"]](normal, params, start, stop, entropy)


def warm(normal: dict) -> None:
    """Load (or compile) the task's kernels once in this process: an 8-row chunk of the
    grid's first cell (8 rows so that flow's parallel batch kernel loads too), discarded."""
    from .grid import Grid
    g = Grid(normal)
    cell = g.cells()[0]
    if normal["task"]["kind"] in ("critical", "validate", "k4_critical"):  # one row = a study
        return
    run_task(normal, cell.params, 0, min(8, cell.rows), [0])
