"""``svdyn warmup`` runs every engine entry kernel once and reports each."""
from svdyn.cli.main import main


def test_warmup_runs_each_kernel(capsys):
    assert main(["warmup", "--serial-only"]) == 0
    out = capsys.readouterr().out
    for name in ("field", "flow", "flow_y", "descend", "total"):
        assert f"  {name} " in out
