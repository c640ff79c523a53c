"""Every example patient of every bundled knowledge base screens to its expected statuses
and verdicts (kb/*/cases/<name>.yaml beside <name>.expected.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pyasp_screen.engine.engine import Engine
from pyasp_screen.findings.derive import derive
from pyasp_screen.knowledge.kb import load_kb
from pyasp_screen.inputs.record import Loaded
from pyasp_screen.inputs.files import load_file

KB_ROOT = Path(__file__).resolve().parent.parent / "kb"
CASES = sorted(p for p in KB_ROOT.glob("*/cases/*.yaml") if not p.name.endswith(".expected.yaml"))


@pytest.mark.parametrize("name,parent", [("ct1190b", None), ("ct1190b-amendment1", "ct1190b"), ("nct07193667", None)])
def test_there_are_cases_for_every_criterion(name, parent):
    """Each criterion a knowledge base adds has a case making it fail and one leaving it unknown."""
    kb = load_kb(KB_ROOT / name)
    inherited = set(load_kb(KB_ROOT / parent).criterion_ids()) if parent else set()
    expected = [yaml.safe_load(p.with_name(p.stem + ".expected.yaml").read_text())
                for p in CASES if p.parent.parent.name == name]
    for c in kb.criteria:
        if c.id in inherited:
            continue
        bad = "met" if c.kind == "exclusion" else "not_met"
        assert any(e["statuses"].get(c.id) == bad for e in expected), f"no case makes {c.id} {bad}"
        assert any(e["statuses"].get(c.id) == "unknown" for e in expected), f"no case leaves {c.id} unknown"
    overall = {e["overall"] for e in expected}
    assert {"eligible", "ineligible", "undetermined"} <= overall
    for pop in kb.populations:  # a complete eligible patient for every population
        assert any(e["verdicts"].get(pop) == "eligible" for e in expected), f"no eligible {pop} case"


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.parent.name}/{p.stem}" for p in CASES])
def test_case(case: Path):
    expected_file = case.with_name(case.stem + ".expected.yaml")
    assert expected_file.exists(), f"{case.name} has no {expected_file.name}"
    expected = yaml.safe_load(expected_file.read_text())
    kb = load_kb(case.parent.parent, {k: str(v) for k, v in (expected.get("params") or {}).items()})
    loaded = list(load_file(case))
    assert len(loaded) == 1 and isinstance(loaded[0], Loaded), loaded
    result = Engine(kb).screen([derive(loaded[0].record, kb)])[0]
    assert set(expected["statuses"]) == set(kb.criterion_ids()), "expected statuses must list every criterion"
    want = {**expected["statuses"], **(expected.get("components") or {})}
    got = {k: result.statuses.get(k, "unknown") for k in want}
    assert got == want
    assert result.verdicts == expected["verdicts"]
    assert result.overall == expected["overall"]
    assert result.contradictions == []
