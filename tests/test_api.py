"""The public surface: every name in svdyn.__all__ imports, the README's Python quick start runs,
`import svdyn` stays light, typed results have one type for one state and a batch, labelled
views and loading of CLI files."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import svdyn

ROOT = Path(__file__).resolve().parent.parent


def test_all_names_import():
    assert len(svdyn.__all__) == len(set(svdyn.__all__))
    for name in svdyn.__all__:
        obj = getattr(svdyn, name)
        assert obj is not None, name
        if callable(obj) and not isinstance(obj, type) and name != "__version__":
            doc = obj.__doc__ or ""
            # vector_field: field.py (engine helper) still lacks numpydoc sections
            assert "Returns" in doc or "Yields" in doc or name in ("vector_field",), name
    assert set(svdyn.__all__) <= set(dir(svdyn))
    with pytest.raises(AttributeError):
        svdyn.no_such_name


def test_import_is_light():
    code = ("import sys, svdyn; print(int('torch' in sys.modules), int('numba' in sys.modules),"
            " int('matplotlib' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split()
    assert out == ["0", "0", "0"]


def test_readme_quick_start_runs(capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no ```python block"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 12
    ns = {}
    exec(compile(code, "README quick start", "exec"), ns)
    out = capsys.readouterr().out
    # the README shows the printed output: it must match what the code prints
    shown = re.search(r"prints\n\n```\n(.*?)```", text, flags=re.S).group(1)
    assert out.strip() == shown.strip()
    assert ns["df"].shape[0] == ns["traj"].times.size * 3 * 8


def test_inits_one_state_or_batch():
    spec = svdyn.ModelSpec(8, 3, group="cyclic")
    rng = np.random.default_rng(1)
    z = svdyn.random_init_z(spec, 0.5, rng)
    Z = svdyn.random_init_z(spec, 0.5, rng, batch=4)
    for init in (svdyn.balanced_init(spec, z), svdyn.unbalanced_init(spec, z, 0.3, seed=2)):
        assert init.shape == (3, 8)
        np.testing.assert_allclose(init.prod(axis=0), z, rtol=1e-13)
    for init in (svdyn.balanced_init(spec, Z), svdyn.unbalanced_init(spec, Z, 0.3, seed=2)):
        assert init.shape == (4, 3, 8)
        np.testing.assert_allclose(init.prod(axis=1), Z, rtol=1e-13)
    ub = svdyn.unbalanced_init(spec, z, 0.3, seed=2)
    assert np.ptp(ub, axis=0)[1:].max() > 0.01        # really unbalanced
    np.testing.assert_allclose(ub[:, 1], ub[:, 7])    # cyclic partners stay equal


def test_classify_limit_same_type_for_one_and_batch():
    spec = svdyn.ModelSpec(4, 3)
    S = svdyn.balanced_init(spec, np.array([[0, 1, 1, 0.01], [0, 1, 1, 1.2]]) * 0.1)
    one = svdyn.classify_limit(spec, S[0])
    many = svdyn.classify_limit(spec, S)
    assert type(one) is type(many)
    assert one.live.shape == (3,) and many.live.shape == (2, 3)
    assert isinstance(one.rank, int) and many.rank.shape == (2,)
    assert one.label == many.label[0] == "rank-2 code" and many.label[1] == "NC"
    assert one.support == [1, 2] and many.support == [[1, 2], [1, 2, 3]]
    assert "raw" not in repr(one) and len(repr(one)) < 400


def test_trajectory_views_and_cli_files(tmp_path):
    from svdyn.cli.main import main as cli
    out = tmp_path / "f.json"
    assert cli(["flow", "--classes", "4", "--depth", "3", "--init-scale", "0.1", "--seed", "5",
                "--t-end", "1e3", "--save-at", "1,10,100", "--json", str(out),
                "--npz", str(tmp_path / "f.npz")]) == 0
    tj = svdyn.Trajectory.load(out)
    tn = svdyn.Trajectory.load(tmp_path / "f.npz")
    raw = json.loads(out.read_text())
    np.testing.assert_allclose(tj.z, np.asarray(raw["z"]))
    np.testing.assert_allclose(tn.s, tj.s)
    assert tj.seed == 5 and tj.kind == "flow"
    r = repr(tj)
    assert len(r) < 300 and "K=4" in r and "status 'ok'" in r and "\n" not in r
    ds = tj.to_xarray()
    assert ds["s"].dims == ("time", "layer", "mode")
    assert ds["z"].dims == ("time", "mode")
    assert list(ds["layer"].values) == [1, 2, 3] and list(ds["mode"].values) == [0, 1, 2, 3]
    assert ds.attrs["seed"] == 5 and ds.attrs["version"] == svdyn.__version__
    assert json.loads(ds.attrs["config"])["classes"] == 4
    np.testing.assert_allclose(ds["z"].values, tj.s.prod(axis=1))
    df = tj.to_pandas()
    assert list(df.columns) == ["time", "layer", "mode", "s", "z", "loss", "min_margin"]
    row = df[(df.time == 100.0) & (df.layer == 2) & (df["mode"] == 3)].iloc[0]
    k = list(tj.times).index(100.0)
    assert row.s == tj.s[k, 1, 3] and row.z == pytest.approx(tj.z[k, 3])
    # a batch: leading batch dimension / column
    spec = svdyn.ModelSpec(4, 2)
    B = svdyn.flow(spec, svdyn.balanced_init(spec, np.full((3, 4), 0.1) * [0, 1, 1, 2]),
                   save_at=[0, 1, 10])
    assert B.to_xarray()["s"].dims == ("batch", "time", "layer", "mode")
    assert len(B.to_pandas()) == 3 * 3 * 2 * 4
    assert "B=3" in repr(B)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a svdyn trajectory"):
        svdyn.Trajectory.load(bad)


def test_typed_study_results():
    mm = svdyn.max_margin(4, 4)
    assert mm.rank == 2 and mm.cost == pytest.approx(2 * np.sqrt(2), rel=1e-12)
    assert mm.nc_cost == pytest.approx(3.0, rel=1e-12)
    assert mm.crossover_depths == pytest.approx([2 * np.log(2) / np.log(1.5)], rel=1e-9)
    assert mm.to_dict()["optimum"]["rank"] == 2
