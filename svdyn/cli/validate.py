"""``svdyn validate``: full-matrix torch training against the reduced engine.

Spectral init (default): full GD from ``F_l = R_l diag(s_l) R_{l-1}^T`` with random orthonormal
hidden frames vs the exact reduced GD map; reports the maximal relative deviation of s and z
(projection onto the frozen frames and independent SVD), the leakage out of the frames, the loss
gap and both run times; ``--order-check T`` adds the GD -> flow convergence order.

Random init (``--init-kind random``): Gaussian factors (entries ``--init-scale`` x N(0, 1)); NC1,
NC2, NC3, ranks of the centred logits and the minimum margin over time; ``--width 8,64,512``
sweeps widths, ``--seeds R`` repeats each width with seeds seed..seed+R-1, ``--plot`` draws the
final effective rank against width.
"""
from __future__ import annotations

import sys

import numpy as np

from ..groups import SpecError
from .common import (SEED_T, Num, OutFile, Widths, add_init_args, add_model_args, add_plot_out,
                     check_save_plan, init_from_args, save_plot, spec_from_args, write_json)

DEFAULT_SPECTRAL_SCALE = 1.0
DEFAULT_RANDOM_SCALE = 0.1


def register(sub) -> None:
    p = sub.add_parser(
        "validate", help="full-matrix torch GD vs the reduced engine (spectral) or NC/rank "
        "metrics of randomly initialised full training",
        description="Train the full deep linear UFM with torch (float64) and compare with the "
        "reduced engine (spectral init), or measure NC / rank metrics (random init).")
    add_model_args(p)
    p.add_argument("--width", type=Widths(sweep=True), required=True,
                   help="hidden width d: one value for all hidden layers, or one per hidden "
                   "layer joined by ':' (e.g. 20:32); a comma list (e.g. 8,64,512) runs a sweep")
    p.add_argument("--lr", type=Num(float, lo=0.0, lo_open=True, hi=1e300), required=True,
                   help="GD step size eta")
    p.add_argument("--steps", type=Num(int, lo=0, hi=10 ** 9), required=True,
                   help="number of GD steps")
    p.add_argument("--save-every", type=Num(int, lo=1), default=None,
                   help="compare / record every k-th step (default: about 100 save points)")
    p.add_argument("--svd-every", type=Num(int, lo=1), default=1,
                   help="spectral: independent SVD at every k-th save point and the last "
                   "(default 1; dense SVDs of large factors are slow)")
    add_init_args(p, required=False, seed_help="seed of the init: the --init-scale draw "
                  "(spectral) or the Gaussian factors (random)")
    p.add_argument("--frame-seed", type=SEED_T, default=None,
                   help="spectral: seed of the random orthonormal hidden frames (default: "
                   "--seed); --seeds R uses frame seeds FRAME_SEED..FRAME_SEED+R-1")
    p.add_argument("--init-kind", choices=("spectral", "random"), default="spectral",
                   help="spectral (frozen frames; compared with the reduced engine) or random "
                   "(Gaussian entries of size --init-scale)")
    p.add_argument("--fan-in", action="store_true",
                   help="random init: entries --init-scale x N(0,1) / sqrt(fan-in) instead of "
                   "--init-scale x N(0,1)")
    p.add_argument("--seeds", type=Num(int, lo=1, hi=10 ** 4), default=1,
                   help="runs per width: random init with seeds seed, seed+1, ...; spectral "
                   "with frame seeds frame-seed, frame-seed+1, ... (default 1)")
    p.add_argument("--order-check", type=Num(float, lo=0.0, lo_open=True, hi=1e12),
                   default=None, metavar="T",
                   help="spectral only: also run GD at lr, lr/2, ... up to time T and fit the "
                   "order of convergence to the reduced flow")
    p.add_argument("--order-levels", type=Num(int, lo=2, hi=20), default=4,
                   help="number of halvings of lr in --order-check (default 4)")
    from .dynamics import add_optimizer_args
    add_optimizer_args(p)
    p.add_argument("--frames", default="random", choices=("random", "signed-permutation"),
                   help="spectral, --optimizer other than gd: hidden frames (default random)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: cuda "
                   "when available)")
    p.add_argument("--json", type=OutFile(".json"), help="write the results to this JSON file")
    add_plot_out(p, "z(t) full vs reduced (spectral) or final effective rank against width "
                 "(random)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def _g(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _progress(quiet: bool, label: str):
    """A tqdm bar on stderr (only on a terminal, or with SVDYN_PROGRESS=1; off with --quiet)."""
    from ..progress import step_callback
    return None if quiet else step_callback(f"svdyn validate [{label}]")


def run(args) -> int:
    from .. import fullmodel as fm

    spec = spec_from_args(args)
    widths = args.width
    for ws in widths:
        if len(ws) not in (1, spec.L - 1):
            raise SpecError(f"--width {':'.join(map(str, ws))}: give one width or one per "
                            f"hidden layer (L - 1 = {spec.L - 1}, joined by ':')")
    save_every = args.save_every or max(1, args.steps // 100)
    check_save_plan(args.steps // save_every + 2, spec.L, spec.K, steps=args.steps,
                    what=f"--steps {args.steps} --save-every {save_every}: ")
    if args.order_check is not None and args.init_kind == "random":
        raise SpecError("--order-check: spectral init only; drop --init-kind random")
    s0 = init_desc = None
    if args.init_kind == "random":
        if args.init is not None or args.init_file is not None:
            raise SpecError("--init-kind random takes --init-scale SIGMA (entry std), not "
                            "--init / --init-file")
    else:
        if args.init is None and args.init_file is None and args.init_scale is None:
            args.init_scale = DEFAULT_SPECTRAL_SCALE
        s0, init_desc = init_from_args(args, spec)      # checked before torch is loaded
    dev = fm.resolve_device(args.device)
    seeds = [args.seed + i for i in range(args.seeds)]
    frame_seed = args.seed if args.frame_seed is None else args.frame_seed
    frame_seeds = [frame_seed + i for i in range(args.seeds)]
    fm.small_cpu_threads(dev, spec, max(max(w) for w in widths))
    out = {"command": "validate", "kind": args.init_kind, "device": fm.device_name(dev),
           "dtype": fm.DTYPE_NAME, "spec": spec.to_dict(), "lr": args.lr, "steps": args.steps,
           "save_every": save_every, "seeds": seeds}
    if args.init_kind == "random":
        scale = args.init_scale if args.init_scale is not None else DEFAULT_RANDOM_SCALE
        out["init_scale"] = scale
        out["fan_in"] = bool(args.fan_in)
        runs, summary = [], {}
        for ws in widths:
            eff = []
            for sd in seeds:
                label = f"width {':'.join(map(str, ws))} seed {sd}"
                try:
                    r = fm.validate_random(spec, ws, scale, args.lr, args.steps, save_every, sd,
                                           dev, _progress(args.quiet, label), args.fan_in)
                except fm.Diverged as e:
                    return _diverged(out, args, f"{label}: {e}")
                runs.append(r)
                eff.append(r["final"]["effective_rank"])
                f = r["final"]
                print(f"width {':'.join(map(str, ws))} seed {sd}: loss {f['loss']:.4g} "
                      f"min margin {f['min_margin']:.4g} nc2_Z {_g(f['nc2_Z'])} "
                      f"nc3 {_g(f['nc3'])} rank num/eff/stable {f['numerical_rank']}/"
                      f"{f['effective_rank']:.3f}/{f['stable_rank']:.3f} ({r['seconds']:.1f} s)")
            key = ":".join(map(str, ws))
            summary[key] = {"mean": float(np.mean(eff)), "std": float(np.std(eff)),
                            "values": eff}
            print(f"width {key}: final effective rank {np.mean(eff):.3f} +- {np.std(eff):.3f} "
                  f"over {len(eff)} seed(s)")
        out["effective_rank_by_width"] = summary
        out["runs"] = runs
        print(f"device {out['device']}, {fm.DTYPE_NAME}")
        if args.plot:
            save_plot(args.plot, _plot_random, out)
    else:
        out["init"] = init_desc
        out["frame_seeds"] = frame_seeds
        if args.optimizer != "gd" or args.frames != "random":
            return _run_optimizer(args, spec, s0, widths, frame_seeds, save_every, dev, out)
        from ..descent import descend
        red = descend(spec, s0, args.lr, args.steps, save_every)
        if red.status != "ok":
            return _diverged(out, args, f"the reduced GD map: {red.status}")
        if args.order_check is not None:
            lrs = [args.lr / 2 ** i for i in range(args.order_levels)]
            steps_needed = int(round(args.order_check / lrs[-1]))
            if steps_needed > 10 ** 7:
                raise SpecError(f"--order-check {args.order_check:g}: the smallest step "
                                f"{lrs[-1]:g} needs {steps_needed:,} GD steps (limit 10,000,000);"
                                " lower T or --order-levels")
        runs = []
        for ws in widths:
            for sd in frame_seeds:
                label = f"width {':'.join(map(str, ws))} frame seed {sd}"
                r = fm.validate_spectral(spec, s0, ws, args.lr, args.steps, save_every, sd, dev,
                                         _progress(args.quiet, label), args.svd_every)
                runs.append(r)
                print(f"{label}: max_rel_dev {r['max_rel_dev']:.3e} max_leakage "
                      f"{r['max_leakage']:.3e} loss_gap {r['loss_gap']:.3e} reduced "
                      f"{r['reduced_seconds']:.3f} s full {r['full_seconds']:.3f} s")
        for key in ("max_rel_dev", "max_rel_dev_s_projection", "max_rel_dev_z_projection",
                    "max_rel_dev_s_svd", "max_rel_dev_z_svd", "max_abs_dev_normwise",
                    "max_leakage", "max_svd_tail", "loss_gap", "loss_rel_gap"):
            out[key] = max(r[key] for r in runs)
        out["rel_dev_floor"] = runs[0]["rel_dev_floor"]
        out["reduced_seconds"] = sum(r["reduced_seconds"] for r in runs)
        out["full_seconds"] = sum(r["full_seconds"] for r in runs)
        if args.order_check is not None:
            oc = fm.order_check(spec, s0, widths[0], args.lr, args.order_check,
                                args.order_levels, frame_seeds[0], dev,
                                progress=_progress(args.quiet, "order check"))
            out["order_check"] = oc
            out["order"] = oc["order"]
            print(f"GD -> flow at t={oc['t_end']:g}: lr {oc['lrs'][0]:g}..{oc['lrs'][-1]:g}, "
                  f"errors {oc['errors_full'][0]:.3e}..{oc['errors_full'][-1]:.3e}, fitted "
                  f"order {oc['order']:.4f} (reduced GD {oc['order_reduced']:.4f})")
        out["runs"] = runs
        print(f"device {out['device']}, {fm.DTYPE_NAME}: max_rel_dev {out['max_rel_dev']:.3e}, "
              f"max_leakage {out['max_leakage']:.3e}, loss_gap {out['loss_gap']:.3e}")
        if args.plot:
            save_plot(args.plot, _plot_spectral, spec, runs[0], order=out.get("order_check"))
    out["status"] = "ok"
    if args.json:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0


def _run_optimizer(args, spec, s0, widths, seeds, save_every, dev, out) -> int:
    """``--optimizer``: full training with the torch optimizer vs the reduced map."""
    from .. import fullmodel as fm
    from .dynamics import optimizer_hyper
    hyper = optimizer_hyper(args)
    keep = {"gd": (), "sign-gd": (), "momentum": ("momentum",), "nesterov": ("momentum",),
            "adam": ("betas", "eps"), "adamw": ("betas", "eps"),
            "rmsprop": ("alpha", "eps")}[args.optimizer]
    hyper = {k: v for k, v in hyper.items() if k in keep}
    runs = []
    for ws in widths:
        for sd in seeds:
            label = f"{args.optimizer} width {':'.join(map(str, ws))} frame seed {sd}"
            r = fm.validate_optimizer(spec, s0, ws, args.optimizer, args.lr, args.steps,
                                      save_every, sd, dev, args.frames,
                                      _progress(args.quiet, label), **hyper)
            runs.append(r)
            print(f"{label}: max_rel_dev {r['max_rel_dev']:.3e} max_leakage "
                  f"{r['max_leakage']:.3e} loss_rel_gap {r['loss_rel_gap']:.3e}")
    for key in ("max_rel_dev", "max_abs_dev_normwise", "max_leakage", "loss_gap",
                "loss_rel_gap"):
        out[key] = max(r[key] for r in runs)
    out.update(optimizer=args.optimizer, hyper={k: list(v) if isinstance(v, tuple) else v
                                                for k, v in hyper.items()},
               frames=args.frames, runs=runs)
    print(f"device {out['device']}, {fm.DTYPE_NAME}: {args.optimizer} max_rel_dev "
          f"{out['max_rel_dev']:.3e}, max_leakage {out['max_leakage']:.3e}")
    if args.json:
        write_json(args.json, out)
    return 0


def _diverged(out, args, why) -> int:
    """A divergent run is a status: summary line, JSON with the status, exit 1."""
    out["status"] = f"diverged: {why}" + ("" if why.endswith("lower --lr") else "; lower --lr")
    print(f"validate: status {out['status']}")
    if args.json:
        write_json(args.json, out)
    sys.stderr.write(f"svdyn validate: {out['status']}\n")
    return 1


def _plot_spectral(spec, r, path, order=None) -> None:
    from ..plotting import save_spectral_validation
    save_spectral_validation(spec, r, path, order)


def _plot_random(out, path) -> None:
    from ..plotting import save_random_validation
    save_random_validation(out, path)
