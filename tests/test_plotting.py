"""svdyn.plotting: the backend is left alone, the format follows the suffix, figures carry
what a reader needs (colour per mode, live/dying styles, colorbars, crossovers marked)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


def test_import_leaves_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import svdyn.plotting, svdyn; "
            "import matplotlib.pyplot as plt; print(matplotlib.get_backend())")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "svg"
    src = open(os.path.join(os.path.dirname(__file__), "..", "svdyn", "plotting.py")).read()
    assert "matplotlib.use(" not in src


def _traj(K=16, L=3):
    """A synthetic single trajectory (no integration needed): modes 1..K/2 grow, rest stall."""
    from svdyn import ModelSpec, Trajectory
    spec = ModelSpec(K, L)
    t = np.geomspace(1e-2, 1e6, 30)
    z = np.zeros((t.size, K))
    z[:, 1:] = 0.1
    z[:, 1:K // 2] += np.log1p(t)[:, None]
    s = np.broadcast_to(z[:, None, :] ** (1 / L), (t.size, L, K)).copy()
    return Trajectory(spec, t, s, np.ones(t.size), np.ones(t.size), "ok")


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_format_follows_suffix(tmp_path, suffix):
    from svdyn.plotting import save_modes_plot
    p = save_modes_plot(_traj(8), tmp_path / f"m{suffix}")
    assert p.read_bytes()[:5].startswith(MAGIC[suffix])


def test_unknown_suffix_is_an_error(tmp_path):
    from svdyn.plotting import save_modes_plot
    with pytest.raises(ValueError, match="unknown suffix '.jpgx'"):
        save_modes_plot(_traj(8), tmp_path / "m.jpgx")
    assert not (tmp_path / "m.jpgx").exists()


def test_modes_plot_colours_and_styles():
    import matplotlib.pyplot as plt
    from svdyn.plotting import plot_modes
    for K in (16, 64):
        fig, ax = plt.subplots()
        plot_modes(_traj(K), ax)
        lines = [ln for ln in ax.get_lines() if ln.get_xdata().size > 2]
        assert len(lines) == K - 1                       # walsh: every non-constant mode
        colours = {tuple(np.round(ln.get_color(), 6)) for ln in lines}
        assert len(colours) == K - 1                     # a colormap, not a repeating cycle
        styles = [ln.get_linestyle() for ln in lines]
        assert styles.count("-") == K // 2 - 1           # modes 1..K/2-1 live (growing)
        assert styles.count("--") == K // 2              # the rest dying
        assert len(fig.axes) == 2                        # a colorbar for the mode index
        leg = ax.get_legend().get_texts()
        assert len(leg) == 2                             # line styles only: fits at any K
        plt.close(fig)


def test_basin_map_colorbar_and_no_run_time(tmp_path):
    import matplotlib.pyplot as plt
    from svdyn.plotting import plot_basin_map
    eps, r = np.geomspace(1e-3, 1, 5), np.linspace(0, 1.5, 6)
    rank = np.where(r[None, :] > 0.5, 3, 2) * np.ones((5, 1))
    m = {"depth": 3, "eps": eps.tolist(), "r": r.tolist(), "rank": rank.tolist(),
         "error": np.zeros((5, 6)).tolist(), "seconds": 12.3, "n": 30}
    fig, ax = plt.subplots()
    plot_basin_map(m, ax)
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert any("NC" in x for x in labels) and any("square" in x for x in labels)
    assert " s" not in ax.get_title() and "12.3" not in ax.get_title()
    plt.close(fig)


def test_maxmargin_curve_matches_solver():
    from svdyn.analysis.maxmargin import solve
    from svdyn.plotting import maxmargin_cost_curves
    res = solve(4, 3.0, "walsh")
    Ls = np.array([2.5, 3.0, 4.0, 6.0])
    c = maxmargin_cost_curves([res], Ls)[0]
    for L, ratio in zip(Ls, c["ratio"]):
        d = solve(4, float(L), "walsh")
        assert ratio == pytest.approx(d["optimum"]["cost"] / d["nc_cost"], rel=1e-12)
    assert c["crossovers"] == pytest.approx([2 * np.log(2) / np.log(1.5)], rel=1e-9)


def test_order_check_is_loglog():
    import matplotlib.pyplot as plt
    from svdyn.plotting import plot_order_check
    oc = {"lrs": [0.4, 0.2, 0.1], "errors_full": [4e-3, 2e-3, 1e-3],
          "errors_reduced": [4e-3, 2e-3, 1e-3], "order": 1.0, "t_end": 2.0}
    fig, ax = plt.subplots()
    plot_order_check(oc, ax)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_legend() is not None
    plt.close(fig)
