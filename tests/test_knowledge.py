"""The compiled knowledge base: one frozen object, built once from clingo's parse of the
programs, that every stage asks (issue 12.1). Its answers do not depend on how rules are
spelt, and loading with other parameters gives an object consistent with them."""

from __future__ import annotations

import ast
import dataclasses
import pickle
import re
import shutil
from pathlib import Path

import pytest

from pyasp_screen.explain.explainer import explain
from pyasp_screen.findings.derive import derive
from pyasp_screen.inputs.files import load_file
from pyasp_screen.knowledge.kb import load_kb

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "kb" / "ct1190b" / "cases"


def explanation(kb, case: Path):
    record = next(load_file(case, vocabulary=kb.vocabulary)).record
    _, scopes = explain(kb, derive(record, kb), max_results=10)
    return [(s.scope, s.verdict, [r.findings for r in s.sufficient_reasons],
             [(r.findings, r.values) for r in s.near_misses],
             {g: [(r.findings, r.values) for r in rs] for g, rs in s.missing.items()}) for s in scopes]


def test_with_parameters_gives_a_consistent_object():
    """Reproduction: the copy made by with_parameters lacked the check/4 that only exists for
    one reading of "progressive"."""
    base = load_kb("ct1190b")
    assert not [c for c in base.checks if c[1] == "fvc_decline_12mo"]
    fvc = base.with_parameters({"ssc_progressive_definition": "fvc_decline"})
    assert ("SSC-IN-3.progressive", "fvc_decline_12mo", "ge", 10000) in fvc.checks
    assert fvc.checks == load_kb("ct1190b", {"ssc_progressive_definition": "fvc_decline"}).checks
    # what the condition reads follows the parameter: the clinician's assessment is no longer read
    assert base.conditions["SSC-IN-3.progressive"].reads == {("assessment", "ssc_progressive")}
    assert fvc.conditions["SSC-IN-3.progressive"].reads == {("quantity", "fvc_decline_12mo")}
    assert fvc.conditions["SSC-IN-3.progressive"].thresholds == (("fvc_decline_12mo", "ge", "ssc_fvc_decline_min"),)
    assert not fvc.reads_fact("assessment", "ssc_progressive") and base.reads_fact("assessment", "ssc_progressive")
    assert fvc.param("ssc_progressive_definition") == "fvc_decline"
    assert base.param("ssc_progressive_definition") == "clinician"  # the original is unchanged


def test_the_object_is_frozen_and_travels_to_workers():
    kb = load_kb("ct1190b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        kb.checks = ()
    copy = pickle.loads(pickle.dumps(kb))
    assert copy.conditions == kb.conditions and copy.program_text() == kb.program_text()
    assert copy.vocabulary.observations.keys() == kb.vocabulary.observations.keys()


def test_what_each_criterion_reads_and_compares():
    kb = load_kb("ct1190b")
    c = kb.conditions["SSC-IN-4b"]
    assert {("quantity", "anc"), ("quantity", "hb"), ("event", "transfusion"), ("event", "growth_factor"),
            ("complete", "transfusions")} <= c.reads
    assert {"anc_min", "ssc_hb_min", "screening_window_days", "transfusion_window_days"} <= c.parameters
    assert kb.conditions["SSC-IN-4b.anc"].thresholds == (("anc", "ge", "anc_min"),)
    assert kb.conditions["SSC-IN-1.diffuse"].reads >= {("assessment", "ssc_subtype"), ("diagnosis", "ssc")}
    assert ("diagnosis", "ssc_ild") in kb.conditions["SSC-IN-1.diffuse"].reads  # ssc_ild implies ssc
    assert kb.compared["sledai2k_total"] == {"sledai2k_min", "sle_active_sledai_min"}
    assert kb.parameter_uses["ssc_fvc_decline_min"] == ("SSC-IN-3",)  # under any interpretation
    assert kb.population_labels == {"sle": "SLE", "ssc": "SSc"}
    lines = (ROOT / "kb" / "ct1190b" / "ssc.lp").read_text().splitlines()
    file, line, _ = kb.criteria[[c.id for c in kb.criteria].index("SSC-IN-2")].location
    assert file.endswith("ssc.lp") and lines[line - 1].startswith('criterion("SSC-IN-2"')


def test_renaming_a_variable_changes_no_explanation(tmp_path):
    """Reproduction: explain matched strings such as "assessment(P,name," in the program text,
    so renaming P made it say nothing unknown could settle the verdict."""
    case = CASES / "ssc-in-4e-unknown.yaml"
    before = explanation(load_kb("ct1190b"), case)
    copy = tmp_path / "ct1190b"
    shutil.copytree(ROOT / "kb" / "ct1190b", copy)
    ssc = copy / "ssc.lp"
    text = ssc.read_text()
    renamed = "\n".join(line if line.lstrip().startswith("%") else re.sub(r"\bP\b", "Patient", line)
                        for line in text.splitlines())
    assert renamed.count("Patient") > 40
    ssc.write_text(renamed)
    after = explanation(load_kb(copy), case)
    assert after == before
    missing = before[0][4] if before[0][0] == "overall" else None
    assert missing, "the case is undetermined: something unknown must be able to settle it"


def test_no_module_searches_program_text():
    """program_text() is only ever handed to clingo (or hashed): no stage reads it."""
    allowed = {"knowledge/kb.py", "engine/engine.py", "engine/reference.py", "explain/explainer.py", "scale/distribute.py",
               "authoring/exactness.py",  # its record generators are clingo programs over the KB
               "authoring/diagnose.py"}  # grounds the KB with its constraints as atoms (clingo's parser)
    offenders = []
    for path in (ROOT / "pyasp_screen").rglob("*.py"):
        rel = path.relative_to(ROOT / "pyasp_screen").as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "program_text" and rel not in allowed:
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                right = node.comparators[0]
                if isinstance(right, ast.Name) and right.id in ("program", "text_of_program"):
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
