"""``svdyn warmup`` runs every engine entry kernel once and reports each."""
from svdyn.cli.main import main


def test_warmup_runs_each_kernel(capsys):
    assert main(["warmup", "--serial-only"]) == 0
    out = capsys.readouterr().out
    for name in ("field", "flow", "flow_y", "descend", "total"):
        assert f"  {name} " in out
    # every serial kernel family a command can pick has been compiled (or loaded from cache),
    # and so has the per-trajectory step of each with the flags it passes (single trajectories)
    from svdyn import stepper as st
    from svdyn.bundle import JOB_GD, JOB_RK
    fams = (st.WALSH4_CE_KERNELS, st.WALSH_CE_KERNELS, st.WALSH_CE_STEADY_KERNELS,
            st.FREE_KERNELS, st.BATCH_KERNELS[JOB_RK], st.EVENT_KERNELS, st.ROS_KERNELS,
            st.BATCH_KERNELS[JOB_GD])
    assert all(f[0].signatures for f in fams)
    assert set(st.SINGLE) == {f[0] for f in fams}
    from numba import typeof
    want = {tuple(str(typeof(f)) for f in flags)
            for fn, flags in st.SINGLE.values() if fn is st.rk_advance}
    tails = {tuple(str(t) for t in sig[5:]) for sig in st.rk_advance.signatures}
    assert len(want) == 7 and want <= tails and st.gd_advance.signatures
    # the loops and a single trajectory share one copy per family: no literal flags
    assert not any("Literal" in t for tail in tails for t in tail)
