"""``svdyn warmup`` runs every engine entry kernel once and reports each."""
from svdyn.cli.main import main


def test_warmup_runs_each_kernel(capsys):
    assert main(["warmup", "--serial-only"]) == 0
    out = capsys.readouterr().out
    for name in ("field", "flow", "flow_y", "descend", "total"):
        assert f"  {name} " in out
    # every serial kernel family a command can pick has been compiled (or loaded from cache)
    from svdyn import stepper as st
    from svdyn.bundle import JOB_GD, JOB_RK
    fams = (st.FREE_KERNELS, st.BATCH_KERNELS[JOB_RK], st.EVENT_KERNELS, st.ROS_KERNELS,
            st.BATCH_KERNELS[JOB_GD])
    assert all(f[0].signatures for f in fams)
