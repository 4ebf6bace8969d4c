"""The [P]/[U] report section (issue 6): every claim carries a verdict and numbers."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("torch")


def test_section_quick_has_verdicts():
    from svdyn.landscape.report import section
    text = section(quick=True)
    heads = [ln for ln in text.splitlines() if ln.startswith("### ")
             and not ln.startswith("### Training-time")]     # a labelled non-claim
    assert len(heads) >= 8
    for h in heads:
        assert re.search(r"\*\*(reproduced|partly reproduced|not reproduced)\*\*", h), h
    # the acceptance checks are reproduced in the quick grid too
    for key in ("full-matrix GD to convergence", "K² outlier", "PSD Hessian",
                "outlier eigenspace", "dimension of the critical sets"):
        line = next(h for h in heads if key in h)
        assert line.endswith("**reproduced**"), line
    assert "| 4 | 3 | 1 | 0.01 | [6, 6] | 84 |" in text
