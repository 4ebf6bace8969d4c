"""Trajectory results: saved states and derived quantities, JSON / .npz round trips."""
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
        """Write ``.json`` (the CLI contract) or ``.npz`` (arrays + JSON config)."""
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
        path = Path(path)
        if path.suffix == ".npz":
            d = np.load(path, allow_pickle=False)
            cfg = json.loads(str(d["config"]))
            arrs = {k: d[k] for k in ("times", "s", "loss", "min_margin")}
        else:
            cfg = json.loads(path.read_text())
            arrs = {k: np.asarray(cfg[k], dtype=float) for k in
                    ("times", "s", "loss", "min_margin")}
        conf = cfg["config"]
        spec = ModelSpec.from_dict(conf)
        meta = {k: v for k, v in conf.items() if k not in spec.to_dict() and k != "kind"}
        return cls(spec, arrs["times"], arrs["s"], arrs["loss"], arrs["min_margin"],
                   cfg["status"], cfg.get("stats", {}), conf.get("kind", "flow"), meta)
