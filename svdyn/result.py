"""Trajectory results: saved states and derived quantities, JSON / .npz round trips, labelled
views (xarray / pandas).

Conventions (what ``s`` and ``z`` are, mode order, time units): ``docs/conventions.md``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .spec import ModelSpec


def _clean(x):
    """JSON-safe nested lists: non-finite floats become None (JSON has no NaN/inf)."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        v = float(a)
        return v if math.isfinite(v) else None
    obj = a.astype(object)
    obj[~np.isfinite(a)] = None
    return obj.tolist()


@dataclass
class Trajectory:
    """A reduced trajectory (or a batch of them) at saved times.

    Attributes
    ----------
    spec : ModelSpec
    times : (T,) float -- gradient-flow times, or step counts for gradient descent
    s : (T, L, K) or (B, T, L, K) -- factor singular values
    loss : (T,) or (B, T) -- total loss (data + weight decay)
    min_margin : (T,) or (B, T) -- minimum class margin of the logits
    status : "ok" or a reason (list of those for a batch)
    stats : dict -- integrator / run statistics
    kind : "flow" or "descent"
    meta : dict -- init description, seed, command line...
    """

    spec: ModelSpec
    times: np.ndarray
    s: np.ndarray
    loss: np.ndarray
    min_margin: np.ndarray
    status: object
    stats: dict = field(default_factory=dict)
    kind: str = "flow"
    meta: dict = field(default_factory=dict)

    @property
    def z(self) -> np.ndarray:
        """Logit singular values ``prod_l s_l``: (T, K) or (B, T, K)."""
        return np.prod(self.s, axis=-2)

    @property
    def batched(self) -> bool:
        return self.s.ndim == 4

    @property
    def ok(self) -> bool:
        st = self.status if self.batched else [self.status]
        return all(x == "ok" for x in st)

    def __repr__(self) -> str:
        sp = self.spec
        t = np.asarray(self.times)
        clock = "t" if self.kind == "flow" else "step"
        head = (f"Trajectory({self.kind}, K={sp.K}, L={sp.L}, n={sp.n}, {sp.group}, {sp.loss}"
                + (f", weight_decay={list(sp.weight_decay)}" if any(sp.weight_decay) else ""))
        span = f"{t.size} saved {clock} in [{t[0]:.4g}, {t[-1]:.4g}]" if t.size else "no times"
        if self.batched:
            st = list(self.status)
            n_ok = sum(x == "ok" for x in st)
            return f"{head}; batch B={len(st)}; {span}; status ok {n_ok}/{len(st)})"
        loss = np.asarray(self.loss)
        fin = np.isfinite(loss)
        tail = ""
        if fin.any():
            k = int(np.nonzero(fin)[0][-1])
            tail = (f"; at {clock}={t[k]:.4g}: loss {loss[k]:.4g}, "
                    f"min margin {float(np.asarray(self.min_margin)[k]):.4g}")
        return f"{head}; {span}; status {self.status!r}{tail})"

    __str__ = __repr__

    # ---------------------------------------------------------------- labelled views
    @property
    def seed(self):
        """The init seed recorded in ``meta`` (None when the init was not random)."""
        return self.meta.get("seed")

    def _config(self) -> dict:
        return {**self.spec.to_dict(), "kind": self.kind, **self.meta}

    def to_xarray(self):
        """The trajectory as an ``xarray.Dataset``.

        Needs xarray (``pip install "svdyn[xarray]"``).

        Returns
        -------
        xarray.Dataset
            Variables ``s`` (time, layer, mode), ``z`` (time, mode), ``loss`` (time),
            ``min_margin`` (time) -- each with a leading ``batch`` dimension for a batch;
            coordinates ``time`` (flow time or GD step), ``layer`` 1..L (1 = features H,
            L = classifier W), ``mode`` 0..K-1 (basis order; 0 = constant mode), ``batch``;
            ``status`` per batch member as a variable (or an attribute for one trajectory).
            Attributes: ``config`` (JSON string of spec + init description), ``version``,
            ``seed`` (-1 when not random), ``kind``, ``classes``, ``depth``, ``group``,
            ``loss_name``. netCDF-safe (``ds.to_netcdf`` works).
        """
        try:
            import xarray as xr
        except ImportError:  # pragma: no cover - exercised without the extra
            raise ImportError('Trajectory.to_xarray needs xarray: pip install "svdyn[xarray]"') \
                from None
        lead = ("batch",) if self.batched else ()
        coords = {"time": np.asarray(self.times, float),
                  "layer": np.arange(1, self.spec.L + 1), "mode": np.arange(self.spec.K)}
        data = {"s": (lead + ("time", "layer", "mode"), np.asarray(self.s, float)),
                "z": (lead + ("time", "mode"), np.asarray(self.z, float)),
                "loss": (lead + ("time",), np.asarray(self.loss, float)),
                "min_margin": (lead + ("time",), np.asarray(self.min_margin, float))}
        attrs = {"config": json.dumps(self._config()), "version": __version__,
                 "seed": int(self.seed) if isinstance(self.seed, (int, np.integer)) else -1,
                 "kind": self.kind, "classes": self.spec.K, "depth": self.spec.L,
                 "group": self.spec.group, "loss_name": self.spec.loss}
        if self.batched:
            coords["batch"] = np.arange(self.s.shape[0])
            data["status"] = (("batch",), np.asarray([str(x) for x in self.status]))
        else:
            attrs["status"] = str(self.status)
        ds = xr.Dataset(data, coords=coords, attrs=attrs)
        ds["time"].attrs["long_name"] = ("gradient-flow time" if self.kind == "flow"
                                         else "gradient-descent step")
        ds["s"].attrs["long_name"] = "factor singular values s_{l,j}"
        ds["z"].attrs["long_name"] = "logit singular values z_j = prod_l s_{l,j}"
        ds["loss"].attrs["long_name"] = "mean loss + weight decay"
        return ds

    def to_pandas(self):
        """The trajectory as a long-format ``pandas.DataFrame``, one row per saved state, layer
        and mode.

        Needs pandas (``pip install "svdyn[xarray]"``).

        Returns
        -------
        pandas.DataFrame
            Columns ``batch`` (batches only), ``time``, ``layer`` (1..L), ``mode`` (0..K-1),
            ``s`` (factor singular value), ``z`` (logit singular value of that mode, the same
            on every layer), ``loss`` and ``min_margin`` (of that saved state);
            ``B * T * L * K`` rows (``T * L * K`` for one trajectory).
        """
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            raise ImportError('Trajectory.to_pandas needs pandas: pip install "svdyn[xarray]"') \
                from None
        S = np.asarray(self.s, float)
        S = S if self.batched else S[None]
        B, T, L, K = S.shape
        Z = np.prod(S, axis=-2)
        loss = np.asarray(self.loss, float).reshape(B, T)
        mm = np.asarray(self.min_margin, float).reshape(B, T)
        b, t, l, k = np.meshgrid(np.arange(B), np.arange(T), np.arange(L), np.arange(K),
                                 indexing="ij")
        cols = {"time": np.asarray(self.times, float)[t.ravel()], "layer": l.ravel() + 1,
                "mode": k.ravel(), "s": S.ravel(), "z": Z[b.ravel(), t.ravel(), k.ravel()],
                "loss": loss[b.ravel(), t.ravel()], "min_margin": mm[b.ravel(), t.ravel()]}
        if self.batched:
            cols = {"batch": b.ravel(), **cols}
        return pd.DataFrame(cols)

    def __getitem__(self, i: int) -> "Trajectory":
        """The i-th trajectory of a batch."""
        if not self.batched:
            raise TypeError("not a batch")
        return Trajectory(self.spec, self.times, self.s[i], self.loss[i], self.min_margin[i],
                          self.status[i], self.stats, self.kind, dict(self.meta))

    def to_json_dict(self) -> dict:
        """``{"config", "times", "z", "s", "loss", "min_margin", "status", ...}``."""
        return {
            "config": {**self.spec.to_dict(), "kind": self.kind, **self.meta},
            "version": __version__,
            "times": _clean(self.times),
            "z": _clean(self.z),
            "s": _clean(self.s),
            "loss": _clean(self.loss),
            "min_margin": _clean(self.min_margin),
            "status": self.status,
            "stats": self.stats,
        }

    def save(self, path) -> Path:
        """Write the trajectory to a file.

        Parameters
        ----------
        path : str or Path
            ``.npz``: arrays ``times, s, z, loss, min_margin`` plus a JSON ``config``; anything
            else: JSON in the CLI's format (``{"config", "version", "times", "z", "s", "loss",
            "min_margin", "status", "stats"}``, non-finite numbers as ``null``).

        Returns
        -------
        Path
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".npz":
            cfg = {k: v for k, v in self.to_json_dict().items()
                   if k not in ("times", "z", "s", "loss", "min_margin")}
            np.savez(path, times=self.times, s=self.s, z=self.z, loss=self.loss,
                     min_margin=self.min_margin, config=json.dumps(cfg))
        else:
            path.write_text(json.dumps(self.to_json_dict()))
        return path

    @classmethod
    def load(cls, path) -> "Trajectory":
        """Read a trajectory written by :meth:`save` or by the CLI (``svdyn flow|descend
        --json OUT`` / ``--npz OUT``, the demo's per-depth JSON).

        Parameters
        ----------
        path : str or Path
            ``.npz`` (arrays + JSON config), anything else is read as JSON (``null`` entries,
            written for non-finite numbers, come back as NaN).

        Returns
        -------
        Trajectory
        """
        path = Path(path)
        keys = ("times", "s", "loss", "min_margin")
        if path.suffix == ".npz":
            d = np.load(path, allow_pickle=False)
            missing = [k for k in keys + ("config",) if k not in d.files]
            if missing:
                raise ValueError(f"{path}: not a svdyn trajectory (.npz lacks {missing})")
            cfg = json.loads(str(d["config"]))
            arrs = {k: np.asarray(d[k], dtype=float) for k in keys}
        else:
            cfg = json.loads(path.read_text())
            missing = [k for k in keys + ("config", "status") if not isinstance(cfg, dict)
                       or k not in cfg]
            if missing:
                raise ValueError(f"{path}: not a svdyn trajectory JSON (missing {missing}); "
                                 "write one with `svdyn flow ... --json OUT`")
            arrs = {k: np.asarray(cfg[k], dtype=float) for k in keys}
        conf = cfg["config"]
        spec = ModelSpec.from_dict(conf)
        meta = {k: v for k, v in conf.items() if k not in spec.to_dict() and k != "kind"}
        return cls(spec, arrs["times"], arrs["s"], arrs["loss"], arrs["min_margin"],
                   cfg["status"], cfg.get("stats", {}), conf.get("kind", "flow"), meta)
